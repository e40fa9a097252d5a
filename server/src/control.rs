//! Sending and receiving [`Control`] messages on the master ⇄ prototype
//! seqpacket socket, with up to [`MAX_FDS`] fds attached (`SCM_RIGHTS`). The same
//! two functions serve the blocking prototype and the master, which calls
//! them when tokio reports the socket ready.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

use crate::ipc::{CONTROL_LEN, Control};

/// The most fds one message carries (the most threads a worker has).
pub const MAX_FDS: usize = 256;

/// Sends a message with `fds` attached.
pub fn send(sock: BorrowedFd<'_>, msg: Control, fds: &[RawFd]) -> nix::Result<()> {
    let bytes = msg.encode();
    let iov = [IoSlice::new(&bytes)];
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &rights };
    sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)?;
    Ok(())
}

/// What `recv` got.
#[derive(Debug)]
pub enum Received {
    /// A message, with the fds it carried.
    Message(Control, Vec<OwnedFd>),
    /// The peer closed the socket.
    Closed,
    /// Bytes that are not a valid message (logged by the caller).
    Garbage,
}

/// Receives one message. With `nonblocking`, `EAGAIN` is returned as an
/// error for the caller to wait on.
pub fn recv(sock: BorrowedFd<'_>, nonblocking: bool) -> nix::Result<Received> {
    let mut buf = [0u8; CONTROL_LEN + 1];
    let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
    let flags = if nonblocking {
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC
    } else {
        MsgFlags::MSG_CMSG_CLOEXEC
    };
    let (n, fds) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg), flags)?;
        let mut fds = Vec::new();
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(received) = c {
                for f in received {
                    // SAFETY: the kernel just installed this fd in our table
                    // for us; nothing else owns it.
                    fds.push(unsafe { OwnedFd::from_raw_fd(f) });
                }
            }
        }
        (msg.bytes, fds)
    };
    if n == 0 {
        return Ok(Received::Closed);
    }
    Ok(match buf.get(..n).and_then(Control::decode) {
        Some(m) => Received::Message(m, fds),
        None => Received::Garbage,
    })
}
