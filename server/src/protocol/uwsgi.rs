//! The connection driver for uwsgi sockets: read one packet into a bounded
//! buffer, decode it with `proto`, lease a worker, stream the body to it and
//! its response back as raw HTTP, then close (one request per connection, as
//! in uWSGI and as nginx expects: reference §1.7).
//!
//! A malformed or oversized packet closes this connection with a logged
//! reason, in uWSGI's words where uWSGI has them; nothing else is affected.
//! When a worker fails after the response has started, the connection is
//! reset (`SO_LINGER` 0) so that nginx does not pass on a truncated response
//! as a complete one.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use rwsgi_proto::{DecodeError, Header, Modifier1, Status};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf};
use tokio::time::timeout;

use super::Ctx;
use super::response;
use crate::dispatch::Unavailable;
use crate::exchange::{BodySource, Event, Exchange, StartError};
use crate::ipc;
use crate::reqlog;

/// The request body: bytes that came with the packet, then the socket, for
/// exactly `CONTENT_LENGTH` bytes.
struct Body<S> {
    early: Bytes,
    reader: ReadHalf<S>,
    left: u64,
    timeout: std::time::Duration,
}

impl<S: AsyncRead + Send> BodySource for Body<S> {
    async fn read(&mut self, max: usize) -> io::Result<Bytes> {
        let max = max.min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if max == 0 {
            return Ok(Bytes::new());
        }
        let data = if !self.early.is_empty() {
            let n = max.min(self.early.len());
            self.early.split_to(n)
        } else {
            let mut buf = BytesMut::with_capacity(max);
            let n = timeout(self.timeout, self.reader.read_buf(&mut buf))
                .await
                .map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, "timeout reading the request body")
                })??;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "client closed connection",
                ));
            }
            buf.truncate(max);
            buf.freeze()
        };
        self.left -= data.len() as u64;
        Ok(data)
    }
}

/// The most of a request body the app did not read that is read and
/// dropped after its response, before the connection closes: closing a
/// socket with unread bytes resets the connection (TCP sends RST, a unix
/// socket reports `ECONNRESET`), and nginx may then turn the finished
/// response into a 502 — uWSGI's well-known "Connection reset by peer"
/// for apps that answer a POST without reading it. Past this, or past
/// `socket-timeout` in all (a peer trickling its body must not hold a
/// worker), the reset is left to happen.
pub const DRAIN_BODY_MAX: u64 = 16 * 1024 * 1024;

