//! `worker-accept`: workers accept connections on the uwsgi sockets
//! themselves, as uWSGI's workers do, so a request from nginx never crosses
//! the master (README "Behind nginx"). The master still owns and binds the
//! sockets (the prototype inherits them), keeps HTTP sockets, signals,
//! scaling, harakiri and the stats; what it no longer sees of these
//! requests the workers write on the board (`board.rs`).
//!
//! A connection is served the way the master's uwsgi driver
//! (`protocol/uwsgi.rs`) serves one, in the same words: the packet read
//! with `proto` into a buffer bounded by `buffer-size` within
//! `socket-timeout`, ping (modifier1 100) and signal (110) packets
//! answered, the response written as raw HTTP, the request line logged,
//! the connection closed. The app's side does not change: the request
//! goes through the worker's channel code ([`super::channel::Channel`]),
//! whose frames a [`Client`] turns into socket reads and writes.
//!
//! Failures stay visible: a worker that dies mid-request closes the
//! connection before a response (nginx answers 502); on TCP the socket
//! lingers 0 until the response is complete, so a death after the
//! response started resets the connection.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use rwsgi_proto::{Header, Modifier1, Status};

use crate::board::Board;
use crate::ipc::{self, Kind};
use crate::protocol::{response, uwsgi};
use crate::reqlog;

/// The variable that hands the uwsgi sockets to the prototype: `FD:t` or
/// `FD:u` (TCP or unix), comma-separated.
pub const LISTEN_FDS_ENV: &str = "RWSGI_LISTEN_FDS";

/// A uwsgi socket the workers accept on.
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
    tcp: bool,
}

/// What the prototype sets up before it forks.
#[derive(Debug)]
pub struct Direct {
    /// The uwsgi sockets.
    pub listeners: Vec<Listener>,
    /// Where the requests are counted for the master.
    pub board: Board,
    /// `buffer-size`, `max-vars`.
    pub limits: rwsgi_proto::Limits,
    /// How long a peer may stall.
    pub socket_timeout: Duration,
    /// Which requests get a log line.
    pub log_rules: reqlog::Rules,
    /// `log-format`.
    pub log_format: Option<reqlog::Template>,
    /// `add-header`.
    pub add_headers: Vec<(String, String)>,
    /// `limit-post` (0: none).
    pub limit_post: u64,
}

static DIRECT: OnceLock<Direct> = OnceLock::new();

/// Installs the set-up (prototype, before any fork).
pub fn set(d: Direct) {
    let _ = DIRECT.set(d);
}

/// The set-up, when workers accept.
pub fn get() -> Option<&'static Direct> {
    DIRECT.get()
}

/// Takes the sockets the master left open for this process, as
/// [`LISTEN_FDS_ENV`] lists them.
///
/// # Safety
/// Each fd listed must be open and owned by nothing else in this process.
pub unsafe fn inherit(list: &str) -> io::Result<Vec<Listener>> {
    let mut out = Vec::new();
    for item in list.split(',').filter(|s| !s.is_empty()) {
        let (fd, kind) = item.split_once(':').unwrap_or((item, "u"));
        let fd: RawFd = fd
            .parse()
            .map_err(|_| io::Error::other(format!("bad listener fd {item:?}")))?;
        // SAFETY: the caller guarantees the fd is ours alone.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        set_flags(fd.as_raw_fd())?;
        out.push(Listener {
            fd,
            tcp: kind == "t",
        });
    }
    Ok(out)
}

/// Close-on-exec (the app's subprocesses must not hold the socket) and
/// non-blocking (a worker that loses the race for a connection goes back
/// to waiting).
fn set_flags(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFD);
        if fl < 0 || libc::fcntl(fd, libc::F_SETFD, fl | libc::FD_CLOEXEC) < 0 {
            return Err(io::Error::last_os_error());
        }
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl < 0 || libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// What woke a waiting worker thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The master's channel has something (or closed).
    Channel,
    /// A connection waits on this listener (by index).
    Listener(usize),
    /// Nothing (the wait timed out, or a signal interrupted it).
    Nothing,
}

