//! The 4-byte packet header `{modifier1, datasize (u16 LE), modifier2}`.
//!
//! uWSGI declares it as a packed struct (`uwsgi.h` `struct uwsgi_header`) and
//! byte-swaps `datasize` on big-endian hosts; nginx writes it byte by byte
//! (`ngx_http_uwsgi_create_request`). `datasize` counts the vars block only.

use bytes::BufMut;

use crate::modifier::{Modifier1, Modifier2};

/// The length of the header in bytes.
pub const HEADER_LEN: usize = 4;

/// A uwsgi packet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Selects the request handler (0 = WSGI).
    pub modifier1: Modifier1,
    /// The length of the vars block that follows, in bytes.
    pub datasize: u16,
    /// Handler-specific sub-type (ignored for WSGI).
    pub modifier2: Modifier2,
}

impl Header {
    /// A ping request (modifier1 100, modifier2 0, no data).
    pub const PING: Header = Header::new(Modifier1::PING, 0, Modifier2::PING);
    /// The reply to a ping (modifier1 100, modifier2 1, no data): what uWSGI's
    /// ping plugin sends back (`plugins/ping/ping_plugin.c`).
    pub const PONG: Header = Header::new(Modifier1::PING, 0, Modifier2::PONG);

    /// Builds a header.
    pub const fn new(modifier1: Modifier1, datasize: u16, modifier2: Modifier2) -> Header {
        Header {
            modifier1,
            datasize,
            modifier2,
        }
    }

    /// Parses the four header bytes. Every bit pattern is a valid header.
    pub const fn parse(bytes: [u8; HEADER_LEN]) -> Header {
        let [m1, lo, hi, m2] = bytes;
        Header {
            modifier1: Modifier1(m1),
            datasize: u16::from_le_bytes([lo, hi]),
            modifier2: Modifier2(m2),
        }
    }

    /// The four bytes of this header.
    pub const fn to_bytes(self) -> [u8; HEADER_LEN] {
        let [lo, hi] = self.datasize.to_le_bytes();
        [self.modifier1.0, lo, hi, self.modifier2.0]
    }

    /// Appends the four bytes of this header to `dst`.
    pub fn encode(self, dst: &mut impl BufMut) {
        dst.put_slice(&self.to_bytes());
    }

    /// The length of the whole frame (header plus vars block).
    pub const fn frame_len(self) -> usize {
        HEADER_LEN + self.datasize as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasize_is_little_endian() {
        let h = Header::parse([0x00, 0x7a, 0x01, 0x00]);
        assert_eq!(h.modifier1, Modifier1::WSGI);
        assert_eq!(h.datasize, 0x017a);
        assert_eq!(h.modifier2, Modifier2(0));
        assert_eq!(h.to_bytes(), [0x00, 0x7a, 0x01, 0x00]);
    }

    #[test]
    fn pong_bytes_match_uwsgi() {
        assert_eq!(Header::PONG.to_bytes(), [0x64, 0, 0, 1]);
        assert_eq!(Header::PING.to_bytes(), [0x64, 0, 0, 0]);
    }

    #[test]
    fn plain_http_reads_as_a_huge_block() {
        // "GET " read as a header: modifier1 'G', datasize 0x5445 = 21573.
        let h = Header::parse(*b"GET ");
        assert_eq!(h.modifier1, Modifier1(b'G'));
        assert_eq!(h.datasize, 21573);
    }

    #[test]
    fn encode_appends() {
        let mut v = Vec::new();
        Header::new(Modifier1(30), 513, Modifier2(7)).encode(&mut v);
        assert_eq!(v, [30, 1, 2, 7]);
    }
}
