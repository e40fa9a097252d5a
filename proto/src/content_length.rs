//! `CONTENT_LENGTH` read the way uWSGI reads it (`core/protocol.c`
//! `get_content_length`): the leading decimal digits; no digits (the empty
//! value nginx sends for bodiless requests) means 0.

/// Parses a `CONTENT_LENGTH` value. Returns `None` when the digits overflow
/// a `u64`, which no real body can be: the caller rejects the request.
pub fn content_length(value: &[u8]) -> Option<u64> {
    let mut n: u64 = 0;
    for &b in value.iter().take_while(|b| b.is_ascii_digit()) {
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::content_length;

    #[test]
    fn uwsgi_rules() {
        assert_eq!(content_length(b""), Some(0));
        assert_eq!(content_length(b"7"), Some(7));
        assert_eq!(content_length(b"10485760"), Some(10_485_760));
        assert_eq!(content_length(b"12abc"), Some(12));
        assert_eq!(content_length(b"abc"), Some(0));
        assert_eq!(content_length(b" 5"), Some(0));
        assert_eq!(content_length(b"-5"), Some(0));
        assert_eq!(content_length(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(content_length(b"18446744073709551616"), None);
    }
}
