//! Options that real uWSGI ini files carry: log files, pidfiles, socket
//! ownership, request limits, extra headers, request-log rules,
//! `show-config`, `py-autoreload`.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

/// rwsgi serving `callable` with exactly `args` (no `--log-format json`
/// added), not waiting for readiness: for tests whose log is not stderr.
fn start_raw(dir: PathBuf, callable: &str, args: &[String]) -> Server {
    let mut cmd = Command::new(bin());
    cmd.arg("--wsgi-file")
        .arg(apps())
        .args(["--callable", callable])
        .args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("UWSGI_") || k.starts_with("RWSGI_") {
            cmd.env_remove(k);
        }
    }
    Server::spawn(cmd, dir, false)
}

/// rwsgi with `--logto DIR/app.log` and `extra`, on an HTTP port; returns
/// the server, its directory and the log path.
fn start_logging_to(tag: &str, callable: &str, extra: &[&str]) -> (Server, PathBuf, PathBuf) {
    let dir = tmpdir(tag);
    let log = dir.join("app.log");
    let mut args: Vec<String> = vec![
        "--http-socket".into(),
        "127.0.0.1:0".into(),
        "--logto".into(),
        log.display().to_string(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    (start_raw(dir.clone(), callable, &args), dir, log)
}

#[test]
fn logto_sends_every_process_output_to_the_file() {
    let (s, _, log) = start_logging_to("logto", "talker", &["--log-format", "json"]);
    let text = wait_in_file(&log, "workers_ready", Duration::from_secs(30));
    let r = get(http_address(&text), "/hello");
    assert_eq!(r.status, 200);
    // The master's request line and the worker's prints, both in the file.
    let text = wait_in_file(&log, "talker stderr /hello", Duration::from_secs(5));
    assert!(text.contains("talker stdout /hello"), "{text}");
    wait_in_file(&log, "GET /hello", Duration::from_secs(5));
    assert!(s.logs().is_empty(), "nothing on stderr: {:?}", s.logs());
    // uWSGI's mode: rw for the owner, r for the group.
    let mode = std::fs::metadata(&log).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o640);
}

#[test]
fn log_maxsize_rotates_the_file_every_process_writes() {
    // Without log-backupname: LOGFILE.<unix time>.
    let (_s, dir, log) = start_logging_to(
        "logmaxsize",
        "talker",
        &["--log-format", "json", "--log-maxsize", "4000"],
    );
    let text = wait_in_file(&log, "workers_ready", Duration::from_secs(30));
    let a = http_address(&text);
    let backup = || {
        std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("app.log.") && n[8..].parse::<u64>().is_ok())
            })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while backup().is_none() && Instant::now() < deadline {
        // Request lines from the master, prints from the workers.
        assert_eq!(get(a, "/hello").status, 200);
        std::thread::sleep(Duration::from_millis(20));
    }
    let old = backup().expect("rotated");
    // The backup is a copy: it may be seen before the copy is complete.
    wait_in_file(&old, "triggering rotation to", Duration::from_secs(5));
    // The workers keep writing into the fresh file, not into the backup.
    std::thread::sleep(Duration::from_millis(1500));
    let before = std::fs::read_to_string(&old).unwrap().len();
    assert_eq!(get(a, "/hello").status, 200);
    wait_in_file(&log, "talker stderr /hello", Duration::from_secs(5));
    // (A later rotation writes a backup of another name.)
    assert_eq!(std::fs::read_to_string(&old).unwrap().len(), before);
    assert!(std::fs::metadata(&log).unwrap().len() < 8000);
}

