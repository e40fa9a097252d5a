//! Static files served by the master (`static-map`, `static-map2`,
//! `check-static`, `static-index`), before a worker is involved: a file
//! costs no Python and no worker time, which is what uWSGI's
//! `offload-threads` approximates.
//!
//! Mapping, as uWSGI's (`core/static.c`): `static-map = /static=/srv/app/static`
//! serves `/static/css/a.css` from `/srv/app/static/css/a.css`;
//! `static-map2 = /static=/srv/app` keeps the mountpoint in the file path
//! (`/srv/app/static/css/a.css`); `check-static = /srv/www` looks every
//! path up under that directory. A directory is served through the first
//! `static-index` name found in it. When nothing matches, the request goes
//! to the app, as in uWSGI.
//!
//! The response is uWSGI's: `200 OK` with `Content-Type` (from the file
//! extension, a built-in table since the container has no
//! `/etc/mime.types`), `Content-Length` and `Last-Modified`; `304 Not
//! Modified` when `If-Modified-Since` (RFC 1123) is not older than the
//! file; no body for HEAD. Only GET and HEAD are served.
//!
//! `static-skip-ext` leaves a path to the app when `PATH_INFO` or the file
//! found ends with one of its suffixes. `static-expires*` add `Expires:`
//! (now, or the file's modification time, plus N seconds) to a `200`:
//! uWSGI tries the file's real path, `PATH_INFO`, `REQUEST_URI` (regular
//! expressions, searched anywhere in the string as PCRE does) and then the
//! content type (compared whole). uWSGI adds one header per kind that
//! matches; rwsgi sends only the first, since two `Expires` headers would
//! contradict each other. With `honour-range`, `Range: bytes=…` gets a
//! `206` with `Content-Range` (the first range only, as uWSGI) or a `416`;
//! a header that does not parse is ignored, and `If-Range` must name the
//! file's `Last-Modified` for the part to be sent (RFC 9110). `static-gzip*`
//! sends `FILE.gz` (a regular file in the same directory) instead of
//! `FILE`, with `Content-Encoding: gzip` and the original's type, to clients
//! whose `Accept-Encoding` names gzip, and `Vary: Accept-Encoding` with
//! every file the rules cover.
//!
//! Deliberate differences: a mountpoint matches whole path segments
//! (`/static` does not serve `/staticfoo`), and a path that leaves the
//! directory — through `..` or a symbolic link pointing outside it — is
//! never served (uWSGI allows links out with `static-safe`). Lookups use
//! blocking `stat`s on the master's thread (files are expected to be in the
//! page cache); contents are read asynchronously.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::config::{ExpiresOn, ExpiresRule, StaticMap};
use crate::ipc::ResponseHead;

/// All the mappings and index names.
#[derive(Debug, Clone, Default)]
pub struct Statics {
    /// In the order given, directories canonical; the first that finds a
    /// file wins.
    pub maps: Vec<StaticMap>,
    /// File names tried in a directory (`static-index`).
    pub index: Vec<String>,
    /// Suffixes never served (`static-skip-ext`).
    pub skip_ext: Vec<String>,
    /// `static-expires*`, in the order they are tried.
    expires: Vec<Expires>,
    /// `honour-range`: answer `Range` with `206`.
    pub honour_range: bool,
    /// `static-gzip*`.
    pub gzip: GzipRules,
    /// `static-safe`: real directories a file may resolve into besides its
    /// mapped one.
    pub safe: Vec<PathBuf>,
}

/// What a request asks of a static file.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ask<'a> {
    /// `If-Modified-Since`.
    pub if_modified_since: Option<&'a [u8]>,
    /// `Range`.
    pub range: Option<&'a [u8]>,
    /// `If-Range`.
    pub if_range: Option<&'a [u8]>,
    /// The `Expires` time, if a rule gave one.
    pub expires: Option<u64>,
    /// `Accept-Encoding`.
    pub accept_encoding: Option<&'a [u8]>,
}

/// How to answer for a static file.
#[derive(Debug)]
pub struct Plan {
    /// Status and headers.
    pub head: ResponseHead,
    /// The body: (offset in `file`, length); `None` for none.
    pub body: Option<(u64, u64)>,
    /// The file to send: the one found, or its `.gz` twin.
    pub file: Found,
}

