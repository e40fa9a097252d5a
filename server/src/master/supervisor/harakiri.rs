//! Harakiri (uWSGI `uwsgi_master_check_harakiri` and `trigger_harakiri`,
//! reference §5.3): once a second, a worker serving a request that started
//! `harakiri` seconds ago or more is killed with SIGKILL and respawned.
//!
//! The clock starts when the master hands the request to the worker (the
//! lease), so it covers reading the body, the app and writing the response,
//! as uWSGI's does. uWSGI keeps whole-second deadlines, so its timeout is
//! anywhere in (N−1, N+1] seconds; here it is [N, N+1). The client gets a
//! 502 if no byte of the response was sent, else the connection is reset
//! (uWSGI's client gets nothing and nginx makes the 502). The log lines are
//! uWSGI's, `graceful: yes` on the first try included (uWSGI prints it even
//! with no graceful timeout); the death and respawn lines follow from the
//! exit path.

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::Supervisor;

impl Supervisor {
    /// Kills the workers whose request has run too long.
    pub(super) fn check_harakiri(&mut self) {
        let limit = self.settings.harakiri;
        if limit == 0 || self.stopping {
            return;
        }
        for (slot, core, ran) in self.pool.table.overdue(Duration::from_secs(limit)) {
            let Some(s) = (slot as usize)
                .checked_sub(1)
                .and_then(|i| self.slots.get_mut(i))
            else {
                continue;
            };
            if s.pid == 0 {
                continue;
            }
            s.harakiri_tries += 1;
            let tries = s.harakiri_tries;
            if tries == 1 {
                self.pool.table.harakiri(slot);
            }
            let pid = s.pid;
            tracing::error!(
                event = "harakiri",
                worker = slot,
                core,
                pid,
                tries,
                seconds = ran.as_secs(),
                "*** HARAKIRI ON WORKER {slot} (pid: {pid}, try: {tries}, graceful: {}) ***",
                if tries == 1 { "yes" } else { "no" }
            );
            tracing::error!(
                event = "harakiri_triggered",
                worker = slot,
                core,
                "HARAKIRI triggered by worker {slot} core {core} !!!"
            );
            if let Err(e) = kill(Pid::from_raw(pid), Signal::SIGKILL) {
                tracing::error!(event = "harakiri_failed", worker = slot, pid, cause = %e, "cannot kill worker {slot}");
            }
        }
    }
}
