//! `py-autoreload N`: every N seconds the prototype looks at the files of
//! the modules in `sys.modules`; when one changed, it logs uWSGI's line
//! (`plugins/python/python_plugin.c`, the reloader: `[uwsgi-python-reloader]
//! module/file X has been modified`) and asks the master for a graceful
//! reload, which starts a new prototype that imports the new code. A
//! development aid, as in uWSGI: with `lazy-apps` the prototype has not
//! imported the app, so only the modules it has are watched.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use pyo3::prelude::*;

/// The watch state of one prototype.
#[derive(Debug)]
pub struct Watch {
    every: Duration,
    next: Instant,
    seen: HashMap<PathBuf, SystemTime>,
}

impl Watch {
    /// `None` when `py-autoreload` is off (0).
    pub fn new(every_secs: u64) -> Option<Watch> {
        (every_secs > 0).then(|| Watch {
            every: Duration::from_secs(every_secs),
            next: Instant::now(),
            seen: HashMap::new(),
        })
    }

    /// Milliseconds until the next check (for poll's timeout).
    pub fn wait_ms(&self) -> u16 {
        let left = self.next.saturating_duration_since(Instant::now());
        u16::try_from(left.as_millis()).unwrap_or(u16::MAX)
    }

    /// Checks when due; returns the first file found modified since it was
    /// first seen.
    pub fn check(&mut self) -> Option<PathBuf> {
        if Instant::now() < self.next {
            return None;
        }
        self.next = Instant::now() + self.every;
        let files = Python::attach(|py| module_files(py).unwrap_or_default());
        for file in files {
            let Ok(mtime) = std::fs::metadata(&file).and_then(|m| m.modified()) else {
                continue;
            };
            match self.seen.get(&file) {
                Some(&before) if before != mtime => return Some(file),
                Some(_) => {}
                None => {
                    self.seen.insert(file, mtime);
                }
            }
        }
        None
    }
}

/// The `__file__` of every module that has one.
fn module_files(py: Python<'_>) -> PyResult<Vec<PathBuf>> {
    let modules = py.import("sys")?.getattr("modules")?.call_method0("copy")?;
    let mut out = Vec::new();
    for m in modules.call_method0("values")?.try_iter()? {
        let Ok(file) = m?.getattr("__file__") else {
            continue;
        };
        if let Ok(path) = file.extract::<PathBuf>() {
            out.push(path);
        }
    }
    Ok(out)
}
