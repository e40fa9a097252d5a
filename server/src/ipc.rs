//! Master ⇄ worker messages and their framing, and the master ⇄ prototype
//! control messages. This is an IPC boundary, so the format is versioned
//! ([`VERSION`], carried in every request frame).
//!
//! Request channel (a stream socketpair per worker):
//!
//! ```text
//! frame = kind: u8 | len: u32 LE | payload (len bytes, at most MAX_FRAME)
//!
//! master -> worker  REQUEST  version u8 | modifier1 u8 | body_len u64 LE (u64::MAX: until EOF)
//!                            | uwsgi vars block (the proto crate's encoding)
//!                   BODY     bytes of the request body; empty = end of body
//!                   STOP     exit after the current request (cheap, shutdown)
//!                   SIGNAL   num u8: run the app's handler of this uWSGI signal
//!                            (`uwsgi_signal.rs`), then END as after a request
//! worker -> master  READ     max u32 LE: the app wants up to max body bytes
//!                   HEAD     a vars block: ("STATUS", "200 OK") then the headers in order
//!                   CHUNK    response body bytes
//!                   END      flags u8 (bit 0: the app raised, 1: the worker retires,
//!                            2: log this request) | requests u64 LE (this worker's count)
//!                            | the request's log variables as a vars block (may be empty)
//!                   ABORT    the app failed after the response started: the client
//!                            must see a failure, not a short success
//!                   HARAKIRI seconds u32 LE: the app's own deadline for this request
//!                            (`uwsgi.set_user_harakiri`), 0 = none
//! ```
//!
//! The body is pulled (READ → BODY), so the master reads from the client only
//! as fast as the app consumes, and a 1 GB upload never sits in memory. The
//! response is pushed; the socket buffer is the backpressure.
//!
//! Control channel (a seqpacket socketpair, master ⇄ prototype): fixed
//! 16-byte messages, see [`Control`].

use bytes::{BufMut, Bytes, BytesMut};

/// A pair of connected datagram sockets, close-on-exec and non-blocking:
/// the queues between processes besides the request channels (uWSGI
/// signals, helper inboxes, mule messages). One datagram is one message,
/// so writers never interleave.
pub fn datagram_pair() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    Ok(socketpair(
        AddressFamily::Unix,
        SockType::Datagram,
        None,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
    )?)
}

/// The version of this format.
pub const VERSION: u8 = 3;
/// The largest payload of one frame.
pub const MAX_FRAME: usize = 1 << 20;
/// The size of a frame header.
pub const FRAME_HEADER: usize = 5;
/// The largest body chunk a worker asks for or sends.
pub const CHUNK: usize = 64 * 1024;
/// `body_len` for a body that runs until its end is signalled.
pub const BODY_UNTIL_EOF: u64 = u64::MAX;

/// Frame kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// master → worker: a request.
    Request = 1,
    /// master → worker: body bytes.
    Body = 2,
    /// master → worker: exit when idle.
    Stop = 3,
    /// master → worker: run a uWSGI signal's handler.
    Signal = 4,
    /// worker → master: wants body bytes.
    Read = 16,
    /// worker → master: status and headers.
    Head = 17,
    /// worker → master: body bytes.
    Chunk = 18,
    /// worker → master: the response is complete.
    End = 19,
    /// worker → master: the response failed midway.
    Abort = 20,
    /// worker → master: the app set a deadline for this request.
    Harakiri = 21,
}

impl Kind {
    /// Parses a kind byte.
    pub fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Request,
            2 => Kind::Body,
            3 => Kind::Stop,
            4 => Kind::Signal,
            16 => Kind::Read,
            17 => Kind::Head,
            18 => Kind::Chunk,
            19 => Kind::End,
            20 => Kind::Abort,
            21 => Kind::Harakiri,
            _ => return None,
        })
    }
}

/// Why a frame header is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Unknown kind byte.
    #[error("unknown frame kind {0}")]
    Kind(u8),
    /// Payload over [`MAX_FRAME`].
    #[error("frame of {0} bytes is over the limit")]
    TooLarge(usize),
    /// A payload that does not have the shape its kind needs.
    #[error("malformed {0:?} frame")]
    Malformed(Kind),
}

