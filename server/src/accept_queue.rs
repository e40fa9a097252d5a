//! How many connections wait in a listener's kernel accept queue: what the
//! cheaper algorithms' backlog and the stats' `listen_queue` add to the
//! master's own queue of requests.
//!
//! A TCP listener through `TCP_INFO` (`tcpi_unacked` on a listening
//! socket), as uWSGI's `master_check_listen_queue` reads it. A unix
//! listener, which uWSGI cannot read (so its backlog alerts never fire
//! behind nginx on a unix socket), through netlink `sock_diag`
//! (`UNIX_DIAG_RQLEN`, what `ss -xl` shows as Recv-Q): used for the unix
//! sockets the workers accept on with `worker-accept`, whose queue the
//! master does not drain itself.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A listening socket whose queue is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// TCP.
    Tcp(RawFd),
    /// Unix stream.
    Unix(RawFd),
}

/// Connections waiting to be accepted; `None` if it cannot be read.
pub fn len(l: Listener) -> Option<u32> {
    match l {
        Listener::Tcp(fd) => tcp(fd),
        Listener::Unix(fd) => unix(fd),
    }
}

fn tcp(fd: RawFd) -> Option<u32> {
    // SAFETY: `tcp_info` is plain data; getsockopt writes at most `len`
    // bytes into it and we pass its exact size.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let rc = libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        );
        (rc == 0).then_some(info.tcpi_unacked)
    }
}

// linux/sock_diag.h, linux/unix_diag.h
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const UDIAG_SHOW_RQLEN: u32 = 0x10;
const UNIX_DIAG_RQLEN: u16 = 4;
const TCP_LISTEN: u32 = 10;
/// `nlmsghdr` + `unix_diag_msg`: where the attributes start.
const ATTRS_AT: usize = 16 + 16;

/// `nlmsghdr` + `unix_diag_req`.
#[repr(C)]
struct Request {
    hdr: libc::nlmsghdr,
    family: u8,
    protocol: u8,
    pad: u16,
    states: u32,
    ino: u32,
    show: u32,
    cookie: [u32; 2],
}

fn unix(fd: RawFd) -> Option<u32> {
    // SAFETY: fstat writes one `stat` we own.
    let ino = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 {
            return None;
        }
        u32::try_from(st.st_ino).ok()?
    };
    // SAFETY: a new socket, owned from here on.
    let nl = unsafe {
        let s = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        );
        if s < 0 {
            return None;
        }
        OwnedFd::from_raw_fd(s)
    };
    let req = Request {
        hdr: libc::nlmsghdr {
            nlmsg_len: std::mem::size_of::<Request>() as u32,
            nlmsg_type: SOCK_DIAG_BY_FAMILY,
            nlmsg_flags: libc::NLM_F_REQUEST as u16,
            nlmsg_seq: 1,
            nlmsg_pid: 0,
        },
        family: libc::AF_UNIX as u8,
        protocol: 0,
        pad: 0,
        states: 1 << TCP_LISTEN,
        ino,
        show: UDIAG_SHOW_RQLEN,
        // INET_DIAG_NOCOOKIE: look the socket up by inode alone.
        cookie: [u32::MAX; 2],
    };
    // SAFETY: send(2) of the request we own, of its size, to the kernel
    // (an unconnected netlink socket sends to port 0).
    let sent = unsafe {
        libc::send(
            nl.as_raw_fd(),
            (&req as *const Request).cast(),
            std::mem::size_of::<Request>(),
            0,
        )
    };
    if sent < 0 {
        return None;
    }
    // The kernel answers while handling the send: the reply is queued
    // already, so the receive does not wait.
    let mut buf = [0u8; 512];
    // SAFETY: recv(2) into a buffer we own, of its length.
    let n = unsafe {
        libc::recv(
            nl.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    parse(buf.get(..usize::try_from(n).ok()?)?)
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(i..i + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

/// The queue length in a `sock_diag` answer (bounds-checked: the kernel
/// wrote it, but nothing here trusts a length).
fn parse(msg: &[u8]) -> Option<u32> {
    let len = usize::try_from(u32_at(msg, 0)?).ok()?.min(msg.len());
    if u16_at(msg, 4)? != SOCK_DIAG_BY_FAMILY {
        return None;
    }
    let mut at = ATTRS_AT;
    while at + 4 <= len {
        let attr_len = usize::from(u16_at(msg, at)?);
        if attr_len < 4 || at + attr_len > len {
            return None;
        }
        if u16_at(msg, at + 2)? == UNIX_DIAG_RQLEN {
            // `unix_diag_rqlen`: for a listener, the connections waiting,
            // then its backlog.
            return u32_at(msg, at + 4);
        }
        at += (attr_len + 3) & !3;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unix_listeners_waiting_connections_are_counted() {
        let dir = std::env::temp_dir().join(format!("rwsgi-aq-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("q.sock");
        let _ = std::fs::remove_file(&path);
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let fd = Listener::Unix(l.as_raw_fd());
        assert_eq!(len(fd), Some(0));
        let clients: Vec<_> = (0..3)
            .map(|_| std::os::unix::net::UnixStream::connect(&path).unwrap())
            .collect();
        assert_eq!(len(fd), Some(3));
        drop(l.accept().unwrap());
        assert_eq!(len(fd), Some(2));
        drop(clients);
        let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _c = std::net::TcpStream::connect(t.local_addr().unwrap()).unwrap();
        assert_eq!(len(Listener::Tcp(t.as_raw_fd())), Some(1));
        // Not a listener of that kind: nothing, no panic.
        assert_eq!(len(Listener::Unix(t.as_raw_fd())), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn answers_are_parsed_within_their_bounds() {
        let mut msg = vec![0u8; ATTRS_AT];
        msg[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        // An attribute that is not the queue, then the queue.
        msg.extend_from_slice(&6u16.to_ne_bytes());
        msg.extend_from_slice(&1u16.to_ne_bytes());
        msg.extend_from_slice(&[9, 9, 0, 0]);
        msg.extend_from_slice(&12u16.to_ne_bytes());
        msg.extend_from_slice(&UNIX_DIAG_RQLEN.to_ne_bytes());
        msg.extend_from_slice(&7u32.to_ne_bytes());
        msg.extend_from_slice(&100u32.to_ne_bytes());
        let total = msg.len() as u32;
        msg[0..4].copy_from_slice(&total.to_ne_bytes());
        assert_eq!(parse(&msg), Some(7));
        // Truncated, lying lengths, an error message: nothing.
        for cut in 0..msg.len() - 8 {
            let mut short = msg[..cut].to_vec();
            if short.len() >= 4 {
                short[0..4].copy_from_slice(&total.to_ne_bytes());
            }
            assert_eq!(parse(&short), None, "{cut}");
        }
        let mut bad = msg.clone();
        bad[ATTRS_AT..ATTRS_AT + 2].copy_from_slice(&2u16.to_ne_bytes());
        assert_eq!(parse(&bad), None);
        let mut err = msg.clone();
        err[4..6].copy_from_slice(&2u16.to_ne_bytes());
        assert_eq!(parse(&err), None);
    }
}
