use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::*;

#[test]
fn a_worker_crash_costs_one_request_and_is_respawned() {
    let both = ["--http-socket", "127.0.0.1:0", "--socket", "127.0.0.1:0"];
    let s = serve_app("crash", &both, &["--processes", "2"]);
    let r = get(s.http.unwrap(), "/crash");
    assert_eq!(r.status, 502);
    s.wait_logged("died :( trying respawn", Duration::from_secs(5));
    s.wait_logged("Respawned uWSGI worker", Duration::from_secs(10));
    for _ in 0..10 {
        assert_eq!(get(s.http.unwrap(), "/").status, 200);
    }
    // Over uwsgi, a crash before any byte gives a 502 too.
    let mut c = TcpStream::connect(s.uwsgi.unwrap()).unwrap();
    let out = uwsgi_raw(&mut c, &cgi("GET", "/crash", &[]), b"");
    assert!(
        out.starts_with(b"HTTP/1.1 502"),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[test]
fn a_crash_after_the_response_started_is_never_a_short_success() {
    let both = ["--http-socket", "127.0.0.1:0", "--socket", "127.0.0.1:0"];
    let s = serve_app("crash_midway", &both, &[]);
    let mut c = TcpStream::connect(s.http.unwrap()).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert!(read_response(&mut BufReader::new(c), "GET").is_err());
    s.wait_logged("Respawned uWSGI worker", Duration::from_secs(10));
    // Over uwsgi the connection is reset.
    let mut c = TcpStream::connect(s.uwsgi.unwrap()).unwrap();
    let mut pkt = Vec::new();
    rwsgi_proto::encode_packet(
        rwsgi_proto::Modifier1::WSGI,
        &cgi("GET", "/", &[]),
        rwsgi_proto::Modifier2(0),
        &mut pkt,
    )
    .unwrap();
    c.write_all(&pkt).unwrap();
    let mut out = Vec::new();
    let res = std::io::Read::read_to_end(&mut c, &mut out);
    assert!(res.is_err(), "got a clean EOF after {} bytes", out.len());
}

#[test]
fn sigterm_finishes_requests_in_flight_and_leaves_nothing_behind() {
    let listeners = ["--http-socket", "127.0.0.1:0", "--socket", "{dir}/s.sock"];
    let mut s = serve_app("slow", &listeners, &["--vacuum", "--processes", "2"]);
    let addr = s.http.unwrap();
    let sock = s.dir.join("s.sock");
    assert!(sock.exists());
    let workers: Vec<i64> = s
        .events("spawned")
        .iter()
        .map(|e| e["pid"].as_i64().unwrap())
        .collect();
    let inflight: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || get(addr, "/?1.5")))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let status = s.terminate();
    assert!(status.success(), "{status:?}");
    for t in inflight {
        let r = t.join().unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"Hello, World!");
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!sock.exists(), "vacuum left the socket");
    for pid in workers {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "worker {pid} left behind"
        );
    }
    assert!(s.logged("goodbye to uWSGI."));
}

#[test]
fn config_errors_name_the_option() {
    let bin = env!("CARGO_BIN_EXE_rwsgi");
    let out = Command::new(bin)
        .args(["--proceses", "2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown option \"proceses\" (did you mean \"processes\"?)"),
        "{err}"
    );
    let dir = tmpdir("ini");
    let ini = dir.join("app.ini");
    std::fs::write(&ini, "[uwsgi]\nhttp-socket = 127.0.0.1:0\nharakri = 30\n").unwrap();
    let out = Command::new(bin).arg(&ini).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:3: unknown option \"harakri\" (did you mean \"harakiri\"?)",
            ini.display()
        )),
        "{err}"
    );
    let help = run(Command::new(bin).arg("--help"));
    assert!(help.contains("--http-socket"));
}

#[test]
fn need_app_exits_22_when_the_app_does_not_load() {
    let dir = tmpdir("needapp");
    let mut s = Server::start_in(
        dir,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--module",
            "no_such_module_x",
            "--need-app",
        ],
        false,
    );
    let st = s.wait_exit(Duration::from_secs(30));
    assert_eq!(st.code(), Some(22));
    assert!(s.logged("no app loaded. GAME OVER"));
}

#[test]
fn an_ini_file_and_uwsgi_env_vars_configure_the_server() {
    let dir = tmpdir("inicfg");
    let ini = dir.join("app.ini");
    std::fs::write(
        &ini,
        format!(
            "[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = {}\ncallable = %(cb)\ncb = hello\nmaster = true\n",
            apps().display()
        ),
    )
    .unwrap();
    let s = Server::start(&["--ini", ini.to_str().unwrap(), "--processes", "3"]);
    assert_eq!(s.events("spawned").len(), 3);
    assert_eq!(get(s.http.unwrap(), "/").body, b"Hello, World!");
}
