//! Commands the master runs on a schedule, as uWSGI's `cron`, `unique-cron`
//! and `cron2` describe them (`core/cron.c` `uwsgi_cron_add`,
//! `uwsgi_opt_add_cron2`; `core/master_utils.c`
//! `uwsgi_cron_task_needs_execution`):
//!
//! - `cron = MINUTE HOUR DAY MONTH WEEKDAY COMMAND`: each field a number,
//!   `-1` for any, `-N` for every N (`*/N`); weekday 0 or 7 is Sunday; when
//!   both day and weekday are given, either matches (as crontab);
//! - `unique-cron`: the same, not started again while it still runs;
//! - `cron2 = [minute=,hour=,day=,month=,week=,unique=1,harakiri=S] COMMAND`:
//!   the fields by name (unset ones are `-1`), `harakiri` the seconds after
//!   which the command is killed (0: never), else `cron-harakiri`.

/// One scheduled command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSpec {
    /// Minute, hour, day of month, month, weekday (uWSGI's numbers).
    pub when: [i32; 5],
    /// The command (through `/bin/sh -c` where there is one).
    pub command: String,
    /// Not started while the previous run is still going.
    pub unique: bool,
    /// Seconds it may run: `None` takes `cron-harakiri`, `Some(0)` never
    /// kills.
    pub harakiri: Option<u64>,
}

impl CronSpec {
    /// `cron` / `unique-cron`.
    pub fn classic(v: &str, unique: bool) -> Result<CronSpec, String> {
        let mut rest = v.trim_start();
        let mut when = [0i32; 5];
        for field in &mut when {
            let (word, tail) = rest
                .split_once(char::is_whitespace)
                .ok_or("invalid cron syntax")?;
            *field = word.parse().map_err(|_| "invalid cron syntax")?;
            rest = tail.trim_start();
        }
        if rest.trim().is_empty() {
            return Err("invalid cron syntax: no command".into());
        }
        Ok(CronSpec {
            when,
            command: rest.trim().to_owned(),
            unique,
            harakiri: None,
        })
    }

    /// `cron2`.
    pub fn keyed(v: &str) -> Result<CronSpec, String> {
        let v = v.trim();
        let (keys, command) = match v.split_once(' ') {
            Some((k, c)) if k.contains('=') => (k, c.trim()),
            _ if v.split(' ').next().is_some_and(|w| w.contains('=')) => {
                return Err(format!("unable to parse cron definition: {v}"));
            }
            _ => ("", v),
        };
        if command.is_empty() {
            return Err(format!("invalid command in cron definition: {v}"));
        }
        let mut spec = CronSpec {
            when: [-1; 5],
            command: command.to_owned(),
            unique: false,
            harakiri: None,
        };
        for item in keys.split(',').filter(|i| !i.is_empty()) {
            let (k, val) = item
                .split_once('=')
                .ok_or_else(|| format!("unable to parse cron definition: {v}"))?;
            let n = || -> Result<i64, String> {
                val.trim()
                    .parse()
                    .map_err(|_| format!("cron2 {k}: {val} is not a number"))
            };
            let field = |i: usize, spec: &mut CronSpec| -> Result<(), String> {
                spec.when[i] = i32::try_from(n()?).map_err(|_| format!("cron2 {k}: {val}"))?;
                Ok(())
            };
            match k {
                "minute" => field(0, &mut spec)?,
                "hour" => field(1, &mut spec)?,
                "day" => field(2, &mut spec)?,
                "month" => field(3, &mut spec)?,
                "week" => field(4, &mut spec)?,
                "unique" => spec.unique = n()? != 0,
                "harakiri" => spec.harakiri = Some(u64::try_from(n()?).unwrap_or(0)),
                "legion" => return Err("cron2 legion: legions are not supported".into()),
                other => return Err(format!("cron2: unknown key \"{other}\"")),
            }
        }
        Ok(spec)
    }

    /// Whether it is due at this broken-down time (minute, hour, day of
    /// month, month 1-12, weekday 0-6), uWSGI's rules.
    pub fn matches(&self, now: [i32; 5]) -> bool {
        schedule_matches(self.when, now)
    }
}

/// Whether a schedule (minute, hour, day of month, month, weekday; -1 any,
/// -N every N) is due at this broken-down time, uWSGI's rules
/// (`uwsgi_cron_task_needs_execution`); also used by `uwsgi.add_cron`.
pub fn schedule_matches(when: [i32; 5], now: [i32; 5]) -> bool {
    let [minute, hour, day, month, week] = when;
    let week = if week == 7 { 0 } else { week };
    // A negative field is an interval: -1 any, -N every N (saturating: a
    // field may come from an app, and i32::MIN has no absolute value).
    let resolve = |field: i32, actual: i32| {
        if field < 0 && actual % field.saturating_abs() == 0 {
            actual
        } else {
            field
        }
    };
    let [n_min, n_hour, n_day, n_month, n_week] = now;
    let same = |field, actual| resolve(field, actual) == actual;
    let base = same(minute, n_min) && same(hour, n_hour) && same(month, n_month);
    if day >= 0 && week >= 0 {
        base && (same(day, n_day) || same(week, n_week))
    } else {
        base && same(day, n_day) && same(week, n_week)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_syntaxes() {
        let c = CronSpec::classic("0 3 -1 -1 -1 ./manage.py clearsessions", false).unwrap();
        assert_eq!(c.when, [0, 3, -1, -1, -1]);
        assert_eq!(c.command, "./manage.py clearsessions");
        assert!(CronSpec::classic("0 3 -1 -1 ./x", false).is_err());
        assert!(CronSpec::classic("0 3 -1 -1 -1", false).is_err());
        let k =
            CronSpec::keyed("minute=17,hour=3,unique=1,harakiri=900 ./manage.py prune").unwrap();
        assert_eq!(k.when, [17, 3, -1, -1, -1]);
        assert!(k.unique);
        assert_eq!(k.harakiri, Some(900));
        let every = CronSpec::keyed("./tick").unwrap();
        assert_eq!((every.when, every.command.as_str()), ([-1; 5], "./tick"));
        assert!(CronSpec::keyed("minute=5").is_err());
        assert!(
            CronSpec::keyed("colour=red ./x")
                .unwrap_err()
                .contains("colour")
        );
        assert!(CronSpec::keyed("legion=a ./x").is_err());
    }

    #[test]
    fn schedules_match_as_uwsgi_reads_them() {
        let at = |s: &str| CronSpec::classic(&format!("{s} x"), false).unwrap();
        // minute hour day month weekday; Friday 2026-12-04 15:35.
        let now = [35, 15, 4, 12, 5];
        assert!(at("-1 -1 -1 -1 -1").matches(now));
        assert!(at("35 15 -1 -1 -1").matches(now));
        assert!(!at("36 15 -1 -1 -1").matches(now));
        assert!(at("-5 -1 -1 -1 -1").matches(now));
        assert!(!at("-10 -1 -1 -1 -1").matches(now));
        // Day and weekday both given: either one.
        assert!(at("35 15 1 -1 5").matches(now));
        assert!(at("35 15 4 -1 0").matches(now));
        assert!(!at("35 15 1 -1 0").matches(now));
        // 7 is Sunday.
        assert!(at("35 15 -1 -1 7").matches([35, 15, 6, 12, 0]));
        assert!(!at("35 15 -1 12 -1").matches([35, 15, 4, 11, 3]));
        // The most negative field does not overflow.
        assert!(!schedule_matches([i32::MIN, -1, -1, -1, -1], now));
    }
}
