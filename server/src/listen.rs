//! Binding listening sockets: TCP with `SO_REUSEADDR` and the configured
//! backlog, unix sockets (a stale file is replaced, as uWSGI does) with the
//! configured mode, removed at exit with `vacuum`.

use std::io;
use std::path::PathBuf;

use tokio::net::{TcpListener, TcpSocket, UnixListener};

use crate::config::{Address, Protocol, SocketSpec};

/// A bound listener.
#[derive(Debug)]
pub enum Listener {
    /// TCP.
    Tcp(TcpListener),
    /// A unix socket, and its path.
    Unix(UnixListener, PathBuf),
}

/// An accepted connection.
#[derive(Debug)]
pub enum Accepted {
    /// TCP, with the peer's address (`TCP_NODELAY` set).
    Tcp(tokio::net::TcpStream, std::net::SocketAddr),
    /// A unix socket.
    Unix(tokio::net::UnixStream),
}

impl Listener {
    /// The next connection. A failed `accept()` (out of fds, say) is
    /// logged and retried after a short pause, so callers never spin.
    pub async fn next(&self) -> Accepted {
        loop {
            let res = match self {
                Listener::Tcp(l) => l.accept().await.map(|(s, peer)| {
                    let _ = s.set_nodelay(true);
                    Accepted::Tcp(s, peer)
                }),
                Listener::Unix(l, _) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
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

/// Binds one socket.
pub fn bind(spec: &SocketSpec, backlog: u32, mode: Option<u32>) -> io::Result<Bound> {
    let (listener, name, port) = match &spec.address {
        Address::Tcp(addr) => {
            let sock = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            sock.set_reuseaddr(true)?;
            sock.bind(*addr)?;
            let l = sock.listen(backlog)?;
            let local = l.local_addr()?;
            (
                Listener::Tcp(l),
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
                Listener::Unix(l, path.clone()),
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

/// The number of connections waiting in a TCP listener's accept queue
/// (Linux `TCP_INFO`: `tcpi_unacked` on a listening socket), as uWSGI's
/// `master_check_listen_queue` reads it. `None` if it cannot be read.
pub fn tcp_accept_queue(fd: std::os::fd::RawFd) -> Option<u32> {
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