/// Parses a frame header.
pub fn parse_header(h: [u8; FRAME_HEADER]) -> Result<(Kind, usize), FrameError> {
    let [k, a, b, c, d] = h;
    let kind = Kind::from_u8(k).ok_or(FrameError::Kind(k))?;
    let len = u32::from_le_bytes([a, b, c, d]) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    Ok((kind, len))
}

/// Appends a frame header for a payload of `len` bytes.
pub fn put_header(dst: &mut impl BufMut, kind: Kind, len: usize) {
    dst.put_u8(kind as u8);
    dst.put_u32_le(u32::try_from(len).unwrap_or(u32::MAX));
}

/// Appends a whole frame.
pub fn put_frame(dst: &mut impl BufMut, kind: Kind, payload: &[u8]) {
    put_header(dst, kind, payload.len());
    dst.put_slice(payload);
}

/// The fixed part of a REQUEST payload.
pub const REQUEST_PREFIX: usize = 10;

/// Encodes a REQUEST frame around an already-encoded vars block.
pub fn request_frame(modifier1: u8, body_len: u64, vars_block: &[u8]) -> BytesMut {
    let mut b = BytesMut::with_capacity(FRAME_HEADER + REQUEST_PREFIX + vars_block.len());
    put_header(&mut b, Kind::Request, REQUEST_PREFIX + vars_block.len());
    b.put_u8(VERSION);
    b.put_u8(modifier1);
    b.put_u64_le(body_len);
    b.put_slice(vars_block);
    b
}

/// A decoded REQUEST payload.
#[derive(Debug)]
pub struct RequestHead<'a> {
    /// The uwsgi modifier1 (0 or 30).
    pub modifier1: u8,
    /// Body length, or [`BODY_UNTIL_EOF`].
    pub body_len: u64,
    /// The vars block.
    pub vars: &'a [u8],
}

/// Decodes a REQUEST payload.
pub fn parse_request(p: &[u8]) -> Result<RequestHead<'_>, FrameError> {
    let bad = FrameError::Malformed(Kind::Request);
    let (prefix, vars) = p.split_first_chunk::<REQUEST_PREFIX>().ok_or(bad)?;
    let [version, modifier1, l @ ..] = *prefix;
    if version != VERSION {
        return Err(bad);
    }
    Ok(RequestHead {
        modifier1,
        body_len: u64::from_le_bytes(l),
        vars,
    })
}

/// END flags: the app raised an exception.
pub const END_EXCEPTION: u8 = 1;
/// END flags: the worker retires after this request (`worker/recycle.rs`):
/// it must not be given another one.
pub const END_RETIRE: u8 = 2;
/// END flags: the app asked for this request's log line
/// (`uwsgi.log_this_request()`), whatever the logging rules say.
pub const END_LOG_THIS: u8 = 4;
/// The fixed part of an END payload.
pub const END_PREFIX: usize = 9;

/// A decoded END payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndInfo {
    /// The app raised.
    pub exception: bool,
    /// Requests this worker has served, this one included.
    pub requests: u64,
    /// The worker exits after this request.
    pub retire: bool,
    /// The app asked for the request's log line.
    pub log_this: bool,
    /// The request's log variables (`uwsgi.set_logvar`), as a vars block;
    /// empty when there are none.
    pub logvars: Bytes,
}

/// Encodes an END payload: flags, the count, then the log variables.
pub fn end_payload(info: &EndInfo) -> Vec<u8> {
    let mut p = Vec::with_capacity(END_PREFIX + info.logvars.len());
    let flag = |on: bool, bit: u8| if on { bit } else { 0 };
    p.push(
        flag(info.exception, END_EXCEPTION)
            | flag(info.retire, END_RETIRE)
            | flag(info.log_this, END_LOG_THIS),
    );
    p.extend_from_slice(&info.requests.to_le_bytes());
    p.extend_from_slice(&info.logvars);
    p
}

/// Decodes an END payload; the log variables are a slice of it.
pub fn parse_end(p: &Bytes) -> Result<EndInfo, FrameError> {
    let bad = FrameError::Malformed(Kind::End);
    let (&[flags], rest) = p.split_first_chunk::<1>().ok_or(bad)?;
    let n = rest.first_chunk::<8>().ok_or(bad)?;
    Ok(EndInfo {
        exception: flags & END_EXCEPTION != 0,
        requests: u64::from_le_bytes(*n),
        retire: flags & END_RETIRE != 0,
        log_this: flags & END_LOG_THIS != 0,
        logvars: p.slice(END_PREFIX..),
    })
}

