//! The cheaper subsystem's options, validated as uWSGI validates them
//! (`core/uwsgi.c`, `core/master_utils.c`; reference §3.1): `cheaper` must be
//! lower than `processes`; `cheaper-initial` is clamped into
//! `[cheaper, processes]` with a warning; `cheaper-step` 0 means 1; an unknown
//! algorithm falls back to `spare` with uWSGI's warning; the RSS limits are in
//! bytes and the hard one needs the soft one below it.

use crate::cheaper::BusynessConfig;

/// Which algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlgoName {
    /// uWSGI's default.
    Spare,
    /// From uWSGI 2.1.
    Spare2,
    /// Average busyness.
    Busyness,
    /// Queue length.
    Backlog,
    /// Master FIFO only.
    Manual,
}

impl AlgoName {
    /// Parses a `cheaper-algo` value.
    pub fn parse(s: &str) -> Option<AlgoName> {
        Some(match s.trim() {
            "spare" => AlgoName::Spare,
            "spare2" => AlgoName::Spare2,
            "busyness" => AlgoName::Busyness,
            "backlog" => AlgoName::Backlog,
            "manual" => AlgoName::Manual,
            _ => return None,
        })
    }
}

/// The options as given.
#[derive(Debug, Clone, Default)]
pub struct Raw {
    /// `cheaper`.
    pub cheaper: Option<u64>,
    /// `cheaper-initial`.
    pub initial: Option<u64>,
    /// `cheaper-step`.
    pub step: u64,
    /// `cheaper-overload`.
    pub overload: Option<u64>,
    /// `cheaper-algo`.
    pub algo: Option<String>,
    /// `cheaper-busyness-*`.
    pub busyness: BusynessConfig,
    /// `cheaper-rss-limit-soft`.
    pub rss_soft: u64,
    /// `cheaper-rss-limit-hard`.
    pub rss_hard: u64,
    /// `cheaper-idle`.
    pub idle: Option<u64>,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheaperConfig {
    /// The fewest workers.
    pub min: usize,
    /// Workers started at first.
    pub initial: usize,
    /// Workers spawned per decision.
    pub step: usize,
    /// `cheaper-overload`.
    pub overload: u64,
    /// The algorithm.
    pub algo: AlgoName,
    /// busyness settings (zeros replaced by defaults when it starts).
    pub busyness: BusynessConfig,
    /// Soft RSS limit in bytes (0: none).
    pub rss_soft: u64,
    /// Hard RSS limit in bytes (0: none).
    pub rss_hard: u64,
    /// spare2's idle checks.
    pub idle: u64,
}

/// Validates; `None` when `cheaper` is not set. Warnings are appended.
pub fn validate(
    raw: Raw,
    processes: usize,
    warnings: &mut Vec<String>,
) -> Result<Option<CheaperConfig>, String> {
    let Some(min) = raw.cheaper.filter(|&c| c > 0) else {
        return Ok(None);
    };
    let min = usize::try_from(min).unwrap_or(usize::MAX);
    if min >= processes {
        return Err("invalid cheaper value: must be lower than processes".into());
    }
    let mut initial = raw
        .initial
        .map_or(min, |i| usize::try_from(i).unwrap_or(usize::MAX));
    if initial < min || initial > processes {
        let clamped = initial.clamp(min, processes);
        warnings.push(format!(
            "cheaper-initial {initial} is outside [{min}, {processes}]; using {clamped}"
        ));
        initial = clamped;
    }
    let algo = match raw.algo.as_deref() {
        None => AlgoName::Spare,
        Some(name) => AlgoName::parse(name).unwrap_or_else(|| {
            warnings
                .push("unable to find requested cheaper algorithm, falling back to spare".into());
            AlgoName::Spare
        }),
    };
    if raw.rss_hard > 0 && (raw.rss_soft == 0 || raw.rss_hard <= raw.rss_soft) {
        return Err(
            "cheaper-rss-limit-hard needs cheaper-rss-limit-soft, and must be higher".into(),
        );
    }
    Ok(Some(CheaperConfig {
        min,
        initial,
        step: usize::try_from(raw.step).unwrap_or(1).max(1),
        overload: raw.overload.unwrap_or(3),
        algo,
        busyness: raw.busyness,
        rss_soft: raw.rss_soft,
        rss_hard: raw.rss_hard,
        idle: raw.idle.unwrap_or(10),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(cheaper: u64) -> Raw {
        Raw {
            cheaper: Some(cheaper),
            ..Raw::default()
        }
    }

    #[test]
    fn uwsgi_validation() {
        let mut w = Vec::new();
        assert_eq!(validate(Raw::default(), 4, &mut w), Ok(None));
        assert_eq!(
            validate(raw(4), 4, &mut w),
            Err("invalid cheaper value: must be lower than processes".into())
        );
        let c = validate(raw(2), 16, &mut w).unwrap().unwrap();
        assert_eq!(
            (c.min, c.initial, c.step, c.overload, c.algo),
            (2, 2, 1, 3, AlgoName::Spare)
        );
        assert!(w.is_empty());
        let r = Raw {
            initial: Some(20),
            algo: Some("fastest".into()),
            ..raw(2)
        };
        let c = validate(r, 16, &mut w).unwrap().unwrap();
        assert_eq!(c.initial, 16);
        assert_eq!(c.algo, AlgoName::Spare);
        assert_eq!(w.len(), 2);
        assert!(w[1].contains("falling back to spare"));
        let r = Raw {
            rss_hard: 100,
            ..raw(1)
        };
        assert!(validate(r, 4, &mut w).is_err());
    }
}
