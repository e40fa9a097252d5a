//! nginx in front of rwsgi with `uwsgi_pass`, over a unix socket and TCP.
//! The test command installs nginx; its absence fails these tests.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::*;

pub(crate) struct Nginx {
    child: Child,
    pub(crate) port: u16,
    dir: std::path::PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "{}",
                std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
            );
        }
    }
}

fn nginx_bin() -> String {
    for p in ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"] {
        if std::path::Path::new(p).exists() {
            return p.to_owned();
        }
    }
    panic!("nginx is not installed: run ./test.sh, which installs it");
}

pub(crate) fn start_nginx(s: &Server) -> Nginx {
    start_nginx_for(s, &s.dir.join("app.sock"))
}

/// nginx in front of a unix socket at `unix` (and `s`'s TCP uwsgi socket).
pub(crate) fn start_nginx_for(s: &Server, unix: &std::path::Path) -> Nginx {
    let dir = s.dir.join("nginx");
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = std::fs::read_to_string(root().join("nginx/rwsgi.conf"))
        .unwrap()
        .replace("@PREFIX@", dir.to_str().unwrap())
        .replace("@CONF@", root().join("nginx").to_str().unwrap())
        .replace("@PORT@", &port.to_string())
        .replace("@UNIX@", unix.to_str().unwrap())
        .replace(
            "@TCP@",
            &s.uwsgi.map_or("127.0.0.1:9".to_owned(), |a| a.to_string()),
        );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new(nginx_bin())
        .args([
            "-p",
            dir.to_str().unwrap(),
            "-c",
            path.to_str().unwrap(),
            "-e",
            dir.join("error.log").to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        Duration::from_secs(10),
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        || {
            let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            format!("nginx did not start: {log}")
        },
    );
    Nginx { child, port, dir }
}

/// The server nginx talks to: the master takes the connections, or with
/// `--worker-accept` in `mode` the workers do.
fn backend(callable: &str, mode: &[&str]) -> Server {
    let mut extra = vec!["--processes", "2"];
    extra.extend_from_slice(mode);
    serve_app(
        callable,
        &["--socket", "{dir}/app.sock", "--socket", "127.0.0.1:0"],
        &extra,
    )
}

const WORKER_ACCEPT: [&str; 1] = ["--worker-accept"];

#[test]
fn get_post_upload_and_cookie_over_unix_and_tcp() {
    get_post_upload_and_cookie(&[]);
}

#[test]
fn get_post_upload_and_cookie_with_worker_accept() {
    get_post_upload_and_cookie(&WORKER_ACCEPT);
}

fn get_post_upload_and_cookie(mode: &[&str]) {
    let s = backend("echo", mode);
    let n = start_nginx(&s);
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], n.port).into();
    for prefix in ["", "/tcp"] {
        let r = get(addr, &format!("{prefix}/dump/hello?x=1"));
        assert_eq!(r.status, 200);
        let env = r.json()["environ"].clone();
        assert_eq!(env["PATH_INFO"], format!("{prefix}/dump/hello"));
        assert_eq!(env["QUERY_STRING"], "x=1");
        assert_eq!(env["CONTENT_LENGTH"], "");
        assert_eq!(env["REMOTE_ADDR"], "127.0.0.1");
        let body = vec![b'z'; 10 * 1024 * 1024];
        let r = http(
            addr,
            "POST",
            &format!("{prefix}/up"),
            &[("Content-Type", "application/octet-stream")],
            &body,
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["len"], body.len());
        let cookie = format!("big={}", "c".repeat(8 * 1024));
        let r = http(
            addr,
            "GET",
            &format!("{prefix}/"),
            &[("Cookie", &cookie)],
            b"",
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["environ"]["HTTP_COOKIE"], cookie.as_str());
    }
}

#[test]
fn a_body_the_app_does_not_read_is_not_a_502() {
    body_not_read(&[]);
}

#[test]
fn a_body_the_app_does_not_read_is_not_a_502_with_worker_accept() {
    body_not_read(&WORKER_ACCEPT);
}

/// An app that answers without reading the request body (a 413, a
/// redirect): the server reads and drops the rest of the body before it
/// closes, since closing with unread bytes resets the connection and
/// nginx turns the finished response into a 502 (what uWSGI does).
fn body_not_read(mode: &[&str]) {
    let s = backend("hello", mode);
    let n = start_nginx(&s);
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], n.port).into();
    let body = vec![b'z'; 1024 * 1024];
    for prefix in ["", "/tcp"] {
        for round in 0..10 {
            let r = http(addr, "POST", &format!("{prefix}/"), &[], &body);
            assert_eq!(r.status, 200, "{prefix} round {round}");
            assert_eq!(r.body, b"Hello, World!");
        }
    }
}

#[test]
fn chunked_upload_through_nginx() {
    chunked_upload(&[]);
}

#[test]
fn chunked_upload_through_nginx_with_worker_accept() {
    chunked_upload(&WORKER_ACCEPT);
}

