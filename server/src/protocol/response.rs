//! Writing a response head as raw HTTP/1.x, which is what nginx expects back
//! over `uwsgi_pass` (uWSGI `proto/base.c` `uwsgi_proto_base_prepare_headers`):
//! the request's `SERVER_PROTOCOL` (`HTTP/1.0` when absent), the app's status
//! line, its headers in order, nothing added. And the few responses rwsgi
//! makes itself (502, 503), which carry `Connection: close`.

use bytes::BufMut;

/// Appends the raw head (`status` and `headers` as the app gave them),
/// then the `add-header` headers. Returns its length in bytes.
pub fn encode_head<'h>(
    protocol: &[u8],
    status: &[u8],
    headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
    extra: &[(String, String)],
    dst: &mut Vec<u8>,
) -> usize {
    let start = dst.len();
    dst.put_slice(if protocol.is_empty() {
        b"HTTP/1.0"
    } else {
        protocol
    });
    dst.put_u8(b' ');
    dst.put_slice(status);
    dst.put_slice(b"\r\n");
    let mut put = |k: &[u8], v: &[u8]| {
        dst.put_slice(k);
        dst.put_slice(b": ");
        dst.put_slice(v);
        dst.put_slice(b"\r\n");
    };
    for (k, v) in headers {
        put(k, v);
    }
    for (k, v) in extra {
        put(k.as_bytes(), v.as_bytes());
    }
    dst.put_slice(b"\r\n");
    dst.len() - start
}

/// A complete response rwsgi generates itself.
pub fn generated(protocol: &[u8], code: u16) -> Vec<u8> {
    let reason = crate::http_status::reason(code);
    let body = format!("{code} {reason}\n");
    let protocol = if protocol.is_empty() {
        b"HTTP/1.0"
    } else {
        protocol
    };
    let mut out = Vec::with_capacity(128);
    out.put_slice(protocol);
    out.put_slice(
        format!(
            " {code} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    out
}

/// A response the routing made (`routing.rs`): its status line, its
/// headers, `text/plain`, its length, `Connection: close`. Returns it and
/// the length of its head.
pub fn answer(protocol: &[u8], a: &crate::routing::Answer) -> (Vec<u8>, usize) {
    let protocol = if protocol.is_empty() {
        b"HTTP/1.0"
    } else {
        protocol
    };
    let mut out = Vec::with_capacity(160 + a.body.len());
    out.put_slice(protocol);
    out.put_u8(b' ');
    out.put_slice(a.status.as_bytes());
    out.put_slice(b"\r\n");
    for (k, v) in &a.headers {
        out.put_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.put_slice(
        format!(
            "Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            a.body.len()
        )
        .as_bytes(),
    );
    let head = out.len();
    out.put_slice(&a.body);
    (out, head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::ResponseHead;
    use bytes::Bytes;

    #[test]
    fn exactly_what_uwsgi_sends() {
        let head = ResponseHead {
            status: Bytes::from_static(b"200 OK"),
            headers: vec![
                (
                    Bytes::from_static(b"Content-Type"),
                    Bytes::from_static(b"text/plain"),
                ),
                (
                    Bytes::from_static(b"Content-Length"),
                    Bytes::from_static(b"6"),
                ),
            ],
        };
        let mut out = Vec::new();
        let n = encode_head(b"HTTP/1.1", &head.status, head.pairs(), &[], &mut out);
        out.extend_from_slice(b"hello\n");
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nhello\n"
        );
        assert_eq!(n, out.len() - 6);
        let mut out = Vec::new();
        encode_head(b"", &head.status, head.pairs(), &[], &mut out);
        assert!(out.starts_with(b"HTTP/1.0 200 OK\r\n"));
    }

    #[test]
    fn generated_responses_close() {
        let r = generated(b"HTTP/1.1", 503);
        let s = String::from_utf8(r).unwrap();
        assert!(s.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(s.contains("Connection: close\r\n"));
    }
}
