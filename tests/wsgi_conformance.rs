use std::net::TcpStream;
use std::os::unix::net::UnixStream;

use crate::harness::*;

fn server(callable: &str) -> Server {
    serve_app(
        callable,
        &["--http-socket", "127.0.0.1:0", "--socket", "127.0.0.1:0"],
        &[],
    )
}

fn body_of(raw: &[u8]) -> &[u8] {
    let i = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    &raw[i..]
}

#[test]
fn wsgiref_validator_passes_over_http_and_uwsgi() {
    let s = server("validated");
    let r = http(
        s.http.unwrap(),
        "POST",
        "/v?a=b",
        &[("Content-Type", "text/plain")],
        b"some body",
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["len"], 9);
    let r = get(s.http.unwrap(), "/");
    assert_eq!(r.status, 200);
    let mut c = TcpStream::connect(s.uwsgi.unwrap()).unwrap();
    let out = uwsgi_raw(
        &mut c,
        &cgi("POST", "/v", &[("CONTENT_LENGTH", "3")]),
        b"abc",
    );
    assert!(
        out.starts_with(b"HTTP/1.1 200 OK"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert!(!s.logged("AssertionError"), "the validator complained");
    assert!(!s.logged("WSGIWarning"));
}

#[test]
fn readline_and_iteration_over_input() {
    let s = server("lines");
    let r = http(s.http.unwrap(), "POST", "/", &[], b"one\ntwo\nthree");
    let v = r.json();
    assert_eq!(v["first"], "one\n");
    assert_eq!(v["rest"], serde_json::json!(["two\n", "three"]));
}

#[test]
fn exceptions_give_500_or_abort_and_the_worker_goes_on() {
    let s = server("raises");
    let r = get(s.http.unwrap(), "/before");
    assert_eq!(r.status, 500);
    s.wait_logged(
        "boom before start_response",
        std::time::Duration::from_secs(5),
    );
    // After the body started: the client must not see a complete response.
    let mut c = TcpStream::connect(s.http.unwrap()).unwrap();
    use std::io::{BufReader, Write};
    c.write_all(b"GET /after HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let res = read_response(&mut BufReader::new(c), "GET");
    assert!(res.is_err(), "a failed response looked complete: {res:?}");
    // The same worker serves on.
    let r = get(s.http.unwrap(), "/before");
    assert_eq!(r.status, 500);
}

#[test]
fn close_is_always_called_and_non_bytes_are_skipped() {
    let s = server("close_called");
    let r = get(s.http.unwrap(), "/");
    assert_eq!(r.body, b"ab");
    let r = get(s.http.unwrap(), "/count");
    assert_eq!(r.body, b"1");
    s.wait_logged(
        "Unhandled object from iterator",
        std::time::Duration::from_secs(5),
    );
}

#[test]
fn file_wrapper_sends_the_file() {
    let s = server("file_wrapper");
    let r = get(s.http.unwrap(), "/");
    assert_eq!(r.body, b"0123456789".repeat(1000));
}

#[test]
fn modifier_30_strips_script_name() {
    let s = server("echo");
    let mut pkt = Vec::new();
    let vars = cgi("GET", "/app/x", &[("SCRIPT_NAME", "/app")]);
    rwsgi_proto::encode_packet(
        rwsgi_proto::Modifier1(30),
        &vars,
        rwsgi_proto::Modifier2(0),
        &mut pkt,
    )
    .unwrap();
    let mut c = TcpStream::connect(s.uwsgi.unwrap()).unwrap();
    use std::io::{Read, Write};
    c.write_all(&pkt).unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    let v: Value = serde_json::from_slice(body_of(&out)).unwrap();
    assert_eq!(v["environ"]["PATH_INFO"], "/x");
    assert_eq!(v["environ"]["SCRIPT_NAME"], "/app");
    let _ = UnixStream::pair();
}

#[test]
fn flask_serves_through_rwsgi() {
    let venv = venv();
    let apps = root().join("tests/apps");
    let s = Server::start(&[
        "--http-socket",
        "127.0.0.1:0",
        "--chdir",
        apps.to_str().unwrap(),
        "--module",
        "flask_app:app",
        "--virtualenv",
        venv.to_str().unwrap(),
        "--processes",
        "2",
    ]);
    let r = get(s.http.unwrap(), "/");
    assert_eq!((r.status, &r.body[..]), (200, &b"Hello, World!"[..]));
    let r = http(
        s.http.unwrap(),
        "POST",
        "/json",
        &[("Content-Type", "application/json")],
        br#"{"a":1}"#,
    );
    assert_eq!(r.json()["got"]["a"], 1);
    assert_eq!(get(s.http.unwrap(), "/missing").status, 404);
}