/// Waits up to `timeout_ms` (-1: for ever) for the channel `chan` or a
/// connection; the channel first (STOP and uWSGI signals go before new
/// requests). Called without the GIL.
pub fn wait(chan: RawFd, d: &Direct, timeout_ms: i32) -> Wake {
    let mut fds: Vec<libc::pollfd> = std::iter::once(chan)
        .chain(d.listeners.iter().map(|l| l.fd.as_raw_fd()))
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let n = fds.len() as libc::nfds_t;
    // SAFETY: `fds` is a valid array of `n` pollfds for the call.
    if unsafe { libc::poll(fds.as_mut_ptr(), n, timeout_ms) } <= 0 {
        return Wake::Nothing;
    }
    if fds[0].revents != 0 {
        return Wake::Channel;
    }
    fds[1..]
        .iter()
        .position(|p| p.revents & libc::POLLIN != 0)
        .map_or(Wake::Nothing, Wake::Listener)
}

/// Accepts a connection on listener `i`: (socket, TCP or not); `None`
/// when another worker took it first.
pub fn accept(d: &Direct, i: usize) -> Option<(OwnedFd, bool)> {
    let l = d.listeners.get(i)?;
    // SAFETY: accept4 on a listening socket we own; no address wanted.
    let fd = unsafe {
        libc::accept4(
            l.fd.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    };
    // SAFETY: a new fd accept4 gave us.
    (fd >= 0).then(|| (unsafe { OwnedFd::from_raw_fd(fd) }, l.tcp))
}

/// One request from a connection this worker accepted: the REQUEST frame
/// payload the app's code reads, and the client it answers.
#[derive(Debug)]
pub struct Request {
    /// As the master would have sent it (`ipc::request_frame`).
    pub payload: Vec<u8>,
    /// The connection.
    pub client: Client,
}

fn set_opt<T>(fd: RawFd, level: i32, name: i32, value: &T) {
    // SAFETY: setsockopt on a socket we own with a value of its size.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        );
    }
}

fn set_linger(fd: RawFd, on: bool) {
    let l = libc::linger {
        l_onoff: i32::from(on),
        l_linger: 0,
    };
    set_opt(fd, libc::SOL_SOCKET, libc::SO_LINGER, &l);
}