/// A response head decoded from a HEAD payload.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    /// The status line as the app gave it (`"200 OK"`).
    pub status: Bytes,
    /// Header name/value pairs in order.
    pub headers: Vec<(Bytes, Bytes)>,
}

impl ResponseHead {
    /// The numeric status code (the first three digits), if valid.
    pub fn code(&self) -> Option<u16> {
        status_code(&self.status)
    }

    /// The headers as borrowed pairs.
    pub fn pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.headers.iter().map(|(k, v)| (&k[..], &v[..]))
    }
}

/// The numeric status code of a status line (its first three digits), if
/// valid.
pub fn status_code(status: &[u8]) -> Option<u16> {
    let digits = status.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Parses a vars block that rwsgi wrote itself (a REQUEST's vars, a HEAD,
/// the log variables of an END): only the format's own limits apply, the
/// peer's limits were checked before the block was written.
pub fn own_vars(block: &[u8]) -> Result<rwsgi_proto::Vars<'_>, rwsgi_proto::DecodeError> {
    let limits = rwsgi_proto::Limits {
        max_block: u16::MAX,
        max_vars: u16::MAX,
    };
    rwsgi_proto::Frame {
        header: rwsgi_proto::Header::new(
            rwsgi_proto::Modifier1::RESPONSE,
            0,
            rwsgi_proto::Modifier2(0),
        ),
        block,
    }
    .vars(&limits)
}

/// A HEAD payload read in place: the status line, the number of headers
/// and the headers in order.
pub fn head_parts(payload: &[u8]) -> Result<(&[u8], usize, rwsgi_proto::VarsIter<'_>), FrameError> {
    let bad = FrameError::Malformed(Kind::Head);
    let vars = own_vars(payload).map_err(|_| bad)?;
    let mut it = vars.iter();
    let (k, status) = it.next().ok_or(bad)?;
    if k != b"STATUS" {
        return Err(bad);
    }
    Ok((status, vars.len() - 1, it))
}

/// Decodes a HEAD payload.
pub fn parse_head(payload: Bytes) -> Result<ResponseHead, FrameError> {
    let (status, _, it) = head_parts(&payload)?;
    let slice = |s: &[u8]| payload.slice_ref(s);
    let status = slice(status);
    let headers = it.map(|(k, v)| (slice(k), slice(v))).collect();
    Ok(ResponseHead { status, headers })
}

/// master ⇄ prototype control messages (16 bytes each on a seqpacket
/// socket). A `Spawn` carries the worker's ends of its request channels (one
/// per thread) as `SCM_RIGHTS` fds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// prototype → master: the app is loaded (or not: `ok == false`), the
    /// prototype takes spawn requests.
    Ready {
        /// Whether the app was loaded.
        ok: bool,
    },
    /// master → prototype: fork a worker for this slot.
    Spawn {
        /// The worker slot (1-based, as in uWSGI).
        slot: u32,
        /// Number of threads (and channels) of the worker.
        threads: u32,
    },
    /// prototype → master: a worker was forked.
    Spawned {
        /// The slot.
        slot: u32,
        /// Its pid.
        pid: i32,
    },
    /// prototype → master: a worker exited.
    Exited {
        /// The slot.
        slot: u32,
        /// Its pid.
        pid: i32,
        /// Exit code when ≥ 0, or minus the signal that killed it.
        status: i32,
    },
    /// prototype → master: a module of the app changed on disk
    /// (`py-autoreload`); reload gracefully.
    Reload,
    /// prototype → master, with one fd: the master's end of a helper
    /// process's signal inbox (`uwsgi_signal::Inbox`), sent before Ready.
    HelperInbox {
        /// The inbox's kind.
        kind: u32,
        /// Its mule or farm number.
        id: u32,
    },
}

/// The size of an encoded control message.
pub const CONTROL_LEN: usize = 16;

