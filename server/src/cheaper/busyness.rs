//! `busyness` (uWSGI `plugins/cheaper_busyness/cheaper_busyness.c`,
//! reference §3.3), line by line: once per `cheaper-overload` seconds it
//! averages each active worker's busy percentage over the window; above
//! `max` it spawns `step` workers (raising the cheap multiplier by `penalty`
//! when that follows a cheap too closely); below `min` for long enough
//! (`overload × multiplier` seconds) it cheaps one; in between, three
//! non-idle cycles reset the cheap timer. A backlog over `backlog-alert`, or
//! non-zero for `backlog-nonzero` seconds, spawns emergency workers at once.
//!
//! The only change from uWSGI is the input: `busy_us` counts running
//! requests too, so a worker stuck in a long request is seen as busy while
//! it is, not when the request ends. uWSGI's "busy but nothing completed:
//! 100 %" rule is kept for the same effect on the rare window edge.

use super::{Algo, Common, Decision, Log, PoolView, SEC};

/// `cheaper-busyness-*` settings, with uWSGI's defaults (applied when 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusynessConfig {
    /// Spawn above this average (%). Default 50.
    pub max: u64,
    /// Idle below this average (%). Default 25.
    pub min: u64,
    /// Idle cycles before a cheap. Default 10.
    pub multiplier: u64,
    /// Added to the multiplier on a too-fast respawn. Default 2.
    pub penalty: u64,
    /// Extra log lines.
    pub verbose: bool,
    /// Backlog that triggers emergency workers. Default 33.
    pub backlog_alert: u64,
    /// Multiplier while emergency workers run. Default 3.
    pub backlog_multiplier: u64,
    /// Emergency workers per alert. Default 1.
    pub backlog_step: u64,
    /// Seconds of non-zero backlog that trigger an emergency worker. Default 60.
    pub backlog_nonzero: u64,
}

impl Default for BusynessConfig {
    fn default() -> Self {
        BusynessConfig {
            max: 50,
            min: 25,
            multiplier: 10,
            penalty: 2,
            verbose: false,
            backlog_alert: 33,
            backlog_multiplier: 3,
            backlog_step: 1,
            backlog_nonzero: 60,
        }
    }
}

impl BusynessConfig {
    /// uWSGI's plugin init: a value of 0 means the default.
    pub fn with_defaults(self) -> BusynessConfig {
        let d = BusynessConfig::default();
        let or = |v: u64, dv: u64| if v == 0 { dv } else { v };
        BusynessConfig {
            max: or(self.max, d.max),
            min: or(self.min, d.min),
            multiplier: or(self.multiplier, d.multiplier),
            penalty: or(self.penalty, d.penalty),
            verbose: self.verbose,
            backlog_alert: or(self.backlog_alert, d.backlog_alert),
            backlog_multiplier: or(self.backlog_multiplier, d.backlog_multiplier),
            backlog_step: or(self.backlog_step, d.backlog_step),
            backlog_nonzero: or(self.backlog_nonzero, d.backlog_nonzero),
        }
    }
}

/// The busyness algorithm and its state.
#[derive(Debug)]
pub struct Busyness {
    common: Common,
    cfg: BusynessConfig,
    last_values: Vec<u64>,
    was_busy: Vec<u64>,
    tcheck: u64,
    next_cheap: u64,
    /// When the last cheap happened (`None`: never, which uWSGI expresses
    /// as 0 on a clock that starts in 1970).
    last_cheaped: Option<u64>,
    cheap_multi: u64,
    min_multi: u64,
    last_action: u8,
    tolerance_counter: u64,
    emergency_workers: u64,
    backlog_is_nonzero: bool,
    backlog_nonzero_since: u64,
}

const SPAWN: u8 = 1;
const CHEAP: u8 = 2;

