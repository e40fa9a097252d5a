//! The prototype (a zygote): the one process that forks. It initialises
//! CPython, imports the app once (unless `lazy-apps`), freezes the garbage
//! collector so workers keep sharing its pages, and then forks a worker for
//! each `Spawn` the master sends, reporting pids and exits back.
//!
//! **Architecture invariant:** `fork()` happens here and nowhere else, in a
//! process that has one thread (checked before every fork; the app's import
//! may have started threads, which is logged). CPython's fork hooks
//! (`PyOS_BeforeFork`, `PyOS_AfterFork_Child`, `PyOS_AfterFork_Parent`) are
//! always called.
//!
//! The prototype never serves requests and never touches listeners. It exits
//! when the master closes the control socket; its workers exit on their own
//! when their channels close.

pub mod app;
pub mod autoreload;
pub mod entry;
pub mod helpers;
pub mod interp;
pub mod warmup;

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};
use pyo3::prelude::*;

use crate::config::Config;
use crate::control::{self, Received};
use crate::ipc::Control;
use crate::worker::apps::Apps;
use crate::worker::{self, wsgi};

/// uWSGI's exit code when `need-app` is set and the app did not load.
pub const EXIT_NO_APP: i32 = 22;

/// Runs the prototype role; returns the process exit code (in a worker,
/// the worker's exit code).
pub fn main(config: &Config, control: OwnedFd) -> i32 {
    if let Some(dir) = &config.chdir {
        if let Err(e) = std::env::set_current_dir(dir) {
            tracing::error!(event = "chdir_failed", cause = %e, "chdir() to {} failed", dir.display());
            return 1;
        }
        tracing::info!(event = "chdir", "chdir() to {}", dir.display());
    }
    if let Err(e) = interp::init(config.home.as_deref(), config.optimize) {
        tracing::error!(event = "python_init_failed", cause = %e, "python initialisation failed");
        return 1;
    }
    let st = static_environ(config);
    let loaded = Python::attach(|py| {
        if let Err(e) = interp::setup_path(py, &config.pythonpath) {
            e.print(py);
        }
        if let Err(e) = worker::sharedarea::init(&config.sharedareas) {
            tracing::error!(event = "sharedarea_failed", cause = %e, "cannot make the shared areas: {e}");
            return None;
        }
        if let Err(e) = crate::cache::attach_all(&config.caches) {
            tracing::error!(event = "cache_failed", cause = %e, "cannot map the caches: {e}");
            return None;
        }
        // Before the app's import, which may `import uwsgi`.
        if let Err(e) = worker::uwsgi_module::install(py, config) {
            e.print(py);
        }
        if let Err(e) = worker::spool_api::init(&config.spooling) {
            tracing::error!(event = "spooler_failed", cause = %e, "[spooler directory] {e}");
            return None;
        }
        if let Err(e) = worker::mule_api::init(&config.mules) {
            tracing::error!(event = "mules_failed", cause = %e, "cannot make the mule queues: {e}");
            return None;
        }
        let inboxes = worker::signals::init_inboxes(
            !config.spooling.dirs.is_empty(),
            worker::mule_api::count(),
            config.mules.farms.len(),
        );
        let inboxes = match inboxes {
            Ok(i) => i,
            Err(e) => {
                tracing::error!(event = "signals_failed", cause = %e, "cannot make the signal inboxes: {e}");
                return None;
            }
        };
        app::import_all(py, &config.shared_imports);
        // What every worker's requests need, made once here and shared.
        let mut interned = wsgi::Interned::new(py, &st)
            .inspect_err(|e| e.print(py))
            .ok();
        if config.lazy_apps {
            if !config.warmup_urls.is_empty() {
                tracing::warn!(
                    event = "warmup_skipped",
                    "warmup-url is ignored with lazy-apps: each worker loads its own app"
                );
            }
            return Some((Apps::default(), interned, inboxes));
        }
        let app = load_apps(py, config);
        if let (false, Some(interned)) = (app.is_empty(), &mut interned) {
            warmup::run(
                py,
                &app,
                interned,
                &config.warmup_urls,
                config.warmup_requests,
            );
        }
        if config.gc_freeze {
            if let Err(e) = py.import("gc").and_then(|gc| gc.call_method0("freeze")) {
                e.print(py);
            }
        }
        Some((app, interned, inboxes))
    });
    let Some((app, interned, inboxes)) = loaded else {
        return 1;
    };
    // The master's ends of the helpers' signal inboxes, before Ready.
    for (inbox, fd) in inboxes {
        let (kind, id) = inbox.to_words();
        let msg = Control::HelperInbox { kind, id };
        if let Err(e) = control::send(control.as_fd(), msg, &[fd.as_raw_fd()]) {
            tracing::error!(event = "control_failed", cause = %e, "cannot reach the master");
            return 1;
        }
    }
    crate::trim::release_and_log();
    let ok = config.lazy_apps || !app.is_empty();
    if let Err(e) = control::send(control.as_fd(), Control::Ready { ok }, &[]) {
        tracing::error!(event = "control_failed", cause = %e, "cannot reach the master");
        return 1;
    }
    if !ok && config.need_app {
        return EXIT_NO_APP;
    }
    // After the app's import (which may have imported `signal`, whose
    // SIGINT handler raises KeyboardInterrupt): every forked process has it.
    shield_from_stop_signals();
    match serve_spawns(&control, autoreload::Watch::new(config.py_autoreload)) {
        Exit::Done(code) => code,
        Exit::Worker {
            slot,
            first,
            streams,
        } => {
            drop(control);
            run_worker(config, (slot, first), streams, app, interned)
        }
        Exit::Helper { helper, parent } => {
            drop(control);
            run_helper(config, helper, parent)
        }
    }
}

