//! Logging setup, done once, here only. Text mode prints each message as the
//! line itself, so uWSGI's log lines come out verbatim and existing log
//! alerts keep matching; JSON mode prints one object per line with every
//! field (tests wait on `event` fields instead of sleeping).
//!
//! `log-date` prefixes the server's lines (not the request lines, as in
//! uWSGI) with the time in UTC, as `ctime(3)` prints it or in a strftime
//! format, then ` - `. `req-logger = file:PATH` sends the request lines
//! (target `reqlog`) to that file instead of stderr.
//!
//! `RWSGI_LOG` sets the level (`error`, `warn`, `info`, `debug`, `trace` or
//! `off`); the default, and the value used when it cannot be read, is
//! `info`. Request lines have the target `reqlog`. (A level, not per-module
//! directives: the directive parser pulls a regex engine into both the
//! binary and the Python host, and the container is sized in megabytes.)

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use tracing::{Event, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogStyle;

/// Prints only the message (after the `log-date` prefix, if any).
struct MessageOnly {
    date: Option<DateFormat>,
}

/// How `log-date` prints the time, prepared once.
enum DateFormat {
    /// `ctime(3)`'s form.
    Ctime,
    /// A strftime(3) format (empty when the option held a NUL byte).
    Strftime(std::ffi::CString),
}

impl DateFormat {
    /// From the option's value: `""` for ctime's form, else a format.
    fn new(fmt: &str) -> DateFormat {
        if fmt.is_empty() {
            DateFormat::Ctime
        } else {
            DateFormat::Strftime(std::ffi::CString::new(fmt).unwrap_or_default())
        }
    }
}

impl<S, N> FormatEvent<S, N> for MessageOnly
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        struct Msg<'w, 'x>(&'w mut Writer<'x>, fmt::Result, bool);
        impl tracing::field::Visit for Msg<'_, '_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
                if field.name() == "message" {
                    self.1 = write!(self.0, "{value:?}");
                } else if field.name() == "cause" {
                    self.2 = true;
                    self.1 = self.1.and_then(|_| write!(self.0, " ({value:?})"));
                }
            }
        }
        if let Some(fmt) = &self.date {
            if event.metadata().target() != "reqlog" {
                write!(writer, "{} - ", date_prefix(fmt))?;
            }
        }
        let mut v = Msg(&mut writer, Ok(()), false);
        event.record(&mut v);
        v.1?;
        writeln!(writer)
    }
}

/// The `log-date` prefix for now: ctime's 24 characters, or the format
/// through strftime(3) (UTC; at most 64 bytes, as in uWSGI).
fn date_prefix(fmt: &DateFormat) -> String {
    let now = std::time::SystemTime::now();
    let cfmt = match fmt {
        DateFormat::Ctime => return crate::reqlog::ctime(now),
        DateFormat::Strftime(f) => f,
    };
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let t = libc::time_t::try_from(secs).unwrap_or(0);
    let mut buf = [0u8; 64];
    // SAFETY: gmtime_r fills the `tm` we own from a valid time_t; strftime
    // writes at most buf.len() bytes into buf and returns how many it wrote
    // (0 when the result does not fit); cfmt is a NUL-terminated string.
    let n = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::gmtime_r(&t, &mut tm).is_null() {
            return String::new();
        }
        libc::strftime(buf.as_mut_ptr().cast(), buf.len(), cfmt.as_ptr(), &tm)
    };
    String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into_owned()
}

/// stderr, or the request log file for request lines.
#[derive(Clone)]
struct Writers {
    requests: Option<Arc<File>>,
}

/// One of the two destinations.
enum Dest {
    Stderr(io::Stderr),
    File(Arc<File>),
}

impl io::Write for Dest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Dest::Stderr(e) => io::Write::write(e, buf),
            Dest::File(f) => io::Write::write(&mut &**f, buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Dest::Stderr(e) => io::Write::flush(e),
            Dest::File(f) => io::Write::flush(&mut &**f),
        }
    }
}

impl<'a> MakeWriter<'a> for Writers {
    type Writer = Dest;

    fn make_writer(&'a self) -> Dest {
        Dest::Stderr(io::stderr())
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Dest {
        match &self.requests {
            Some(f) if meta.target() == "reqlog" => Dest::File(f.clone()),
            _ => self.make_writer(),
        }
    }
}

/// Installs the global subscriber. Safe to call once per process.
pub fn init(style: LogStyle) {
    let _ = init_with(style, None, None);
}

/// Installs the global subscriber with the `log-date` prefix and the
/// request log file (`req-logger`); fails only when that file cannot be
/// opened (logging then goes to stderr).
pub fn init_with(style: LogStyle, date: Option<&str>, requests: Option<&Path>) -> io::Result<()> {
    let level = std::env::var("RWSGI_LOG")
        .ok()
        .and_then(|v| v.trim().parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let opened = requests
        .map(|p| {
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o640)
                .open(p)
        })
        .transpose();
    let (file, result) = match opened {
        Ok(f) => (f, Ok(())),
        Err(e) => (None, Err(e)),
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(Writers {
            requests: file.map(Arc::new),
        });
    let date = date.map(DateFormat::new);
    let _ = match style {
        LogStyle::Text => builder.event_format(MessageOnly { date }).try_init(),
        LogStyle::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    result
}
