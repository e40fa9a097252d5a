use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, ExitStatus};
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
fn requests_queued_on_a_worker_that_crashes_are_served_by_another() {
    // Every worker busy and requests waiting: some are queued on the busy
    // workers (dispatch.rs, pipelining), among them the one about to crash.
    // Those it never read go to another worker; only /crash fails.
    let s = serve_app(
        "crash",
        &["--http-socket", "127.0.0.1:0"],
        &["--processes", "2"],
    );
    let addr = s.http.unwrap();
    for _ in 0..20 {
        assert_eq!(get(addr, "/").status, 200);
    }
    for round in 1..=3 {
        let fast: Vec<_> = (0..40)
            .map(|i| {
                std::thread::spawn(move || {
                    if i == 10 {
                        get(addr, "/crash").status
                    } else {
                        get(addr, "/").status
                    }
                })
            })
            .collect();
        let statuses: Vec<u16> = fast.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(statuses[10], 502, "round {round}");
        let failed = statuses
            .iter()
            .enumerate()
            .filter(|(i, st)| *i != 10 && **st != 200)
            .count();
        assert_eq!(failed, 0, "round {round}: {statuses:?}");
        s.wait_events("respawned", round, Duration::from_secs(10));
    }
}

#[test]
fn worker_pipeline_can_be_turned_off() {
    let s = serve_app(
        "hello",
        &["--http-socket", "127.0.0.1:0"],
        &["--processes", "1", "--worker-pipeline", "false"],
    );
    let addr = s.http.unwrap();
    let clients: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(move || get(addr, "/").status))
        .collect();
    for c in clients {
        assert_eq!(c.join().unwrap(), 200);
    }
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
    assert_uwsgi_reset(s.uwsgi.unwrap());
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
fn exit_on_reload_turns_a_reload_into_a_graceful_exit() {
    let mut s = serve_app(
        "slow",
        &["--http-socket", "127.0.0.1:0"],
        &["--exit-on-reload", "--processes", "2"],
    );
    let addr = s.http.unwrap();
    let inflight = std::thread::spawn(move || get(addr, "/?1"));
    std::thread::sleep(Duration::from_millis(300));
    s.signal(1);
    let status = s.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
    let r = inflight.join().unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"Hello, World!"[..]));
    assert!(s.logged("SIGHUP asked for a reload; exit-on-reload is set"));
    assert!(s.logged("uWSGI: GAME OVER (insert coin)"));
    assert_eq!(s.events("prototype_spawned").len(), 1, "no new generation");
}

/// A server whose app cannot be imported, with `need-app`: it exits 22.
const NO_APP: [&str; 5] = [
    "--http-socket",
    "127.0.0.1:0",
    "--module",
    "no_such_module",
    "--need-app",
];

/// Kills a daemon (by pid) when the test ends, however it ends.
struct Daemon(i32);

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the daemon's pid.
        unsafe { libc_kill(self.0, 9) };
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn daemonize2_returns_once_the_daemon_serves_and_daemonize_at_once() {
    let dir = tmpdir("daemon");
    let (log, pidfile) = (dir.join("d.log"), dir.join("d.pid"));
    let run = |option: &str| {
        output_within(
            Command::new(bin())
                .args(["--http-socket", "127.0.0.1:0", "--wsgi-file"])
                .arg(apps())
                .args(["--callable", "hello", "--log-format", "json", "--pidfile"])
                .arg(&pidfile)
                .arg(option)
                .arg(&log),
        )
    };
    let out = run("--daemonize2");
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let daemon = Daemon(pid);
    // Ready when the command returned: it serves at once, from its own
    // session, logging to the file.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("workers_ready"), "{text}");
    let r = get(http_address(&text), "/");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"Hello, World!"[..]));
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    assert_eq!(
        fields[3],
        pid.to_string(),
        "the daemon leads its own session"
    );
    stop_daemon(daemon);

    // `daemonize` returns before anything is ready.
    let out = run("--daemonize");
    assert!(out.status.success(), "{out:?}");
    let daemon = Daemon(wait_pidfile(&pidfile, Some(pid)));
    wait_until(
        Duration::from_secs(15),
        || {
            std::fs::read_to_string(&log)
                .unwrap()
                .matches("workers_ready")
                .count()
                >= 2
        },
        || "the second daemon never got ready".into(),
    );
    stop_daemon(daemon);

    // A daemon that cannot start makes `daemonize2` fail, pointing at its log.
    let out = output_within(
        Command::new(bin())
            .args(NO_APP)
            .arg("--daemonize2")
            .arg(&log),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("see ") && err.contains("d.log"), "{err}");
}