/// `recv`, bounded by the socket's receive timeout.
fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: recv(2) into a buffer we own, of its length.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `send` of everything, bounded by the socket's send timeout.
fn send_all(fd: RawFd, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        // SAFETY: send(2) from a buffer we own, of its length.
        let n = unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        data = &data[n as usize..];
    }
    Ok(())
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Reads one packet from a connection just accepted; `None` when there is
/// no request for the app (a ping, a signal, a refused packet: each
/// answered and logged here). Called without the GIL.
pub fn read_request(fd: OwnedFd, tcp: bool, d: &Direct, slot: u32, core: u16) -> Option<Request> {
    let started = Instant::now();
    let start_time = SystemTime::now();
    let raw = fd.as_raw_fd();
    let tv = libc::timeval {
        tv_sec: libc::time_t::try_from(d.socket_timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_usec: libc::suseconds_t::from(d.socket_timeout.subsec_micros() as i32),
    };
    set_opt(raw, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv);
    set_opt(raw, libc::SOL_SOCKET, libc::SO_SNDTIMEO, &tv);
    let peer = "-";
    let max = usize::from(d.limits.max_block) + rwsgi_proto::HEADER_LEN;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let (header, used) = loop {
        match rwsgi_proto::decode_frame(&buf, &d.limits) {
            Ok(Status::Complete((frame, used))) => break (frame.header, used),
            Ok(Status::Partial { needed }) => {
                // `needed` never passes `max` (a larger block is an error
                // above), so the buffer stays under `max` + 4 KiB.
                let old = buf.len();
                let want = needed.max(old + 4096).min(max + 4096).saturating_sub(old);
                if want == 0 {
                    return None;
                }
                buf.resize(old + want, 0);
                let got = recv(raw, &mut buf[old..]);
                buf.truncate(old + *got.as_ref().unwrap_or(&0));
                match got {
                    Ok(0) => {
                        if old > 0 {
                            tracing::info!(event = "uwsgi_truncated", %peer, got = old, "uwsgi packet truncated by the peer");
                        }
                        return None;
                    }
                    Ok(_) => {}
                    Err(e) if timed_out(&e) => {
                        tracing::info!(event = "uwsgi_timeout", %peer, "timeout reading the uwsgi packet, connection dropped");
                        return None;
                    }
                    Err(e) => {
                        tracing::debug!(event = "read_failed", %peer, cause = %e, "read failed");
                        return None;
                    }
                }
            }
            Err(e) => {
                uwsgi::log_invalid(&e, &buf, peer);
                return None;
            }
        }
    };
    if header.modifier1 == Modifier1::PING {
        tracing::info!(event = "ping", %peer, "PING");
        let _ = send_all(raw, &Header::PONG.to_bytes());
        return None;
    }
    if header.modifier1 == Modifier1::SIGNAL {
        let sig = header.modifier2.0;
        let sent = super::signals::raise(sig);
        tracing::debug!(event = "remote_signal", %peer, signum = sig, sent, "uwsgi signal raised by a packet");
        let reply = Header::new(
            Modifier1::RESPONSE,
            0,
            rwsgi_proto::Modifier2(u8::from(sent)),
        );
        let _ = send_all(raw, &reply.to_bytes());
        return None;
    }
    if !header.modifier1.is_wsgi() {
        tracing::info!(event = "unavailable_modifier", %peer, modifier1 = header.modifier1.0,
            "-- unavailable modifier requested: {} --", header.modifier1.0);
        return None;
    }
    let block = buf.get(rwsgi_proto::HEADER_LEN..used).unwrap_or_default();
    let frame = rwsgi_proto::Frame { header, block };
    let vars = match frame.vars(&d.limits) {
        Ok(v) => v,
        Err(e) => {
            uwsgi::log_invalid(&e, &buf[..used], peer);
            return None;
        }
    };
    let Some(content_length) =
        rwsgi_proto::content_length(vars.get(b"CONTENT_LENGTH").unwrap_or_default())
    else {
        tracing::info!(event = "bad_content_length", %peer, "Invalid (too big) CONTENT_LENGTH. skip.");
        return None;
    };
    let protocol = vars.get(b"SERVER_PROTOCOL").unwrap_or_default().to_vec();
    if d.limit_post > 0 && content_length > d.limit_post {
        tracing::info!(event = "limit_post", %peer, content_length, "Invalid (too big) CONTENT_LENGTH. skip.");
        let _ = send_all(raw, &response::generated(&protocol, 413));
        return None;
    }
    if tcp {
        // Until the response is complete, closing means failing.
        set_linger(raw, true);
    }
    let frame = ipc::request_frame(header.modifier1.0, content_length, block);
    let payload = frame.get(ipc::FRAME_HEADER..).unwrap_or_default().to_vec();
    let mut early = buf.split_off(used);
    early.truncate(usize::try_from(content_length).unwrap_or(usize::MAX));
    buf.drain(..rwsgi_proto::HEADER_LEN);
    Some(Request {
        payload,
        client: Client {
            left: content_length - early.len() as u64,
            early: Bytes::from(early),
            fd,
            tcp,
            protocol,
            block: buf,
            modifier1: header.modifier1.0,
            started,
            start_time,
            out: Vec::with_capacity(8 * 1024),
            status: 0,
            headers: 0,
            header_bytes: 0,
            body_bytes: 0,
            ok: true,
            aborted: false,
            want: None,
            slot,
            core,
        },
    })
}

/// A connection a worker serves itself, seen from the app's side as the
/// master's end of the channel: the frames the worker pushes become raw
/// HTTP on the socket, and a READ is answered from the socket.
#[derive(Debug)]
pub struct Client {
    fd: OwnedFd,
    tcp: bool,
    /// Body bytes that came with the packet, not yet given to the app.
    early: Bytes,
    /// Body bytes still on the socket.
    left: u64,
    /// `SERVER_PROTOCOL`.
    protocol: Vec<u8>,
    /// The vars block, for the log line.
    block: Vec<u8>,
    modifier1: u8,
    started: Instant,
    start_time: SystemTime,
    /// Response bytes not yet written.
    out: Vec<u8>,
    status: u16,
    headers: usize,
    header_bytes: usize,
    body_bytes: u64,
    /// The peer still takes what is written.
    ok: bool,
    /// The app failed after the response started.
    aborted: bool,
    /// The app asked for this many body bytes (a READ frame).
    want: Option<u32>,
    slot: u32,
    core: u16,
}

impl Client {
    /// Takes a frame the app's code pushed towards the master.
    pub fn push(&mut self, kind: Kind, payload: &[u8]) {
        let Some(d) = get() else { return };
        match kind {
            Kind::Head => match ipc::parse_head(Bytes::copy_from_slice(payload)) {
                Ok(head) => {
                    self.status = head.code().unwrap_or(0);
                    self.headers = head.headers.len();
                    self.header_bytes =
                        response::encode_head(&self.protocol, &head, &d.add_headers, &mut self.out);
                }
                Err(e) => {
                    tracing::error!(event = "bad_head", cause = %e, "the response head cannot be sent");
                    self.aborted = true;
                }
            },
            Kind::Chunk => {
                self.body_bytes += payload.len() as u64;
                if self.ok {
                    self.out.extend_from_slice(payload);
                }
            }
            Kind::Abort => self.aborted = true,
            Kind::Read => {
                let n = payload.get(..4).and_then(|b| b.try_into().ok());
                self.want = Some(n.map_or(0, u32::from_le_bytes));
            }
            Kind::Harakiri => {
                let secs = payload.get(..4).and_then(|b| b.try_into().ok());
                d.board
                    .deadline(self.slot, self.core, secs.map_or(0, u32::from_le_bytes));
            }
            _ => {}
        }
    }

    /// Response bytes not yet written.
    pub fn pending(&self) -> usize {
        self.out.len()
    }

    /// Writes what the app produced; a peer that went away is logged once
    /// (uWSGI's words) and the rest of the response is dropped: the app's
    /// request still ends normally. Called without the GIL.
    pub fn flush(&mut self) {
        if self.ok && !self.out.is_empty() {
            if let Err(e) = send_all(self.fd.as_raw_fd(), &self.out) {
                self.ok = false;
                if timed_out(&e) {
                    tracing::info!(
                        event = "write_timeout",
                        "uwsgi_response_write_body_do(): timeout"
                    );
                } else {
                    tracing::info!(event = "write_failed", cause = %e, "uwsgi_response_write_body_do(): {e}");
                }
            }
        }
        self.out.clear();
    }

    /// The body bytes the app asked for with its READ (empty at the end
    /// of the body, or when the peer stalls or leaves: `wsgi.input` then
    /// raises). Called without the GIL.
    pub fn read_body(&mut self) -> Vec<u8> {
        let want = self.want.take().unwrap_or(0) as usize;
        if !self.early.is_empty() {
            let n = want.min(self.early.len());
            return self.early.split_to(n).to_vec();
        }
        let n = want.min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if n == 0 {
            return Vec::new();
        }
        let mut buf = vec![0u8; n];
        match recv(self.fd.as_raw_fd(), &mut buf) {
            Ok(got) => {
                buf.truncate(got);
                self.left -= got as u64;
                buf
            }
            Err(e) => {
                if timed_out(&e) {
                    tracing::info!(event = "body_timeout", "timeout reading the request body");
                }
                Vec::new()
            }
        }
    }

    /// Ends the request: the rest of the response written, the connection
    /// closed (reset if the response failed midway), the request counted
    /// on the board and logged. `served` says who served it.
    pub fn finish(mut self, exception: bool, served: reqlog::Served) {
        self.flush();
        let fd = self.fd.as_raw_fd();
        if self.aborted {
            uwsgi::reset(fd);
        } else if self.tcp {
            set_linger(fd, false);
        }
        drop(self.fd);
        let Some(d) = get() else { return };
        let tx = self.header_bytes as u64 + self.body_bytes;
        let total = d.board.end(self.slot, self.core, exception, tx);
        let elapsed = self.started.elapsed();
        if !served.log_this && !d.log_rules.wanted(self.status, elapsed, self.body_bytes) {
            return;
        }
        let Ok(vars) = ipc::own_vars(&self.block) else {
            return;
        };
        let lookup = |k: &[u8]| vars.get(k);
        let entry = reqlog::Entry {
            pid: served.pid,
            wid: served.wid,
            core: served.core,
            modifier1: self.modifier1,
            lookup: Some(&lookup),
            worker_requests: served.worker_requests,
            total_requests: total,
            remote_addr: d.log_rules.address(
                vars.get(b"REMOTE_ADDR").unwrap_or_default(),
                vars.get(b"HTTP_X_FORWARDED_FOR"),
            ),
            remote_user: vars.get(b"REMOTE_USER").unwrap_or_default(),
            vars: vars.len() * 2,
            vars_bytes: self.block.len(),
            start: Some(self.start_time),
            method: vars.get(b"REQUEST_METHOD").unwrap_or_default(),
            uri: vars.get(b"REQUEST_URI").unwrap_or_default(),
            body_bytes: self.body_bytes,
            elapsed,
            protocol: &self.protocol,
            status: self.status,
            headers: self.headers,
            header_bytes: self.header_bytes,
            logvars: &served.logvars,
        };
        reqlog::log(&entry, d.log_format.as_ref(), &d.log_rules);
    }
}