/// Serves one connection.
pub async fn serve<S>(stream: S, peer: String, ctx: Arc<Ctx>)
where
    S: AsyncRead + AsyncWrite + AsRawFd + Send + Unpin + 'static,
{
    let fd = stream.as_raw_fd();
    let max = usize::from(ctx.limits.max_block) + rwsgi_proto::HEADER_LEN;
    let mut buf = BytesMut::with_capacity(4096.min(max));
    let (mut reader, mut writer) = tokio::io::split(stream);
    let started = Instant::now();
    // Read until the packet is complete, the limit is hit, or the peer stalls.
    let (header, used) = loop {
        match rwsgi_proto::decode_frame(&buf, &ctx.limits) {
            Ok(Status::Complete((frame, used))) => break (frame.header, used),
            Ok(Status::Partial { needed }) => {
                buf.reserve(needed.min(max).saturating_sub(buf.len()));
                match timeout(ctx.socket_timeout, reader.read_buf(&mut buf)).await {
                    Ok(Ok(0)) => {
                        if !buf.is_empty() {
                            tracing::info!(event = "uwsgi_truncated", %peer, got = buf.len(), "uwsgi packet truncated by the peer");
                        }
                        return;
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::debug!(event = "read_failed", %peer, cause = %e, "read failed");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(event = "uwsgi_timeout", %peer, "timeout reading the uwsgi packet, connection dropped");
                        return;
                    }
                }
            }
            Err(e) => {
                log_invalid(&e, &buf, &peer);
                return;
            }
        }
    };
    if header.modifier1 == Modifier1::PING {
        tracing::info!(event = "ping", %peer, "PING");
        let _ = writer.write_all(&Header::PONG.to_bytes()).await;
        return;
    }
    if header.modifier1 == Modifier1::SIGNAL {
        let sig = header.modifier2.0;
        let sent = ctx
            .signals
            .try_send(crate::master::supervisor::Request::Signal(sig))
            .is_ok();
        tracing::debug!(event = "remote_signal", %peer, signum = sig, sent, "uwsgi signal raised by a packet");
        let reply = Header::new(
            Modifier1::RESPONSE,
            0,
            rwsgi_proto::Modifier2(u8::from(sent)),
        );
        let _ = writer.write_all(&reply.to_bytes()).await;
        return;
    }
    if !header.modifier1.is_wsgi() {
        tracing::info!(event = "unavailable_modifier", %peer, modifier1 = header.modifier1.0,
            "-- unavailable modifier requested: {} --", header.modifier1.0);
        return;
    }
    let packet = buf.split_to(used).freeze();
    let early = buf.freeze();
    let block = packet.slice(rwsgi_proto::HEADER_LEN..);
    let frame = rwsgi_proto::Frame {
        header,
        block: &block,
    };
    let vars = match frame.vars(&ctx.limits) {
        Ok(v) => v,
        Err(e) => {
            log_invalid(&e, &packet, &peer);
            return;
        }
    };
    let Some(content_length) =
        rwsgi_proto::content_length(vars.get(b"CONTENT_LENGTH").unwrap_or_default())
    else {
        tracing::info!(event = "bad_content_length", %peer, "Invalid (too big) CONTENT_LENGTH. skip.");
        return;
    };
    let protocol = vars.get(b"SERVER_PROTOCOL").unwrap_or_default();
    let req = Req {
        vars: &vars,
        vars_bytes: block.len(),
        modifier1: header.modifier1.0,
        started,
        start_time: SystemTime::now(),
    };
    let method = vars.get(b"REQUEST_METHOD").unwrap_or_default();
    let mut route_headers = Vec::new();
    let mut route_file = None;
    // `rewrite`: the new vars block, and the new PATH_INFO if it changed.
    let mut rewritten: Option<(Vec<u8>, Option<String>)> = None;
    if !ctx.routes.is_empty() {
        match ctx.routes.run(|k| vars.get(k.as_bytes())) {
            crate::routing::Decision::Pass(p) => {
                if p.rewritten() {
                    // `rewrite`, `addvar`, `set*`: the worker gets the
                    // variables as the routing left them.
                    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> =
                        vars.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
                    p.apply(&mut pairs);
                    let Some(b) = ctx.vars_block(&pairs) else {
                        write(&mut writer, &response::generated(protocol, 500), &ctx).await;
                        return;
                    };
                    rewritten = Some((b, p.path_info().map(str::to_owned)));
                }
                route_headers = p.headers;
            }
            crate::routing::Decision::Static(path, h) => {
                route_headers = h;
                route_file = Some(path);
            }
            crate::routing::Decision::Close => return,
            crate::routing::Decision::Respond(a) => {
                let (out, head) = response::answer(protocol, &a);
                write(&mut writer, &out, &ctx).await;
                let served = reqlog::Served::by_master();
                let sizes = (a.code(), a.body.len() as u64, head, 0);
                log_request(&ctx, &req, served, sizes);
                return;
            }
        }
    }
    let extra = ctx.added_headers(route_headers);
    let path = || match rewritten.as_ref().and_then(|(_, p)| p.as_deref()) {
        Some(p) => p.as_bytes(),
        None => vars.get(b"PATH_INFO").unwrap_or_default(),
    };
    let get_or_head = method == b"GET" || method == b"HEAD";
    let Ok(file) = ctx.static_file(route_file, get_or_head, path) else {
        write(&mut writer, &response::generated(protocol, 404), &ctx).await;
        log_request(&ctx, &req, reqlog::Served::by_master(), (404, 0, 0, 0));
        return;
    };
    if let Some(found) = file {
        let uri = vars.get(b"REQUEST_URI").unwrap_or_default();
        let plan = ctx.statics.plan(
            &found,
            crate::staticfiles::Ask {
                if_modified_since: vars.get(b"HTTP_IF_MODIFIED_SINCE"),
                range: vars.get(b"HTTP_RANGE"),
                if_range: vars.get(b"HTTP_IF_RANGE"),
                accept_encoding: vars.get(b"HTTP_ACCEPT_ENCODING"),
                expires: ctx.statics.expires_now(&found, path(), uri),
            },
        );
        let head_only = method == b"HEAD";
        let sent = send_static(&mut writer, &ctx, protocol, head_only, plan, &extra).await;
        let (status, body_bytes, header_bytes) = sent;
        let served = reqlog::Served::by_master();
        log_request(&ctx, &req, served, (status, body_bytes, header_bytes, 0));
        return;
    }
    if ctx.limit_post > 0 && content_length > ctx.limit_post {
        // uWSGI drops the connection (nginx then answers 502); a 413 says
        // what happened.
        tracing::info!(event = "limit_post", %peer, content_length, "Invalid (too big) CONTENT_LENGTH. skip.");
        let _ = writer.write_all(&response::generated(protocol, 413)).await;
        return;
    }
    let block = rewritten.as_ref().map_or(&block[..], |(b, _)| &b[..]);
    let request = ipc::request_frame(header.modifier1.0, content_length, block);
    let body = Body {
        early,
        reader,
        left: content_length,
        timeout: ctx.socket_timeout,
    };
    let mut ex = match Exchange::start(&ctx.pool, &request, body).await {
        Ok(ex) => ex,
        Err(StartError::Unavailable(why)) => {
            if why == Unavailable::QueueFull {
                tracing::warn!(event = "queue_full", %peer, "request queue full, answering 503");
            }
            let _ = writer.write_all(&response::generated(protocol, 503)).await;
            return;
        }
        Err(StartError::Gone(e)) => {
            tracing::error!(event = "worker_failed", cause = %e, "worker failed before the response");
            let _ = writer.write_all(&response::generated(protocol, 502)).await;
            return;
        }
    };
    let mut out: Vec<u8> = Vec::with_capacity(8 * 1024);
    let mut status = 0u16;
    let mut headers = 0usize;
    let mut header_bytes = 0usize;
    let mut body_bytes = 0u64;
    let mut written_any = false;
    let mut client_ok = true;
    let mut aborted = false;
    let end = loop {
        match ex.next().await {
            Ok(Event::Head(head)) => {
                status = head.code().unwrap_or(0);
                headers = head.headers.len();
                header_bytes =
                    response::encode_head(protocol, &head.status, head.pairs(), &extra, &mut out);
            }
            Ok(Event::Chunk(data)) => {
                body_bytes += data.len() as u64;
                if client_ok {
                    if out.is_empty() && data.len() >= ipc::CHUNK {
                        client_ok = write(&mut writer, &data, &ctx).await;
                        written_any = true;
                    } else {
                        out.extend_from_slice(&data);
                        if out.len() >= ipc::CHUNK {
                            client_ok = write(&mut writer, &out, &ctx).await;
                            written_any = true;
                            out.clear();
                        }
                    }
                }
            }
            Ok(Event::Abort) => aborted = true,
            Ok(Event::End(info)) => break Some(info),
            Err(e) => {
                tracing::error!(event = "worker_died", cause = %e, "worker died during a request");
                ex.discard();
                break None;
            }
        }
    };
    match end {
        Some(info) => {
            if client_ok && !out.is_empty() {
                write(&mut writer, &out, &ctx).await;
            }
            let (wid, pid) = ex.ids();
            let core = ex.core();
            let total = ex.total_requests() + 1;
            ex.finish(crate::dispatch::Done {
                exception: info.exception,
                tx: header_bytes as u64 + body_bytes,
            });
            // The connection closes when the halves drop (end of body = EOF
            // for nginx); no separate shutdown() call is needed.
            if aborted {
                reset(fd);
            }
            let served = reqlog::Served {
                pid,
                wid,
                core,
                worker_requests: info.requests,
                total_requests: total,
                log_this: info.log_this,
                logvars: info.logvars,
            };
            log_request(
                &ctx,
                &req,
                served,
                (status, body_bytes, header_bytes, headers),
            );
            if !aborted && client_ok {
                ex.drain_body(DRAIN_BODY_MAX, ctx.socket_timeout).await;
            }
        }
        None => {
            if written_any {
                // The response started: make the failure visible.
                reset(fd);
            } else {
                let _ = writer.write_all(&response::generated(protocol, 502)).await;
            }
        }
    }
}