/// A helper process's life after fork (`spooler.rs`, `mule.rs`).
fn run_helper(config: &Config, helper: helpers::Helper, parent: i32) -> i32 {
    helpers::tie_to_parent(parent);
    crate::proctitle::set_child(&match helper {
        helpers::Helper::Spooler(_) => "uWSGI spooler".to_owned(),
        helpers::Helper::Mule(id) => format!("uWSGI mule {id}"),
    });
    match helper {
        helpers::Helper::Spooler(index) => worker::spool_api::become_spooler(index),
        helpers::Helper::Mule(id) => worker::mule_api::become_mule(id),
    }
    Python::attach(|py| {
        // uWSGI runs the post-fork hooks in its spoolers and mules too.
        worker::uwsgi_module::after_fork(py, 0);
        if config.lazy_apps {
            // The app sets `uwsgi.spooler` or `mule_msg_hook` when imported.
            drop(load_apps(py, config));
        }
        if matches!(helper, helpers::Helper::Spooler(_)) {
            app::import_all(py, &config.spooling.imports);
        }
    });
    shield_from_stop_signals();
    match helper {
        helpers::Helper::Spooler(index) => crate::spooler::run(&config.spooling, index),
        helpers::Helper::Mule(id) => crate::mule::run(id),
    }
}

/// Imports the `import` modules, then loads the app (`module`/`wsgi-file`/
/// `paste`) and the `mount`ed ones, logging as uWSGI does (an app that
/// fails to load is logged and left out), then changes to `chdir2`.
fn load_apps(py: Python<'_>, config: &Config) -> Apps {
    app::import_all(py, &config.imports);
    let mut apps = Apps {
        mounted: Vec::new(),
        manage_script_name: config.manage_script_name,
    };
    let specs = config
        .app
        .iter()
        .map(|a| ("", a))
        .chain(config.mounts.iter().map(|(m, a)| (m.as_str(), a)));
    for (mountpoint, spec) in specs {
        let started = Instant::now();
        match app::load(py, spec) {
            Ok(a) => {
                let id = apps.mounted.len();
                let pid = std::process::id();
                tracing::info!(
                    event = "app_ready",
                    app = %app::describe(spec),
                    mountpoint,
                    pid,
                    "WSGI app {id} (mountpoint='{mountpoint}') ready in {} seconds on interpreter 0 pid: {pid}{}",
                    started.elapsed().as_secs(),
                    if id == 0 { " (default app)" } else { "" }
                );
                apps.mounted.push((mountpoint.to_owned(), a));
            }
            Err(e) => e.print(py),
        }
    }
    if let Some(dir) = &config.chdir2 {
        match std::env::set_current_dir(dir) {
            Ok(()) => tracing::info!(event = "chdir", "chdir() to {}", dir.display()),
            Err(e) => {
                tracing::error!(event = "chdir_failed", cause = %e, "chdir() to {} failed", dir.display())
            }
        }
    }
    if apps.is_empty() && (config.app.is_some() || !config.mounts.is_empty()) {
        if config.need_app {
            tracing::error!(event = "no_app", "*** no app loaded. GAME OVER ***");
        } else {
            tracing::error!(
                event = "no_app",
                "*** no app loaded. going in full dynamic mode ***"
            );
        }
    }
    apps
}

