//! The `rwsgi` binary: parses the configuration, sets up logging, and runs
//! the role this process was started for (master, or prototype when the
//! master started it). The only place that decides the exit code.

use std::process::ExitCode;

use rwsgi::config::{Command, Config, LogStyle, options};
use rwsgi::master::supervisor::ROLE_ENV;

fn main() -> ExitCode {
    if std::env::var(ROLE_ENV).as_deref() == Ok("prototype") {
        // The prototype runs from the Python host library (plugin.rs), which
        // reads the same arguments and environment itself.
        return match rwsgi::plugin::run_prototype() {
            Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            Err(e) => {
                eprintln!("rwsgi: {e}");
                ExitCode::from(1)
            }
        };
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("bundle") {
        rwsgi::telemetry::init(LogStyle::Text);
        return match rwsgi::bundle::run(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rwsgi bundle: {e:#}");
                ExitCode::from(1)
            }
        };
    }
    let env: Vec<(String, String)> = std::env::vars().collect();
    let (config, warnings) = match Config::load(&args, env) {
        Ok(Command::Serve(c, w)) => (*c, w),
        Ok(Command::Help) => {
            print!("{}", options::help());
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("rwsgi {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            rwsgi::telemetry::init(LogStyle::Text);
            eprintln!("rwsgi: {e}");
            return ExitCode::from(1);
        }
    };
    // `print`: as uWSGI prints it, when the configuration is read.
    for line in &config.prints {
        println!("{line}");
    }
    // SAFETY: nothing has started a thread yet.
    if let (Some(d), false) = (&config.daemonize, unsafe { rwsgi::daemonize::is_daemon() }) {
        let log = config.logging.logto.as_deref().unwrap_or(&d.log);
        // `logto2` opens the log only after dropping privileges.
        let early = (!config.logging.logto_after_drop).then_some(log);
        return match rwsgi::daemonize::start(&args, d.wait_ready, early, log) {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("rwsgi: cannot daemonize: {e}");
                ExitCode::from(1)
            }
        };
    }
    if let Some(mask) = config.umask {
        // SAFETY: umask only changes this process's file-creation mask.
        unsafe { libc::umask(mask) };
    }
    let log = &config.logging;
    if let Some(target) = log.logto.as_deref().filter(|_| !log.logto_after_drop) {
        if let Err(e) = rwsgi::logfile::redirect(target, log.chmod, log.reopen) {
            eprintln!("rwsgi: cannot open the log {target}: {e}");
            return ExitCode::from(1);
        }
    }
    let logging = rwsgi::telemetry::init_with(
        config.log_style,
        log.date.as_deref(),
        log.req_file.as_deref(),
    );
    if let Err(e) = logging {
        tracing::error!(event = "req_logger_failed", cause = %e, "cannot open the request log file");
        return ExitCode::from(1);
    }
    if let Some(ini) = &config.show_config {
        for line in ini.lines() {
            tracing::info!(event = "show_config", "{line}");
        }
    }
    for (k, v) in &config.env {
        // SAFETY: no other thread exists yet (the tokio runtime is built
        // below).
        unsafe { std::env::set_var(k, v) };
    }
    for w in &warnings {
        tracing::warn!(event = "config_warning", "{w}");
    }
    if !rwsgi::hooks::run(&config.hooks, rwsgi::hooks::Phase::Asap) {
        return ExitCode::from(1);
    }
    if let Some(mib) = config.limit_as {
        rwsgi::limits::limit_address_space(mib);
    }
    if let Some(n) = config.max_fd {
        rwsgi::limits::raise_fd_limit(n);
    }
    if config.procnames.wanted() {
        // Still one thread, and the arguments were read above.
        rwsgi::proctitle::prepare(config.procnames.clone());
        rwsgi::proctitle::set_master();
    }
    // One thread: the master's work per request is a few syscalls, and on
    // small machines the cores belong to the Python workers. Measured with
    // bench/run.py: a multi-threaded runtime cost more CPU per request in
    // cross-thread wake-ups than it gained.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rwsgi: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(
        event = "starting",
        version = env!("CARGO_PKG_VERSION"),
        pid = std::process::id(),
        "*** Starting rwsgi {} (master pid: {}) ***",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    match runtime.block_on(rwsgi::master::run(config, args)) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            tracing::error!(event = "fatal", "{e:#}");
            ExitCode::from(1)
        }
    }
}
