//! The single integration-test binary: every test starts the real `rwsgi`
//! binary with real Python apps (and, in `nginx`, a real nginx).

mod harness;

/// `rwsgi bundle` and the bundle run under chroot as 65534.
mod bundle;
/// The cheaper subsystem: workers follow the load; the master FIFO.
mod cheaper;
/// Options real uWSGI ini files carry: logto, pidfile, limit-post, …
mod compat;
/// The HTTP listener: keep-alive, chunking, limits, big bodies.
mod http;
/// Lifecycle: worker crashes, graceful shutdown, config errors.
mod lifecycle;
/// Loading apps with PasteDeploy, and the `import` modules.
mod loading;
/// Mules: @mulefunc, mule scripts, farms, respawn.
mod mules;
/// nginx `uwsgi_pass` end to end, over a unix socket and TCP.
mod nginx;
/// uWSGI signals: handlers, targets, timers, file monitors, modifier1 110.
mod signals;
/// The spooler: @spool tasks run in spooler processes.
mod spooler;
/// The `uwsgi` Python module and `uwsgidecorators`.
mod uwsgi_module;
/// The uwsgi listener: raw packets, ping, malformed input, uwsgi_curl.
mod uwsgi_proto;
/// `worker-accept`: workers that accept on the uwsgi sockets themselves.
mod worker_accept;
/// PEP 3333 conformance, checked by `wsgiref.validate`, and Flask.
mod wsgi_conformance;
