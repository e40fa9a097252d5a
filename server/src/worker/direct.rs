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
///
/// Each thread waits in its own epoll set, where the listeners are
/// registered with `EPOLLEXCLUSIVE`: a connection wakes one idle worker
/// rather than every one (what uWSGI's `thunder-lock` is for; without it
/// uWSGI wakes them all). A worker woken for a connection that it then
/// leaves (its channel had something, or it retires) takes it on its next
/// turn, which starts with a non-blocking accept, or another worker does
/// when the next connection or its one-second wake-up comes. Where the
/// set cannot be made (no fds left), `poll(2)` does the same job, waking
/// everyone.
pub fn wait(chan: RawFd, d: &Direct, timeout_ms: i32) -> Wake {
    WAIT_SET.with_borrow_mut(|set| {
        if set.as_ref().is_none_or(|s| s.chan != chan) {
            *set = match WaitSet::new(chan, d) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(event = "epoll_failed", cause = %e, "cannot make the wait set; every idle worker will wake for each connection");
                    None
                }
            };
        }
        match set {
            Some(s) => s.wait(timeout_ms),
            None => poll_wait(chan, d, timeout_ms),
        }
    })
}

thread_local! {
    static WAIT_SET: std::cell::RefCell<Option<WaitSet>> = const { std::cell::RefCell::new(None) };
}

/// A thread's epoll set: its channel (data 0) and the listeners (data
/// index + 1, exclusive).
#[derive(Debug)]
struct WaitSet {
    ep: OwnedFd,
    chan: RawFd,
}

impl WaitSet {
    fn new(chan: RawFd, d: &Direct) -> io::Result<WaitSet> {
        // SAFETY: epoll_create1 makes a new fd, owned here once checked.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new fd epoll_create1 gave us.
        let ep = unsafe { OwnedFd::from_raw_fd(ep) };
        let set = WaitSet { ep, chan };
        set.add(chan, libc::EPOLLIN, 0)?;
        for (i, l) in d.listeners.iter().enumerate() {
            set.add(
                l.fd.as_raw_fd(),
                libc::EPOLLIN | libc::EPOLLEXCLUSIVE,
                i as u64 + 1,
            )?;
        }
        Ok(set)
    }

    fn add(&self, fd: RawFd, events: i32, data: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: events as u32,
            u64: data,
        };
        // SAFETY: registers an open fd in our epoll set; `ev` is read
        // during the call only.
        if unsafe { libc::epoll_ctl(self.ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn wait(&self, timeout_ms: i32) -> Wake {
        const MAX: usize = 8;
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; MAX];
        // SAFETY: `evs` has room for MAX events for the call.
        let n = unsafe {
            libc::epoll_wait(
                self.ep.as_raw_fd(),
                evs.as_mut_ptr(),
                MAX as i32,
                timeout_ms,
            )
        };
        let ready = evs
            .get(..usize::try_from(n).unwrap_or(0))
            .unwrap_or_default();
        // Copied out of the (packed) events.
        let mut data = ready.iter().map(|e| e.u64);
        if data.clone().any(|d| d == 0) {
            return Wake::Channel;
        }
        data.next()
            .map_or(Wake::Nothing, |d| Wake::Listener(d as usize - 1))
    }
}

/// [`wait`] with `poll(2)`.
fn poll_wait(chan: RawFd, d: &Direct, timeout_ms: i32) -> Wake {
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
/// when another worker took it first. The socket is non-blocking: every
/// wait on it is a `poll` bounded by `socket-timeout`.
pub fn accept(d: &Direct, i: usize) -> Option<(OwnedFd, bool)> {
    let l = d.listeners.get(i)?;
    // SAFETY: accept4 on a listening socket we own; no address wanted.
    let fd = unsafe {
        libc::accept4(
            l.fd.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
        )
    };
    // SAFETY: a new fd accept4 gave us.
    (fd >= 0).then(|| (unsafe { OwnedFd::from_raw_fd(fd) }, l.tcp))
}

/// A connection that is already waiting on any listener, without waiting
/// (under load the next connection is there when a request ends: no
/// `poll` is needed to find it).
pub fn try_accept(d: &Direct) -> Option<(OwnedFd, bool)> {
    (0..d.listeners.len()).find_map(|i| accept(d, i))
}

/// Waits up to `timeout` for `events` on `fd`; false when the time ran
/// out.
fn ready(fd: RawFd, events: i16, timeout: Duration) -> bool {
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        if n >= 0 {
            return n > 0;
        }
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return true;
        }
    }
}

fn timeout_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "timeout")
}

/// Appends what `recv` gives to `buf`, at most `max` bytes, waiting at
/// most `timeout`; 0 at end of file.
fn recv_into(fd: RawFd, buf: &mut Vec<u8>, max: usize, timeout: Duration) -> io::Result<usize> {
    buf.reserve(max);
    loop {
        let spare = buf.spare_capacity_mut();
        let len = spare.len().min(max);
        // SAFETY: recv(2) writes at most `len` bytes into the vector's
        // spare capacity, which has at least that many.
        let n = unsafe { libc::recv(fd, spare.as_mut_ptr().cast(), len, 0) };
        if n >= 0 {
            let n = n as usize;
            // SAFETY: recv initialised the first `n` spare bytes.
            unsafe { buf.set_len(buf.len() + n) };
            return Ok(n);
        }
        wait_to_retry(fd, libc::POLLIN, timeout)?;
    }
}

