//! Binding listening sockets: TCP with `SO_REUSEADDR` and the configured
//! backlog, unix sockets (a stale file is replaced, as uWSGI does) with the
//! configured mode, removed at exit with `vacuum`.

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::path::PathBuf;

use tokio::io::unix::AsyncFd;
use tokio::net::{TcpSocket, UnixListener};

use crate::config::{Address, Protocol, SocketSpec};

/// A bound listener: a std socket watched by the reactor, so that accepting
/// does not register the new connection (`conn::Lazy` decides that).
#[derive(Debug)]
pub enum Listener {
    /// TCP.
    Tcp(AsyncFd<std::net::TcpListener>),
    /// A unix socket, and its path.
    Unix(AsyncFd<std::os::unix::net::UnixListener>, PathBuf),
}

/// An accepted connection: non-blocking, close-on-exec, not registered
/// with the reactor.
#[derive(Debug)]
pub enum Accepted {
    /// TCP, with the peer's address (`TCP_NODELAY` set).
    Tcp(std::net::TcpStream, SocketAddr),
    /// A unix socket.
    Unix(std::os::unix::net::UnixStream),
}

impl Listener {
    /// The next connection. A failed `accept()` (out of fds, say) is
    /// logged and retried after a short pause, so callers never spin.
    pub async fn next(&self) -> Accepted {
        loop {
            let res = match self {
                Listener::Tcp(l) => accept_on(l, accept_tcp).await,
                Listener::Unix(l, _) => accept_on(l, accept_unix).await,
            };
            match res {
                Ok(a) => return a,
                Err(e) => {
                    tracing::error!(event = "accept_failed", cause = %e, "accept() failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// Waits until `l` is readable and accepts with `f`; `EAGAIN` clears the
/// readiness and waits again.
async fn accept_on<T: AsRawFd>(
    l: &AsyncFd<T>,
    f: fn(RawFd) -> io::Result<Accepted>,
) -> io::Result<Accepted> {
    loop {
        let mut guard = l.readable().await?;
        if let Ok(res) = guard.try_io(|inner| f(inner.as_raw_fd())) {
            return res;
        }
    }
}

/// accept4(2) with `SOCK_NONBLOCK | SOCK_CLOEXEC`, filling `addr`.
fn accept4(fd: RawFd, addr: &mut MaybeUninit<libc::sockaddr_storage>) -> io::Result<RawFd> {
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes of address into `addr`,
    // which is a whole `sockaddr_storage`; `fd` is the listening socket.
    let conn = unsafe {
        libc::accept4(
            fd,
            addr.as_mut_ptr().cast(),
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if conn < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(conn)
    }
}

fn accept_tcp(fd: RawFd) -> io::Result<Accepted> {
    let mut addr = MaybeUninit::zeroed();
    let conn = accept4(fd, &mut addr)?;
    // SAFETY: accept4 returned a new socket that nothing else owns.
    let stream = unsafe { std::net::TcpStream::from_raw_fd(conn) };
    // SAFETY: zeroed, then written by the kernel; every bit pattern is a
    // valid `sockaddr_storage`.
    let addr = unsafe { addr.assume_init() };
    let peer = socket_addr(&addr).unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
    let _ = stream.set_nodelay(true);
    Ok(Accepted::Tcp(stream, peer))
}

fn accept_unix(fd: RawFd) -> io::Result<Accepted> {
    let mut addr = MaybeUninit::zeroed();
    let conn = accept4(fd, &mut addr)?;
    // SAFETY: accept4 returned a new socket that nothing else owns.
    Ok(Accepted::Unix(unsafe {
        std::os::unix::net::UnixStream::from_raw_fd(conn)
    }))
}

/// An IPv4 or IPv6 peer address from what accept4 wrote.
fn socket_addr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a `sockaddr_in`,
            // which is smaller than `sockaddr_storage` and less aligned.
            let a = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for `sockaddr_in6`.
            let a = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Registers a listening socket with the reactor for readability.
fn watch<T: AsRawFd>(l: T) -> io::Result<AsyncFd<T>> {
    // SAFETY: `l` owns its open socket and keeps it, with the same fd,
    // until the `AsyncFd` that takes it is dropped.
    unsafe { AsyncFd::register_with_interest(l, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}

/// A listener with what it speaks.
#[derive(Debug)]
pub struct Bound {
    /// The socket.
    pub listener: Listener,
    /// Its protocol.
    pub protocol: Protocol,
    /// Its name for logs (the resolved address).
    pub name: String,
    /// The port for `SERVER_PORT` (`80` on unix sockets, as in uWSGI).
    pub port: String,
}

/// Options for TCP listeners (`so-keepalive`, `reuse-port`).
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpOptions {
    /// `SO_KEEPALIVE` on the listener, which accepted connections inherit
    /// (uWSGI sets it on the listener the same way, `core/socket.c`).
    pub keepalive: bool,
    /// `SO_REUSEPORT`.
    pub reuse_port: bool,
}

/// Binds one socket.
pub fn bind(
    spec: &SocketSpec,
    backlog: u32,
    mode: Option<u32>,
    tcp: TcpOptions,
) -> io::Result<Bound> {
    let (listener, name, port) = match &spec.address {
        Address::Tcp(addr) => {
            let sock = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            sock.set_reuseaddr(true)?;
            if tcp.reuse_port {
                sock.set_reuseport(true)?;
            }
            if tcp.keepalive {
                sock.set_keepalive(true)?;
            }
            sock.bind(*addr)?;
            let l = sock.listen(backlog)?;
            let local = l.local_addr()?;
            (
                Listener::Tcp(watch(l.into_std()?)?),
                local.to_string(),
                local.port().to_string(),
            )
        }
        Address::Unix(path) => {
            if std::fs::symlink_metadata(path).is_ok_and(|m| {
                use std::os::unix::fs::FileTypeExt;
                m.file_type().is_socket()
            }) {
                std::fs::remove_file(path)?;
            }
            let l = UnixListener::bind(path)?;
            if let Some(mode) = mode {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
            }
            (
                Listener::Unix(watch(l.into_std()?)?, path.clone()),
                path.display().to_string(),
                "80".to_owned(),
            )
        }
    };
    Ok(Bound {
        listener,
        protocol: spec.protocol,
        name,
        port,
    })
}
