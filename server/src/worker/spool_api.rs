//! The spooler's part of the `uwsgi` module (`plugins/python/
//! uwsgi_pymodule.c` `py_uwsgi_send_spool` and the `spooler_*`
//! functions): `spool`/`send_to_spooler`, `spooler_jobs`, `spooler_pid`,
//! `spooler_pids`, `spooler_get_task`, `set_spooler_frequency`,
//! `i_am_the_spooler`; and the state the prototype sets up before it
//! forks, shared by the workers and the spooler processes: the spooler
//! directories, their processes' pids and the scan frequency.
//!
//! Where rwsgi is more lenient than uWSGI under Python 3: keys and values
//! may be `str` (written as UTF-8) as well as `bytes`, and other values are
//! written as `str(value)` (uWSGI calls `bytes(value)`, which turns `5`
//! into five zero bytes).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyModule, PyString, PyTuple};

use crate::config::spooler::Spooling;

pub use crate::spool::MAX_SPOOLERS;

/// The spoolers as every process sees them.
#[derive(Debug)]
pub struct Spoolers {
    /// The directories with spooler processes here, made absolute.
    pub dirs: Vec<PathBuf>,
    /// `spooler-external` directories, made absolute.
    pub external: Vec<PathBuf>,
    /// Processes per directory.
    pub processes: usize,
    /// `spooler-quiet`.
    pub quiet: bool,
    /// Shared with the master: the scan frequency, each process's pid and
    /// counters.
    pub counters: crate::spool::Counters,
}

static SPOOLERS: OnceLock<Spoolers> = OnceLock::new();
/// This process's spooler process index, when it is one.
static I_AM: OnceLock<usize> = OnceLock::new();
/// Tasks spooled by this process (part of the file name).
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The spoolers, when configured.
pub fn spoolers() -> Option<&'static Spoolers> {
    SPOOLERS.get()
}

impl Spoolers {
    /// How many spooler processes there are.
    pub fn count(&self) -> usize {
        self.dirs.len() * self.processes
    }

    /// The directory of process `index`.
    pub fn dir_of(&self, index: usize) -> &Path {
        &self.dirs[index / self.processes.max(1)]
    }

    /// Records the pid of process `index` (0: none).
    pub fn set_pid(&self, index: usize, pid: i32) {
        self.counters.set_pid(index, pid);
    }

    fn pid(&self, index: usize) -> i32 {
        self.counters.pid(index)
    }

    /// Seconds between scans (`spooler-frequency`, or what the app set).
    pub fn frequency(&self) -> u64 {
        self.counters.frequency()
    }
}

/// The counters the master made, given by the prototype's entry point.
static FROM_MASTER: std::sync::Mutex<Option<crate::spool::Counters>> = std::sync::Mutex::new(None);

/// Keeps the counters the master made for [`init`].
pub fn set_counters(c: crate::spool::Counters) {
    if let Ok(mut m) = FROM_MASTER.lock() {
        *m = Some(c);
    }
}

/// Makes the spooler directories (uWSGI's mode 0750) and the shared state
/// (the master's counters; made here when there are none). Called by the
/// prototype before it imports the app.
pub fn init(s: &Spooling) -> std::io::Result<()> {
    if !s.enabled() {
        return Ok(());
    }
    let make = |d: &PathBuf| -> std::io::Result<PathBuf> {
        use std::os::unix::fs::DirBuilderExt;
        if !d.is_dir() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o750)
                .create(d)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", d.display())))?;
        }
        std::fs::canonicalize(d)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", d.display())))
    };
    let dirs = s
        .dirs
        .iter()
        .map(make)
        .collect::<std::io::Result<Vec<_>>>()?;
    let external = s
        .external
        .iter()
        .map(make)
        .collect::<std::io::Result<Vec<_>>>()?;
    let processes = s.processes.max(1) as usize;
    if dirs.len() * processes > MAX_SPOOLERS {
        return Err(std::io::Error::other(format!(
            "at most {MAX_SPOOLERS} spooler processes"
        )));
    }
    let given = FROM_MASTER.lock().ok().and_then(|mut m| m.take());
    let counters = match given {
        Some(c) => c,
        None => crate::spool::Counters::create()?.1,
    };
    counters.set_frequency(s.frequency);
    let _ = SPOOLERS.set(Spoolers {
        dirs,
        external,
        processes,
        quiet: s.quiet,
        counters,
    });
    Ok(())
}

