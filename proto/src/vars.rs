//! The vars block: `(u16 LE key_len, key, u16 LE val_len, val)` repeated until
//! the block is consumed (uWSGI `core/protocol.c` `uwsgi_parse_vars`).
//!
//! [`Vars`] is a view over a block that has been validated once; iterating it
//! walks the bytes again without allocating. Order and duplicates are kept:
//! the WSGI environ is built in packet order, so the last duplicate wins there,
//! as in uWSGI.
//!
//! The block is always complete when it gets here (the framing layer saw
//! `datasize` bytes), so the parsers are nom's *complete* ones: a short field
//! is malformed input.

use bytes::BufMut;
use nom::{IResult, Parser, bytes::complete::take, number::complete::le_u16};

use crate::error::{DecodeError, EncodeError};

/// One length-prefixed field.
fn field(input: &[u8]) -> IResult<&[u8], &[u8]> {
    let (input, len) = le_u16(input)?;
    take(len).parse(input)
}

/// A validated, borrowed vars block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vars<'b> {
    block: &'b [u8],
    count: u16,
}

impl<'b> Vars<'b> {
    /// Validates `block`. `base` is the offset of the block in the packet, so
    /// that errors point at packet bytes.
    pub(crate) fn parse(block: &'b [u8], base: usize, max_vars: u16) -> Result<Self, DecodeError> {
        let mut rest = block;
        let mut count: u16 = 0;
        while !rest.is_empty() {
            let offset = base + (block.len() - rest.len());
            if count >= max_vars {
                return Err(DecodeError::TooManyVars {
                    max: max_vars,
                    offset,
                });
            }
            let (after_key, key) = field(rest).map_err(|_| DecodeError::Truncated { offset })?;
            if key.is_empty() {
                return Err(DecodeError::EmptyKey { offset });
            }
            let value_offset = base + (block.len() - after_key.len());
            let (after_value, _) = field(after_key).map_err(|_| DecodeError::Truncated {
                offset: value_offset,
            })?;
            rest = after_value;
            count += 1;
        }
        Ok(Vars { block, count })
    }

    /// The number of key/value pairs.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether the block holds no pairs.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The raw bytes of the block.
    pub fn as_bytes(&self) -> &'b [u8] {
        self.block
    }

    /// The pairs in packet order, duplicates included.
    pub fn iter(&self) -> VarsIter<'b> {
        VarsIter { rest: self.block }
    }

    /// The value of the last pair named `key` (the one a WSGI environ ends up
    /// holding).
    pub fn get(&self, key: &[u8]) -> Option<&'b [u8]> {
        self.iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .last()
    }
}

impl<'b> IntoIterator for Vars<'b> {
    type Item = (&'b [u8], &'b [u8]);
    type IntoIter = VarsIter<'b>;
    fn into_iter(self) -> VarsIter<'b> {
        self.iter()
    }
}

impl<'b> IntoIterator for &Vars<'b> {
    type Item = (&'b [u8], &'b [u8]);
    type IntoIter = VarsIter<'b>;
    fn into_iter(self) -> VarsIter<'b> {
        self.iter()
    }
}

/// Iterator over the pairs of a [`Vars`] block.
#[derive(Debug, Clone)]
pub struct VarsIter<'b> {
    rest: &'b [u8],
}

impl<'b> Iterator for VarsIter<'b> {
    type Item = (&'b [u8], &'b [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        // The block was validated (with nom) when the `Vars` was made, so
        // this walk cannot fail; if it somehow did, the iteration just ends.
        // A plain walk rather than the parser again: it runs for every var
        // of every request.
        let (key, rest) = split_field(self.rest)?;
        let (value, rest) = split_field(rest)?;
        self.rest = rest;
        Some((key, value))
    }
}

/// One length-prefixed field of an already validated block, and the rest.
fn split_field(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = input.split_first_chunk::<2>()?;
    rest.split_at_checked(usize::from(u16::from_le_bytes(*len)))
}

/// The encoded length of a vars block, or why it cannot be encoded.
pub(crate) fn block_len<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    vars: &[(K, V)],
) -> Result<usize, EncodeError> {
    let mut len = 0usize;
    for (index, (k, v)) in vars.iter().enumerate() {
        len += pair_len(index, k.as_ref(), v.as_ref())?;
    }
    check_block_len(len)
}

