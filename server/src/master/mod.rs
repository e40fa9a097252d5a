//! `master::run`: binds the listeners, drops privileges, starts the
//! supervisor (prototype and workers), accepts connections, and on SIGTERM,
//! SIGINT or SIGQUIT shuts down gracefully: stop accepting, let in-flight
//! requests finish within `reload-mercy`, stop the workers, remove unix
//! sockets with `vacuum`.
//!
//! Deliberate difference from uWSGI 2.0: SIGTERM is a graceful shutdown (what
//! container runtimes and Kubernetes expect), not a reload.

pub mod fifo;
pub mod fsmon;
pub mod sched;
pub mod supervisor;
pub mod touch;

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::accept_queue;
use crate::config::{Config, Protocol};
use crate::conn::Lazy;
use crate::dispatch::Pool;
use crate::environ::ConnInfo;
use crate::listen::{self, Accepted, Bound, Listener};
use crate::protocol::{self, Ctx};
use supervisor::{Outcome, Request, Settings, Supervisor};

/// Counts open connections, so shutdown can wait for them.
#[derive(Debug, Default)]
struct Tracker {
    open: AtomicUsize,
    idle: Notify,
}

struct ConnGuard(Arc<Tracker>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Tracker {
    fn enter(self: &Arc<Self>) -> ConnGuard {
        self.open.fetch_add(1, Ordering::AcqRel);
        ConnGuard(self.clone())
    }

    async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.open.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// The process exit code of a clean run.
pub const EXIT_OK: i32 = 0;

/// Runs the master until shutdown; returns the exit code.
pub async fn run(config: Config, args: Vec<String>) -> anyhow::Result<i32> {
    if config.sockets.is_empty() {
        anyhow::bail!("no socket to listen on: give --http, --http-socket or --socket");
    }
    let tcp = listen::TcpOptions {
        keepalive: config.so_keepalive,
        reuse_port: config.reuse_port,
    };
    let mut bound = Vec::new();
    for (i, spec) in config.sockets.iter().enumerate() {
        let b = listen::bind(spec, config.listen, config.chmod_socket, tcp)
            .with_context(|| format!("cannot bind {}", spec.address))?;
        let kind = match &b.listener {
            Listener::Tcp(_) => "TCP",
            Listener::Unix(..) => "UNIX",
        };
        tracing::info!(event = "bound", socket = i, name = %b.name, protocol = b.protocol.name(),
            "{} socket {i} bound to {kind} address {}", b.protocol.name(), b.name);
        bound.push(b);
    }
    let stats_listener = match &config.stats {
        Some(addr) => {
            let spec = crate::config::SocketSpec {
                address: addr.clone(),
                protocol: Protocol::Http,
            };
            let b = listen::bind(&spec, config.listen, config.chmod_socket, tcp)
                .with_context(|| format!("cannot bind the stats server on {addr}"))?;
            tracing::info!(event = "stats_bound", name = %b.name, "stats server enabled on {}", b.name);
            Some(b.listener)
        }
        None => None,
    };
    if let Some(owner) = &config.chown_socket {
        for b in &bound {
            if let Listener::Unix(_, path) = &b.listener {
                chown(path, owner).with_context(|| format!("chown-socket {owner}"))?;
            }
        }
    }
    if let Some(path) = &config.pidfiles.0 {
        write_master_pidfile(path)?;
    }
    // What `vacuum` removes: every unix socket made, the stats one too.
    let unix_paths: Vec<_> = bound
        .iter()
        .map(|b| &b.listener)
        .chain(stats_listener.as_ref())
        .filter_map(|l| match l {
            Listener::Unix(_, p) => Some(p.clone()),
            Listener::Tcp(_) => None,
        })
        .collect();
    // A failed hook stops the start; the sockets made so far are removed.
    let hooks = |phase| {
        let ok = crate::hooks::run(&config.hooks, phase);
        if !ok {
            vacuum(&config, &unix_paths);
        }
        ok
    };
    if !hooks(crate::hooks::Phase::AsRoot) {
        return Ok(1);
    }
    drop_privileges(&config)?;
    if let Some(path) = &config.pidfiles.1 {
        write_master_pidfile(path)?;
    }
    let log = &config.logging;
    if let Some(target) = log.logto.as_deref().filter(|_| log.logto_after_drop) {
        crate::logfile::redirect(target, log.chmod, log.reopen)
            .with_context(|| format!("cannot open the log {target}"))?;
    }
    sched::apply(config.sched_policy);
    if !hooks(crate::hooks::Phase::AsUser) || !hooks(crate::hooks::Phase::PreApp) {
        return Ok(1);
    }

    let pool = Pool::new(
        config.listen as usize,
        config.processes,
        config.threads,
        config.worker_pipeline,
    );
    // The kernel accept queues that count in the backlog: TCP listeners',
    // and with `worker-accept` the unix sockets the workers accept on (the
    // master drains the others at once).
    let queue_of = |b: &Bound| match &b.listener {
        Listener::Tcp(l) => Some(accept_queue::Listener::Tcp(l.as_raw_fd())),
        Listener::Unix(l, _) if workers_accept_on(&config, b) => {
            Some(accept_queue::Listener::Unix(l.as_raw_fd()))
        }
        Listener::Unix(..) => None,
    };
    let queues: Vec<accept_queue::Listener> = bound.iter().filter_map(queue_of).collect();
    let stats_sockets: Vec<(String, &'static str, Option<accept_queue::Listener>)> = bound
        .iter()
        .map(|b| (b.name.clone(), b.protocol.name(), queue_of(b)))
        .collect();
    // `worker-accept`: the uwsgi sockets go to the workers (each prototype
    // generation inherits them), which write what they serve on the board.
    let (bound, direct) = worker_accept(&config, bound, &pool)?;
    if let Some(kib) = config.threads_stacksize {
        tracing::info!(
            event = "threads_stacksize",
            kib,
            "threads stack size set to {kib}k"
        );
    }
    // The caches, made once for the whole instance (`cache/`): every
    // prototype generation maps them, the stats read their counters.
    let (cache_fds, caches): (Vec<std::os::fd::OwnedFd>, Vec<crate::cache::Cache>) =
        crate::cache::make_all(&config.caches, &config.cache_preload)?
            .into_iter()
            .unzip();
    let caches: Vec<Arc<crate::cache::Cache>> = caches.into_iter().map(Arc::new).collect();
    // The spooler processes' counters, shared with the prototype, for the
    // stats (`spool::Counters`).
    let spooler_counters = if config.spooling.dirs.is_empty() {
        None
    } else {
        crate::spool::Counters::create()
            .inspect_err(|e| tracing::warn!(event = "spooler_counters_failed", cause = %e, "the stats will not show the spoolers"))
            .ok()
            .map(|(fd, c)| (Arc::new(fd), Arc::new(c)))
    };
    let (sup_tx, sup_rx) = mpsc::channel(64);
    let sup = Supervisor::new(
        Settings {
            daemons: config.daemons.clone(),
            crons: config.crons.clone(),
            cron_harakiri: config.cron_harakiri,
            cron_dir: config.chdir.clone(),
            hooks: config.hooks.clone(),
            args,
            processes: config.processes,
            threads: config.threads,
            cheaper: config.cheaper.clone(),
            check_interval: config.check_interval,
            harakiri: config.harakiri,
            max_worker_lifetime: config.max_worker_lifetime,
            evil_limits: config.evil_reload,
            harakiri_graceful: config.harakiri_graceful,
            farms: config.mules.farms.iter().map(|f| f.name.clone()).collect(),
            spooler_counters: spooler_counters.as_ref().map(|(fd, _)| fd.clone()),
            cache_fds: cache_fds.into_iter().map(Arc::new).collect(),
            queues,
            direct,
            need_app: config.need_app,
            exit_on_reload: config.exit_on_reload,
        },
        pool.clone(),
    );
    let mut sup_task = tokio::spawn(sup.run(sup_rx));
    let hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into());
    let ctx = Arc::new(Ctx {
        pool: pool.clone(),
        limits: config.limits(),
        socket_timeout: config.socket_timeout,
        log_rules: config.logging.rules,
        limit_post: config.limit_post,
        add_headers: config.add_headers.clone(),
        statics: crate::staticfiles::Statics::new(&config.static_maps, &config.static_index)
            .with_rules(
                &config.static_skip_ext,
                &config.static_expires,
                config.honour_range,
            )
            .with_gzip(&config.static_gzip)
            .with_safe(&config.static_safe),
        log_format: config
            .log_format
            .as_deref()
            .map(|f| Arc::new(crate::reqlog::Template::parse(f))),
        hostname,
        proxy_protocol: config.proxy_protocol,
        signals: sup_tx.clone(),
        // Checked when the configuration was read.
        routes: crate::routing::Rules::parse(&config.routes).unwrap_or_default(),
    });
    let tracker = Arc::new(Tracker::default());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut accepts = Vec::new();
    if let Some(listener) = stats_listener {
        let info = crate::stats::Info {
            sockets: stats_sockets,
            listen: config.listen,
            cwd: std::env::current_dir()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            minified: config.stats_minified,
            caches,
            spoolers: spooler_counters.map(|(_, c)| crate::stats::SpoolerInfo {
                dirs: config.spooling.dirs.clone(),
                processes: config.spooling.processes as usize,
                counters: c,
            }),
        };
        accepts.push(tokio::spawn(crate::stats::server::serve(
            listener,
            pool.clone(),
            std::sync::Arc::new(info),
            config.stats_http,
            config.socket_timeout,
        )));
    }
    for b in bound {
        accepts.push(tokio::spawn(accept_loop(
            b,
            ctx.clone(),
            tracker.clone(),
            shutdown_rx.clone(),
        )));
    }

    // The log file, for rotations asked by `touch-logrotate` and the FIFO.
    let log_file = touch::LogFile {
        path: (config.logging.logto.as_deref())
            .filter(|t| crate::logfile::udp_address(t).is_none())
            // Relative to where rwsgi started, as the file was opened.
            .map(|t| std::path::absolute(t).unwrap_or_else(|_| t.into())),
        backup: config.logging.backupname.clone(),
    };
    let (fifo_tx, mut fifo_rx) = mpsc::channel(16);
    if let (Some(path), true) = (&log_file.path, config.logging.maxsize > 0) {
        tokio::spawn(crate::logrotate::watch(
            path.clone(),
            config.logging.maxsize,
            log_file.backup.clone(),
        ));
    }
    for path in &config.master_fifo {
        tokio::spawn(fifo::serve(path.clone(), fifo_tx.clone()));
    }
    drop(fifo_tx);
    let sup_fifo = sup_tx.clone();
    let fifo_log = log_file.clone();
    let fifo_loop = async move {
        while let Some(cmd) = fifo_rx.recv().await {
            match cmd {
                fifo::Command::Delta(d) => {
                    let _ = sup_fifo.send(Request::Delta(d)).await;
                }
                fifo::Command::Reload => {
                    let _ = sup_fifo.send(Request::Reload("master FIFO")).await;
                }
                fifo::Command::LogReopen => {
                    let _ = sup_fifo.send(Request::ReopenLog).await;
                }
                fifo::Command::LogRotate => match &fifo_log.path {
                    Some(path) => {
                        crate::logrotate::rotate_now(path, fifo_log.backup.as_deref()).await
                    }
                    None => tracing::warn!(
                        event = "fifo_logrotate_ignored",
                        "the master FIFO asked for a log rotation, but there is no log file (logto)"
                    ),
                },
                fifo::Command::Shutdown => return,
            }
        }
        std::future::pending::<()>().await
    };
    // SIGHUP reloads gracefully, as in uWSGI (a new prototype generation,
    // workers replaced one by one); so does touching a touch-reload file.
    let mut hup = signal(SignalKind::hangup())?;
    let sup_hup = sup_tx.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            if sup_hup.send(Request::Reload("SIGHUP")).await.is_err() {
                return;
            }
        }
    });
    if !config.touches.is_empty() {
        tokio::spawn(touch::watch(
            config.touches.clone(),
            sup_tx.clone(),
            log_file.clone(),
        ));
    }
    fsmon::start(config.fs_watches.clone(), sup_tx.clone(), log_file)?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    let code = tokio::select! {
        _ = term.recv() => None,
        _ = int.recv() => None,
        _ = quit.recv() => None,
        _ = fifo_loop => None,
        res = &mut sup_task => Some(match res {
            Ok(Outcome::NoApp) => crate::prototype::EXIT_NO_APP,
            Ok(Outcome::Failed) => {
                tracing::error!(event = "startup_failed", "cannot serve: the prototype could not start");
                1
            }
            Ok(_) | Err(_) => 1,
        }),
    };
    if let Some(code) = code {
        for a in &accepts {
            a.abort();
        }
        vacuum(&config, &unix_paths);
        if code == crate::prototype::EXIT_NO_APP {
            tracing::error!(
                event = "no_app",
                "need-app requested, destroying the instance..."
            );
        }
        return Ok(code);
    }
    tracing::info!(event = "shutdown", "graceful shutdown triggered...");
    for a in &accepts {
        a.abort();
    }
    let _ = shutdown_tx.send(true);
    if tokio::time::timeout(config.reload_mercy, tracker.wait_idle())
        .await
        .is_err()
    {
        tracing::warn!(
            event = "mercy_expired",
            open = tracker.open.load(Ordering::Acquire),
            "reload-mercy expired with requests still running"
        );
    }
    let (done_tx, done_rx) = oneshot::channel();
    if sup_tx.send(Request::Stop(done_tx)).await.is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(10), done_rx).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), sup_task).await;
    crate::hooks::run(&config.hooks, crate::hooks::Phase::AsUserAtexit);
    vacuum(&config, &unix_paths);
    if supervisor::EXITED_ON_RELOAD.load(Ordering::Acquire) {
        tracing::info!(event = "game_over", "uWSGI: GAME OVER (insert coin)");
    } else {
        tracing::info!(event = "goodbye", "goodbye to uWSGI.");
    }
    Ok(EXIT_OK)
}