/// `static-gzip*`: which files may have a `.gz` twin to send instead
/// (uWSGI's `uwsgi_static_want_gzip`, gzip only as in uWSGI 2.0).
#[derive(Debug, Clone, Default)]
pub struct GzipRules {
    /// `static-gzip-all`.
    pub all: bool,
    /// `static-gzip-dir`/`-prefix`: real paths starting with one of these.
    pub prefixes: Vec<String>,
    /// `static-gzip-ext`/`-suffix`: real paths ending with one of these.
    pub suffixes: Vec<String>,
    /// `static-gzip`: real paths matching one of these.
    pub patterns: Vec<regex_lite::Regex>,
}

impl GzipRules {
    fn applies(&self, path: &Path) -> bool {
        let p = path.to_string_lossy();
        self.all
            || self.prefixes.iter().any(|d| p.starts_with(d.as_str()))
            || self.suffixes.iter().any(|e| p.ends_with(e.as_str()))
            || self.patterns.iter().any(|re| re.is_match(&p))
    }
}

/// Whether `Accept-Encoding` names gzip (uWSGI looks for the word).
fn accepts_gzip(accept_encoding: &[u8]) -> bool {
    accept_encoding
        .windows(4)
        .any(|w| w.eq_ignore_ascii_case(b"gzip"))
}

/// `file.gz` beside `found`, a regular file in the same directory (a link
/// out of it does not count), sent with the original's content type.
fn gz_twin(found: &Found) -> Option<Found> {
    let mut name = found.path.as_os_str().to_owned();
    name.push(".gz");
    let real = std::fs::canonicalize(PathBuf::from(name)).ok()?;
    if real.parent() != found.path.parent() {
        return None;
    }
    let meta = std::fs::metadata(&real).ok().filter(|m| m.is_file())?;
    let mut twin = self::found(real, &meta)?;
    twin.content_type = found.content_type;
    Some(twin)
}

/// What a `Range` header selects of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ranged {
    Whole,
    /// First and last byte, inclusive.
    Part(u64, u64),
    Unsatisfiable,
}

/// The first range of a `Range: bytes=…` header, as uWSGI reads it (only
/// up to the first `,`): `a-b`, `a-` and the suffix form `-n`. A header
/// that does not parse is ignored (RFC 9110 §14.2; uWSGI answers 416); a
/// range that starts past the end, or an empty suffix, is unsatisfiable.
fn byte_range(header: &[u8], size: u64) -> Ranged {
    fn number(b: &[u8]) -> Option<u64> {
        if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(b).ok()?.parse().ok()
    }
    let first = header.split(|&b| b == b',').next().unwrap_or_default();
    let Some(spec) = first.trim_ascii().strip_prefix(b"bytes=") else {
        return Ranged::Whole;
    };
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return Ranged::Whole;
    };
    let (a, b) = (spec[..dash].trim_ascii(), spec[dash + 1..].trim_ascii());
    if a.is_empty() {
        return match number(b) {
            None => Ranged::Whole,
            Some(0) => Ranged::Unsatisfiable,
            Some(_) if size == 0 => Ranged::Unsatisfiable,
            Some(n) => Ranged::Part(size.saturating_sub(n), size - 1),
        };
    }
    let Some(from) = number(a) else {
        return Ranged::Whole;
    };
    let to = if b.is_empty() {
        Some(u64::MAX)
    } else {
        number(b)
    };
    match to {
        None => Ranged::Whole,
        Some(to) if to < from => Ranged::Whole,
        Some(_) if from >= size => Ranged::Unsatisfiable,
        Some(to) => Ranged::Part(from, to.min(size - 1)),
    }
}

fn status_line(code: u16) -> Bytes {
    Bytes::from(format!("{code} {}", crate::http_status::reason(code)))
}

/// A compiled `static-expires*` rule.
#[derive(Debug, Clone)]
struct Expires {
    on: ExpiresOn,
    /// `None` for a content type, compared whole with `pattern`.
    regex: Option<regex_lite::Regex>,
    pattern: String,
    seconds: u64,
    from_mtime: bool,
}

/// What a request says of itself, for `static-expires-path-info` and
/// `-uri`.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    /// `PATH_INFO`.
    pub path_info: &'a [u8],
    /// `REQUEST_URI`.
    pub uri: &'a [u8],
}

