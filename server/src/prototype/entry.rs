//! The exported entry point of `librwsgi.so` ([`crate::plugin`]): what the
//! binary calls in the prototype role. It rebuilds the configuration from
//! the process's own arguments and environment (the same ones the master
//! was started with), sets up logging in this copy of the library, takes
//! the control socket the master left open, and runs [`super::main`].

use std::os::fd::{FromRawFd, OwnedFd};

use crate::config::{Command, Config};
use crate::master::supervisor::{CONTROL_FD_ENV, ROLE_ENV};

/// Runs the prototype role. Exported unmangled for `dlsym`; a panic is
/// caught here and becomes exit code 101, never an unwind into the binary.
#[unsafe(no_mangle)]
pub extern "C" fn rwsgi_prototype_main() -> i32 {
    std::panic::catch_unwind(run).unwrap_or(101)
}

fn run() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env: Vec<(String, String)> = std::env::vars().collect();
    let config = match Config::load(&args, env) {
        Ok(Command::Serve(c, _)) => *c,
        Ok(_) => return 1,
        Err(e) => {
            eprintln!("rwsgi: {e}");
            return 1;
        }
    };
    if let Some(target) = &config.logging.logto {
        // The master opened it; every process may have to open it again.
        crate::logfile::remember(target, config.logging.chmod);
    }
    // One thread, and the arguments were read above. Always prepared, so
    // `uwsgi.setprocname()` works without any `procname` option.
    crate::proctitle::prepare(config.procnames.clone());
    crate::proctitle::set_child("uWSGI prototype");
    // The master already pointed stdout/stderr at the log file (inherited);
    // request lines are written by the master only.
    let _ = crate::telemetry::init_with(config.log_style, config.logging.date.as_deref(), None);
    // The `env` options are already in this process's environment: the
    // master set them before it started the prototype.
    // SAFETY: the variable is set only by the master, to an fd it left open
    // for us across exec; nothing else in this process owns it, and it is
    // taken once. The same holds for each `inherited` below.
    let Some(control) = (unsafe { inherited(CONTROL_FD_ENV) }) else {
        eprintln!("rwsgi: {ROLE_ENV}=prototype without {CONTROL_FD_ENV}");
        return 1;
    };
    // The master's worker table, for `uwsgi.workers()` (optional).
    // SAFETY: as for the control fd.
    let snapshot = unsafe { inherited(crate::snapshot::FD_ENV) };
    // The spooler counters the master reads for its stats (optional).
    // SAFETY: as for the control fd.
    let counters = unsafe { inherited(crate::spool::COUNTERS_FD_ENV) };
    // This generation's uWSGI signal socket (`uwsgi_signal.rs`).
    // SAFETY: as for the control fd.
    let signals = unsafe { inherited(crate::uwsgi_signal::FD_ENV) };
    // `worker-accept`: the uwsgi sockets and the workers' board.
    // SAFETY: as for the control fd.
    let board = unsafe { inherited(crate::board::FD_ENV) };
    let listeners = match std::env::var(crate::worker::direct::LISTEN_FDS_ENV) {
        // SAFETY: the master set the variable to the sockets it left open
        // for us; nothing else here owns them.
        Ok(list) => match unsafe { crate::worker::direct::inherit(&list) } {
            Ok(l) => l,
            Err(e) => {
                eprintln!("rwsgi: cannot take the uwsgi sockets: {e}");
                return 1;
            }
        },
        Err(_) => Vec::new(),
    };
    if let Ok(fds) = std::env::var(crate::cache::FDS_ENV) {
        // SAFETY: the master set the variable to the caches' fds it left
        // open for us; nothing else here owns them.
        unsafe { crate::cache::inherit(&fds) };
    }
    // SAFETY: single-threaded here; the variables must not leak into the
    // app's environment or its subprocesses.
    unsafe {
        std::env::remove_var(ROLE_ENV);
        std::env::remove_var(CONTROL_FD_ENV);
        std::env::remove_var(crate::snapshot::FD_ENV);
        std::env::remove_var(crate::uwsgi_signal::FD_ENV);
        std::env::remove_var(crate::spool::COUNTERS_FD_ENV);
        std::env::remove_var(crate::cache::FDS_ENV);
        std::env::remove_var(crate::board::FD_ENV);
        std::env::remove_var(crate::worker::direct::LISTEN_FDS_ENV);
    }
    if let Some(fd) = board {
        let board = match crate::board::Board::open(&fd, config.processes, config.threads) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("rwsgi: cannot map the workers' board: {e}");
                return 1;
            }
        };
        crate::worker::direct::set(crate::worker::direct::Direct {
            listeners,
            board,
            limits: config.limits(),
            socket_timeout: config.socket_timeout,
            log_rules: config.logging.rules,
            log_format: config
                .log_format
                .as_deref()
                .map(crate::reqlog::Template::parse),
            add_headers: config.add_headers.clone(),
            limit_post: config.limit_post,
        });
    }
    if let Some(fd) = counters {
        match crate::spool::Counters::open(&fd, true) {
            Ok(c) => crate::worker::spool_api::set_counters(c),
            Err(e) => {
                tracing::warn!(event = "spooler_counters_failed", cause = %e, "the stats will not show the spoolers")
            }
        }
    }
    if let Some(fd) = signals {
        crate::worker::signals::set_socket(fd);
    }
    if let Some(fd) = snapshot {
        match crate::snapshot::Reader::open(fd) {
            Ok(r) => crate::worker::uwsgi_module::set_snapshot(r),
            Err(e) => {
                tracing::warn!(event = "snapshot_failed", cause = %e, "uwsgi.workers() will be empty")
            }
        }
    }
    super::main(&config, control)
}

/// The fd the master named in the variable `name`, if it did.
///
/// # Safety
/// The fd must be open and owned by nothing else in this process, and be
/// taken only once.
unsafe fn inherited(name: &str) -> Option<OwnedFd> {
    let fd: i32 = std::env::var(name).ok()?.parse().ok()?;
    // SAFETY: the caller guarantees the fd is ours alone.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}
