//! `backlog`: spawn `step` workers while more than `cheaper-overload`
//! requests wait; cheap one while fewer wait (uWSGI
//! `uwsgi_cheaper_algo_backlog`). uWSGI reads the kernel queue of TCP
//! sockets only; here the backlog is the master's queue, for every socket.

use super::{Algo, Common, Decision, Log, PoolView};

/// The backlog algorithm.
#[derive(Debug)]
pub struct Backlog {
    common: Common,
}

impl Backlog {
    /// With the shared settings.
    pub fn new(common: Common) -> Backlog {
        Backlog { common }
    }
}

impl Algo for Backlog {
    fn name(&self) -> &'static str {
        "backlog"
    }

    fn decide(&mut self, pool: &PoolView<'_>, _now_us: u64, _log: &mut Log) -> Decision {
        let overload = self.common.overload;
        if pool.can_spawn && pool.backlog > overload {
            let n = self.common.step().min(pool.free());
            if n > 0 {
                return Decision::Spawn(n);
            }
        } else if pool.backlog < overload && pool.active() > self.common.min_workers {
            return Decision::Cheap(1);
        }
        Decision::Hold
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cheaper::testing::*;

    fn algo() -> Backlog {
        Backlog::new(Common {
            min_workers: 1,
            max_workers: 4,
            step: 2,
            overload: 3,
        })
    }

    #[test]
    fn table() {
        let cases = [
            // (active, backlog, can_spawn, expected)
            (1, 4, true, Decision::Spawn(2)),
            (3, 10, true, Decision::Spawn(1)),
            (4, 10, true, Decision::Hold),
            (2, 10, false, Decision::Hold),
            (2, 3, true, Decision::Hold),
            (2, 2, true, Decision::Cheap(1)),
            (1, 0, true, Decision::Hold),
        ];
        for (active, backlog, can_spawn, expected) in cases {
            let w = pool(4, active);
            let mut v = view(&w, backlog);
            v.can_spawn = can_spawn;
            assert_eq!(
                algo().decide(&v, 0, &mut Log::default()),
                expected,
                "{active} {backlog} {can_spawn}"
            );
        }
    }
}
