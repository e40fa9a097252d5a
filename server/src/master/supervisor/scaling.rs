//! The master side of the cheaper subsystem: once per check interval, build
//! the pool snapshot, apply the RSS limits and the master FIFO's `+`/`-`,
//! ask the algorithm, and carry out its decision (uWSGI
//! `uwsgi_calc_cheaper`, reference §3.2).
//!
//! Spawns go to the lowest-numbered free slots. A cheap picks the idle
//! worker spawned longest ago and takes its channels out of the pool before
//! closing them, so it exits between requests and no request is lost or
//! delayed; with every worker busy, the cheap is retried at the next check.

use std::time::Instant;

use super::Supervisor;
use crate::cheaper::{
    Algo, Backlog, Busyness, Common, Decision, Log, Manual, PoolView, Spare, Spare2, WorkerView,
};
use crate::config::cheaper::{AlgoName, CheaperConfig};

impl Supervisor {
    /// The algorithms' clock: whole check intervals since start, like the
    /// master cycle uWSGI's cheaper runs in. A wall clock would let timer
    /// jitter put a check a few microseconds short of the window, and the
    /// cycle would slip to every other check.
    fn now_us(&self) -> u64 {
        let interval = u64::try_from(self.settings.check_interval.as_micros()).unwrap_or(1_000_000);
        self.ticks.saturating_mul(interval)
    }

    /// Starts the algorithm once the first workers are up (busyness logs
    /// its settings then, as uWSGI's plugin does at startup).
    pub(super) fn start_algo(&mut self) {
        if self.algo.is_none() {
            if let Some(cfg) = self.settings.cheaper.clone() {
                self.algo = Some(self.make_algo(&cfg));
            }
        }
    }

    fn make_algo(&self, cfg: &CheaperConfig) -> Box<dyn Algo> {
        let common = Common {
            min_workers: cfg.min,
            max_workers: self.slots.len(),
            step: cfg.step,
            overload: cfg.overload,
        };
        match cfg.algo {
            AlgoName::Spare => Box::new(Spare::new(common)),
            AlgoName::Spare2 => Box::new(Spare2::new(common, cfg.idle)),
            AlgoName::Backlog => Box::new(Backlog::new(common)),
            AlgoName::Manual => Box::new(Manual),
            AlgoName::Busyness => {
                let mut log = Log::default();
                let algo = Busyness::new(common, cfg.busyness, self.now_us(), &mut log);
                print(&log);
                Box::new(algo)
            }
        }
    }

    /// The workers' total resident memory, in bytes.
    fn total_rss(&self) -> u64 {
        self.slots
            .iter()
            .filter(|s| s.running())
            .map(|s| crate::stats::process_memory(s.pid).1)
            .sum()
    }

    /// One check.
    pub(super) fn on_tick(&mut self) {
        if self.stopping || !self.proto_ready || self.proto.is_none() {
            return;
        }
        let Some(cfg) = self.settings.cheaper.clone() else {
            return;
        };
        self.ticks += 1;
        self.start_algo();
        let samples = self.pool.busy_samples();
        let views: Vec<WorkerView> = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let b = samples.get(i).copied();
                WorkerView {
                    active: !s.cheaped,
                    busy: b.is_some_and(|b| b.busy),
                    busy_us: b.map_or(0, |b| b.busy_us),
                    age_us: match (&s.alive, s.last_spawn) {
                        (Some(_), Some(t)) => {
                            u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX)
                        }
                        _ => 0,
                    },
                }
            })
            .collect();
        let active = views.iter().filter(|v| v.active).count();
        let mut can_spawn = true;
        let mut decision = None;
        if cfg.rss_hard > 0 || cfg.rss_soft > 0 {
            let rss = self.total_rss();
            if cfg.rss_hard > 0 && active > 1 && rss >= cfg.rss_hard {
                tracing::warn!(
                    event = "rss_hard_limit",
                    rss,
                    "cheaper hard rss memory limit exceeded, cheap one of {active} workers"
                );
                decision = Some(Decision::Cheap(1));
            } else if cfg.rss_soft > 0 && rss >= cfg.rss_soft {
                can_spawn = false;
            }
        }
        if decision.is_none() && self.fifo_delta != 0 {
            decision = Some(if self.fifo_delta > 0 {
                self.fifo_delta -= 1;
                Decision::Spawn(1)
            } else {
                self.fifo_delta += 1;
                Decision::Cheap(1)
            });
        }
        let decision = match decision {
            Some(d) => d,
            None => {
                let pool = PoolView {
                    workers: &views,
                    backlog: self.pool.backlog(self.settings.queues.iter().copied()),
                    can_spawn,
                };
                let now = self.now_us();
                let mut log = Log::default();
                let d = self
                    .algo
                    .as_mut()
                    .map_or(Decision::Hold, |a| a.decide(&pool, now, &mut log));
                print(&log);
                d
            }
        };
        match decision {
            Decision::Hold => {}
            Decision::Spawn(n) => self.scale_up(n),
            Decision::Cheap(n) => {
                for _ in 0..n {
                    if !self.cheap_one(&views) {
                        // Every worker busy: try again at the next check.
                        self.fifo_delta -= 1;
                        break;
                    }
                }
            }
        }
    }

    /// Spawns into the `n` lowest free slots.
    fn scale_up(&mut self, n: usize) {
        let free: Vec<usize> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.cheaped && s.pid == 0 && s.pending.is_none())
            .map(|(i, _)| i)
            .take(n)
            .collect();
        for i in free {
            self.slots[i].cheaped = false;
            self.spawn(i);
        }
    }

    /// Stops the idle worker spawned longest ago. False if none is idle (or
    /// only one worker runs).
    fn cheap_one(&mut self, views: &[WorkerView]) -> bool {
        let running = self.slots.iter().filter(|s| s.running()).count();
        if running <= 1 {
            return false;
        }
        let mut candidates: Vec<(Instant, usize)> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(i, s)| {
                s.running() && s.alive.is_some() && !views.get(*i).is_some_and(|v| v.busy)
            })
            .map(|(i, s)| (s.last_spawn.unwrap_or(self.epoch), i))
            .collect();
        candidates.sort();
        for (_, i) in candidates {
            let slot = i as u32 + 1;
            if let Some(channels) = self.pool.take_idle(slot, self.settings.threads) {
                // Closing its channels makes the worker exit; it was idle.
                drop(channels);
                self.slots[i].cheaped = true;
                return true;
            }
        }
        false
    }
}

fn print(log: &Log) {
    for line in &log.lines {
        tracing::info!(event = "cheaper", "{line}");
    }
}
