//! The Python host: how the binary reaches the code that embeds CPython.
//!
//! The library is built twice: as the rlib the `rwsgi` binary links, and as
//! `librwsgi.so`, a shared object installed beside the binary. Only the
//! shared object links libpython. The master never runs Python, and a
//! process that merely maps libpython pays for it: the dynamic loader
//! relocates libpython's static data (its type objects, method tables and
//! singletons) at startup, which dirties about 1.2 MiB of private memory per
//! process. So the binary does not link libpython at all; the prototype role
//! loads `librwsgi.so` (and with it libpython) with `dlopen` and calls
//! [`ENTRY`], and the workers it forks inherit the mapping.
//!
//! The shared object is looked up next to the binary only (never through
//! an environment variable or a search path), and it is opened with
//! `RTLD_GLOBAL` because CPython's extension modules are not linked against
//! libpython and resolve its symbols from the global scope.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// File name of the Python host, installed in the binary's directory.
pub const LIBRARY: &str = "librwsgi.so";

/// The symbol the prototype role calls: `extern "C" fn() -> i32`.
pub const ENTRY: &CStr = c"rwsgi_prototype_main";

/// Where the Python host of the binary at `exe` is.
pub fn library_path(exe: &Path) -> PathBuf {
    exe.parent().unwrap_or(Path::new("/")).join(LIBRARY)
}

/// Loads the Python host and runs the prototype role; returns the exit code.
pub fn run_prototype() -> Result<i32, String> {
    let exe = crate::master::supervisor::self_exe()
        .map_err(|e| format!("cannot find the rwsgi binary: {e}"))?;
    let path = library_path(&exe);
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("{} contains a NUL byte", path.display()))?;
    // SAFETY: dlopen with a valid C string; the library's initialisers are
    // Rust's and libpython's own, run once in this single-threaded process.
    let handle = unsafe { libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        return Err(format!(
            "cannot load the Python host {}: {}",
            path.display(),
            dl_error()
        ));
    }
    // SAFETY: a valid handle and a NUL-terminated name.
    let sym = unsafe { libc::dlsym(handle, ENTRY.as_ptr()) };
    if sym.is_null() {
        return Err(format!(
            "{} has no {:?}: {}",
            path.display(),
            ENTRY,
            dl_error()
        ));
    }
    // SAFETY: the symbol is `prototype::entry::rwsgi_prototype_main`, of exactly
    // this type, built from the same sources as this binary (the build puts
    // both in one directory; `rwsgi bundle` copies both).
    let entry: extern "C" fn() -> i32 = unsafe { std::mem::transmute(sym) };
    Ok(entry())
}

fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated message owned by libc.
    let msg = unsafe { libc::dlerror() };
    if msg.is_null() {
        "unknown error".into()
    } else {
        // SAFETY: non-null, NUL-terminated, valid until the next dl call.
        unsafe { CStr::from_ptr(msg) }
            .to_string_lossy()
            .into_owned()
    }
}
