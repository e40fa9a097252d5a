//! The integration harness: starts the real `rwsgi` binary (or the one named
//! by `RWSGI_BIN`) in a fresh temporary directory, on port 0 or a unix socket
//! there, with a clean environment and JSON logs; waits for readiness by log
//! event with a deadline; sends SIGTERM, then SIGKILL, on drop; prints the
//! server's log when a test fails.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use serde_json::Value;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The binary under test: `RWSGI_BIN`, or the one cargo built for these
/// tests. For the latter, the Python host it loads (`librwsgi.so`, the
/// library's cdylib) is put beside it first: `cargo build` does that, but
/// `cargo test` leaves the fresh one in `deps/`.
pub fn bin() -> String {
    if let Ok(b) = std::env::var("RWSGI_BIN") {
        return b;
    }
    let bin = env!("CARGO_BIN_EXE_rwsgi");
    static HOST: std::sync::Once = std::sync::Once::new();
    HOST.call_once(|| {
        let dir = std::path::Path::new(bin).parent().unwrap();
        let built = dir.join("deps/librwsgi.so");
        let beside = dir.join("librwsgi.so");
        let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        if built.exists() && modified(&built) > modified(&beside) {
            let tmp = dir.join(format!(".librwsgi.so.{}", std::process::id()));
            std::fs::copy(&built, &tmp).unwrap();
            std::fs::rename(&tmp, &beside).unwrap();
        }
        assert!(
            beside.exists(),
            "{} is missing: run cargo build",
            beside.display()
        );
    });
    bin.to_owned()
}

/// The test apps file.
pub fn apps() -> PathBuf {
    root().join("tests/apps/app.py")
}

/// The project virtualenv (made by scripts/setup.sh). Its absence fails the
/// test: nothing here is skipped.
pub fn venv() -> PathBuf {
    let v = std::env::var_os("RWSGI_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv"));
    assert!(
        v.join("bin/python").exists(),
        "no virtualenv at {}: run ./test.sh",
        v.display()
    );
    v
}

