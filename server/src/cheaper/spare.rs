//! `spare`, uWSGI's default (`uwsgi_cheaper_algo_spare`, 2.0.30): count
//! checks in which every worker was busy; past `cheaper-overload` of them,
//! spawn `step` workers. When nothing is overloaded and more than one worker
//! is idle, cheap one every `cheaper-overload` checks. 2.0 compares with a
//! strict `>` (2.1 uses `>=`).

use super::{Algo, Common, Decision, Log, PoolView};

/// The spare algorithm.
#[derive(Debug)]
pub struct Spare {
    common: Common,
    overload_count: u64,
    idle_count: u64,
}

impl Spare {
    /// With the shared settings.
    pub fn new(common: Common) -> Spare {
        Spare {
            common,
            overload_count: 0,
            idle_count: 0,
        }
    }
}

impl Algo for Spare {
    fn name(&self) -> &'static str {
        "spare"
    }

    fn decide(&mut self, pool: &PoolView<'_>, _now_us: u64, _log: &mut Log) -> Decision {
        let active = pool.active();
        let idle = pool.idle();
        if active > 0 && idle == 0 {
            self.overload_count += 1;
            self.idle_count = 0;
        } else if self.overload_count > 0 {
            self.overload_count -= 1;
        }
        if pool.can_spawn && self.overload_count > self.common.overload {
            self.overload_count = 0;
            let n = self.common.step().min(pool.free());
            return if n > 0 {
                Decision::Spawn(n)
            } else {
                Decision::Hold
            };
        }
        if self.overload_count == 0 && idle != 1 {
            self.idle_count += 1;
            if active > self.common.min_workers
                && self.common.overload > 0
                && self.idle_count % self.common.overload == 0
            {
                return Decision::Cheap(1);
            }
        }
        Decision::Hold
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cheaper::WorkerView;
    use crate::cheaper::testing::*;

    fn busy(n: usize, active: usize, busy: usize) -> Vec<WorkerView> {
        let mut w = pool(n, active);
        for x in w.iter_mut().take(busy) {
            x.busy = true;
        }
        w
    }

    #[test]
    fn spawns_after_overload_checks_all_busy() {
        let mut a = Spare::new(Common {
            min_workers: 1,
            max_workers: 4,
            step: 1,
            overload: 2,
        });
        let w = busy(4, 2, 2);
        let mut log = Log::default();
        // overload_count 1, 2: not yet (strict >); 3: spawn.
        assert_eq!(a.decide(&view(&w, 0), 0, &mut log), Decision::Hold);
        assert_eq!(a.decide(&view(&w, 0), 0, &mut log), Decision::Hold);
        assert_eq!(a.decide(&view(&w, 0), 0, &mut log), Decision::Spawn(1));
        assert_eq!(a.overload_count, 0);
    }

    #[test]
    fn keeps_one_spare_and_cheaps_every_overload_checks() {
        let mut a = Spare::new(Common {
            min_workers: 1,
            max_workers: 4,
            step: 1,
            overload: 3,
        });
        let mut log = Log::default();
        // Exactly one idle worker: stable.
        let w = busy(4, 3, 2);
        for _ in 0..10 {
            assert_eq!(a.decide(&view(&w, 0), 0, &mut log), Decision::Hold);
        }
        // Three idle: cheap one on every third check.
        let w = busy(4, 3, 0);
        let got: Vec<_> = (0..6)
            .map(|_| a.decide(&view(&w, 0), 0, &mut log))
            .collect();
        assert_eq!(
            got,
            [
                Decision::Hold,
                Decision::Hold,
                Decision::Cheap(1),
                Decision::Hold,
                Decision::Hold,
                Decision::Cheap(1)
            ]
        );
        // Never below `cheaper`.
        let w = busy(4, 1, 0);
        for _ in 0..6 {
            assert_eq!(a.decide(&view(&w, 0), 0, &mut log), Decision::Hold);
        }
    }

    #[test]
    fn no_spawn_without_permission_or_free_slots() {
        let mut a = Spare::new(Common {
            min_workers: 1,
            max_workers: 2,
            step: 1,
            overload: 0,
        });
        let w = busy(2, 2, 2);
        assert_eq!(
            a.decide(&view(&w, 0), 0, &mut Log::default()),
            Decision::Hold
        );
        let w = busy(2, 1, 1);
        let mut v = view(&w, 0);
        v.can_spawn = false;
        assert_eq!(a.decide(&v, 0, &mut Log::default()), Decision::Hold);
        v.can_spawn = true;
        assert_eq!(a.decide(&v, 0, &mut Log::default()), Decision::Spawn(1));
    }
}
