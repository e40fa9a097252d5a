//! Typed values parsed at the boundary: socket addresses, the app spec,
//! booleans, numbers. Nothing downstream sees these as strings.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// A `static-expires*` option: `type=seconds` for the `-type` forms,
/// `REGEXP seconds` (split at the first space) for the others, as uWSGI's
/// `uwsgi_opt_add_dyn_dict` and `uwsgi_opt_add_regexp_dyn_dict` read them.
pub fn parse_expires(option: &str, v: &str) -> Result<super::ExpiresRule, String> {
    use super::ExpiresOn;
    let rest = option.trim_start_matches("static-expires");
    let (rest, from_mtime) = match rest.strip_suffix("-mtime") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let on = match rest {
        "" => ExpiresOn::File,
        "-path-info" => ExpiresOn::PathInfo,
        "-uri" => ExpiresOn::Uri,
        "-type" => ExpiresOn::Type,
        _ => return Err(format!("unknown static-expires form {option}")),
    };
    let (pattern, seconds) = if on == ExpiresOn::Type {
        v.rsplit_once('=').ok_or("expected content-type=seconds")?
    } else {
        v.split_once(' ').ok_or("expected \"REGEXP seconds\"")?
    };
    let seconds = parse_number(seconds.trim())?;
    if on != ExpiresOn::Type {
        regex_lite::Regex::new(pattern).map_err(|e| format!("bad regular expression: {e}"))?;
    }
    Ok(super::ExpiresRule {
        on,
        pattern: pattern.to_owned(),
        seconds,
        from_mtime,
    })
}

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The uwsgi packet protocol (nginx `uwsgi_pass`).
    Uwsgi,
    /// HTTP/1.x.
    Http,
}

impl Protocol {
    /// The name used in logs and stats (`proto` in uWSGI's stats).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Uwsgi => "uwsgi",
            Protocol::Http => "http",
        }
    }
}

/// Where a listener binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A unix socket path.
    Unix(PathBuf),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(a) => write!(f, "{a}"),
            Address::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A socket to listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSpec {
    /// Where.
    pub address: Address,
    /// What it speaks.
    pub protocol: Protocol,
}

/// Parses `host:port`, `:port` (all interfaces, as in uWSGI) or a unix path.
pub fn parse_address(s: &str) -> Result<Address, String> {
    if s.is_empty() {
        return Err("empty address".into());
    }
    if s.starts_with('/') || s.starts_with('.') || !s.contains(':') {
        if s.starts_with('@') {
            return Err("abstract unix sockets are not supported".into());
        }
        return Ok(Address::Unix(PathBuf::from(s)));
    }
    let full = if let Some(port) = s.strip_prefix(':') {
        format!("0.0.0.0:{port}")
    } else {
        s.to_owned()
    };
    let (host, port) = full.rsplit_once(':').ok_or("missing port")?;
    let port: u16 = port.parse().map_err(|_| format!("invalid port {port:?}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host:?}: {e}"))?
        .next()
        .map(Address::Tcp)
        .ok_or_else(|| format!("{host:?} has no address"))
}

/// How the app is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppSource {
    /// `pkg.module`, imported.
    Module(String),
    /// A Python file, executed as a module named `uwsgi_file_<name>`.
    File(PathBuf),
    /// A PasteDeploy URI (`config:/path/app.ini`), given to
    /// `paste.deploy.loadapp`.
    Paste {
        /// The URI.
        uri: String,
        /// `paste-logger`: configure logging from the ini file first.
        logging: bool,
    },
}

/// The app: where it is and which attribute is the WSGI callable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpec {
    /// The module or file.
    pub source: AppSource,
    /// The callable's name; a trailing `()` calls it as a factory, as in
    /// uWSGI's `pyloader.c`.
    pub callable: String,
}

/// Splits `pkg.mod:callable` (or `pkg.mod`, with the default callable).
pub fn parse_module(s: &str, default_callable: &str) -> Result<AppSpec, String> {
    let (module, callable) = match s.split_once(':') {
        Some((m, c)) => (m, c),
        None => (s, default_callable),
    };
    if module.is_empty() || callable.is_empty() {
        return Err("expected pkg.module:callable".into());
    }
    Ok(AppSpec {
        source: AppSource::Module(module.to_owned()),
        callable: callable.to_owned(),
    })
}

/// uWSGI's truthiness (`uwsgi_opt_true`): anything but `false`, `off`,
/// `no` (any case) or `0` is true, the empty value included.
pub fn parse_bool(s: &str) -> bool {
    let t = s.trim();
    !(t.eq_ignore_ascii_case("false")
        || t.eq_ignore_ascii_case("off")
        || t.eq_ignore_ascii_case("no")
        || t == "0")
}

