//! `manual`: never decides anything; workers change only through the master
//! FIFO's `+` and `-` (uWSGI `uwsgi_cheaper_algo_manual`).

use super::{Algo, Decision, Log, PoolView};

/// The manual algorithm.
#[derive(Debug, Default)]
pub struct Manual;

impl Algo for Manual {
    fn name(&self) -> &'static str {
        "manual"
    }

    fn decide(&mut self, _pool: &PoolView<'_>, _now_us: u64, _log: &mut Log) -> Decision {
        Decision::Hold
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cheaper::testing::*;

    #[test]
    fn always_holds() {
        let w = pool(4, 1);
        assert_eq!(
            Manual.decide(&view(&w, 100), 0, &mut Log::default()),
            Decision::Hold
        );
    }
}
