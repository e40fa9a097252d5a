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
//! Deliberate differences: a mountpoint matches whole path segments
//! (`/static` does not serve `/staticfoo`), and a path that leaves the
//! directory — through `..` or a symbolic link pointing outside it — is
//! never served (uWSGI allows links out with `static-safe`). Lookups use
//! blocking `stat`s on the master's thread (files are expected to be in the
//! page cache); contents are read asynchronously.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::config::StaticMap;
use crate::ipc::ResponseHead;

/// All the mappings and index names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Statics {
    /// In the order given, directories canonical; the first that finds a
    /// file wins.
    pub maps: Vec<StaticMap>,
    /// File names tried in a directory (`static-index`).
    pub index: Vec<String>,
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
        }
    }

    /// Whether nothing is mapped.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    /// The file for a request path (`PATH_INFO`, decoded), if one is mapped
    /// and exists.
    pub fn find(&self, path: &[u8]) -> Option<Found> {
        let path = std::str::from_utf8(path).ok()?;
        if !path.starts_with('/') || path.contains('\0') {
            return None;
        }
        self.maps.iter().find_map(|m| self.find_in(m, path))
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
        match file_under(&m.dir, &full)? {
            Entry::File(f) => Some(f),
            Entry::Dir(dir) => {
                self.index
                    .iter()
                    .find_map(|name| match file_under(&m.dir, &dir.join(name))? {
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

/// `path` resolved (links followed), if it is still inside `dir`.
fn file_under(dir: &Path, path: &Path) -> Option<Entry> {
    let real = std::fs::canonicalize(path).ok()?;
    if !real.starts_with(dir) {
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

/// Whether `If-Modified-Since` makes the answer a 304 (uWSGI: the file's
/// mtime is not after the date).
pub fn not_modified(found: &Found, if_modified_since: Option<&[u8]>) -> bool {
    if_modified_since
        .and_then(parse_http_date)
        .is_some_and(|ims| found.mtime <= ims)
}

/// The response head: `200 OK` with the file's headers, or `304 Not
/// Modified`. The connection drivers write it as they write an app's.
pub fn head(found: &Found, not_modified: bool) -> ResponseHead {
    let code = if not_modified { 304 } else { 200 };
    let status = Bytes::from(format!("{code} {}", crate::http_status::reason(code)));
    let mut headers = Vec::with_capacity(3);
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
        assert!(s.find(b"/static/missing.css").is_none());
        assert!(s.find(b"/other").is_none());
        assert!(s.find(b"/static/a\0b").is_none());
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
        let h = head(&f, true);
        assert_eq!((h.code(), h.headers.len()), (Some(304), 0));
        assert_eq!(head(&f, false).headers.len(), 2);
    }
}
