//! Loading the app: `module[:callable]` (a trailing `()` calls a factory, as
//! in uWSGI's `pyloader.c`), a Python file, loaded as module
//! `uwsgi_file_<path>` like uWSGI does, or a PasteDeploy URI
//! (`uwsgi_paste_loader`); and the `import`/`shared-import` modules.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::config::{AppSource, AppSpec};

/// Imports the app and returns its WSGI callable.
pub fn load(py: Python<'_>, spec: &AppSpec) -> PyResult<Py<PyAny>> {
    let module = match &spec.source {
        AppSource::Module(name) => py.import(name.as_str())?.into_any(),
        AppSource::File(path) => {
            let path = path.display().to_string();
            let name = format!("uwsgi_file_{}", pythonize(&path));
            import_file(py, &name, &path)?
        }
        AppSource::Paste { uri, logging } => return load_paste(py, uri, *logging),
    };
    let (attr, factory) = match spec.callable.strip_suffix("()") {
        Some(a) => (a, true),
        None => (spec.callable.as_str(), false),
    };
    let mut app = module.getattr(attr)?;
    if factory {
        app = app.call0()?;
    }
    callable(app, attr)
}

fn callable(app: Bound<'_, PyAny>, what: &str) -> PyResult<Py<PyAny>> {
    if !app.is_callable() {
        return Err(PyTypeError::new_err(format!("{what} is not callable")));
    }
    Ok(app.unbind())
}

/// `paste.deploy.loadapp(uri)`, after `logging.config.fileConfig` of the ini
/// file when asked (uWSGI calls PasteScript's `fileConfig`, which is the
/// standard one; `here` and `__file__` are given as Pyramid's
/// `setup_logging` gives them).
fn load_paste(py: Python<'_>, uri: &str, logging: bool) -> PyResult<Py<PyAny>> {
    tracing::info!(event = "paste", %uri, "Loading paste environment: {uri}");
    if let (true, Some(path)) = (logging, uri.strip_prefix("config:")) {
        let defaults = PyDict::new(py);
        let here = std::path::Path::new(path)
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        defaults.set_item("here", here)?;
        defaults.set_item("__file__", path)?;
        py.import("logging.config")?
            .call_method1("fileConfig", (path, defaults))?;
    }
    let app = py.import("paste.deploy")?.call_method1("loadapp", (uri,))?;
    callable(app, uri)
}

/// Executes a Python file as module `name` (registered in `sys.modules`).
fn import_file<'py>(py: Python<'py>, name: &str, path: &str) -> PyResult<Bound<'py, PyAny>> {
    let util = py.import("importlib.util")?;
    let mspec = util.call_method1("spec_from_file_location", (name, path))?;
    if mspec.is_none() {
        return Err(PyTypeError::new_err(format!(
            "cannot load {path} as Python"
        )));
    }
    let module = util.call_method1("module_from_spec", (&mspec,))?;
    py.import("sys")?
        .getattr("modules")?
        .set_item(name, &module)?;
    mspec
        .getattr("loader")?
        .call_method1("exec_module", (&module,))?;
    Ok(module)
}

/// A path as a module name: what is not a letter or a digit becomes `_`.
fn pythonize(path: &str) -> String {
    path.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// `import` / `shared-import`: a module name, or a file (a value with a `/`
/// or ending in `.py`), executed as a module named after its path without
/// `.py`, as uWSGI's `uwsgi_pythonize` names it. A failure is printed and
/// the rest goes on, as in uWSGI.
pub fn import_all(py: Python<'_>, what: &[String]) {
    for w in what {
        let done = if w.contains('/') || w.ends_with(".py") {
            let name = pythonize(w.strip_suffix(".py").unwrap_or(w));
            import_file(py, &name, w).map(drop)
        } else {
            py.import(w.as_str()).map(drop)
        };
        if let Err(e) = done {
            e.print(py);
        }
    }
}

/// A short name for logs.
pub fn describe(spec: &AppSpec) -> String {
    match &spec.source {
        AppSource::Module(m) => format!("{m}:{}", spec.callable),
        AppSource::File(f) => format!("{}:{}", f.display(), spec.callable),
        AppSource::Paste { uri, .. } => uri.clone(),
    }
}