#[test]
fn log_date_prefixes_server_lines_and_log_reopen_follows_rotation() {
    let (s, dir, log) = start_logging_to("logdate", "talker", &["--log-date", "", "--log-reopen"]);
    let text = wait_in_file(&log, "spawned uWSGI worker 1", Duration::from_secs(30));
    // ctime's form, then " - ", as uWSGI's logdate prints it.
    let line = text
        .lines()
        .find(|l| l.contains("spawned uWSGI worker 1"))
        .unwrap();
    let (date, rest) = line.split_once(" - ").unwrap();
    assert_eq!(date.len(), 24, "{line}");
    assert_eq!(&date[19..20], " ", "{line}");
    assert!(rest.starts_with("spawned uWSGI worker 1"), "{line}");
    // logrotate's way: move the file away, then reload.
    let rotated = dir.join("app.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    s.signal(1);
    let fresh = wait_in_file(&log, "chain reloading complete", Duration::from_secs(30));
    assert!(fresh.contains("log file reopened"), "{fresh}");
    assert!(
        std::fs::read_to_string(&rotated)
            .unwrap()
            .contains("chain reload starting")
    );
}

#[test]
fn a_strftime_log_date() {
    let (_s, _, log) = start_logging_to("logdate2", "hello", &["--logdate", "[%Y-%m-%d]"]);
    let text = wait_in_file(&log, "spawned uWSGI worker 1", Duration::from_secs(30));
    let line = text
        .lines()
        .find(|l| l.contains("spawned uWSGI worker 1"))
        .unwrap();
    let year = line.get(1..5).unwrap();
    assert!(
        line.starts_with('[') && year.starts_with("20") && line[11..].starts_with("] - spawned"),
        "{line}"
    );
}

#[test]
fn req_logger_file_takes_the_request_lines() {
    let dir = tmpdir("reqlog");
    let req = dir.join("requests.log");
    let arg = format!("file:{}", req.display());
    let s = serve_app(
        "hello",
        &["--http-socket", "127.0.0.1:0"],
        &["--req-logger", &arg],
    );
    assert_eq!(get(s.http.unwrap(), "/x").status, 200);
    wait_in_file(&req, "GET /x", Duration::from_secs(5));
    assert!(!s.logged("GET /x"), "request lines leave stderr");
}

#[test]
fn pidfile_holds_the_master_pid_and_vacuum_removes_it() {
    let dir = tmpdir("pid");
    let pidfile = dir.join("master.pid");
    let mut s = serve_app_in(
        dir.clone(),
        "hello",
        &["--http-socket", "127.0.0.1:0"],
        &["--pidfile", "{dir}/master.pid", "--vacuum"],
    );
    let text = std::fs::read_to_string(&pidfile).unwrap();
    assert_eq!(text, format!("{}\n", s.pid()));
    assert!(s.terminate().success());
    assert!(!pidfile.exists());
}

#[test]
fn umask_and_chown_socket_apply_to_the_unix_socket() {
    let dir = tmpdir("chown");
    let s = serve_app_in(
        dir.clone(),
        "hello",
        &["--socket", "{dir}/app.sock"],
        &["--umask", "027", "--chown-socket", "65534:65534"],
    );
    let meta = std::fs::metadata(dir.join("app.sock")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
    assert_eq!(meta.mode() & 0o777, 0o750);
    let mut c = UnixStream::connect(dir.join("app.sock")).unwrap();
    let out = uwsgi_raw(&mut c, &cgi("GET", "/", &[]), b"");
    assert!(out.starts_with(b"HTTP/1.1 200 OK"));
    drop(s);
}

#[test]
fn limit_post_answers_413_over_http_and_uwsgi() {
    let s = serve_app(
        "echo",
        &["--http-socket", "127.0.0.1:0", "--socket", "127.0.0.1:0"],
        &["--limit-post", "1000"],
    );
    let http_addr = s.http.unwrap();
    assert_eq!(http(http_addr, "POST", "/", &[], &[b'x'; 1000]).status, 200);
    assert_eq!(http(http_addr, "POST", "/", &[], &[b'x'; 1001]).status, 413);
    let mut c = TcpStream::connect(s.uwsgi.unwrap()).unwrap();
    let out = uwsgi_raw(
        &mut c,
        &cgi("POST", "/", &[("CONTENT_LENGTH", "5000")]),
        b"",
    );
    assert!(
        out.starts_with(b"HTTP/1.1 413 Request Entity Too Large"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    // The line may reach the log reader just after the response.
    s.wait_logged(
        "Invalid (too big) CONTENT_LENGTH. skip.",
        Duration::from_secs(5),
    );
}

#[test]
fn add_header_is_on_every_response_and_the_file_wrapper_can_go() {
    let s = serve_app(
        "echo",
        &["--http-socket", "127.0.0.1:0", "--socket", "127.0.0.1:0"],
        &[
            "--add-header",
            "X-Served-By: rwsgi",
            "--add-header",
            "Cache-Control: no-store",
            "--wsgi-disable-file-wrapper",
        ],
    );
    let r = get(s.http.unwrap(), "/");
    assert_eq!(r.header("x-served-by"), Some("rwsgi"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let mut c = TcpStream::connect(s.uwsgi.unwrap()).unwrap();
    let out = String::from_utf8_lossy(&uwsgi_raw(&mut c, &cgi("GET", "/", &[]), b"")).into_owned();
    assert!(
        out.contains("\r\nX-Served-By: rwsgi\r\nCache-Control: no-store\r\n\r\n"),
        "{out}"
    );
    let body: Value = serde_json::from_str(out.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["environ"]["has_file_wrapper"], false);
}

#[test]
fn disabled_logging_still_logs_4xx_5xx_slow_and_shows_x_forwarded_for() {
    let s = serve_app(
        "talker",
        &["--http-socket", "127.0.0.1:0"],
        &[
            "--disable-logging",
            "--log-4xx",
            "--log-slow",
            "200",
            "--log-x-forwarded-for",
        ],
    );
    let a = s.http.unwrap();
    assert_eq!(get(a, "/fine").status, 200);
    assert_eq!(
        http(
            a,
            "GET",
            "/missing",
            &[("X-Forwarded-For", "203.0.113.9")],
            b""
        )
        .status,
        404
    );
    assert_eq!(get(a, "/slow").status, 200);
    s.wait_logged("GET /slow", Duration::from_secs(5));
    s.wait_logged("203.0.113.9 () {", Duration::from_secs(5));
    assert!(s.logged("GET /missing"));
    assert!(!s.logged("GET /fine"));
}

#[test]
fn show_config_logs_the_options_as_ini() {
    let s = serve_app(
        "hello",
        &["--http-socket", "127.0.0.1:0"],
        &["--show-config", "--processes", "2"],
    );
    let lines: Vec<String> = s
        .events("show_config")
        .iter()
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        lines.first().map(String::as_str),
        Some(";uWSGI instance configuration")
    );
    assert!(lines.iter().any(|l| l == "processes = 2"), "{lines:?}");
    assert_eq!(
        lines.last().map(String::as_str),
        Some(";end of configuration")
    );
}

#[test]
fn the_graceful_sigterm_hook_is_accepted_and_other_hooks_refused() {
    let s = serve_app(
        "hello",
        &["--http-socket", "127.0.0.1:0"],
        &[
            "--hook-master-start",
            "unix_signal:15 gracefully_kill_them_all",
        ],
    );
    assert!(s.logged("rwsgi already shuts down gracefully on SIGTERM"));
    drop(s);
    let out = Command::new(bin())
        .args([
            "--http-socket",
            "127.0.0.1:0",
            "--hook-master-start",
            "exec:echo hi",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hook-master-start"));
}

#[test]
fn py_autoreload_reloads_when_a_module_changes() {
    let dir = tmpdir("autoreload");
    let module = dir.join("reloadme.py");
    let source = |v: &str| {
        format!(
            "def application(environ, start_response):\n    start_response('200 OK', [])\n    return [b'{v}']\n"
        )
    };
    std::fs::write(&module, source("v1")).unwrap();
    let s = Server::start_in(
        dir.clone(),
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--pythonpath",
            "{dir}",
            "--module",
            "reloadme",
            "--py-autoreload",
            "1",
        ],
        true,
    );
    assert_eq!(get(s.http.unwrap(), "/").body, b"v1");
    // Let the prototype see the first version, then change it (and its
    // modification time, whatever the file system's resolution).
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::write(&module, source("v2")).unwrap();
    let f = std::fs::File::options().write(true).open(&module).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    drop(f);
    s.wait_logged(
        "[uwsgi-python-reloader] module/file",
        Duration::from_secs(10),
    );
    s.wait_event("reload_done", Duration::from_secs(30));
    assert_eq!(get(s.http.unwrap(), "/").body, b"v2");
}

#[test]
fn reload_on_as_recycles_after_the_request_and_evil_reload_kills() {
    // Every process maps more than 1 MiB: the worker recycles after its
    // first request (past min-worker-lifetime 0).
    let s = serve_app(
        "counted",
        &["--http-socket", "127.0.0.1:0"],
        &["--reload-on-as", "1", "--min-worker-lifetime", "0"],
    );
    let first = get(s.http.unwrap(), "/").json()["pid"].as_i64().unwrap();
    s.wait_logged(
        &format!("...The work of process {first} is done. Seeya!"),
        Duration::from_secs(5),
    );
    s.wait_event("respawned", Duration::from_secs(10));
    drop(s);
    // The master kills a worker over evil-reload-on-rss without waiting
    // for a request to end.
    let s = serve_app(
        "hello",
        &["--http-socket", "127.0.0.1:0"],
        &["--evil-reload-on-rss", "1"],
    );
    let pid = s.events("spawned")[0]["pid"].as_i64().unwrap();
    s.wait_logged("*** EVIL RELOAD ON WORKER 1 RSS: ", Duration::from_secs(5));
    s.wait_logged(&format!("(pid: {pid}) ***"), Duration::from_secs(5));
    s.wait_logged(
        &format!("DAMN ! worker 1 (pid: {pid}) died, killed by signal 9"),
        Duration::from_secs(5),
    );
}

#[test]
fn static_map_serves_files_from_the_master() {
    let dir = tmpdir("static");
    let site = dir.join("site");
    std::fs::create_dir_all(site.join("css")).unwrap();
    std::fs::write(site.join("css/a.css"), "a{}").unwrap();
    std::fs::write(site.join("index.html"), "<p>hi</p>").unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(site.join("big.bin"), &big).unwrap();
    std::fs::write(dir.join("secret.txt"), "no").unwrap();
    let s = serve_app_in(
        dir.clone(),
        "hello",
        &["--http-socket", "127.0.0.1:0", "--socket", "127.0.0.1:0"],
        &[
            "--chdir",
            "{dir}",
            // Relative to chdir, as in uWSGI.
            "--static-map",
            "/static=site",
            "--static-index",
            "index.html",
            "--honour-range",
        ],
    );
    assert!(s.logged("[uwsgi-static] added mapping for /static => "));
    let a = s.http.unwrap();
    let r = get(a, "/static/css/a.css");
    assert_eq!((r.status, &r.body[..]), (200, &b"a{}"[..]));
    assert_eq!(r.header("content-type"), Some("text/css"));
    assert_eq!(r.header("content-length"), Some("3"));
    let modified = r.header("last-modified").unwrap().to_owned();
    assert!(modified.ends_with(" GMT"), "{modified}");
    // Not modified since: 304 without a body.
    let r = http(
        a,
        "GET",
        "/static/css/a.css",
        &[("If-Modified-Since", &modified)],
        b"",
    );
    assert_eq!((r.status, r.body.len()), (304, 0));
    // HEAD: the headers, no body.
    let r = http(a, "HEAD", "/static/css/a.css", &[], b"");
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(r.header("content-length"), Some("3"));
    // A directory's index, and a big file streamed whole.
    assert_eq!(get(a, "/static/").body, b"<p>hi</p>");
    let r = get(a, "/static/big.bin");
    assert_eq!(r.body.len(), big.len());
    assert!(r.body == big);
    // honour-range: a part of a small file and of a streamed one, the
    // suffix form, and a range past the end.
    let r = http(a, "GET", "/static/css/a.css", &[("Range", "bytes=1-")], b"");
    assert_eq!((r.status, &r.body[..]), (206, &b"{}"[..]));
    assert_eq!(r.header("content-range"), Some("bytes 1-2/3"));
    let r = http(
        a,
        "GET",
        "/static/big.bin",
        &[("Range", "bytes=2000000-2099999")],
        b"",
    );
    assert_eq!(r.status, 206);
    assert!(r.body[..] == big[2_000_000..2_100_000]);
    let r = http(a, "GET", "/static/big.bin", &[("Range", "bytes=-5")], b"");
    assert!(r.body[..] == big[big.len() - 5..]);
    let r = http(a, "GET", "/static/css/a.css", &[("Range", "bytes=9-")], b"");
    assert_eq!((r.status, r.body.len()), (416, 0));
    assert_eq!(r.header("content-range"), Some("bytes */3"));
    // What is not a file under the mapping goes to the app.
    for path in [
        "/static/missing.css",
        "/static/../secret.txt",
        "/staticx",
        "/",
    ] {
        assert_eq!(get(a, path).body, b"Hello, World!", "{path}");
    }
    // The same over uwsgi, as nginx would ask.
    let mut c = TcpStream::connect(s.uwsgi.unwrap()).unwrap();
    let out = uwsgi_raw(&mut c, &cgi("GET", "/static/css/a.css", &[]), b"");
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with(
            "HTTP/1.1 200 OK\r\nContent-Type: text/css\r\nContent-Length: 3\r\nLast-Modified: "
        ),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\na{}"), "{text}");
    let mut c = TcpStream::connect(s.uwsgi.unwrap()).unwrap();
    let out = uwsgi_raw(
        &mut c,
        &cgi("GET", "/static/big.bin", &[("HTTP_RANGE", "bytes=10-19")]),
        b"",
    );
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("HTTP/1.1 206 Partial Content\r\n"),
        "{text}"
    );
    assert!(
        text.contains("Content-Range: bytes 10-19/3000000\r\n"),
        "{text}"
    );
    assert!(out.ends_with(&big[10..20]));
    // Served by the master: worker id 0 in the request line.
    s.wait_logged(
        "GET /static/css/a.css => generated 3 bytes",
        Duration::from_secs(5),
    );
}

#[test]
fn static_expires_skip_ext_and_production_logging_options() {
    let dir = tmpdir("static-expires");
    let site = dir.join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("a.css"), "a{}").unwrap();
    std::fs::write(site.join("b.js"), "b()").unwrap();
    std::fs::write(site.join("b.js.gz"), "gzipped").unwrap();
    std::fs::write(site.join("c.txt"), "c").unwrap();
    std::fs::write(site.join("app.py"), "secret").unwrap();
    let s = serve_app_in(
        dir.clone(),
        "hello",
        &["--http-socket", "127.0.0.1:0", "--socket", "127.0.0.1:0"],
        &[
            "--static-map",
            "/static={dir}/site",
            // uWSGI's forms: "type=seconds" and "REGEXP seconds".
            "--static-expires-type",
            "text/css=3600",
            "--static-expires-uri",
            "\\.js$ 60",
            "--static-expires-mtime",
            "c\\.txt$ 86400",
            "--static-skip-ext",
            ".py",
            "--static-gzip-dir",
            "{dir}/site",
            "--disable-logging",
            "--log-zero",
            "--log-big",
            "2",
            "--log-micros",
            "--max-fd",
            "2048",
            "--limit-as",
            "4096",
            "--safe-pidfile",
            "{dir}/rwsgi.pid",
            "--touch-chain-reload",
            "{dir}/reload.stamp",
            "--lazy",
            "--no-defer-accept",
        ],
    );
    assert!(
        s.logs()
            .iter()
            .any(|l| l.contains("no-defer-accept") && l.contains("ignored"))
    );
    assert!(s.logged("detected max file descriptor number: 2048"));
    let a = s.http.unwrap();
    let date = |h: &str| -> i64 {
        let out = Command::new("date")
            .args(["-u", "-d", h, "+%s"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // By content type: now + 3600.
    let r = get(a, "/static/a.css");
    assert_eq!(r.status, 200);
    let e = date(r.header("expires").expect("Expires"));
    assert!((e - (now + 3600)).abs() <= 5, "{e} vs {now}");
    // By REQUEST_URI: now + 60, over uwsgi too.
    let mut c = TcpStream::connect(s.uwsgi.unwrap()).unwrap();
    let out = uwsgi_raw(&mut c, &cgi("GET", "/static/b.js", &[]), b"");
    let text = String::from_utf8_lossy(&out);
    let line = text
        .lines()
        .find(|l| l.starts_with("Expires: "))
        .unwrap_or_else(|| panic!("{text}"));
    let e = date(&line["Expires: ".len()..]);
    assert!((e - (now + 60)).abs() <= 5, "{e} vs {now}");
    // By file path, from the modification time: mtime + 1 day.
    let r = get(a, "/static/c.txt");
    let mtime = date(r.header("last-modified").unwrap());
    assert_eq!(date(r.header("expires").unwrap()), mtime + 86400);
    // static-gzip-dir: the .gz twin to a client that takes gzip.
    let r = http(
        a,
        "GET",
        "/static/b.js",
        &[("Accept-Encoding", "gzip, br")],
        b"",
    );
    assert_eq!((r.status, &r.body[..]), (200, &b"gzipped"[..]));
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("content-type"), Some("text/javascript"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_eq!(get(a, "/static/b.js").body, b"b()");
    // A skipped extension goes to the app, never to the file.
    assert_eq!(get(a, "/static/app.py").body, b"Hello, World!");
    // No Expires rule for a 304.
    let modified = r.header("last-modified").unwrap().to_owned();
    let r = http(
        a,
        "GET",
        "/static/a.css",
        &[("If-Modified-Since", &modified)],
        b"",
    );
    assert_eq!(r.status, 304);
    assert_eq!(r.header("expires"), None);
    // disable-logging with log-big 2: the 13-byte hello is logged, in
    // microseconds; the 1-byte file is not.
    assert_eq!(get(a, "/hello").status, 200);
    s.wait_logged(
        "GET /hello => generated 13 bytes in ",
        Duration::from_secs(5),
    );
    let line = s
        .logs()
        .into_iter()
        .find(|l| l.contains("GET /hello => generated 13 bytes in "))
        .unwrap();
    assert!(line.contains(" micros ("), "{line}");
    assert!(!s.logged("GET /static/c.txt => generated"));
    // The master has the raised open-file limit (and so every process it starts).
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", s.pid())).unwrap();
    let open = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert!(open.split_whitespace().any(|w| w == "2048"), "{open}");
    let space = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))
        .unwrap();
    assert!(space.contains("4294967296"), "{space}");
    assert!(s.logged("limiting address space of processes..."));
    let pid = std::fs::read_to_string(dir.join("rwsgi.pid")).unwrap();
    assert_eq!(pid.trim(), s.pid().to_string());
}

#[test]
fn refused_uwsgi_features_say_what_to_do_instead() {
    for (opt, value, says) in [
        (
            "--response-route",
            "^/old addheader:X: y",
            "this part of internal routing is not supported",
        ),
        (
            "--route",
            "^/old setvar:A=b",
            "the routing action \"setvar\" is not supported",
        ),
        (
            "--attach-control-daemon",
            "celery worker",
            "a control daemon (whose death stops the instance) is not supported",
        ),
        (
            "--attach-daemon2",
            "cmd=celery worker,uid=33",
            "key \"uid\" is not supported",
        ),
        ("--cron2", "legion=x ./job", "legions are not supported"),
        (
            "--sharedarea",
            "file=/srv/area",
            "key \"file\" is not supported",
        ),
        ("--gevent", "100", "not in a gevent loop"),
    ] {
        let out = Command::new(bin())
            .args(["--http-socket", "127.0.0.1:0", opt, value])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{opt}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&opt[2..]) && err.contains(says),
            "{opt}: {err}"
        );
    }
}

#[test]
fn mount_serves_several_apps_by_mountpoint() {
    let apps_dir = apps().parent().unwrap().to_str().unwrap().to_owned();
    let s = serve_app(
        "talker",
        &["--http-socket", "127.0.0.1:0", "--socket", "127.0.0.1:0"],
        &[
            "--pythonpath",
            &apps_dir,
            "--mount",
            "/echo=app:echo",
            "--mount",
            "/hello=app:hello",
            "--manage-script-name",
        ],
    );
    assert!(s.logged("WSGI app 0 (mountpoint='') ready"));
    assert!(s.logged("(default app)"));
    assert!(s.logged("WSGI app 1 (mountpoint='/echo') ready"));
    assert!(s.logged("WSGI app 2 (mountpoint='/hello') ready"));
    let a = s.http.unwrap();
    // manage-script-name: the longest mountpoint moves to SCRIPT_NAME.
    let v = get(a, "/echo/x").json();
    assert_eq!(v["environ"]["SCRIPT_NAME"], "/echo");
    assert_eq!(v["environ"]["PATH_INFO"], "/x");
    assert_eq!(get(a, "/hello").body, b"Hello, World!");
    // Whole segments only; anything else is the default app's.
    assert_eq!(get(a, "/echoes").body, b"/echoes");
    assert_eq!(get(a, "/").body, b"/");
    drop(s);
    // Without manage-script-name, nginx's SCRIPT_NAME (or UWSGI_APPID)
    // picks the app and nothing is rewritten.
    let s = serve_app(
        "talker",
        &["--socket", "127.0.0.1:0"],
        &["--pythonpath", &apps_dir, "--mount", "/echo=app:echo"],
    );
    let ask = |extra: &[(&str, &str)]| {
        let mut c = TcpStream::connect(s.uwsgi.unwrap()).unwrap();
        let out = uwsgi_raw(&mut c, &cgi("GET", "/echo/y", extra), b"");
        String::from_utf8_lossy(&out).into_owned()
    };
    let out = ask(&[("SCRIPT_NAME", "/echo")]);
    let body: Value = serde_json::from_str(out.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["environ"]["PATH_INFO"], "/echo/y");
    assert!(ask(&[("UWSGI_APPID", "/echo")]).contains("\"sha256\""));
    assert!(ask(&[]).ends_with("/echo/y"), "the default app");
}

#[test]
fn a_graceful_harakiri_signals_first_and_kills_later() {
    let dir = tmpdir("graceful");
    std::fs::write(
        dir.join("graceful.py"),
        "import signal, sys, time\n\
         ignore = False\n\
         def on_term(sig, frame):\n\
         \x20   if ignore:\n\
         \x20       print('harakiri signal ignored', file=sys.stderr, flush=True)\n\
         \x20       return\n\
         \x20   print('graceful harakiri: cleaning up', file=sys.stderr, flush=True)\n\
         \x20   sys.exit(3)\n\
         signal.signal(signal.SIGTERM, on_term)\n\
         def application(environ, start_response):\n\
         \x20   global ignore\n\
         \x20   ignore = environ['PATH_INFO'] == '/ignore'\n\
         \x20   time.sleep(30)\n\
         \x20   start_response('200 OK', [])\n\
         \x20   return [b'late']\n",
    )
    .unwrap();
    let s = Server::start_in(
        dir.clone(),
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--wsgi-file",
            "{dir}/graceful.py",
            "--harakiri",
            "1",
            "--harakiri-graceful-timeout",
            "1",
            "--harakiri-graceful-signal",
            "SIGTERM",
        ],
        true,
    );
    // The app's handler runs, then the worker is gone: 502.
    assert_eq!(get(s.http.unwrap(), "/").status, 502);
    assert!(s.logged("graceful harakiri: cleaning up"));
    assert!(s.logged("try: 1, graceful: yes"));
    // A worker that ignores the signal is killed when the timeout is over.
    let spawned = s.wait_events("respawned", 1, Duration::from_secs(10));
    let pid = spawned[0]["pid"].as_i64().unwrap();
    assert_eq!(get(s.http.unwrap(), "/ignore").status, 502);
    assert!(s.logged("harakiri signal ignored"));
    assert!(s.logged(&format!("(pid: {pid}, try: 2, graceful: no)")));
    s.wait_logged(
        &format!("DAMN ! worker 1 (pid: {pid}) died, killed by signal 9"),
        Duration::from_secs(5),
    );
}

#[test]
fn reuse_port_and_so_keepalive_reach_the_sockets() {
    let s = serve_app(
        "hello",
        &["--http-socket", "127.0.0.1:0"],
        &["--reuse-port", "--so-keepalive"],
    );
    let a = s.http.unwrap();
    // SO_REUSEPORT: a second socket of the same user binds the same port.
    let other = bind_reusing_port(a);
    assert!(other.is_ok(), "{other:?}");
    // SO_KEEPALIVE, inherited by the accepted connection: the kernel runs
    // its keepalive timer (timer 2 in /proc/net/tcp) on the idle socket.
    let c = TcpStream::connect(a).unwrap();
    let client_port = c.local_addr().unwrap().port();
    let line = std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .find(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 5
                && f[1].ends_with(&format!(":{:04X}", a.port()))
                && f[2].ends_with(&format!(":{client_port:04X}"))
        })
        .map(str::to_owned)
        .expect("the server side of the connection");
    let timer = line.split_whitespace().nth(5).unwrap();
    assert!(timer.starts_with("02:"), "{line}");
}

/// Binds a TCP socket with SO_REUSEPORT to `a`.
fn bind_reusing_port(a: SocketAddr) -> std::io::Result<()> {
    // SAFETY: plain socket calls on a socket this function owns and closes.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let mut sin: libc::sockaddr_in = std::mem::zeroed();
        sin.sin_family = libc::AF_INET as libc::sa_family_t;
        sin.sin_port = a.port().to_be();
        sin.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let rc = libc::bind(
            fd,
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if rc == 0 { Ok(()) } else { Err(err) }
    }
}

#[test]
fn yaml_and_json_configs_are_read_as_uwsgi_reads_them() {
    let dir = tmpdir("yamljson");
    let app = apps();
    std::fs::write(
        dir.join("app.yml"),
        format!(
            "# a YAML configuration\nuwsgi:\n  http-socket: 127.0.0.1:0\n  wsgi-file: {}\n  callable: osenv\n  processes: 2\n  env: FROM_YAML=yes   # inline comment\nother:\n  processes: 9\n",
            app.display()
        ),
    )
    .unwrap();
    let s = Server::start_in(dir.clone(), &[dir.join("app.yml").to_str().unwrap()], true);
    assert_eq!(s.events("spawned").len(), 2);
    assert_eq!(get(s.http.unwrap(), "/?FROM_YAML").body, b"yes");
    drop(s);
    std::fs::write(
        dir.join("app.json"),
        serde_json::json!({"uwsgi": {
            "http-socket": "127.0.0.1:0",
            "wsgi-file": app.to_str().unwrap(),
            "callable": "osenv",
            "env": ["FROM_JSON=1", "SECOND=2"],
            "master": true,
        }})
        .to_string(),
    )
    .unwrap();
    let json = dir.join("app.json");
    let s = Server::start_in(dir, &["--json", json.to_str().unwrap()], true);
    assert_eq!(get(s.http.unwrap(), "/?SECOND").body, b"2");
    assert_eq!(get(s.http.unwrap(), "/?FROM_JSON").body, b"1");
}

#[test]
fn static_safe_lets_links_lead_into_its_directories() {
    let dir = tmpdir("staticsafe");
    std::fs::create_dir_all(dir.join("static")).unwrap();
    std::fs::create_dir_all(dir.join("app/assets")).unwrap();
    std::fs::write(dir.join("app/assets/site.css"), "body{}").unwrap();
    // What `collectstatic --link` leaves: links into the apps' directories.
    std::os::unix::fs::symlink(dir.join("app/assets/site.css"), dir.join("static/site.css"))
        .unwrap();
    let start = |extra: &[&str]| {
        let mut args = vec!["--static-map", "/static={dir}/static"];
        args.extend_from_slice(extra);
        serve_app_in(
            dir.clone(),
            "hello",
            &["--http-socket", "127.0.0.1:0"],
            &args,
        )
    };
    // Without static-safe the link is not followed: the app answers.
    let s = start(&[]);
    assert_eq!(
        get(s.http.unwrap(), "/static/site.css").body,
        b"Hello, World!"
    );
    drop(s);
    let s = start(&["--static-safe", "{dir}/app"]);
    let r = get(s.http.unwrap(), "/static/site.css");
    assert_eq!((r.status, &r.body[..]), (200, &b"body{}"[..]));
    assert_eq!(r.header("content-type"), Some("text/css"));
}

#[test]
fn internal_routing_redirects_refuses_and_asks_for_a_password() {
    let s = serve_app(
        "hello",
        &["--http-socket", "127.0.0.1:0", "--socket", "127.0.0.1:0"],
        &[
            "--route",
            ".* addheader:X-Frame-Options: DENY",
            "--route",
            "^/old/(.*)$ redirect-permanent:/new/$1",
            "--route-if",
            "equal:${HTTP_X_FORWARDED_PROTO};http redirect:https://${HTTP_HOST}${REQUEST_URI}",
            "--route-host",
            "^blocked\\.example$ return:403",
            "--route",
            "^/private basicauth:Staff,alice:s3cret",
            "--route",
            "^/favicon\\.ico$ static:{dir}/fav.ico",
            "--route",
            "^/gone$ static:{dir}/nothing-here",
        ],
    );
    let a = s.http.unwrap();
    // static:PATH, served by the master; 404 when the file is not there.
    std::fs::write(s.dir.join("fav.ico"), b"ICON").unwrap();
    let r = get(a, "/favicon.ico");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ICON"[..]));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(get(a, "/gone").status, 404);
    let mut c = std::net::TcpStream::connect(s.uwsgi.unwrap()).unwrap();
    let out = uwsgi_raw(&mut c, &cgi("GET", "/favicon.ico", &[]), b"");
    assert!(
        out.ends_with(b"\r\n\r\nICON"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    // Over HTTP.
    let r = http(a, "GET", "/old/page", &[], b"");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/new/page"));
    let r = http(a, "GET", "/x?y=1", &[("X-Forwarded-Proto", "http")], b"");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("https://test/x?y=1"));
    let r = http(a, "GET", "/private", &[], b"");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"Staff\""));
    let r = http(
        a,
        "GET",
        "/private",
        &[("Authorization", "Basic YWxpY2U6czNjcmV0")],
        b"",
    );
    assert_eq!(r.status, 200, "the app, once the password is right");
    let r = get(a, "/anything");
    assert_eq!(r.status, 200);
    // addheader: on the app's responses and the routing's own.
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(
        http(a, "GET", "/old/p", &[], b"").header("x-frame-options"),
        Some("DENY")
    );
    // Over uwsgi, as nginx sends it: raw HTTP back.
    let mut c = std::net::TcpStream::connect(s.uwsgi.unwrap()).unwrap();
    let out = uwsgi_raw(
        &mut c,
        &cgi("GET", "/", &[("HTTP_HOST", "blocked.example")]),
        b"",
    );
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nForbidden"), "{text}");
    let mut c = std::net::TcpStream::connect(s.uwsgi.unwrap()).unwrap();
    let out = uwsgi_raw(&mut c, &cgi("GET", "/old/a", &[]), b"");
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("HTTP/1.1 301 Moved Permanently\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\nLocation: /new/a\r\n"), "{text}");
    let mut c = std::net::TcpStream::connect(s.uwsgi.unwrap()).unwrap();
    let out = uwsgi_raw(&mut c, &cgi("GET", "/app", &[]), b"");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\r\nX-Frame-Options: DENY\r\n"), "{text}");
    // Routed requests are logged like the others.
    s.wait_logged("GET /old/page => generated", Duration::from_secs(5));
}

