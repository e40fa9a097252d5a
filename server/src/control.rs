//! Sending and receiving [`Control`] messages on the master ⇄ prototype
//! seqpacket socket, with at most one fd attached (`SCM_RIGHTS`). The same
//! two functions serve the blocking prototype and the master, which calls
//! them when tokio reports the socket ready.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

use crate::ipc::{CONTROL_LEN, Control};

/// Sends a message, with `fd` attached when given.
pub fn send(sock: BorrowedFd<'_>, msg: Control, fd: Option<RawFd>) -> nix::Result<()> {
    let bytes = msg.encode();
    let iov = [IoSlice::new(&bytes)];
    let fds;
    let cmsgs: &[ControlMessage<'_>] = match fd {
        Some(f) => {
            fds = [f];
            &[ControlMessage::ScmRights(&fds)]
        }
        None => &[],
    };
    sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)?;
    Ok(())
}

/// What `recv` got.
#[derive(Debug)]
pub enum Received {
    /// A message, with the fd it carried.
    Message(Control, Option<OwnedFd>),
    /// The peer closed the socket.
    Closed,
    /// Bytes that are not a valid message (logged by the caller).
    Garbage,
}

/// Receives one message. With `nonblocking`, `EAGAIN` is returned as an
/// error for the caller to wait on.
pub fn recv(sock: BorrowedFd<'_>, nonblocking: bool) -> nix::Result<Received> {
    let mut buf = [0u8; CONTROL_LEN + 1];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let flags = if nonblocking {
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC
    } else {
        MsgFlags::MSG_CMSG_CLOEXEC
    };
    let (n, fd) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg), flags)?;
        let mut fd = None;
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for f in fds {
                    // SAFETY: the kernel just installed this fd in our table
                    // for us; nothing else owns it.
                    let owned = unsafe { OwnedFd::from_raw_fd(f) };
                    if fd.is_none() {
                        fd = Some(owned);
                    }
                }
            }
        }
        (msg.bytes, fd)
    };
    if n == 0 {
        return Ok(Received::Closed);
    }
    Ok(match buf.get(..n).and_then(Control::decode) {
        Some(m) => Received::Message(m, fd),
        None => Received::Garbage,
    })
}
