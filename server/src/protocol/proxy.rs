//! The PROXY protocol, version 1 (HAProxy's text header), on HTTP sockets
//! with `enable-proxy-protocol` (alias `http-enable-proxy-protocol`), as
//! uWSGI reads it (`proto/http.c`, "PROXY1 ... only for http parsers"): a
//! connection may start with `PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n` (or
//! `PROXY UNKNOWN...\r\n`), and then `REMOTE_ADDR`/`REMOTE_PORT` are the
//! client's as the load balancer saw it. A connection without the header
//! is served as it is. A header that does not parse closes the connection
//! with a logged reason.
//!
//! [`read_header`] reads at most [`MAX_HEADER`] bytes (the protocol's own
//! limit) within the socket timeout; what it read past the header is given
//! back first by [`Prefixed`].

use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The longest PROXY v1 header, CRLF included (the specification's 107).
pub const MAX_HEADER: usize = 107;

/// What the header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    /// The connection had no PROXY header.
    Absent,
    /// `PROXY UNKNOWN`: keep the peer's own address.
    Unknown,
    /// The client's address and port.
    Client(IpAddr, u16),
}

/// Why a header was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Not `PROXY ...\r\n` in the protocol's syntax.
    #[error("invalid PROXY header {0:?}")]
    Invalid(String),
    /// No CRLF within the protocol's limit.
    #[error("PROXY header longer than {MAX_HEADER} bytes")]
    TooLong,
    /// The peer stalled or failed.
    #[error("reading the PROXY header: {0}")]
    Io(#[from] io::Error),
}

/// Parses a complete header line (without its CRLF).
pub fn parse(line: &[u8]) -> Result<Header, ProxyError> {
    let text = std::str::from_utf8(line)
        .map_err(|_| ProxyError::Invalid(String::from_utf8_lossy(line).into_owned()))?;
    let invalid = || ProxyError::Invalid(text.to_owned());
    let mut words = text.split(' ');
    if words.next() != Some("PROXY") {
        return Err(invalid());
    }
    match words.next() {
        Some("UNKNOWN") => return Ok(Header::Unknown),
        Some("TCP4" | "TCP6") => {}
        _ => return Err(invalid()),
    }
    let parts: Vec<&str> = words.collect();
    let [src, dst, sport, dport] = parts[..] else {
        return Err(invalid());
    };
    let src: IpAddr = src.parse().map_err(|_| invalid())?;
    dst.parse::<IpAddr>().map_err(|_| invalid())?;
    let sport: u16 = sport.parse().map_err(|_| invalid())?;
    dport.parse::<u16>().map_err(|_| invalid())?;
    Ok(Header::Client(src, sport))
}

/// Reads the PROXY header if the connection starts with one; returns it
/// and the bytes read past it (to be read again, see [`Prefixed`]).
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Result<(Header, Vec<u8>), ProxyError> {
    let mut buf = Vec::with_capacity(MAX_HEADER + 1);
    let read = async {
        loop {
            if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
                if buf.starts_with(b"PROXY ") {
                    let header = parse(&buf[..end])?;
                    let rest = buf.split_off(end + 2);
                    return Ok((header, rest));
                }
            }
            // Enough to tell: not a PROXY header, or one too long.
            let prefix = &buf[..buf.len().min(6)];
            if !b"PROXY ".starts_with(prefix) {
                return Ok((Header::Absent, std::mem::take(&mut buf)));
            }
            if buf.len() >= MAX_HEADER {
                return Err(ProxyError::TooLong);
            }
            let mut chunk = [0u8; MAX_HEADER];
            let room = MAX_HEADER + 1 - buf.len();
            let n = stream.read(&mut chunk[..room.min(MAX_HEADER)]).await?;
            if n == 0 {
                return Ok((Header::Absent, std::mem::take(&mut buf)));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| ProxyError::Io(io::Error::from(io::ErrorKind::TimedOut)))?
}

/// A stream that gives back `prefix` before reading from `inner`.
#[derive(Debug)]
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    /// Wraps `inner`, reading `prefix` first.
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        Prefixed {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.prefix.len() {
            let rest = &this.prefix[this.at..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_as_the_protocol_writes_them() {
        let v4 = parse(b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443").unwrap();
        assert_eq!(v4, Header::Client("192.168.0.1".parse().unwrap(), 56324));
        let v6 = parse(b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 80").unwrap();
        assert_eq!(v6, Header::Client("2001:db8::1".parse().unwrap(), 4000));
        assert_eq!(parse(b"PROXY UNKNOWN").unwrap(), Header::Unknown);
        assert_eq!(parse(b"PROXY UNKNOWN ff ff 1 2").unwrap(), Header::Unknown);
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1"[..],
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2",
            b"PROXY TCP4 nope 5.6.7.8 1 2",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 70000 2",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 extra",
            b"proxy TCP4 1.2.3.4 5.6.7.8 1 2",
            b"PROXY TCP4 \xff 5.6.7.8 1 2",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn the_header_is_read_and_what_follows_is_kept() {
        let t = Duration::from_secs(1);
        let mut s: &[u8] = b"PROXY TCP4 10.0.0.1 10.0.0.2 1234 80\r\nGET / HTTP/1.1\r\n";
        let (h, rest) = read_header(&mut s, t).await.unwrap();
        assert_eq!(h, Header::Client("10.0.0.1".parse().unwrap(), 1234));
        let mut all = rest;
        all.extend_from_slice(s);
        assert_eq!(all, b"GET / HTTP/1.1\r\n");
        // No header: everything read is given back.
        let mut s: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let (h, rest) = read_header(&mut s, t).await.unwrap();
        assert_eq!(h, Header::Absent);
        let mut p = Prefixed::new(rest, s);
        let mut back = Vec::new();
        p.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        // Too long, or broken.
        let long = format!("PROXY TCP4 {}\r\n", "1".repeat(200));
        assert!(matches!(
            read_header(&mut long.as_bytes(), t).await,
            Err(ProxyError::TooLong)
        ));
        assert!(
            read_header(&mut &b"PROXY TCP9 a b c d\r\n"[..], t)
                .await
                .is_err()
        );
    }
}
