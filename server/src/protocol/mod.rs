//! The listeners' connection drivers: [`uwsgi`] for uwsgi sockets and
//! [`http`] for HTTP sockets. Both turn a request into CGI vars, lease a
//! worker and drive an [`crate::exchange::Exchange`]; they differ only in how
//! they read requests and write responses.

pub mod http;
pub mod proxy;
pub mod response;
pub mod uwsgi;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use crate::dispatch::Pool;

/// What every connection task needs.
#[derive(Debug)]
pub struct Ctx {
    /// The workers.
    pub pool: Arc<Pool>,
    /// uwsgi decoder limits (`buffer-size`, `max-vars`).
    pub limits: rwsgi_proto::Limits,
    /// How long a peer may stall.
    pub socket_timeout: Duration,
    /// Which requests get a log line.
    pub log_rules: crate::reqlog::Rules,
    /// `limit-post`: largest declared body (0 = no limit).
    pub limit_post: u64,
    /// `add-header`: added to every response.
    pub add_headers: Vec<(String, String)>,
    /// Static files the master serves itself.
    pub statics: crate::staticfiles::Statics,
    /// The `log-format` template of the request log line, if any.
    pub log_format: Option<Arc<crate::reqlog::Template>>,
    /// `SERVER_NAME` for HTTP requests.
    pub hostname: String,
    /// `enable-proxy-protocol`: HTTP connections may start with a PROXY v1
    /// header (`proxy.rs`).
    pub proxy_protocol: bool,
    /// `route*`: what the master answers itself before any worker.
    pub routes: crate::routing::Rules,
    /// Where a uwsgi packet with modifier1 110 raises a uWSGI signal (the
    /// supervisor).
    pub signals: tokio::sync::mpsc::Sender<crate::master::supervisor::Request>,
}

/// The file the routing named (`static:PATH`) is not there: a 404.
#[derive(Debug)]
pub struct RoutedFileMissing;

impl Ctx {
    /// The static file a request gets, if any: the routing's `static:PATH`
    /// (which must exist), else a `static-map` file for a GET or a HEAD.
    /// `path_info` is only looked up when there are mappings.
    pub fn static_file<'a>(
        &self,
        routed: Option<std::path::PathBuf>,
        get_or_head: bool,
        path_info: impl FnOnce() -> &'a [u8],
    ) -> Result<Option<crate::staticfiles::Found>, RoutedFileMissing> {
        match routed {
            Some(p) => crate::staticfiles::Statics::file(&p)
                .map(Some)
                .ok_or(RoutedFileMissing),
            None if get_or_head && !self.statics.is_empty() => Ok(self.statics.find(path_info())),
            None => Ok(None),
        }
    }

    /// CGI variables as the vars block a worker gets, if it fits
    /// `buffer-size`.
    pub fn vars_block<K: AsRef<[u8]>, V: AsRef<[u8]>>(&self, vars: &[(K, V)]) -> Option<Vec<u8>> {
        let mut block = Vec::with_capacity(1024);
        rwsgi_proto::encode_vars(vars, &mut block).ok()?;
        (block.len() <= usize::from(self.limits.max_block)).then_some(block)
    }

    /// The headers added to every response of a request: `add-header`, then
    /// what its routing added (`addheader`).
    pub fn added_headers(&self, routed: Vec<(String, String)>) -> Cow<'_, [(String, String)]> {
        if routed.is_empty() {
            return Cow::Borrowed(&self.add_headers);
        }
        let mut all = self.add_headers.clone();
        all.extend(routed);
        Cow::Owned(all)
    }
}

/// An address as `REMOTE_ADDR` shows it: an IPv4-mapped IPv6 address as
/// plain IPv4.
pub fn ip_string(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.to_string(), |v4| v4.to_string()),
        v4 => v4.to_string(),
    }
}