/// The encoded length of pair number `index`, or why it cannot be encoded.
fn pair_len(index: usize, k: &[u8], v: &[u8]) -> Result<usize, EncodeError> {
    if k.is_empty() {
        return Err(EncodeError::EmptyKey { index });
    }
    if k.len() > usize::from(u16::MAX) || v.len() > usize::from(u16::MAX) {
        return Err(EncodeError::FieldTooLong { index });
    }
    Ok(4 + k.len() + v.len())
}

fn check_block_len(len: usize) -> Result<usize, EncodeError> {
    if len > usize::from(u16::MAX) {
        return Err(EncodeError::BlockTooLarge { len });
    }
    Ok(len)
}

/// Writes a vars block pair by pair, for a producer that does not hold
/// all its pairs at once (a response head read from the app's objects):
/// each pair is checked as [`encode_vars`] checks it, and
/// [`VarsWriter::finish`] checks the whole. On an error the block in
/// `dst` is incomplete and must be thrown away.
#[derive(Debug)]
pub struct VarsWriter<'d> {
    dst: &'d mut Vec<u8>,
    start: usize,
    index: usize,
}

impl<'d> VarsWriter<'d> {
    /// Starts a block at the end of `dst`.
    pub fn new(dst: &'d mut Vec<u8>) -> Self {
        let start = dst.len();
        VarsWriter {
            dst,
            start,
            index: 0,
        }
    }

    /// Appends one pair.
    pub fn push(&mut self, k: &[u8], v: &[u8]) -> Result<(), EncodeError> {
        pair_len(self.index, k, v)?;
        put_field(k, self.dst);
        put_field(v, self.dst);
        self.index += 1;
        Ok(())
    }

    /// The block's length, when it is not over the format's limit.
    pub fn finish(self) -> Result<usize, EncodeError> {
        check_block_len(self.dst.len() - self.start)
    }
}

/// Appends a vars block (no header) to `dst`. Nothing is written on error.
pub fn encode_vars<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    vars: &[(K, V)],
    dst: &mut impl BufMut,
) -> Result<usize, EncodeError> {
    let len = block_len(vars)?;
    for (k, v) in vars {
        put_field(k.as_ref(), dst);
        put_field(v.as_ref(), dst);
    }
    Ok(len)
}