/// What the request line says of the request itself.
#[derive(Debug)]
pub struct Req<'a, 'v> {
    /// The request's vars.
    pub vars: &'a rwsgi_proto::Vars<'v>,
    /// The size of their block.
    pub vars_bytes: usize,
    /// The packet's modifier1.
    pub modifier1: u8,
    /// When the request started, for its duration.
    pub started: Instant,
    /// When the request started, for its date.
    pub start_time: SystemTime,
}

/// Logs a request line when the rules want one. `sizes` is (status, body
/// bytes, header bytes, header count).
fn log_request(
    ctx: &Ctx,
    req: &Req<'_, '_>,
    served: reqlog::Served,
    sizes: (u16, u64, usize, usize),
) {
    let how = (&ctx.log_rules, ctx.log_format.as_deref());
    log_uwsgi_request(how, req, served, sizes);
}

/// The request line of a uwsgi request, as `how` (the rules and the
/// `log-format` template) wants it; the master's driver and a worker that
/// accepted the connection itself (`worker/direct.rs`) both write it.
pub fn log_uwsgi_request(
    how: (&reqlog::Rules, Option<&reqlog::Template>),
    req: &Req<'_, '_>,
    served: reqlog::Served,
    sizes: (u16, u64, usize, usize),
) {
    let (rules, template) = how;
    let Req {
        vars,
        vars_bytes,
        modifier1,
        started,
        start_time,
    } = *req;
    let (status, body_bytes, header_bytes, headers) = sizes;
    let elapsed = started.elapsed();
    if !served.log_this && !rules.wanted(status, elapsed, body_bytes) {
        return;
    }
    let lookup = |k: &[u8]| vars.get(k);
    let entry = reqlog::Entry {
        pid: served.pid,
        wid: served.wid,
        core: served.core,
        modifier1,
        lookup: Some(&lookup),
        worker_requests: served.worker_requests,
        total_requests: served.total_requests,
        remote_addr: rules.address(
            vars.get(b"REMOTE_ADDR").unwrap_or_default(),
            vars.get(b"HTTP_X_FORWARDED_FOR"),
        ),
        remote_user: vars.get(b"REMOTE_USER").unwrap_or_default(),
        vars: vars.len() * 2,
        vars_bytes,
        start: Some(start_time),
        method: vars.get(b"REQUEST_METHOD").unwrap_or_default(),
        uri: vars.get(b"REQUEST_URI").unwrap_or_default(),
        body_bytes,
        elapsed,
        protocol: vars.get(b"SERVER_PROTOCOL").unwrap_or_default(),
        status,
        headers,
        header_bytes,
        logvars: &served.logvars,
    };
    reqlog::log(&entry, template, rules);
}