impl Control {
    /// Encodes the message.
    pub fn encode(self) -> [u8; CONTROL_LEN] {
        let (tag, a, b, c) = match self {
            Control::Ready { ok } => (1u8, u32::from(ok), 0, 0),
            Control::Spawn { slot, threads } => (2, slot, threads as i32, 0),
            Control::Spawned { slot, pid } => (3, slot, pid, 0),
            Control::Exited { slot, pid, status } => (4, slot, pid, status),
            Control::Reload => (5, 0, 0, 0),
            Control::HelperInbox { kind, id } => (6, kind, id as i32, 0),
        };
        let mut out = [0u8; CONTROL_LEN];
        out[0] = tag;
        out[4..8].copy_from_slice(&a.to_le_bytes());
        out[8..12].copy_from_slice(&b.to_le_bytes());
        out[12..16].copy_from_slice(&c.to_le_bytes());
        out
    }

    /// Decodes a message.
    pub fn decode(b: &[u8]) -> Option<Control> {
        let b: &[u8; CONTROL_LEN] = b.try_into().ok()?;
        let word = |i: usize| [b[i], b[i + 1], b[i + 2], b[i + 3]];
        let a = u32::from_le_bytes(word(4));
        let p = i32::from_le_bytes(word(8));
        let s = i32::from_le_bytes(word(12));
        Some(match b[0] {
            1 => Control::Ready { ok: a != 0 },
            2 => Control::Spawn {
                slot: a,
                threads: p as u32,
            },
            3 => Control::Spawned { slot: a, pid: p },
            4 => Control::Exited {
                slot: a,
                pid: p,
                status: s,
            },
            5 => Control::Reload,
            6 => Control::HelperInbox {
                kind: a,
                id: p as u32,
            },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip() {
        let mut vars = Vec::new();
        rwsgi_proto::encode_vars(&[("A", "1")], &mut vars).unwrap();
        let f = request_frame(30, 7, &vars);
        let (kind, len) = parse_header(f[..5].try_into().unwrap()).unwrap();
        assert_eq!(kind, Kind::Request);
        let r = parse_request(&f[5..5 + len]).unwrap();
        assert_eq!((r.modifier1, r.body_len, r.vars), (30, 7, &vars[..]));
        assert!(parse_request(&f[5..9]).is_err());
    }

    #[test]
    fn head_round_trip() {
        let mut p = Vec::new();
        rwsgi_proto::encode_vars(
            &[("STATUS", "404 Not Found"), ("X-A", "1"), ("X-A", "2")],
            &mut p,
        )
        .unwrap();
        let h = parse_head(Bytes::from(p)).unwrap();
        assert_eq!(&h.status[..], b"404 Not Found");
        assert_eq!(h.code(), Some(404));
        assert_eq!(h.headers.len(), 2);
        assert!(parse_head(Bytes::from_static(b"\x01\x00")).is_err());
    }

    #[test]
    fn frame_limits() {
        assert_eq!(parse_header([99, 0, 0, 0, 0]), Err(FrameError::Kind(99)));
        assert!(matches!(
            parse_header([18, 0, 0, 0x20, 0]),
            Err(FrameError::TooLarge(_))
        ));
    }

    #[test]
    fn control_round_trip() {
        for m in [
            Control::Ready { ok: true },
            Control::Spawn {
                slot: 3,
                threads: 4,
            },
            Control::Spawned { slot: 3, pid: 77 },
            Control::Exited {
                slot: 3,
                pid: 77,
                status: -9,
            },
            Control::Reload,
            Control::HelperInbox { kind: 2, id: 5 },
        ] {
            assert_eq!(Control::decode(&m.encode()), Some(m));
        }
        assert_eq!(Control::decode(&[9; 16]), None);
        assert_eq!(Control::decode(&[1; 3]), None);
    }

    #[test]
    fn end_round_trip() {
        let mut logvars = Vec::new();
        rwsgi_proto::encode_vars(&[("user", "ann")], &mut logvars).unwrap();
        for (exception, retire, log_this) in [
            (true, false, false),
            (false, true, false),
            (true, true, true),
            (false, false, true),
        ] {
            let e = EndInfo {
                exception,
                requests: 42,
                retire,
                log_this,
                logvars: if log_this {
                    Bytes::from(logvars.clone())
                } else {
                    Bytes::new()
                },
            };
            assert_eq!(parse_end(&Bytes::from(end_payload(&e))), Ok(e));
        }
        assert!(parse_end(&Bytes::from_static(&[0])).is_err());
    }
}
