//! `evil-reload-on-rss` and `evil-reload-on-as` (reference §5.4, uWSGI
//! `master_checks.c`): once a second the master reads each worker's memory
//! and kills one that has grown past the limit, busy or not, with uWSGI's
//! line; the slot is respawned. Unlike `reload-on-rss`, which the worker
//! checks after a request, this catches a worker that grows during one (its
//! client then gets the usual 502, or a reset if the response had started).

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::Supervisor;

impl Supervisor {
    /// Kills the workers over the memory limits.
    pub(super) fn check_memory(&mut self) {
        let (rss_limit, as_limit) = self.settings.evil_limits;
        if (rss_limit == 0 && as_limit == 0) || self.stopping {
            return;
        }
        for (i, s) in self.slots.iter().enumerate() {
            if s.pid <= 0 || s.alive.is_none() {
                continue;
            }
            let (vsz, rss) = crate::stats::process_memory(s.pid);
            let slot = i + 1;
            let pid = s.pid;
            if rss_limit > 0 && rss >= rss_limit {
                tracing::error!(
                    event = "evil_reload",
                    worker = slot,
                    pid,
                    rss,
                    "*** EVIL RELOAD ON WORKER {slot} RSS: {rss} (pid: {pid}) ***"
                );
            } else if as_limit > 0 && vsz >= as_limit {
                tracing::error!(
                    event = "evil_reload",
                    worker = slot,
                    pid,
                    vsz,
                    "*** EVIL RELOAD ON WORKER {slot} ADDRESS SPACE: {vsz} (pid: {pid}) ***"
                );
            } else {
                continue;
            }
            if let Err(e) = kill(Pid::from_raw(pid), Signal::SIGKILL) {
                tracing::error!(event = "evil_reload_failed", worker = slot, pid, cause = %e, "cannot kill worker {slot}");
            }
        }
    }
}
