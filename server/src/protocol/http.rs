//! The connection driver for HTTP sockets, on hyper: keep-alive, pipelining,
//! chunked bodies both ways, HTTP/1.0, `Expect: 100-continue` (hyper answers
//! it when the app first reads the body), header-size limits (431) and a
//! header read timeout.
//!
//! A response whose END is already buffered when its head arrives is sent
//! with a known length; otherwise the body streams from a task that keeps
//! driving the exchange. If the worker fails after the head went out, the
//! body ends with an error, so hyper closes the connection without finishing
//! the body (no silent truncation).

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tokio::sync::{mpsc, watch};

use super::Ctx;
use crate::dispatch::{Done, Unavailable};
use crate::environ::{self, ConnInfo};
use crate::exchange::{BodySource, Event, Exchange, StartError};
use crate::ipc;
use crate::reqlog;

/// A response body: whole, or streamed from the exchange task.
#[derive(Debug)]
pub enum RespBody {
    /// All of it.
    Full(Option<Bytes>),
    /// Chunks as they come; an `Err` aborts the connection.
    Stream(mpsc::Receiver<Result<Bytes, io::Error>>),
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            RespBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            RespBody::Stream(rx) => rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, RespBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RespBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            RespBody::Full(None) => SizeHint::with_exact(0),
            RespBody::Stream(_) => SizeHint::default(),
        }
    }
}

/// The request body, read from hyper's `Incoming`.
struct HttpBody {
    incoming: Incoming,
    pending: Bytes,
}

impl BodySource for HttpBody {
    async fn read(&mut self, max: usize) -> io::Result<Bytes> {
        while self.pending.is_empty() {
            match self.incoming.frame().await {
                None => return Ok(Bytes::new()),
                Some(Err(e)) => return Err(io::Error::other(e)),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.pending = data;
                    }
                }
            }
        }
        let n = max.min(self.pending.len());
        Ok(self.pending.split_to(n))
    }
}

/// Serves an accepted HTTP connection: with `enable-proxy-protocol`, its
/// PROXY header first gives the client's address (`proxy.rs`); one that
/// does not parse closes the connection with a logged reason.
pub async fn serve_accepted<S>(
    mut stream: S,
    mut conn: ConnInfo,
    ctx: Arc<Ctx>,
    shutdown: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    if !ctx.proxy_protocol {
        return serve(stream, conn, ctx, shutdown).await;
    }
    match super::proxy::read_header(&mut stream, ctx.socket_timeout).await {
        Ok((header, rest)) => {
            if let super::proxy::Header::Client(ip, port) = header {
                conn.remote_addr = super::ip_string(ip);
                conn.remote_port = port.to_string();
            }
            serve(
                super::proxy::Prefixed::new(rest, stream),
                conn,
                ctx,
                shutdown,
            )
            .await;
        }
        Err(e) => {
            tracing::info!(event = "proxy_header_invalid", peer = %conn.remote_addr, cause = %e,
            "closing the connection: {e}")
        }
    }
}

/// Serves one HTTP connection until it closes or shutdown is signalled.
pub async fn serve<S>(stream: S, conn: ConnInfo, ctx: Arc<Ctx>, mut shutdown: watch::Receiver<bool>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let conn = Arc::new(conn);
    let service = hyper::service::service_fn(move |req| {
        let ctx = ctx.clone();
        let conn = conn.clone();
        async move { Ok::<_, Infallible>(handle(req, &conn, &ctx).await) }
    });
    let io = hyper_util::rt::TokioIo::new(stream);
    let builder = {
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(Some(std::time::Duration::from_secs(10)))
            .max_headers(200)
            .max_buf_size(usize::from(u16::MAX).max(8192) + 8192)
            .keep_alive(true);
        b
    };
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!(event = "http_conn_error", cause = %e, "http connection ended with an error");
            }
            return;
        }
        _ = shutdown.wait_for(|s| *s) => {}
    }
    conn.as_mut().graceful_shutdown();
    if let Err(e) = conn.await {
        tracing::debug!(event = "http_conn_error", cause = %e, "http connection ended with an error");
    }
}

fn simple(code: StatusCode) -> Response<RespBody> {
    let body = format!(
        "{} {}\n",
        code.as_u16(),
        code.canonical_reason().unwrap_or("")
    );
    let mut r = Response::new(RespBody::Full(Some(Bytes::from(body))));
    *r.status_mut() = code;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    r
}

/// The response the routing made (`routing.rs`). An HTTP client must get
/// an answer: where the routing closes the request (`break`), a 500.
fn routed(decision: crate::routing::Decision) -> Response<RespBody> {
    let a = match decision {
        crate::routing::Decision::Respond(a) => a,
        _ => return simple(StatusCode::INTERNAL_SERVER_ERROR),
    };
    let status = StatusCode::from_u16(a.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = Response::new(RespBody::Full(Some(Bytes::from(a.body))));
    *r.status_mut() = status;
    let headers = r.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    for (k, v) in a.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
            headers.append(k, v);
        }
    }
    r
}

