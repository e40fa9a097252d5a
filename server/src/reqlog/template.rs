//! Request-log templates: uWSGI's `log-format` (`core/logging.c`
//! `uwsgi_build_log_format`, `uwsgi_logit_lf`; reference §5.5).
//!
//! A template is text with `%(name)` tokens. The names are uWSGI's: request
//! fields (`uri`, `method`, `user`, `addr`, `host`, `proto`, `uagent`,
//! `referer`), computed values (`status`, `rsize`, `hsize`, `size`, `cl`,
//! `micros`, `msecs`, `secs`, `tmsecs`, `tmicros`, `time`, `ltime`, `ftime`,
//! `ctime`, `epoch`, `pid`, `wid`, `switches`, `vars`, `core`, `pktsize`,
//! `modifier1`, `modifier2`, `headers`, `vsz`, `rss`, `vszM`, `rssM`,
//! `werr`, `rerr`, `ioerr`), `var.NAME` for any request variable and
//! `metric.NAME`. As in uWSGI, an empty value prints `-`, and any other name
//! is a per-request log variable the app set with `uwsgi.set_logvar`
//! (`-` when it set none).
//!
//! Where rwsgi has nothing to count, the value is uWSGI's own without the
//! feature: `vsz`/`rss` 0 (uWSGI fills them only with `memory-report`),
//! `werr`/`rerr`/`ioerr` 0, `metric.*` 0, `switches` 1. Times are UTC, so
//! `ltime` (and `ftime`, which is `ltime` without `log-date`) end in
//! `+0000`. A `%(` without its `)` is text, and so is `%()`.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Entry, Utc, ctime};

/// A compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Chunk>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Chunk {
    Text(String),
    /// A field or function name.
    Name(String),
    /// `var.NAME`.
    Var(Vec<u8>),
    /// `metric.NAME`.
    Metric,
}

