use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::*;

fn server(callable: &str) -> Server {
    serve_app(
        callable,
        &["--http-socket", "127.0.0.1:0"],
        &["--processes", "2"],
    )
}

#[test]
fn get_and_environ() {
    let s = server("echo");
    let r = get(s.http.unwrap(), "/caf%C3%A9/x%20y?q=1&r=%20");
    assert_eq!(r.status, 200);
    let env = r.json()["environ"].clone();
    assert_eq!(env["REQUEST_METHOD"], "GET");
    // PATH_INFO is percent-decoded, then given to Python as latin-1.
    assert_eq!(env["PATH_INFO"], "/caf\u{c3}\u{a9}/x y");
    assert_eq!(env["REQUEST_URI"], "/caf%C3%A9/x%20y?q=1&r=%20");
    assert_eq!(env["QUERY_STRING"], "q=1&r=%20");
    assert_eq!(env["SERVER_PROTOCOL"], "HTTP/1.1");
    assert_eq!(env["SCRIPT_NAME"], "");
    assert_eq!(env["HTTP_HOST"], "test");
    assert_eq!(env["wsgi.url_scheme"], "http");
    assert_eq!(env["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(env["wsgi.multiprocess"], true);
    assert_eq!(env["wsgi.multithread"], false);
    assert_eq!(env["wsgi.run_once"], false);
    assert_eq!(env["wsgi.version"], serde_json::json!([1, 0]));
}

#[test]
fn post_10mb_upload_and_download() {
    let s = server("echo");
    let body: Vec<u8> = (0..10 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let r = http(
        s.http.unwrap(),
        "POST",
        "/upload",
        &[("Content-Type", "application/octet-stream")],
        &body,
    );
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["len"], body.len());
    let file = s.dir.join("body");
    std::fs::write(&file, &body).unwrap();
    let sum = run(std::process::Command::new("sha256sum").arg(&file));
    assert_eq!(
        j["sha256"].as_str().unwrap(),
        sum.split(' ').next().unwrap()
    );
    assert_eq!(j["environ"]["CONTENT_LENGTH"], "10485760");
    drop(s);
    let s = server("download");
    let r = get(s.http.unwrap(), "/?10485760");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 10 * 1024 * 1024);
    assert!(
        r.body
            .chunks(256)
            .all(|c| c.iter().enumerate().all(|(i, &b)| b == i as u8))
    );
}

#[test]
fn chunked_upload_and_streamed_response() {
    let s = server("echo");
    let mut c = TcpStream::connect(s.http.unwrap()).unwrap();
    c.write_all(b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n").unwrap();
    let r = read_response(&mut BufReader::new(c), "POST").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["len"], 11);
    drop(s);
    let s = server("stream");
    let r = get(s.http.unwrap(), "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(
        String::from_utf8(r.body).unwrap(),
        "first\nchunk 0\nchunk 1\nchunk 2\n"
    );
}

#[test]
fn keepalive_pipelining_http10_head_and_continue() {
    let s = server("hello");
    let addr = s.http.unwrap();
    // 100 requests on one connection.
    let c = TcpStream::connect(addr).unwrap();
    let mut w = c.try_clone().unwrap();
    let mut r = BufReader::new(c);
    for _ in 0..100 {
        w.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let resp = read_response(&mut r, "GET").unwrap();
        assert_eq!(resp.body, b"Hello, World!");
    }
    // Three pipelined requests, answered in order.
    w.write_all(b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: t\r\n\r\nGET /3 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut r, "GET").unwrap().body, b"Hello, World!");
    let head = read_response(&mut r, "HEAD").unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("13"));
    assert_eq!(read_response(&mut r, "GET").unwrap().body, b"Hello, World!");
    // The request log counts the head as uWSGI does.
    s.wait_logged(
        "(HTTP/1.1 200) 2 headers in 65 bytes",
        Duration::from_secs(5),
    );
    // HTTP/1.0.
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    assert!(
        out.starts_with(b"HTTP/1.0 200 OK\r\n"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    drop(s);
    // Expect: 100-continue.
    let s = server("echo");
    let mut c = TcpStream::connect(s.http.unwrap()).unwrap();
    c.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n").unwrap();
    let mut r = BufReader::new(c.try_clone().unwrap());
    let cont = read_response(&mut r, "GET").unwrap();
    assert_eq!(cont.status, 100);
    c.write_all(b"abcd").unwrap();
    let resp = read_response(&mut r, "POST").unwrap();
    assert_eq!(resp.json()["len"], 4);
}

#[test]
fn many_headers_big_cookie_and_limits() {
    let s = server("echo");
    let addr = s.http.unwrap();
    let cookie = format!("big={}", "c".repeat(8 * 1024));
    let mut headers: Vec<(String, String)> = (0..60)
        .map(|i| (format!("X-H{i}"), format!("v{i}")))
        .collect();
    headers.push(("Cookie".into(), cookie.clone()));
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let r = http(addr, "GET", "/", &refs, b"");
    assert_eq!(r.status, 200);
    let env = r.json()["environ"].clone();
    assert_eq!(env["HTTP_X_H59"], "v59");
    assert_eq!(env["HTTP_COOKIE"], cookie.as_str());
    // A header block over the limit gets 431, and the server carries on.
    let huge = "h".repeat(100 * 1024);
    let r = http(addr, "GET", "/", &[("X-Huge", &huge)], b"");
    assert_eq!(r.status, 431);
    assert_eq!(get(addr, "/").status, 200);
}

#[test]
fn slow_client_is_dropped() {
    let s = server("hello");
    let mut c = TcpStream::connect(s.http.unwrap()).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut out = Vec::new();
    let started = std::time::Instant::now();
    let _ = c.read_to_end(&mut out);
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the server held an idle half-request"
    );
}

#[test]
fn the_proxy_protocol_gives_the_clients_address() {
    let s = serve_app(
        "echo",
        &["--http-socket", "127.0.0.1:0"],
        &["--enable-proxy-protocol"],
    );
    let a = s.http.unwrap();
    let ask = |head: &str| {
        let mut c = TcpStream::connect(a).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(head.as_bytes()).unwrap();
        c.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        read_response(&mut BufReader::new(c), "GET")
    };
    // A load balancer's header: the client's address and port.
    let r = ask("PROXY TCP4 203.0.113.7 10.0.0.1 40000 80\r\n").unwrap();
    let env = r.json()["environ"].clone();
    assert_eq!(env["REMOTE_ADDR"], "203.0.113.7");
    assert_eq!(env["REMOTE_PORT"], "40000");
    assert_eq!(env["PATH_INFO"], "/x");
    // UNKNOWN, or no header at all: the peer's own address.
    let r = ask("PROXY UNKNOWN\r\n").unwrap();
    assert_eq!(r.json()["environ"]["REMOTE_ADDR"], "127.0.0.1");
    let r = ask("").unwrap();
    assert_eq!(r.json()["environ"]["REMOTE_ADDR"], "127.0.0.1");
    // A broken header closes that connection, with a logged reason.
    assert!(ask("PROXY TCP4 nonsense\r\n").is_err());
    s.wait_logged("invalid PROXY header", Duration::from_secs(5));
    assert_eq!(get(a, "/ok").status, 200);
}