/// A file to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its path.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its modification time, whole seconds since the epoch.
    pub mtime: u64,
    /// Its content type, when the extension is known.
    pub content_type: Option<&'static str>,
}

impl Statics {
    /// Builds the mappings, logging each as uWSGI does; a directory that
    /// does not exist is logged and left out.
    pub fn new(maps: &[StaticMap], index: &[String]) -> Statics {
        Statics {
            maps: maps
                .iter()
                .filter_map(|m| mapping(&m.mount, &m.dir, m.keep_mount))
                .collect(),
            index: index.to_vec(),
            skip_ext: Vec::new(),
            expires: Vec::new(),
            honour_range: false,
            gzip: GzipRules::default(),
            safe: Vec::new(),
        }
    }

    /// Adds `static-safe` directories (by their real paths; one that does
    /// not exist allows nothing).
    pub fn with_safe(mut self, dirs: &[PathBuf]) -> Statics {
        self.safe = dirs
            .iter()
            .filter_map(|d| std::fs::canonicalize(d).ok())
            .collect();
        self
    }

    /// Adds `static-skip-ext` and `static-expires*` (patterns were checked
    /// when the configuration was read; one that does not compile is left
    /// out with a log line).
    pub fn with_rules(
        mut self,
        skip_ext: &[String],
        expires: &[ExpiresRule],
        honour_range: bool,
    ) -> Statics {
        self.honour_range = honour_range;
        self.skip_ext = skip_ext.to_vec();
        self.expires = expires
            .iter()
            .filter_map(|r| {
                let regex = match r.on {
                    ExpiresOn::Type => None,
                    _ => match regex_lite::Regex::new(&r.pattern) {
                        Ok(re) => Some(re),
                        Err(e) => {
                            tracing::error!(event = "bad_expires", pattern = %r.pattern, cause = %e,
                                "static-expires pattern {} left out: {e}", r.pattern);
                            return None;
                        }
                    },
                };
                Some(Expires {
                    on: r.on,
                    regex,
                    pattern: r.pattern.clone(),
                    seconds: r.seconds,
                    from_mtime: r.from_mtime,
                })
            })
            .collect();
        self
    }

    /// Adds `static-gzip*` (patterns were checked when the configuration
    /// was read; directories are made real, as the paths they are compared
    /// with are).
    pub fn with_gzip(mut self, g: &crate::config::GzipConfig) -> Statics {
        self.gzip = GzipRules {
            all: g.all,
            prefixes: g
                .dirs
                .iter()
                .map(|d| {
                    let real = std::fs::canonicalize(d).unwrap_or_else(|_| d.clone());
                    format!("{}/", real.display())
                })
                .collect(),
            suffixes: g.exts.clone(),
            patterns: g
                .patterns
                .iter()
                .filter_map(|p| regex_lite::Regex::new(p).ok())
                .collect(),
        };
        self
    }

    /// The `Expires` time (seconds since the epoch) for a file about to be
    /// served, if a rule asks for one.
    pub fn expires(&self, found: &Found, asked: Asked<'_>, now: u64) -> Option<u64> {
        let path = found.path.as_os_str().as_encoded_bytes();
        let rule = self.expires.iter().find(|r| match (r.on, &r.regex) {
            (ExpiresOn::Type, _) => found
                .content_type
                .is_some_and(|t| t.as_bytes() == r.pattern.as_bytes()),
            (on, Some(re)) => {
                let subject = match on {
                    ExpiresOn::File => path,
                    ExpiresOn::PathInfo => asked.path_info,
                    _ => asked.uri,
                };
                std::str::from_utf8(subject).is_ok_and(|s| re.is_match(s))
            }
            (_, None) => false,
        })?;
        let base = if rule.from_mtime { found.mtime } else { now };
        Some(base.saturating_add(rule.seconds))
    }

    /// [`Statics::expires`] for a request being served now.
    pub fn expires_now(&self, found: &Found, path_info: &[u8], uri: &[u8]) -> Option<u64> {
        if self.expires.is_empty() {
            return None;
        }
        self.expires(found, Asked { path_info, uri }, now_secs())
    }