impl Template {
    /// Compiles `format`.
    pub fn parse(format: &str) -> Template {
        let mut chunks = Vec::new();
        let mut text = String::new();
        let mut rest = format;
        while let Some(at) = rest.find("%(") {
            let after = &rest[at + 2..];
            match after.find(')') {
                Some(end) if end > 0 => {
                    text.push_str(&rest[..at]);
                    if !text.is_empty() {
                        chunks.push(Chunk::Text(std::mem::take(&mut text)));
                    }
                    let name = &after[..end];
                    chunks.push(if let Some(v) = name.strip_prefix("var.") {
                        Chunk::Var(v.as_bytes().to_vec())
                    } else if name.starts_with("metric.") {
                        Chunk::Metric
                    } else {
                        Chunk::Name(name.to_owned())
                    });
                    rest = &after[end + 1..];
                }
                _ => {
                    text.push_str(&rest[..at + 2]);
                    rest = after;
                }
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            chunks.push(Chunk::Text(text));
        }
        Template(chunks)
    }

    /// The line for one request (without the newline).
    pub fn render(&self, e: &Entry<'_>) -> String {
        let mut out = String::with_capacity(128);
        for c in &self.0 {
            let at = out.len();
            match c {
                Chunk::Text(t) => {
                    out.push_str(t);
                    continue;
                }
                Chunk::Var(name) => out.push_str(&lossy(e.var(name).unwrap_or_default())),
                Chunk::Metric => out.push('0'),
                Chunk::Name(name) => value(&mut out, name, e),
            }
            if out.len() == at {
                out.push('-');
            }
        }
        out
    }
}

fn lossy(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// Appends the value of `name` (nothing when it has none).
fn value(out: &mut String, name: &str, e: &Entry<'_>) {
    let start = e.start.unwrap_or(UNIX_EPOCH);
    let since_epoch = start.duration_since(UNIX_EPOCH).unwrap_or_default();
    let field = |k: &[u8]| lossy(e.var(k).unwrap_or_default()).into_owned();
    let _ = match name {
        "uri" => write!(out, "{}", lossy(e.uri)),
        "method" => write!(out, "{}", lossy(e.method)),
        "user" => write!(out, "{}", lossy(e.remote_user)),
        "addr" => write!(out, "{}", lossy(e.remote_addr)),
        "host" => write!(out, "{}", field(b"HTTP_HOST")),
        "proto" => write!(out, "{}", lossy(e.protocol)),
        "uagent" => write!(out, "{}", field(b"HTTP_USER_AGENT")),
        "referer" => write!(out, "{}", field(b"HTTP_REFERER")),
        "status" => write!(out, "{}", e.status),
        "rsize" => write!(out, "{}", e.body_bytes),
        "hsize" => write!(out, "{}", e.header_bytes),
        "size" => write!(
            out,
            "{}",
            e.body_bytes.saturating_add(e.header_bytes as u64)
        ),
        "cl" => write!(
            out,
            "{}",
            rwsgi_proto::content_length(e.var(b"CONTENT_LENGTH").unwrap_or_default()).unwrap_or(0)
        ),
        "micros" => write!(out, "{}", e.elapsed.as_micros()),
        "msecs" => write!(out, "{}", e.elapsed.as_millis()),
        "secs" => write!(out, "{:.6}", e.elapsed.as_secs_f64()),
        "tmsecs" => write!(out, "{}", since_epoch.as_millis()),
        "tmicros" => write!(out, "{}", since_epoch.as_micros()),
        "time" => write!(out, "{}", since_epoch.as_secs()),
        "ltime" | "ftime" => write!(out, "{}", ltime(start)),
        "ctime" => write!(out, "{}", ctime(start)),
        "epoch" => write!(
            out,
            "{}",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
        ),
        "pid" => write!(out, "{}", e.pid),
        "wid" => write!(out, "{}", e.wid),
        "switches" => write!(out, "1"),
        "vars" => write!(out, "{}", e.vars),
        "core" => write!(out, "{}", e.core),
        "pktsize" => write!(out, "{}", e.vars_bytes),
        "modifier1" => write!(out, "{}", e.modifier1),
        "modifier2" | "vsz" | "rss" | "vszM" | "rssM" | "werr" | "rerr" | "ioerr" => {
            write!(out, "0")
        }
        "headers" => write!(out, "{}", e.headers),
        // A per-request log variable (`uwsgi.set_logvar`).
        other => write!(
            out,
            "{}",
            lossy(e.logvar(other.as_bytes()).unwrap_or_default())
        ),
    };
}

/// `%d/%b/%Y:%H:%M:%S %z` in UTC: `04/Dec/2026:15:35:46 +0000`.
fn ltime(t: SystemTime) -> String {
    let u = Utc::from_secs(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()));
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        u.day, u.month, u.year, u.hour, u.minute, u.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry<'a>(lookup: &'a dyn Fn(&[u8]) -> Option<&'a [u8]>) -> Entry<'a> {
        Entry {
            pid: 42,
            wid: 3,
            core: 1,
            modifier1: 0,
            worker_requests: 7,
            total_requests: 9,
            remote_addr: b"10.0.0.1",
            remote_user: b"",
            vars: 28,
            vars_bytes: 352,
            start: Some(UNIX_EPOCH + Duration::from_micros(1_796_398_546_123_456)),
            method: b"GET",
            uri: b"/a?b=1",
            body_bytes: 13,
            elapsed: Duration::from_micros(2_345),
            protocol: b"HTTP/1.1",
            status: 200,
            headers: 2,
            header_bytes: 64,
            lookup: Some(lookup),
            logvars: b"",
        }
    }

    #[test]
    fn a_common_log_format_line() {
        let vars = |k: &[u8]| match k {
            b"HTTP_USER_AGENT" => Some(&b"curl/8"[..]),
            b"HTTP_HOST" => Some(&b"example.org"[..]),
            b"CONTENT_LENGTH" => Some(&b"5"[..]),
            _ => None,
        };
        let e = entry(&vars);
        let t = Template::parse(
            r#"%(addr) - %(user) [%(ltime)] "%(method) %(uri) %(proto)" %(status) %(size) "%(referer)" "%(uagent)""#,
        );
        assert_eq!(
            t.render(&e),
            r#"10.0.0.1 - - [04/Dec/2026:15:35:46 +0000] "GET /a?b=1 HTTP/1.1" 200 77 "-" "curl/8""#
        );
        let t = Template::parse(
            "%(host) %(cl) %(micros) %(msecs) %(secs) %(time) %(tmsecs) %(pid) %(wid) %(core) %(vars) %(pktsize) %(headers) %(hsize) %(rsize) %(var.HTTP_HOST) %(var.NOPE) %(metric.x) %(mylogvar)",
        );
        assert_eq!(
            t.render(&e),
            "example.org 5 2345 2 0.002345 1796398546 1796398546123 42 3 1 28 352 2 64 13 example.org - 0 -"
        );
        assert_eq!(
            Template::parse("[%(ctime)]").render(&e),
            "[Fri Dec  4 15:35:46 2026]"
        );
    }

    #[test]
    fn log_variables_the_app_set() {
        let vars = |_: &[u8]| None;
        let mut block = Vec::new();
        rwsgi_proto::encode_vars(&[("user_id", "42"), ("empty", "")], &mut block).unwrap();
        let e = Entry {
            logvars: &block,
            ..entry(&vars)
        };
        assert_eq!(
            Template::parse("%(user_id) %(empty) %(unset) %(status)").render(&e),
            "42 - - 200"
        );
    }

    #[test]
    fn broken_tokens_are_text() {
        let vars = |_: &[u8]| None;
        let e = entry(&vars);
        assert_eq!(
            Template::parse("a %() b %(status").render(&e),
            "a %() b %(status"
        );
        assert_eq!(Template::parse("%%(status)%").render(&e), "%200%");
        assert_eq!(Template::parse("").render(&e), "");
        assert_eq!(Template::parse("%(status)%(status)").render(&e), "200200");
    }
}
