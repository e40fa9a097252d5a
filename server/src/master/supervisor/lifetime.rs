//! `max-worker-lifetime` (reference §5.4, uWSGI `master_checks.c`): once a
//! second, a worker that has run longer than the lifetime (plus
//! `max-worker-lifetime-delta` per worker id above 1) is recycled with
//! uWSGI's line. uWSGI sends it SIGWINCH, which lets it finish its request;
//! here it is taken out of the pool once idle (never while busy) and its
//! channels are closed, so it exits between requests and the slot is
//! respawned.

use std::time::Duration;

use super::Supervisor;

impl Supervisor {
    /// Recycles the workers past their lifetime that are idle now.
    pub(super) fn check_lifetimes(&mut self) {
        let (lifetime, delta) = self.settings.max_worker_lifetime;
        if lifetime == 0 || self.stopping {
            return;
        }
        for i in 0..self.slots.len() {
            let slot = i as u32 + 1;
            let limit = Duration::from_secs(
                lifetime.saturating_add(u64::from(slot - 1).saturating_mul(delta)),
            );
            let s = &self.slots[i];
            let Some(age) = s.last_spawn.map(|t| t.elapsed()) else {
                continue;
            };
            if s.cheaped || s.pid <= 0 || s.alive.is_none() || age < limit {
                continue;
            }
            if self.replacing == Some(i) {
                continue;
            }
            if let Some(channels) = self.pool.take_idle(slot, self.settings.threads) {
                tracing::info!(
                    event = "lifetime_reached",
                    worker = slot,
                    seconds = age.as_secs(),
                    "worker {slot} lifetime reached, it was running for {} second(s)",
                    age.as_secs()
                );
                // Closing its channels makes the idle worker exit; its exit
                // respawns the slot.
                drop(channels);
            }
        }
    }
}