/// The command's output, or a failure if it has not ended within 60 s
/// (the starter of a daemon must not wait for ever).
fn output_within(cmd: &mut Command) -> std::process::Output {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !waiter.is_finished() {
        if Instant::now() > deadline {
            // SAFETY: kill(2) on the child's pid.
            unsafe { libc_kill(pid, 9) };
            panic!("the command did not end within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    waiter.join().unwrap()
}

/// SIGTERM, then waits until the daemon is gone.
fn stop_daemon(daemon: Daemon) {
    // SAFETY: kill(2) on the daemon's pid.
    unsafe { libc_kill(daemon.0, 15) };
    wait_until(
        Duration::from_secs(10),
        || !std::path::Path::new(&format!("/proc/{}", daemon.0)).exists(),
        || "the daemon did not stop".into(),
    );
}

#[test]
fn print_lines_go_to_stdout_when_the_configuration_is_read() {
    let out = Command::new(bin())
        .args([
            "--set-ph",
            "tier=gold",
            "--print",
            "starting the %(tier) tier",
        ])
        .args(NO_APP)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(22));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "starting the gold tier\n"
    );
}

#[test]
fn config_errors_name_the_option() {
    let bin = bin();
    let out = Command::new(&bin)
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
    let out = Command::new(&bin).arg(&ini).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:3: unknown option \"harakri\" (did you mean \"harakiri\"?)",
            ini.display()
        )),
        "{err}"
    );
    let help = run(Command::new(&bin).arg("--help"));
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
    // Logic blocks: the one that holds fills in %(_); the other, whose
    // socket would not even parse, is dropped.
    std::fs::write(
        &ini,
        format!(
            "[uwsgi]\nhttp-socket = 127.0.0.1:0\n\
             if-exists = {}\nwsgi-file = %(_)\nendif =\n\
             if-env = RWSGI_TEST_NEVER_SET\nhttp-socket = 256.0.0.1:0\nendif =\n\
             callable = %(cb)\ncb = hello\nmaster = true\n",
            apps().display()
        ),
    )
    .unwrap();
    let s = Server::start(&["--ini", ini.to_str().unwrap(), "--processes", "3"]);
    assert_eq!(s.events("spawned").len(), 3);
    assert_eq!(get(s.http.unwrap(), "/").body, b"Hello, World!");
}

#[test]
fn threads_serve_requests_concurrently_in_one_worker() {
    let s = serve_app(
        "slow",
        &["--http-socket", "127.0.0.1:0"],
        &["--processes", "1", "--threads", "4"],
    );
    assert!(s.logged("cores: 4"));
    let addr = s.http.unwrap();
    let started = Instant::now();
    let clients: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || get(addr, "/?1")))
        .collect();
    for c in clients {
        assert_eq!(c.join().unwrap().status, 200);
    }
    // Four 1-second requests on one single-process worker: concurrent, not serial.
    assert!(
        started.elapsed() < Duration::from_millis(3500),
        "{:?}",
        started.elapsed()
    );
    drop(s);
    let s = serve_app(
        "echo",
        &["--http-socket", "127.0.0.1:0"],
        &["--threads", "2"],
    );
    let v = get(s.http.unwrap(), "/").json();
    assert_eq!(v["environ"]["wsgi.multithread"], true);
    assert_eq!(v["environ"]["wsgi.multiprocess"], false);
}

#[test]
fn warm_up_calls_run_in_the_prototype_before_fork() {
    let s = serve_app(
        "counted",
        &["--http-socket", "127.0.0.1:0"],
        &[
            "--warmup-url",
            "/caf%C3%A9?x=1",
            "--warmup-url",
            "/boom",
            "--warmup-requests",
            "5",
        ],
    );
    assert!(s.logged("warm-up GET /caf%C3%A9?x=1 -> 200 OK (5 calls)"));
    // An exception during the warm-up is logged with its traceback and the
    // server starts anyway.
    assert!(s.logged("warm-up GET /boom raised an exception"));
    assert!(s.logged("RuntimeError: boom during warm-up"));
    // The worker was forked after the five calls: it inherited them.
    let v = get(s.http.unwrap(), "/").json();
    assert_eq!(v["calls"], 6);
    assert_eq!(v["paths"], serde_json::json!(["/", "/caf\u{c3}\u{a9}"]));
    assert_eq!(v["queries"], serde_json::json!(["", "x=1"]));
    drop(s);
    // With lazy-apps each worker imports its own app: nothing is warmed.
    let s = serve_app(
        "counted",
        &["--http-socket", "127.0.0.1:0"],
        &["--warmup-url", "/", "--lazy-apps"],
    );
    assert!(s.logged("warmup-url is ignored with lazy-apps"));
    assert_eq!(get(s.http.unwrap(), "/").json()["calls"], 1);
}

