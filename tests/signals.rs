//! uWSGI signals: handlers an app registers (`tests/apps/signals_app.py`),
//! raised by requests, timers, an rb-timer, a file monitor and a uwsgi
//! packet with modifier1 110, run in real forked workers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::*;

fn start() -> Server {
    start_with(tmpdir("signals"), &[])
}

fn start_with(dir: std::path::PathBuf, extra: &[&str]) -> Server {
    let app = apps().with_file_name("signals_app.py");
    let mut args = vec![
        "--http-socket",
        "127.0.0.1:0",
        "--socket",
        "127.0.0.1:0",
        "--wsgi-file",
        app.to_str().unwrap(),
        "--master",
        "--processes",
        "2",
        "--stats",
        "127.0.0.1:0",
        "--env",
        "SIGNAL_OUT={dir}",
    ];
    args.extend_from_slice(extra);
    Server::start_in(dir, &args, true)
}

/// The "<worker id> <pid>" lines a handler wrote.
fn parse(lines: Vec<String>) -> Vec<(u32, i32)> {
    lines
        .iter()
        .map(|l| {
            let (w, p) = l.split_once(' ').unwrap();
            (w.parse().unwrap(), p.parse().unwrap())
        })
        .collect()
}

fn lines(dir: &Path, name: &str) -> Vec<(u32, i32)> {
    parse(file_lines(dir, name))
}

/// Waits until the handler's file has `n` lines.
fn wait_lines(dir: &Path, name: &str, n: usize, timeout: Duration) -> Vec<(u32, i32)> {
    parse(wait_file_lines(dir, name, n, timeout))
}

fn raise(s: &Server, sig: u8) {
    let r = get(s.http.unwrap(), &format!("/raise/{sig}"));
    assert_eq!(r.status, 200);
}

