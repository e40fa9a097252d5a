//! Logging setup, done once, here only. Text mode prints each message as the
//! line itself, so uWSGI's log lines come out verbatim and existing log
//! alerts keep matching; JSON mode prints one object per line with every
//! field (tests wait on `event` fields instead of sleeping).
//!
//! `RWSGI_LOG` sets the level (`error`, `warn`, `info`, `debug`, `trace` or
//! `off`); the default, and the value used when it cannot be read, is
//! `info`. Request lines have the target `reqlog`. (A level, not per-module
//! directives: the directive parser pulls a regex engine into both the
//! binary and the Python host, and the container is sized in megabytes.)

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogStyle;

/// Prints only the message.
struct MessageOnly;

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
        let mut v = Msg(&mut writer, Ok(()), false);
        event.record(&mut v);
        v.1?;
        writeln!(writer)
    }
}

/// Installs the global subscriber. Safe to call once per process.
pub fn init(style: LogStyle) {
    let level = std::env::var("RWSGI_LOG")
        .ok()
        .and_then(|v| v.trim().parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr);
    let _ = match style {
        LogStyle::Text => builder.event_format(MessageOnly).try_init(),
        LogStyle::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}