fn vacuum(config: &Config, paths: &[std::path::PathBuf]) {
    if !config.vacuum {
        return;
    }
    for p in paths {
        if std::fs::remove_file(p).is_ok() {
            tracing::info!(event = "vacuum", path = %p.display(), "VACUUM: unix socket {} removed.", p.display());
        }
    }
    for (p, which) in [(&config.pidfiles.0, ""), (&config.pidfiles.1, "2")] {
        if let Some(p) = p {
            if std::fs::remove_file(p).is_ok() {
                tracing::info!(event = "vacuum", path = %p.display(), "VACUUM: pidfile{which} removed.");
            }
        }
    }
}

/// Whether the workers accept on `b` themselves: its uwsgi sockets, with
/// `worker-accept`.
fn workers_accept_on(config: &Config, b: &Bound) -> bool {
    config.worker_accept && b.protocol == Protocol::Uwsgi
}

/// With `worker-accept`, takes the uwsgi sockets out of `bound` (the
/// master will not accept on them: they leave its reactor) and makes the
/// workers' board, which the worker table reads from then on. Returns the
/// sockets the master still serves and what the prototypes inherit.
fn worker_accept(
    config: &Config,
    bound: Vec<Bound>,
    pool: &Pool,
) -> anyhow::Result<(Vec<Bound>, Option<Arc<supervisor::Direct>>)> {
    if !config.worker_accept {
        return Ok((bound, None));
    }
    let (uwsgi, rest): (Vec<Bound>, Vec<Bound>) = bound
        .into_iter()
        .partition(|b| workers_accept_on(config, b));
    if uwsgi.is_empty() {
        tracing::warn!(
            event = "worker_accept_unused",
            "worker-accept is set but there is no uwsgi socket: the master serves every request"
        );
        return Ok((rest, None));
    }
    let (board_fd, board) = crate::board::Board::create(config.processes, config.threads)
        .context("cannot make the workers' board")?;
    pool.table.set_board(Arc::new(board));
    let listeners = uwsgi
        .into_iter()
        .map(|b| match b.listener {
            Listener::Tcp(l) => (std::os::fd::OwnedFd::from(l.into_inner()), true),
            Listener::Unix(l, _) => (std::os::fd::OwnedFd::from(l.into_inner()), false),
        })
        .collect();
    tracing::info!(
        event = "worker_accept",
        "workers accept on the uwsgi sockets themselves (worker-accept)"
    );
    Ok((
        rest,
        Some(Arc::new(supervisor::Direct {
            board: board_fd,
            listeners,
        })),
    ))
}

