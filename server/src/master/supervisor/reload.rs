//! Graceful reload: a new prototype generation, then the workers replaced
//! one by one (DESIGN.md §2), triggered by SIGHUP, the master FIFO's `r`
//! or `c`, or a `touch-reload` file.
//!
//! 1. A new prototype starts beside the running one and imports the app
//!    (the new code). The running workers keep serving.
//! 2. If it reports the app did not load, or dies first, the reload is
//!    abandoned with a log line and nothing else changes: a bad deploy does
//!    not take the instance down.
//! 3. Once it is ready it becomes the prototype; the old one is kept only
//!    to report the exits of its workers. Then, one slot at a time, an idle
//!    old-generation worker is taken out of the pool (never a busy one),
//!    its channels are closed so it exits between requests, and the slot is
//!    respawned from the new prototype; the next slot waits until that
//!    worker is up. At most one worker of capacity is missing at any time,
//!    requests queue in the master meanwhile, and none is dropped.
//! 4. When no old-generation worker is left, the old prototype is let go.
//!
//! The new prototype is this binary started again from its path on disk,
//! with `librwsgi.so` beside it: the master itself is not replaced, so an
//! upgrade of rwsgi needs a restart, and the two files must be upgraded
//! together (a binary replaced by a new file makes the reload fail, and
//! the running workers keep serving).
//!
//! The log lines are those of uWSGI's chain reload (`chain reload
//! starting...`, `chain next victim is worker N`, `chain reloading
//! complete`), which is what this is; uWSGI's SIGHUP instead stops every
//! worker at once.

use std::time::Instant;

use super::{EXITED_ON_RELOAD, Prototype, Supervisor};
use crate::control::Received;
use crate::ipc::Control;

impl Supervisor {
    /// Starts a reload, unless one is running or the server is not ready.
    pub(super) fn start_reload(&mut self, why: &str) {
        if self.stopping {
            return;
        }
        if self.settings.exit_on_reload {
            // uWSGI finishes its reload's graceful stop, then exits with
            // "GAME OVER" instead of starting again (`uwsgi_reload`); here
            // that is the graceful shutdown SIGTERM starts.
            tracing::info!(
                event = "exit_on_reload",
                why,
                "{why} asked for a reload; exit-on-reload is set: stopping the instance"
            );
            EXITED_ON_RELOAD.store(true, std::sync::atomic::Ordering::Release);
            // SAFETY: kill(2) on this process; the master's SIGTERM handler
            // (a tokio signal stream) turns it into a graceful shutdown.
            unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
            return;
        }
        // Daemons start again with the new code, as uWSGI's re-exec does.
        self.daemons.reload();
        if self.next_proto.is_some() || self.old_proto.is_some() {
            tracing::warn!(
                event = "reload_busy",
                "reload already in progress ({why} ignored)"
            );
            return;
        }
        if !self.proto_ready {
            tracing::warn!(
                event = "reload_not_ready",
                "the prototype is not ready yet ({why} ignored)"
            );
            return;
        }
        tracing::info!(event = "reload", trigger = why, "chain reload starting...");
        // `log-reopen`: the new generation writes to the reopened file.
        crate::logfile::reopen();
        match self.launch_prototype() {
            Ok(p) => {
                self.reload_started = Some(Instant::now());
                self.next_proto = Some(p);
            }
            Err(e) => {
                tracing::error!(event = "reload_failed", cause = %e, "reload failed: cannot start a new prototype")
            }
        }
    }

    /// A message from the prototype being started by a reload.
    pub(super) fn on_next_control(&mut self, msg: Option<Received>) {
        let Some(next) = self.next_proto.take() else {
            return;
        };
        match msg {
            Some(Received::Message(Control::Ready { ok: true }, _)) => {
                tracing::info!(
                    event = "reload_prototype_ready",
                    pid = next.pid,
                    "new prototype (pid: {}) ready; replacing the workers one by one",
                    next.pid
                );
                self.old_proto = self.proto.replace(next);
                self.proto_started = Some(Instant::now());
                self.generation += 1;
                self.reload_step();
            }
            Some(Received::Message(Control::Ready { ok: false }, _)) => {
                tracing::error!(
                    event = "reload_failed",
                    pid = next.pid,
                    "reload failed: the app did not load in the new prototype; the running workers keep serving"
                );
            }
            Some(Received::Message(Control::HelperInbox { kind, id }, fds)) => {
                let mut next = next;
                super::signals::add_helper_inbox(&mut next, kind, id, fds);
                self.next_proto = Some(next);
            }
            Some(Received::Message(other, _)) => {
                tracing::error!(event = "control_garbage", message = ?other, "unexpected message from the new prototype");
                self.next_proto = Some(next);
            }
            Some(Received::Garbage) => {
                tracing::error!(
                    event = "control_garbage",
                    "garbage on the new prototype's control socket"
                );
                self.next_proto = Some(next);
            }
            Some(Received::Closed) | None => {
                tracing::error!(
                    event = "reload_failed",
                    pid = next.pid,
                    "reload failed: the new prototype (pid: {}) exited before it was ready; the running workers keep serving",
                    next.pid
                );
            }
        }
    }

    /// A message from the previous prototype, which reports on its workers
    /// until they are all replaced.
    pub(super) fn on_old_control(&mut self, msg: Option<Received>) {
        match msg {
            Some(Received::Message(Control::Exited { slot, pid, status }, _)) => {
                self.on_exit(slot, pid, status);
            }
            Some(Received::Message(Control::Spawned { slot, pid }, _)) => {
                // A spawn asked for just before the switch: an old-generation
                // worker, replaced like the others.
                self.on_spawned(slot, pid);
            }
            Some(Received::Message(..)) | Some(Received::Garbage) => {}
            Some(Received::Closed) | None => {
                // Its workers are re-parented to the master, which reaps them.
                self.old_proto = None;
            }
        }
        self.reload_step();
    }

    /// Replaces the next old-generation worker, if none is being replaced.
    pub(super) fn reload_step(&mut self) {
        if self.old_proto.is_none() || self.stopping {
            return;
        }
        if let Some(i) = self.replacing {
            let s = &self.slots[i];
            let done = s.generation == self.generation && s.alive.is_some();
            if !done && !s.cheaped {
                return;
            }
            self.replacing = None;
        }
        let stale: Vec<usize> = (0..self.slots.len())
            .filter(|&i| {
                let s = &self.slots[i];
                s.running() && s.generation < self.generation
            })
            .collect();
        if stale.is_empty() {
            let took = self
                .reload_started
                .take()
                .map_or(0.0, |t| t.elapsed().as_secs_f64());
            tracing::info!(
                event = "reload_done",
                seconds = took,
                "chain reloading complete"
            );
            // Closing its control socket ends the old prototype.
            self.old_proto = None;
            return;
        }
        for i in stale {
            let slot = i as u32 + 1;
            if let Some(channels) = self.pool.take_idle(slot, self.settings.threads) {
                tracing::info!(
                    event = "reload_victim",
                    worker = slot,
                    "chain next victim is worker {slot}"
                );
                // Closing its channels makes the idle worker exit; its exit
                // respawns the slot from the new prototype.
                drop(channels);
                self.replacing = Some(i);
                return;
            }
        }
        // Every old worker is busy: the reload timer tries again.
    }

    /// The prototypes a reload is holding, for shutdown.
    pub(super) fn reload_pids(&mut self) -> Vec<i32> {
        [self.next_proto.take(), self.old_proto.take()]
            .into_iter()
            .flatten()
            .map(|p: Prototype| p.pid)
            .collect()
    }
}