/// A `kB` field of /proc/PID/status.
fn status_kb(pid: i64, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn master_and_prototype_give_back_their_start_up_mappings() {
    let s = serve_app("hello", &["--http-socket", "127.0.0.1:0"], &[]);
    let released = s.events("startup_pages_released");
    assert_eq!(released.len(), 2, "master and prototype: {released:?}");
    let proto = s.wait_event("prototype_spawned", Duration::from_secs(5))["pid"]
        .as_i64()
        .unwrap();
    let by_proto = released
        .iter()
        .find(|e| e["pid"].as_i64() == Some(proto))
        .expect("the prototype's release")["bytes"]
        .as_u64()
        .unwrap();
    // What the prototype still maps of files (what it ran since, and the
    // fork) is less than what it gave back: the import-time code is gone.
    let still = status_kb(proto, "RssFile:") * 1024;
    assert!(
        still < by_proto,
        "prototype maps {still} bytes of files after releasing {by_proto}"
    );
    // Everything dropped comes back on use: the worker and the master serve.
    for _ in 0..3 {
        let r = get(s.http.unwrap(), "/");
        assert_eq!((r.status, &r.body[..]), (200, &b"Hello, World!"[..]));
    }
}

#[test]
fn every_process_runs_sched_batch_unless_told_otherwise() {
    for (extra, want) in [
        (&[][..], libc::SCHED_BATCH),
        (&["--sched-policy", "other"][..], libc::SCHED_OTHER),
    ] {
        let mut args = vec!["--processes", "2"];
        args.extend_from_slice(extra);
        let s = serve_app("hello", &["--http-socket", "127.0.0.1:0"], &args);
        assert_eq!(get(s.http.unwrap(), "/").status, 200);
        let mut pids = vec![s.pid()];
        for ev in ["prototype_spawned", "spawned"] {
            pids.extend(
                s.events(ev)
                    .iter()
                    .map(|e| e["pid"].as_i64().unwrap() as i32),
            );
        }
        assert_eq!(pids.len(), 4, "{pids:?}");
        for pid in pids {
            // SAFETY: a plain query of another process's policy.
            assert_eq!(unsafe { libc::sched_getscheduler(pid) }, want, "pid {pid}");
        }
    }
}

#[test]
fn harakiri_kills_a_request_that_runs_too_long_and_respawns() {
    let s = serve_app(
        "slow",
        &["--http-socket", "127.0.0.1:0"],
        &[
            "--harakiri",
            "1",
            "--processes",
            "1",
            "--stats",
            "{dir}/stats.sock",
        ],
    );
    let addr = s.http.unwrap();
    let started = Instant::now();
    let r = get(addr, "/?30");
    // Killed within [1, 2) s of the start (plus scheduling), not after 30 s.
    assert_eq!(r.status, 502);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let pid = s.events("spawned")[0]["pid"].as_i64().unwrap();
    assert!(s.logged(&format!(
        "*** HARAKIRI ON WORKER 1 (pid: {pid}, try: 1, graceful: yes) ***"
    )));
    assert!(s.logged("HARAKIRI triggered by worker 1 core 0 !!!"));
    s.wait_logged(
        &format!("DAMN ! worker 1 (pid: {pid}) died, killed by signal 9 :( trying respawn ..."),
        Duration::from_secs(5),
    );
    s.wait_logged("Respawned uWSGI worker 1", Duration::from_secs(10));
    // The respawned worker serves; a request under the limit is untouched.
    assert_eq!(get(addr, "/?0.2").status, 200);
    let mut c = std::os::unix::net::UnixStream::connect(s.dir.join("stats.sock")).unwrap();
    let mut raw = String::new();
    std::io::Read::read_to_string(&mut c, &mut raw).unwrap();
    let stats: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(stats["workers"][0]["harakiri_count"], 1);
}

#[test]
fn max_requests_recycles_workers_without_losing_a_request() {
    let s = serve_app(
        "counted",
        &["--http-socket", "127.0.0.1:0"],
        &[
            "--max-requests",
            "3",
            "--min-worker-lifetime",
            "1",
            "--threads",
            "2",
        ],
    );
    let addr = s.http.unwrap();
    let first = get(addr, "/").json();
    // Past the minimum lifetime, so the respawn is not held back by the
    // fork-bomb guard.
    std::thread::sleep(Duration::from_millis(1100));
    let mut pids = vec![first["pid"].as_i64().unwrap()];
    for _ in 0..5 {
        let r = get(addr, "/");
        assert_eq!(r.status, 200);
        pids.push(r.json()["pid"].as_i64().unwrap());
    }
    // Three requests on the first worker, then a new one.
    assert_eq!(pids[..3], [pids[0]; 3]);
    assert_ne!(pids[3], pids[0]);
    let old = pids[0];
    assert!(s.logged(&format!("...The work of process {old} is done. Seeya!")));
    s.wait_logged(
        &format!("worker 1 killed successfully (pid: {old})"),
        Duration::from_secs(5),
    );
    assert!(s.logged(&format!("Respawned uWSGI worker 1 (new pid: {})", pids[3])));
    assert!(!s.logged("DAMN !"));
    drop(s);
    // Before min-worker-lifetime (default 10 s) nothing recycles.
    let s = serve_app(
        "counted",
        &["--http-socket", "127.0.0.1:0"],
        &["--max-requests", "1"],
    );
    let pids: Vec<_> = (0..4)
        .map(|_| get(s.http.unwrap(), "/").json()["pid"].as_i64().unwrap())
        .collect();
    assert_eq!(pids, [pids[0]; 4]);
}

#[test]
fn log_format_templates_shape_the_request_line() {
    // In an ini file, `%(addr)` survives the ini's own %(name) expansion.
    let dir = tmpdir("logfmt");
    let ini = dir.join("app.ini");
    std::fs::write(
        &ini,
        format!(
            "[uwsgi]\nhttp-socket = 127.0.0.1:0\nsocket = 127.0.0.1:0\nwsgi-file = {}\ncallable = hello\n\
             log-format = REQ %(addr) %(method) %(uri) %(proto) %(status) %(rsize) %(var.HTTP_X_TEST) %(wid) %(modifier1) %(nothing)\n",
            apps().display()
        ),
    )
    .unwrap();
    let s = Server::start(&["--ini", ini.to_str().unwrap()]);
    let r = http(s.http.unwrap(), "GET", "/x?y=1", &[("X-Test", "seen")], b"");
    assert_eq!(r.status, 200);
    s.wait_logged(
        "REQ 127.0.0.1 GET /x?y=1 HTTP/1.1 200 13 seen 1 0 -",
        Duration::from_secs(5),
    );
    let mut c = std::net::TcpStream::connect(s.uwsgi.unwrap()).unwrap();
    let vars = [
        ("REQUEST_METHOD", "POST"),
        ("REQUEST_URI", "/u"),
        ("PATH_INFO", "/u"),
        ("SERVER_PROTOCOL", "HTTP/1.0"),
        ("REMOTE_ADDR", "10.1.2.3"),
        ("SERVER_NAME", "x"),
        ("SERVER_PORT", "80"),
    ];
    let out = uwsgi_raw(&mut c, &vars, b"");
    assert!(out.starts_with(b"HTTP/1.0 200 OK"));
    s.wait_logged(
        "REQ 10.1.2.3 POST /u HTTP/1.0 200 13 - 1 0 -",
        Duration::from_secs(5),
    );
    assert!(!s.logged("[pid: "));
}

fn write_app(dir: &std::path::Path, body: &str) {
    std::fs::write(
        dir.join("reload_app.py"),
        format!(
            "import os\n{body}\ndef application(environ, start_response):\n    \
             start_response('200 OK', [('Content-Type', 'text/plain')])\n    \
             return [('%s %d' % (VERSION, os.getpid())).encode()]\n"
        ),
    )
    .unwrap();
}

#[test]
fn reloads_replace_workers_one_by_one_without_dropping_a_request() {
    let dir = tmpdir("reload");
    write_app(&dir, "VERSION = 'v1'");
    let s = Server::start_in(
        dir.clone(),
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--chdir",
            "{dir}",
            "--module",
            "reload_app",
            "--processes",
            "2",
            "--need-app",
            "--env",
            "PYTHONDONTWRITEBYTECODE=1",
            "--touch-reload",
            "{dir}/deploy.stamp",
            "--master-fifo",
            "{dir}/fifo",
        ],
        true,
    );
    let addr = s.http.unwrap();
    assert!(String::from_utf8_lossy(&get(addr, "/").body).starts_with("v1 "));
    // Clients keep sending during every reload below; none may fail.
    let load = Load::start(3, move || get(addr, "/").status == 200);
    // SIGHUP: a new prototype with the new code, then the two workers.
    write_app(&dir, "VERSION = 'version2'");
    s.signal(libc::SIGHUP);
    s.wait_logged("chain reloading complete", Duration::from_secs(20));
    assert!(s.logged("chain reload starting..."));
    assert_eq!(s.events("reload_victim").len(), 2);
    let body = String::from_utf8_lossy(&get(addr, "/").body).into_owned();
    assert!(body.starts_with("version2 "), "{body}");
    // A reload whose app does not import keeps the running workers.
    write_app(&dir, "VERSION = = 'broken'");
    std::fs::write(dir.join("deploy.stamp"), "1").unwrap();
    s.wait_logged(
        "deploy.stamp has been touched... grace them all !!!",
        Duration::from_secs(5),
    );
    s.wait_logged(
        "reload failed: the app did not load",
        Duration::from_secs(20),
    );
    assert!(String::from_utf8_lossy(&get(addr, "/").body).starts_with("version2 "));
    // The master FIFO's `r`.
    write_app(&dir, "VERSION = 'third'");
    s.wait_event("fifo", Duration::from_secs(5));
    std::fs::write(dir.join("fifo"), "r").unwrap();
    s.wait_events("reload_done", 2, Duration::from_secs(20));
    let (ok, failed) = load.stop();
    assert_eq!(failed, 0, "{ok} requests served, {failed} failed");
    assert!(ok > 10, "{ok}");
    assert!(String::from_utf8_lossy(&get(addr, "/").body).starts_with("third "));
    // Exactly two workers and one prototype are left.
    let mut workers: Vec<_> = s
        .events("respawned")
        .iter()
        .rev()
        .take(2)
        .map(|e| e["pid"].as_i64().unwrap() as i32)
        .collect();
    workers.sort();
    for pid in workers {
        assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok());
    }
}