/// Writes the master's pid, as uWSGI does (`%d\n`).
fn write_master_pidfile(path: &std::path::Path) -> anyhow::Result<()> {
    let pid = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
    write_pidfile(path, pid)
        .with_context(|| format!("cannot write the pidfile {}", path.display()))?;
    tracing::info!(event = "pidfile", path = %path.display(), "writing pidfile to {}", path.display());
    Ok(())
}

/// Writes `pid` (`%d\n`) to a file next to `path` and renames it over
/// `path`, so a reader never sees a half-written file (uWSGI's
/// `safe-pidfile`, always).
pub(crate) fn write_pidfile(path: &std::path::Path, pid: i32) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, format!("{pid}\n")).and_then(|()| std::fs::rename(&tmp, path))
}

/// `chown-socket`: `user[:group]`, names or numbers (the group defaults to
/// the user's).
fn chown(path: &std::path::Path, owner: &str) -> anyhow::Result<()> {
    let (user, group) = owner
        .split_once(':')
        .map_or((owner, None), |(u, g)| (u, Some(g)));
    let (uid, user_gid) = user_id(user)?;
    let gid = group.map(group_id).transpose()?.or(user_gid);
    nix::unistd::chown(path, Some(uid), gid)
        .with_context(|| format!("chown {}", path.display()))?;
    Ok(())
}

