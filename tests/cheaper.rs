use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::harness::*;

/// Outcome of a bounded load run.
pub(crate) struct Load {
    pub ok: u64,
    pub failed: u64,
}

/// `clients` keep-alive clients send `path` in a loop for `secs` seconds.
pub(crate) fn load(addr: SocketAddr, clients: usize, secs: u64, path: &'static str) -> Load {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (ok, failed) = (ok.clone(), failed.clone());
            std::thread::spawn(move || {
                while Instant::now() < deadline {
                    let Ok(c) = TcpStream::connect(addr) else {
                        failed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                    let mut w = c.try_clone().unwrap();
                    let mut r = BufReader::new(c);
                    while Instant::now() < deadline {
                        let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
                        if w.write_all(req.as_bytes()).is_err() {
                            failed.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        match read_response(&mut r, "GET") {
                            Ok(resp) if resp.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                            _ => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                        };
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    Load {
        ok: ok.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
    }
}

/// Workers running now, from the spawn and cheap events.
pub(crate) fn running(s: &Server) -> i64 {
    let up = (s.events("spawned").len() + s.events("respawned").len()) as i64;
    let down = (s.events("cheaped").len() + s.events("worker_died").len()) as i64;
    up - down
}

fn wait_running(s: &Server, n: i64, timeout: Duration) {
    wait_until(
        timeout,
        || running(s) == n,
        || format!("{} workers running, waiting for {n}", running(s)),
    );
}

pub(crate) const SCALING: &[&str] = &[
    "--processes",
    "16",
    "--cheaper",
    "2",
    "--cheaper-algo",
    "busyness",
    "--cheaper-overload",
    "1",
    "--cheaper-busyness-multiplier",
    "1",
    "--cheaper-step",
    "2",
    "--listen",
    "1000",
];

#[test]
fn busyness_follows_the_load_up_and_back_down() {
    let s = serve_app("slow", &["--http-socket", "127.0.0.1:0"], SCALING);
    assert_eq!(running(&s), 2);
    assert!(s.logged(
        "[busyness] settings: min=25%, max=50%, overload=1, multiplier=1, respawn penalty=2"
    ));
    let l = load(s.http.unwrap(), 48, 10, "/?0.05");
    assert_eq!(l.failed, 0, "{} requests failed", l.failed);
    assert!(l.ok > 500, "only {} requests", l.ok);
    std::thread::sleep(Duration::from_millis(1500));
    let peak = s.events("spawned").len();
    assert!(peak >= 10, "the load only raised the workers to {peak}");
    assert!(
        s.logged("average busyness is at"),
        "no busyness decision was logged"
    );
    assert!(s.logged("will spawn 2 new worker(s)"));
    // Idle again: back to `cheaper`, one cheap at a time.
    wait_running(&s, 2, Duration::from_secs(60));
    assert!(s.logged("cheap one of"));
    // Every worker spawned for the load (some may have started just after
    // it ended) was cheaped, with uWSGI's two lines each.
    let spawned = s.events("spawned").len() as i64;
    assert_eq!(s.events("worker_killed").len() as i64, spawned - 2);
    assert_eq!(s.events("cheaped").len() as i64, spawned - 2);
    // The slots freed are reused, lowest first, with uWSGI's respawn line.
    let l = load(s.http.unwrap(), 32, 3, "/?0.05");
    assert_eq!(l.failed, 0);
    assert!(
        !s.events("respawned").is_empty(),
        "a cheaped slot was not reused"
    );
}

#[test]
fn the_master_fifo_adds_and_removes_workers() {
    let s = serve_app(
        "hello",
        &["--http-socket", "127.0.0.1:0"],
        &[
            "--processes",
            "4",
            "--cheaper",
            "1",
            "--cheaper-algo",
            "manual",
            "--master-fifo",
            "{dir}/fifo",
        ],
    );
    s.wait_event("fifo", Duration::from_secs(5));
    let fifo = s.dir.join("fifo");
    std::fs::write(&fifo, "+").unwrap();
    wait_running(&s, 2, Duration::from_secs(10));
    std::fs::write(&fifo, "+").unwrap();
    wait_running(&s, 3, Duration::from_secs(10));
    std::fs::write(&fifo, "-").unwrap();
    wait_running(&s, 2, Duration::from_secs(10));
    assert_eq!(get(s.http.unwrap(), "/").status, 200);
    // The oldest idle worker is the one cheaped: worker 1.
    assert_eq!(s.events("cheaped")[0]["worker"], 1);
    let mut s = s;
    std::fs::write(&fifo, "q").unwrap();
    let st = s.wait_exit(Duration::from_secs(20));
    assert!(st.success());
    assert!(s.logged("graceful shutdown triggered"));
}

#[test]
fn cheaper_must_be_lower_than_processes() {
    let bin = bin();
    let out = std::process::Command::new(bin)
        .args([
            "--http-socket",
            "127.0.0.1:0",
            "--processes",
            "2",
            "--cheaper",
            "2",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("invalid cheaper value: must be lower than processes")
    );
}