#[test]
fn routing_rewrites_what_the_app_sees() {
    let s = serve_app(
        "echo",
        &["--http-socket", "127.0.0.1:0", "--socket", "127.0.0.1:0"],
        &[
            "--route",
            "^/item/([0-9]+)$ rewrite:/show?id=$1",
            "--route",
            "^/show$ addheader:X-Seen: ${QUERY_STRING}",
            "--route",
            "^/old$ rewrite-last:/new",
            "--route",
            "^/new$ return:404",
            "--route-run",
            "addvar:ROUTED_BY=rwsgi",
            "--route-if",
            "startswith:${PATH_INFO};/v1/ goto:legacy",
            "--route-run",
            "goto:done",
            "--route-label",
            "legacy",
            "--route",
            "^/v1/(.*)$ setpathinfo:/v2/$1",
            "--route-run",
            "setscriptname:/legacy",
            "--route-label",
            "done",
        ],
    );
    let a = s.http.unwrap();
    // addvar, goto, route-label and set*: the app sees the variables.
    let env = get(a, "/v1/users").json()["environ"].clone();
    assert_eq!(env["ROUTED_BY"], "rwsgi");
    assert_eq!(
        (env["PATH_INFO"].as_str(), env["SCRIPT_NAME"].as_str()),
        (Some("/v2/users"), Some("/legacy"))
    );
    let env = get(a, "/v2/users").json()["environ"].clone();
    assert_eq!(
        (env["PATH_INFO"].as_str(), env["SCRIPT_NAME"].as_str()),
        (Some("/v2/users"), Some(""))
    );
    // rewrite, then the next rules see the new PATH_INFO and QUERY_STRING.
    let r = get(a, "/item/42");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-seen"), Some("id=42"));
    let env = &r.json()["environ"];
    assert_eq!(env["PATH_INFO"], "/show");
    assert_eq!(env["QUERY_STRING"], "id=42");
    assert_eq!(env["REQUEST_URI"], "/item/42");
    // rewrite-last: straight to the app.
    let r = get(a, "/old");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["environ"]["PATH_INFO"], "/new");
    // Over uwsgi too.
    let mut c = std::net::TcpStream::connect(s.uwsgi.unwrap()).unwrap();
    let out = uwsgi_raw(&mut c, &cgi("GET", "/item/7", &[]), b"");
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("\"PATH_INFO\": \"/show\""), "{text}");
    assert!(text.contains("\"QUERY_STRING\": \"id=7\""), "{text}");
}