#[test]
fn max_worker_lifetime_recycles_idle_workers() {
    let s = serve_app(
        "counted",
        &["--http-socket", "127.0.0.1:0"],
        &["--max-worker-lifetime", "1"],
    );
    let addr = s.http.unwrap();
    let first = get(addr, "/").json()["pid"].as_i64().unwrap();
    s.wait_logged(
        "worker 1 lifetime reached, it was running for",
        Duration::from_secs(5),
    );
    s.wait_logged(
        &format!("worker 1 killed successfully (pid: {first})"),
        Duration::from_secs(5),
    );
    s.wait_logged("Respawned uWSGI worker 1", Duration::from_secs(5));
    let second = get(addr, "/").json()["pid"].as_i64().unwrap();
    assert_ne!(first, second);
    assert!(!s.logged("DAMN !"));
}

#[test]
fn env_options_reach_the_apps_environment() {
    let s = serve_app(
        "osenv",
        &["--http-socket", "127.0.0.1:0"],
        &["--env", "RWSGI_TEST_ENV=from-the-option"],
    );
    assert_eq!(
        get(s.http.unwrap(), "/?RWSGI_TEST_ENV").body,
        b"from-the-option"
    );
}

#[test]
fn a_full_queue_answers_503_and_is_logged() {
    let s = serve_app(
        "slow",
        &["--http-socket", "127.0.0.1:0"],
        &["--processes", "1", "--listen", "1"],
    );
    let addr = s.http.unwrap();
    let busy = std::thread::spawn(move || get(addr, "/?1.5"));
    std::thread::sleep(Duration::from_millis(300));
    let queued = std::thread::spawn(move || get(addr, "/?0"));
    std::thread::sleep(Duration::from_millis(300));
    let rejected = get(addr, "/?0");
    assert_eq!(rejected.status, 503);
    assert_eq!(busy.join().unwrap().status, 200);
    assert_eq!(queued.join().unwrap().status, 200);
    s.wait_logged("request queue full", Duration::from_secs(5));
}

#[test]
fn the_prototype_dying_is_noticed_and_recovered_from() {
    let s = serve_app(
        "crash",
        &["--http-socket", "127.0.0.1:0"],
        &["--processes", "2"],
    );
    let addr = s.http.unwrap();
    let proto = s.events("prototype_spawned")[0]["pid"].as_i64().unwrap() as i32;
    s.kill_pid(proto, 9);
    s.wait_event("prototype_died", Duration::from_secs(10));
    s.wait_events("prototype_spawned", 2, Duration::from_secs(10));
    // The running workers kept serving.
    assert_eq!(get(addr, "/").status, 200);
    // A worker of the old prototype that dies is respawned by the new one.
    assert_eq!(get(addr, "/crash").status, 502);
    s.wait_logged("Respawned uWSGI worker", Duration::from_secs(10));
    for _ in 0..5 {
        assert_eq!(get(addr, "/").status, 200);
    }
}