    /// The answer for a file: status and headers, the file to send (its
    /// `.gz` twin when `static-gzip*` and the client allow), and which of
    /// its bytes make the body. `Range` counts only with `honour-range`.
    pub fn plan(&self, found: &Found, ask: Ask<'_>) -> Plan {
        let gzip = self.gzip.applies(&found.path);
        let twin = if gzip && ask.accept_encoding.is_some_and(accepts_gzip) {
            gz_twin(found)
        } else {
            None
        };
        let file = twin.as_ref().unwrap_or(found);
        let (head, body) = self.answer(file, ask);
        let mut plan = Plan {
            head,
            body,
            file: file.clone(),
        };
        if twin.is_some() && plan.head.code() != Some(416) {
            plan.head.headers.push((
                Bytes::from_static(b"Content-Encoding"),
                Bytes::from_static(b"gzip"),
            ));
        }
        if gzip {
            plan.head.headers.push((
                Bytes::from_static(b"Vary"),
                Bytes::from_static(b"Accept-Encoding"),
            ));
        }
        plan
    }

    /// Status, headers and body bytes for one file.
    fn answer(&self, found: &Found, ask: Ask<'_>) -> (ResponseHead, Option<(u64, u64)>) {
        if not_modified(found, ask.if_modified_since) {
            return (head(found, true, None), None);
        }
        let ranged = match ask.range.filter(|_| self.honour_range) {
            // If-Range with a date: the part only if the file is that
            // version (RFC 9110 §13.1.5; an entity tag never matches).
            Some(_)
                if ask
                    .if_range
                    .is_some_and(|d| parse_http_date(d) != Some(found.mtime)) =>
            {
                Ranged::Whole
            }
            Some(r) => byte_range(r, found.size),
            None => Ranged::Whole,
        };
        let mut h = head(found, false, ask.expires);
        let length = |h: &mut ResponseHead, n: u64| {
            if let Some(v) = h
                .headers
                .iter_mut()
                .find(|(k, _)| &k[..] == b"Content-Length")
            {
                v.1 = Bytes::from(n.to_string());
            }
        };
        match ranged {
            Ranged::Whole => (h, Some((0, found.size))),
            Ranged::Part(from, to) => {
                let n = to - from + 1;
                h.status = status_line(206);
                length(&mut h, n);
                h.headers.push((
                    Bytes::from_static(b"Content-Range"),
                    Bytes::from(format!("bytes {from}-{to}/{}", found.size)),
                ));
                (h, Some((from, n)))
            }
            Ranged::Unsatisfiable => (
                ResponseHead {
                    status: status_line(416),
                    headers: vec![
                        (
                            Bytes::from_static(b"Content-Range"),
                            Bytes::from(format!("bytes */{}", found.size)),
                        ),
                        (
                            Bytes::from_static(b"Content-Length"),
                            Bytes::from_static(b"0"),
                        ),
                    ],
                },
                None,
            ),
        }
    }

    fn skipped(&self, name: &[u8]) -> bool {
        self.skip_ext.iter().any(|e| name.ends_with(e.as_bytes()))
    }

    /// Whether nothing is mapped.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    /// A file named directly (the routing's `static:PATH`), if it is a
    /// regular file (links followed).
    pub fn file(path: &Path) -> Option<Found> {
        match file_under(path, &|_| true)? {
            Entry::File(f) => Some(f),
            Entry::Dir(_) => None,
        }
    }

    /// The file for a request path (`PATH_INFO`, decoded), if one is mapped
    /// and exists.
    pub fn find(&self, path: &[u8]) -> Option<Found> {
        let path = std::str::from_utf8(path).ok()?;
        if !path.starts_with('/') || path.contains('\0') || self.skipped(path.as_bytes()) {
            return None;
        }
        self.maps
            .iter()
            .find_map(|m| self.find_in(m, path))
            .filter(|f| !self.skipped(f.path.as_os_str().as_encoded_bytes()))
    }

    fn find_in(&self, m: &StaticMap, path: &str) -> Option<Found> {
        if !crate::environ::under_mount(path.as_bytes(), m.mount.as_bytes()) {
            return None;
        }
        let rel = if m.keep_mount {
            path
        } else {
            path.get(m.mount.len()..)?
        };
        let mut full = m.dir.clone();
        for part in rel.split('/') {
            match part {
                "" | "." => {}
                ".." => return None,
                p => full.push(p),
            }
        }
        let allowed =
            |real: &Path| real.starts_with(&m.dir) || self.safe.iter().any(|s| real.starts_with(s));
        match file_under(&full, &allowed)? {
            Entry::File(f) => Some(f),
            Entry::Dir(dir) => {
                self.index
                    .iter()
                    .find_map(|name| match file_under(&dir.join(name), &allowed)? {
                        Entry::File(f) => Some(f),
                        Entry::Dir(_) => None,
                    })
            }
        }
    }
}

