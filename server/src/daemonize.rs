//! `daemonize = LOGFILE` and `daemonize2 = LOGFILE` (uWSGI `core/utils.c`
//! `daemonize`): the instance detaches from the terminal and logs to
//! LOGFILE (unless `logto` names another target).
//!
//! The command started by the user does not fork (the master never does,
//! ARCHITECTURE "fork happens in one place"): it checks the
//! configuration, opens the log, and starts the same binary with the same
//! arguments in a new session, stdin from `/dev/null` and its output in
//! the log, with [`FD_ENV`] naming the write end of a pipe. That process
//! is the daemon's master (the pidfile holds its pid). With `daemonize`
//! the command exits at once, as uWSGI's does. uWSGI's `daemonize2`
//! detaches only after the app is loaded, so a broken app shows on the
//! terminal; here the command waits for the daemon's workers to be ready
//! and exits 0, or 1 with a line naming the log if the daemon stopped
//! first (or is not ready within a minute), so a service manager sees the
//! failure in the exit status.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// The environment variable that makes a process the daemon: the number
/// of the pipe's write end it inherited.
pub const FD_ENV: &str = "RWSGI_DAEMON_FD";

/// The daemon's end of the pipe its starter reads.
static READY: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// Whether this process is the daemon already; if so, takes the pipe from
/// the environment (so children do not inherit either).
///
/// # Safety
/// The process must have one thread (the environment is changed).
pub unsafe fn is_daemon() -> bool {
    let Some(fd) = std::env::var(FD_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return false;
    };
    // SAFETY: one thread (the caller's contract).
    unsafe { std::env::remove_var(FD_ENV) };
    // SAFETY: the starter set the variable to the pipe's end it left open
    // for us; nothing else here owns it. Close-on-exec keeps it from the
    // prototype and every other child.
    unsafe {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        if let Ok(mut r) = READY.lock() {
            *r = Some(OwnedFd::from_raw_fd(fd));
        }
    }
    true
}

/// Starts the daemon: this binary with `args`, in a new session, its
/// output in `log` (`None`: nowhere until it opens the log itself, as with
/// `logto2`). Returns the command's exit code.
pub fn start(args: &[String], wait_ready: bool, log: Option<&str>, shown: &str) -> io::Result<u8> {
    // The log, opened once, for both stdout and stderr.
    let log_file = match log.filter(|l| crate::logfile::udp_address(l).is_none()) {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(path)
                .map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot open the log {path}: {e}"))
                })?,
        ),
        None => None,
    };
    let output = || -> io::Result<Stdio> {
        match &log_file {
            Some(f) => Ok(f.try_clone()?.into()),
            None => Ok(Stdio::null()),
        }
    };
    let (read_end, low) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // Above the standard descriptors (one of them may have been closed
    // when we were started), which the child's stdio replaces; the first
    // copy is closed, so the daemon's is the only write end left.
    let write_end = nix::fcntl::fcntl(&low, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))
        // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor we own.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })?;
    drop(low);
    let fd = write_end.as_raw_fd();
    let mut cmd = Command::new(crate::master::supervisor::self_exe()?);
    cmd.args(args)
        .env(FD_ENV, fd.to_string())
        .stdin(Stdio::null())
        .stdout(output()?)
        .stderr(output()?);
    // SAFETY: between fork and exec only async-signal-safe calls: setsid,
    // and clearing close-on-exec on the pipe's end the daemon keeps.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()?;
    drop(write_end);
    if !wait_ready {
        return Ok(0);
    }
    let mut fds = [nix::poll::PollFd::new(
        read_end.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    let waited = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(READY_WAIT_MS));
    if waited == Ok(0) {
        eprintln!(
            "rwsgi: the daemon's workers are not ready after {} s; it goes on starting, see {shown}",
            READY_WAIT_MS / 1000
        );
        return Ok(1);
    }
    let mut byte = [0u8; 1];
    let ready = std::fs::File::from(read_end).read(&mut byte).unwrap_or(0) == 1;
    if ready {
        Ok(0)
    } else {
        eprintln!("rwsgi: the daemon stopped before its workers were ready; see {shown}");
        Ok(1)
    }
}

/// How long `daemonize2`'s command waits for the workers (a big app's
/// import takes seconds; a service manager has its own limit too).
const READY_WAIT_MS: u16 = 60_000;

/// Tells a waiting starter the workers are ready (once; nothing when this
/// is not a daemon).
pub fn ready() {
    let fd = READY.lock().ok().and_then(|mut r| r.take());
    if let Some(fd) = fd {
        let _ = std::fs::File::from(fd).write_all(b"1");
    }
}