impl Busyness {
    /// Initialises at `now_us`, logging uWSGI's three settings lines.
    pub fn new(common: Common, cfg: BusynessConfig, now_us: u64, log: &mut Log) -> Busyness {
        let cfg = cfg.with_defaults();
        log.line(format!(
            "[busyness] settings: min={}%, max={}%, overload={}, multiplier={}, respawn penalty={}",
            cfg.min, cfg.max, common.overload, cfg.multiplier, cfg.penalty
        ));
        log.line(format!(
            "[busyness] backlog alert is set to {} request(s), step is {}",
            cfg.backlog_alert, cfg.backlog_step
        ));
        log.line(format!(
            "[busyness] backlog non-zero alert is set to {} second(s)",
            cfg.backlog_nonzero
        ));
        Busyness {
            common,
            cfg,
            last_values: vec![0; common.max_workers],
            was_busy: vec![0; common.max_workers],
            tcheck: now_us,
            next_cheap: now_us + common.overload * cfg.multiplier * SEC,
            last_cheaped: None,
            cheap_multi: cfg.multiplier,
            min_multi: cfg.multiplier,
            last_action: 0,
            tolerance_counter: 0,
            emergency_workers: 0,
            backlog_is_nonzero: false,
            backlog_nonzero_since: 0,
        }
    }

    fn decrease_multi(&mut self, log: &mut Log) {
        if self.cheap_multi > self.min_multi {
            self.cheap_multi -= 1;
            log.line(format!(
                "[busyness] decreasing cheaper multiplier to {}",
                self.cheap_multi
            ));
        }
    }

    fn set_next_cheap_time(&mut self, now: u64, log: &mut Log) {
        let multi = if self.emergency_workers > 0 {
            self.cfg.backlog_multiplier
        } else {
            self.cheap_multi
        };
        self.next_cheap = now + self.common.overload * multi * SEC;
        if self.emergency_workers > 0 && self.cfg.verbose {
            log.line(format!(
                "[busyness] {} emergency worker(s) running, using {} seconds cheaper timer",
                self.emergency_workers,
                self.common.overload * multi
            ));
        }
    }

    fn spawn_emergency(&mut self, pool: &PoolView<'_>, now: u64, log: &mut Log) -> Decision {
        self.cheap_multi = self.min_multi;
        self.last_action = SPAWN;
        let n = (self.cfg.backlog_step as usize).min(pool.free());
        self.set_next_cheap_time(now, log);
        if n > 0 {
            self.emergency_workers += n as u64;
            log.line(format!(
                "[busyness] {} requests in listen queue, spawning {} emergency worker(s) ({})!",
                pool.backlog, n, self.emergency_workers
            ));
            Decision::Spawn(n)
        } else {
            log.line(format!(
                "[busyness] {} requests in listen queue but we are already started maximum number of workers ({})",
                pool.backlog, self.common.max_workers
            ));
            Decision::Hold
        }
    }

    fn backlog_alert(&self, pool: &PoolView<'_>, active: usize) -> bool {
        pool.can_spawn && pool.backlog > self.cfg.backlog_alert && active < self.common.max_workers
    }