/// What a path under a mapped directory is.
enum Entry {
    File(Found),
    /// A directory, by its real path.
    Dir(PathBuf),
}

/// `path` resolved (links followed), if where it leads is `allowed` (its
/// mapped directory, or a `static-safe` one).
fn file_under(path: &Path, allowed: &dyn Fn(&Path) -> bool) -> Option<Entry> {
    let real = std::fs::canonicalize(path).ok()?;
    if !allowed(&real) {
        return None;
    }
    let meta = std::fs::metadata(&real).ok()?;
    if meta.is_file() {
        found(real, &meta).map(Entry::File)
    } else if meta.is_dir() {
        Some(Entry::Dir(real))
    } else {
        None
    }
}

fn mapping(mount: &str, dir: &Path, keep_mount: bool) -> Option<StaticMap> {
    match std::fs::canonicalize(dir) {
        Ok(dir) => {
            tracing::info!(event = "static_map", mount, dir = %dir.display(),
                "[uwsgi-static] added mapping for {mount} => {}", dir.display());
            Some(StaticMap {
                mount: mount.to_owned(),
                dir,
                keep_mount,
            })
        }
        Err(e) => {
            tracing::warn!(event = "static_map_missing", mount, dir = %dir.display(), cause = %e,
                "[uwsgi-static] {} is not usable, {mount} is left to the app", dir.display());
            None
        }
    }
}

fn found(path: PathBuf, meta: &std::fs::Metadata) -> Option<Found> {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let content_type = path
        .extension()
        .and_then(|e| e.to_str())
        .and_then(content_type);
    Some(Found {
        path,
        size: meta.len(),
        mtime,
        content_type,
    })
}

/// The content type of a file extension (the common web types).
pub fn content_type(ext: &str) -> Option<&'static str> {
    let ext = ext.to_ascii_lowercase();
    Some(match ext.as_str() {
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" | "mjs" => "text/javascript",
        "json" | "map" => "application/json",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "wasm" => "application/wasm",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "webmanifest" => "application/manifest+json",
        _ => return None,
    })
}

/// The file, opened for reading from `offset`.
pub async fn open_at(path: &Path, offset: u64) -> std::io::Result<tokio::fs::File> {
    use tokio::io::AsyncSeekExt;
    let mut f = tokio::fs::File::open(path).await?;
    if offset > 0 {
        f.seek(std::io::SeekFrom::Start(offset)).await?;
    }
    Ok(f)
}

/// Whether `If-Modified-Since` makes the answer a 304 (uWSGI: the file's
/// mtime is not after the date).
pub fn not_modified(found: &Found, if_modified_since: Option<&[u8]>) -> bool {
    if_modified_since
        .and_then(parse_http_date)
        .is_some_and(|ims| found.mtime <= ims)
}

/// The response head: `200 OK` with the file's headers, or `304 Not
/// Modified`. The connection drivers write it as they write an app's.
pub fn head(found: &Found, not_modified: bool, expires: Option<u64>) -> ResponseHead {
    let status = status_line(if not_modified { 304 } else { 200 });
    let mut headers = Vec::with_capacity(4);
    if !not_modified {
        if let Some(t) = found.content_type {
            headers.push((
                Bytes::from_static(b"Content-Type"),
                Bytes::from_static(t.as_bytes()),
            ));
        }
        headers.push((
            Bytes::from_static(b"Content-Length"),
            Bytes::from(found.size.to_string()),
        ));
        headers.push((
            Bytes::from_static(b"Last-Modified"),
            Bytes::from(http_date(found.mtime)),
        ));
        if let Some(t) = expires {
            headers.push((Bytes::from_static(b"Expires"), Bytes::from(http_date(t))));
        }
    }
    ResponseHead { status, headers }
}

