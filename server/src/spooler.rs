//! A spooler process (uWSGI's `core/spooler.c` `spooler()` and
//! `spooler_manage_task`): forked by the prototype beside the workers, it
//! runs the tasks spooled to its directory (`spool.rs`) through the app's
//! `uwsgi.spooler` function, lowest CPU priority, one at a time.
//!
//! It scans its directory when a task arrives (inotify: a task is renamed
//! into place) and every `spooler-frequency` seconds (for tasks whose `at`
//! has come, and those to retry). For each task: skip it until its `at`;
//! take an exclusive `flock` (another process may hold it); read it (a
//! malformed one is logged and removed, as uWSGI destroys it); call the
//! function with the task's dict; then, as uWSGI does: `SPOOL_OK` (-2)
//! removes the task, `SPOOL_IGNORE` (0) leaves it, anything else (including
//! `SPOOL_RETRY`, an exception or a value that is not an int) leaves it to
//! run again at the next scan. `spooler-harakiri` kills a task that runs
//! too long (uWSGI's line; the prototype respawns the process),
//! `spooler-max-tasks` recycles the process.

use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use pyo3::prelude::*;

use crate::config::spooler::Spooling;
use crate::uwsgi_signal::HelperInbox;
use crate::worker::spool_api;

/// uWSGI's `SPOOL_OK`: the task is done.
const SPOOL_OK: i64 = -2;

/// When the running task is killed (unix seconds; 0: none).
static DEADLINE: AtomicU64 = AtomicU64::new(0);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What became of one task.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Not run (not due, taken by another process, gone).
    Skipped,
    /// Run; the task stays (retry or ignore).
    Kept,
    /// Run and removed, or removed as malformed.
    Removed,
}

/// Runs spooler process `index` until it is recycled; returns the exit
/// code. The app is imported (the prototype's, or loaded here with
/// `lazy-apps`).
pub fn run(s: &Spooling, index: usize) -> i32 {
    let Some(sp) = spool_api::spoolers() else {
        return 1;
    };
    let dir = sp.dir_of(index).to_path_buf();
    // SAFETY: setpriority on this process; no memory is passed.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
    }
    if s.harakiri > 0 {
        start_watchdog();
    }
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
        .inspect_err(|e| tracing::warn!(event = "spooler_inotify_failed", cause = %e, "the spooler scans every spooler-frequency seconds only"))
        .ok();
    let watch = |p: &Path| {
        if let Some(i) = &inotify {
            let _ = i.add_watch(
                p,
                AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CLOSE_WRITE,
            );
        }
    };
    watch(&dir);
    let pid = std::process::id();
    let mut done: u64 = 0;
    loop {
        crate::worker::uwsgi_module::follow_log();
        for task in crate::spool::tasks(&dir) {
            if let Some(parent) = task.parent().filter(|p| *p != dir) {
                watch(parent);
            }
            if manage(s, index, &dir, &task) != Outcome::Skipped {
                done += 1;
            }
            if s.max_tasks > 0 && done >= s.max_tasks {
                tracing::info!(event = "spooler_recycle", dir = %dir.display(), pid,
                    "[spooler {} pid: {pid}] maximum number of tasks reached ({}) recycling ...",
                    dir.display(), s.max_tasks);
                return 0;
            }
        }
        wait(inotify.as_ref(), Duration::from_secs(sp.frequency()));
    }
}

/// Waits for a task to arrive, at most `limit`; a uWSGI signal for the
/// spooler (`spooler` target) runs its handler meanwhile.
fn wait(inotify: Option<&Inotify>, limit: Duration) {
    let signals = crate::worker::signals::inboxes(|i| i == HelperInbox::Spoolers);
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        let ms = u16::try_from(left.as_millis().clamp(1, 60_000)).unwrap_or(u16::MAX);
        let mut fds: Vec<PollFd<'_>> = inotify
            .map(|i| i.as_fd())
            .into_iter()
            .chain(signals.iter().copied())
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
            .collect();
        let polled = Python::attach(|py| py.detach(|| poll(&mut fds, PollTimeout::from(ms))));
        match polled {
            Ok(n) if n > 0 => {}
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        let first_signal = usize::from(inotify.is_some());
        for (k, fd) in signals.iter().enumerate() {
            if ready[first_signal + k] {
                let who = format!("spooler {}", std::process::id());
                Python::attach(|py| crate::worker::signals::drain_inbox(py, *fd, &who));
            }
        }
        if let Some(i) = inotify.filter(|_| ready[0]) {
            // Drain the events; what they name is found by the scan.
            while let Ok(ev) = i.read_events() {
                if ev.is_empty() {
                    break;
                }
            }
            return;
        }
    }
}