/// Marks this process as spooler process `index` (after fork).
pub fn become_spooler(index: usize) {
    let _ = I_AM.set(index);
}

/// Bytes of a key or value: `bytes`, `str` as UTF-8, else `str(value)`.
fn to_bytes(v: &Bound<'_, PyAny>, key: bool) -> PyResult<Vec<u8>> {
    if let Ok(b) = v.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(s.to_str()?.as_bytes().to_vec());
    }
    if key {
        return Err(PyValueError::new_err(
            "spooler callable dictionary must contains only bytes",
        ));
    }
    Ok(v.str()?.to_str()?.as_bytes().to_vec())
}

/// `uwsgi.spool(dict)` / `uwsgi.spool(**kwargs)`: writes a task for a
/// spooler; returns its file name (bytes).
#[pyfunction]
#[pyo3(signature = (*args, **kwargs))]
fn spool<'py>(
    py: Python<'py>,
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let dict = match args.get_item(0) {
        Ok(d) => d.cast_into::<PyDict>().map_err(|_| {
            PyValueError::new_err("The argument of spooler callable must be a dictionary")
        })?,
        Err(_) => kwargs.cloned().ok_or_else(|| {
            PyValueError::new_err("The argument of spooler callable must be a dictionary")
        })?,
    };
    let Some(sp) = spoolers() else {
        tracing::error!(
            event = "spool_failed",
            "[uwsgi-spooler] no spooler available"
        );
        return Err(PyValueError::new_err(
            "unable to spool job: no spooler is configured",
        ));
    };
    let mut vars = Vec::new();
    let mut body = Vec::new();
    for (k, v) in dict.iter() {
        let key = to_bytes(&k, true)?;
        if key == b"body" {
            body = to_bytes(&v, false)?;
            continue;
        }
        vars.push((key, to_bytes(&v, false)?));
    }
    let place = crate::spool::placement(&vars).map_err(PyValueError::new_err)?;
    let dir = match &place.spooler {
        None => sp.dirs.first().or(sp.external.first()),
        Some(name) => {
            let name =
                Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name));
            sp.dirs.iter().chain(&sp.external).find(|d| {
                d.as_path() == name || std::fs::canonicalize(name).is_ok_and(|n| n == **d)
            })
        }
    };
    let Some(dir) = dir else {
        let shown = String::from_utf8_lossy(place.spooler.as_deref().unwrap_or_default());
        tracing::error!(
            event = "spool_failed",
            "[uwsgi-spooler] unable to find spooler \"{shown}\""
        );
        return Err(PyValueError::new_err("unable to spool job"));
    };
    let data = crate::spool::encode(&vars, &body).map_err(PyValueError::new_err)?;
    let mut target = dir.clone();
    if let Some(p) = &place.priority {
        target.push(p);
    }
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
    let random = {
        use std::hash::{BuildHasher, Hasher};
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish() as u32
    };
    let host = nix::unistd::gethostname().unwrap_or_default();
    let name = crate::spool::file_name(
        &host.to_string_lossy(),
        std::process::id(),
        counter,
        random,
        std::time::SystemTime::now(),
    );
    let written = py.detach(|| {
        if place.priority.is_some() {
            std::fs::create_dir_all(&target)?;
        }
        crate::spool::write_task(&target, &name, &data, place.at)
    });
    match written {
        Ok(path) => {
            if !sp.quiet {
                tracing::info!(event = "spooled", bytes = data.len(), file = %path.display(),
                    "[spooler] written {} bytes to file {}", data.len(), path.display());
            }
            Ok(PyBytes::new(py, path.as_os_str().as_encoded_bytes()))
        }
        Err(e) => {
            tracing::error!(event = "spool_failed", cause = %e, "[uwsgi-spooler] cannot write a task in {}: {e}", target.display());
            Err(PyValueError::new_err("unable to spool job"))
        }
    }
}