    /// The end of a cycle: average the window and decide.
    fn cycle(&mut self, pool: &PoolView<'_>, active: usize, now: u64, log: &mut Log) -> Decision {
        let overload = self.common.overload;
        let window = overload * SEC;
        self.tcheck = now;
        let mut total = 0u64;
        // A worker younger than the window has no full window of busy time;
        // counting it would dilute the average just when workers are being
        // added (uWSGI's workers cannot tell; rwsgi's master can).
        let seasoned = |w: &super::WorkerView| w.age_us >= window;
        let any_seasoned = pool.workers.iter().any(|w| w.active && seasoned(w));
        let mut counted = 0u64;
        for (i, w) in pool.workers.iter().enumerate() {
            if !w.active {
                continue;
            }
            if any_seasoned && !seasoned(w) {
                if let Some(b) = self.was_busy.get_mut(i) {
                    *b = 0;
                }
                continue;
            }
            counted += 1;
            let d = w
                .busy_us
                .saturating_sub(self.last_values.get(i).copied().unwrap_or(0));
            let mut pct = (d * 100).checked_div(window).unwrap_or(100);
            let was_busy = self.was_busy.get(i).copied().unwrap_or(0);
            if pct > 100 {
                pct = 100;
            } else if d == 0 && pct == 0 && was_busy > 0 {
                pct = 100;
                if self.cfg.verbose {
                    log.line(format!(
                        "[busyness] worker {} was busy {} time(s) in last cycle but no request was completed during this time, marking as 100% busy",
                        i + 1,
                        was_busy
                    ));
                }
            }
            if let Some(b) = self.was_busy.get_mut(i) {
                *b = 0;
            }
            total += pct;
            if self.cfg.verbose && active > 1 {
                log.line(format!(
                    "[busyness] worker nr {} {}s average busyness is at {}%",
                    i + 1,
                    overload,
                    pct
                ));
            }
        }
        for (i, w) in pool.workers.iter().enumerate() {
            if let Some(v) = self.last_values.get_mut(i) {
                *v = w.busy_us;
            }
        }
        let avg = total.checked_div(counted).unwrap_or(0);
        if self.cfg.verbose {
            log.line(format!(
                "[busyness] {overload}s average busyness of {active} worker(s) is at {avg}%"
            ));
        }
        if avg > self.cfg.max {
            self.tolerance_counter = 0;
            let n = if pool.can_spawn {
                self.common.step().min(pool.free())
            } else {
                0
            };
            if n == 0 {
                log.line(format!(
                    "[busyness] {overload}s average busyness is at {avg}% but we already started maximum number of workers available with current limits ({active})"
                ));
                return Decision::Hold;
            }
            self.last_action = SPAWN;
            let cycles_since_cheap = match self.last_cheaped {
                Some(t) if overload > 0 => now.saturating_sub(t) / overload / SEC,
                _ => u64::MAX,
            };
            if cycles_since_cheap <= self.cheap_multi {
                self.cheap_multi += self.cfg.penalty;
                log.line(format!(
                    "[busyness] worker(s) respawned to fast, increasing cheaper multiplier to {} (+{})",
                    self.cheap_multi, self.cfg.penalty
                ));
            } else {
                self.decrease_multi(log);
            }
            self.set_next_cheap_time(now, log);
            log.line(format!(
                "[busyness] {overload}s average busyness is at {avg}%, will spawn {n} new worker(s)"
            ));
            return Decision::Spawn(n);
        }
        if self.backlog_alert(pool, active) {
            return self.spawn_emergency(pool, now, log);
        }
        if avg < self.cfg.min {
            if active == 1 {
                return Decision::Hold;
            }
            self.tolerance_counter = 0;
            if active > self.common.min_workers {
                if now >= self.next_cheap {
                    if self.last_action == CHEAP {
                        self.decrease_multi(log);
                    }
                    self.set_next_cheap_time(now, log);
                    log.line(format!(
                        "[busyness] {overload}s average busyness is at {avg}%, cheap one of {active} running workers"
                    ));
                    self.last_cheaped = Some(now);
                    self.last_action = CHEAP;
                    self.emergency_workers = self.emergency_workers.saturating_sub(1);
                    return Decision::Cheap(1);
                } else if self.cfg.verbose {
                    log.line(format!(
                        "[busyness] need to wait {} more second(s) to cheap worker",
                        (self.next_cheap - now) / SEC
                    ));
                }
            }
            return Decision::Hold;
        }
        if active == 1 {
            return Decision::Hold;
        }
        self.emergency_workers = self.emergency_workers.saturating_sub(1);
        self.tolerance_counter += 1;
        if self.tolerance_counter >= 3 {
            self.set_next_cheap_time(now, log);
            if self.cfg.verbose {
                log.line(format!(
                    "[busyness] {overload}s average busyness is at {avg}%, {} non-idle cycle(s), resetting cheaper timer",
                    self.tolerance_counter
                ));
            }
        } else {
            self.next_cheap += window;
            if self.cfg.verbose {
                log.line(format!(
                    "[busyness] {overload}s average busyness is at {avg}%, {} non-idle cycle(s), adjusting cheaper timer",
                    self.tolerance_counter
                ));
            }
        }
        Decision::Hold
    }
}

