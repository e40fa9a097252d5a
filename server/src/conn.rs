//! A connection that meets epoll only when it has to.
//!
//! Behind nginx every uwsgi request is a new connection: nginx connects,
//! writes the whole packet at once, reads the response and waits for the
//! close. By the time the master accepts it the packet is usually there,
//! and a small response fits in the socket buffer, so the connection never
//! needs to wait. Registering it with tokio's reactor anyway costs two
//! `epoll_ctl` calls per request (about a tenth of the master's time per
//! request behind nginx, measured with perf). [`Lazy`] reads and writes the
//! socket directly (non-blocking) and registers it only on the first
//! `EAGAIN`, after which it is an ordinary tokio stream.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A non-blocking std socket that can become a tokio stream.
pub trait Register: AsRawFd + Unpin + Sized {
    /// The tokio stream it becomes.
    type Stream: AsyncRead + AsyncWrite + AsRawFd + Unpin;
    /// Registers it with the current runtime's reactor.
    fn register(self) -> io::Result<Self::Stream>;
    /// Another descriptor for the same socket (`dup`).
    fn duplicate(&self) -> io::Result<Self>;
}

impl Register for std::net::TcpStream {
    type Stream = tokio::net::TcpStream;
    fn register(self) -> io::Result<Self::Stream> {
        tokio::net::TcpStream::from_std(self)
    }
    fn duplicate(&self) -> io::Result<Self> {
        self.try_clone()
    }
}

impl Register for std::os::unix::net::UnixStream {
    type Stream = tokio::net::UnixStream;
    fn register(self) -> io::Result<Self::Stream> {
        tokio::net::UnixStream::from_std(self)
    }
    fn duplicate(&self) -> io::Result<Self> {
        self.try_clone()
    }
}

/// A socket used directly until an operation would block.
///
/// The socket it was made with stays open as long as the `Lazy` lives,
/// registered or not: what is registered is a duplicate descriptor (one
/// `dup` per registration), so the fd the caller saw (for `SO_LINGER`, say)
/// never closes early, even when registration fails.
pub struct Lazy<S: Register> {
    sock: S,
    stream: Option<S::Stream>,
}

impl<S: Register> Lazy<S> {
    /// Wraps a socket that is already non-blocking (`SOCK_NONBLOCK`).
    pub fn new(sock: S) -> Self {
        Lazy { sock, stream: None }
    }

    /// Whether the socket went through the reactor (for tests and stats).
    pub fn is_registered(&self) -> bool {
        self.stream.is_some()
    }

    /// The registered stream, registering the socket now if it is not yet.
    fn registered(&mut self) -> io::Result<&mut S::Stream> {
        if self.stream.is_none() {
            self.stream = Some(self.sock.duplicate()?.register()?);
        }
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::other("connection not registered"))
    }

    fn is_direct(&self) -> bool {
        self.stream.is_none()
    }

    fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

impl<S: Register> std::fmt::Debug for Lazy<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lazy")
            .field("fd", &self.fd())
            .field("registered", &self.is_registered())
            .finish()
    }
}

impl<S: Register> AsRawFd for Lazy<S> {
    fn as_raw_fd(&self) -> RawFd {
        self.fd()
    }
}

/// One `recv` that never waits.
fn recv_now(fd: RawFd, buf: &mut ReadBuf<'_>) -> io::Result<()> {
    // SAFETY: only written by recv below, never de-initialised.
    let unfilled = unsafe { buf.unfilled_mut() };
    // SAFETY: recv(2) writes at most `unfilled.len()` bytes into the
    // unfilled part of the buffer, which stays valid for the call; `fd` is
    // the connection's open socket (owned by the `Lazy` calling this).
    let n = unsafe {
        libc::recv(
            fd,
            unfilled.as_mut_ptr().cast(),
            unfilled.len(),
            libc::MSG_DONTWAIT,
        )
    };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    // SAFETY: the kernel initialised the first `n` bytes, `n <= len`.
    unsafe { buf.assume_init(n) };
    buf.advance(n);
    Ok(())
}

