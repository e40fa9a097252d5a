//! rwsgi: an application server for Python WSGI apps, compatible with uWSGI.
//!
//! One binary, three roles (ARCHITECTURE.md has the whole picture):
//! - the **master** (tokio, no Python): listeners, parsing, the request
//!   queue, the worker table, signals ([`master`], [`protocol`],
//!   [`dispatch`], [`exchange`]);
//! - the **prototype** (single-threaded, embeds CPython, imports the app
//!   once, the only process that forks) ([`prototype`]), which runs from
//!   this library built as `librwsgi.so`, the only file that links
//!   libpython ([`plugin`]);
//! - **workers**, forked from the prototype, running the app ([`worker`]).
//!
//! The master and the workers talk over [`ipc`] frames; the master and the
//! prototype over [`control`] messages.

pub mod accept_queue;
pub mod board;
pub mod bundle;
pub mod cache;
pub mod cheaper;
pub mod config;
pub mod conn;
pub mod control;
pub mod daemonize;
pub mod dispatch;
pub mod environ;
pub mod error;
pub mod exchange;
pub mod hooks;
pub mod http_status;
pub mod ipc;
pub mod limits;
pub mod listen;
pub mod logfile;
pub mod logrotate;
pub mod master;
pub mod mule;
pub mod plugin;
pub mod proctitle;
pub mod protocol;
pub mod prototype;
pub mod reqlog;
pub mod routing;
pub mod shared_words;
pub mod snapshot;
pub mod spool;
pub mod spooler;
pub mod staticfiles;
pub mod stats;
pub mod telemetry;
pub mod trim;
pub mod uwsgi_signal;
pub mod worker;