/// A number read the way uWSGI's `atoi` reads it: the leading digits, so
/// `60   ; comment` is 60. No digits at all is an error here (uWSGI would read
/// 0 silently).
pub fn parse_number(s: &str) -> Result<u64, String> {
    let t = s.trim_start();
    let digits: &str = &t[..t.bytes().take_while(u8::is_ascii_digit).count()];
    if digits.is_empty() {
        return Err("expected a number".into());
    }
    digits.parse().map_err(|_| "number too large".into())
}

/// A socket mode: three octal digits, or bare (`666`, uWSGI's default for a
/// bare `chmod-socket`).
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let t = s.trim();
    if t.is_empty() || t == "1" {
        return Ok(0o666);
    }
    if t.len() == 3 {
        if let Ok(m) = u32::from_str_radix(t, 8) {
            return Ok(m);
        }
    }
    Err("expected three octal digits".into())
}

/// A umask: one to four octal digits (`022`, `0027`).
pub fn parse_umask(s: &str) -> Result<u32, String> {
    let t = s.trim();
    if (1..=4).contains(&t.len()) {
        if let Ok(m) = u32::from_str_radix(t, 8) {
            if m <= 0o777 {
                return Ok(m);
            }
        }
    }
    Err("expected octal digits (022)".into())
}

/// A signal: a number (as uWSGI takes it) or a name (`SIGTERM`, `TERM`).
pub fn parse_signal(s: &str) -> Result<i32, String> {
    let t = s.trim();
    let sig = match t.parse::<i32>() {
        Ok(n) => nix::sys::signal::Signal::try_from(n).ok(),
        Err(_) => {
            let name = t.to_ascii_uppercase();
            let name = if name.starts_with("SIG") {
                name
            } else {
                format!("SIG{name}")
            };
            name.parse::<nix::sys::signal::Signal>().ok()
        }
    };
    match sig {
        Some(nix::sys::signal::Signal::SIGKILL)
        | Some(nix::sys::signal::Signal::SIGSTOP)
        | None => Err("expected a signal that can be caught (15, SIGTERM, SIGUSR1, ...)".into()),
        Some(sig) => Ok(sig as i32),
    }
}

/// Whether `s` is an HTTP header name (RFC 9110 token).
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn umasks_and_tokens() {
        assert_eq!(parse_umask("022"), Ok(0o022));
        assert_eq!(parse_umask("0027"), Ok(0o027));
        assert_eq!(parse_umask("7"), Ok(0o7));
        assert!(parse_umask("").is_err());
        assert!(parse_umask("0999").is_err());
        assert!(parse_umask("07777").is_err());
        assert_eq!(parse_signal("15"), Ok(15));
        assert_eq!(parse_signal("SIGUSR1"), Ok(libc::SIGUSR1));
        assert_eq!(parse_signal("term"), Ok(libc::SIGTERM));
        assert!(parse_signal("9").is_err());
        assert!(parse_signal("SIGNOPE").is_err());
        assert!(is_token("X-Frame-Options"));
        assert!(!is_token("Bad Header"));
        assert!(!is_token(""));
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address(":9090").unwrap(),
            Address::Tcp("0.0.0.0:9090".parse().unwrap())
        );
        assert_eq!(
            parse_address("127.0.0.1:0").unwrap(),
            Address::Tcp("127.0.0.1:0".parse().unwrap())
        );
        assert_eq!(
            parse_address("[::1]:80").unwrap(),
            Address::Tcp("[::1]:80".parse().unwrap())
        );
        assert_eq!(
            parse_address("/tmp/app.sock").unwrap(),
            Address::Unix("/tmp/app.sock".into())
        );
        assert_eq!(
            parse_address("app.sock").unwrap(),
            Address::Unix("app.sock".into())
        );
        assert!(parse_address("127.0.0.1:http").is_err());
        assert!(parse_address("").is_err());
    }

    #[test]
    fn modules() {
        let a = parse_module("pkg.app:create_app()", "application").unwrap();
        assert_eq!(a.source, AppSource::Module("pkg.app".into()));
        assert_eq!(a.callable, "create_app()");
        assert_eq!(
            parse_module("wsgi", "application").unwrap().callable,
            "application"
        );
        assert!(parse_module(":app", "application").is_err());
    }

    #[test]
    fn uwsgi_truthiness() {
        for t in ["", "1", "true", "True", "yes", "true ; comment", "on"] {
            assert!(parse_bool(t), "{t:?}");
        }
        for f in ["false", "OFF", "no", "0"] {
            assert!(!parse_bool(f), "{f:?}");
        }
    }

    #[test]
    fn numbers_and_modes() {
        assert_eq!(parse_number("60   ; comment"), Ok(60));
        assert_eq!(parse_number("4"), Ok(4));
        assert!(parse_number("x").is_err());
        assert!(parse_number("-3").is_err());
        assert_eq!(parse_mode(""), Ok(0o666));
        assert_eq!(parse_mode("660"), Ok(0o660));
        assert!(parse_mode("66").is_err());
        assert!(parse_mode("999").is_err());
    }
}
