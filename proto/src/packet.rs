//! Framing: the header plus `datasize` bytes, checked against [`Limits`]
//! before anything else is parsed.
//!
//! This layer alone decides completeness. [`decode_frame`] answers
//! [`Status::Partial`] until `4 + datasize` bytes are buffered, and rejects an
//! over-limit `datasize` as soon as the header is there, so a peer cannot make
//! the server buffer more than the limit. It reports how many bytes the packet
//! used; the request body, if any, starts right after.

use bytes::BufMut;

use crate::{
    Status,
    error::{DecodeError, EncodeError},
    header::{HEADER_LEN, Header},
    limits::Limits,
    modifier::{Modifier1, Modifier2},
    vars::{Vars, block_len, encode_vars},
};

/// A complete frame whose vars block has not been parsed: what a handler that
/// is not WSGI (ping, say) needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'b> {
    /// The header.
    pub header: Header,
    /// The `datasize` bytes that follow it.
    pub block: &'b [u8],
}

impl<'b> Frame<'b> {
    /// Parses the block as vars.
    pub fn vars(&self, limits: &Limits) -> Result<Vars<'b>, DecodeError> {
        Vars::parse(self.block, HEADER_LEN, limits.max_vars)
    }
}

/// A complete packet with a validated vars block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'b> {
    /// The header.
    pub header: Header,
    /// The vars.
    pub vars: Vars<'b>,
}

/// Decodes the header and frames the vars block without parsing it.
///
/// On success returns the frame and the number of bytes it used
/// (`4 + datasize`).
pub fn decode_frame<'b>(
    buf: &'b [u8],
    limits: &Limits,
) -> Result<Status<(Frame<'b>, usize)>, DecodeError> {
    let Some((head, rest)) = buf.split_first_chunk::<HEADER_LEN>() else {
        return Ok(Status::Partial { needed: HEADER_LEN });
    };
    let header = Header::parse(*head);
    if header.datasize > limits.max_block {
        return Err(DecodeError::BlockTooLarge {
            datasize: header.datasize,
            max: limits.max_block,
        });
    }
    let len = usize::from(header.datasize);
    let Some(block) = rest.get(..len) else {
        return Ok(Status::Partial {
            needed: header.frame_len(),
        });
    };
    Ok(Status::Complete((
        Frame { header, block },
        header.frame_len(),
    )))
}

/// Decodes a whole packet: header, frame, and vars.
pub fn decode<'b>(
    buf: &'b [u8],
    limits: &Limits,
) -> Result<Status<(Packet<'b>, usize)>, DecodeError> {
    Ok(match decode_frame(buf, limits)? {
        Status::Complete((frame, used)) => Status::Complete((
            Packet {
                header: frame.header,
                vars: frame.vars(limits)?,
            },
            used,
        )),
        Status::Partial { needed } => Status::Partial { needed },
    })
}

/// The encoded length of a packet carrying `vars` (header included).
pub fn encoded_len<K: AsRef<[u8]>, V: AsRef<[u8]>>(vars: &[(K, V)]) -> Result<usize, EncodeError> {
    Ok(HEADER_LEN + block_len(vars)?)
}

/// Appends a packet (header and vars block) to `dst`. Nothing is written on
/// error.
pub fn encode_packet<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    modifier1: Modifier1,
    vars: &[(K, V)],
    modifier2: Modifier2,
    dst: &mut impl BufMut,
) -> Result<(), EncodeError> {
    let len = block_len(vars)?;
    let datasize = u16::try_from(len).map_err(|_| EncodeError::BlockTooLarge { len })?;
    Header::new(modifier1, datasize, modifier2).encode(dst);
    encode_vars(vars, dst)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_until_header() {
        for n in 0..4 {
            assert_eq!(
                decode(&[0, 5, 0, 0][..n], &Limits::DEFAULT),
                Ok(Status::Partial { needed: 4 })
            );
        }
    }

    #[test]
    fn partial_until_block() {
        let mut p = Vec::new();
        encode_packet(Modifier1::WSGI, &[("K", "value")], Modifier2(0), &mut p).unwrap();
        for n in 4..p.len() {
            assert_eq!(
                decode(&p[..n], &Limits::DEFAULT),
                Ok(Status::Partial { needed: p.len() })
            );
        }
        let (pkt, used) = decode(&p, &Limits::DEFAULT).unwrap().complete().unwrap();
        assert_eq!(used, p.len());
        assert_eq!(pkt.vars.get(b"K"), Some(&b"value"[..]));
    }

    #[test]
    fn body_bytes_are_left_for_the_caller() {
        let mut p = Vec::new();
        encode_packet(
            Modifier1::WSGI,
            &[("CONTENT_LENGTH", "3")],
            Modifier2(0),
            &mut p,
        )
        .unwrap();
        let header_len = p.len();
        p.extend_from_slice(b"abc");
        let (_, used) = decode(&p, &Limits::DEFAULT).unwrap().complete().unwrap();
        assert_eq!(used, header_len);
        assert_eq!(&p[used..], b"abc");
    }

    #[test]
    fn over_limit_is_rejected_before_the_block_arrives() {
        let limits = Limits {
            max_block: 4096,
            ..Limits::DEFAULT
        };
        assert_eq!(
            decode(b"GET ", &limits),
            Err(DecodeError::BlockTooLarge {
                datasize: 21573,
                max: 4096
            })
        );
        assert_eq!(
            decode(&[0, 0x00, 0x10, 0], &limits),
            Ok(Status::Partial { needed: 4 + 4096 })
        );
        assert!(decode(&[0, 0x01, 0x10, 0], &limits).is_err());
    }

    #[test]
    fn ping_is_a_header_only_frame() {
        let ping = Header::PING.to_bytes();
        let (f, used) = decode_frame(&ping, &Limits::DEFAULT)
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(used, 4);
        assert_eq!(f.header.modifier1, Modifier1::PING);
        assert!(f.block.is_empty());
    }

    #[test]
    fn unknown_modifiers_round_trip() {
        let mut p = Vec::new();
        encode_packet(Modifier1(173), &[("X", "y")], Modifier2(42), &mut p).unwrap();
        let (pkt, _) = decode(&p, &Limits::DEFAULT).unwrap().complete().unwrap();
        assert_eq!(pkt.header.modifier1, Modifier1(173));
        assert_eq!(pkt.header.modifier2, Modifier2(42));
        let mut again = Vec::new();
        let pairs: Vec<_> = pkt.vars.iter().collect();
        encode_packet(
            pkt.header.modifier1,
            &pairs,
            pkt.header.modifier2,
            &mut again,
        )
        .unwrap();
        assert_eq!(again, p);
    }
}
