//! `rwsgi bundle`, and the bundle run as a container runtime runs it:
//! `chroot` into it as uid/gid 65534 with an empty environment.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::*;
use crate::nginx::start_nginx_for;

fn bundle(extra: &[&str]) -> PathBuf {
    let out = tmpdir("bundle").join("root");
    let app = root().join("tests/apps/bundle_app");
    let venv = venv();
    let mut cmd = Command::new(bin());
    cmd.args(["bundle", "--module", "app:app", "--chdir"])
        .arg(&app)
        .arg("--virtualenv")
        .arg(&venv)
        .arg("--out")
        .arg(&out)
        .args(extra);
    let report = run(&mut cmd);
    assert!(report.contains("total"), "{report}");
    out
}

/// Starts the bundle under chroot as 65534 with a clean environment and,
/// as every container runtime provides, `/proc` mounted (in a mount
/// namespace of its own, so the mount goes away with the processes).
fn start(bundle: &Path, extra: &[&str]) -> Server {
    let dir = tmpdir("chroot");
    let chroot = ["/usr/sbin/chroot", "/usr/bin/chroot"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("chroot (coreutils) is installed");
    let mut cmd = Command::new("unshare");
    cmd.env_clear()
        .arg(format!("--mount-proc={}", bundle.join("proc").display()))
        .arg(chroot)
        .arg("--userspec=65534:65534")
        .arg(bundle)
        .args([
            "/rwsgi",
            "/app/rwsgi.ini",
            "--http-socket",
            "127.0.0.1:0",
            "--socket",
            "/tmp/app.sock",
        ])
        .args(["--log-format", "json"])
        .args(extra);
    Server::spawn(cmd, dir, true)
}

fn all_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                todo.push(e.path());
            }
            out.push(e.path());
        }
    }
    out
}

#[test]
fn the_bundle_holds_no_shell_and_nothing_writable() {
    let b = bundle(&[]);
    let loader = std::fs::canonicalize("/lib64/ld-linux-x86-64.so.2").unwrap();
    let loader_in_bundle = b.join(loader.strip_prefix("/").unwrap());
    for f in all_files(&b) {
        let meta = std::fs::symlink_metadata(&f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            ![
                "sh", "bash", "dash", "busybox", "apt", "dpkg", "pip", "python3"
            ]
            .contains(&name.as_str()),
            "{}",
            f.display()
        );
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode();
        if meta.is_file() && mode & 0o111 != 0 {
            assert!(
                f == b.join("rwsgi") || f == loader_in_bundle,
                "an executable: {}",
                f.display()
            );
        }
        if f == b.join("tmp") {
            assert_eq!(mode & 0o7777, 0o1777);
            continue;
        }
        // Owned by root and not writable by others: read-only for 65534.
        assert_eq!(meta.uid(), 0, "{}", f.display());
        assert_eq!(mode & 0o002, 0, "{} is world-writable", f.display());
    }
    let passwd = std::fs::read_to_string(b.join("etc/passwd")).unwrap();
    assert!(passwd.contains("nobody:x:65534:65534:"));
    assert!(
        b.join("usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0")
            .exists()
    );
    assert!(b.join("app/app.pyc").exists() && !b.join("app/app.py").exists());
    // Only the Python host links libpython; the binary (the master) does not.
    let needs = |f: &str| rwsgi::bundle::elf::read(&b.join(f)).unwrap().needed;
    assert!(
        needs("librwsgi.so")
            .iter()
            .any(|n| n.starts_with("libpython3"))
    );
    assert!(!needs("rwsgi").iter().any(|n| n.starts_with("libpython")));
}

#[test]
fn the_bundle_serves_as_nobody_over_http_and_through_nginx_and_scales() {
    // Bundled as the Dockerfile bundles the Flask example.
    let b = bundle(&[
        "--exclude-module",
        "_ssl",
        "--exclude-module",
        "_hashlib",
        "--zip",
    ]);
    assert!(!b.join("usr/lib/x86_64-linux-gnu/libcrypto.so.3").exists());
    let s = start(
        &b,
        &[
            "--processes",
            "4",
            "--cheaper",
            "1",
            "--cheaper-algo",
            "manual",
            "--master-fifo",
            "/tmp/fifo",
            "--warmup-url",
            "/",
        ],
    );
    assert!(s.logged("warm-up GET / -> 200 OK"));
    let r = get(s.http.unwrap(), "/");
    assert_eq!((r.status, &r.body[..]), (200, &b"Hello, World!"[..]));
    // Through the real nginx outside the chroot, on the bundle's unix socket.
    let n = start_nginx_for(&s, &b.join("tmp/app.sock"));
    let r = get(([127, 0, 0, 1], n.port).into(), "/");
    assert_eq!((r.status, &r.body[..]), (200, &b"Hello, World!"[..]));
    // Scales: one more worker through the master FIFO.
    s.wait_event("fifo", Duration::from_secs(5));
    std::fs::write(b.join("tmp/fifo"), "+").unwrap();
    s.wait_events("spawned", 2, Duration::from_secs(10));
    // Every process runs as 65534.
    let mut pids = vec![i64::from(s.pid())];
    pids.extend(
        s.events("prototype_spawned")
            .iter()
            .map(|e| e["pid"].as_i64().unwrap()),
    );
    pids.extend(
        s.events("spawned")
            .iter()
            .map(|e| e["pid"].as_i64().unwrap()),
    );
    assert_eq!(pids.len(), 4);
    // The master and the prototype gave back their start-up mappings
    // (`/proc` is there, as in a container).
    let released = s.events("startup_pages_released");
    assert_eq!(released.len(), 2, "{released:?}");
    assert!(released.iter().all(|e| e["bytes"].as_u64().unwrap() > 0));
    for pid in pids {
        // unshare and chroot exec rwsgi, so the master's pid is the child's.
        assert_eq!(uid_of(pid), 65534, "pid {pid}");
    }
}

#[test]
fn a_module_the_trace_missed_fails_clearly_and_can_be_included() {
    let b = bundle(&[]);
    let s = start(&b, &[]);
    assert_eq!(get(s.http.unwrap(), "/").status, 200);
    assert_eq!(get(s.http.unwrap(), "/lazy").status, 500);
    s.wait_logged("No module named 'fractions'", Duration::from_secs(5));
    drop(s);
    for extra in [
        &["--include-module", "fractions"][..],
        &["--stdlib", "full"][..],
        &["--stdlib", "full", "--zip"][..],
    ] {
        let b = bundle(extra);
        let s = start(&b, &[]);
        let r = get(s.http.unwrap(), "/lazy");
        assert_eq!(
            (r.status, &r.body[..]),
            (200, &b"1/3"[..]),
            "with {extra:?}"
        );
    }
}