#[test]
fn protocol_http_makes_socket_speak_http_and_set_fills_in_an_ini() {
    let dir = tmpdir("protocol");
    let ini = dir.join("app.ini");
    std::fs::write(
        &ini,
        format!(
            "[uwsgi]\n\
             set-placeholder = app_dir={apps}\n\
             set = callable=hello\n\
             set = workers_wanted=2\n\
             wsgi-file = %(app_dir)/app.py\n\
             processes = %(workers_wanted)\n\
             socket = 127.0.0.1:0\n\
             protocol = http\n\
             stats = 127.0.0.1:0\n",
            apps = apps().parent().unwrap().display()
        ),
    )
    .unwrap();
    let s = Server::start_in(dir, &["--ini", ini.to_str().unwrap()], true);
    // The `socket` line was bound as HTTP: plain HTTP gets the app's answer.
    let r = get(s.http.expect("the socket bound as http"), "/");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"Hello, World!"[..]));
    assert_eq!(s.stats()["workers"].as_array().unwrap().len(), 2);
}

/// What `ps` shows for a process: its command line, NULs as spaces.
fn title_of(pid: i64) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    String::from_utf8_lossy(&raw)
        .replace('\0', " ")
        .trim_end()
        .to_owned()
}

#[test]
fn auto_procname_titles_every_process_and_the_app_can_rename_its_own() {
    let s = serve_app(
        "titled",
        &["--http-socket", "127.0.0.1:0"],
        &[
            "--processes",
            "2",
            "--auto-procname",
            "--procname-prefix-spaced",
            "shop",
            "--procname-append",
            " [eu]",
            "--env",
            "TITLE_CHECK=kept",
            "--stats",
            "127.0.0.1:0",
        ],
    );
    assert_eq!(title_of(s.pid().into()), "shop uWSGI master [eu]");
    let workers = s.stats()["workers"].as_array().unwrap().clone();
    for w in &workers {
        let (id, pid) = (w["id"].as_i64().unwrap(), w["pid"].as_i64().unwrap());
        assert_eq!(title_of(pid), format!("shop uWSGI worker {id} [eu]"));
    }
    // The environment the titles now use was moved, not lost.
    let answer = String::from_utf8(get(s.http.unwrap(), "/?busy").body).unwrap();
    let (pid, env) = answer.split_once(' ').unwrap();
    assert_eq!(env, "kept");
    assert_eq!(title_of(pid.parse().unwrap()), "shop busy [eu]");

    // Without the options, processes keep their command lines.
    let plain = serve_app("titled", &["--http-socket", "127.0.0.1:0"], &[]);
    assert!(title_of(plain.pid().into()).contains("--callable titled"));
}