/// A fresh temporary directory.
pub fn tmpdir(tag: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let d = std::env::temp_dir().join(format!("rwsgi-test-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A running server.
pub struct Server {
    child: Option<Child>,
    /// Its temporary directory.
    pub dir: PathBuf,
    logs: Arc<Mutex<Vec<String>>>,
    /// The first HTTP listener, if any.
    pub http: Option<SocketAddr>,
    /// The first TCP uwsgi listener, if any.
    pub uwsgi: Option<SocketAddr>,
}

impl Server {
    /// Starts `rwsgi` with `args` (`{dir}` in an argument becomes the temp
    /// dir) and waits until its workers are ready.
    pub fn start(args: &[&str]) -> Server {
        Server::start_in(tmpdir("srv"), args, true)
    }

    /// Starts without waiting for readiness.
    pub fn start_in(dir: PathBuf, args: &[&str], wait: bool) -> Server {
        let bin = bin();
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("{dir}", dir.to_str().unwrap()))
            .collect();
        let mut cmd = Command::new(bin);
        cmd.args(&args).arg("--log-format").arg("json");
        for (k, _) in std::env::vars() {
            if k.starts_with("UWSGI_") || k.starts_with("RWSGI_") {
                cmd.env_remove(k);
            }
        }
        Server::spawn(cmd, dir, wait)
    }

    /// Runs `cmd` (which must make rwsgi log JSON to stderr) as the server.
    pub fn spawn(mut cmd: Command, dir: PathBuf, wait: bool) -> Server {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start rwsgi");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let mut s = Server {
            child: Some(child),
            dir,
            logs,
            http: None,
            uwsgi: None,
        };
        if wait {
            s.wait_event("workers_ready", Duration::from_secs(60));
            for ev in s.events("bound") {
                let addr: Option<SocketAddr> = ev["name"].as_str().and_then(|n| n.parse().ok());
                match ev["protocol"].as_str() {
                    Some("http") if s.http.is_none() => s.http = addr,
                    Some("uwsgi") if s.uwsgi.is_none() => s.uwsgi = addr,
                    _ => {}
                }
            }
        }
        s
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// The log lines that are JSON objects with this `event`.
    pub fn events(&self, event: &str) -> Vec<Value> {
        self.logs()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["event"] == event)
            .collect()
    }

    /// Whether any log line contains `s`.
    pub fn logged(&self, s: &str) -> bool {
        self.logs().iter().any(|l| l.contains(s))
    }

    /// Waits for a log event; fails the test after `timeout`.
    pub fn wait_event(&self, event: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = self.events(event).pop() {
                return v;
            }
            if Instant::now() > deadline {
                panic!("no {event:?} event within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `n` events of a kind were logged.
    pub fn wait_events(&self, event: &str, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let evs = self.events(event);
            if evs.len() >= n {
                return evs;
            }
            if Instant::now() > deadline {
                panic!("{} of {n} {event:?} events within {timeout:?}", evs.len());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for a log line containing `s`.
    pub fn wait_logged(&self, s: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.logged(s) {
            if Instant::now() > deadline {
                panic!("no log line with {s:?} within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The master's pid.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Sends a signal to the master.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with a pid we started; no memory is involved.
        unsafe { libc_kill(self.pid(), sig) };
    }

    /// Sends a signal to any process (a worker, the prototype).
    pub fn kill_pid(&self, pid: i32, sig: i32) {
        // SAFETY: kill(2); no memory is involved.
        unsafe { libc_kill(pid, sig) };
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(15);
        self.wait_exit(Duration::from_secs(20))
    }

    /// Waits for the master to exit (SIGKILL after `timeout`).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let st = child.wait().unwrap();
                panic!("rwsgi did not exit within {timeout:?}: {st:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: as in `signal`.
            unsafe { libc_kill(child.id() as i32, 15) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- rwsgi log ----");
            for l in self.logs() {
                eprintln!("{l}");
            }
            eprintln!("---- end of rwsgi log ----");
        }
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{e}: status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Reads one HTTP response from `r` (after a request with `method`).
pub fn read_response(r: &mut BufReader<impl Read>, method: &str) -> std::io::Result<Response> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    if line.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "no response",
        ));
    }
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').expect("header");
        headers.push((k.to_ascii_lowercase(), v.trim().to_owned()));
    }
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v): &(String, String)| v.clone())
    };
    let mut body = Vec::new();
    if method == "HEAD" || status == 204 || status == 304 || status / 100 == 1 {
    } else if get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim(), 16)
                .map_err(|_| std::io::Error::other("bad chunk size"))?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(len) = get("content-length") {
        body.resize(len.parse().unwrap(), 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// One HTTP/1.1 request on a new connection.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    read_response(&mut BufReader::new(s), method).unwrap()
}

/// A GET.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    http(addr, "GET", path, &[], b"")
}

/// Sends a uwsgi packet (plus body) and reads the raw reply to EOF.
pub fn uwsgi_raw(stream: &mut (impl Read + Write), vars: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut pkt = Vec::new();
    rwsgi_proto::encode_packet(
        rwsgi_proto::Modifier1::WSGI,
        vars,
        rwsgi_proto::Modifier2(0),
        &mut pkt,
    )
    .unwrap();
    stream.write_all(&pkt).unwrap();
    stream.write_all(body).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    out
}

/// Sends a GET for `/` over uwsgi to `addr` and asserts that the
/// connection is reset rather than closed cleanly (a worker died after
/// its response started).
pub fn assert_uwsgi_reset(addr: SocketAddr) {
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
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
    let res = c.read_to_end(&mut out);
    assert!(res.is_err(), "got a clean EOF after {} bytes", out.len());
}

/// The vars nginx would send for a simple request.
pub fn cgi<'a>(
    method: &'a str,
    path: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![
        ("REQUEST_METHOD", method),
        ("REQUEST_URI", path),
        ("PATH_INFO", path),
        ("QUERY_STRING", ""),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "80"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("CONTENT_TYPE", ""),
        ("CONTENT_LENGTH", ""),
    ];
    v.extend_from_slice(extra);
    v
}

/// Runs a command; panics with its output on failure.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts rwsgi serving `callable` from the test apps file, with the given
/// listener options and any extra options.
pub fn serve_app(callable: &str, listeners: &[&str], extra: &[&str]) -> Server {
    serve_app_in(tmpdir("srv"), callable, listeners, extra)
}

/// As [`serve_app`], in `dir` (`{dir}` in an argument becomes its path).
pub fn serve_app_in(dir: PathBuf, callable: &str, listeners: &[&str], extra: &[&str]) -> Server {
    let apps = apps();
    let mut args: Vec<&str> = listeners.to_vec();
    args.extend_from_slice(&[
        "--wsgi-file",
        apps.to_str().unwrap(),
        "--callable",
        callable,
    ]);
    args.extend_from_slice(extra);
    Server::start_in(dir, &args, true)
}

/// The real uid of a process, from /proc.
pub fn uid_of(pid: i64) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .to_owned();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Waits until `path` holds `needle`; returns the file's text.
pub fn wait_in_file(path: &std::path::Path, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in {} within {timeout:?}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The lines of `dir/name` (none when it does not exist).
pub fn file_lines(dir: &std::path::Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits until `dir/name` has `n` lines; returns them.
pub fn wait_file_lines(
    dir: &std::path::Path,
    name: &str,
    n: usize,
    timeout: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = file_lines(dir, name);
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: {got:?}, wanted {n} lines within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Server {
    /// The stats server's document (the server runs with `--stats`).
    pub fn stats(&self) -> Value {
        let addr: SocketAddr = self.events("stats_bound")[0]["name"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let mut doc = String::new();
        std::net::TcpStream::connect(addr)
            .unwrap()
            .read_to_string(&mut doc)
            .unwrap();
        serde_json::from_str(&doc).unwrap()
    }
}

/// The HTTP address from the JSON `bound` event in a log file's text.
pub fn http_address(log: &str) -> SocketAddr {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "bound" && v["protocol"] == "http")
        .and_then(|v| v["name"].as_str().and_then(|n| n.parse().ok()))
        .expect("a bound HTTP socket in the log")
}

/// Waits until `done` holds, looking every 20 ms; fails with `what` after
/// `timeout`.
pub fn wait_until(
    timeout: Duration,
    mut done: impl FnMut() -> bool,
    what: impl FnOnce() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{}", what());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Clients that keep sending requests from `threads` threads until
/// [`Load::stop`]; `one` sends one request and says whether it succeeded.
pub struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<(u32, u32)>>,
}

impl Load {
    /// Starts the clients.
    pub fn start(threads: usize, one: impl Fn() -> bool + Send + Clone + 'static) -> Load {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..threads)
            .map(|_| {
                let (stop, one) = (stop.clone(), one.clone());
                std::thread::spawn(move || {
                    let (mut ok, mut failed) = (0u32, 0u32);
                    while !stop.load(Ordering::Relaxed) {
                        if one() {
                            ok += 1;
                        } else {
                            failed += 1;
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        Load { stop, threads }
    }

    /// Stops the clients: (requests that succeeded, requests that failed).
    pub fn stop(self) -> (u32, u32) {
        self.stop.store(true, Ordering::Relaxed);
        self.threads.into_iter().fold((0, 0), |(ok, failed), t| {
            let (o, f) = t.join().unwrap();
            (ok + o, failed + f)
        })
    }
}
