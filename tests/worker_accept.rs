//! `worker-accept`: workers accept on the uwsgi sockets themselves. What
//! the master no longer sees must still work: harakiri, the stats, a
//! visible failure when a worker dies, graceful stops, recycling, threads,
//! ping and signal packets. (nginx in front of it: `nginx.rs`.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::*;

const TCP_AND_HTTP: [&str; 4] = ["--socket", "127.0.0.1:0", "--http-socket", "127.0.0.1:0"];

/// A GET over uwsgi with this query string; the raw response.
fn uwsgi_get(s: &Server, query: &str) -> Vec<u8> {
    let mut c = TcpStream::connect(s.uwsgi.unwrap()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    uwsgi_raw(&mut c, &cgi("GET", "/", &[("QUERY_STRING", query)]), b"")
}

/// The body of a raw response.
fn body(out: &[u8]) -> &[u8] {
    let at = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    &out[at + 4..]
}

#[test]
fn the_stats_count_what_the_workers_took_themselves() {
    let s = serve_app(
        "echo",
        &TCP_AND_HTTP,
        &[
            "--worker-accept",
            "--processes",
            "2",
            "--threads",
            "2",
            "--stats",
            "127.0.0.1:0",
        ],
    );
    for _ in 0..6 {
        let out = uwsgi_get(&s, "");
        assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"), "{out:?}");
    }
    // The master's HTTP socket still goes through the master.
    assert_eq!(get(s.http.unwrap(), "/").status, 200);
    // A request is counted once its response is out, so a client can read
    // the response a moment before the count.
    let requests = |st: &Value| -> u64 {
        let workers = st["workers"].as_array().unwrap();
        workers
            .iter()
            .map(|w| w["requests"].as_u64().unwrap())
            .sum()
    };
    wait_until(
        Duration::from_secs(5),
        || requests(&s.stats()) == 7,
        || format!("the stats never counted 7 requests: {}", s.stats()),
    );
    let st = s.stats();
    let workers = st["workers"].as_array().unwrap();
    let cores: u64 = workers
        .iter()
        .flat_map(|w| w["cores"].as_array().unwrap())
        .map(|c| c["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(cores, 7, "{st}");
    // Which worker takes a connection is the kernel's choice: count them
    // all. Each response is at least its 65-byte head.
    let tx: u64 = workers.iter().map(|w| w["tx"].as_u64().unwrap()).sum();
    assert!(tx >= 7 * 65, "{st}");
    // The request lines are uWSGI's, written by the workers (after the
    // response, like the count): the instance's count goes 1..7 across
    // both paths.
    let lines = || {
        s.logs()
            .iter()
            .filter(|l| l.contains("GET / => generated"))
            .count()
    };
    wait_until(
        Duration::from_secs(5),
        || lines() == 7,
        || format!("{} request lines", lines()),
    );
    assert!(s.logged("/7] "), "{:?}", s.logs());
}

#[test]
fn harakiri_kills_a_request_the_worker_took_itself() {
    let s = serve_app(
        "slow",
        &TCP_AND_HTTP,
        &[
            "--worker-accept",
            "--processes",
            "1",
            "--harakiri",
            "1",
            "--stats",
            "127.0.0.1:0",
        ],
    );
    let started = Instant::now();
    let out = uwsgi_get(&s, "30");
    assert!(out.is_empty(), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    s.wait_logged("HARAKIRI ON WORKER 1", Duration::from_secs(10));
    s.wait_logged("Respawned uWSGI worker 1", Duration::from_secs(10));
    let out = uwsgi_get(&s, "0");
    assert!(out.ends_with(b"Hello, World!"), "{out:?}");
    assert_eq!(s.stats_harakiri_count(), 1);
}

impl Server {
    fn stats_harakiri_count(&self) -> u64 {
        self.stats()["workers"][0]["harakiri_count"]
            .as_u64()
            .unwrap()
    }
}

#[test]
fn a_worker_that_dies_midway_resets_the_connection() {
    let s = serve_app("crash_midway", &TCP_AND_HTTP, &["--worker-accept"]);
    assert_uwsgi_reset(s.uwsgi.unwrap());
    s.wait_logged("Respawned uWSGI worker", Duration::from_secs(10));
}

#[test]
fn sigterm_lets_the_requests_in_flight_finish() {
    let mut s = serve_app(
        "slow",
        &TCP_AND_HTTP,
        &["--worker-accept", "--processes", "2"],
    );
    let addr = s.uwsgi.unwrap();
    let inflight: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                uwsgi_raw(&mut c, &cgi("GET", "/", &[("QUERY_STRING", "1.5")]), b"")
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let status = s.terminate();
    assert!(status.success(), "{status:?}");
    for t in inflight {
        let out = t.join().unwrap();
        assert!(out.ends_with(b"Hello, World!"), "{out:?}");
    }
    assert!(s.logged("goodbye to uWSGI."));
}

#[test]
fn max_requests_recycles_and_ping_and_signal_packets_are_answered() {
    let s = serve_app(
        "counted",
        &TCP_AND_HTTP,
        &[
            "--worker-accept",
            "--processes",
            "1",
            "--max-requests",
            "3",
            "--min-worker-lifetime",
            "1",
            "--threads",
            "2",
        ],
    );
    let pid = |out: Vec<u8>| {
        let v: Value = serde_json::from_slice(body(&out)).unwrap();
        v["pid"].as_i64().unwrap()
    };
    let first = pid(uwsgi_get(&s, ""));
    // Past the minimum lifetime, so the respawn is not held back.
    std::thread::sleep(Duration::from_millis(1100));
    let mut pids = vec![first];
    for _ in 0..5 {
        pids.push(pid(uwsgi_get(&s, "")));
    }
    // Three requests on the first worker, then a new one.
    assert_eq!(pids[..3], [pids[0]; 3]);
    assert_ne!(pids[3], pids[0]);
    assert!(s.logged(&format!("...The work of process {first} is done. Seeya!")));
    s.wait_logged(
        &format!("Respawned uWSGI worker 1 (new pid: {})", pids[3]),
        Duration::from_secs(5),
    );
    assert!(!s.logged("DAMN !"), "{:?}", s.logs());
    // Ping: modifier1 100 gets the pong header back.
    let mut c = TcpStream::connect(s.uwsgi.unwrap()).unwrap();
    c.write_all(&[100, 0, 0, 0]).unwrap();
    let mut pong = Vec::new();
    c.read_to_end(&mut pong).unwrap();
    assert_eq!(pong, [100, 0, 0, 1]);
    // A uWSGI signal (110): raised through the master, answered.
    let mut c = TcpStream::connect(s.uwsgi.unwrap()).unwrap();
    c.write_all(&[110, 0, 0, 17]).unwrap();
    let mut reply = Vec::new();
    c.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, [255, 0, 0, 1]);
}

#[test]
fn route_rules_and_static_files_are_refused_with_it() {
    let out = Command::new(bin())
        .args([
            "--socket",
            "127.0.0.1:0",
            "--worker-accept",
            "--route",
            "^/admin break:403",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("worker-accept cannot be used with route rules on a uwsgi socket"),
        "{err}"
    );
    // On an HTTP socket only, the master keeps serving: nothing to refuse.
    let s = serve_app(
        "hello",
        &["--http-socket", "127.0.0.1:0"],
        &["--worker-accept", "--static-map", "/s=/tmp"],
    );
    assert!(s.logged("worker-accept is set but there is no uwsgi socket"));
    assert_eq!(get(s.http.unwrap(), "/").status, 200);
}

#[test]
fn reloads_and_a_new_prototype_keep_the_sockets_and_drop_nothing() {
    let dir = tmpdir("wa-reload");
    let app = |version: &str| {
        std::fs::write(
            dir.join("wa_app.py"),
            format!(
                "import os\nVERSION = '{version}'\n\
                 def application(environ, start_response):\n    \
                 start_response('200 OK', [('Content-Type', 'text/plain')])\n    \
                 return [('%s %d' % (VERSION, os.getpid())).encode()]\n"
            ),
        )
        .unwrap();
    };
    app("v1");
    let s = Server::start_in(
        dir.clone(),
        &[
            "--socket",
            "127.0.0.1:0",
            "--worker-accept",
            "--chdir",
            "{dir}",
            "--module",
            "wa_app",
            "--processes",
            "2",
            "--env",
            "PYTHONDONTWRITEBYTECODE=1",
        ],
        true,
    );
    let addr = s.uwsgi.unwrap();
    let fetch = move |path: &str| {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        uwsgi_raw(&mut c, &cgi("GET", path, &[]), b"")
    };
    let version = |out: Vec<u8>| {
        let text = String::from_utf8_lossy(body(&out)).into_owned();
        let (v, pid) = text.split_once(' ').expect("VERSION PID");
        (v.to_owned(), pid.parse::<i64>().unwrap())
    };
    assert_eq!(version(fetch("/")).0, "v1");
    // Clients keep sending during the reload; none may fail.
    let load = Load::start(3, move || fetch("/").starts_with(b"HTTP/1.1 200 OK"));
    app("v2");
    s.signal(libc::SIGHUP);
    s.wait_logged("chain reloading complete", Duration::from_secs(20));
    let (ok, failed) = load.stop();
    assert_eq!(failed, 0, "{ok} requests served, {failed} failed");
    assert!(ok > 10, "{ok}");
    assert_eq!(version(fetch("/")).0, "v2");
    // A new prototype (the old one died) hands the sockets to the workers
    // it forks.
    let proto = s.events("prototype_spawned").last().unwrap()["pid"]
        .as_i64()
        .unwrap() as i32;
    s.kill_pid(proto, 9);
    s.wait_event("prototype_died", Duration::from_secs(10));
    // Each old worker that answers is made to crash; the new prototype
    // forks its replacement. Within two crashes a new worker answers.
    let mut new: Vec<i64> = Vec::new();
    let mut served_by_new = false;
    for _ in 0..3 {
        let (v, pid) = version(fetch("/"));
        assert_eq!(v, "v2");
        if new.contains(&pid) {
            served_by_new = true;
            break;
        }
        let before = s.events("respawned").len();
        s.kill_pid(pid as i32, 9);
        let events = s.wait_events("respawned", before + 1, Duration::from_secs(10));
        new.extend(events[before..].iter().map(|e| e["pid"].as_i64().unwrap()));
        // Both workers replaced: whoever answers next is new.
        if new.len() >= 2 {
            let (_, pid) = version(fetch("/"));
            served_by_new = new.contains(&pid);
            break;
        }
    }
    assert!(
        served_by_new,
        "no worker of the new prototype took a connection"
    );
}

/// How many times the threads of these processes went to sleep.
fn sleeps(pids: &[i64]) -> u64 {
    let mut n = 0;
    for pid in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            n += status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    n
}

/// A connection wakes one idle worker, not all of them (the listeners
/// are exclusive in each thread's epoll set): four idle workers and
/// sequential requests cost about 1.3 sleeps per request, where waking
/// every worker (`poll`) costs about 3.4.
#[test]
fn a_connection_wakes_one_idle_worker_not_all() {
    let s = serve_app(
        "hello",
        &["--socket", "127.0.0.1:0"],
        &["--processes", "4", "--worker-accept"],
    );
    let pids: Vec<i64> = s
        .wait_events("spawned", 4, Duration::from_secs(30))
        .iter()
        .map(|e| e["pid"].as_i64().unwrap())
        .collect();
    assert!(uwsgi_get(&s, "").ends_with(b"Hello, World!"));
    const N: u64 = 300;
    let before = sleeps(&pids);
    for _ in 0..N {
        assert!(uwsgi_get(&s, "").ends_with(b"Hello, World!"));
    }
    let slept = sleeps(&pids) - before;
    assert!(
        slept < 2 * N,
        "the four workers slept {slept} times for {N} connections"
    );
}

/// With an HTTP socket beside `worker-accept`'s uwsgi one, the master
/// does not give an HTTP request to a worker busy with a connection it
/// took itself while another worker is idle: each round, one worker runs
/// a slow uwsgi request, and a quick HTTP request must not wait for it.
/// The rounds vary which worker the kernel and the pool would each pick.
#[test]
fn http_requests_go_to_a_worker_not_busy_with_its_own_connection() {
    let s = serve_app(
        "slow",
        &TCP_AND_HTTP,
        &[
            "--processes",
            "2",
            "--worker-accept",
            "--stats",
            "127.0.0.1:0",
        ],
    );
    s.wait_events("spawned", 2, Duration::from_secs(30));
    let http_addr = s.http.unwrap();
    for round in 0..8 {
        for _ in 0..round % 3 {
            uwsgi_get(&s, "0");
        }
        for _ in 0..round / 3 {
            assert_eq!(get(http_addr, "/?0").status, 200);
        }
        let uwsgi = s.uwsgi.unwrap();
        let slow = std::thread::spawn(move || {
            let mut c = TcpStream::connect(uwsgi).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            uwsgi_raw(&mut c, &cgi("GET", "/", &[("QUERY_STRING", "2")]), b"")
        });
        // The slow request has reached a worker.
        wait_until(
            Duration::from_secs(10),
            || {
                s.stats()["workers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|w| w["status"] == "busy")
            },
            || format!("round {round}: the slow request did not start"),
        );
        let t = Instant::now();
        assert_eq!(get(http_addr, "/?0").status, 200);
        let waited = t.elapsed();
        assert!(
            waited < Duration::from_secs(1),
            "round {round}: the HTTP request waited {waited:?} behind the slow one"
        );
        assert!(body(&slow.join().unwrap()).ends_with(b"Hello, World!"));
    }
}

/// The body an app did not read is drained after the response, but a
/// peer that trickles it cannot hold the worker past `socket-timeout`:
/// with one worker, the next request is served within about that long.
#[test]
fn draining_an_unread_body_is_bounded_by_the_socket_timeout() {
    let s = serve_app(
        "hello",
        &["--socket", "127.0.0.1:0"],
        &[
            "--processes",
            "1",
            "--worker-accept",
            "--socket-timeout",
            "1",
        ],
    );
    let mut slow = TcpStream::connect(s.uwsgi.unwrap()).unwrap();
    let mut pkt = Vec::new();
    rwsgi_proto::encode_packet(
        rwsgi_proto::Modifier1::WSGI,
        &cgi("POST", "/", &[("CONTENT_LENGTH", "100000")]),
        rwsgi_proto::Modifier2(0),
        &mut pkt,
    )
    .unwrap();
    slow.write_all(&pkt).unwrap();
    // One byte of the body every 300 ms: no single read waits a second.
    let trickle = std::thread::spawn(move || {
        for _ in 0..30 {
            if slow.write_all(b"z").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    assert!(uwsgi_get(&s, "").ends_with(b"Hello, World!"));
    let waited = t.elapsed();
    assert!(
        waited < Duration::from_secs(3),
        "the next request waited {waited:?} behind a trickled body"
    );
    trickle.join().unwrap();
}
