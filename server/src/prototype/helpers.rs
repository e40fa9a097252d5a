//! The prototype's helper processes: spooler processes (`spooler.rs`) and
//! mules (`mule.rs`). uWSGI's master keeps them (`spooler_start`,
//! `uwsgi_mule`, `uwsgi_master_check_spoolers_death`,
//! `uwsgi_master_check_mules_death`); here the prototype forks them once
//! the app is loaded, like workers, so they share its memory and have what
//! the app set in the `uwsgi` module; they are respawned when they exit
//! (at most once a second each), with uWSGI's lines. They die with the
//! prototype (`PR_SET_PDEATHSIG`): a reload's new prototype starts its own,
//! and a spooled task cut short stays in its directory for the next one.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::worker::{mule_api, spool_api};

/// A helper process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Helper {
    /// Spooler process `n` (0-based).
    Spooler(usize),
    /// Mule `n` (1-based, as in uWSGI).
    Mule(u32),
}

/// The helper processes of this prototype.
#[derive(Debug, Default)]
pub struct Procs {
    pids: HashMap<i32, Helper>,
    started: HashMap<Helper, Instant>,
    /// Helpers to start, and when.
    due: Vec<(Helper, Instant)>,
}

impl Procs {
    /// Every configured helper, due now.
    pub fn new() -> Procs {
        let now = Instant::now();
        let spoolers = spool_api::spoolers().map_or(0, |s| s.count());
        let mules = mule_api::count();
        let due = (0..spoolers)
            .map(Helper::Spooler)
            .chain((1..=mules).map(Helper::Mule))
            .map(|h| (h, now))
            .collect();
        Procs {
            due,
            ..Procs::default()
        }
    }

    /// When the next one is to start.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.iter().map(|(_, t)| *t).min()
    }

    /// The helpers to start now.
    pub fn take_due(&mut self, now: Instant) -> Vec<Helper> {
        let (ready, later): (Vec<_>, Vec<_>) = self.due.iter().partition(|(_, t)| *t <= now);
        self.due = later;
        ready.into_iter().map(|(h, _)| h).collect()
    }

    /// `h` was forked as `pid`.
    pub fn spawned(&mut self, h: Helper, pid: i32) {
        self.pids.insert(pid, h);
        self.started.insert(h, Instant::now());
        match h {
            Helper::Spooler(index) => {
                if let Some(s) = spool_api::spoolers() {
                    s.set_pid(index, pid);
                    tracing::info!(event = "spooler_spawned", dir = %s.dir_of(index).display(), pid,
                        "spawned the uWSGI spooler on dir {} with pid {pid}", s.dir_of(index).display());
                }
            }
            Helper::Mule(id) => {
                tracing::info!(
                    event = "mule_spawned",
                    mule = id,
                    pid,
                    "spawned uWSGI mule {id} (pid: {pid})"
                );
            }
        }
    }

    /// Forking `h` failed: try again in a second.
    pub fn retry(&mut self, h: Helper) {
        self.due.push((h, Instant::now() + Duration::from_secs(1)));
    }

    /// Whether `pid` was a helper; if so it is started again (a second
    /// after its last start at the soonest).
    pub fn exited(&mut self, pid: i32) -> bool {
        let Some(h) = self.pids.remove(&pid) else {
            return false;
        };
        match h {
            Helper::Spooler(index) => {
                if let Some(s) = spool_api::spoolers() {
                    s.set_pid(index, 0);
                    s.counters.set_running(index, false);
                    s.counters.add_respawn(index);
                }
                tracing::error!(
                    event = "spooler_died",
                    pid,
                    "OOOPS the spooler is no more...trying respawn..."
                );
            }
            Helper::Mule(id) => {
                tracing::error!(
                    event = "mule_died",
                    mule = id,
                    pid,
                    "OOOPS mule {id} (pid: {pid}) crippled...trying respawn..."
                );
            }
        }
        let earliest = self
            .started
            .get(&h)
            .map_or_else(Instant::now, |t| *t + Duration::from_secs(1));
        self.due.push((h, earliest.max(Instant::now())));
        true
    }
}

/// In a new helper process: dies with the prototype (`parent`), by SIGKILL
/// as uWSGI's mules do, so that no app code (a SIGTERM handler in a mule's
/// script) keeps one alive after the instance stopped.
pub fn tie_to_parent(parent: i32) {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number; getppid has no
    // arguments.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        if libc::getppid() != parent {
            libc::_exit(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_helper_that_exits_is_started_again_at_most_once_a_second() {
        let mut p = Procs::default();
        p.spawned(Helper::Spooler(0), 100);
        p.spawned(Helper::Mule(1), 101);
        assert!(!p.exited(99));
        assert!(p.exited(100));
        assert!(!p.exited(100));
        let t = p.next_due().unwrap();
        assert!(t > Instant::now() + Duration::from_millis(500));
        assert!(p.take_due(Instant::now()).is_empty());
        assert_eq!(p.take_due(t), [Helper::Spooler(0)]);
        assert_eq!(p.next_due(), None);
        assert!(p.exited(101));
        assert_eq!(
            p.take_due(Instant::now() + Duration::from_secs(2)),
            [Helper::Mule(1)]
        );
    }
}