/// Sends a static file as raw HTTP as `plan` says; returns (status, body
/// bytes, head bytes). The body is read in `ipc::CHUNK` pieces, each write
/// bounded by `socket-timeout`.
async fn send_static<W: AsyncWrite + Unpin>(
    w: &mut W,
    ctx: &Ctx,
    protocol: &[u8],
    head_only: bool,
    plan: crate::staticfiles::Plan,
    extra: &[(String, String)],
) -> (u16, u64, usize) {
    let found = &plan.file;
    let code = plan.head.code().unwrap_or(200);
    let mut head = Vec::with_capacity(256);
    response::encode_head(
        protocol,
        &plan.head.status,
        plan.head.pairs(),
        extra,
        &mut head,
    );
    let Some((offset, len)) = plan.body.filter(|_| !head_only) else {
        write(w, &head, ctx).await;
        return (code, 0, head.len());
    };
    if !write(w, &head, ctx).await {
        return (code, 0, head.len());
    }
    let mut file = match crate::staticfiles::open_at(&found.path, offset).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(event = "static_open_failed", path = %found.path.display(), cause = %e, "cannot open a static file");
            return (code, 0, head.len());
        }
    };
    let mut sent = 0u64;
    let mut buf = BytesMut::with_capacity(ipc::CHUNK);
    while sent < len {
        buf.clear();
        match file.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let n = n.min(usize::try_from(len - sent).unwrap_or(usize::MAX));
                if !write(w, &buf[..n], ctx).await {
                    break;
                }
                sent += n as u64;
            }
        }
    }
    (code, sent, head.len())
}

