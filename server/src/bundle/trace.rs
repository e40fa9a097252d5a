//! The traced run: start this binary on a loopback port with one worker and
//! `RWSGI_TRACE_FILE` set, request the warm-up paths, stop it, and read what
//! the worker recorded (module files and mapped files).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::args::Args;
use crate::worker::trace::ENV;

/// What the traced run loaded.
#[derive(Debug, Default)]
pub struct Trace {
    /// Files of the modules in `sys.modules`.
    pub modules: Vec<PathBuf>,
    /// Files mapped into the worker.
    pub maps: Vec<PathBuf>,
}

/// Runs the app under tracing.
pub fn run(args: &Args, exe: &Path, work: &Path) -> anyhow::Result<Trace> {
    let trace_file = work.join("trace.txt");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--http-socket",
        "127.0.0.1:0",
        "--processes",
        "1",
        "--module",
        &args.module,
    ])
    .args(["--log-format", "json", "--disable-logging", "--need-app"]);
    if let Some(v) = &args.virtualenv {
        cmd.arg("--home").arg(v);
    }
    if let Some(d) = &args.chdir {
        cmd.arg("--chdir").arg(d);
    }
    for p in &args.pythonpath {
        cmd.arg("--pythonpath").arg(p);
    }
    cmd.env(ENV, &trace_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("cannot start the traced run")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let result = (|| {
        let mut addr: Option<SocketAddr> = None;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .context("the traced run did not become ready")?;
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            match v["event"].as_str() {
                Some("bound") => addr = v["name"].as_str().and_then(|n| n.parse().ok()),
                Some("workers_ready") => break,
                Some("no_app") | Some("startup_failed") | Some("fatal") => {
                    bail!("the app did not load in the traced run: {line}")
                }
                _ if v["level"] == "ERROR" => eprintln!("traced run: {}", v["fields"]["message"]),
                _ => {}
            }
        }
        let addr = addr.context("the traced run bound no socket")?;
        for path in &args.warmup {
            let status = get(addr, path).with_context(|| format!("warm-up request {path}"))?;
            eprintln!("bundle: warm-up GET {path} -> {status}");
        }
        // The worker writes the trace right after each response.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !trace_file.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        Ok(())
    })();
    // SAFETY: kill(2) on the child we started; no memory is involved.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    result?;
    let text = std::fs::read_to_string(&trace_file).context("the traced run wrote no trace")?;
    let mut t = Trace::default();
    for line in text.lines() {
        if let Some(m) = line.strip_prefix("module ") {
            t.modules.push(PathBuf::from(m));
        } else if let Some(m) = line.strip_prefix("map ") {
            t.maps.push(PathBuf::from(m));
        }
    }
    Ok(t)
}

/// A GET over HTTP/1.0; returns the status code.
fn get(addr: SocketAddr, path: &str) -> anyhow::Result<u16> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let head = String::from_utf8_lossy(&out[..out.len().min(64)]).into_owned();
    head.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no HTTP response: {head:?}"))
}
