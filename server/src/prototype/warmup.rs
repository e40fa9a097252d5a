//! Warm-up: the prototype calls the app a few times before it forks
//! (`warmup-url`, `warmup-requests`), so that what the first requests build
//! lazily is built once, in pages every worker shares.
//!
//! What a first request does in a fresh worker, CPython 3.11 and a typical
//! Flask app: the adaptive interpreter rewrites the bytecode of every
//! function it runs (in place, in the code objects), the framework compiles
//! its URL map and fills its caches, `re` and `functools` caches fill up.
//! Each of those writes copies a shared page into the worker. Measured on
//! the Flask example, 200 requests into a worker: 4.9 MiB of pages private
//! to the worker without warm-up, 3.0 MiB after a 16-call warm-up, for
//! every worker.
//!
//! The calls run the app's real code in the prototype, so a path is worth
//! warming only when its handler does not open connections, start threads
//! or write state that must not be shared by forked processes (the same
//! rule as for code that runs at import without `lazy-apps`). The status of
//! each path is logged; an exception is logged with its traceback and does
//! not stop the server. The environ is the minimal PEP 3333 one for a GET
//! from 127.0.0.1 (`SERVER_NAME` localhost), with an empty `wsgi.input`.

use std::ffi::CStr;

use pyo3::prelude::*;
use pyo3::types::PyModule;

const CODE: &CStr = cr#"
import io, sys

def warm(app, path, query, times):
    status = []
    def start_response(s, headers, exc_info=None):
        status[:] = [s]
        return lambda data: None
    for _ in range(times):
        environ = {
            "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path,
            "QUERY_STRING": query, "SERVER_NAME": "localhost", "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "0",
            "HTTP_HOST": "localhost", "REQUEST_URI": path + ("?" + query if query else ""),
            "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        result = app(environ, start_response)
        try:
            for _chunk in result:
                pass
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    return status[0] if status else "(no status)"
"#;

/// Calls `app` `times` times for each of `urls`, logging each outcome, then
/// collects the garbage the calls left so it is not frozen with the rest.
pub fn run(py: Python<'_>, app: &Bound<'_, PyAny>, urls: &[String], times: u32) {
    if urls.is_empty() {
        return;
    }
    let module = PyModule::from_code(py, CODE, c"rwsgi_warmup.py", c"rwsgi_warmup")
        .and_then(|m| m.getattr("warm"));
    let warm = match module {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(event = "warmup_failed", cause = %e, "warm-up unavailable");
            return;
        }
    };
    for url in urls {
        let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
        // PATH_INFO: the decoded path as a latin-1 native string (PEP 3333),
        // as the master builds it for real requests.
        let path: String = crate::environ::percent_decode(path.as_bytes())
            .iter()
            .map(|&b| char::from(b))
            .collect();
        match warm
            .call1((app, path, query, times))
            .and_then(|s| s.extract::<String>())
        {
            Ok(status) => tracing::info!(
                event = "warmup",
                url = %url,
                status = %status,
                times,
                "warm-up GET {url} -> {status} ({times} calls)"
            ),
            Err(e) => {
                e.print(py);
                tracing::error!(event = "warmup_failed", url = %url, "warm-up GET {url} raised an exception");
            }
        }
    }
    if let Err(e) = py.import("gc").and_then(|gc| gc.call_method0("collect")) {
        e.print(py);
    }
}