/// An RFC 1123 date: `Fri, 04 Dec 2026 15:35:46 GMT`.
pub fn http_date(secs: u64) -> String {
    let u = crate::reqlog::Utc::from_secs(secs);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        u.weekday, u.day, u.month, u.year, u.hour, u.minute, u.second
    )
}

/// Parses an RFC 1123 date (the only form uWSGI reads); `None` otherwise.
pub fn parse_http_date(s: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(s).ok()?;
    let b = s.as_bytes();
    if b.len() != 29 || b.get(3) != Some(&b',') || !s.ends_with(" GMT") {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u64>().ok();
    let day = num(5..7)?;
    let month = crate::reqlog::MONTHS
        .iter()
        .position(|m| Some(*m) == s.get(8..11))? as u64
        + 1;
    let year = num(12..16)?;
    let (h, mi, sec) = (num(17..19)?, num(20..22)?, num(23..25)?);
    if !(1..=31).contains(&day) || year < 1970 || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year as i64, month as i64, day as i64);
    u64::try_from(days)
        .ok()
        .map(|d| d * 86400 + h * 3600 + mi * 60 + sec)
}

/// Days since 1970-01-01 of a civil date (the inverse of
/// `reqlog::civil_from_days`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Seconds since the epoch, now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header of a plan, as text.
    fn header(p: &Plan, name: &str) -> Option<String> {
        p.head
            .headers
            .iter()
            .find(|(k, _)| &k[..] == name.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    fn tree() -> (PathBuf, Statics) {
        let root = std::env::temp_dir().join(format!("rwsgi-static-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("site/static/css")).unwrap();
        std::fs::write(root.join("site/static/css/a.css"), "a{}").unwrap();
        std::fs::write(root.join("site/static/index.html"), "<p>").unwrap();
        std::fs::write(root.join("secret.txt"), "no").unwrap();
        std::os::unix::fs::symlink(root.join("secret.txt"), root.join("site/static/out.txt"))
            .unwrap();
        let s = Statics::new(
            &[
                StaticMap {
                    mount: "/static".into(),
                    dir: root.join("site/static"),
                    keep_mount: false,
                },
                StaticMap {
                    mount: "/s2".into(),
                    dir: root.join("site"),
                    keep_mount: true,
                },
            ],
            &["index.html".into()],
        );
        (root, s)
    }

    #[test]
    fn paths_map_into_the_directory_and_never_out_of_it() {
        let (root, s) = tree();
        let skipping = s.clone().with_rules(&[".css".into()], &[], false);
        assert!(skipping.find(b"/static/css/a.css").is_none());
        assert!(skipping.find(b"/static/").is_some());
        let f = s.find(b"/static/css/a.css").unwrap();
        assert_eq!(f.size, 3);
        assert_eq!(f.content_type, Some("text/css"));
        assert!(f.path.ends_with("site/static/css/a.css"));
        // The index of a directory.
        assert!(s.find(b"/static/").unwrap().path.ends_with("index.html"));
        assert!(s.find(b"/static").unwrap().path.ends_with("index.html"));
        // static-map2 keeps the mountpoint: /s2/... is looked up in site/s2.
        assert!(s.find(b"/s2/static/css/a.css").is_none());
        // Whole segments only; nothing outside; no escape through a link.
        assert!(s.find(b"/staticx/css/a.css").is_none());
        assert!(s.find(b"/static/../secret.txt").is_none());
        assert!(s.find(b"/static/css/../../../secret.txt").is_none());
        assert!(s.find(b"/static/out.txt").is_none());
        // ... unless where the link leads is static-safe.
        let safe = s.clone().with_safe(std::slice::from_ref(&root));
        assert!(
            safe.find(b"/static/out.txt")
                .unwrap()
                .path
                .ends_with("secret.txt")
        );
        assert!(safe.find(b"/static/../secret.txt").is_none());
        assert!(s.find(b"/static/missing.css").is_none());
        assert!(s.find(b"/other").is_none());
        assert!(s.find(b"/static/a\0b").is_none());
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn expires_rules_follow_uwsgis_order_and_skip_ext_leaves_paths_to_the_app() {
        let rule = |on, pattern: &str, seconds, from_mtime| ExpiresRule {
            on,
            pattern: pattern.into(),
            seconds,
            from_mtime,
        };
        // As Config sorts them: file, PATH_INFO, REQUEST_URI, type; "now"
        // before mtime in each.
        let s = Statics::default().with_rules(
            &[".py".into()],
            &[
                rule(ExpiresOn::File, r"\.png$", 10, false),
                rule(ExpiresOn::File, r"/old/", 20, true),
                rule(ExpiresOn::PathInfo, "^/assets/", 30, false),
                rule(ExpiresOn::Uri, r"\?v=", 40, false),
                rule(ExpiresOn::Type, "text/css", 50, false),
            ],
            false,
        );
        let f = |path: &str, content_type| Found {
            path: PathBuf::from(path),
            size: 1,
            mtime: 1000,
            content_type,
        };
        let asked = |path_info, uri| Asked { path_info, uri };
        let now = 5000;
        let png = f("/srv/a.png", Some("image/png"));
        assert_eq!(s.expires(&png, asked(b"/x", b"/x"), now), Some(5010));
        let old = f("/srv/old/a.css", Some("text/css"));
        assert_eq!(s.expires(&old, asked(b"/x", b"/x"), now), Some(1020));
        let css = f("/srv/a.css", Some("text/css"));
        assert_eq!(
            s.expires(&css, asked(b"/assets/a.css", b"/x"), now),
            Some(5030)
        );
        assert_eq!(
            s.expires(&css, asked(b"/a.css", b"/a.css?v=2"), now),
            Some(5040)
        );
        assert_eq!(
            s.expires(&css, asked(b"/a.css", b"/a.css"), now),
            Some(5050)
        );
        let txt = f("/srv/a.txt", Some("text/plain"));
        assert_eq!(s.expires(&txt, asked(b"/a.txt", b"/a.txt"), now), None);
        // The header itself.
        let h = head(&css, false, Some(0));
        assert!(
            h.headers
                .iter()
                .any(|(n, v)| &n[..] == b"Expires" && &v[..] == b"Thu, 01 Jan 1970 00:00:00 GMT")
        );
        assert!(s.skipped(b"/static/app.py"));
        assert!(!s.skipped(b"/static/app.pyc"));
    }

    #[test]
    fn ranges_read_as_uwsgi_reads_them_and_answer_as_rfc_9110_says() {
        use Ranged::*;
        let r = |h: &str, size| byte_range(h.as_bytes(), size);
        assert_eq!(r("bytes=0-9", 100), Part(0, 9));
        assert_eq!(r("bytes=90-", 100), Part(90, 99));
        assert_eq!(r("bytes=90-500", 100), Part(90, 99));
        assert_eq!(r("bytes=-10", 100), Part(90, 99));
        assert_eq!(r("bytes=-500", 100), Part(0, 99));
        // Only the first of several ranges, as uWSGI.
        assert_eq!(r("bytes=0-0,5-9", 100), Part(0, 0));
        assert_eq!(r("bytes=100-", 100), Unsatisfiable);
        assert_eq!(r("bytes=-0", 100), Unsatisfiable);
        assert_eq!(r("bytes=0-", 0), Unsatisfiable);
        // What does not parse is ignored.
        for bad in [
            "items=0-9",
            "bytes=9-0",
            "bytes=x-9",
            "bytes=",
            "bytes=5",
            "bytes=--5",
        ] {
            assert_eq!(r(bad, 100), Whole, "{bad}");
        }
        assert_eq!(r("bytes=99999999999999999999-", 100), Whole);

        let f = Found {
            path: PathBuf::from("/srv/a.bin"),
            size: 100,
            mtime: 1_796_398_546,
            content_type: None,
        };
        let on = Statics::default().with_rules(&[], &[], true);
        fn ask<'a>(range: &'a str, if_range: Option<&'a str>) -> Ask<'a> {
            Ask {
                range: Some(range.as_bytes()),
                if_range: if_range.map(str::as_bytes),
                ..Ask::default()
            }
        }
        let p = on.plan(&f, ask("bytes=10-19", None));
        assert_eq!(p.head.code(), Some(206));
        assert_eq!(p.body, Some((10, 10)));
        assert_eq!(
            header(&p, "Content-Range").as_deref(),
            Some("bytes 10-19/100")
        );
        assert_eq!(header(&p, "Content-Length").as_deref(), Some("10"));
        let p = on.plan(&f, ask("bytes=200-", None));
        assert_eq!((p.head.code(), p.body), (Some(416), None));
        assert_eq!(header(&p, "Content-Range").as_deref(), Some("bytes */100"));
        // If-Range: the part only for the version the client has.
        let same = http_date(f.mtime);
        let p = on.plan(&f, ask("bytes=10-19", Some(&same)));
        assert_eq!(p.head.code(), Some(206));
        let p = on.plan(&f, ask("bytes=10-19", Some("\"an-etag\"")));
        assert_eq!((p.head.code(), p.body), (Some(200), Some((0, 100))));
        // Without honour-range, Range is not looked at.
        let p = Statics::default().plan(&f, ask("bytes=10-19", None));
        assert_eq!((p.head.code(), p.body), (Some(200), Some((0, 100))));
    }

    #[test]
    fn gzip_twins_are_sent_to_clients_that_accept_them() {
        let root = std::env::temp_dir().join(format!("rwsgi-gzip-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("out")).unwrap();
        std::fs::write(root.join("app.js"), "long javascript").unwrap();
        std::fs::write(root.join("app.js.gz"), "gz").unwrap();
        std::fs::write(root.join("other.css"), "css").unwrap();
        std::fs::write(root.join("out/x.css.gz"), "out").unwrap();
        std::os::unix::fs::symlink(root.join("out/x.css.gz"), root.join("other.css.gz")).unwrap();
        let s = Statics::default().with_gzip(&crate::config::GzipConfig {
            exts: vec![".js".into(), ".css".into()],
            ..Default::default()
        });
        let real = std::fs::canonicalize(&root).unwrap();
        let meta = |n: &str| std::fs::metadata(real.join(n)).unwrap();
        let js = found(real.join("app.js"), &meta("app.js")).unwrap();
        let ask = |ae: &'static [u8]| Ask {
            accept_encoding: Some(ae),
            ..Ask::default()
        };
        let p = s.plan(&js, ask(b"gzip, deflate, br"));
        assert!(p.file.path.ends_with("app.js.gz"));
        assert_eq!(p.body, Some((0, 2)));
        assert_eq!(header(&p, "Content-Encoding").as_deref(), Some("gzip"));
        assert_eq!(
            header(&p, "Content-Type").as_deref(),
            Some("text/javascript")
        );
        assert_eq!(header(&p, "Vary").as_deref(), Some("Accept-Encoding"));
        // A client that does not take gzip gets the file, and the Vary.
        let p = s.plan(&js, ask(b"br"));
        assert!(p.file.path.ends_with("app.js"));
        assert_eq!(header(&p, "Content-Encoding"), None);
        assert_eq!(header(&p, "Vary").as_deref(), Some("Accept-Encoding"));
        // A twin that is a link out of the directory is not used.
        let css = found(real.join("other.css"), &meta("other.css")).unwrap();
        assert!(s.plan(&css, ask(b"gzip")).file.path.ends_with("other.css"));
        // Files no rule names get neither.
        let p = Statics::default().plan(&js, ask(b"gzip"));
        assert_eq!(
            (header(&p, "Vary"), p.file.path.ends_with("app.js")),
            (None, true)
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn dates_round_trip_and_decide_304() {
        let t = 1_796_398_546; // Fri, 04 Dec 2026 15:35:46 GMT
        assert_eq!(http_date(t), "Fri, 04 Dec 2026 15:35:46 GMT");
        assert_eq!(parse_http_date(http_date(t).as_bytes()), Some(t));
        assert_eq!(parse_http_date(b"Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date(b"Thursday, 01-Jan-70 00:00:00 GMT"), None);
        assert_eq!(parse_http_date(b"Fri, 04 Dex 2026 15:35:46 GMT"), None);
        let f = Found {
            path: PathBuf::new(),
            size: 1,
            mtime: t,
            content_type: None,
        };
        assert!(not_modified(&f, Some(http_date(t).as_bytes())));
        assert!(!not_modified(&f, Some(http_date(t - 1).as_bytes())));
        assert!(!not_modified(&f, Some(b"garbage")));
        assert!(!not_modified(&f, None));
        let h = head(&f, true, None);
        assert_eq!((h.code(), h.headers.len()), (Some(304), 0));
        assert_eq!(head(&f, false, None).headers.len(), 2);
    }
}
