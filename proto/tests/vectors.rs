//! Byte vectors from real nginx `uwsgi_pass` traffic (nginx 1.22.1 with the
//! stock `uwsgi_params`, `reference/uwsgi-spec.md` §1.8), checked field by
//! field, and uWSGI's `uwsgi_parse_vars` edge cases.

use rwsgi_proto::{
    DecodeError, Header, Limits, Modifier1, Modifier2, Status, content_length, decode,
    decode_frame, encode_packet,
};

/// nginx's packet for `curl http://127.0.0.1:18080/dump/hello?x=1`.
const NGINX_GET: &[&str] = &[
    "007a01000c0051554552595f535452494e470300783d310e0052455155455354",
    "5f4d4554484f4403004745540c00434f4e54454e545f5459504500000e00434f",
    "4e54454e545f4c454e47544800000b00524551554553545f5552490f002f6475",
    "6d702f68656c6c6f3f783d310900504154485f494e464f0b002f64756d702f68",
    "656c6c6f0d00444f43554d454e545f524f4f5415002f7573722f73686172652f",
    "6e67696e782f68746d6c0f005345525645525f50524f544f434f4c0800485454",
    "502f312e310e00524551554553545f534348454d450400687474700b0052454d",
    "4f54455f4144445209003132372e302e302e310b0052454d4f54455f504f5254",
    "050033343735340b005345525645525f504f5254050031383038300b00534552",
    "5645525f4e414d4509006c6f63616c686f73740900485454505f484f53540f00",
    "3132372e302e302e313a31383038300b00485454505f41434345505403002a2f",
    "2a0f00485454505f555345525f4147454e540a006375726c2f382e352e30",
];

/// nginx's packet for a 7-byte JSON POST to `/dump/api`, body included.
const NGINX_POST: &[&str] = &[
    "00be01000c0051554552595f535452494e4700000e00524551554553545f4d45",
    "54484f440400504f53540c00434f4e54454e545f5459504510006170706c6963",
    "6174696f6e2f6a736f6e0e00434f4e54454e545f4c454e4754480100370b0052",
    "4551554553545f55524909002f64756d702f6170690900504154485f494e464f",
    "09002f64756d702f6170690d00444f43554d454e545f524f4f5415002f757372",
    "2f73686172652f6e67696e782f68746d6c0f005345525645525f50524f544f43",
    "4f4c0800485454502f312e310e00524551554553545f534348454d4504006874",
    "74700b0052454d4f54455f4144445209003132372e302e302e310b0052454d4f",
    "54455f504f5254050033343735360b005345525645525f504f52540500313830",
    "38300b005345525645525f4e414d4509006c6f63616c686f7374090048545450",
    "5f484f53540f003132372e302e302e313a31383038300b00485454505f414343",
    "45505403002a2f2a0f00485454505f555345525f4147454e540a006375726c2f",
    "382e352e301100485454505f434f4e54454e545f5459504510006170706c6963",
    "6174696f6e2f6a736f6e1300485454505f434f4e54454e545f4c454e47544801",
    "00377b2261223a317d",
];

