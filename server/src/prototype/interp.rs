//! Interpreter start-up: CPython is initialised through its `PyConfig` API
//! with an explicit `executable` (the virtualenv's `bin/python`, or the
//! interpreter the binary was built against), so `sys.prefix`, the
//! virtualenv's site-packages and `sys.executable` are all right, and
//! `multiprocessing` never re-launches the server. Python's own signal
//! handlers are not installed: the master owns signals.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use pyo3::ffi;
use pyo3::prelude::*;

/// The interpreter the binary was built against (DESIGN.md §9).
pub const BUILD_PYTHON: &str = env!("RWSGI_BUILD_PYTHON");
/// Its version.
pub const BUILD_PYTHON_VERSION: &str = env!("RWSGI_BUILD_PYTHON_VERSION");

/// Why the interpreter could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// CPython refused the configuration.
    #[error("python initialisation failed: {0}")]
    Status(String),
    /// A path with a NUL byte.
    #[error("path contains a NUL byte: {0}")]
    Path(String),
}

/// What `sys.executable` should be.
fn executable(home: Option<&Path>) -> Option<PathBuf> {
    if let Some(home) = home {
        for name in ["bin/python", "bin/python3"] {
            let p = home.join(name);
            if p.exists() {
                return Some(p);
            }
        }
    }
    let built = PathBuf::from(BUILD_PYTHON);
    built.exists().then_some(built)
}

/// Initialises CPython (at `optimize` level, as `python -O`) and releases
/// the GIL; afterwards use `Python::attach`. Must be called once, from a
/// process with one thread.
pub fn init(home: Option<&Path>, optimize: u8) -> Result<(), InitError> {
    let exe = executable(home);
    // A home without an interpreter in it is a Python prefix (PYTHONHOME),
    // not a virtualenv.
    let prefix_home = home.filter(|h| {
        !h.join("pyvenv.cfg").exists() && exe.as_deref().is_none_or(|e| !e.starts_with(h))
    });
    let cstr = |p: &Path| {
        CString::new(p.as_os_str().as_encoded_bytes())
            .map_err(|_| InitError::Path(p.display().to_string()))
    };
    let exe_c = exe.as_deref().map(cstr).transpose()?;
    let home_c = prefix_home.map(cstr).transpose()?;
    // SAFETY: PyConfig is initialised by PyConfig_InitPythonConfig before any
    // field is read; the strings passed are NUL-terminated and outlive the
    // calls (CPython copies them); PyConfig_Clear frees what CPython
    // allocated; nothing else runs Python concurrently (one thread).
    unsafe {
        let mut config = std::mem::MaybeUninit::<ffi::PyConfig>::uninit();
        ffi::PyConfig_InitPythonConfig(config.as_mut_ptr());
        let mut config = config.assume_init();
        config.install_signal_handlers = 0;
        config.parse_argv = 0;
        config.optimization_level = i32::from(optimize);
        let mut status = ffi::PyStatus_Ok();
        if let Some(exe) = &exe_c {
            status =
                ffi::PyConfig_SetBytesString(&mut config, &mut config.executable, exe.as_ptr());
            if ffi::PyStatus_Exception(status) == 0 {
                status = ffi::PyConfig_SetBytesString(
                    &mut config,
                    &mut config.program_name,
                    exe.as_ptr(),
                );
            }
        }
        if ffi::PyStatus_Exception(status) == 0 {
            if let Some(home) = &home_c {
                status = ffi::PyConfig_SetBytesString(&mut config, &mut config.home, home.as_ptr());
            }
        }
        if ffi::PyStatus_Exception(status) == 0 {
            status = ffi::Py_InitializeFromConfig(&config);
        }
        ffi::PyConfig_Clear(&mut config);
        if ffi::PyStatus_Exception(status) != 0 {
            let msg = if status.err_msg.is_null() {
                "unknown error".to_owned()
            } else {
                std::ffi::CStr::from_ptr(status.err_msg)
                    .to_string_lossy()
                    .into_owned()
            };
            return Err(InitError::Status(msg));
        }
        // Release the GIL taken by initialisation; Python::attach takes it
        // again where needed.
        ffi::PyEval_SaveThread();
    }
    Ok(())
}

/// Prepends directories to `sys.path` and logs which interpreter runs,
/// warning when it is not the one the binary was built for.
pub fn setup_path(py: Python<'_>, pythonpath: &[PathBuf]) -> PyResult<()> {
    let sys = py.import("sys")?;
    let path = sys.getattr("path")?;
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    path.call_method1("insert", (0, cwd))?;
    for p in pythonpath.iter().rev() {
        path.call_method1("insert", (0, p.display().to_string()))?;
    }
    let version: String = py
        .eval(
            c"'%d.%d.%d' % __import__('sys').version_info[:3]",
            None,
            None,
        )?
        .extract()?;
    let executable: String = sys.getattr("executable")?.extract()?;
    let prefix: String = sys.getattr("prefix")?.extract()?;
    if version == BUILD_PYTHON_VERSION {
        tracing::info!(event = "python", %version, %executable, %prefix, "Python version: {version} (executable {executable}, prefix {prefix})");
    } else {
        tracing::warn!(event = "python_mismatch", %version, built = BUILD_PYTHON_VERSION, "Python {version} was loaded but rwsgi was built for {}", BUILD_PYTHON_VERSION);
    }
    Ok(())
}
