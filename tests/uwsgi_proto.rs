use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use crate::harness::*;

fn server(callable: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--processes", "2"];
    args.extend_from_slice(extra);
    serve_app(
        callable,
        &["--socket", "127.0.0.1:0", "--socket", "{dir}/app.sock"],
        &args,
    )
}

#[test]
fn raw_http_response_exactly_as_uwsgi() {
    let s = server("hello", &[]);
    let mut c = TcpStream::connect(s.uwsgi.unwrap()).unwrap();
    let out = uwsgi_raw(&mut c, &cgi("GET", "/", &[]), b"");
    assert_eq!(
        out,
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!"
    );
    // Without SERVER_PROTOCOL the status line says HTTP/1.0.
    let mut c = UnixStream::connect(s.dir.join("app.sock")).unwrap();
    let out = uwsgi_raw(
        &mut c,
        &[("REQUEST_METHOD", "GET"), ("PATH_INFO", "/")],
        b"",
    );
    assert!(out.starts_with(b"HTTP/1.0 200 OK\r\n"));
    s.wait_logged(
        "(HTTP/1.1 200) 2 headers in 65 bytes",
        Duration::from_secs(5),
    );
}

#[test]
fn body_streams_over_uwsgi() {
    let s = server("echo", &[]);
    let body = vec![7u8; 3 * 1024 * 1024 + 17];
    let len = body.len().to_string();
    let mut c = UnixStream::connect(s.dir.join("app.sock")).unwrap();
    let out = uwsgi_raw(
        &mut c,
        &cgi("POST", "/up", &[("CONTENT_LENGTH", &len)]),
        &body,
    );
    let text = String::from_utf8(out).unwrap();
    let json = text.split("\r\n\r\n").nth(1).unwrap();
    let v: Value = serde_json::from_str(json).unwrap();
    assert_eq!(v["len"], body.len());
}

#[test]
fn ping_is_answered_with_pong() {
    let s = server("hello", &[]);
    let mut c = TcpStream::connect(s.uwsgi.unwrap()).unwrap();
    c.write_all(&[100, 0, 0, 0]).unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    assert_eq!(out, [100, 0, 0, 1]);
    s.wait_logged("PING", Duration::from_secs(5));
}

#[test]
fn malformed_packets_close_only_their_connection() {
    let s = server("hello", &["--buffer-size", "4096"]);
    let addr = s.uwsgi.unwrap();
    // A request that stalls keeps its connection while bad ones come and go.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(&[0, 10]).unwrap();
    for bad in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0, 5, 0, 0, 0, 0, 1, 0, b'v'],
        &[0, 4, 0, 0, 9, 0, b'a', b'b'],
        &[0, 0x50, 0x14, 0],
        &[7, 0, 0, 0],
    ] {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(bad).unwrap();
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        assert!(out.is_empty(), "{bad:?} got a reply");
    }
    s.wait_logged(
        "invalid request block size: 21573 (max 4096)...skip",
        Duration::from_secs(5),
    );
    s.wait_logged("plain HTTP sent to a uwsgi socket", Duration::from_secs(5));
    s.wait_logged("uwsgi key cannot be null", Duration::from_secs(5));
    s.wait_logged(
        "-- unavailable modifier requested: 7 --",
        Duration::from_secs(5),
    );
    // Everyone else carries on.
    let mut c = TcpStream::connect(addr).unwrap();
    assert!(uwsgi_raw(&mut c, &cgi("GET", "/", &[]), b"").ends_with(b"Hello, World!"));
    drop(slow);
}

#[test]
fn uwsgi_curl_is_a_second_real_client() {
    let s = server("echo", &[]);
    let curl = venv().join("bin/uwsgi_curl");
    let addr = s.uwsgi.unwrap().to_string();
    let out = run(Command::new(&curl).arg(&addr).arg("/hello?x=1"));
    assert!(out.contains("200 OK"), "{out}");
    assert!(out.contains("\"PATH_INFO\": \"/hello\""), "{out}");
    assert!(out.contains("\"QUERY_STRING\": \"x=1\""), "{out}");
}

/// The environ's keys are exactly the packet's, whatever order and
/// spelling each request uses: the worker remembers the last request's
/// keys by position, and a request that differs (another order, a key
/// that is not ASCII where an ASCII one was, a key that repeats) must not
/// be given a remembered one; a key too long to be kept is still right.
fn environ_keys_follow_each_packet(extra: &[&str]) {
    let mut args = vec!["--processes", "1"];
    args.extend_from_slice(extra);
    let s = serve_app("echo", &["--socket", "127.0.0.1:0"], &args);
    let plain: &[(&str, &str)] = &[
        ("REQUEST_METHOD", "GET"),
        ("PATH_INFO", "/a"),
        ("HTTP_X_ONE", "1"),
        ("HTTP_X_TWO", "2"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
    ];
    // The UTF-8 bytes of "É" reach Python as latin-1, two characters; a
    // key this long is made anew for each request.
    let long = format!("HTTP_X_{}", "L".repeat(120));
    let other: &[(&str, &str)] = &[
        ("PATH_INFO", "/b"),
        ("REQUEST_METHOD", "GET"),
        ("HTTP_X_É", "3"),
        ("HTTP_X_ONE", "4"),
        ("HTTP_X_ONE", "5"),
        (&long, "7"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("HTTP_X_THREE", "6"),
    ];
    let expect = |vars: &[(&str, &str)]| {
        let mut want = serde_json::Map::new();
        for (k, v) in vars {
            let k: String = k.bytes().map(char::from).collect();
            want.insert(k, serde_json::Value::from(*v));
        }
        want
    };
    for round in 0..3 {
        for vars in [plain, other] {
            let mut c = TcpStream::connect(s.uwsgi.unwrap()).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let out = uwsgi_raw(&mut c, vars, b"");
            let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
            let body: serde_json::Value = serde_json::from_slice(&out[split + 4..]).unwrap();
            let env = body["environ"].as_object().unwrap();
            let got: serde_json::Map<_, _> = env
                .iter()
                .filter(|(k, _)| !k.starts_with("wsgi.") && *k != "SCRIPT_NAME")
                .filter(|(_, v)| v.is_string())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            assert_eq!(got, expect(vars), "round {round}");
        }
    }
}

#[test]
fn environ_keys_follow_each_packet_through_the_master() {
    environ_keys_follow_each_packet(&[]);
}

#[test]
fn environ_keys_follow_each_packet_with_worker_accept() {
    environ_keys_follow_each_packet(&["--worker-accept"]);
}