#[test]
fn privileges_are_dropped_after_binding() {
    let s = serve_app(
        "hello",
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--socket",
            "{dir}/priv.sock",
        ],
        &["--uid", "nobody", "--gid", "65534", "--chmod-socket", "666"],
    );
    assert_eq!(get(s.http.unwrap(), "/").status, 200);
    assert_eq!(uid_of(s.pid() as i64), 65534);
    for e in s
        .events("spawned")
        .iter()
        .chain(s.events("prototype_spawned").iter())
    {
        assert_eq!(uid_of(e["pid"].as_i64().unwrap()), 65534);
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(s.dir.join("priv.sock"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o666);
}

#[test]
fn a_large_upload_streams_without_growing_the_master() {
    let s = serve_app("echo", &["--http-socket", "127.0.0.1:0"], &[]);
    let addr = s.http.unwrap();
    let size: usize = 256 * 1024 * 1024;
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(
        format!(
            "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let block = vec![b'u'; 1024 * 1024];
    for _ in 0..size / block.len() {
        c.write_all(&block).unwrap();
    }
    let r = read_response(&mut BufReader::new(c), "POST").unwrap();
    assert_eq!(r.json()["len"], size);
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).unwrap();
    let hwm_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        hwm_kb < 64 * 1024,
        "the master peaked at {hwm_kb} kB for a 256 MiB upload"
    );
}

#[test]
fn a_broken_python_environment_fails_startup_instead_of_looping() {
    let dir = tmpdir("badhome");
    std::fs::create_dir_all(dir.join("not-a-venv")).unwrap();
    let home = dir.join("not-a-venv");
    let mut s = Server::start_in(
        dir.clone(),
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--module",
            "x:app",
            "--home",
            home.to_str().unwrap(),
        ],
        false,
    );
    let st = s.wait_exit(Duration::from_secs(30));
    assert_eq!(st.code(), Some(1));
    assert_eq!(
        s.events("prototype_spawned").len(),
        1,
        "the prototype was restarted in a loop"
    );
    assert!(s.logged("exited before loading the app"));
}