/// How the spawn loop ended.
enum Exit {
    /// The prototype is done (the master went away).
    Done(i32),
    /// This process is a newly forked spooler process or mule.
    Helper {
        /// Which.
        helper: helpers::Helper,
        /// The prototype's pid.
        parent: i32,
    },
    /// This process is a newly forked worker, with one channel per thread.
    Worker {
        /// Its slot.
        slot: u32,
        /// The slot's first worker from this prototype (not a respawn).
        first: bool,
        /// One channel per thread.
        streams: Vec<UnixStream>,
    },
}

/// Number of threads of this process, from /proc.
fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(1)
}

fn serve_spawns(control: &OwnedFd, mut watch: Option<autoreload::Watch>) -> Exit {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    if let Err(e) = mask.thread_block() {
        tracing::error!(event = "sigmask_failed", cause = %e, "cannot block SIGCHLD");
        return Exit::Done(1);
    }
    let sfd = match SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(event = "signalfd_failed", cause = %e, "cannot watch children");
            return Exit::Done(1);
        }
    };
    let mut slots: HashMap<i32, u32> = HashMap::new();
    let mut helper_procs = helpers::Procs::new();
    // Slots forked before, for the `-once` accepting hooks.
    let mut forked: std::collections::HashSet<u32> = std::collections::HashSet::new();
    let threads_warned = &mut false;
    loop {
        for helper in helper_procs.take_due(Instant::now()) {
            let parent = std::process::id() as i32;
            match fork_worker() {
                Ok(ForkResult::Child) => {
                    let _ = mask.thread_unblock();
                    drop(sfd);
                    return Exit::Helper { helper, parent };
                }
                Ok(ForkResult::Parent { child }) => helper_procs.spawned(helper, child.as_raw()),
                Err(e) => {
                    tracing::error!(event = "fork_failed", cause = %e, ?helper, "fork() of a helper process failed");
                    helper_procs.retry(helper);
                }
            }
        }
        let mut fds = [
            PollFd::new(control.as_fd(), PollFlags::POLLIN),
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
        ];
        let helper_ms = helper_procs.next_due().map(|t| {
            let ms = t.saturating_duration_since(Instant::now()).as_millis() + 1;
            u16::try_from(ms).unwrap_or(u16::MAX)
        });
        let watch_ms = watch.as_ref().map(|w| w.wait_ms());
        let wait = match (watch_ms, helper_ms) {
            (None, None) => PollTimeout::NONE,
            (a, b) => PollTimeout::from(a.into_iter().chain(b).min().unwrap_or(u16::MAX)),
        };
        match poll(&mut fds, wait) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                tracing::error!(event = "poll_failed", cause = %e, "prototype poll failed");
                return Exit::Done(1);
            }
        }
        if let Some(changed) = watch.as_mut().and_then(|w| w.check()) {
            tracing::info!(
                event = "autoreload",
                file = %changed.display(),
                "[uwsgi-python-reloader] module/file {} has been modified",
                changed.display()
            );
            // Once asked, the master replaces this prototype: no need to
            // look again.
            watch = None;
            if control::send(control.as_fd(), Control::Reload, &[]).is_err() {
                return Exit::Done(0);
            }
        }
        let child_ready = fds[1].revents().is_some_and(|r| !r.is_empty());
        let control_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        if child_ready {
            while let Ok(Some(_)) = sfd.read_signal() {}
            reap(control, &mut slots, &mut helper_procs);
        }
        if !control_ready {
            continue;
        }
        match control::recv(control.as_fd(), false) {
            Ok(Received::Message(Control::Spawn { slot, threads }, fds))
                if !fds.is_empty() && fds.len() == threads as usize =>
            {
                if thread_count() > 1 && !*threads_warned {
                    *threads_warned = true;
                    tracing::warn!(
                        event = "threads_before_fork",
                        threads = thread_count(),
                        "the app started threads while loading; they do not exist in the forked workers"
                    );
                }
                let first = forked.insert(slot);
                match fork_worker() {
                    Ok(ForkResult::Child) => {
                        let _ = mask.thread_unblock();
                        drop(sfd);
                        return Exit::Worker {
                            slot,
                            first,
                            streams: fds.into_iter().map(UnixStream::from).collect(),
                        };
                    }
                    Ok(ForkResult::Parent { child }) => {
                        slots.insert(child.as_raw(), slot);
                        drop(fds);
                        let msg = Control::Spawned {
                            slot,
                            pid: child.as_raw(),
                        };
                        if control::send(control.as_fd(), msg, &[]).is_err() {
                            return Exit::Done(0);
                        }
                    }
                    Err(e) => {
                        tracing::error!(event = "fork_failed", cause = %e, slot, "fork() failed");
                        let msg = Control::Exited {
                            slot,
                            pid: 0,
                            status: 1,
                        };
                        if control::send(control.as_fd(), msg, &[]).is_err() {
                            return Exit::Done(0);
                        }
                    }
                }
            }
            Ok(Received::Closed) => return Exit::Done(0),
            Ok(other) => {
                tracing::error!(
                    event = "control_garbage",
                    ?other,
                    "unexpected control message"
                );
            }
            Err(nix::errno::Errno::EINTR) => {}
            // The master closed the control socket with a message unread.
            Err(nix::errno::Errno::ECONNRESET) => return Exit::Done(0),
            Err(e) => {
                tracing::error!(event = "control_failed", cause = %e, "control socket failed");
                return Exit::Done(1);
            }
        }
    }
}