#[test]
fn handlers_run_in_the_workers_their_targets_name() {
    let s = start();
    let dir = s.dir.clone();
    assert!(s.logged(
        "[uwsgi-signal] signum 17 registered (wid: 0 modifier1: 0 target: default, any worker)"
    ));
    assert!(s.logged("[uwsgi-signal] signum 18 registered (wid: 0 modifier1: 0 target: workers)"));
    let info = get(s.http.unwrap(), "/info").json();
    let errors: Vec<String> = info["import_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_owned())
        .collect();
    // Registering twice in the prototype (uWSGI's master) is refused, as
    // are unknown targets; 300 is not a signal.
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert_eq!(errors[0], "unable to register signal");
    assert!(
        errors[1].contains("invalid signal target: subscribed"),
        "{errors:?}"
    );
    assert!(
        errors[2].contains("invalid signal target: farmx"),
        "{errors:?}"
    );
    assert!(errors[3].contains("300"), "{errors:?}");
    assert!(s.logged("[uwsgi-signal] you cannot re-register a signal as the master !!!"));
    // @timer(1) took signal 0, @filemon signal 1: the lowest free ones.
    assert_eq!(
        info["registered"],
        serde_json::json!([0, 1, 17, 18, 19, 20, 21, 22])
    );
    assert_eq!(info["free"], 2);

    // Any worker, once.
    raise(&s, 17);
    let any = wait_lines(&dir, "sig17", 1, Duration::from_secs(5));
    assert!([1, 2].contains(&any[0].0), "{any:?}");
    // Every worker.
    raise(&s, 18);
    let mut all: Vec<u32> = wait_lines(&dir, "sig18", 2, Duration::from_secs(5))
        .iter()
        .map(|l| l.0)
        .collect();
    all.sort();
    assert_eq!(all, [1, 2]);
    // Worker 2 only, however many times.
    for _ in 0..3 {
        raise(&s, 19);
    }
    let second = wait_lines(&dir, "sig19", 3, Duration::from_secs(5));
    assert!(second.iter().all(|l| l.0 == 2), "{second:?}");

    // A uwsgi packet with modifier1 110 raises one too, and is answered
    // with a bare header (modifier1 255, modifier2 1).
    let mut c = TcpStream::connect(s.uwsgi.unwrap()).unwrap();
    c.write_all(&[110, 0, 0, 17]).unwrap();
    let mut reply = Vec::new();
    c.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, [255, 0, 0, 1]);
    wait_lines(&dir, "sig17", 2, Duration::from_secs(5));

    // A handler that raises: uWSGI's line and the traceback; the worker
    // keeps serving.
    raise(&s, 21);
    s.wait_logged("error managing signal 21 on worker", Duration::from_secs(5));
    s.wait_logged("RuntimeError: this handler fails", Duration::from_secs(5));
    for _ in 0..4 {
        assert_eq!(get(s.http.unwrap(), "/info").status, 200);
    }

    // The stats count the handlers each worker ran.
    let doc = s.stats();
    let handled: u64 = doc["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["signals"].as_u64().unwrap())
        .sum();
    assert!(handled >= 8, "{doc}");
}

#[test]
fn timers_rb_timers_and_file_monitors_raise_signals() {
    let s = start();
    let dir = s.dir.clone();
    // @timer(1): once a second, in the workers.
    let t0 = Instant::now();
    let ticks = wait_lines(&dir, "timer", 3, Duration::from_secs(6));
    assert!(t0.elapsed() >= Duration::from_millis(1500), "{ticks:?}");
    assert!(ticks.iter().all(|l| [1, 2].contains(&l.0)), "{ticks:?}");
    // add_rb_timer(20, 1, 2): twice, then never again.
    wait_lines(&dir, "rb20", 2, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(lines(&dir, "rb20").len(), 2);
    // @filemon: a change to the file raises its signal.
    std::fs::write(dir.join("watched"), "1").unwrap();
    wait_lines(&dir, "filemon", 1, Duration::from_secs(5));
    // A reload: the new generation registers the timer again, and it
    // replaces the old one rather than doubling it.
    s.signal(libc::SIGHUP);
    s.wait_logged("chain reloading complete", Duration::from_secs(30));
    let before = lines(&dir, "timer").len();
    std::thread::sleep(Duration::from_secs(4));
    let during = lines(&dir, "timer").len() - before;
    assert!((3..=5).contains(&during), "{during} ticks in 4 s");
}

#[test]
fn a_handler_holds_its_worker_and_requests_go_to_the_other() {
    let s = start();
    let dir = s.dir.clone();
    raise(&s, 22);
    let slow = wait_lines(&dir, "slow-start", 1, Duration::from_secs(5));
    // uWSGI's status word for a worker running a signal handler.
    let doc = s.stats();
    let running: Vec<&serde_json::Value> = doc["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["status"] == "sig22")
        .collect();
    assert_eq!(running.len(), 1, "{doc}");
    assert_eq!(running[0]["id"], slow[0].0);
    // While the handler sleeps, requests are served, by the other worker.
    for _ in 0..5 {
        let t = Instant::now();
        let info = get(s.http.unwrap(), "/info").json();
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_ne!(u64::from(slow[0].0), info["worker_id"].as_u64().unwrap());
    }
    wait_lines(&dir, "slow-end", 1, Duration::from_secs(10));
}

#[test]
fn signals_reach_every_worker_under_load() {
    let s = start();
    let dir = s.dir.clone();
    let addr = s.http.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut failed = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if get(addr, "/info").status != 200 {
                        failed += 1;
                    }
                }
                failed
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        raise(&s, 18);
    }
    // Each worker runs each of them, busy as it is.
    let mut got: Vec<u32> = wait_lines(&dir, "sig18", 6, Duration::from_secs(10))
        .iter()
        .map(|l| l.0)
        .collect();
    got.sort();
    assert_eq!(got, [1, 1, 1, 2, 2, 2]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let failed: i32 = load.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(failed, 0);
}

#[test]
fn touch_signal_raises_the_signal_when_the_file_changes() {
    let dir = tmpdir("touchsignal");
    let poke = dir.join("poke");
    std::fs::write(&poke, "").unwrap();
    let spec = format!("{} 17", poke.display());
    let s = start_with(dir.clone(), &["--touch-signal", &spec]);
    std::thread::sleep(Duration::from_millis(1200));
    assert!(file_lines(&dir, "sig17").is_empty());
    std::fs::write(&poke, "again").unwrap();
    let handled = wait_lines(&dir, "sig17", 1, Duration::from_secs(10));
    assert_eq!(handled.len(), 1);
    assert!(s.logged("[uwsgi-touch-signal] raising 17"));
}