fn unhex(lines: &[&str]) -> Vec<u8> {
    let hex: String = lines.concat();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn pairs(buf: &[u8]) -> (Header, Vec<(String, String)>, usize) {
    let (pkt, used) = decode(buf, &Limits::DEFAULT).unwrap().complete().unwrap();
    let vars = pkt
        .vars
        .iter()
        .map(|(k, v)| {
            (
                String::from_utf8(k.to_vec()).unwrap(),
                String::from_utf8(v.to_vec()).unwrap(),
            )
        })
        .collect();
    (pkt.header, vars, used)
}

#[test]
fn nginx_get_field_by_field() {
    let buf = unhex(NGINX_GET);
    assert_eq!(buf.len(), 382);
    let (header, vars, used) = pairs(&buf);
    assert_eq!(header.modifier1, Modifier1::WSGI);
    assert_eq!(header.datasize, 378);
    assert_eq!(header.modifier2, Modifier2(0));
    assert_eq!(used, 382);
    let expected = [
        ("QUERY_STRING", "x=1"),
        ("REQUEST_METHOD", "GET"),
        ("CONTENT_TYPE", ""),
        ("CONTENT_LENGTH", ""),
        ("REQUEST_URI", "/dump/hello?x=1"),
        ("PATH_INFO", "/dump/hello"),
        ("DOCUMENT_ROOT", "/usr/share/nginx/html"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "http"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "34754"),
        ("SERVER_PORT", "18080"),
        ("SERVER_NAME", "localhost"),
        ("HTTP_HOST", "127.0.0.1:18080"),
        ("HTTP_ACCEPT", "*/*"),
        ("HTTP_USER_AGENT", "curl/8.5.0"),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(vars, expected);
    // The empty CONTENT_LENGTH nginx always sends reads as 0.
    assert_eq!(content_length(b""), Some(0));
}

#[test]
fn nginx_post_field_by_field_with_body() {
    let buf = unhex(NGINX_POST);
    assert_eq!(buf.len(), 457);
    let (header, vars, used) = pairs(&buf);
    assert_eq!(header.datasize, 446);
    assert_eq!(used, 450);
    assert_eq!(&buf[used..], br#"{"a":1}"#);
    let get = |k: &str| {
        vars.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(vars.len(), 18);
    assert_eq!(get("REQUEST_METHOD"), Some("POST"));
    assert_eq!(get("QUERY_STRING"), Some(""));
    assert_eq!(get("CONTENT_TYPE"), Some("application/json"));
    assert_eq!(get("CONTENT_LENGTH"), Some("7"));
    assert_eq!(get("PATH_INFO"), Some("/dump/api"));
    // nginx sends the body headers twice: as params and as HTTP_* vars.
    assert_eq!(get("HTTP_CONTENT_TYPE"), Some("application/json"));
    assert_eq!(get("HTTP_CONTENT_LENGTH"), Some("7"));
    assert_eq!(
        content_length(get("CONTENT_LENGTH").unwrap().as_bytes()),
        Some(7)
    );
}

#[test]
fn nginx_packets_reencode_to_the_same_bytes() {
    for lines in [NGINX_GET, NGINX_POST] {
        let buf = unhex(lines);
        let (pkt, used) = decode(&buf, &Limits::DEFAULT).unwrap().complete().unwrap();
        let v: Vec<_> = pkt.vars.iter().collect();
        let mut out = Vec::new();
        encode_packet(pkt.header.modifier1, &v, pkt.header.modifier2, &mut out).unwrap();
        assert_eq!(out, &buf[..used]);
    }
}

#[test]
fn nginx_get_is_partial_at_every_split() {
    let buf = unhex(NGINX_GET);
    for n in 0..buf.len() {
        assert!(
            decode(&buf[..n], &Limits::DEFAULT).unwrap().is_partial(),
            "at {n}"
        );
    }
}

#[test]
fn uwsgi_default_buffer_size_rejects_big_cookie() {
    // A 5178-byte block against uWSGI's 4096: `invalid request block size`.
    let cookie = "c".repeat(5160);
    let mut p = Vec::new();
    encode_packet(
        Modifier1::WSGI,
        &[("HTTP_COOKIE", cookie.as_str())],
        Modifier2(0),
        &mut p,
    )
    .unwrap();
    let uwsgi = Limits {
        max_block: 4096,
        ..Limits::DEFAULT
    };
    assert!(matches!(
        decode(&p, &uwsgi),
        Err(DecodeError::BlockTooLarge { max: 4096, .. })
    ));
    // rwsgi's default takes it.
    assert!(decode(&p, &Limits::DEFAULT).unwrap().complete().is_some());
}

#[test]
fn parse_vars_edge_cases() {
    let lim = Limits::DEFAULT;
    // Zero-length key.
    assert_eq!(
        decode(&[0, 5, 0, 0, 0, 0, 1, 0, b'v'], &lim),
        Err(DecodeError::EmptyKey { offset: 4 })
    );
    // Empty value as the very last item is legal.
    let (pkt, _) = decode(&[0, 5, 0, 0, 1, 0, b'K', 0, 0], &lim)
        .unwrap()
        .complete()
        .unwrap();
    assert_eq!(pkt.vars.get(b"K"), Some(&b""[..]));
    // Truncated length inside the block.
    assert_eq!(
        decode(&[0, 4, 0, 0, 1, 0, b'K', 7], &lim),
        Err(DecodeError::Truncated { offset: 7 })
    );
    // Value running past the block (but not past the buffer).
    assert_eq!(
        decode(&[0, 6, 0, 0, 1, 0, b'K', 2, 0, b'x', b'y'], &lim),
        Err(DecodeError::Truncated { offset: 7 })
    );
    // Too many vars.
    let few = Limits { max_vars: 1, ..lim };
    assert_eq!(
        decode(&[0, 10, 0, 0, 1, 0, b'A', 0, 0, 1, 0, b'B', 0, 0], &few),
        Err(DecodeError::TooManyVars { max: 1, offset: 9 })
    );
}

#[test]
fn ping_and_pong() {
    let ping = Header::PING.to_bytes();
    assert_eq!(ping, [100, 0, 0, 0]);
    let Status::Complete((frame, 4)) = decode_frame(&ping, &Limits::DEFAULT).unwrap() else {
        panic!("ping is a complete frame");
    };
    assert_eq!(frame.header.modifier1, Modifier1::PING);
    assert_eq!(Header::PONG.to_bytes(), [0x64, 0x00, 0x00, 0x01]);
}