/// Reaps exited workers and reports them; helper processes (spoolers,
/// mules) are started again.
fn reap(control: &OwnedFd, slots: &mut HashMap<i32, u32>, helpers: &mut helpers::Procs) {
    loop {
        let (pid, status) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid, code),
            Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, -(sig as i32)),
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => continue,
        };
        if helpers.exited(pid.as_raw()) {
            continue;
        }
        let Some(slot) = slots.remove(&pid.as_raw()) else {
            continue;
        };
        let msg = Control::Exited {
            slot,
            pid: pid.as_raw(),
            status,
        };
        if control::send(control.as_fd(), msg, &[]).is_err() {
            return;
        }
    }
}

/// SIGINT, SIGQUIT and SIGTERM sent to every process (`killall -INT
/// rwsgi`, `systemctl stop`, which signals the whole control group) stop
/// the instance through the master, which drains the requests in flight:
/// the prototype and its children catch them with a handler that does
/// nothing, so a worker neither dies mid-request nor raises
/// KeyboardInterrupt in the app. A signal the app set its own handler for
/// (at import) keeps it, and one it sets later replaces ours. A handler,
/// unlike SIG_IGN, is reset by `exec`: the app's subprocesses get the
/// default.
fn shield_from_stop_signals() {
    extern "C" fn nothing(_: libc::c_int) {}
    let action = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(nothing),
        nix::sys::signal::SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGQUIT, Signal::SIGTERM] {
        if Python::attach(|py| app_handles(py, sig as i32)) {
            continue;
        }
        // SAFETY: the handler is async-signal-safe (it does nothing).
        if let Err(e) = unsafe { nix::sys::signal::sigaction(sig, &action) } {
            tracing::warn!(event = "sigaction_failed", cause = %e, ?sig, "cannot set a signal handler");
        }
    }
}