/// Runs one task if it is due and free.
fn manage(s: &Spooling, index: usize, dir: &Path, task: &Path) -> Outcome {
    let Ok(meta) = std::fs::symlink_metadata(task) else {
        return Outcome::Skipped;
    };
    // A task for later (`at`).
    let due = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .is_none_or(|m| m.as_secs() <= unix_now());
    if !due || !meta.is_file() {
        return Outcome::Skipped;
    }
    // Read-only: closing it must not look like a new task to inotify.
    let Ok(file) = std::fs::File::open(task) else {
        return Outcome::Skipped;
    };
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Outcome::Skipped;
    }
    // Another process may have run and removed it while we waited.
    let still_there = std::fs::metadata(task).is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        file.metadata()
            .is_ok_and(|f| f.ino() == m.ino() && f.nlink() > 0)
    });
    if !still_there {
        return Outcome::Skipped;
    }
    let decoded = spool_api::read_task(task)
        .ok_or_else(|| "unreadable or too large".to_owned())
        .and_then(|d| crate::spool::decode(&d));
    let (vars, body) = match decoded {
        Ok(t) => t,
        Err(why) => {
            tracing::error!(event = "spooler_bad_task", task = %task.display(), "[spooler] removing the malformed task {}: {why}", task.display());
            let _ = std::fs::remove_file(task);
            return Outcome::Removed;
        }
    };
    let pid = std::process::id();
    let name = task
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !s.quiet {
        tracing::info!(event = "spooler_task", dir = %dir.display(), pid, task = %name,
            "[spooler {} pid: {pid}] managing request {name} ...", dir.display());
    }
    if let Some(d) = &s.chdir {
        if let Err(e) = std::env::set_current_dir(d) {
            tracing::error!(event = "chdir_failed", cause = %e, "chdir() to {} failed", d.display());
        }
    }
    let started = Instant::now();
    if s.harakiri > 0 {
        DEADLINE.store(unix_now() + s.harakiri, Ordering::Relaxed);
    }
    let counters = spool_api::spoolers().map(|sp| &sp.counters);
    if let Some(c) = counters {
        c.set_running(index, true);
    }
    let ret = Python::attach(|py| call(py, task, &vars, &body));
    DEADLINE.store(0, Ordering::Relaxed);
    if let Some(c) = counters {
        c.set_running(index, false);
        c.add_task(index);
    }
    // The lock is held until the task is removed: another process that
    // takes it next finds the file gone (`still_there`), never runs it again.
    let outcome = match ret {
        None => {
            tracing::error!(
                event = "spooler_no_function",
                "unable to find the spooler function, have you loaded it into the spooler process ?"
            );
            Outcome::Kept
        }
        Some(SPOOL_OK) => {
            if !s.quiet {
                tracing::info!(event = "spooler_done", dir = %dir.display(), pid, task = %name,
                    "[spooler {} pid: {pid}] done with task {name} after {} seconds",
                    dir.display(), started.elapsed().as_secs());
            }
            if let Err(e) = std::fs::remove_file(task) {
                tracing::error!(event = "spooler_unlink_failed", cause = %e, "[spooler] cannot remove {}: {e}", task.display());
            }
            Outcome::Removed
        }
        // SPOOL_IGNORE (0), SPOOL_RETRY (-1) and anything else.
        Some(_) => Outcome::Kept,
    };
    drop(file);
    outcome
}

/// Calls `uwsgi.spooler(task)`: its int result; -1 (retry) for an
/// exception or another type; `None` when the app set no function.
fn call(py: Python<'_>, task: &Path, vars: &[(Vec<u8>, Vec<u8>)], body: &[u8]) -> Option<i64> {
    let func = py
        .import("uwsgi")
        .and_then(|m| m.getattr("spooler"))
        .ok()
        .filter(|f| f.is_callable())?;
    let dict = match spool_api::task_dict(py, task, vars, body) {
        Ok(d) => d,
        Err(e) => {
            e.print(py);
            return Some(-1);
        }
    };
    match func.call1((dict,)) {
        Ok(r) => Some(r.extract::<i64>().unwrap_or(-1)),
        Err(e) => {
            e.print(py);
            Some(-1)
        }
    }
}

/// Kills this process when a task outlives `spooler-harakiri`, with
/// uWSGI's line; the prototype starts another.
fn start_watchdog() {
    let spawned = std::thread::Builder::new()
        .name("rwsgi-spooler-harakiri".into())
        .spawn(|| {
            loop {
                std::thread::sleep(Duration::from_millis(250));
                let d = DEADLINE.load(Ordering::Relaxed);
                if d > 0 && unix_now() >= d {
                    tracing::error!(
                        event = "spooler_harakiri",
                        pid = std::process::id(),
                        "*** HARAKIRI ON THE SPOOLER (pid: {}) ***",
                        std::process::id()
                    );
                    // SAFETY: kill(2) of this process.
                    unsafe {
                        libc::kill(libc::getpid(), libc::SIGKILL);
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(event = "thread_failed", cause = %e, "no spooler-harakiri watchdog");
    }
}