/// `send` of everything, waiting at most `timeout` each time the peer
/// does not take more.
fn send_all(fd: RawFd, mut data: &[u8], timeout: Duration) -> io::Result<()> {
    while !data.is_empty() {
        // SAFETY: send(2) from a buffer we own, of its length.
        let n = unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL) };
        if n >= 0 {
            data = &data[n as usize..];
            continue;
        }
        wait_to_retry(fd, libc::POLLOUT, timeout)?;
    }
    Ok(())
}

/// After a `recv` or `send` on `fd` failed: `Ok` when it is worth trying
/// again (interrupted, or `events` came within `timeout`), else the error
/// (a timeout as `TimedOut`).
fn wait_to_retry(fd: RawFd, events: i16, timeout: Duration) -> io::Result<()> {
    let e = io::Error::last_os_error();
    match e.kind() {
        io::ErrorKind::Interrupted => Ok(()),
        io::ErrorKind::WouldBlock if ready(fd, events, timeout) => Ok(()),
        io::ErrorKind::WouldBlock => Err(timeout_error()),
        _ => Err(e),
    }
}

fn timed_out(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::TimedOut
}

/// A uwsgi packet read from a connection this worker accepted: its header
/// and vars block, then whatever body bytes came with it.
#[derive(Debug)]
pub struct Packet {
    buf: Vec<u8>,
    header: Header,
    used: usize,
    started: Instant,
    start_time: SystemTime,
}

/// Reads one packet from `fd`, within `socket-timeout`; `None` when the
/// peer closed, stalled or sent a packet `proto` refuses (logged in
/// uWSGI's words). Called without the GIL.
pub fn read_packet(fd: &OwnedFd, d: &Direct) -> Option<Packet> {
    let started = Instant::now();
    let start_time = SystemTime::now();
    let raw = fd.as_raw_fd();
    let peer = "-";
    let max = usize::from(d.limits.max_block) + rwsgi_proto::HEADER_LEN;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let needed = match rwsgi_proto::decode_frame(&buf, &d.limits) {
            Ok(Status::Complete((frame, used))) => {
                let header = frame.header;
                return Some(Packet {
                    buf,
                    header,
                    used,
                    started,
                    start_time,
                });
            }
            Ok(Status::Partial { needed }) => needed,
            Err(e) => {
                uwsgi::log_invalid(&e, &buf, peer);
                return None;
            }
        };
        // `needed` never passes `max` (a larger block is an error above),
        // so the buffer stays under `max` + 4 KiB.
        let old = buf.len();
        let want = needed.max(old + 4096).min(max + 4096).saturating_sub(old);
        match recv_into(raw, &mut buf, want, d.socket_timeout) {
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
}

/// A request as the app's code takes it: what the master would have put
/// in a REQUEST frame, and the vars parsed once.
#[derive(Debug)]
pub struct Parsed<'p> {
    /// Modifier1, body length, vars block.
    pub head: ipc::RequestHead<'p>,
    /// The vars.
    pub vars: rwsgi_proto::Vars<'p>,
    /// `SERVER_PROTOCOL`.
    protocol: &'p [u8],
}

impl Packet {
    /// The request in this packet; `None` when there is none for the app:
    /// a ping, a uWSGI signal or a refused packet, each answered (on `fd`)
    /// and logged here as the master's uwsgi driver does.
    pub fn parse(&self, fd: &OwnedFd, d: &Direct) -> Option<Parsed<'_>> {
        let peer = "-";
        let raw = fd.as_raw_fd();
        let header = self.header;
        if header.modifier1 == Modifier1::PING {
            tracing::info!(event = "ping", %peer, "PING");
            let _ = send_all(raw, &Header::PONG.to_bytes(), d.socket_timeout);
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
            let _ = send_all(raw, &reply.to_bytes(), d.socket_timeout);
            return None;
        }
        if !header.modifier1.is_wsgi() {
            tracing::info!(event = "unavailable_modifier", %peer, modifier1 = header.modifier1.0,
                "-- unavailable modifier requested: {} --", header.modifier1.0);
            return None;
        }
        let packet = self.buf.get(..self.used).unwrap_or_default();
        let block = packet.get(rwsgi_proto::HEADER_LEN..).unwrap_or_default();
        let frame = rwsgi_proto::Frame { header, block };
        let vars = match frame.vars(&d.limits) {
            Ok(v) => v,
            Err(e) => {
                uwsgi::log_invalid(&e, packet, peer);
                return None;
            }
        };
        // One pass for both (the last of duplicates wins, as `get` does).
        let (mut length, mut protocol): (&[u8], &[u8]) = (b"", b"");
        for (k, v) in vars.iter() {
            match k {
                b"CONTENT_LENGTH" => length = v,
                b"SERVER_PROTOCOL" => protocol = v,
                _ => {}
            }
        }
        let Some(content_length) = rwsgi_proto::content_length(length) else {
            tracing::info!(event = "bad_content_length", %peer, "Invalid (too big) CONTENT_LENGTH. skip.");
            return None;
        };
        if d.limit_post > 0 && content_length > d.limit_post {
            tracing::info!(event = "limit_post", %peer, content_length, "Invalid (too big) CONTENT_LENGTH. skip.");
            let _ = send_all(raw, &response::generated(protocol, 413), d.socket_timeout);
            return None;
        }
        Some(Parsed {
            head: ipc::RequestHead {
                modifier1: header.modifier1.0,
                body_len: content_length,
                vars: block,
            },
            vars,
            protocol,
        })
    }
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
    /// The set-up (timeouts, `add-header`, logging, the board).
    d: &'static Direct,
}

