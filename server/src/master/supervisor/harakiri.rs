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
//!
//! With `harakiri-graceful-timeout T`, the first try sends
//! `harakiri-graceful-signal` (SIGTERM unless told otherwise: an app that
//! handles it can log a traceback or clean up) and SIGKILL follows T
//! seconds later if the worker is still there, as in uWSGI 2.0.22+.
//!
//! An app may also give the request in flight a deadline of its own
//! (`uwsgi.set_user_harakiri(seconds)`, 0 to clear it; a HARAKIRI frame on
//! the channel): as in uWSGI it is checked beside `harakiri`, not instead
//! of it, and it ends with the request.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::Supervisor;

impl Supervisor {
    /// Kills the workers whose request has run too long.
    pub(super) fn check_harakiri(&mut self) {
        if self.stopping {
            return;
        }
        // With `harakiri` off, a deadline the app set itself still counts.
        let limit = Duration::from_secs(self.settings.harakiri);
        for (slot, core, ran) in self.pool.table.overdue(limit) {
            let Some(s) = (slot as usize)
                .checked_sub(1)
                .and_then(|i| self.slots.get_mut(i))
            else {
                continue;
            };
            if s.pid == 0 {
                continue;
            }
            let (graceful_timeout, graceful_signal) = self.settings.harakiri_graceful;
            if s.harakiri_kill_at.is_some_and(|t| Instant::now() < t) {
                // Signalled gracefully; SIGKILL comes at the deadline.
                continue;
            }
            s.harakiri_tries += 1;
            let tries = s.harakiri_tries;
            let graceful = graceful_timeout > 0 && tries == 1;
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
            let signal = if graceful {
                s.harakiri_kill_at = Some(Instant::now() + Duration::from_secs(graceful_timeout));
                Signal::try_from(graceful_signal).unwrap_or(Signal::SIGTERM)
            } else {
                Signal::SIGKILL
            };
            if let Err(e) = kill(Pid::from_raw(pid), signal) {
                tracing::error!(event = "harakiri_failed", worker = slot, pid, cause = %e, "cannot kill worker {slot}");
            }
        }
    }
}
