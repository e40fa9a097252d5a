//! What `rwsgi bundle` learns from a traced run: after each request a worker
//! started with `RWSGI_TRACE_FILE` set writes there the file of every module
//! in `sys.modules` and every file mapped into the process (shared
//! libraries, extension modules). Written to a temporary file and renamed,
//! so a reader never sees half of it.

use std::io::Write;
use std::path::{Path, PathBuf};

use pyo3::prelude::*;

/// The environment variable that turns tracing on.
pub const ENV: &str = "RWSGI_TRACE_FILE";

/// Where to write, if tracing.
pub fn target() -> Option<PathBuf> {
    std::env::var_os(ENV).map(PathBuf::from)
}

/// Writes the trace.
pub fn write(py: Python<'_>, path: &Path) -> std::io::Result<()> {
    let mut out = Vec::new();
    let modules: Vec<String> = py
        .eval(
            c"sorted({f for f in (getattr(m, '__file__', None) for m in list(__import__('sys').modules.values())) if isinstance(f, str)})",
            None,
            None,
        )
        .and_then(|v| v.extract())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    for m in modules {
        writeln!(out, "module {m}")?;
    }
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut seen = std::collections::BTreeSet::new();
    for line in maps.lines() {
        if let Some(i) = line.find(" /") {
            let file = line[i + 1..].trim();
            if !file.ends_with("(deleted)") && seen.insert(file.to_owned()) {
                writeln!(out, "map {file}")?;
            }
        }
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, out)?;
    std::fs::rename(tmp, path)
}
