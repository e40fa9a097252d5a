//! Decode and encode errors: small `Copy` enums with byte offsets, static
//! `Display` text, no allocation.
//!
//! Each decode error is a case in which uWSGI drops the request
//! (`core/protocol.c` `uwsgi_parse_vars`, `proto/uwsgi.c`); the server logs
//! it and closes that one connection.

use std::fmt;

/// Why a packet could not be decoded. Offsets count from the first byte of
/// the packet (the header's first byte is offset 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The header announces a vars block larger than the limit
    /// (uWSGI: `invalid request block size: %u (max %u)...skip`).
    BlockTooLarge {
        /// The announced size.
        datasize: u16,
        /// The limit.
        max: u16,
    },
    /// A key of length zero (uWSGI: `uwsgi key cannot be null`).
    EmptyKey {
        /// Offset of the key's length field.
        offset: usize,
    },
    /// A length field, or the bytes it announces, runs past the end of the
    /// vars block (uWSGI: `invalid uwsgi request (current strsize: %d)`).
    Truncated {
        /// Offset of the length field that runs past the block.
        offset: usize,
    },
    /// More pairs than the limit (uWSGI: `max vec size reached`).
    TooManyVars {
        /// The limit.
        max: u16,
        /// Offset of the first pair over the limit.
        offset: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::BlockTooLarge { datasize, max } => {
                write!(
                    f,
                    "vars block of {datasize} bytes is over the limit of {max}"
                )
            }
            DecodeError::EmptyKey { offset } => write!(f, "zero-length key at byte {offset}"),
            DecodeError::Truncated { offset } => {
                write!(f, "length at byte {offset} runs past the vars block")
            }
            DecodeError::TooManyVars { max, offset } => {
                write!(f, "more than {max} vars (at byte {offset})")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why vars could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// A key is empty; a decoder would reject it.
    EmptyKey {
        /// Index of the pair.
        index: usize,
    },
    /// A key or value is longer than 65535 bytes.
    FieldTooLong {
        /// Index of the pair.
        index: usize,
    },
    /// The whole vars block is longer than 65535 bytes.
    BlockTooLarge {
        /// The size it would have.
        len: usize,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EncodeError::EmptyKey { index } => write!(f, "var {index} has an empty key"),
            EncodeError::FieldTooLong { index } => {
                write!(f, "var {index} has a key or value over 65535 bytes")
            }
            EncodeError::BlockTooLarge { len } => {
                write!(f, "vars block of {len} bytes is over 65535")
            }
        }
    }
}

impl std::error::Error for EncodeError {}
