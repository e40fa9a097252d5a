//! The cheaper subsystem: deciding, once per check interval, whether to
//! spawn or cheap (stop) workers, with uWSGI 2.0's algorithms
//! (`core/master_utils.c`, `plugins/cheaper_busyness`; reference §3).
//!
//! Each algorithm is a pure function of its own state, a snapshot of the
//! pool ([`PoolView`]) and the time (microseconds from any fixed origin, so
//! tests inject the clock), returning a [`Decision`]. Log lines go into a
//! [`Log`] the caller prints, in uWSGI's exact words. The master applies the
//! decision: spawns go to the lowest free slots; a cheap stops the idle
//! worker that was spawned longest ago, between requests.
//!
//! Where rwsgi sees more than uWSGI: `busy_us` is the exact time a worker
//! was busy, including a request still running (uWSGI counts only completed
//! requests), and `backlog` is the master's own request queue for every
//! socket type plus the kernel accept queue on TCP (uWSGI sees TCP only).

mod backlog;
mod busyness;
mod manual;
mod spare;
mod spare2;

pub use backlog::Backlog;
pub use busyness::{Busyness, BusynessConfig};
pub use manual::Manual;
pub use spare::Spare;
pub use spare2::Spare2;

/// One worker slot as the algorithms see it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerView {
    /// Running and not cheaped.
    pub active: bool,
    /// Serving a request now.
    pub busy: bool,
    /// Total time it has been busy, in microseconds (uWSGI's `running_time`).
    pub busy_us: u64,
    /// How long its process has been serving, in microseconds (0 while it
    /// starts).
    pub age_us: u64,
}

impl WorkerView {
    /// A slot free to spawn into (cheaped, no process).
    pub fn free(&self) -> bool {
        !self.active
    }
}

/// The pool at one check.
#[derive(Debug, Clone, Copy)]
pub struct PoolView<'a> {
    /// Every configured slot, in slot order.
    pub workers: &'a [WorkerView],
    /// Requests waiting for a worker.
    pub backlog: u64,
    /// Whether spawning is allowed (false above the soft RSS limit).
    pub can_spawn: bool,
}

impl PoolView<'_> {
    /// Workers running.
    pub fn active(&self) -> usize {
        self.workers.iter().filter(|w| w.active).count()
    }

    /// Slots free to spawn into.
    pub fn free(&self) -> usize {
        self.workers.iter().filter(|w| w.free()).count()
    }

    /// Running workers that are idle.
    pub fn idle(&self) -> usize {
        self.workers.iter().filter(|w| w.active && !w.busy).count()
    }
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing.
    Hold,
    /// Start this many workers.
    Spawn(usize),
    /// Stop this many idle workers.
    Cheap(usize),
}

/// Log lines an algorithm produced during one decision.
#[derive(Debug, Default)]
pub struct Log {
    /// The lines, without newlines.
    pub lines: Vec<String>,
}

impl Log {
    fn line(&mut self, s: String) {
        self.lines.push(s);
    }
}

/// The settings every algorithm shares (uWSGI's `cheaper*` options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Common {
    /// `cheaper`: the fewest workers.
    pub min_workers: usize,
    /// `processes`: the most workers.
    pub max_workers: usize,
    /// `cheaper-step` (0 means 1).
    pub step: usize,
    /// `cheaper-overload`.
    pub overload: u64,
}

impl Common {
    /// The step, with uWSGI's "0 means 1".
    pub fn step(&self) -> usize {
        self.step.max(1)
    }
}

/// An algorithm.
pub trait Algo: Send + std::fmt::Debug {
    /// Its name (`cheaper-algo`).
    fn name(&self) -> &'static str;
    /// One decision.
    fn decide(&mut self, pool: &PoolView<'_>, now_us: u64, log: &mut Log) -> Decision;
}

/// Microseconds in a second.
pub const SEC: u64 = 1_000_000;

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A pool of `n` slots with the first `active` running.
    pub fn pool(n: usize, active: usize) -> Vec<WorkerView> {
        (0..n)
            .map(|i| WorkerView {
                active: i < active,
                ..WorkerView::default()
            })
            .collect()
    }

    /// A view over `workers`.
    pub fn view(workers: &[WorkerView], backlog: u64) -> PoolView<'_> {
        PoolView {
            workers,
            backlog,
            can_spawn: true,
        }
    }
}
