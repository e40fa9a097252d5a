//! The mules' part of the `uwsgi` module (`plugins/python/
//! uwsgi_pymodule.c` `py_uwsgi_mule_msg`, `py_uwsgi_mule_get_msg`,
//! `py_uwsgi_farm_msg`, …; `core/mule.c`): `mule_msg`, `mule_get_msg`,
//! `mule_id`, `in_farm`, `farm_msg`, `farm_get_msg`; and the message
//! queues the prototype makes before it forks.
//!
//! A queue is a datagram socketpair, as in uWSGI (`create_msg_pipe`):
//! senders write one end, mules read the other, one message per
//! datagram, so a message is never split or interleaved and each goes to
//! one reader. There is one queue every mule reads (`mule_msg(msg)`), one
//! per mule (`mule_msg(msg, N)`) and one per farm (`mule_msg(msg,
//! "farm")`, `farm_msg`), read by the farm's mules. A full queue is
//! uWSGI's `MULE MSG QUEUE IS FULL` line and `None`, never a wait.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyModule, PyString};

use crate::config::mules::Mules;

/// One queue: senders write `send`, mules read `recv` (non-blocking).
#[derive(Debug)]
struct Queue {
    send: OwnedFd,
    recv: OwnedFd,
}

impl Queue {
    fn new() -> std::io::Result<Queue> {
        let (send, recv) = crate::ipc::datagram_pair()?;
        Ok(Queue { send, recv })
    }
}

#[derive(Debug)]
struct State {
    any: Queue,
    mules: Vec<Queue>,
    farms: Vec<(crate::config::mules::Farm, Queue)>,
    patches: Vec<Option<String>>,
    msg_size: usize,
}

static STATE: OnceLock<State> = OnceLock::new();
/// This process's mule id (0: not a mule).
static MULE_ID: AtomicU32 = AtomicU32::new(0);

/// Makes the queues (the prototype, before it imports the app).
pub fn init(m: &Mules) -> std::io::Result<()> {
    if m.patches.is_empty() {
        return Ok(());
    }
    let mules = m
        .patches
        .iter()
        .map(|_| Queue::new())
        .collect::<std::io::Result<Vec<_>>>()?;
    let farms = m
        .farms
        .iter()
        .map(|f| Ok((f.clone(), Queue::new()?)))
        .collect::<std::io::Result<Vec<_>>>()?;
    for (f, _) in &farms {
        let ids: Vec<String> = f.mules.iter().map(u32::to_string).collect();
        tracing::info!(event = "farm_created", farm = %f.name,
            "created farm {} name: {} mules:{}", farms.iter().position(|(g, _)| g.name == f.name).map_or(0, |i| i + 1), f.name, ids.join(","));
    }
    let _ = STATE.set(State {
        any: Queue::new()?,
        mules,
        farms,
        patches: m.patches.clone(),
        msg_size: m.msg_size,
    });
    Ok(())
}

/// How many mules there are.
pub fn count() -> u32 {
    STATE
        .get()
        .map_or(0, |s| u32::try_from(s.mules.len()).unwrap_or(0))
}

/// Marks this process as mule `id` (after fork).
pub fn become_mule(id: u32) {
    MULE_ID.store(id, Ordering::Relaxed);
}

/// What mule `id` runs first, if anything.
pub fn patch(id: u32) -> Option<String> {
    let s = STATE.get()?;
    s.patches
        .get(usize::try_from(id).ok()?.checked_sub(1)?)?
        .clone()
}

/// The queues mule `id` reads: its own, the shared one, and its farms'.
fn inboxes(id: u32) -> Vec<BorrowedFd<'static>> {
    let Some(s) = STATE.get() else {
        return Vec::new();
    };
    let own = usize::try_from(id)
        .ok()
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| s.mules.get(i));
    own.into_iter()
        .chain(std::iter::once(&s.any))
        .chain(
            s.farms
                .iter()
                .filter(|(f, _)| f.mules.contains(&id))
                .map(|(_, q)| q),
        )
        .map(|q| q.recv.as_fd())
        .collect()
}

/// The farms (1-based) mule `id` is in.
pub fn farms_of(id: u32) -> Vec<u32> {
    STATE.get().map_or_else(Vec::new, |s| {
        s.farms
            .iter()
            .enumerate()
            .filter(|(_, (f, _))| f.mules.contains(&id))
            .filter_map(|(i, _)| u32::try_from(i + 1).ok())
            .collect()
    })
}

/// The signal inboxes mule `id` reads: every mule's, its own, its farms'.
pub fn signal_inboxes(id: u32) -> Vec<BorrowedFd<'static>> {
    use crate::uwsgi_signal::HelperInbox;
    let farms = farms_of(id);
    super::signals::inboxes(|i| match i {
        HelperInbox::Mules => true,
        HelperInbox::Mule(n) => n == id,
        HelperInbox::Farm(f) => farms.contains(&f),
        HelperInbox::Spoolers => false,
    })
}

