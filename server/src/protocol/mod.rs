//! The listeners' connection drivers: [`uwsgi`] for uwsgi sockets and
//! [`http`] for HTTP sockets. Both turn a request into CGI vars, lease a
//! worker and drive an [`crate::exchange::Exchange`]; they differ only in how
//! they read requests and write responses.

pub mod http;
pub mod response;
pub mod uwsgi;

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
}