async fn accept_loop(
    b: Bound,
    ctx: Arc<Ctx>,
    tracker: Arc<Tracker>,
    shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = b.listener.next().await;
        let guard = tracker.enter();
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        let protocol = b.protocol;
        let port = b.port.clone();
        tokio::spawn(async move {
            let _guard = guard;
            match (accepted, protocol) {
                (Accepted::Tcp(s, peer), Protocol::Uwsgi) => {
                    protocol::uwsgi::serve(Lazy::new(s), peer.to_string(), ctx).await
                }
                (Accepted::Unix(s), Protocol::Uwsgi) => {
                    protocol::uwsgi::serve(Lazy::new(s), String::from("unix"), ctx).await
                }
                (Accepted::Tcp(s, peer), Protocol::Http) => {
                    let info = ConnInfo {
                        remote_addr: protocol::ip_string(peer.ip()),
                        remote_port: peer.port().to_string(),
                        server_name: ctx.hostname.clone(),
                        server_port: port,
                    };
                    protocol::http::serve_accepted(Lazy::new(s), info, ctx, shutdown).await
                }
                (Accepted::Unix(s), Protocol::Http) => {
                    let info = ConnInfo {
                        remote_addr: String::new(),
                        remote_port: String::new(),
                        server_name: ctx.hostname.clone(),
                        server_port: port,
                    };
                    protocol::http::serve_accepted(Lazy::new(s), info, ctx, shutdown).await
                }
            }
        });
    }
}