/// What woke a mule.
#[derive(Debug)]
pub enum Incoming {
    /// A message.
    Message(Vec<u8>),
    /// A uWSGI signal was handled, or the wait timed out.
    Nothing,
}

/// The next message on `fds`, waiting at most `timeout` (`None`: for
/// ever). The signal inboxes `signals` are watched too: a signal's handler
/// runs, and then `Nothing` is returned, as uWSGI's `mule_get_msg` does.
fn receive_or_signal(
    py: Python<'_>,
    fds: &[BorrowedFd<'_>],
    signals: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
    max: usize,
) -> Incoming {
    let all: Vec<BorrowedFd<'_>> = fds.iter().chain(signals).copied().collect();
    let Some(ready) = py.detach(|| wait_readable(&all, timeout)) else {
        return Incoming::Nothing;
    };
    if ready >= fds.len() {
        let who = format!("mule {}", MULE_ID.load(Ordering::Relaxed));
        super::signals::drain_inbox(py, all[ready], &who);
        return Incoming::Nothing;
    }
    match py.detach(|| receive(&fds[ready..=ready], Some(Duration::ZERO), max)) {
        Some(m) => Incoming::Message(m),
        None => Incoming::Nothing,
    }
}

/// The index of a readable fd among `fds`, waiting at most `timeout`.
pub(crate) fn wait_readable(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> Option<usize> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let wait = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                PollTimeout::from(u16::try_from(left.as_millis()).unwrap_or(u16::MAX))
            }
        };
        let mut polls: Vec<PollFd<'_>> = fds
            .iter()
            .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
            .collect();
        match poll(&mut polls, wait) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return None,
        }
        if let Some(i) = polls
            .iter()
            .position(|p| p.revents().is_some_and(|r| r.contains(PollFlags::POLLIN)))
        {
            return Some(i);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
    }
}

