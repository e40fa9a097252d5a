//! Recycling: a worker decides after each request whether it has served
//! enough (`max-requests`, `max-requests-delta`) or grown too big
//! (`reload-on-rss`, `reload-on-as`), as uWSGI's `uwsgi_close_request` does, and neither
//! applies before the worker is `min-worker-lifetime` old (reference §5.4).
//!
//! A worker that retires says so in the END frame of its last request
//! ([`crate::ipc::END_RETIRE`]), so the master never gives it another one:
//! the master closes the worker's other channels, each thread finishes the
//! request it is serving, the process exits with
//! [`super::EXIT_STOPPED`], and the supervisor respawns the slot.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use crate::config::Recycle;

/// One worker's recycling state, shared by its threads.
#[derive(Debug, Clone)]
pub struct Recycler {
    /// The request limit for this worker id (0 = none).
    limit: u64,
    rss_limit: u64,
    as_limit: u64,
    min_lifetime: std::time::Duration,
    spawned: Instant,
    served: Arc<AtomicU64>,
    retiring: Arc<AtomicBool>,
}

impl Recycler {
    /// The recycler of worker `slot` (1-based).
    pub fn new(cfg: &Recycle, slot: u32) -> Recycler {
        let limit = if cfg.max_requests == 0 {
            0
        } else {
            cfg.max_requests.saturating_add(
                u64::from(slot.saturating_sub(1)).saturating_mul(cfg.max_requests_delta),
            )
        };
        Recycler {
            limit,
            rss_limit: cfg.reload_on_rss,
            as_limit: cfg.reload_on_as,
            min_lifetime: cfg.min_lifetime,
            spawned: Instant::now(),
            served: Arc::new(AtomicU64::new(0)),
            retiring: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether a thread of this worker decided to retire (`worker-accept`:
    /// the other threads stop taking connections).
    pub fn retiring(&self) -> bool {
        self.retiring.load(Ordering::Relaxed)
    }

    /// Counts a finished request; true when this worker retires after it.
    /// The first thread to decide logs uWSGI's line.
    pub fn after_request(&self) -> bool {
        let served = self.served.fetch_add(1, Ordering::Relaxed) + 1;
        if self.retiring.load(Ordering::Relaxed) {
            return true;
        }
        if self.spawned.elapsed() < self.min_lifetime {
            return false;
        }
        let due = (self.limit > 0 && served >= self.limit) || {
            let memory_limits = self.rss_limit > 0 || self.as_limit > 0;
            let (vsz, rss) = if memory_limits { own_memory() } else { (0, 0) };
            (self.rss_limit > 0 && rss >= self.rss_limit)
                || (self.as_limit > 0 && vsz >= self.as_limit)
        };
        if due && !self.retiring.swap(true, Ordering::Relaxed) {
            tracing::info!(
                event = "recycled",
                pid = std::process::id(),
                requests = served,
                "...The work of process {} is done. Seeya!",
                std::process::id()
            );
        }
        due
    }
}

/// This process's address space and resident set size in bytes (0 when
/// they cannot be read), measured as the stats and the cheaper RSS limits
/// measure them.
fn own_memory() -> (u64, u64) {
    let pid = i32::try_from(std::process::id()).unwrap_or(0);
    crate::stats::process_memory(pid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg(max: u64, delta: u64, min_s: u64) -> Recycle {
        Recycle {
            max_requests: max,
            max_requests_delta: delta,
            reload_on_rss: 0,
            reload_on_as: 0,
            min_lifetime: Duration::from_secs(min_s),
        }
    }

    #[test]
    fn max_requests_plus_delta_per_worker_id() {
        let r = Recycler::new(&cfg(3, 2, 0), 2);
        assert_eq!(r.limit, 5);
        let results: Vec<bool> = (0..6).map(|_| r.after_request()).collect();
        assert_eq!(results, [false, false, false, false, true, true]);
        assert_eq!(Recycler::new(&cfg(0, 2, 0), 3).limit, 0);
    }

    #[test]
    fn nothing_recycles_before_the_minimum_lifetime() {
        let r = Recycler::new(&cfg(1, 0, 3600), 1);
        assert!(!r.after_request());
        assert!(!r.after_request());
    }

    #[test]
    fn an_rss_limit_below_the_process_size_recycles() {
        let mut c = cfg(0, 0, 0);
        c.reload_on_rss = 1;
        assert!(Recycler::new(&c, 1).after_request());
        c.reload_on_rss = u64::MAX;
        assert!(!Recycler::new(&c, 1).after_request());
    }

    #[test]
    fn an_address_space_limit_below_the_process_size_recycles() {
        let mut c = cfg(0, 0, 0);
        c.reload_on_as = 1;
        assert!(Recycler::new(&c, 1).after_request());
        c.reload_on_as = u64::MAX;
        assert!(!Recycler::new(&c, 1).after_request());
    }
}
