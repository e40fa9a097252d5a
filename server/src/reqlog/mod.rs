//! The request log line, in uWSGI's default format (`core/logging.c`
//! `uwsgi_logit_simple`), on its own tracing target `reqlog`:
//!
//! ```text
//! [pid: 15723|app: 0|req: 1/1] 127.0.0.1 () {32 vars in 352 bytes} [Fri Dec  4 15:35:46 2026] GET / => generated 6 bytes in 0 msecs (HTTP/1.1 200) 2 headers in 64 bytes (1 switches on core 0)
//! ```
//!
//! Times are UTC: the container has no time zone database. `log-format`
//! templates are in [`template`].

pub mod template;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use template::Template;

/// Which requests get a line, and what address it shows (uWSGI's
/// `disable-logging` with `log-4xx`, `log-5xx`, `log-slow`, `log-zero`,
/// `log-big`, and `log-x-forwarded-for`; `core/logging.c` `log_request`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rules {
    /// Log every request (logging not disabled).
    pub all: bool,
    /// Log 4xx answers even when logging is disabled.
    pub log_4xx: bool,
    /// Log 5xx answers even when logging is disabled.
    pub log_5xx: bool,
    /// Log requests that took at least this many ms (0 = off).
    pub slow_ms: u64,
    /// Show `X-Forwarded-For` as the address when the request has it.
    pub x_forwarded_for: bool,
    /// Log responses without a body even when logging is disabled.
    pub zero: bool,
    /// Log responses of at least this many body bytes (0 = off).
    pub big: u64,
    /// The default line gives the time in microseconds (`log-micros`).
    pub micros: bool,
    /// The default line starts with the worker's memory (`memory-report`).
    pub memory: bool,
}

impl Rules {
    /// Whether a request answered `status` with `body_bytes` after
    /// `elapsed` gets a line.
    pub fn wanted(&self, status: u16, elapsed: Duration, body_bytes: u64) -> bool {
        self.all
            || (self.zero && body_bytes == 0)
            || (self.log_4xx && (400..500).contains(&status))
            || (self.log_5xx && (500..600).contains(&status))
            || (self.slow_ms > 0 && elapsed.as_millis() >= u128::from(self.slow_ms))
            || (self.big > 0 && body_bytes >= self.big)
    }

    /// The address to log: `REMOTE_ADDR`, or `X-Forwarded-For` when asked
    /// for and present.
    pub fn address<'a>(&self, remote_addr: &'a [u8], forwarded: Option<&'a [u8]>) -> &'a [u8] {
        match forwarded {
            Some(f) if self.x_forwarded_for && !f.is_empty() => f,
            _ => remote_addr,
        }
    }
}

/// Who served a request, for its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The worker's pid (the master's for a static file).
    pub pid: i32,
    /// The worker id (0: the master).
    pub wid: u32,
    /// The worker thread.
    pub core: u16,
    /// Requests served by that worker.
    pub worker_requests: u64,
    /// Requests served by the instance.
    pub total_requests: u64,
    /// The app asked for this line (`uwsgi.log_this_request()`).
    pub log_this: bool,
    /// The app's log variables (`uwsgi.set_logvar`), a vars block.
    pub logvars: bytes::Bytes,
}

impl Served {
    /// A static file the master served.
    pub fn by_master() -> Served {
        Served {
            pid: i32::try_from(std::process::id()).unwrap_or(0),
            wid: 0,
            core: 0,
            worker_requests: 0,
            total_requests: 0,
            log_this: false,
            logvars: bytes::Bytes::new(),
        }
    }
}

/// Looks up a request variable (`HTTP_HOST`, ...).
pub type Lookup<'a> = &'a dyn Fn(&[u8]) -> Option<&'a [u8]>;

/// Everything one line needs.
pub struct Entry<'a> {
    /// The worker's pid.
    pub pid: i32,
    /// The worker's id (slot).
    pub wid: u32,
    /// The worker thread that served it.
    pub core: u16,
    /// The uwsgi packet's modifier1 (0 over HTTP).
    pub modifier1: u8,
    /// Requests served by this worker.
    pub worker_requests: u64,
    /// Requests served by the instance.
    pub total_requests: u64,
    /// `REMOTE_ADDR`.
    pub remote_addr: &'a [u8],
    /// `REMOTE_USER`.
    pub remote_user: &'a [u8],
    /// Number of vars (keys and values, as uWSGI counts).
    pub vars: usize,
    /// Size of the vars block.
    pub vars_bytes: usize,
    /// When the request started.
    pub start: Option<SystemTime>,
    /// `REQUEST_METHOD`.
    pub method: &'a [u8],
    /// `REQUEST_URI`.
    pub uri: &'a [u8],
    /// Body bytes sent.
    pub body_bytes: u64,
    /// How long it took.
    pub elapsed: Duration,
    /// `SERVER_PROTOCOL`.
    pub protocol: &'a [u8],
    /// Status code.
    pub status: u16,
    /// Header count.
    pub headers: usize,
    /// Status line + headers + CRLF bytes.
    pub header_bytes: usize,
    /// The request's variables, for templates.
    pub lookup: Option<Lookup<'a>>,
    /// The app's log variables (`uwsgi.set_logvar`), a vars block.
    pub logvars: &'a [u8],
}