/// `uwsgi.spooler_jobs()`: the tasks waiting in the first spooler's
/// directory.
#[pyfunction]
fn spooler_jobs(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let jobs = spoolers()
        .and_then(|s| s.dirs.first())
        .map(|d| crate::spool::tasks(d))
        .unwrap_or_default();
    PyList::new(
        py,
        jobs.iter()
            .map(|p| PyBytes::new(py, p.as_os_str().as_encoded_bytes())),
    )
}

/// `uwsgi.spooler_pid()`: the first spooler process's pid (0: none).
#[pyfunction]
fn spooler_pid() -> i32 {
    spoolers().map_or(0, |s| s.pid(0))
}

/// `uwsgi.spooler_pids()`.
#[pyfunction]
fn spooler_pids() -> Vec<i32> {
    spoolers().map_or_else(Vec::new, |s| (0..s.count()).map(|i| s.pid(i)).collect())
}

/// Whether this process is a spooler process.
pub fn is_spooler() -> bool {
    I_AM.get().is_some()
}

/// `uwsgi.i_am_the_spooler()`: `True` in a spooler process, else `None`.
#[pyfunction]
fn i_am_the_spooler(py: Python<'_>) -> Py<PyAny> {
    if I_AM.get().is_some() {
        true.into_pyobject(py)
            .map_or_else(|_| py.None(), |b| b.to_owned().into_any().unbind())
    } else {
        py.None()
    }
}

/// `uwsgi.set_spooler_frequency(seconds)`.
#[pyfunction]
fn set_spooler_frequency(secs: i64) -> PyResult<bool> {
    let secs = u64::try_from(secs)
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| PyValueError::new_err("the spooler frequency must be positive"))?;
    if let Some(s) = spoolers() {
        s.counters.set_frequency(secs);
    }
    Ok(true)
}

/// The dict a spooler function gets: the task's vars (bytes to bytes),
/// `spooler_task_name` and, when there is one, `body`.
pub fn task_dict<'py>(
    py: Python<'py>,
    path: &Path,
    vars: &[(Vec<u8>, Vec<u8>)],
    body: &[u8],
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in vars {
        d.set_item(PyBytes::new(py, k), PyBytes::new(py, v))?;
    }
    d.set_item(
        "spooler_task_name",
        PyBytes::new(py, path.as_os_str().as_encoded_bytes()),
    )?;
    if !body.is_empty() {
        d.set_item("body", PyBytes::new(py, body))?;
    }
    Ok(d)
}

/// `uwsgi.spooler_get_task(path)`: the task's dict, or `None`.
#[pyfunction]
fn spooler_get_task<'py>(py: Python<'py>, path: &str) -> PyResult<Option<Bound<'py, PyDict>>> {
    let p = Path::new(path);
    let data = py.detach(|| read_task(p));
    let Some(Ok((vars, body))) = data.map(|d| crate::spool::decode(&d)) else {
        return Ok(None);
    };
    task_dict(py, p, &vars, &body).map(Some)
}

/// A task file's bytes, if it is a regular file within the size limit.
pub fn read_task(p: &Path) -> Option<Vec<u8>> {
    let meta = std::fs::symlink_metadata(p).ok()?;
    if !meta.is_file() || meta.len() > crate::spool::MAX_FILE {
        return None;
    }
    std::fs::read(p).ok()
}

/// The spooler process index of this process, if it is one.
pub fn my_index() -> Option<usize> {
    I_AM.get().copied()
}

/// Adds the functions to the `uwsgi` module.
pub fn add_to(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(spool, m)?)?;
    m.add("send_to_spooler", m.getattr("spool")?)?;
    m.add_function(wrap_pyfunction!(spooler_jobs, m)?)?;
    m.add_function(wrap_pyfunction!(spooler_pid, m)?)?;
    m.add_function(wrap_pyfunction!(spooler_pids, m)?)?;
    m.add_function(wrap_pyfunction!(i_am_the_spooler, m)?)?;
    m.add_function(wrap_pyfunction!(set_spooler_frequency, m)?)?;
    m.add_function(wrap_pyfunction!(spooler_get_task, m)?)?;
    Ok(())
}
