//! The app's side of uWSGI signals (`uwsgi_signal.rs`): the `uwsgi`
//! module's `register_signal`, `signal`, `signal_registered`, `add_timer`,
//! `add_rb_timer`, `add_cron` and `add_file_monitor`
//! (`plugins/python/uwsgi_pymodule.c`, `core/signal.c`), and running a
//! handler when the master delivers a signal.
//!
//! Handlers live in the process that registered them. Registered while the
//! prototype imports the app (what `uwsgidecorators` does), they are
//! inherited by every worker; registered in a worker, they are that
//! worker's only, as in uWSGI. Each registration, timer, cron and file
//! monitor is also sent to the master, which keeps the table of targets
//! and raises the timers.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Mutex, OnceLock};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyModule;

use crate::uwsgi_signal::{HelperInbox, MAX_PATH, MAX_TARGET, MAX_TIMERS, Message, Target};

/// This process's end of the master's signal socket.
static SOCKET: OnceLock<OwnedFd> = OnceLock::new();
/// The last uWSGI signal this process handled (-1: none yet), for
/// `uwsgi.signal_received()`.
static RECEIVED: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// What this process registered.
struct Registry {
    handlers: Vec<Option<Py<PyAny>>>,
    /// Timers, rb-timers, crons and file monitors sent so far (each kind
    /// is bounded by `MAX_TIMERS`).
    counts: [usize; 4],
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    handlers: Vec::new(),
    counts: [0; 4],
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    // Every change is one assignment: a panic cannot leave it half done.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// The helper processes' signal inboxes, their readers' ends (made by the
/// prototype before it forks; every process inherits them).
static INBOXES: OnceLock<Vec<(HelperInbox, OwnedFd)>> = OnceLock::new();

/// Makes the signal inboxes of the helper processes: one for the spooler
/// processes (when there are any), one for every mule, one per mule and one
/// per farm. Returns the master's ends, to send it.
pub fn init_inboxes(
    spoolers: bool,
    mules: u32,
    farms: usize,
) -> std::io::Result<Vec<(HelperInbox, OwnedFd)>> {
    let mut wanted = Vec::new();
    if spoolers {
        wanted.push(HelperInbox::Spoolers);
    }
    if mules > 0 {
        wanted.push(HelperInbox::Mules);
        wanted.extend((1..=mules).map(HelperInbox::Mule));
        wanted.extend((1..=u32::try_from(farms).unwrap_or(0)).map(HelperInbox::Farm));
    }
    let mut master = Vec::new();
    let mut readers = Vec::new();
    for inbox in wanted {
        let (m, r) = crate::ipc::datagram_pair()?;
        master.push((inbox, m));
        readers.push((inbox, r));
    }
    let _ = INBOXES.set(readers);
    Ok(master)
}

/// The inboxes a helper reads, among `wanted`.
pub fn inboxes(wanted: impl Fn(HelperInbox) -> bool) -> Vec<std::os::fd::BorrowedFd<'static>> {
    use std::os::fd::AsFd;
    INBOXES
        .get()
        .map(|all| {
            all.iter()
                .filter(|(i, _)| wanted(*i))
                .map(|(_, fd)| fd.as_fd())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs the handlers of the signals waiting on `fd` (a helper's inbox,
/// found readable), as `who` ("spooler 123", "mule 2").
pub fn drain_inbox(py: Python<'_>, fd: std::os::fd::BorrowedFd<'_>, who: &str) {
    loop {
        let mut sig = [0u8; 1];
        // SAFETY: recv(2) of one byte into a buffer we own; the fd is
        // non-blocking and another helper may have emptied it.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                sig.as_mut_ptr().cast(),
                1,
                libc::MSG_DONTWAIT,
            )
        };
        if n != 1 {
            return;
        }
        run_as(py, sig[0], who);
    }
}

/// Gives this process the socket (the prototype, at start; workers inherit
/// it). Close-on-exec again: the app's subprocesses must not hold it.
pub fn set_socket(fd: OwnedFd) {
    // SAFETY: fcntl on an fd this process owns.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
    let _ = SOCKET.set(fd);
}

/// Sends one message to the master without blocking.
fn send(m: &Message) -> PyResult<()> {
    let Some(fd) = SOCKET.get() else {
        return Err(PyValueError::new_err(
            "uWSGI signals need the master: this process has no signal socket",
        ));
    };
    let data = m.encode();
    // SAFETY: send(2) on an fd we own, from a buffer we own, of its length.
    let n = unsafe {
        libc::send(
            fd.as_raw_fd(),
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n == data.len() as isize {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.kind() == std::io::ErrorKind::WouldBlock {
        tracing::error!(
            event = "signal_queue_full",
            "*** SIGNAL QUEUE IS FULL: the master is not keeping up ***"
        );
    }
    Err(PyValueError::new_err(format!(
        "cannot send to the master: {e}"
    )))
}

/// Raises uWSGI signal `sig` (a uwsgi packet with modifier1 110 that a
/// worker took itself); false when the master could not be told.
pub fn raise(sig: u8) -> bool {
    send(&Message::Raise(sig)).is_ok()
}

/// A signal number as uWSGI's `B` format takes it, but checked.
fn signum(num: i64) -> PyResult<u8> {
    u8::try_from(num)
        .map_err(|_| PyValueError::new_err(format!("signal number {num} is not in 0..=255")))
}

/// `uwsgi.register_signal(num, target, handler)`.
#[pyfunction]
fn register_signal(num: i64, target: &str, handler: Bound<'_, PyAny>) -> PyResult<()> {
    let sig = signum(num)?;
    if !handler.is_callable() {
        return Err(PyTypeError::new_err("the signal handler must be callable"));
    }
    if target.len() > MAX_TARGET {
        return Err(PyValueError::new_err(
            "unable to register signal: the target name is too long",
        ));
    }
    let target = Target::parse(target).map_err(PyValueError::new_err)?;
    let wid = super::uwsgi_module::worker_id();
    {
        let mut reg = registry();
        if reg.handlers.len() < 256 {
            reg.handlers.resize_with(256, || None);
        }
        if wid == 0 && reg.handlers[usize::from(sig)].is_some() {
            tracing::error!(
                event = "signal_reregistered",
                signum = sig,
                "[uwsgi-signal] you cannot re-register a signal as the master !!!"
            );
            return Err(PyValueError::new_err("unable to register signal"));
        }
        send(&Message::Register(sig, target.clone()))?;
        reg.handlers[usize::from(sig)] = Some(handler.unbind());
    }
    let shown = match target {
        Target::Any => "default, any worker".to_owned(),
        t => t.name(),
    };
    tracing::info!(
        event = "signal_registered",
        signum = sig,
        wid,
        "[uwsgi-signal] signum {sig} registered (wid: {wid} modifier1: 0 target: {shown})"
    );
    Ok(())
}

/// `uwsgi.signal_registered(num)`: `True`, or `None` (uWSGI's values).
#[pyfunction]
fn signal_registered(py: Python<'_>, num: i64) -> PyResult<Py<PyAny>> {
    let sig = signum(num)?;
    let known = registry()
        .handlers
        .get(usize::from(sig))
        .is_some_and(Option::is_some);
    Ok(if known {
        true.into_pyobject(py)?.to_owned().into_any().unbind()
    } else {
        py.None()
    })
}

/// `uwsgi.signal(num)`: the master routes it to its target. A remote node
/// (the second argument) is not supported.
#[pyfunction]
#[pyo3(signature = (num, remote=None))]
fn signal(num: i64, remote: Option<&str>) -> PyResult<()> {
    if let Some(node) = remote {
        return Err(PyValueError::new_err(format!(
            "uwsgi.signal to a remote node ({node}) is not available in rwsgi; \
             send a uwsgi packet with modifier1 110 to its socket"
        )));
    }
    send(&Message::Raise(signum(num)?))
}

/// Sends a timer-like message, within uWSGI's limit of each kind.
fn add(kind: usize, what: &str, m: Message) -> PyResult<()> {
    let mut reg = registry();
    if reg.counts[kind] >= MAX_TIMERS {
        tracing::error!(
            event = "signal_table_full",
            "you can register max {MAX_TIMERS} {what} !!!"
        );
        return Err(PyValueError::new_err(format!("unable to add {what}")));
    }
    send(&m)?;
    reg.counts[kind] += 1;
    Ok(())
}

/// `uwsgi.add_timer(num, seconds)`.
#[pyfunction]
fn add_timer(num: i64, secs: i64) -> PyResult<()> {
    let secs = positive(secs)?;
    add(0, "timers", Message::Timer(signum(num)?, secs))
}

/// `uwsgi.add_rb_timer(num, seconds, iterations=0)`.
#[pyfunction]
#[pyo3(signature = (num, secs, iterations=0))]
fn add_rb_timer(num: i64, secs: i64, iterations: i64) -> PyResult<()> {
    let secs = positive(secs)?;
    let iterations = u32::try_from(iterations.max(0)).unwrap_or(u32::MAX);
    add(
        1,
        "rb_timers",
        Message::RbTimer(signum(num)?, secs, iterations),
    )
}

/// `uwsgi.add_cron(num, minute, hour, day, month, weekday)`: -1 is any,
/// -N every N, as in `cron`. Returns `True`, as uWSGI does.
#[pyfunction]
fn add_cron(num: i64, minute: i32, hour: i32, day: i32, month: i32, week: i32) -> PyResult<bool> {
    add(
        2,
        "crons",
        Message::Cron(signum(num)?, [minute, hour, day, month, week]),
    )?;
    Ok(true)
}

/// `uwsgi.add_file_monitor(num, path)`.
#[pyfunction]
fn add_file_monitor(num: i64, path: &str) -> PyResult<()> {
    if path.is_empty() || path.len() > MAX_PATH {
        return Err(PyValueError::new_err(
            "uwsgi_add_file_monitor: invalid filename length",
        ));
    }
    // Relative to where the app runs, as the monitor's inotify watch is.
    let abs =
        std::path::absolute(path).map_err(|e| PyValueError::new_err(format!("{path}: {e}")))?;
    let abs = abs.to_string_lossy().into_owned();
    if abs.len() > MAX_PATH {
        return Err(PyValueError::new_err(
            "uwsgi_add_file_monitor: invalid filename length",
        ));
    }
    add(3, "file monitors", Message::FileMonitor(signum(num)?, abs))
}

/// `uwsgi.signal_wait(signum=None)` (uWSGI `py_uwsgi_signal_wait`): in a
/// mule or a spooler process, waits for a uWSGI signal meant for it, runs
/// its handler, and returns its number; with `signum`, signals handled
/// meanwhile do not end the wait. A worker runs its signals between
/// requests (the master leases it for each), so there it is refused.
#[pyfunction]
#[pyo3(signature = (signum = None))]
fn signal_wait(py: Python<'_>, signum: Option<u8>) -> PyResult<u8> {
    let mule = super::mule_api::mule_id();
    let (fds, who) = if mule > 0 {
        (
            super::mule_api::signal_inboxes(mule),
            format!("mule {mule}"),
        )
    } else if super::spool_api::is_spooler() {
        (
            inboxes(|i| i == HelperInbox::Spoolers),
            "the spooler".to_owned(),
        )
    } else {
        return Err(PyValueError::new_err(
            "uwsgi.signal_wait() waits in mules and spooler processes: a worker runs its signals \
             between requests (register a handler with uwsgi.register_signal)",
        ));
    };
    if fds.is_empty() {
        return Err(PyValueError::new_err(
            "this process has no uWSGI signal inbox",
        ));
    }
    loop {
        let Some(ready) = py.detach(|| super::mule_api::wait_readable(&fds, None)) else {
            return Err(PyValueError::new_err("waiting for a uWSGI signal failed"));
        };
        let mut sig = [0u8; 1];
        // SAFETY: recv(2) of one byte into a buffer we own; the inbox is
        // non-blocking, and another process of a farm may have taken it.
        let n = unsafe {
            libc::recv(
                fds[ready].as_raw_fd(),
                sig.as_mut_ptr().cast(),
                1,
                libc::MSG_DONTWAIT,
            )
        };
        if n != 1 {
            py.check_signals()?;
            continue;
        }
        run_as(py, sig[0], &who);
        if signum.is_none_or(|s| s == sig[0]) {
            return Ok(sig[0]);
        }
    }
}

/// `uwsgi.signal_received()`: the last uWSGI signal this process
/// handled, or -1.
#[pyfunction]
fn signal_received() -> i32 {
    RECEIVED.load(std::sync::atomic::Ordering::Relaxed)
}

fn positive(secs: i64) -> PyResult<u32> {
    u32::try_from(secs)
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| PyValueError::new_err(format!("invalid timer period: {secs}")))
}

/// Adds the functions to the `uwsgi` module.
pub fn add_to(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(signal_wait, m)?)?;
    m.add_function(wrap_pyfunction!(signal_received, m)?)?;
    m.add_function(wrap_pyfunction!(register_signal, m)?)?;
    m.add_function(wrap_pyfunction!(signal_registered, m)?)?;
    m.add_function(wrap_pyfunction!(signal, m)?)?;
    m.add_function(wrap_pyfunction!(add_timer, m)?)?;
    m.add_function(wrap_pyfunction!(add_rb_timer, m)?)?;
    m.add_function(wrap_pyfunction!(add_cron, m)?)?;
    m.add_function(wrap_pyfunction!(add_file_monitor, m)?)?;
    Ok(())
}

/// Runs the handler of `sig` in a worker (`run_as`).
pub fn run(py: Python<'_>, sig: u8) -> bool {
    let wid = super::uwsgi_module::worker_id();
    run_as(py, sig, &format!("worker {wid}"))
}

/// Runs the handler of `sig` with the signal number as its argument
/// (`uwsgi_python_signal_handler`). An exception is printed; false when
/// it raised or there is no handler here, with uWSGI's line naming `who`.
pub fn run_as(py: Python<'_>, sig: u8, who: &str) -> bool {
    RECEIVED.store(i32::from(sig), std::sync::atomic::Ordering::Relaxed);
    let handler = registry()
        .handlers
        .get(usize::from(sig))
        .and_then(|h| h.as_ref().map(|h| h.clone_ref(py)));
    let ok = match handler {
        Some(h) => match h.call1(py, (sig,)) {
            Ok(_) => true,
            Err(e) => {
                e.print(py);
                false
            }
        },
        None => false,
    };
    if !ok {
        tracing::error!(
            event = "signal_failed",
            signum = sig,
            "error managing signal {sig} on {who}"
        );
    }
    ok
}