impl Algo for Busyness {
    fn name(&self) -> &'static str {
        "busyness"
    }

    fn decide(&mut self, pool: &PoolView<'_>, now: u64, log: &mut Log) -> Decision {
        let mut active = 0;
        for (i, w) in pool.workers.iter().enumerate() {
            let Some(b) = self.was_busy.get_mut(i) else {
                continue;
            };
            if w.active {
                active += 1;
                *b += u64::from(w.busy);
            } else {
                *b = 0;
            }
        }
        if now.saturating_sub(self.tcheck) >= self.common.overload * SEC {
            return self.cycle(pool, active, now, log);
        }
        if self.backlog_alert(pool, active) {
            return self.spawn_emergency(pool, now, log);
        }
        if pool.backlog > 0 {
            if self.backlog_is_nonzero {
                if pool.can_spawn
                    && now.saturating_sub(self.backlog_nonzero_since) / SEC
                        >= self.cfg.backlog_nonzero
                {
                    log.line(format!(
                        "[busyness] backlog was non-zero for {} second(s), spawning new worker(s)",
                        now.saturating_sub(self.backlog_nonzero_since) / SEC
                    ));
                    self.backlog_nonzero_since = now;
                    return self.spawn_emergency(pool, now, log);
                }
            } else {
                self.backlog_is_nonzero = true;
                self.backlog_nonzero_since = now;
                if self.cfg.verbose {
                    log.line(format!(
                        "[busyness] backlog is starting to fill ({})",
                        pool.backlog
                    ));
                }
            }
        } else if self.backlog_is_nonzero {
            if self.cfg.verbose {
                log.line("[busyness] backlog is now empty".to_owned());
            }
            self.backlog_is_nonzero = false;
        }
        Decision::Hold
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cheaper::WorkerView;
    use crate::cheaper::testing::*;

    const OVERLOAD: u64 = 2;

    fn algo(log: &mut Log) -> Busyness {
        Busyness::new(
            Common {
                min_workers: 1,
                max_workers: 4,
                step: 1,
                overload: OVERLOAD,
            },
            BusynessConfig {
                multiplier: 2,
                verbose: true,
                ..BusynessConfig::default()
            },
            0,
            log,
        )
    }

    /// Workers with busy totals (µs), the first `active` running.
    fn workers(active: usize, busy_us: &[u64]) -> Vec<WorkerView> {
        let mut w = pool(4, active);
        for (x, &b) in w.iter_mut().zip(busy_us) {
            x.busy_us = b;
        }
        w
    }

    /// Runs one full cycle ending at `t` seconds with the given per-worker
    /// busy seconds in that window (cumulative totals are kept in `acc`).
    fn cycle(
        a: &mut Busyness,
        t: u64,
        active: usize,
        busy_s: &[f64],
        acc: &mut [u64; 4],
        log: &mut Log,
    ) -> Decision {
        for (x, b) in acc.iter_mut().zip(busy_s) {
            *x += (b * SEC as f64) as u64;
        }
        let w = workers(active, acc);
        a.decide(&view(&w, 0), t * SEC, log)
    }

    #[test]
    fn init_logs_settings_and_defaults_replace_zero() {
        let mut log = Log::default();
        let _ = algo(&mut log);
        assert_eq!(
            log.lines[0],
            "[busyness] settings: min=25%, max=50%, overload=2, multiplier=2, respawn penalty=2"
        );
        assert_eq!(
            log.lines[1],
            "[busyness] backlog alert is set to 33 request(s), step is 1"
        );
        assert_eq!(
            log.lines[2],
            "[busyness] backlog non-zero alert is set to 60 second(s)"
        );
        let c = BusynessConfig {
            min: 0,
            backlog_alert: 0,
            ..BusynessConfig::default()
        }
        .with_defaults();
        assert_eq!((c.min, c.backlog_alert), (25, 33));
    }

    #[test]
    fn spawns_above_max_and_stops_at_the_maximum() {
        let mut log = Log::default();
        let mut a = algo(&mut log);
        let mut acc = [0u64; 4];
        // Between cycles nothing happens.
        assert_eq!(
            a.decide(&view(&workers(1, &acc), 0), SEC, &mut log),
            Decision::Hold
        );
        // 1.5 s busy of a 2 s window = 75 %.
        assert_eq!(
            cycle(&mut a, 2, 1, &[1.5], &mut acc, &mut log),
            Decision::Spawn(1)
        );
        assert!(
            log.lines
                .contains(&"[busyness] 2s average busyness of 1 worker(s) is at 75%".to_owned())
        );
        assert!(log.lines.contains(
            &"[busyness] 2s average busyness is at 75%, will spawn 1 new worker(s)".to_owned()
        ));
        // All four running and busy: the maximum is reached.
        log.lines.clear();
        assert_eq!(
            cycle(&mut a, 4, 4, &[2.0, 2.0, 2.0, 2.0], &mut acc, &mut log),
            Decision::Hold
        );
        assert!(log.lines.iter().any(|l| l
            == "[busyness] 2s average busyness is at 100% but we already started maximum number of workers available with current limits (4)"));
    }

    #[test]
    fn the_first_cheap_waits_overload_times_multiplier() {
        let mut log = Log::default();
        let mut a = algo(&mut log);
        let mut acc = [0u64; 4];
        // Idle from the start, two workers: next_cheap = 0 + 2*2 = 4 s.
        assert_eq!(
            cycle(&mut a, 2, 2, &[0.0, 0.0], &mut acc, &mut log),
            Decision::Hold
        );
        assert!(
            log.lines
                .contains(&"[busyness] need to wait 2 more second(s) to cheap worker".to_owned())
        );
        assert_eq!(
            cycle(&mut a, 4, 2, &[0.0, 0.0], &mut acc, &mut log),
            Decision::Cheap(1)
        );
        assert!(log.lines.contains(
            &"[busyness] 2s average busyness is at 0%, cheap one of 2 running workers".to_owned()
        ));
        // Never below `cheaper` (1) and never the last worker.
        assert_eq!(
            cycle(&mut a, 100, 1, &[0.0], &mut acc, &mut log),
            Decision::Hold
        );
    }

    #[test]
    fn respawn_soon_after_a_cheap_raises_the_multiplier_then_it_decreases() {
        let mut log = Log::default();
        let mut a = algo(&mut log);
        let mut acc = [0u64; 4];
        cycle(&mut a, 2, 2, &[0.0, 0.0], &mut acc, &mut log);
        assert_eq!(
            cycle(&mut a, 4, 2, &[0.0, 0.0], &mut acc, &mut log),
            Decision::Cheap(1)
        );
        log.lines.clear();
        // Busy right after: respawned too fast, multiplier 2 -> 4.
        assert_eq!(
            cycle(&mut a, 6, 1, &[2.0], &mut acc, &mut log),
            Decision::Spawn(1)
        );
        assert_eq!(
            log.lines[1],
            "[busyness] worker(s) respawned to fast, increasing cheaper multiplier to 4 (+2)"
        );
        assert_eq!(a.cheap_multi, 4);
        // A spawn long after the last cheap decreases it again.
        log.lines.clear();
        assert_eq!(
            cycle(&mut a, 100, 2, &[2.0, 2.0], &mut acc, &mut log),
            Decision::Spawn(1)
        );
        assert!(
            log.lines
                .contains(&"[busyness] decreasing cheaper multiplier to 3".to_owned())
        );
    }

    #[test]
    fn three_non_idle_cycles_reset_the_cheap_timer() {
        let mut log = Log::default();
        let mut a = algo(&mut log);
        let mut acc = [0u64; 4];
        // 30 % busy: between min and max.
        for (t, expect_next) in [(2u64, 4 + 2), (4, 6 + 2), (6, 6 + 4)] {
            assert_eq!(
                cycle(&mut a, t, 2, &[0.6, 0.6], &mut acc, &mut log),
                Decision::Hold
            );
            assert_eq!(a.next_cheap, expect_next * SEC, "at {t}");
        }
        assert!(log.lines.contains(&"[busyness] 2s average busyness is at 30%, 1 non-idle cycle(s), adjusting cheaper timer".to_owned()));
        assert!(log.lines.contains(&"[busyness] 2s average busyness is at 30%, 3 non-idle cycle(s), resetting cheaper timer".to_owned()));
    }

    #[test]
    fn workers_younger_than_the_window_do_not_dilute_the_average() {
        let mut log = Log::default();
        let mut a = algo(&mut log);
        // Two seasoned workers fully busy, two just spawned (idle so far).
        let mut w = workers(4, &[2 * SEC, 2 * SEC, 0, 0]);
        w[0].age_us = 10 * SEC;
        w[1].age_us = 10 * SEC;
        w[2].age_us = SEC / 10;
        assert_eq!(a.decide(&view(&w, 0), 2 * SEC, &mut log), Decision::Hold);
        assert!(
            log.lines
                .iter()
                .any(|l| l.contains("is at 100% but we already started maximum")),
            "{:?}",
            log.lines
        );
        // Counted with the new ones it would have been 50 %: no spawn.
    }

    #[test]
    fn busy_without_completing_counts_as_100() {
        let mut log = Log::default();
        let mut a = algo(&mut log);
        let mut w = workers(1, &[0]);
        w[0].busy = true;
        a.decide(&view(&w, 0), SEC, &mut log);
        assert_eq!(
            a.decide(&view(&w, 0), 2 * SEC, &mut log),
            Decision::Spawn(1)
        );
        assert!(
            log.lines.iter().any(
                |l| l.contains("was busy 2 time(s) in last cycle but no request was completed")
            )
        );
    }

    #[test]
    fn backlog_alert_spawns_emergency_workers_between_cycles() {
        let mut log = Log::default();
        let mut a = algo(&mut log);
        let w = workers(1, &[0]);
        assert_eq!(a.decide(&view(&w, 40), SEC, &mut log), Decision::Spawn(1));
        assert!(
            log.lines.contains(
                &"[busyness] 40 requests in listen queue, spawning 1 emergency worker(s) (1)!"
                    .to_owned()
            )
        );
        assert_eq!(a.emergency_workers, 1);
        // uWSGI sets the timer before counting the new emergency worker, so
        // the first alert still uses the cheap multiplier (2)...
        assert_eq!(a.next_cheap, SEC + 2 * 2 * SEC);
        // ...and the next one, with an emergency worker running, uses
        // backlog-multiplier (3).
        let two = workers(2, &[0, 0]);
        assert_eq!(
            a.decide(&view(&two, 40), SEC + SEC / 2, &mut log),
            Decision::Spawn(1)
        );
        assert_eq!(a.next_cheap, SEC + SEC / 2 + 2 * 3 * SEC);
        assert_eq!(a.emergency_workers, 2);
        // No free slot: logged, nothing spawned.
        let full = workers(4, &[0, 0, 0, 0]);
        let mut v = view(&full, 40);
        v.can_spawn = true;
        // active == max: the alert does not fire at all.
        assert_eq!(a.decide(&v, SEC + 1, &mut log), Decision::Hold);
    }

    #[test]
    fn backlog_nonzero_for_long_enough_spawns() {
        let mut log = Log::default();
        let mut a = Busyness::new(
            Common {
                min_workers: 1,
                max_workers: 4,
                step: 1,
                overload: 100,
            },
            BusynessConfig {
                backlog_nonzero: 5,
                verbose: true,
                ..BusynessConfig::default()
            },
            0,
            &mut log,
        );
        let w = workers(1, &[0]);
        assert_eq!(a.decide(&view(&w, 2), SEC, &mut log), Decision::Hold);
        assert!(
            log.lines
                .contains(&"[busyness] backlog is starting to fill (2)".to_owned())
        );
        assert_eq!(a.decide(&view(&w, 2), 5 * SEC, &mut log), Decision::Hold);
        assert_eq!(
            a.decide(&view(&w, 2), 6 * SEC, &mut log),
            Decision::Spawn(1)
        );
        assert!(log.lines.contains(
            &"[busyness] backlog was non-zero for 5 second(s), spawning new worker(s)".to_owned()
        ));
        assert_eq!(a.decide(&view(&w, 0), 7 * SEC, &mut log), Decision::Hold);
        assert!(
            log.lines
                .contains(&"[busyness] backlog is now empty".to_owned())
        );
    }

    #[test]
    fn no_spawn_above_the_soft_rss_limit() {
        let mut log = Log::default();
        let mut a = algo(&mut log);
        let w = workers(1, &[2 * SEC]);
        let mut v = view(&w, 0);
        v.can_spawn = false;
        assert_eq!(a.decide(&v, 2 * SEC, &mut log), Decision::Hold);
    }
}
