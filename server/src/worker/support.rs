//! The small `rwsgi` Python module the worker provides: `FileWrapper`
//! (PEP 3333 "Optional Platform-Specific File Handling") and the version.
//! It is registered in `sys.modules`, so apps can `import rwsgi` to tell
//! they run under rwsgi.

use pyo3::prelude::*;
use pyo3::types::PyModule;

const SOURCE: &std::ffi::CStr = c"
version = None

class FileWrapper:
    \"\"\"wsgi.file_wrapper: iterates a file-like object in blocks.\"\"\"

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, 'close'):
            self.close = filelike.close

    def __iter__(self):
        return self

    def __next__(self):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration
";

/// The `rwsgi` module, created on first use.
pub fn module(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    let sys_modules = py.import("sys")?.getattr("modules")?;
    if let Ok(m) = sys_modules.get_item("rwsgi") {
        return Ok(m.cast_into::<PyModule>()?);
    }
    let m = PyModule::from_code(py, SOURCE, c"<rwsgi>", c"rwsgi")?;
    m.setattr("version", env!("CARGO_PKG_VERSION"))?;
    sys_modules.set_item("rwsgi", &m)?;
    Ok(m)
}
