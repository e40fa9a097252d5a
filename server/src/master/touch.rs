//! The `touch-*` options (reference §5.5, `config/touch.rs`): once a
//! second, the modification time of each file is compared with the last
//! one seen; a change, a creation or a removal does what the option says:
//! a graceful reload (uWSGI's `grace them all` line), a graceful stop, a
//! command (`[uwsgi-touch-exec]`), a uWSGI signal (`[uwsgi-touch-signal]`),
//! a log rotation (uWSGI's `logsize` line) or a log reopen; the stop and
//! reopen lines are rwsgi's own wording.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use super::supervisor::Request;
use crate::config::touch::{Touch, TouchAction};

fn stamp(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// The log file, for `touch-logrotate`: its path and `log-backupname`.
#[derive(Debug, Clone, Default)]
pub struct LogFile {
    /// `logto` when it is a file.
    pub path: Option<PathBuf>,
    /// `log-backupname`.
    pub backup: Option<PathBuf>,
}

/// Watches the files until the supervisor goes away.
pub async fn watch(touches: Vec<Touch>, tx: mpsc::Sender<Request>, log: LogFile) {
    let mut last: Vec<Option<SystemTime>> = touches.iter().map(|t| stamp(&t.path)).collect();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for (t, seen) in touches.iter().zip(last.iter_mut()) {
            let now = stamp(&t.path);
            if now == *seen {
                continue;
            }
            *seen = now;
            if act(t, "touched", &tx, &log).await.is_err() {
                return;
            }
        }
    }
}

/// Does what a touched (or, for `fs-*`, modified) file asks for; `Err`
/// when the supervisor is gone.
pub(super) async fn act(
    t: &Touch,
    how: &str,
    tx: &mpsc::Sender<Request>,
    log: &LogFile,
) -> Result<(), ()> {
    let path = t.path.display();
    let request = match &t.action {
        TouchAction::Reload => {
            tracing::info!(event = "touched", path = %path,
                "*** {path} has been {how}... grace them all !!! ***");
            Request::Reload("touch-reload")
        }
        TouchAction::Stop => {
            tracing::info!(event = "touched", path = %path,
                "*** {path} has been {how}... stopping uWSGI !!! ***");
            // SAFETY: kill(2) on this process; the master's SIGTERM stream
            // turns it into the graceful shutdown.
            unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
            return Ok(());
        }
        TouchAction::Exec(cmd) => {
            // Reaped by the supervisor's waitpid(-1), like every child.
            match crate::hooks::session_command(cmd, None, false).spawn() {
                Ok(_) => tracing::info!(event = "touch_exec", path = %path, command = %cmd,
                    "[uwsgi-touch-exec] running {cmd}"),
                Err(e) => tracing::error!(event = "touch_exec_failed", cause = %e, command = %cmd,
                    "[uwsgi-touch-exec] cannot run {cmd}: {e}"),
            }
            return Ok(());
        }
        TouchAction::Signal(sig) => {
            tracing::info!(event = "touch_signal", path = %path, signum = sig,
                "[uwsgi-touch-signal] raising {sig}");
            Request::Signal(*sig)
        }
        TouchAction::LogRotate => {
            match &log.path {
                Some(file) => crate::logrotate::rotate_now(file, log.backup.as_deref()).await,
                None => tracing::warn!(event = "touch_logrotate_ignored", path = %path,
                    "{path} has been {how}, but there is no log file to rotate (logto)"),
            }
            return Ok(());
        }
        TouchAction::LogReopen => {
            tracing::info!(event = "touched", path = %path,
                "*** {path} has been {how}... reopening the log ***");
            Request::ReopenLog
        }
    };
    tx.send(request).await.map_err(|_| ())
}