/// Writes one field whose length `block_len` has checked.
fn put_field(bytes: &[u8], dst: &mut impl BufMut) {
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    dst.put_u16_le(len);
    dst.put_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut v = Vec::new();
        encode_vars(pairs, &mut v).unwrap();
        v
    }

    #[test]
    fn keeps_order_and_duplicates() {
        let b = block(&[("A", "1"), ("B", ""), ("A", "2")]);
        let vars = Vars::parse(&b, 4, 10).unwrap();
        let got: Vec<_> = vars.iter().collect();
        assert_eq!(
            got,
            vec![
                (&b"A"[..], &b"1"[..]),
                (&b"B"[..], &b""[..]),
                (&b"A"[..], &b"2"[..])
            ]
        );
        assert_eq!(vars.len(), 3);
        assert_eq!(vars.get(b"A"), Some(&b"2"[..]));
        assert_eq!(vars.get(b"B"), Some(&b""[..]));
        assert_eq!(vars.get(b"C"), None);
    }

    #[test]
    fn the_writer_writes_what_encode_vars_does_and_refuses_the_same() {
        let pairs: [(&[u8], &[u8]); 3] = [(b"STATUS", b"200 OK"), (b"A", b""), (b"A", b"2")];
        let mut by_pair = vec![9];
        let mut w = VarsWriter::new(&mut by_pair);
        for (k, v) in pairs {
            w.push(k, v).unwrap();
        }
        assert_eq!(w.finish().unwrap(), by_pair.len() - 1);
        let mut whole = vec![9];
        encode_vars(&pairs, &mut whole).unwrap();
        assert_eq!(by_pair, whole);

        let mut out = Vec::new();
        let mut w = VarsWriter::new(&mut out);
        w.push(b"K", b"v").unwrap();
        assert_eq!(w.push(b"", b"v"), Err(EncodeError::EmptyKey { index: 1 }));
        let long = vec![b'x'; 70_000];
        assert_eq!(
            w.push(b"K", &long),
            Err(EncodeError::FieldTooLong { index: 1 })
        );
        let big = vec![b'x'; 40_000];
        w.push(b"K", &big).unwrap();
        w.push(b"K", &big).unwrap();
        assert!(matches!(w.finish(), Err(EncodeError::BlockTooLarge { .. })));
    }

    #[test]
    fn empty_block_is_valid() {
        let vars = Vars::parse(&[], 4, 10).unwrap();
        assert!(vars.is_empty());
        assert_eq!(vars.iter().count(), 0);
    }

    #[test]
    fn empty_value_last_is_valid() {
        let b = block(&[("K", "v"), ("LAST", "")]);
        assert_eq!(Vars::parse(&b, 0, 10).unwrap().len(), 2);
    }

    #[test]
    fn rejects_empty_key_with_offset() {
        let mut b = block(&[("K", "v")]);
        b.extend_from_slice(&[0, 0, 1, 0, b'x']);
        assert_eq!(
            Vars::parse(&b, 4, 10),
            Err(DecodeError::EmptyKey { offset: 4 + 6 })
        );
    }

    #[test]
    fn rejects_truncated_key_and_value() {
        // key length says 5, only 2 bytes follow
        assert_eq!(
            Vars::parse(&[5, 0, b'a', b'b'], 4, 10),
            Err(DecodeError::Truncated { offset: 4 })
        );
        // a lone byte where a length should be
        assert_eq!(
            Vars::parse(&[1], 4, 10),
            Err(DecodeError::Truncated { offset: 4 })
        );
        // value length runs past
        assert_eq!(
            Vars::parse(&[1, 0, b'a', 9, 0, b'x'], 4, 10),
            Err(DecodeError::Truncated { offset: 4 + 3 })
        );
        // value length missing entirely
        assert_eq!(
            Vars::parse(&[1, 0, b'a'], 0, 10),
            Err(DecodeError::Truncated { offset: 3 })
        );
    }

    #[test]
    fn rejects_too_many_vars() {
        let b = block(&[("A", "1"), ("B", "2"), ("C", "3")]);
        assert!(Vars::parse(&b, 0, 3).is_ok());
        assert_eq!(
            Vars::parse(&b, 0, 2),
            Err(DecodeError::TooManyVars { max: 2, offset: 12 })
        );
    }

    #[test]
    fn encode_rejects_what_decode_would() {
        let mut v = Vec::new();
        assert_eq!(
            encode_vars(&[("", "x")], &mut v),
            Err(EncodeError::EmptyKey { index: 0 })
        );
        let long = vec![b'x'; 70_000];
        assert_eq!(
            encode_vars(&[(&b"K"[..], &long[..])], &mut v),
            Err(EncodeError::FieldTooLong { index: 0 })
        );
        let big = vec![b'x'; 40_000];
        assert_eq!(
            encode_vars(&[(&b"A"[..], &big[..]), (&b"B"[..], &big[..])], &mut v),
            Err(EncodeError::BlockTooLarge { len: 80_010 })
        );
        assert!(v.is_empty(), "nothing is written on error");
    }
}