impl std::fmt::Debug for Entry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("pid", &self.pid)
            .field("wid", &self.wid)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl<'a> Entry<'a> {
    /// A request variable.
    pub fn var(&self, key: &[u8]) -> Option<&'a [u8]> {
        self.lookup.and_then(|f| f(key))
    }

    /// A log variable the app set (the worker wrote the block, one value
    /// per name).
    pub fn logvar(&self, key: &[u8]) -> Option<&'a [u8]> {
        if self.logvars.is_empty() {
            return None;
        }
        crate::ipc::own_vars(self.logvars).ok()?.get(key)
    }
}

/// `memory-report`'s prefix (`core/logging.c`): the serving process's
/// address space and resident size after the request.
fn memory_prefix(pid: i32) -> String {
    let (vsz, rss) = crate::stats::process_memory(pid);
    format!(
        "{{address space usage: {vsz} bytes/{}MB}} {{rss usage: {rss} bytes/{}MB}} ",
        vsz / 1024 / 1024,
        rss / 1024 / 1024
    )
}

/// Logs the line: the `log-format` template when there is one, else
/// uWSGI's default line (its time in microseconds with `log-micros`, the
/// worker's memory first with `memory-report`).
pub fn log(e: &Entry<'_>, template: Option<&Template>, rules: &Rules) {
    if let Some(t) = template {
        tracing::info!(target: "reqlog", status = e.status, "{}", t.render(e));
        return;
    }
    let micros = rules.micros;
    let memory = if rules.memory {
        memory_prefix(e.pid)
    } else {
        String::new()
    };
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    tracing::info!(
        target: "reqlog",
        status = e.status,
        "{memory}[pid: {}|app: 0|req: {}/{}] {} ({}) {{{} vars in {} bytes}} [{}] {} {} => generated {} bytes in {} {} ({} {}) {} headers in {} bytes (1 switches on core {})",
        e.pid,
        e.worker_requests,
        e.total_requests,
        s(e.remote_addr),
        s(e.remote_user),
        e.vars,
        e.vars_bytes,
        ctime(e.start.unwrap_or_else(SystemTime::now)),
        s(e.method),
        s(e.uri),
        e.body_bytes,
        if micros {
            e.elapsed.as_micros()
        } else {
            e.elapsed.as_millis()
        },
        if micros { "micros" } else { "msecs" },
        s(e.protocol),
        e.status,
        e.headers,
        e.header_bytes,
        e.core,
    );
}

/// Month abbreviations, as `ctime(3)` and `strftime`'s `%b` print them.
pub(crate) const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A UTC time in parts, for the date formats of the logs and of HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Utc {
    /// `Mon`..`Sun`.
    pub weekday: &'static str,
    /// `Jan`..`Dec`.
    pub month: &'static str,
    pub year: i64,
    pub day: i64,
    pub hour: u64,
    pub minute: u64,
    pub second: u64,
}

impl Utc {
    /// `secs` since the epoch.
    pub(crate) fn from_secs(secs: u64) -> Utc {
        const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
        let days = (secs / 86400) as i64;
        let rem = secs % 86400;
        let (y, m, d) = civil_from_days(days);
        Utc {
            weekday: WD[days.rem_euclid(7) as usize],
            month: MONTHS[(m - 1) as usize],
            year: y,
            day: d,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
        }
    }
}

/// `ctime(3)`'s 24 characters, in UTC: `Fri Dec  4 15:35:46 2026`.
pub fn ctime(t: SystemTime) -> String {
    let u = Utc::from_secs(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()));
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        u.weekday, u.month, u.day, u.hour, u.minute, u.second, u.year
    )
}

/// Days since 1970-01-01 to (year, month, day), H. Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_logging_still_logs_what_the_rules_ask_for() {
        let ms = Duration::from_millis;
        let off = Rules::default();
        assert!(!off.wanted(200, ms(1), 0));
        let zero = Rules {
            zero: true,
            ..Rules::default()
        };
        assert!(zero.wanted(304, ms(1), 0));
        assert!(!zero.wanted(200, ms(1), 1));
        let big = Rules {
            big: 100,
            ..Rules::default()
        };
        assert!(big.wanted(200, ms(1), 100));
        assert!(!big.wanted(200, ms(1), 99));
        let slow = Rules {
            slow_ms: 50,
            log_5xx: true,
            ..Rules::default()
        };
        assert!(slow.wanted(200, ms(50), 10));
        assert!(!slow.wanted(200, ms(49), 10));
        assert!(slow.wanted(502, ms(1), 10));
    }

    #[test]
    fn ctime_matches_libc_format() {
        // 2026-12-04 15:35:46 UTC, the uWSGI lab line's time.
        let t = UNIX_EPOCH + Duration::from_secs(1_796_398_546);
        assert_eq!(ctime(t), "Fri Dec  4 15:35:46 2026");
        assert_eq!(ctime(UNIX_EPOCH), "Thu Jan  1 00:00:00 1970");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(ctime(leap), "Tue Feb 29 00:00:00 2000");
    }
}
