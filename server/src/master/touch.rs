//! `touch-reload` (reference §5.5): once a second, the modification time of
//! each file is compared with the last one seen; a change, a creation or a
//! removal asks the supervisor for a graceful reload, with uWSGI's line.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use super::supervisor::Request;

fn stamp(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Watches `paths` until the supervisor goes away.
pub async fn watch(paths: Vec<PathBuf>, tx: mpsc::Sender<Request>) {
    let mut last: Vec<Option<SystemTime>> = paths.iter().map(|p| stamp(p)).collect();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for (path, seen) in paths.iter().zip(last.iter_mut()) {
            let now = stamp(path);
            if now == *seen {
                continue;
            }
            *seen = now;
            tracing::info!(
                event = "touched",
                path = %path.display(),
                "*** {} has been touched... grace them all !!! ***",
                path.display()
            );
            if tx.send(Request::Reload("touch-reload")).await.is_err() {
                return;
            }
        }
    }
}