async fn write<W: AsyncWrite + Unpin>(w: &mut W, data: &[u8], ctx: &Ctx) -> bool {
    match timeout(ctx.socket_timeout, w.write_all(data)).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::info!(event = "write_failed", cause = %e, "uwsgi_response_write_body_do(): {e}");
            false
        }
        Err(_) => {
            tracing::info!(
                event = "write_timeout",
                "uwsgi_response_write_body_do(): timeout"
            );
            false
        }
    }
}

/// Makes the close of this connection a reset, so the peer sees a failure.
pub fn reset(fd: RawFd) {
    reset_on_close(fd, true);
}

/// Whether closing `fd` resets the connection (`SO_LINGER` 0) or closes
/// it normally. A worker that accepts itself (`worker/direct.rs`) turns it
/// on until its response is complete, so that dying midway is a reset.
pub fn reset_on_close(fd: RawFd, on: bool) {
    let linger = libc::linger {
        l_onoff: i32::from(on),
        l_linger: 0,
    };
    // SAFETY: `fd` is the connection's socket, still open (the caller
    // holds it); the option value is a valid `linger` whose size is passed.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Logs why a packet was refused, in uWSGI's words.
pub fn log_invalid(e: &DecodeError, buf: &[u8], peer: &str) {
    match e {
        DecodeError::BlockTooLarge { datasize, max } => {
            let http = buf.len() >= 4
                && [
                    &b"GET "[..],
                    b"POST",
                    b"HEAD",
                    b"PUT ",
                    b"DELE",
                    b"OPTI",
                    b"PATC",
                ]
                .iter()
                .any(|m| buf.starts_with(m));
            tracing::warn!(event = "invalid_block_size", %peer, datasize, max,
                "invalid request block size: {datasize} (max {max})...skip");
            if http {
                tracing::warn!(event = "http_on_uwsgi_socket", %peer,
                    "this looks like plain HTTP sent to a uwsgi socket: use http-socket for HTTP clients, or uwsgi_pass in nginx");
            }
        }
        DecodeError::EmptyKey { offset } => {
            tracing::warn!(event = "invalid_vars", %peer, offset, "uwsgi key cannot be null. skip this var.");
        }
        DecodeError::TooManyVars { max, .. } => {
            tracing::warn!(event = "invalid_vars", %peer, max, "max vec size reached. skip this var.");
        }
        other => {
            tracing::warn!(event = "invalid_vars", %peer, cause = %other, "invalid uwsgi request ({other}). skip.");
        }
    }
}