/// Switches to `gid` then `uid` (names or numbers), after binding.
fn drop_privileges(config: &Config) -> anyhow::Result<()> {
    use nix::unistd::{setgid, setgroups, setuid};
    if let Some(g) = &config.gid {
        let gid = group_id(g)?;
        setgroups(&[gid]).context("setgroups() failed")?;
        setgid(gid).context("setgid() failed")?;
        tracing::info!(event = "setgid", gid = gid.as_raw(), "setgid() to {gid}");
    }
    if let Some(u) = &config.uid {
        let (uid, _) = user_id(u)?;
        setuid(uid).context("setuid() failed")?;
        tracing::info!(event = "setuid", uid = uid.as_raw(), "setuid() to {uid}");
    }
    Ok(())
}

/// A user by number or name, with the user's group when named.
fn user_id(user: &str) -> anyhow::Result<(nix::unistd::Uid, Option<nix::unistd::Gid>)> {
    Ok(match user.parse::<u32>() {
        Ok(n) => (nix::unistd::Uid::from_raw(n), None),
        Err(_) => {
            let u = nix::unistd::User::from_name(user)?
                .with_context(|| format!("unknown user {user}"))?;
            (u.uid, Some(u.gid))
        }
    })
}

/// A group by number or name.
fn group_id(group: &str) -> anyhow::Result<nix::unistd::Gid> {
    Ok(match group.parse::<u32>() {
        Ok(n) => nix::unistd::Gid::from_raw(n),
        Err(_) => {
            nix::unistd::Group::from_name(group)?
                .with_context(|| format!("unknown group {group}"))?
                .gid
        }
    })
}
