//! The worker's end of its request channel: blocking reads and buffered
//! writes of [`crate::ipc`] frames. The GIL is released around every blocking
//! call, so threads the app started keep running while the worker waits.
//!
//! While the worker serves a connection it accepted itself
//! (`worker-accept`), the request's frames go to that connection's
//! [`Client`] instead: the app's code does not know the difference.

use std::io::{self, BufReader, Read, Write};
use std::os::unix::net::UnixStream;

use bytes::BufMut;
use pyo3::Python;

use super::direct::Client;
use crate::ipc::{self, FRAME_HEADER, Kind};

/// Frames are written to `out` and sent by [`Channel::flush`], so a small
/// response (head, one chunk, end) costs one write.
///
/// The master may queue the next request while this one runs (`dispatch`,
/// pipelining): its REQUEST frame can arrive between the BODY frames of
/// the current request, and is kept in `queued` until the current one ends.
#[derive(Debug)]
pub struct Channel {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    out: Vec<u8>,
    queued: Option<(Kind, Vec<u8>)>,
    /// The connection of the request in progress, when the worker accepted
    /// it itself.
    client: Option<Client>,
}

impl Channel {
    /// Wraps the worker's end of the socketpair.
    pub fn new(stream: UnixStream) -> io::Result<Channel> {
        Ok(Channel {
            writer: stream.try_clone()?,
            reader: BufReader::with_capacity(ipc::CHUNK + FRAME_HEADER, stream),
            out: Vec::with_capacity(16 * 1024),
            queued: None,
            client: None,
        })
    }

    /// The channel's socket, to wait on.
    pub fn fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(self.reader.get_ref())
    }

    /// Whether a frame is already read and waiting (a wait on the socket
    /// would not see it).
    pub fn has_buffered(&self) -> bool {
        self.queued.is_some() || !self.reader.buffer().is_empty()
    }

    /// The request's frames go to `client` until [`Channel::end_direct`].
    pub fn begin_direct(&mut self, client: Client) {
        self.client = Some(client);
    }

    /// Gives back the connection of the request that ended.
    pub fn end_direct(&mut self) -> Option<Client> {
        self.client.take()
    }

    /// Queues a frame.
    pub fn push(&mut self, kind: Kind, payload: &[u8]) {
        if let Some(c) = &mut self.client {
            return c.push(kind, payload);
        }
        ipc::put_frame(&mut self.out, kind, payload);
    }

    /// Bytes queued and not yet sent.
    pub fn pending(&self) -> usize {
        self.client.as_ref().map_or(self.out.len(), Client::pending)
    }

    /// Sends what is queued, with the GIL released.
    pub fn flush(&mut self, py: Python<'_>) -> io::Result<()> {
        if let Some(c) = &mut self.client {
            py.detach(|| c.flush());
            return Ok(());
        }
        if self.out.is_empty() {
            return Ok(());
        }
        let (writer, out) = (&mut self.writer, &mut self.out);
        let res = py.detach(|| writer.write_all(out));
        out.clear();
        res
    }

    /// Reads one frame, with the GIL released: a request queued during the
    /// previous one first. `Ok(None)` is a clean EOF.
    pub fn read_frame(&mut self, py: Python<'_>) -> io::Result<Option<(Kind, Vec<u8>)>> {
        if let Some(frame) = self.queued.take() {
            return Ok(Some(frame));
        }
        let reader = &mut self.reader;
        py.detach(|| read_frame(reader))
    }

    /// Reads the master's answer to a READ, with the GIL released, keeping
    /// a REQUEST (or a SIGNAL) queued meanwhile for later (at most one can
    /// be).
    pub fn read_reply(&mut self, py: Python<'_>) -> io::Result<Option<(Kind, Vec<u8>)>> {
        if let Some(c) = &mut self.client {
            return Ok(Some((Kind::Body, py.detach(|| c.read_body()))));
        }
        loop {
            let reader = &mut self.reader;
            match py.detach(|| read_frame(reader))? {
                Some((kind @ (Kind::Request | Kind::Signal), payload)) if self.queued.is_none() => {
                    self.queued = Some((kind, payload));
                }
                Some((Kind::Request | Kind::Signal, _)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a second request was queued on this worker",
                    ));
                }
                other => return Ok(other),
            }
        }
    }

    /// Reads one frame without touching the GIL (before Python exists).
    pub fn read_frame_detached(&mut self) -> io::Result<Option<(Kind, Vec<u8>)>> {
        read_frame(&mut self.reader)
    }
}

fn read_frame(reader: &mut BufReader<UnixStream>) -> io::Result<Option<(Kind, Vec<u8>)>> {
    if reader.buffer().is_empty() {
        wait_readable(reader.get_ref());
    }
    let mut head = [0u8; FRAME_HEADER];
    match reader.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let (kind, len) =
        ipc::parse_header(head).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut payload = Vec::with_capacity(len);
    payload.put_bytes(0, len);
    reader.read_exact(&mut payload)?;
    Ok(Some((kind, payload)))
}

/// Blocks until `sock` is readable, in poll(2): unlike a blocking read,
/// poll's wait is woken only for the events it asked for, so the
/// write-space wake-up the kernel sends when the master drains this socket
/// does not wake the worker for nothing.
fn wait_readable(sock: &UnixStream) {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, -1) };
        if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
}
