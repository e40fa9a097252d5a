//! `spare2`, from uWSGI 2.1 (`uwsgi_cheaper_algo_spare2`): keep `cheaper`
//! idle workers. Fewer idle: spawn `min(step, cheaper - idle, free)` at
//! once. More idle for `cheaper-idle` consecutive checks: cheap one.

use super::{Algo, Common, Decision, Log, PoolView};

/// The spare2 algorithm.
#[derive(Debug)]
pub struct Spare2 {
    common: Common,
    idle_checks: u64,
    cheaper_idle: u64,
}

impl Spare2 {
    /// With the shared settings and `cheaper-idle` (uWSGI's default is 10).
    pub fn new(common: Common, cheaper_idle: u64) -> Spare2 {
        Spare2 {
            common,
            idle_checks: 0,
            cheaper_idle: cheaper_idle.max(1),
        }
    }
}

impl Algo for Spare2 {
    fn name(&self) -> &'static str {
        "spare2"
    }

    fn decide(&mut self, pool: &PoolView<'_>, _now_us: u64, _log: &mut Log) -> Decision {
        let idle = pool.idle();
        let want = self.common.min_workers;
        if idle < want {
            self.idle_checks = 0;
            if !pool.can_spawn {
                return Decision::Hold;
            }
            let n = self.common.step().min(want - idle).min(pool.free());
            return if n > 0 {
                Decision::Spawn(n)
            } else {
                Decision::Hold
            };
        }
        if idle > want {
            self.idle_checks += 1;
            if self.idle_checks >= self.cheaper_idle {
                self.idle_checks = 0;
                return Decision::Cheap(1);
            }
        } else {
            self.idle_checks = 0;
        }
        Decision::Hold
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cheaper::testing::*;

    fn algo() -> Spare2 {
        Spare2::new(
            Common {
                min_workers: 2,
                max_workers: 8,
                step: 4,
                overload: 3,
            },
            3,
        )
    }

    #[test]
    fn spawns_up_to_the_spare_count_at_once() {
        let mut a = algo();
        let mut w = pool(8, 3);
        for x in w.iter_mut().take(3) {
            x.busy = true;
        }
        assert_eq!(
            a.decide(&view(&w, 0), 0, &mut Log::default()),
            Decision::Spawn(2)
        );
        w[0].busy = false;
        assert_eq!(
            a.decide(&view(&w, 0), 0, &mut Log::default()),
            Decision::Spawn(1)
        );
    }

    #[test]
    fn cheaps_after_cheaper_idle_checks() {
        let mut a = algo();
        let w = pool(8, 5);
        let got: Vec<_> = (0..4)
            .map(|_| a.decide(&view(&w, 0), 0, &mut Log::default()))
            .collect();
        assert_eq!(
            got,
            [
                Decision::Hold,
                Decision::Hold,
                Decision::Cheap(1),
                Decision::Hold
            ]
        );
        // Exactly `cheaper` idle resets the count.
        let w2 = pool(8, 2);
        assert_eq!(
            a.decide(&view(&w2, 0), 0, &mut Log::default()),
            Decision::Hold
        );
        assert_eq!(a.idle_checks, 0);
    }
}
