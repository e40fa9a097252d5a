//! Warm-up: the prototype calls the app a few times before it forks
//! (`warmup-url`, `warmup-requests`), so that what the first requests build
//! lazily is built once, in pages every worker shares.
//!
//! What a first request does in a fresh worker, CPython 3.11 and a typical
//! Flask app: the adaptive interpreter rewrites the bytecode of every
//! function it runs (in place, in the code objects), the framework compiles
//! its URL map and fills its caches, `re` and `functools` caches fill up.
//! Each of those writes copies a shared page into the worker.
//!
//! The calls go through the worker's own request path (`worker::wsgi`):
//! the same environ builder, `wsgi.input`, `start_response` and response
//! framing a real request uses, on a socketpair whose other end a short-lived
//! thread drains (joined before the prototype answers the master, so the
//! prototype is single-threaded again when it forks). The request is the GET
//! nginx's `uwsgi_params` describes, from 127.0.0.1 to `localhost`, with no
//! body.
//!
//! The calls run the app's real code in the prototype, so a path is worth
//! warming only when its handler does not open connections, start threads
//! or write state that must not be shared by forked processes (the same
//! rule as for code that runs at import without `lazy-apps`). The status of
//! each path is logged; an exception is logged with its traceback and does
//! not stop the server.

use std::cell::RefCell;
use std::io;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::{Mutex, mpsc};

use pyo3::prelude::*;

use crate::ipc::{self, FRAME_HEADER, Kind};
use crate::worker::apps::Apps;
use crate::worker::channel::Channel;
use crate::worker::wsgi::{self, Interned};

/// Calls `app` `times` times for each of `urls`, logging each outcome, then
/// collects the garbage the calls left so it is not frozen with the rest.
pub fn run(py: Python<'_>, app: &Apps, interned: &mut Interned, urls: &[String], times: u32) {
    if urls.is_empty() {
        return;
    }
    if let Err(e) = calls(py, app, interned, urls, times) {
        tracing::error!(event = "warmup_failed", cause = %e, "warm-up stopped");
    }
    if let Err(e) = py.import("gc").and_then(|gc| gc.call_method0("collect")) {
        e.print(py);
    }
}

fn calls(
    py: Python<'_>,
    app: &Apps,
    interned: &mut Interned,
    urls: &[String],
    times: u32,
) -> io::Result<()> {
    let (ours, theirs) = UnixStream::pair()?;
    let (tx, rx) = mpsc::channel();
    let rx = Mutex::new(rx);
    let drain = std::thread::Builder::new()
        .name("rwsgi-warmup".into())
        .spawn(move || drain(theirs, &tx))?;
    let chan = Rc::new(RefCell::new(Channel::new(ours)?));
    let result = (|| {
        for url in urls {
            let request = request_payload(url);
            let mut status = None;
            let mut raised = false;
            for n in 1..=u64::from(times) {
                let outcome = wsgi::handle(py, app, interned, &chan, &request)?;
                raised |= outcome.exception;
                let end = ipc::end_payload(&ipc::EndInfo {
                    exception: outcome.exception,
                    requests: n,
                    ..Default::default()
                });
                let mut c = chan.borrow_mut();
                c.push(Kind::End, &end);
                c.flush(py)?;
                drop(c);
                // Wait for the drain to see the END: one request at a time.
                status = py
                    .detach(|| rx.lock().ok().and_then(|r| r.recv().ok()))
                    .flatten();
            }
            if raised {
                tracing::error!(event = "warmup_failed", url = %url, "warm-up GET {url} raised an exception");
            } else {
                let status = status.as_deref().unwrap_or("(no status)");
                tracing::info!(
                    event = "warmup",
                    url = %url,
                    status = %status,
                    times,
                    "warm-up GET {url} -> {status} ({times} calls)"
                );
            }
        }
        Ok(())
    })();
    drop(chan);
    let _ = drain.join();
    result
}

/// The REQUEST payload (after the frame header) of a GET for `url` as nginx
/// sends it with `uwsgi_params`.
fn request_payload(url: &str) -> Vec<u8> {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let path_info = crate::environ::percent_decode(path.as_bytes());
    let vars: [(&[u8], &[u8]); 15] = [
        (b"QUERY_STRING", query.as_bytes()),
        (b"REQUEST_METHOD", b"GET"),
        (b"CONTENT_TYPE", b""),
        (b"CONTENT_LENGTH", b""),
        (b"REQUEST_URI", url.as_bytes()),
        (b"PATH_INFO", &path_info),
        (b"DOCUMENT_ROOT", b"/"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"REQUEST_SCHEME", b"http"),
        (b"REMOTE_ADDR", b"127.0.0.1"),
        (b"REMOTE_PORT", b"0"),
        (b"SERVER_PORT", b"80"),
        (b"SERVER_NAME", b"localhost"),
        (b"HTTP_HOST", b"localhost"),
        (b"HTTP_USER_AGENT", b"rwsgi-warmup"),
    ];
    let mut block = Vec::new();
    // Only a path longer than a uwsgi vars block could make this fail; the
    // request then carries the vars that fit, which is still a warm-up.
    let _ = rwsgi_proto::encode_vars(&vars, &mut block);
    ipc::request_frame(0, 0, &block)
        .get(FRAME_HEADER..)
        .unwrap_or_default()
        .to_vec()
}

/// Reads the responses the warm-up calls write and discards them; for each
/// END sends the status of that response (if its head was readable).
fn drain(sock: UnixStream, tx: &mpsc::Sender<Option<String>>) {
    let Ok(mut chan) = Channel::new(sock) else {
        return;
    };
    let mut status = None;
    while let Ok(Some((kind, payload))) = chan.read_frame_detached() {
        if kind == Kind::Head {
            status = ipc::parse_head(payload.into())
                .ok()
                .map(|h| String::from_utf8_lossy(&h.status).into_owned());
        } else if kind == Kind::End && tx.send(status.take()).is_err() {
            return;
        }
    }
}