/// Whether the app set its own handler for `sig` (not Python's default
/// SIGINT handler, not SIG_DFL).
fn app_handles(py: Python<'_>, sig: i32) -> bool {
    let check = || -> PyResult<bool> {
        let signal = py.import("signal")?;
        let current = signal.call_method1("getsignal", (sig,))?;
        if current.is_none() {
            return Ok(false);
        }
        let default = signal.getattr("default_int_handler")?;
        let dfl = signal.getattr("SIG_DFL")?;
        Ok(!(current.is(&default) || current.eq(&dfl)?))
    };
    check().unwrap_or(false)
}

/// The only fork of the system.
fn fork_worker() -> nix::Result<ForkResult> {
    Python::attach(|_py| {
        // SAFETY: PyOS_BeforeFork is called with the GIL held, as required,
        // and is paired with exactly one of the AfterFork calls below in each
        // process. fork() is called from a process with one thread (the
        // prototype runs no threads of its own; app threads were warned
        // about), so the child may run arbitrary code.
        unsafe {
            pyo3::ffi::PyOS_BeforeFork();
            let res = fork();
            match res {
                Ok(ForkResult::Child) => pyo3::ffi::PyOS_AfterFork_Child(),
                _ => pyo3::ffi::PyOS_AfterFork_Parent(),
            }
            res
        }
    })
}

/// The worker's life after fork: `worker` is its slot and whether it is
/// the slot's first worker.
fn run_worker(
    config: &Config,
    worker: (u32, bool),
    streams: Vec<UnixStream>,
    app: Apps,
    interned: Option<wsgi::Interned>,
) -> i32 {
    let (slot, first) = worker;
    crate::proctitle::set_child(&format!("uWSGI worker {slot}"));
    // uWSGI calls the post-fork hook before a lazy app loads.
    Python::attach(|py| worker::uwsgi_module::after_fork(py, slot));
    let app = if config.lazy_apps {
        let app = Python::attach(|py| load_apps(py, config));
        shield_from_stop_signals();
        app
    } else {
        app
    };
    if app.is_empty() && config.lazy_apps && config.need_app {
        tracing::error!(
            event = "no_app",
            "OOPS ! failed loading app in worker {slot} (pid {})",
            std::process::id()
        );
        return EXIT_NO_APP;
    }
    // The accepting hooks, before the first request. A failure stops the
    // instance, as in uWSGI: the master is asked to shut down.
    let hooks_ok = crate::hooks::Phase::accepting(slot, first)
        .all(|phase| py_detached(|| crate::hooks::run(&config.hooks, phase)));
    if !hooks_ok {
        let master = worker::uwsgi_module::master_pid();
        if master > 1 {
            let master = nix::unistd::Pid::from_raw(master);
            let _ = nix::sys::signal::kill(master, nix::sys::signal::Signal::SIGINT);
        }
        return 1;
    }
    let recycler = worker::recycle::Recycler::new(&config.recycle, slot);
    let stack = config.threads_stacksize.map(|kib| kib * 1024);
    let code = worker::serve(
        stack,
        streams,
        app,
        interned,
        &static_environ(config),
        &recycler,
    );
    if code == worker::EXIT_STOPPED {
        Python::attach(|py| {
            worker::uwsgi_module::at_exit(py, config.skip_atexit, config.worker_reload_mercy)
        });
    }
    code
}

/// Runs `f` with the GIL released (Python threads the app started keep
/// running while a hook waits).
fn py_detached<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    Python::attach(|py| py.detach(f))
}

/// The environ values that follow from the configuration.
fn static_environ(config: &Config) -> wsgi::Static {
    wsgi::Static {
        multithread: config.threads > 1,
        multiprocess: config.processes > 1,
        file_wrapper: config.file_wrapper,
    }
}
