//! The worker process: receives requests from the master on its channel,
//! runs the app, streams the response back. With `worker-accept` it also
//! accepts connections on the uwsgi sockets itself (`direct.rs`); otherwise
//! it never touches client sockets or listeners. It exits when the master
//! closes its channel or sends STOP, or when the channel breaks.

pub mod apps;
pub mod channel;
pub mod direct;
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
        let core = u16::try_from(i + 1).unwrap_or(u16::MAX);
        let spawned =
            builder.spawn(move || serve_one(core, stream, apps, interned, &st, &recycler));
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                tracing::error!(event = "thread_failed", cause = %e, "cannot start a worker thread")
            }
        }
    }
    let code = serve_one(0, first, apps, interned, st, recycler);
    for t in threads {
        let _ = t.join();
    }
    code
}

/// Serves requests on one channel (and, with `worker-accept`, the uwsgi
/// sockets), as thread `core` of the worker.
fn serve_one(
    core: u16,
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
        let direct = direct::get().filter(|d| !d.listeners.is_empty());
        let me = Me {
            pid: i32::try_from(std::process::id()).unwrap_or(0),
            slot: uwsgi_module::worker_id(),
            core,
            apps: &apps,
            chan: &chan,
            recycler,
        };
        let mut taken: u32 = 0;
        loop {
            if let Some(d) = direct {
                let counts = (&mut requests, &mut taken);
                let turn = direct_turn(py, d, &me, &mut interned, counts);
                match turn {
                    Turn::Served => {
                        write_trace(py, trace.as_deref());
                        continue;
                    }
                    Turn::Nothing => continue,
                    Turn::Retire => return EXIT_STOPPED,
                    Turn::Channel => {}
                }
            }
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
            write_trace(py, trace.as_deref());
            if retire {
                // The master gives this channel nothing more and closes the
                // worker's idle ones; the process exits when every thread
                // has finished its request.
                return EXIT_STOPPED;
            }
        }
    })
}

/// Writes what a traced run records, when this is one (`rwsgi bundle`).
fn write_trace(py: Python<'_>, path: Option<&std::path::Path>) {
    if let Some(path) = path {
        if let Err(e) = trace::write(py, path) {
            tracing::error!(event = "trace_failed", cause = %e, "cannot write the trace");
        }
    }
}

/// What one turn of `worker-accept`'s wait gave.
enum Turn {
    /// A request from a connection this thread accepted was served.
    Served,
    /// Nothing to do (no connection after all, a ping, a refused packet,
    /// a timeout).
    Nothing,
    /// The channel has a frame.
    Channel,
    /// The worker retires: this thread stops.
    Retire,
}

/// A worker thread: who it is (for the request lines and the board) and
/// what it serves with.
struct Me<'a> {
    pid: i32,
    slot: u32,
    core: u16,
    apps: &'a apps::Apps,
    chan: &'a Rc<RefCell<Channel>>,
    recycler: &'a Recycler,
}

/// Connections a thread takes one after the other without looking at its
/// channel: under load the next connection is waiting when a request
/// ends, and taking it at once saves a `poll`; STOP and uWSGI signals
/// wait at most this many requests.
const TAKEN_WITHOUT_WAIT: u32 = 16;

/// With `worker-accept`: takes a waiting connection, or waits for the
/// channel or a connection, and serves the connection's request.
/// `counts` are this thread's requests and the connections it took
/// without waiting since it last looked at its channel.
fn direct_turn(
    py: Python<'_>,
    d: &'static direct::Direct,
    me: &Me<'_>,
    interned: &mut wsgi::Interned,
    counts: (&mut u64, &mut u32),
) -> Turn {
    let (requests, taken) = counts;
    let (chan, recycler) = (me.chan, me.recycler);
    if recycler.retiring() {
        return Turn::Retire;
    }
    if chan.borrow().has_buffered() {
        return Turn::Channel;
    }
    let waiting = if *taken < TAKEN_WITHOUT_WAIT {
        direct::try_accept(d)
    } else {
        None
    };
    let (conn, tcp) = match waiting {
        Some(c) => {
            *taken += 1;
            c
        }
        None => {
            *taken = 0;
            let fd = chan.borrow().fd();
            // Woken at least once a second, to see another thread retire.
            let i = match py.detach(|| direct::wait(fd, d, 1000)) {
                direct::Wake::Nothing => return Turn::Nothing,
                direct::Wake::Channel => return Turn::Channel,
                direct::Wake::Listener(i) => i,
            };
            // Another thread may have decided to retire while this one
            // waited: the connection is left to the other workers.
            if recycler.retiring() {
                return Turn::Retire;
            }
            let Some(c) = direct::accept(d, i) else {
                return Turn::Nothing;
            };
            c
        }
    };
    let Some(packet) = py.detach(|| direct::read_packet(&conn, d)) else {
        return Turn::Nothing;
    };
    let Some(req) = packet.parse(&conn, d) else {
        return Turn::Nothing;
    };
    let client = direct::Client::new(d, conn, tcp, &packet, &req, (me.slot, me.core));
    *requests += 1;
    if serve_direct(py, (me, *requests), interned, client, &req) {
        // This request is served; the thread stops.
        return Turn::Retire;
    }
    Turn::Served
}

/// Serves a request from a connection this worker accepted (`direct.rs`);
/// `who` is the thread and the requests it served with this one. True
/// when the worker retires after it.
fn serve_direct(
    py: Python<'_>,
    who: (&Me<'_>, u64),
    interned: &mut wsgi::Interned,
    client: direct::Client,
    req: &direct::Parsed<'_>,
) -> bool {
    let (me, requests) = who;
    let chan = me.chan;
    uwsgi_module::follow_log();
    chan.borrow_mut().begin_direct(client);
    let handled = wsgi::handle_parsed(py, me.apps, interned, chan, &req.head, &req.vars);
    let client = chan.borrow_mut().end_direct();
    let (exception, log) = match handled {
        Ok(o) => (o.exception, o.log),
        Err(e) => {
            // Not a client's failure (those are not errors here): nothing
            // was sent, nginx answers 502.
            tracing::error!(event = "direct_request_failed", cause = %e, "cannot serve the request");
            (true, uwsgi_module::end_request())
        }
    };
    let retire = me.recycler.after_request();
    if let Some(c) = client {
        let served = crate::reqlog::Served {
            pid: me.pid,
            wid: me.slot,
            core: me.core,
            worker_requests: requests,
            total_requests: 0,
            log_this: log.log_this,
            logvars: log.logvars.into(),
        };
        let vars = req.vars;
        py.detach(|| c.finish(exception, served, &vars));
    }
    retire
}