async fn handle(req: Request<Incoming>, conn: &ConnInfo, ctx: &Arc<Ctx>) -> Response<RespBody> {
    let started = Instant::now();
    let start_time = SystemTime::now();
    let (parts, incoming) = req.into_parts();
    let protocol = match parts.version {
        hyper::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    let uri = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let vars = environ::from_http(
        parts.method.as_str(),
        uri.as_bytes(),
        protocol,
        parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes())),
        conn,
    );
    let Some(mut block) = ctx.vars_block(&vars) else {
        return simple(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    };
    let chunked = parts
        .headers
        .get(hyper::header::TRANSFER_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"));
    let body_len = match parts.headers.get(hyper::header::CONTENT_LENGTH) {
        _ if chunked => ipc::BODY_UNTIL_EOF,
        Some(v) => match std::str::from_utf8(v.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
        {
            Some(n) => n,
            None => return simple(StatusCode::BAD_REQUEST),
        },
        None => 0,
    };
    let mut log = LogInfo {
        vars,
        block_len: block.len(),
        start_time,
        started,
        protocol,
        rules: ctx.log_rules,
        template: ctx.log_format.clone(),
        header_bytes: 0,
    };
    let head_only = parts.method == hyper::Method::HEAD;
    let mut route_headers = Vec::new();
    let mut route_file = None;
    if !ctx.routes.is_empty() {
        match ctx.routes.run(|k| log.var(k.as_bytes())) {
            crate::routing::Decision::Pass(p) => {
                if p.rewritten() {
                    // `rewrite`, `addvar`, `set*`: the worker gets the
                    // variables as the routing left them.
                    p.apply(&mut log.vars);
                    let Some(new) = ctx.vars_block(&log.vars) else {
                        return simple(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
                    };
                    block = new;
                }
                route_headers = p.headers;
            }
            crate::routing::Decision::Static(path, h) => {
                route_headers = h;
                route_file = Some(path);
            }
            decision => {
                let response = routed(decision);
                let body = response.size_hint().exact().unwrap_or(0);
                return log.by_master(response, body);
            }
        }
    }
    let extra = ctx.added_headers(route_headers);
    let get_or_head = parts.method == hyper::Method::GET || head_only;
    let path_info = || log.var(b"PATH_INFO").unwrap_or_default();
    let Ok(file) = ctx.static_file(route_file, get_or_head, path_info) else {
        log.write_served(reqlog::Served::by_master(), 404, 1, 0);
        return simple(StatusCode::NOT_FOUND);
    };
    if let Some(found) = file {
        let header = |name| parts.headers.get(name).map(|v| v.as_bytes());
        let uri = log.var(b"REQUEST_URI").unwrap_or_default();
        let plan = ctx.statics.plan(
            &found,
            crate::staticfiles::Ask {
                if_modified_since: header(hyper::header::IF_MODIFIED_SINCE),
                range: header(hyper::header::RANGE),
                if_range: header(hyper::header::IF_RANGE),
                accept_encoding: header(hyper::header::ACCEPT_ENCODING),
                expires: ctx.statics.expires_now(&found, path_info(), uri),
            },
        );
        let (response, sent) = static_response(plan, head_only, &extra).await;
        return log.by_master(response, sent);
    }
    if ctx.limit_post > 0 && body_len != ipc::BODY_UNTIL_EOF && body_len > ctx.limit_post {
        tracing::info!(
            event = "limit_post",
            content_length = body_len,
            "Invalid (too big) CONTENT_LENGTH. skip."
        );
        return simple(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let request = ipc::request_frame(0, body_len, &block);
    let body = HttpBody {
        incoming,
        pending: Bytes::new(),
    };
    let mut ex = match Exchange::start(&ctx.pool, &request, body).await {
        Ok(ex) => ex,
        Err(StartError::Unavailable(Unavailable::QueueFull)) => {
            tracing::warn!(event = "queue_full", "request queue full, answering 503");
            return simple(StatusCode::SERVICE_UNAVAILABLE);
        }
        Err(StartError::Unavailable(Unavailable::Closed)) => {
            return simple(StatusCode::SERVICE_UNAVAILABLE);
        }
        Err(StartError::Gone(e)) => {
            tracing::error!(event = "worker_failed", cause = %e, "worker failed before the response");
            return simple(StatusCode::BAD_GATEWAY);
        }
    };
    let head = loop {
        match ex.next().await {
            Ok(Event::Head(h)) => break h,
            Ok(Event::Chunk(_)) | Ok(Event::Abort) => {}
            Ok(Event::End(_)) => {
                tracing::error!(event = "no_head", "worker ended a response without a head");
                ex.finish(Done {
                    exception: true,
                    tx: 0,
                });
                return simple(StatusCode::INTERNAL_SERVER_ERROR);
            }
            Err(e) => {
                tracing::error!(event = "worker_died", cause = %e, "worker died during a request");
                ex.discard();
                return simple(StatusCode::BAD_GATEWAY);
            }
        }
    };
    let Some(mut response) = build_head(&head, &extra) else {
        tracing::error!(event = "invalid_head", status = %String::from_utf8_lossy(&head.status), "the app sent an invalid status or header");
        // Dropping the exchange drains it, so the worker can be reused.
        drop(ex);
        return simple(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let code = response.status().as_u16();
    let header_count = head.headers.len();
    // uWSGI counts the status line, the headers and the blank line.
    log.header_bytes = protocol.len()
        + 1
        + head.status.len()
        + 2
        + head
            .headers
            .iter()
            .map(|(k, v)| k.len() + 2 + v.len() + 2)
            .sum::<usize>()
        + 2;
    // Take what is already buffered: a small response is complete here.
    let mut collected: Vec<Bytes> = Vec::new();
    let mut aborted = false;
    while let Some(ev) = ex.next_buffered() {
        match ev {
            Ok(Event::Chunk(c)) => collected.push(c),
            Ok(Event::End(info)) => {
                let body: Bytes = match collected.len() {
                    0 => Bytes::new(),
                    1 => collected.pop().unwrap_or_default(),
                    _ => collected.concat().into(),
                };
                log.write(&ex, &info, code, header_count, body.len() as u64);
                ex.finish(Done {
                    exception: info.exception,
                    tx: body.len() as u64,
                });
                *response.body_mut() = RespBody::Full(Some(body));
                return response;
            }
            Ok(Event::Abort) => {
                // The rest (END) goes through the streaming path, which ends
                // the body with an error.
                aborted = true;
                break;
            }
            Err(_) | Ok(Event::Head(_)) => break,
        }
    }
    let (tx, rx) = mpsc::channel(8);
    *response.body_mut() = RespBody::Stream(rx);
    let state = Streamed {
        collected,
        aborted,
        code,
        headers: header_count,
    };
    tokio::spawn(stream_rest(ex, state, tx, log));
    response
}

/// What the request log line needs after the response went out.
struct LogInfo {
    vars: environ::Vars,
    block_len: usize,
    start_time: SystemTime,
    started: Instant,
    protocol: &'static str,
    rules: reqlog::Rules,
    template: Option<Arc<reqlog::Template>>,
    header_bytes: usize,
}

impl LogInfo {
    /// A request variable.
    fn var(&self, k: &[u8]) -> Option<&[u8]> {
        self.vars
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| &v[..])
    }

    fn write<B: BodySource>(
        &self,
        ex: &Exchange<B>,
        info: &ipc::EndInfo,
        status: u16,
        headers: usize,
        body: u64,
    ) {
        let (wid, pid) = ex.ids();
        let served = reqlog::Served {
            pid,
            wid,
            core: ex.core(),
            worker_requests: info.requests,
            total_requests: ex.total_requests() + 1,
            log_this: info.log_this,
            logvars: info.logvars.clone(),
        };
        self.write_served(served, status, headers, body);
    }

    /// Logs a response the master made (routing, static files) and gives
    /// it back.
    fn by_master(&self, response: Response<RespBody>, body: u64) -> Response<RespBody> {
        let code = response.status().as_u16();
        self.write_served(
            reqlog::Served::by_master(),
            code,
            response.headers().len(),
            body,
        );
        response
    }

    fn write_served(&self, served: reqlog::Served, status: u16, headers: usize, body: u64) {
        let elapsed = self.started.elapsed();
        if !served.log_this && !self.rules.wanted(status, elapsed, body) {
            return;
        }
        let get = |k: &[u8]| self.var(k).unwrap_or_default();
        let lookup = |k: &[u8]| self.var(k);
        let entry = reqlog::Entry {
            pid: served.pid,
            wid: served.wid,
            core: served.core,
            modifier1: 0,
            lookup: Some(&lookup),
            worker_requests: served.worker_requests,
            total_requests: served.total_requests,
            remote_addr: self
                .rules
                .address(get(b"REMOTE_ADDR"), lookup(b"HTTP_X_FORWARDED_FOR")),
            remote_user: b"",
            vars: self.vars.len() * 2,
            vars_bytes: self.block_len,
            start: Some(self.start_time),
            method: get(b"REQUEST_METHOD"),
            uri: get(b"REQUEST_URI"),
            body_bytes: body,
            elapsed,
            protocol: self.protocol.as_bytes(),
            status,
            headers,
            header_bytes: self.header_bytes,
            logvars: &served.logvars,
        };
        reqlog::log(&entry, self.template.as_deref(), &self.rules);
    }
}

/// What the handler learnt before handing the response to [`stream_rest`].
struct Streamed {
    collected: Vec<Bytes>,
    aborted: bool,
    code: u16,
    headers: usize,
}

async fn stream_rest<B: BodySource>(
    mut ex: Exchange<B>,
    state: Streamed,
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    log: LogInfo,
) {
    let Streamed {
        collected,
        mut aborted,
        code,
        headers,
    } = state;
    let mut sent = 0u64;
    let mut client = true;
    for c in collected {
        sent += c.len() as u64;
        client &= tx.send(Ok(c)).await.is_ok();
    }
    loop {
        match ex.next().await {
            Ok(Event::Chunk(c)) => {
                sent += c.len() as u64;
                if client {
                    client = tx.send(Ok(c)).await.is_ok();
                }
            }
            Ok(Event::Abort) => aborted = true,
            Ok(Event::End(info)) => {
                if aborted {
                    let _ = tx
                        .send(Err(io::Error::other("the app failed during the response")))
                        .await;
                }
                log.write(&ex, &info, code, headers, sent);
                ex.finish(Done {
                    exception: info.exception,
                    tx: sent,
                });
                return;
            }
            Ok(Event::Head(_)) => {}
            Err(e) => {
                tracing::error!(event = "worker_died", cause = %e, "worker died during a request");
                ex.discard();
                let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
                return;
            }
        }
    }
}

/// Files up to this size are read whole; larger ones are streamed.
const STATIC_WHOLE: u64 = 1 << 20;

/// A static file as a hyper response, and the body bytes it will carry.
async fn static_response(
    plan: crate::staticfiles::Plan,
    head_only: bool,
    extra: &[(String, String)],
) -> (Response<RespBody>, u64) {
    let found = &plan.file;
    let Some(mut r) = build_head(&plan.head, extra) else {
        return (simple(StatusCode::INTERNAL_SERVER_ERROR), 0);
    };
    let Some((offset, len)) = plan.body.filter(|_| !head_only) else {
        return (r, 0);
    };
    if offset == 0 && len == found.size && len <= STATIC_WHOLE {
        return match tokio::fs::read(&found.path).await {
            Ok(data) => {
                let n = data.len() as u64;
                *r.body_mut() = RespBody::Full(Some(Bytes::from(data)));
                (r, n)
            }
            Err(e) => {
                tracing::error!(event = "static_open_failed", path = %found.path.display(), cause = %e, "cannot read a static file");
                (simple(StatusCode::INTERNAL_SERVER_ERROR), 0)
            }
        };
    }
    let file = match crate::staticfiles::open_at(&found.path, offset).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(event = "static_open_failed", path = %found.path.display(), cause = %e, "cannot open a static file");
            return (simple(StatusCode::INTERNAL_SERVER_ERROR), 0);
        }
    };
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(stream_file(file, len, tx));
    *r.body_mut() = RespBody::Stream(rx);
    (r, len)
}

/// Sends a file's first `size` bytes as body chunks; a short read ends the
/// body with an error (the client must not take it for the whole file).
async fn stream_file(
    mut file: tokio::fs::File,
    size: u64,
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
) {
    use tokio::io::AsyncReadExt;
    let mut left = size;
    while left > 0 {
        let mut buf = bytes::BytesMut::with_capacity(ipc::CHUNK);
        match file.read_buf(&mut buf).await {
            Ok(n) if n > 0 => {
                let n = (n as u64).min(left);
                left -= n;
                buf.truncate(n as usize);
                if tx.send(Ok(buf.freeze())).await.is_err() {
                    return;
                }
            }
            Ok(_) | Err(_) => {
                let _ = tx
                    .send(Err(io::Error::other("static file shrank while being sent")))
                    .await;
                return;
            }
        }
    }
}

/// Converts the app's status and headers (and the `add-header` ones) for
/// hyper; `None` if invalid.
fn build_head(head: &ipc::ResponseHead, extra: &[(String, String)]) -> Option<Response<RespBody>> {
    let code = StatusCode::from_u16(head.code()?).ok()?;
    let mut r = Response::new(RespBody::Full(None));
    *r.status_mut() = code;
    let h = r.headers_mut();
    for (k, v) in &head.headers {
        let name = HeaderName::from_bytes(k).ok()?;
        let value = HeaderValue::from_maybe_shared(v.clone()).ok()?;
        h.append(name, value);
    }
    for (k, v) in extra {
        let name = HeaderName::from_bytes(k.as_bytes()).ok()?;
        let value = HeaderValue::from_str(v).ok()?;
        h.append(name, value);
    }
    Some(r)
}
