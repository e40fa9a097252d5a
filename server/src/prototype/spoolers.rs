//! The spooler processes, as the prototype keeps them (uWSGI's master
//! does it there: `spooler_start`, `uwsgi_master_check_spoolers_death`):
//! forked once the app is loaded, like workers, so they share its memory
//! and have its `uwsgi.spooler`; respawned when they exit (at most once a
//! second each), with uWSGI's lines. They die with the prototype
//! (`PR_SET_PDEATHSIG`): a reload's new prototype starts its own, and a
//! task cut short stays in its directory for the next one.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::worker::spool_api;

/// The spooler processes of this prototype.
#[derive(Debug, Default)]
pub struct Procs {
    /// pid → process index.
    pids: HashMap<i32, usize>,
    /// When each was last started.
    started: HashMap<usize, Instant>,
    /// Processes to start, and when.
    due: Vec<(usize, Instant)>,
}

impl Procs {
    /// Every configured spooler process, due now.
    pub fn new() -> Procs {
        let count = spool_api::spoolers().map_or(0, |s| s.count());
        let now = Instant::now();
        Procs {
            due: (0..count).map(|i| (i, now)).collect(),
            ..Procs::default()
        }
    }

    /// When the next one is to start.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.iter().map(|(_, t)| *t).min()
    }

    /// The processes to start now.
    pub fn take_due(&mut self, now: Instant) -> Vec<usize> {
        let (ready, later): (Vec<_>, Vec<_>) = self.due.iter().partition(|(_, t)| *t <= now);
        self.due = later;
        ready.into_iter().map(|(i, _)| i).collect()
    }

    /// Process `index` was forked as `pid`.
    pub fn spawned(&mut self, index: usize, pid: i32) {
        self.pids.insert(pid, index);
        self.started.insert(index, Instant::now());
        if let Some(s) = spool_api::spoolers() {
            s.set_pid(index, pid);
            tracing::info!(event = "spooler_spawned", dir = %s.dir_of(index).display(), pid,
                "spawned the uWSGI spooler on dir {} with pid {pid}", s.dir_of(index).display());
        }
    }

    /// Forking process `index` failed: try again in a second.
    pub fn retry(&mut self, index: usize) {
        self.due
            .push((index, Instant::now() + Duration::from_secs(1)));
    }

    /// Whether `pid` was a spooler process; if so it is started again (a
    /// second after its last start at the soonest).
    pub fn exited(&mut self, pid: i32) -> bool {
        let Some(index) = self.pids.remove(&pid) else {
            return false;
        };
        if let Some(s) = spool_api::spoolers() {
            s.set_pid(index, 0);
        }
        tracing::error!(
            event = "spooler_died",
            pid,
            "OOOPS the spooler is no more...trying respawn..."
        );
        let earliest = self
            .started
            .get(&index)
            .map_or_else(Instant::now, |t| *t + Duration::from_secs(1));
        self.due.push((index, earliest.max(Instant::now())));
        true
    }
}

/// In a new spooler process: dies with the prototype (`parent`).
pub fn tie_to_parent(parent: i32) {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number; getppid has no
    // arguments.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0);
        if libc::getppid() != parent {
            libc::_exit(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spooler_that_exits_is_started_again_at_most_once_a_second() {
        let mut p = Procs::default();
        p.spawned(0, 100);
        assert!(!p.exited(99));
        assert!(p.exited(100));
        assert!(!p.exited(100));
        let t = p.next_due().unwrap();
        assert!(t > Instant::now() + Duration::from_millis(500));
        assert!(p.take_due(Instant::now()).is_empty());
        assert_eq!(p.take_due(t), [0]);
        assert_eq!(p.next_due(), None);
    }
}
