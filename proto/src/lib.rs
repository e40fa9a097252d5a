//! A sans-IO codec for the uwsgi packet protocol, the binary protocol that
//! nginx's `uwsgi_pass` speaks to an application server.
//!
//! ```text
//!  0          1                    3          4
//! +----------+--------------------+----------+------------------------------+
//! | modifier1| datasize (u16, LE) | modifier2| vars block (datasize bytes)  |
//! +----------+--------------------+----------+------------------------------+
//!
//! vars block = repeated { key_len: u16 LE, key, val_len: u16 LE, val }
//!              no terminator, no padding; duplicates are kept in order
//! ```
//!
//! A request body, when there is one, follows the vars block raw on the same
//! stream, for exactly `CONTENT_LENGTH` bytes: the header does not count it.
//! The response to a WSGI request (modifier1 0 or 30) is raw HTTP, not a
//! packet (see uWSGI `proto/base.c`, and `reference/uwsgi-spec.md` §1).
//!
//! This crate does no I/O and knows nothing of sockets, tokio or Python. The
//! caller owns the buffer; [`decode`] borrows from it and tells how many bytes
//! the packet used, so the body is read from what follows.
//!
//! Completeness is decided once, by the framing layer ([`packet`]): the header
//! gives the exact length, so "need more bytes" ([`Status::Partial`]) is only
//! ever answered before the whole frame is buffered. Inside a complete frame a
//! short field is malformed input, never "incomplete". nom is used inside the
//! vars parser and never appears in this API.
//!
//! Decoding does not allocate: [`Vars`] is a validated view over the buffer,
//! iterated on demand.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod content_length;
mod error;
mod header;
mod limits;
mod modifier;
mod packet;
mod vars;

pub use content_length::content_length;
pub use error::{DecodeError, EncodeError};
pub use header::{HEADER_LEN, Header};
pub use limits::Limits;
pub use modifier::{Modifier1, Modifier2};
pub use packet::{Frame, Packet, decode, decode_frame, encode_packet, encoded_len};
pub use vars::{Vars, VarsIter, VarsWriter, encode_vars};

/// The outcome of a decode that may need more bytes.
///
/// `Partial` is a normal outcome, not an error: the caller reads more and
/// calls again with the longer buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    /// The value was decoded.
    Complete(T),
    /// More bytes are needed; at least `needed` bytes must be buffered in
    /// all (the header, or the header plus its vars block).
    Partial {
        /// The total number of bytes the buffer must hold to make progress.
        needed: usize,
    },
}

impl<T> Status<T> {
    /// Returns the value when complete.
    pub fn complete(self) -> Option<T> {
        match self {
            Status::Complete(v) => Some(v),
            Status::Partial { .. } => None,
        }
    }

    /// Whether more bytes are needed.
    pub fn is_partial(&self) -> bool {
        matches!(self, Status::Partial { .. })
    }
}