impl Client {
    /// The connection `fd` (TCP or not) answering `req`, which `packet`
    /// holds, for thread `core` of worker `slot`: the request starts on
    /// the board (it ends there in [`Client::finish`]).
    pub fn new(
        d: &'static Direct,
        fd: OwnedFd,
        tcp: bool,
        packet: &Packet,
        req: &Parsed<'_>,
        who: (u32, u16),
    ) -> Client {
        if tcp {
            // Until the response is complete, closing means failing.
            uwsgi::reset_on_close(fd.as_raw_fd(), true);
        }
        d.board.begin(who.0, who.1);
        let mut early = packet.buf.get(packet.used..).unwrap_or_default();
        early = early
            .get(..usize::try_from(req.head.body_len).unwrap_or(usize::MAX))
            .unwrap_or(early);
        Client {
            left: req.head.body_len - early.len() as u64,
            early: Bytes::copy_from_slice(early),
            fd,
            tcp,
            protocol: req.protocol.to_vec(),
            modifier1: packet.header.modifier1.0,
            started: packet.started,
            start_time: packet.start_time,
            out: Vec::new(),
            status: 0,
            headers: 0,
            header_bytes: 0,
            body_bytes: 0,
            ok: true,
            aborted: false,
            want: None,
            slot: who.0,
            core: who.1,
            d,
        }
    }

    /// Takes a frame the app's code pushed towards the master.
    pub fn push(&mut self, kind: Kind, payload: &[u8]) {
        let d = self.d;
        match kind {
            Kind::Head => match ipc::head_parts(payload) {
                Ok((status, headers, pairs)) => {
                    self.status = ipc::status_code(status).unwrap_or(0);
                    self.headers = headers;
                    self.header_bytes = response::encode_head(
                        &self.protocol,
                        status,
                        pairs,
                        &d.add_headers,
                        &mut self.out,
                    );
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
            if let Err(e) = send_all(self.fd.as_raw_fd(), &self.out, self.d.socket_timeout) {
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
        let mut buf = Vec::new();
        match recv_into(self.fd.as_raw_fd(), &mut buf, n, self.d.socket_timeout) {
            Ok(got) => {
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

    /// Reads and drops what the app left of the request body (at most
    /// [`uwsgi::DRAIN_BODY_MAX`] within `socket-timeout` in all; that
    /// constant says why).
    fn drain_body(&mut self) {
        let mut left = self.left.min(uwsgi::DRAIN_BODY_MAX);
        let deadline = Instant::now() + self.d.socket_timeout;
        let mut buf = Vec::new();
        while left > 0 {
            let Some(wait) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            buf.clear();
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(64 * 1024);
            match recv_into(self.fd.as_raw_fd(), &mut buf, want, wait) {
                Ok(n) if n > 0 => left -= n as u64,
                _ => break,
            }
        }
    }

    /// Ends the request: the rest of the response written, the connection
    /// closed (reset if the response failed midway), the request counted
    /// on the board and logged. `served` says who served it, `vars` are
    /// the request's.
    pub fn finish(mut self, exception: bool, served: reqlog::Served, vars: &rwsgi_proto::Vars<'_>) {
        self.flush();
        let fd = self.fd.as_raw_fd();
        if self.aborted {
            uwsgi::reset(fd);
        } else {
            if self.ok {
                self.drain_body();
            }
            if self.tcp {
                uwsgi::reset_on_close(fd, false);
            }
        }
        drop(self.fd);
        let d = self.d;
        let tx = self.header_bytes as u64 + self.body_bytes;
        let total = d.board.end(self.slot, self.core, exception, tx);
        let req = uwsgi::Req {
            vars,
            vars_bytes: vars.as_bytes().len(),
            modifier1: self.modifier1,
            started: self.started,
            start_time: self.start_time,
        };
        let served = reqlog::Served {
            total_requests: total,
            ..served
        };
        let sizes = (
            self.status,
            self.body_bytes,
            self.header_bytes,
            self.headers,
        );
        uwsgi::log_uwsgi_request((&d.log_rules, d.log_format.as_ref()), &req, served, sizes);
    }
}
