//! The worker process: receives requests from the master on its channel,
//! runs the app, streams the response back. It never touches client sockets
//! or listeners. It exits when the master closes its channel or sends STOP,
//! or when the channel breaks.

pub mod apps;
pub mod channel;
pub mod input;
pub mod locks;
pub mod mule_api;
pub mod recycle;
pub mod sharedarea;
pub mod signals;
pub mod spool_api;
pub mod support;
pub mod trace;
pub mod uwsgi_module;
pub mod wsgi;

use std::cell::RefCell;
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use pyo3::prelude::*;

use self::channel::Channel;
use self::recycle::Recycler;
use crate::ipc::{self, Kind};

/// Exit code of a worker that stopped as asked (uWSGI's `end_me` uses 30).
pub const EXIT_STOPPED: i32 = 30;
/// Exit code of a worker whose channel failed.
pub const EXIT_CHANNEL: i32 = 31;

/// Serves requests on every channel (one thread each; the first on this
/// thread) until told to stop; returns the exit code.
///
/// `interned` is normally made by the prototype before it forks (shared by
/// every worker); when it is `None` the worker makes its own. `stack` is
/// the other threads' stack size in bytes (`threads-stacksize`).
pub fn serve(
    stack: Option<usize>,
    streams: Vec<UnixStream>,
    apps: apps::Apps,
    interned: Option<wsgi::Interned>,
    st: &wsgi::Static,
    recycler: &Recycler,
) -> i32 {
    let mut streams = streams.into_iter();
    let Some(first) = streams.next() else {
        return EXIT_CHANNEL;
    };
    let mut threads = Vec::new();
    for (i, stream) in streams.enumerate() {
        let (apps, interned) = Python::attach(|py| {
            (
                apps.clone_ref(py),
                interned.as_ref().map(|i| i.clone_ref(py)),
            )
        });
        let st = wsgi::Static { ..*st };
        let recycler = recycler.clone();
        let mut builder = std::thread::Builder::new().name(format!("rwsgi-core-{}", i + 1));
        if let Some(bytes) = stack {
            builder = builder.stack_size(bytes);
        }
        let spawned = builder.spawn(move || serve_one(stream, apps, interned, &st, &recycler));
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                tracing::error!(event = "thread_failed", cause = %e, "cannot start a worker thread")
            }
        }
    }
    let code = serve_one(first, apps, interned, st, recycler);
    for t in threads {
        let _ = t.join();
    }
    code
}

/// Serves requests on one channel.
fn serve_one(
    stream: UnixStream,
    apps: apps::Apps,
    interned: Option<wsgi::Interned>,
    st: &wsgi::Static,
    recycler: &Recycler,
) -> i32 {
    let chan = match Channel::new(stream) {
        Ok(c) => Rc::new(RefCell::new(c)),
        Err(e) => {
            tracing::error!(event = "channel_failed", cause = %e, "worker channel failed");
            return EXIT_CHANNEL;
        }
    };
    Python::attach(|py| {
        let made = interned.map_or_else(|| wsgi::Interned::new(py, st), Ok);
        let mut interned = match made {
            Ok(i) => i,
            Err(e) => {
                e.print(py);
                return EXIT_CHANNEL;
            }
        };
        let trace = trace::target();
        let mut requests: u64 = 0;
        loop {
            let frame = chan.borrow_mut().read_frame(py);
            let payload = match frame {
                Ok(Some((Kind::Request, payload))) => payload,
                Ok(Some((Kind::Stop, _))) | Ok(None) => return EXIT_STOPPED,
                Ok(Some((Kind::Signal, payload))) => {
                    // A request without a client: the handler runs, END
                    // gives the worker back (not counted as a request).
                    let ok = payload.first().is_some_and(|&sig| signals::run(py, sig));
                    let end = ipc::end_payload(&ipc::EndInfo {
                        exception: !ok,
                        requests,
                        ..Default::default()
                    });
                    let mut c = chan.borrow_mut();
                    c.push(Kind::End, &end);
                    if let Err(e) = c.flush(py) {
                        tracing::debug!(event = "channel_failed", cause = %e, "worker channel failed");
                        return EXIT_CHANNEL;
                    }
                    continue;
                }
                Ok(Some((kind, _))) => {
                    tracing::error!(
                        event = "unexpected_frame",
                        ?kind,
                        "unexpected frame from the master"
                    );
                    return EXIT_CHANNEL;
                }
                Err(e) => {
                    tracing::error!(event = "channel_failed", cause = %e, "worker channel failed");
                    return EXIT_CHANNEL;
                }
            };
            requests += 1;
            uwsgi_module::follow_log();
            let outcome = match wsgi::handle(py, &apps, &mut interned, &chan, &payload) {
                Ok(o) => o,
                Err(e) => {
                    tracing::debug!(event = "channel_failed", cause = %e, "worker channel failed during a request");
                    return EXIT_CHANNEL;
                }
            };
            let retire = recycler.after_request();
            let end = ipc::end_payload(&ipc::EndInfo {
                exception: outcome.exception,
                requests,
                retire,
                log_this: outcome.log.log_this,
                logvars: outcome.log.logvars.into(),
            });
            let mut c = chan.borrow_mut();
            c.push(Kind::End, &end);
            if let Err(e) = c.flush(py) {
                tracing::debug!(event = "channel_failed", cause = %e, "worker channel failed");
                return EXIT_CHANNEL;
            }
            drop(c);
            if let Some(path) = &trace {
                if let Err(e) = trace::write(py, path) {
                    tracing::error!(event = "trace_failed", cause = %e, "cannot write the trace");
                }
            }
            if retire {
                // The master gives this channel nothing more and closes the
                // worker's idle ones; the process exits when every thread
                // has finished its request.
                return EXIT_STOPPED;
            }
        }
    })
}