fn chunked_upload(mode: &[&str]) {
    let s = backend("echo", mode);
    let n = start_nginx(&s);
    let out = run(Command::new("curl")
        .args([
            "-s",
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            "@-",
            &format!("http://127.0.0.1:{}/chunked", n.port),
        ])
        .stdin(Stdio::null()));
    let v: Value = serde_json::from_str(&out).unwrap();
    // nginx de-chunks (an empty stdin is a zero-length body) and still
    // forwards the header, as reference §2.4 says.
    assert_eq!(v["len"], 0);
    assert_eq!(v["environ"]["HTTP_TRANSFER_ENCODING"], "chunked");
    let file = s.dir.join("payload");
    std::fs::write(&file, vec![b'q'; 300_000]).unwrap();
    let out = run(Command::new("curl").args([
        "-s",
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("http://127.0.0.1:{}/chunked", n.port),
    ]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["len"], 300_000);
    assert_eq!(v["environ"]["CONTENT_LENGTH"], "300000");
}

#[test]
fn downloads_streams_and_crashes_through_nginx() {
    downloads_streams_and_crashes(&[]);
}

#[test]
fn downloads_streams_and_crashes_through_nginx_with_worker_accept() {
    downloads_streams_and_crashes(&WORKER_ACCEPT);
}

fn downloads_streams_and_crashes(mode: &[&str]) {
    let s = backend("download", mode);
    let n = start_nginx(&s);
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], n.port).into();
    let r = get(addr, "/?10485760");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 10 * 1024 * 1024);
    drop(n);
    drop(s);
    let s = backend("stream", mode);
    let n = start_nginx(&s);
    let r = get(([127, 0, 0, 1], n.port).into(), "/");
    assert_eq!(
        String::from_utf8(r.body).unwrap(),
        "first\nchunk 0\nchunk 1\nchunk 2\n"
    );
    drop(n);
    drop(s);
    let s = backend("crash", mode);
    let n = start_nginx(&s);
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], n.port).into();
    assert_eq!(get(addr, "/crash").status, 502);
    s.wait_logged("Respawned uWSGI worker", Duration::from_secs(10));
    assert_eq!(get(addr, "/").status, 200);
}

#[test]
fn flask_behind_nginx() {
    flask(&[]);
}

#[test]
fn flask_behind_nginx_with_worker_accept() {
    flask(&WORKER_ACCEPT);
}

fn flask(mode: &[&str]) {
    let venv = venv();
    let apps = root().join("tests/apps");
    let mut args = vec![
        "--socket",
        "{dir}/app.sock",
        "--socket",
        "127.0.0.1:0",
        "--chdir",
        apps.to_str().unwrap(),
        "--module",
        "flask_app:app",
        "--home",
        venv.to_str().unwrap(),
        "--processes",
        "2",
    ];
    args.extend_from_slice(mode);
    let s = Server::start(&args);
    assert_eq!(
        s.logged("workers accept on the uwsgi sockets themselves"),
        !mode.is_empty()
    );
    let n = start_nginx(&s);
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], n.port).into();
    let r = get(addr, "/");
    assert_eq!((r.status, &r.body[..]), (200, &b"Hello, World!"[..]));
    let cookie = format!("big={}", "c".repeat(8 * 1024));
    let r = http(
        addr,
        "POST",
        "/json",
        &[("Content-Type", "application/json"), ("Cookie", &cookie)],
        br#"{"a":[1,2]}"#,
    );
    assert_eq!(r.json()["got"]["a"][1], 2);
    assert_eq!(r.json()["n"], 8 * 1024);
}

#[test]
fn behind_nginx_on_a_unix_socket_the_backlog_alert_fires() {
    backlog_alert(&[]);
}

#[test]
fn with_worker_accept_the_unix_sockets_queue_is_read() {
    backlog_alert(&WORKER_ACCEPT);
}

/// The backlog alert behind nginx on a unix socket: the master's own queue
/// by default; with `worker-accept`, the socket's kernel queue.
fn backlog_alert(mode: &[&str]) {
    // uWSGI's default 3-second window: between two cycles only the backlog
    // is looked at, and that is where the alert spawns emergency workers.
    let mut extra = vec![
        "--processes",
        "16",
        "--cheaper",
        "2",
        "--cheaper-algo",
        "busyness",
        "--cheaper-overload",
        "3",
        "--listen",
        "1000",
        "--cheaper-busyness-backlog-alert",
        "4",
        "--cheaper-busyness-verbose",
    ];
    extra.extend_from_slice(mode);
    let s = serve_app(
        "slow",
        &["--socket", "{dir}/app.sock", "--socket", "127.0.0.1:0"],
        &extra,
    );
    let n = start_nginx(&s);
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], n.port).into();
    let l = crate::cheaper::load(addr, 40, 5, "/?0.05");
    assert_eq!(l.failed, 0, "{} requests failed through nginx", l.failed);
    assert!(l.ok > 300, "only {} requests", l.ok);
    // uWSGI cannot see a unix socket's queue; rwsgi reads its own queue, or
    // with worker-accept the socket's (sock_diag).
    assert!(
        s.logged("requests in listen queue, spawning"),
        "the backlog alert never fired"
    );
    assert!(crate::cheaper::running(&s) > 4);
}