#[test]
fn relative_paths_are_taken_from_the_starting_directory() {
    let dir = tmpdir("relpaths");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::copy(apps(), dir.join("sub/app.py")).unwrap();
    let bin = bin();
    let mut child = Command::new(bin)
        .current_dir(&dir)
        .args([
            "--http-socket",
            "127.0.0.1:0",
            "--chdir",
            "sub",
            "--wsgi-file",
            "sub/app.py",
            "--callable",
            "hello",
        ])
        .args(["--log-format", "json"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut line = String::new();
    while Instant::now() < deadline {
        line.clear();
        if std::io::BufRead::read_line(&mut reader, &mut line).unwrap() == 0 {
            break;
        }
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if v["event"] == "bound" {
            addr = v["name"].as_str().and_then(|n| n.parse().ok());
        }
        if v["event"] == "workers_ready" {
            break;
        }
    }
    let ok = addr.map(|a| get(a, "/").status);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(ok, Some(200));
}

#[test]
fn a_client_that_leaves_does_not_cost_the_worker() {
    let s = serve_app(
        "slow",
        &["--http-socket", "127.0.0.1:0"],
        &["--processes", "1"],
    );
    let addr = s.http.unwrap();
    for _ in 0..3 {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"GET /?0.3 HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        drop(c);
    }
    std::thread::sleep(Duration::from_millis(1200));
    for _ in 0..3 {
        assert_eq!(get(addr, "/?0").status, 200);
    }
    assert!(s.events("worker_died").is_empty(), "a worker died");
    assert!(s.events("respawned").is_empty(), "a worker was respawned");
}

#[test]
fn the_stats_server_speaks_uwsgis_json() {
    let s = serve_app(
        "raises",
        &["--http-socket", "127.0.0.1:0"],
        &[
            "--processes",
            "4",
            "--cheaper",
            "1",
            "--cheaper-initial",
            "2",
            "--stats",
            "{dir}/stats.sock",
        ],
    );
    let addr = s.http.unwrap();
    for _ in 0..3 {
        assert_eq!(get(addr, "/before").status, 500);
    }
    let mut c = std::os::unix::net::UnixStream::connect(s.dir.join("stats.sock")).unwrap();
    let mut raw = String::new();
    std::io::Read::read_to_string(&mut c, &mut raw).unwrap();
    assert!(raw.starts_with("{\n\t\"version\":"), "{raw}");
    let v: Value = serde_json::from_str(&raw).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "version",
            "listen_queue",
            "listen_queue_errors",
            "signal_queue",
            "load",
            "pid",
            "uid",
            "gid",
            "cwd",
            "locks",
            "sockets",
            "workers"
        ]
    );
    assert_eq!(v["pid"], s.pid());
    assert_eq!(v["sockets"][0]["proto"], "http");
    let workers = v["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 4, "every configured slot is listed");
    let spawned: Vec<i64> = s
        .events("spawned")
        .iter()
        .map(|e| e["pid"].as_i64().unwrap())
        .collect();
    for (i, w) in workers.iter().enumerate() {
        if i < 2 {
            assert_eq!(w["id"], i + 1);
            assert!(spawned.contains(&w["pid"].as_i64().unwrap()));
            assert_eq!(w["status"], "idle");
            assert_eq!(w["respawn_count"], 1);
            assert!(w["rss"].as_u64().unwrap() > 0);
            assert_eq!(w["cores"].as_array().unwrap().len(), 1);
        } else {
            // Never spawned: id 0, pid 0, "cheap", as uWSGI shows them.
            assert_eq!(
                (w["id"].as_i64(), w["pid"].as_i64(), w["status"].as_str()),
                (Some(0), Some(0), Some("cheap"))
            );
        }
    }
    let total: u64 = workers
        .iter()
        .map(|w| w["requests"].as_u64().unwrap())
        .sum();
    let exceptions: u64 = workers
        .iter()
        .map(|w| w["exceptions"].as_u64().unwrap())
        .sum();
    assert_eq!((total, exceptions), (3, 3));
    drop(s);
    // stats-http: exactly the headers the Prometheus exporter accepts.
    let s = serve_app(
        "hello",
        &["--http-socket", "127.0.0.1:0"],
        &["--stats", "127.0.0.1:0", "--stats-http", "--stats-minified"],
    );
    let name = s.events("stats_bound")[0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = get(name.parse().unwrap(), "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(!String::from_utf8_lossy(&r.body).contains('\t'));
    assert_eq!(r.json()["workers"][0]["id"], 1);
}

#[test]
fn requests_abandoned_in_the_queue_do_not_fill_it() {
    let s = serve_app(
        "slow",
        &["--http-socket", "127.0.0.1:0"],
        &["--processes", "1", "--listen", "3"],
    );
    let addr = s.http.unwrap();
    let busy = std::thread::spawn(move || get(addr, "/?1"));
    std::thread::sleep(Duration::from_millis(200));
    // Ten clients queue behind it and give up.
    for _ in 0..10 {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"GET /?0 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        drop(c);
    }
    assert_eq!(busy.join().unwrap().status, 200);
    std::thread::sleep(Duration::from_millis(300));
    // The queue is empty again: three clients at once are all served.
    let clients: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(move || get(addr, "/?0.2")))
        .collect();
    for c in clients {
        assert_eq!(c.join().unwrap().status, 200);
    }
}

#[test]
fn attached_daemons_run_are_started_again_and_stop_with_the_server() {
    let dir = tmpdir("daemons");
    let mut s = serve_app_in(
        dir.clone(),
        "hello",
        &["--http-socket", "127.0.0.1:0"],
        &[
            // One that exits at once (started again, throttled), one that
            // stays (stopped with the server).
            "--attach-daemon",
            "echo $$ >> {dir}/quick.pids",
            "--attach-daemon",
            "echo $$ > {dir}/long.pid; exec sleep 300",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let runs = || {
        std::fs::read_to_string(dir.join("quick.pids"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    while runs() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(runs() >= 2, "the quick daemon was not started again");
    assert!(s.logged("[uwsgi-daemons] spawning \\\"echo $$ >> "));
    assert!(s.logged("[uwsgi-daemons] respawning"));
    assert!(s.logged("[uwsgi-daemons] throttling"));
    assert_eq!(get(s.http.unwrap(), "/").body, b"Hello, World!");
    let long: i32 = std::fs::read_to_string(dir.join("long.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill with signal 0 only checks that the process exists.
    assert_eq!(unsafe { libc::kill(long, 0) }, 0);
    assert!(s.terminate().success());
    let gone = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        // SAFETY: as above.
        let alive = unsafe { libc::kill(long, 0) } == 0;
        !alive
    });
    assert!(gone, "the daemon outlived the server");
}

/// Starts the test app with one hook option and waits for it to end.
fn with_hook(dir: std::path::PathBuf, option: &str, value: &str) -> (Server, ExitStatus) {
    let apps = apps();
    let args = [
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        apps.to_str().unwrap(),
        option,
        value,
    ];
    let mut s = Server::start_in(dir, &args, false);
    let st = s.wait_exit(Duration::from_secs(20));
    (s, st)
}

#[test]
fn pre_app_hooks_run_before_the_app_and_a_failing_one_stops_the_start() {
    let dir = tmpdir("hooks");
    let s = serve_app_in(
        dir.clone(),
        "hello",
        &["--http-socket", "127.0.0.1:0"],
        &[
            "--exec-asap",
            "touch {dir}/asap",
            "--hook-pre-app",
            "exec:echo migrated > {dir}/migrated",
            "--exec-post-app",
            "echo post >> {dir}/migrated",
        ],
    );
    assert!(dir.join("asap").exists());
    assert_eq!(
        std::fs::read_to_string(dir.join("migrated")).unwrap(),
        "migrated\npost\n"
    );
    assert!(s.logged("(pre app)..."));
    assert!(s.logged("(post app)..."));
    assert_eq!(get(s.http.unwrap(), "/").body, b"Hello, World!");
    drop(s);
    let (s, st) = with_hook(dir, "--hook-pre-app", "exec:exit 4");
    assert_eq!(st.code(), Some(1));
    assert!(s.logged("exited with non-zero code: 4"));
    assert!(s.logged("FATAL hook failed, destroying instance"));
    assert!(s.events("spawned").is_empty());
}

#[test]
fn hooks_run_at_every_phase_with_uwsgis_actions() {
    let dir = tmpdir("hookphases");
    let lines = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let mut s = serve_app_in(
        dir.clone(),
        "hello",
        &["--http-socket", "127.0.0.1:0"],
        &[
            "--processes",
            "2",
            "--hook-asap",
            "mkdir:{dir}/made",
            "--hook-as-root",
            "appendn:{dir}/order as-root",
            "--exec-as-user",
            "echo as-user >> {dir}/order",
            "--hook-pre-app",
            "wait_for_dir:{dir}/made",
            "--hook-pre-app",
            "appendn:{dir}/order pre-app",
            "--hook-accepting",
            "appendn:{dir}/accepting worker",
            "--hook-accepting1",
            "appendn:{dir}/accepting1 worker1",
            "--hook-accepting1-once",
            "appendn:{dir}/once worker1",
            "--hook-as-user-atexit",
            "print:leaving now",
            "--hook-asap",
            "!write:{dir}/secret s3cr3t",
        ],
    );
    assert_eq!(lines("order"), ["as-root", "as-user", "pre-app"]);
    assert!(s.logged("appendn:"));
    assert!(s.logged("(as root)..."));
    // A private hook's arguments stay out of the log.
    assert!(s.logged("running --- PRIVATE HOOK --- (asap)..."));
    assert!(!s.logged("s3cr3t"));
    assert_eq!(
        std::fs::read_to_string(dir.join("secret")).unwrap(),
        "s3cr3t"
    );
    // Each worker runs the accepting hooks before its first request.
    wait_until(
        Duration::from_secs(10),
        || lines("accepting").len() >= 2,
        || format!("accepting hooks: {:?}", lines("accepting")),
    );
    assert_eq!(lines("accepting1").len(), 1);
    assert_eq!(lines("once").len(), 1);
    // Worker 1 again: accepting1 runs, accepting1-once does not.
    let pid = s
        .events("spawned")
        .iter()
        .find(|e| e["worker"] == 1)
        .and_then(|e| e["pid"].as_i64())
        .unwrap() as i32;
    s.kill_pid(pid, libc::SIGKILL);
    wait_until(
        Duration::from_secs(15),
        || lines("accepting1").len() >= 2,
        || "worker 1 not respawned".into(),
    );
    assert_eq!(lines("once").len(), 1);
    assert_eq!(get(s.http.unwrap(), "/").body, b"Hello, World!");
    assert!(s.terminate().success());
    assert!(s.logged("leaving now"));
}

#[test]
fn a_failing_accepting_hook_stops_the_instance() {
    let (s, st) = with_hook(tmpdir("hookaccept"), "--hook-accepting", "exec:exit 2");
    assert!(st.success(), "{st:?}");
    assert!(s.logged("exited with non-zero code: 2"));
    assert!(s.logged("FATAL hook failed, destroying instance"));
    assert!(s.logged("graceful shutdown triggered"));
}

/// Waits for `pidfile` to name a pid other than `not`.
fn wait_pidfile(pidfile: &std::path::Path, not: Option<i32>) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let pid: Option<i32> = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|t| t.trim().parse().ok());
        if let Some(p) = pid.filter(|&p| Some(p) != not) {
            return p;
        }
        assert!(Instant::now() < deadline, "no new pid in the pidfile");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn smart_daemons_are_watched_through_their_pidfile() {
    let dir = tmpdir("smartdaemon");
    let pidfile = dir.join("worker.pid");
    let mut s = serve_app_in(
        dir.clone(),
        "hello",
        &["--http-socket", "127.0.0.1:0"],
        &[
            // A command that daemonizes itself and writes its pidfile.
            "--smart-attach-daemon",
            "{dir}/worker.pid,3 sleep 300 & echo $! > {dir}/worker.pid",
        ],
    );
    let wait_pid = |not: Option<i32>| wait_pidfile(&pidfile, not);
    let first = wait_pid(None);
    s.wait_logged("found changed pidfile", Duration::from_secs(5));
    // Seen running, then gone: started again.
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: kill on a pid this test started (through the server).
    unsafe { libc::kill(first, libc::SIGKILL) };
    let second = wait_pid(Some(first));
    s.wait_logged("[uwsgi-daemons] respawning", Duration::from_secs(5));
    // Independent of the instance: still running after it stops.
    assert!(s.terminate().success());
    // SAFETY: signal 0 only checks that the process exists; then the test
    // cleans up after itself.
    unsafe {
        assert_eq!(libc::kill(second, 0), 0, "the smart daemon was stopped");
        libc::kill(second, libc::SIGKILL);
    }
}

#[test]
fn cron_commands_run_on_schedule_in_chdir_and_harakiri_stops_them() {
    let dir = tmpdir("cron");
    std::fs::create_dir(dir.join("app")).unwrap();
    let mut s = serve_app_in(
        dir.clone(),
        "hello",
        &["--http-socket", "127.0.0.1:0"],
        &[
            "--chdir",
            "{dir}/app",
            // Every minute: due at once.
            "--cron",
            "-1 -1 -1 -1 -1 pwd > ran-classic",
            "--cron2",
            "echo keyed > ran-keyed",
            // Never finishes on its own: harakiri after a second.
            "--cron2",
            "unique=1,harakiri=1 sleep 300",
            // Never due (minute 61 does not exist).
            "--unique-cron",
            "61 -1 -1 -1 -1 touch never",
        ],
    );
    let app = dir.join("app");
    wait_in_file(
        &app.join("ran-classic"),
        app.to_str().unwrap(),
        Duration::from_secs(10),
    );
    wait_in_file(&app.join("ran-keyed"), "keyed", Duration::from_secs(10));
    s.wait_logged("[uwsgi-cron] running", Duration::from_secs(5));
    s.wait_logged("exited after", Duration::from_secs(5));
    s.wait_logged("*** HARAKIRI ON CRON", Duration::from_secs(10));
    assert!(!app.join("never").exists());
    assert!(s.terminate().success());
}

/// Waits until `path` holds `n` lines equal to `line`.
fn wait_lines(path: &std::path::Path, line: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().filter(|l| *l == line).count() >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{n} x {line:?} not in {}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn attach_daemon2_keys_set_signals_directory_and_touch() {
    let dir = tmpdir("daemon2");
    std::fs::create_dir(dir.join("work")).unwrap();
    let log = dir.join("work/events");
    // Says which signal stopped it; started in `chdir`.
    std::fs::write(
        dir.join("d.sh"),
        "trap 'echo usr1 >> events; exit 0' USR1\n\
         trap 'echo usr2 >> events; exit 0' USR2\n\
         pwd >> events\n\
         while :; do sleep 0.1; done\n",
    )
    .unwrap();
    let spec = format!(
        "cmd=sh {}/d.sh,stopsignal=10,reloadsignal=12,chdir={}/work,touch={}/restart,max_throttle=1",
        dir.display(),
        dir.display(),
        dir.display()
    );
    let mut s = serve_app_in(
        dir.clone(),
        "hello",
        &["--http-socket", "127.0.0.1:0"],
        &["--attach-daemon2", &spec],
    );
    let started = dir.join("work").display().to_string();
    wait_lines(&log, &started, 1);
    // A touch file that changes stops it with its stop signal; it starts
    // again.
    std::fs::write(dir.join("restart"), "now").unwrap();
    wait_lines(&log, "usr1", 1);
    wait_lines(&log, &started, 2);
    s.wait_logged("restart touched, stopping", Duration::from_secs(5));
    // A reload sends the reload signal; it starts again.
    s.signal(libc::SIGHUP);
    wait_lines(&log, "usr2", 1);
    wait_lines(&log, &started, 3);
    // Shutdown: the stop signal.
    assert!(s.terminate().success());
    wait_lines(&log, "usr1", 2);
}

#[test]
fn smart_attach_daemon2_writes_the_pidfile_of_a_foreground_command() {
    let dir = tmpdir("smartdaemon2");
    let pidfile = dir.join("fg.pid");
    let mut s = serve_app_in(
        dir.clone(),
        "hello",
        &["--http-socket", "127.0.0.1:0"],
        &["--smart-attach-daemon2", "{dir}/fg.pid,2 sleep 300"],
    );
    let wait_pid = |not: Option<i32>| wait_pidfile(&pidfile, not);
    let first = wait_pid(None);
    // The pid written is the process rwsgi started (`sh -c`, as uWSGI runs
    // it): the master's child.
    let stat = std::fs::read_to_string(format!("/proc/{first}/stat")).unwrap();
    let ppid: i32 = stat
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap();
    assert_eq!(ppid, s.pid());
    // Seen running, then gone: started again, with a new pidfile.
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: kill on a process group this test started (through the
    // server): the daemon leads a session of its own.
    unsafe { libc::kill(-first, libc::SIGKILL) };
    let second = wait_pid(Some(first));
    assert!(s.terminate().success());
    // SAFETY: signal 0 only checks that the process exists; then the test
    // cleans up after itself.
    unsafe {
        assert_eq!(libc::kill(second, 0), 0, "the smart daemon was stopped");
        libc::kill(-second, libc::SIGKILL);
    }
}

#[test]
fn fs_reload_reloads_when_an_entry_of_the_directory_changes() {
    let dir = tmpdir("fsreload");
    std::fs::create_dir(dir.join("code")).unwrap();
    std::fs::write(dir.join("code/settings.py"), "A = 1\n").unwrap();
    let s = serve_app_in(
        dir.clone(),
        "hello",
        &["--http-socket", "127.0.0.1:0"],
        &["--fs-reload", "{dir}/code"],
    );
    assert!(s.logged("[uwsgi-fsmon] watching"));
    // A file inside the directory is written: one graceful reload.
    std::fs::write(dir.join("code/settings.py"), "A = 2\n").unwrap();
    s.wait_event("reload_done", Duration::from_secs(30));
    assert!(s.logged("code has been modified... grace them all !!!"));
    assert_eq!(get(s.http.unwrap(), "/").status, 200);
    // A path that does not exist is refused at startup, by name.
    let out = Command::new(bin())
        .args([
            "--http-socket",
            "127.0.0.1:0",
            "--fs-reload",
            "/no/such/dir",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/dir"));
}

#[test]
fn stop_signals_to_every_process_still_drain_the_requests_in_flight() {
    // `killall -INT rwsgi`, `systemctl stop`: the signals reach the master
    // and every worker.
    let mut s = serve_app(
        "slow",
        &["--http-socket", "127.0.0.1:0"],
        &["--processes", "2"],
    );
    let addr = s.http.unwrap();
    let inflight = std::thread::spawn(move || get(addr, "/?1"));
    std::thread::sleep(Duration::from_millis(300));
    let workers: Vec<i32> = s
        .events("spawned")
        .iter()
        .map(|e| e["pid"].as_i64().unwrap() as i32)
        .collect();
    for pid in &workers {
        s.kill_pid(*pid, libc::SIGINT);
        s.kill_pid(*pid, libc::SIGQUIT);
    }
    // What `systemctl stop` does: SIGTERM to every process of the unit.
    for pid in &workers {
        s.kill_pid(*pid, libc::SIGTERM);
    }
    s.signal(libc::SIGTERM);
    let r = inflight.join().unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"Hello, World!"[..]));
    assert!(s.wait_exit(Duration::from_secs(15)).success());
    assert!(!s.logged("KeyboardInterrupt"), "{:?}", s.logs());
    assert!(s.logged("goodbye to uWSGI."));
}
