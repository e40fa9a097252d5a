//! The CGI variables of a request that arrived over HTTP, as uWSGI's
//! `http-socket` builds them (`proto/http.c`; `reference/uwsgi-spec.md` §1.9):
//! `REQUEST_METHOD`, `REQUEST_URI` (raw), `PATH_INFO` (percent-decoded),
//! `QUERY_STRING` (always present), `SERVER_PROTOCOL`, `SCRIPT_NAME` (empty),
//! `SERVER_NAME` (the machine's host name), `SERVER_PORT`, `REMOTE_ADDR`,
//! `REMOTE_PORT`, `CONTENT_TYPE`/`CONTENT_LENGTH` (without `HTTP_` copies),
//! and every other header as `HTTP_*`.
//!
//! Pure bytes in, bytes out: no Python here. The worker turns these into
//! `str` (latin-1).
//!
//! Repeated headers are joined with `", "`, as uWSGI does, except `Cookie`,
//! joined with `"; "` (what nginx ≥ 1.23 does): uWSGI's `", "` makes
//! Werkzeug read two cookies as one.

/// What the listener knows about the connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The client's address (`REMOTE_ADDR`), empty on unix sockets.
    pub remote_addr: String,
    /// The client's port (`REMOTE_PORT`), empty on unix sockets.
    pub remote_port: String,
    /// `SERVER_NAME`.
    pub server_name: String,
    /// `SERVER_PORT` (`80` on unix sockets, as in uWSGI).
    pub server_port: String,
}

/// One request's CGI variables, in order.
pub type Vars = Vec<(Vec<u8>, Vec<u8>)>;

/// Whether `path` lies under the mountpoint `mount`: `mount` is a prefix
/// of it ending at a `/` or at its end (whole segments: `/app` holds
/// `/app` and `/app/x`, not `/application`). Used for `mount` and the
/// static-file mappings.
pub fn under_mount(path: &[u8], mount: &[u8]) -> bool {
    path.starts_with(mount) && matches!(path.get(mount.len()), None | Some(b'/'))
}

