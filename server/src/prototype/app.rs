//! Loading the app: `module[:callable]` (a trailing `()` calls a factory, as
//! in uWSGI's `pyloader.c`) or a Python file, loaded as module
//! `uwsgi_file_<path>` like uWSGI does.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use crate::config::{AppSource, AppSpec};

/// Imports the app and returns its WSGI callable.
pub fn load(py: Python<'_>, spec: &AppSpec) -> PyResult<Py<PyAny>> {
    let module = match &spec.source {
        AppSource::Module(name) => py.import(name.as_str())?.into_any(),
        AppSource::File(path) => {
            let path = path.display().to_string();
            let name: String = format!(
                "uwsgi_file_{}",
                path.chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect::<String>()
            );
            let util = py.import("importlib.util")?;
            let mspec = util.call_method1("spec_from_file_location", (&name, &path))?;
            if mspec.is_none() {
                return Err(PyTypeError::new_err(format!(
                    "cannot load {path} as Python"
                )));
            }
            let module = util.call_method1("module_from_spec", (&mspec,))?;
            py.import("sys")?
                .getattr("modules")?
                .set_item(&name, &module)?;
            mspec
                .getattr("loader")?
                .call_method1("exec_module", (&module,))?;
            module
        }
    };
    let (attr, factory) = match spec.callable.strip_suffix("()") {
        Some(a) => (a, true),
        None => (spec.callable.as_str(), false),
    };
    let mut app = module.getattr(attr)?;
    if factory {
        app = app.call0()?;
    }
    if !app.is_callable() {
        return Err(PyTypeError::new_err(format!("{attr} is not callable")));
    }
    Ok(app.unbind())
}

/// A short name for logs.
pub fn describe(spec: &AppSpec) -> String {
    match &spec.source {
        AppSource::Module(m) => format!("{m}:{}", spec.callable),
        AppSource::File(f) => format!("{}:{}", f.display(), spec.callable),
    }
}