/// The next message on `fds`, waiting at most `timeout` (`None`: for
/// ever); `None` when the time ran out.
fn receive(fds: &[BorrowedFd<'_>], timeout: Option<Duration>, max: usize) -> Option<Vec<u8>> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut buf = vec![0u8; max.max(1)];
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let i = wait_readable(fds, left)?;
        // SAFETY: recv(2) into a buffer we own, of its length; the fd is a
        // non-blocking socket another mule may have emptied meanwhile.
        let n = unsafe {
            libc::recv(
                fds[i].as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if let Ok(n) = usize::try_from(n) {
            buf.truncate(n);
            return Some(buf);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
    }
}

/// A mule's next message or signal, waiting for it (the GIL released);
/// `None` when it has no queue at all.
pub fn next_message(py: Python<'_>, id: u32) -> Option<Incoming> {
    let max = STATE.get().map_or(0, |s| s.msg_size);
    let fds = inboxes(id);
    if fds.is_empty() {
        return None;
    }
    Some(receive_or_signal(py, &fds, &signal_inboxes(id), None, max))
}

fn message_bytes(m: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = m.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(s) = m.cast::<PyString>() {
        return Ok(s.to_str()?.as_bytes().to_vec());
    }
    Err(PyValueError::new_err("a mule message must be bytes or str"))
}

fn state() -> PyResult<&'static State> {
    STATE
        .get()
        .ok_or_else(|| PyValueError::new_err("there are no mules (add mule or mules)"))
}

/// Sends one message; `None` (with uWSGI's line) when the queue is full.
fn send(py: Python<'_>, q: &Queue, msg: &[u8], max: usize) -> PyResult<Py<PyAny>> {
    if msg.len() > max {
        return Err(PyValueError::new_err(format!(
            "a mule message is at most {max} bytes (mule-msg-size), not {}",
            msg.len()
        )));
    }
    // SAFETY: send(2) on an fd we own, from a buffer we own, of its length.
    let n = unsafe {
        libc::send(
            q.send.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n == msg.len() as isize {
        return Ok(true.into_pyobject(py)?.to_owned().into_any().unbind());
    }
    let e = std::io::Error::last_os_error();
    if e.kind() == std::io::ErrorKind::WouldBlock {
        tracing::error!(
            event = "mule_queue_full",
            "*** MULE MSG QUEUE IS FULL: the mules are not keeping up (you can tune it with --mule-msg-size) ***"
        );
    } else {
        tracing::error!(event = "mule_send_failed", cause = %e, "mule_send_msg(): {e}");
    }
    Ok(py.None())
}

/// `uwsgi.mule_msg(message, mule=0)`: to any mule, mule N, or a farm by
/// name.
#[pyfunction]
#[pyo3(signature = (message, target=None))]
fn mule_msg(
    py: Python<'_>,
    message: &Bound<'_, PyAny>,
    target: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyAny>> {
    let s = state()?;
    let msg = message_bytes(message)?;
    let q = match target {
        None => &s.any,
        Some(t) if t.is_none() => &s.any,
        Some(t) => {
            if let Ok(name) = t.extract::<String>() {
                &s.farms
                    .iter()
                    .find(|(f, _)| f.name == name)
                    .ok_or_else(|| PyValueError::new_err(format!("unknown farm: {name}")))?
                    .1
            } else {
                let n: i64 = t.extract()?;
                match usize::try_from(n) {
                    Ok(0) => &s.any,
                    Ok(i) if i <= s.mules.len() => &s.mules[i - 1],
                    _ => return Err(PyValueError::new_err(format!("invalid mule number: {n}"))),
                }
            }
        }
    };
    send(py, q, &msg, s.msg_size)
}

/// `uwsgi.farm_msg(farm, message)`.
#[pyfunction]
fn farm_msg(py: Python<'_>, farm: &str, message: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let s = state()?;
    let q = &s
        .farms
        .iter()
        .find(|(f, _)| f.name == farm)
        .ok_or_else(|| PyValueError::new_err(format!("unknown farm: {farm}")))?
        .1;
    send(py, q, &message_bytes(message)?, s.msg_size)
}

/// `uwsgi.mule_get_msg(signals=True, farms=True, buffer_size=65536,
/// timeout=-1)`: the next message for this mule (bytes), `None` when the
/// timeout (seconds) ran out. Only a mule can call it.
#[pyfunction]
#[pyo3(signature = (signals=None, farms=None, buffer_size=65536, timeout=-1))]
fn mule_get_msg<'py>(
    py: Python<'py>,
    signals: Option<&Bound<'py, PyAny>>,
    farms: Option<&Bound<'py, PyAny>>,
    buffer_size: usize,
    timeout: i64,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let _ = farms;
    let id = MULE_ID.load(Ordering::Relaxed);
    if id == 0 {
        return Err(PyValueError::new_err(
            "you can receive mule messages only in a mule !!!",
        ));
    }
    let fds = inboxes(id);
    // uWSGI's default: signals are handled while waiting (then None).
    let with_signals = signals.is_none_or(|s| s.is_truthy().unwrap_or(true));
    let sig_fds = if with_signals {
        signal_inboxes(id)
    } else {
        Vec::new()
    };
    let wait = u64::try_from(timeout).ok().map(Duration::from_secs);
    let max = buffer_size.clamp(1, crate::config::mules::MAX_MSG_SIZE);
    Ok(match receive_or_signal(py, &fds, &sig_fds, wait, max) {
        Incoming::Message(m) => Some(PyBytes::new(py, &m)),
        Incoming::Nothing => None,
    })
}

/// `uwsgi.farm_get_msg()`: the next message of this mule's farms.
#[pyfunction]
fn farm_get_msg(py: Python<'_>) -> PyResult<Option<Bound<'_, PyBytes>>> {
    let id = MULE_ID.load(Ordering::Relaxed);
    let s = state()?;
    let fds: Vec<BorrowedFd<'static>> = s
        .farms
        .iter()
        .filter(|(f, _)| id > 0 && f.mules.contains(&id))
        .map(|(_, q)| q.recv.as_fd())
        .collect();
    if fds.is_empty() {
        return Ok(None);
    }
    Ok(py
        .detach(|| receive(&fds, None, s.msg_size))
        .map(|m| PyBytes::new(py, &m)))
}

/// `uwsgi.in_farm(name=None)`: `True` when this mule is in that farm (any
/// farm without a name), else `None`.
#[pyfunction]
#[pyo3(signature = (name=None))]
fn in_farm(py: Python<'_>, name: Option<&str>) -> Py<PyAny> {
    let id = MULE_ID.load(Ordering::Relaxed);
    let inside = id > 0
        && STATE.get().is_some_and(|s| {
            s.farms
                .iter()
                .any(|(f, _)| name.is_none_or(|n| n == f.name) && f.mules.contains(&id))
        });
    if inside {
        true.into_pyobject(py)
            .map_or_else(|_| py.None(), |b| b.to_owned().into_any().unbind())
    } else {
        py.None()
    }
}

/// `uwsgi.mule_id()`: this mule's id, 0 elsewhere.
#[pyfunction]
pub fn mule_id() -> u32 {
    MULE_ID.load(Ordering::Relaxed)
}

/// Adds the functions to the `uwsgi` module.
pub fn add_to(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(mule_msg, m)?)?;
    m.add_function(wrap_pyfunction!(mule_get_msg, m)?)?;
    m.add_function(wrap_pyfunction!(farm_msg, m)?)?;
    m.add_function(wrap_pyfunction!(farm_get_msg, m)?)?;
    m.add_function(wrap_pyfunction!(in_farm, m)?)?;
    m.add_function(wrap_pyfunction!(mule_id, m)?)?;
    Ok(())
}