#[test]
fn threads_stacksize_sizes_the_request_threads() {
    let s = serve_app(
        "stack",
        &["--http-socket", "127.0.0.1:0"],
        &["--threads", "2", "--threads-stacksize", "256"],
    );
    assert!(s.logged("threads stack size set to 256k"));
    let a = s.http.unwrap();
    let answers: Vec<Value> = (0..4)
        .map(|_| std::thread::spawn(move || get(a, "/").json()))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let other: Vec<u64> = answers
        .iter()
        .filter(|v| v["main"] == false)
        .map(|v| v["stack"].as_u64().unwrap())
        .collect();
    assert!(!other.is_empty(), "{answers:?}");
    for size in other {
        assert!((256 * 1024..=320 * 1024).contains(&size), "{size}");
    }
}

#[test]
fn touch_files_reopen_and_rotate_the_log_in_every_process_run_commands_and_stop() {
    let dir = tmpdir("touches");
    let file = |n: &str| dir.join(n).display().to_string();
    for name in ["reopen", "rotate", "go", "stop"] {
        std::fs::write(dir.join(name), "").unwrap();
    }
    let exec = format!("{} touch {}", file("go"), file("ran"));
    let log = dir.join("app.log");
    let args: Vec<String> = [
        "--http-socket",
        "127.0.0.1:0",
        "--processes",
        "2",
        "--log-format",
        "json",
        "--logto",
        &file("app.log"),
        "--touch-logreopen",
        &file("reopen"),
        "--touch-logrotate",
        &file("rotate"),
        "--log-backupname",
        &file("backup.log"),
        "--touch-exec",
        &exec,
        "--touch-gracefully-stop",
        &file("stop"),
        "--master-fifo",
        &file("fifo"),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let mut s = start_raw(dir.clone(), "talker", &args);
    let text = wait_in_file(&log, "workers_ready", Duration::from_secs(30));
    let a = http_address(&text);
    // Both workers at once, so both write.
    let both = |path: &'static str| {
        let t: Vec<_> = (0..2)
            .map(|_| std::thread::spawn(move || get(a, path).status))
            .collect();
        t.into_iter()
            .for_each(|t| assert_eq!(t.join().unwrap(), 200));
    };
    both("/slow");
    // logrotate's move, then the touch: every process writes to the new file.
    let moved = dir.join("app.log.1");
    std::fs::rename(&log, &moved).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    std::fs::write(dir.join("reopen"), "x").unwrap();
    wait_in_file(&log, "log file reopened", Duration::from_secs(10));
    both("/slow?again");
    let fresh = wait_in_file(&log, "GET /slow?again", Duration::from_secs(5));
    assert_eq!(fresh.matches("talker stderr /slow").count(), 2, "{fresh}");
    let old = std::fs::read_to_string(&moved).unwrap();
    assert!(!old.contains("/slow?again"), "{old}");

    // The master FIFO's `l` does the same.
    let moved2 = dir.join("app.log.2");
    std::fs::rename(&log, &moved2).unwrap();
    std::fs::write(dir.join("fifo"), "l").unwrap();
    wait_in_file(&log, "log file reopened", Duration::from_secs(10));

    // touch-logrotate copies the log to log-backupname and empties it.
    both("/slow?third");
    wait_in_file(&log, "GET /slow?third", Duration::from_secs(5));
    std::fs::write(dir.join("rotate"), "x").unwrap();
    wait_in_file(
        &dir.join("backup.log"),
        "/slow?third",
        Duration::from_secs(10),
    );

    // touch-exec runs its command.
    std::fs::write(dir.join("go"), "x").unwrap();
    wait_until(
        Duration::from_secs(10),
        || dir.join("ran").exists(),
        || "touch-exec did not run".into(),
    );

    // touch-gracefully-stop stops the instance.
    std::fs::write(dir.join("stop"), "x").unwrap();
    assert!(s.wait_exit(Duration::from_secs(15)).success());
    wait_in_file(&log, "goodbye to uWSGI", Duration::from_secs(5));
}

#[test]
fn memory_report_starts_request_lines_with_the_workers_memory() {
    let s = serve_app(
        "hello",
        &["--http-socket", "127.0.0.1:0"],
        &["--memory-report"],
    );
    assert_eq!(get(s.http.unwrap(), "/mem").status, 200);
    s.wait_logged("GET /mem", Duration::from_secs(5));
    let line = s
        .logs()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|e| e["message"].as_str().map(str::to_owned))
        .find(|m| m.contains("GET /mem"))
        .unwrap();
    let rss: u64 = line
        .split("{rss usage: ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(line.starts_with("{address space usage: "), "{line}");
    assert!(rss > 1 << 20, "{line}");
}