/// Percent-decodes a path (`%2F` included, as uWSGI does); invalid escapes
/// are kept as they are.
pub fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        if b == b'%' {
            let hex = |c: Option<&u8>| c.and_then(|c| (*c as char).to_digit(16));
            if let (Some(h), Some(l)) = (hex(s.get(i + 1)), hex(s.get(i + 2))) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

/// The `HTTP_*` name of a header.
fn cgi_name(name: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(name.len() + 5);
    v.extend_from_slice(b"HTTP_");
    v.extend(name.bytes().map(|b| match b {
        b'-' => b'_',
        b => b.to_ascii_uppercase(),
    }));
    v
}

/// Builds the variables. `headers` are in arrival order.
pub fn from_http<'a>(
    method: &str,
    uri: &[u8],
    protocol: &str,
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    conn: &ConnInfo,
) -> Vars {
    let (path, query) = match uri.iter().position(|&b| b == b'?') {
        Some(i) => (&uri[..i], &uri[i + 1..]),
        None => (uri, &b""[..]),
    };
    let mut vars: Vars = vec![
        (b"REQUEST_METHOD".to_vec(), method.as_bytes().to_vec()),
        (b"REQUEST_URI".to_vec(), uri.to_vec()),
        (b"PATH_INFO".to_vec(), percent_decode(path)),
        (b"QUERY_STRING".to_vec(), query.to_vec()),
        (b"SERVER_PROTOCOL".to_vec(), protocol.as_bytes().to_vec()),
        (b"SCRIPT_NAME".to_vec(), Vec::new()),
        (
            b"SERVER_NAME".to_vec(),
            conn.server_name.as_bytes().to_vec(),
        ),
        (
            b"SERVER_PORT".to_vec(),
            conn.server_port.as_bytes().to_vec(),
        ),
        (
            b"REMOTE_ADDR".to_vec(),
            conn.remote_addr.as_bytes().to_vec(),
        ),
        (
            b"REMOTE_PORT".to_vec(),
            conn.remote_port.as_bytes().to_vec(),
        ),
    ];
    let fixed = vars.len();
    for (name, value) in headers {
        let key = if name.eq_ignore_ascii_case("content-type") {
            b"CONTENT_TYPE".to_vec()
        } else if name.eq_ignore_ascii_case("content-length") {
            b"CONTENT_LENGTH".to_vec()
        } else {
            cgi_name(name)
        };
        match vars.iter_mut().skip(fixed).find(|(k, _)| *k == key) {
            Some((_, existing)) => {
                let sep: &[u8] = if key == b"HTTP_COOKIE" { b"; " } else { b", " };
                existing.extend_from_slice(sep);
                existing.extend_from_slice(value);
            }
            None => vars.push((key, value.to_vec())),
        }
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountpoints_match_whole_segments() {
        assert!(under_mount(b"/app", b"/app"));
        assert!(under_mount(b"/app/x", b"/app"));
        assert!(!under_mount(b"/application", b"/app"));
        assert!(!under_mount(b"/ap", b"/app"));
    }

    fn conn() -> ConnInfo {
        ConnInfo {
            remote_addr: "127.0.0.1".into(),
            remote_port: "5555".into(),
            server_name: "host".into(),
            server_port: "9090".into(),
        }
    }

    fn get<'a>(v: &'a Vars, k: &str) -> Option<&'a [u8]> {
        v.iter()
            .find(|(key, _)| key == k.as_bytes())
            .map(|(_, v)| &v[..])
    }

    #[test]
    fn a_get_with_query_and_escapes() {
        let v = from_http(
            "GET",
            b"/caf%C3%A9/a%2Fb?x=1&y=%20",
            "HTTP/1.1",
            vec![("host", &b"example.com"[..]), ("user-agent", b"t")],
            &conn(),
        );
        assert_eq!(get(&v, "PATH_INFO"), Some("/café/a/b".as_bytes()));
        assert_eq!(
            get(&v, "REQUEST_URI"),
            Some(&b"/caf%C3%A9/a%2Fb?x=1&y=%20"[..])
        );
        assert_eq!(get(&v, "QUERY_STRING"), Some(&b"x=1&y=%20"[..]));
        assert_eq!(get(&v, "SCRIPT_NAME"), Some(&b""[..]));
        assert_eq!(get(&v, "HTTP_HOST"), Some(&b"example.com"[..]));
        assert_eq!(get(&v, "HTTP_USER_AGENT"), Some(&b"t"[..]));
        assert_eq!(get(&v, "SERVER_PORT"), Some(&b"9090"[..]));
        assert_eq!(get(&v, "CONTENT_LENGTH"), None);
    }

    #[test]
    fn query_always_present_and_bad_escapes_kept() {
        let v = from_http("GET", b"/a%zz%4", "HTTP/1.0", vec![], &conn());
        assert_eq!(get(&v, "QUERY_STRING"), Some(&b""[..]));
        assert_eq!(get(&v, "PATH_INFO"), Some(&b"/a%zz%4"[..]));
        assert_eq!(get(&v, "SERVER_PROTOCOL"), Some(&b"HTTP/1.0"[..]));
    }

    #[test]
    fn body_headers_lose_the_prefix_and_duplicates_merge() {
        let v = from_http(
            "POST",
            b"/",
            "HTTP/1.1",
            vec![
                ("Content-Type", &b"application/json"[..]),
                ("Content-Length", b"7"),
                ("X-Dup", b"a"),
                ("x-dup", b"b"),
                ("Cookie", b"a=1"),
                ("cookie", b"b=2"),
            ],
            &conn(),
        );
        assert_eq!(get(&v, "CONTENT_TYPE"), Some(&b"application/json"[..]));
        assert_eq!(get(&v, "CONTENT_LENGTH"), Some(&b"7"[..]));
        assert_eq!(get(&v, "HTTP_CONTENT_TYPE"), None);
        assert_eq!(get(&v, "HTTP_X_DUP"), Some(&b"a, b"[..]));
        assert_eq!(get(&v, "HTTP_COOKIE"), Some(&b"a=1; b=2"[..]));
    }
}
