//! `fs-reload`, `fs-brutal-reload` and `fs-signal` (uWSGI `core/fsmon.c`):
//! inotify watches on files or directories (a directory's watch also sees
//! its entries created, removed, renamed or written); a change does what
//! the option says, through the same actions as the `touch-*` files
//! (`touch.rs`). Changes that arrive together (an editor saving a file
//! makes several events) act once per path.

use std::os::fd::{AsFd, AsRawFd, RawFd};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use super::supervisor::Request;
use super::touch::{LogFile, act};
use crate::config::touch::Touch;

/// uWSGI's watch mask.
fn mask() -> AddWatchFlags {
    AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
}

/// The inotify instance, for `AsyncFd`.
struct Watcher(Inotify);

impl AsRawFd for Watcher {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Sets up the watches; a path that cannot be watched is an error that
/// names it (uWSGI exits too).
pub fn start(watches: Vec<Touch>, tx: mpsc::Sender<Request>, log: LogFile) -> anyhow::Result<()> {
    if watches.is_empty() {
        return Ok(());
    }
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
    let mut table: Vec<(WatchDescriptor, Touch)> = Vec::with_capacity(watches.len());
    for t in watches {
        let wd = inotify
            .add_watch(&t.path, mask())
            .map_err(|e| anyhow::anyhow!("cannot watch {} (fs-*): {e}", t.path.display()))?;
        tracing::info!(event = "fsmon", path = %t.path.display(),
            "[uwsgi-fsmon] watching {}", t.path.display());
        table.push((wd, t));
    }
    // SAFETY: the AsyncFd owns the inotify descriptor from here on; it is
    // not closed or registered elsewhere.
    let fd = unsafe { AsyncFd::register(Watcher(inotify)) }.map_err(|e| e.into_parts().1)?;
    tokio::spawn(async move {
        loop {
            let Ok(mut ready) = fd.readable().await else {
                return;
            };
            let events = match fd.get_ref().0.read_events() {
                Ok(events) => events,
                Err(nix::errno::Errno::EAGAIN) => {
                    ready.clear_ready();
                    continue;
                }
                Err(e) => {
                    tracing::error!(event = "fsmon_failed", cause = %e, "[uwsgi-fsmon] cannot read the inotify events");
                    return;
                }
            };
            // Once per path, in the order configured.
            for (wd, t) in &table {
                if events.iter().any(|e| e.wd == *wd)
                    && act(t, "modified", &tx, &log).await.is_err()
                {
                    return;
                }
            }
        }
    });
    Ok(())
}