/// One `send` that never waits (and never raises SIGPIPE).
fn send_now(fd: RawFd, data: &[u8]) -> io::Result<usize> {
    // SAFETY: send(2) reads at most `data.len()` bytes from a live slice;
    // `fd` is the connection's open socket.
    let n = unsafe {
        libc::send(
            fd,
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// One gathered `sendmsg` that never waits (and never raises SIGPIPE).
fn send_vectored_now(fd: RawFd, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    // IoSlice is ABI-compatible with iovec; the kernel takes at most
    // IOV_MAX of them.
    let n = bufs.len().min(1024);
    // SAFETY: a zeroed msghdr is valid (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = n as _;
    // SAFETY: sendmsg(2) reads `n` iovecs, each a live slice, from `msg`;
    // `fd` is the connection's open socket.
    let sent = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    usize::try_from(sent).map_err(|_| io::Error::last_os_error())
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl<S: Register> AsyncRead for Lazy<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.is_direct() {
            match recv_now(this.fd(), buf) {
                Err(e) if would_block(&e) => {}
                done => return Poll::Ready(done),
            }
        }
        Pin::new(this.registered()?).poll_read(cx, buf)
    }
}

impl<S: Register> AsyncWrite for Lazy<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.is_direct() {
            match send_now(this.fd(), data) {
                Err(e) if would_block(&e) => {}
                done => return Poll::Ready(done),
            }
        }
        Pin::new(this.registered()?).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.is_direct() {
            match send_vectored_now(this.fd(), bufs) {
                Err(e) if would_block(&e) => {}
                done => return Poll::Ready(done),
            }
        }
        Pin::new(this.registered()?).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Some(s) => Pin::new(s).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(s) = &mut this.stream {
            return Pin::new(s).poll_shutdown(cx);
        }
        // SAFETY: shutdown(2) on the connection's open socket.
        let rc = unsafe { libc::shutdown(this.fd(), libc::SHUT_WR) };
        Poll::Ready(if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn pair() -> (Lazy<UnixStream>, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        (Lazy::new(a), b)
    }

    #[tokio::test]
    async fn data_already_there_is_read_without_registering() {
        let (mut conn, mut peer) = pair();
        peer.write_all(b"packet").unwrap();
        let mut buf = [0u8; 16];
        let n = conn.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"packet");
        conn.write_all(b"answer").await.unwrap();
        assert!(!conn.is_registered());
        drop(conn);
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"answer");
    }

    #[tokio::test]
    async fn a_read_that_would_wait_registers_and_still_completes() {
        let (mut conn, mut peer) = pair();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            peer.write_all(b"late").unwrap();
            peer
        });
        let mut buf = [0u8; 16];
        let n = conn.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"late");
        assert!(conn.is_registered());
        drop(writer.join().unwrap());
        assert_eq!(conn.read(&mut buf).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_write_larger_than_the_socket_buffer_completes() {
        let (mut conn, mut peer) = pair();
        let big = vec![7u8; 4 << 20];
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            peer.read_to_end(&mut got).unwrap();
            got
        });
        conn.write_all(&big).await.unwrap();
        assert!(conn.is_registered());
        conn.shutdown().await.unwrap();
        drop(conn);
        assert_eq!(reader.join().unwrap(), big);
    }

    #[tokio::test]
    async fn gathered_writes_arrive_in_order() {
        let (mut conn, mut peer) = pair();
        let parts = [io::IoSlice::new(b"head "), io::IoSlice::new(b"body")];
        let n = conn.write_vectored(&parts).await.unwrap();
        assert_eq!(n, 9);
        drop(conn);
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"head body");
    }

    #[tokio::test]
    async fn shutdown_without_registering_ends_the_peers_read() {
        let (mut conn, mut peer) = pair();
        conn.write_all(b"x").await.unwrap();
        conn.shutdown().await.unwrap();
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"x");
        assert!(!conn.is_registered());
    }
}
