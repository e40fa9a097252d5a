//! The worker table and the prototype: starts the prototype (fork+exec of
//! this binary in its prototype role), asks it for workers, hands each new
//! worker's channel to the pool, notices exits and respawns, and restarts the
//! prototype if it dies.
//!
//! Worker exits are reported by the prototype (their parent). The master is
//! a child subreaper, so workers whose prototype died are re-parented to it
//! and reaped here. Log lines are uWSGI's (`core/master_utils.c`
//! `uwsgi_respawn_worker`, `core/master.c`).

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};

use self::daemons::Daemons;
use crate::control::{self, Received};
use crate::dispatch::{Pool, WorkerConn};
use crate::ipc::Control;

mod cron;
mod daemons;
mod evil;
mod harakiri;
mod lifetime;
mod reload;
mod scaling;
mod signals;

/// Set when `exit-on-reload` turned a reload into the shutdown: the master
/// then ends with uWSGI's "GAME OVER" line instead of "goodbye".
pub static EXITED_ON_RELOAD: AtomicBool = AtomicBool::new(false);

/// Environment variable that makes the binary run as the prototype.
pub const ROLE_ENV: &str = "RWSGI_ROLE";
/// Environment variable with the prototype's control fd.
pub const CONTROL_FD_ENV: &str = "RWSGI_CONTROL_FD";

/// This binary's path: `/proc/self/exe`, or an absolute `argv[0]` where
/// `/proc` is not mounted (a bare chroot).
pub fn self_exe() -> std::io::Result<std::path::PathBuf> {
    std::env::current_exe().or_else(|e| {
        std::env::args_os()
            .next()
            .map(std::path::PathBuf::from)
            .filter(|p| p.is_absolute())
            .ok_or(e)
    })
}

/// Commands from the master loop.
#[derive(Debug)]
pub enum Request {
    /// Stop everything; reply when all children are gone.
    Stop(oneshot::Sender<()>),
    /// One worker more (+1) or fewer (-1): the master FIFO's `+` and `-`.
    Delta(i64),
    /// Reload gracefully (`reload.rs`); the string says what asked.
    Reload(&'static str),
    /// Route a uWSGI signal (a uwsgi packet with modifier1 110).
    Signal(u8),
    /// Open the log file again, here and in every other process.
    ReopenLog,
}

/// One worker slot.
#[derive(Debug, Default)]
struct Slot {
    /// Not running on purpose: never spawned under `cheaper`, or cheaped.
    cheaped: bool,
    pid: i32,
    alive: Option<Arc<AtomicBool>>,
    pending: Option<Vec<OwnedFd>>,
    spawned_once: bool,
    last_spawn: Option<Instant>,
    respawn_at: Option<Instant>,
    /// Harakiri attempts on the running worker.
    harakiri_tries: u32,
    /// After a graceful harakiri signal: when SIGKILL follows.
    harakiri_kill_at: Option<Instant>,
    /// The prototype generation its worker was forked from.
    generation: u64,
}

impl Slot {
    /// A worker runs in it (not cheaped, and spawned).
    fn running(&self) -> bool {
        !self.cheaped && self.pid > 0
    }
}

#[derive(Debug)]
struct Prototype {
    control: AsyncFd<OwnedFd>,
    pid: i32,
    /// Its generation's uWSGI signal socket and table (`signals.rs`).
    signals: signals::Inbox,
    signal_table: signals::Table,
    /// The master's ends of its helper processes' signal inboxes.
    helper_inboxes: HashMap<crate::uwsgi_signal::HelperInbox, OwnedFd>,
}

/// What the supervisor needs to know.
#[derive(Debug)]
pub struct Settings {
    /// The attached daemons.
    pub daemons: Vec<crate::config::DaemonSpec>,
    /// The scheduled commands.
    pub crons: Vec<crate::config::CronSpec>,
    /// `cron-harakiri`.
    pub cron_harakiri: u64,
    /// Where cron commands run (`chdir`).
    pub cron_dir: Option<std::path::PathBuf>,
    /// Startup hooks (`post-app` runs here).
    pub hooks: Vec<crate::hooks::Hook>,
    /// The command line to start the prototype with.
    pub args: Vec<String>,
    /// Number of worker slots.
    pub processes: usize,
    /// Threads (channels) per worker.
    pub threads: usize,
    /// Exit when the app cannot be loaded.
    pub need_app: bool,
    /// Worker autoscaling.
    pub cheaper: Option<crate::config::cheaper::CheaperConfig>,
    /// How often to check the pool.
    pub check_interval: Duration,
    /// The listeners whose kernel accept queues count in the backlog: TCP
    /// ones, and unix ones the workers accept on (`worker-accept`).
    pub queues: Vec<crate::accept_queue::Listener>,
    /// Seconds a request may run before its worker is killed (0 = off).
    pub harakiri: u64,
    /// `max-worker-lifetime` and its per-worker delta, in seconds.
    pub max_worker_lifetime: (u64, u64),
    /// `evil-reload-on-rss` and `evil-reload-on-as`, in bytes (0 = off).
    pub evil_limits: (u64, u64),
    /// `harakiri-graceful-timeout` (seconds, 0 = off) and
    /// `harakiri-graceful-signal`.
    pub harakiri_graceful: (u64, i32),
    /// The farms' names, in order (signal targets `farm_NAME`).
    pub farms: Vec<String>,
    /// The spooler counters' memfd, for the prototype (`spool::Counters`).
    pub spooler_counters: Option<Arc<OwnedFd>>,
    /// `exit-on-reload`: a reload request stops the instance instead.
    pub exit_on_reload: bool,
    /// The caches' memfds or store files, for every prototype (`cache/`).
    pub cache_fds: Vec<Arc<OwnedFd>>,
    /// `worker-accept`: what every prototype inherits.
    pub direct: Option<Arc<Direct>>,
}

/// What the prototypes inherit for `worker-accept` (`worker/direct.rs`).
#[derive(Debug)]
pub struct Direct {
    /// The workers' board (`board.rs`).
    pub board: OwnedFd,
    /// The uwsgi sockets, and whether each is TCP.
    pub listeners: Vec<(OwnedFd, bool)>,
}

/// Why the supervisor stopped on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Asked to stop.
    Stopped,
    /// The app could not be loaded and `need-app` is set.
    NoApp,
    /// The prototype cannot be started.
    Failed,
    /// A `post-app` hook failed (it logged why).
    HookFailed,
}

/// The supervisor's state.
#[derive(Debug)]
pub struct Supervisor {
    settings: Settings,
    pool: Arc<Pool>,
    slots: Vec<Slot>,
    pids: HashMap<i32, u32>,
    proto: Option<Prototype>,
    /// A reload's new prototype, until it is ready.
    next_proto: Option<Prototype>,
    /// The previous prototype, while its workers are being replaced.
    old_proto: Option<Prototype>,
    /// The current prototype generation.
    generation: u64,
    /// The slot whose worker a reload is replacing.
    replacing: Option<usize>,
    reload_started: Option<Instant>,
    proto_started: Option<Instant>,
    proto_ready: bool,
    /// Whether "workers ready" was logged (the first time every slot that
    /// should run has a worker).
    ready: bool,
    stopping: bool,
    /// The cheaper algorithm, made when the first workers are up.
    algo: Option<Box<dyn crate::cheaper::Algo>>,
    /// Master FIFO `+`/`-` not applied yet.
    fifo_delta: i64,
    /// The origin of the worker ages.
    epoch: Instant,
    /// Checks done (the algorithms' clock).
    ticks: u64,
    /// `attach-daemon` commands.
    daemons: Daemons,
    /// `cron` commands.
    crons: cron::Crons,
    /// The worker table as the workers read it (`uwsgi.workers()`).
    snapshot: Option<crate::snapshot::Writer>,
}

impl Supervisor {
    /// A supervisor for `processes` slots.
    pub fn new(settings: Settings, pool: Arc<Pool>) -> Supervisor {
        let slots = (0..settings.processes).map(|_| Slot::default()).collect();
        let daemons = Daemons::new(&settings.daemons);
        let crons = cron::Crons::new(
            &settings.crons,
            settings.cron_harakiri,
            settings.cron_dir.clone(),
        );
        let snapshot = crate::snapshot::Writer::new(settings.processes)
            .inspect_err(|e| {
                tracing::warn!(event = "snapshot_failed", cause = %e, "uwsgi.workers() will be empty: no shared snapshot")
            })
            .ok();
        Supervisor {
            settings,
            pool,
            slots,
            pids: HashMap::new(),
            proto: None,
            next_proto: None,
            old_proto: None,
            generation: 0,
            replacing: None,
            reload_started: None,
            proto_started: None,
            proto_ready: false,
            ready: false,
            stopping: false,
            algo: None,
            fifo_delta: 0,
            epoch: Instant::now(),
            ticks: 0,
            daemons,
            crons,
            snapshot,
        }
    }

    /// Runs until stopped.
    pub async fn run(mut self, mut commands: mpsc::Receiver<Request>) -> Outcome {
        // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes an integer argument and
        // touches no memory of ours.
        unsafe {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        }
        let mut sigchld = match signal(SignalKind::child()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(event = "signal_failed", cause = %e, "cannot watch SIGCHLD");
                return Outcome::Failed;
            }
        };
        if let Err(e) = self.start_prototype() {
            tracing::error!(event = "prototype_failed", cause = %e, "cannot start the prototype");
            return Outcome::Failed;
        }
        let mut tick = tokio::time::interval(self.settings.check_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // uWSGI checks harakiri and worker lifetimes once per master cycle
        // (about a second). Always: even without `harakiri`, an app may set
        // a deadline of its own (`uwsgi.set_user_harakiri`).
        let mut cycle = tokio::time::interval(Duration::from_secs(1));
        cycle.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A reload waiting for a busy old worker looks again this often.
        let mut reload_tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            let next_respawn = self
                .slots
                .iter()
                .filter_map(|s| s.respawn_at)
                .chain(self.daemons.next_due())
                .chain(self.next_signal_timer())
                .min();
            let sleep = async {
                match next_respawn {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = recv_control(self.proto.as_ref()) => {
                    match msg {
                        Some(Received::Message(m, fd)) => {
                            if let Some(outcome) = self.on_control(m, fd) {
                                return outcome;
                            }
                        }
                        Some(Received::Garbage) => tracing::error!(event = "control_garbage", "garbage on the control socket"),
                        Some(Received::Closed) | None => {
                            if let Some(outcome) = self.prototype_gone().await {
                                return outcome;
                            }
                        }
                    }
                }
                _ = sigchld.recv() => self.reap(),
                _ = sleep => {
                    self.respawn_due();
                    self.daemons.spawn_due();
                    self.fire_signal_timers();
                }
                _ = tick.tick() => self.on_tick(),
                _ = cycle.tick() => {
                    self.publish_snapshot();
                    self.daemons.check();
                    if !self.stopping {
                        self.crons.check();
                        self.check_signal_schedules();
                    }
                    self.check_harakiri();
                    self.check_lifetimes();
                    self.check_memory();
                }
                msgs = signals::recv(self.proto.as_ref().map(|p| &p.signals)) => {
                    self.on_signal_messages(signals::Generation::Current, msgs);
                }
                msgs = signals::recv(self.next_proto.as_ref().map(|p| &p.signals)) => {
                    self.on_signal_messages(signals::Generation::Next, msgs);
                }
                msgs = signals::recv(self.old_proto.as_ref().map(|p| &p.signals)) => {
                    self.on_signal_messages(signals::Generation::Old, msgs);
                }
                msg = recv_control(self.next_proto.as_ref()) => self.on_next_control(msg),
                msg = recv_control(self.old_proto.as_ref()) => self.on_old_control(msg),
                _ = reload_tick.tick(), if self.old_proto.is_some() => self.reload_step(),
                cmd = commands.recv() => {
                    let done = match cmd {
                        Some(Request::Delta(d)) => {
                            self.fifo_delta += d;
                            continue;
                        }
                        Some(Request::Reload(why)) => {
                            self.start_reload(why);
                            continue;
                        }
                        Some(Request::Signal(sig)) => {
                            self.raise(sig);
                            continue;
                        }
                        Some(Request::ReopenLog) => {
                            crate::logfile::reopen_now(true);
                            if let Some(s) = &self.snapshot {
                                s.bump_log_generation();
                            }
                            continue;
                        }
                        Some(Request::Stop(done)) => Some(done),
                        None => None,
                    };
                    self.stop(&mut sigchld).await;
                    if let Some(done) = done { let _ = done.send(()); }
                    return Outcome::Stopped;
                }
            }
        }
    }

    /// Copies the worker table where the workers read it.
    fn publish_snapshot(&self) {
        let Some(w) = &self.snapshot else { return };
        let records: Vec<crate::snapshot::Record> = self
            .pool
            .table
            .snapshot()
            .into_iter()
            .map(|v| crate::snapshot::Record {
                id: u64::from(v.id),
                pid: u64::try_from(v.pid).unwrap_or(0),
                requests: v.requests,
                delta_requests: v.delta_requests,
                exceptions: v.exceptions,
                // `sigN` (running a signal handler) is busy here.
                status: crate::stats::table::STATUSES
                    .iter()
                    .position(|s| *s == v.status())
                    .unwrap_or(1) as u64,
                running_time: v.running_time,
                last_spawn: v.last_spawn,
                respawn_count: v.respawn_count,
                tx: v.tx,
                avg_rt: v.avg_rt,
            })
            .collect();
        w.write(self.pool.requests(), &records);
    }

    fn start_prototype(&mut self) -> std::io::Result<()> {
        let p = self.launch_prototype()?;
        self.proto = Some(p);
        self.proto_started = Some(Instant::now());
        Ok(())
    }

    /// Starts a prototype process (fork+exec of this binary).
    fn launch_prototype(&self) -> std::io::Result<Prototype> {
        let (master_end, proto_end) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        )?;
        // The prototype blocks on its end.
        nix::fcntl::fcntl(
            &proto_end,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
        )?;
        let fd = proto_end.as_raw_fd();
        let (inbox, signal_end) = signals::Inbox::pair()?;
        let signal_fd = signal_end.as_raw_fd();
        let snapshot_fd = self.snapshot.as_ref().map(|s| s.fd());
        let counters_fd = self
            .settings
            .spooler_counters
            .as_ref()
            .map(|f| f.as_raw_fd());
        let mut cmd = Command::new(self_exe()?);
        cmd.args(&self.settings.args)
            .env(ROLE_ENV, "prototype")
            .env(CONTROL_FD_ENV, fd.to_string())
            .env(crate::uwsgi_signal::FD_ENV, signal_fd.to_string())
            .process_group(0);
        if let Some(sfd) = snapshot_fd {
            cmd.env(crate::snapshot::FD_ENV, sfd.to_string());
        }
        if let Some(cfd) = counters_fd {
            cmd.env(crate::spool::COUNTERS_FD_ENV, cfd.to_string());
        }
        let cache_fds: Vec<i32> = self
            .settings
            .cache_fds
            .iter()
            .map(|f| f.as_raw_fd())
            .collect();
        if !cache_fds.is_empty() {
            let list: Vec<String> = cache_fds.iter().map(i32::to_string).collect();
            cmd.env(crate::cache::FDS_ENV, list.join(","));
        }
        let mut direct_fds: Vec<i32> = Vec::new();
        if let Some(d) = &self.settings.direct {
            direct_fds.push(d.board.as_raw_fd());
            cmd.env(crate::board::FD_ENV, d.board.as_raw_fd().to_string());
            let list: Vec<String> = d
                .listeners
                .iter()
                .map(|(fd, tcp)| {
                    direct_fds.push(fd.as_raw_fd());
                    format!("{}:{}", fd.as_raw_fd(), if *tcp { 't' } else { 'u' })
                })
                .collect();
            cmd.env(crate::worker::direct::LISTEN_FDS_ENV, list.join(","));
        }
        // SAFETY: the closure runs in the child between fork and exec and
        // only calls fcntl, which is async-signal-safe, on fds that are open
        // in the child (inherited from us).
        unsafe {
            cmd.pre_exec(move || {
                for &fd in [fd, signal_fd]
                    .iter()
                    .chain(&snapshot_fd)
                    .chain(&counters_fd)
                    .chain(&cache_fds)
                    .chain(&direct_fds)
                {
                    let flags = libc::fcntl(fd, libc::F_GETFD);
                    if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        drop(proto_end);
        drop(signal_end);
        let pid = child.id() as i32;
        // The child is reaped through waitpid(-1) in `reap`.
        drop(child);
        tracing::info!(
            event = "prototype_spawned",
            pid,
            "spawned rwsgi prototype (pid: {pid})"
        );
        // SAFETY: `master_end` is an OwnedFd that the AsyncFd owns from here
        // on; it is not closed or registered elsewhere while registered here.
        let control = unsafe { AsyncFd::register(master_end) }.map_err(|e| e.into_parts().1)?;
        Ok(Prototype {
            control,
            pid,
            signals: inbox,
            signal_table: signals::Table::default(),
            helper_inboxes: HashMap::new(),
        })
    }

    fn on_control(&mut self, m: Control, fds: Vec<OwnedFd>) -> Option<Outcome> {
        match m {
            Control::HelperInbox { kind, id } => {
                if let Some(p) = self.proto.as_mut() {
                    signals::add_helper_inbox(p, kind, id, fds);
                }
            }
            Control::Ready { ok } => {
                self.proto_ready = true;
                if !ok && self.settings.need_app {
                    return Some(Outcome::NoApp);
                }
                let first_time = self
                    .slots
                    .iter()
                    .all(|s| !s.spawned_once && s.pending.is_none());
                if first_time {
                    // uWSGI runs these after the app is loaded and before
                    // the workers fork; so does rwsgi, in the master.
                    if !crate::hooks::run(&self.settings.hooks, crate::hooks::Phase::PostApp) {
                        return Some(Outcome::HookFailed);
                    }
                    // The master's start-up is over: what it mapped for it
                    // (option parsing, binding, the prototype's start) need
                    // not stay mapped (`trim.rs`).
                    crate::trim::release_and_log();
                    // Under `cheaper`, only `cheaper-initial` slots start.
                    let initial = self
                        .settings
                        .cheaper
                        .as_ref()
                        .map_or(self.slots.len(), |c| c.initial);
                    for (i, s) in self.slots.iter_mut().enumerate() {
                        s.cheaped = i >= initial;
                    }
                }
                for i in 0..self.slots.len() {
                    let s = &self.slots[i];
                    if !s.cheaped && s.alive.is_none() && s.pending.is_none() {
                        self.spawn(i);
                    }
                }
            }
            Control::Spawned { slot, pid } => self.on_spawned(slot, pid),
            Control::Exited { slot, pid, status } => self.on_exit(slot, pid, status),
            Control::Reload => self.start_reload("py-autoreload"),
            Control::Spawn { .. } => {
                tracing::error!(event = "control_garbage", "prototype sent a spawn request")
            }
        }
        None
    }

    fn spawn(&mut self, i: usize) {
        if self.stopping {
            return;
        }
        let Some(proto) = &self.proto else { return };
        let slot = i as u32 + 1;
        let mut master_ends = Vec::with_capacity(self.settings.threads);
        let mut worker_ends = Vec::with_capacity(self.settings.threads);
        for _ in 0..self.settings.threads {
            match socketpair(
                AddressFamily::Unix,
                SockType::Stream,
                None,
                SockFlag::SOCK_CLOEXEC,
            ) {
                Ok((m, w)) => {
                    master_ends.push(m);
                    worker_ends.push(w);
                }
                Err(e) => {
                    tracing::error!(event = "socketpair_failed", cause = %e, "cannot create a worker channel");
                    self.slots[i].respawn_at = Some(Instant::now() + Duration::from_secs(1));
                    return;
                }
            }
        }
        let raw: Vec<_> = worker_ends.iter().map(|w| w.as_raw_fd()).collect();
        let msg = Control::Spawn {
            slot,
            threads: raw.len() as u32,
        };
        match control::send(proto.control.get_ref().as_fd(), msg, &raw) {
            Ok(()) => {
                self.slots[i].generation = self.generation;
                self.slots[i].pending = Some(master_ends);
                self.slots[i].respawn_at = None;
            }
            Err(e) => {
                tracing::error!(event = "control_failed", cause = %e, "cannot reach the prototype");
                self.slots[i].respawn_at = Some(Instant::now() + Duration::from_secs(1));
            }
        }
    }

    fn on_spawned(&mut self, slot: u32, pid: i32) {
        let Some(s) = (slot as usize)
            .checked_sub(1)
            .and_then(|i| self.slots.get_mut(i))
        else {
            return;
        };
        let Some(fds) = s.pending.take() else { return };
        let mut streams = Vec::with_capacity(fds.len());
        for fd in fds {
            let stream = std::os::unix::net::UnixStream::from(fd);
            match stream
                .set_nonblocking(true)
                .and_then(|()| tokio::net::UnixStream::from_std(stream))
            {
                Ok(s) => streams.push(s),
                Err(e) => {
                    tracing::error!(event = "channel_failed", cause = %e, "cannot use a worker channel");
                    return;
                }
            }
        }
        let alive = Arc::new(AtomicBool::new(true));
        if s.spawned_once {
            tracing::info!(
                event = "respawned",
                worker = slot,
                pid,
                "Respawned uWSGI worker {slot} (new pid: {pid})"
            );
        } else {
            tracing::info!(
                event = "spawned",
                worker = slot,
                pid,
                "spawned uWSGI worker {slot} (pid: {pid}, cores: {})",
                self.settings.threads
            );
        }
        s.spawned_once = true;
        s.pid = pid;
        s.alive = Some(alive.clone());
        s.last_spawn = Some(Instant::now());
        self.pids.insert(pid, slot);
        self.pool.table.spawned(slot, pid);
        for (core, stream) in streams.into_iter().enumerate() {
            self.pool.add(WorkerConn::new(
                slot,
                pid,
                u16::try_from(core).unwrap_or(u16::MAX),
                stream,
                alive.clone(),
            ));
        }
        if self.replacing == Some(slot as usize - 1) {
            self.reload_step();
        }
        if !self.ready && self.slots.iter().all(|s| s.cheaped || s.alive.is_some()) {
            self.ready = true;
            self.start_algo();
            tracing::info!(
                event = "workers_ready",
                workers = self.slots.len(),
                "workers ready"
            );
            crate::daemonize::ready();
        }
    }

    fn on_exit(&mut self, slot: u32, pid: i32, status: i32) {
        if pid != 0 && self.pids.remove(&pid).is_none() {
            return;
        }
        let Some(i) = (slot as usize).checked_sub(1) else {
            return;
        };
        let Some(s) = self.slots.get_mut(i) else {
            return;
        };
        if pid != 0 && s.pid != pid {
            return;
        }
        if let Some(alive) = s.alive.take() {
            alive.store(false, Ordering::Release);
        }
        s.pid = 0;
        s.pending = None;
        s.harakiri_tries = 0;
        s.harakiri_kill_at = None;
        self.pool.table.exited(slot, s.cheaped);
        if self.stopping {
            return;
        }
        if s.cheaped {
            tracing::info!(
                event = "worker_killed",
                worker = slot,
                pid,
                "worker {slot} killed successfully (pid: {pid})"
            );
            tracing::info!(
                event = "cheaped",
                worker = slot,
                "uWSGI worker {slot} cheaped."
            );
            return;
        }
        if status < 0 {
            tracing::warn!(
                event = "worker_died",
                worker = slot,
                pid,
                signal = -status,
                "DAMN ! worker {slot} (pid: {pid}) died, killed by signal {} :( trying respawn ...",
                -status
            );
        } else if status == crate::worker::EXIT_STOPPED {
            tracing::info!(
                event = "worker_stopped",
                worker = slot,
                pid,
                "worker {slot} killed successfully (pid: {pid})"
            );
        } else {
            tracing::warn!(
                event = "worker_died",
                worker = slot,
                pid,
                status,
                "DAMN ! worker {slot} (pid: {pid}) died :( trying respawn ..."
            );
        }
        // uWSGI's fork-bomb guard: a worker that dies right after spawning is
        // not respawned in a tight loop.
        let too_fast = s
            .last_spawn
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1));
        if too_fast {
            tracing::warn!(
                event = "respawn_too_fast",
                worker = slot,
                "worker respawning too fast !!! i have to sleep a bit (2 seconds)..."
            );
            s.respawn_at = Some(Instant::now() + Duration::from_secs(2));
        } else {
            self.spawn(i);
        }
    }

    fn respawn_due(&mut self) {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            if self.slots[i].respawn_at.is_some_and(|t| t <= now) {
                self.slots[i].respawn_at = None;
                if self.proto.is_some() {
                    self.spawn(i);
                }
            }
        }
    }

    /// The control socket closed: the prototype is gone. One that never
    /// became ready (Python or the app's environment is broken) is a startup
    /// failure, not something to retry forever.
    async fn prototype_gone(&mut self) -> Option<Outcome> {
        let proto = self.proto.take()?;
        if self.stopping {
            return None;
        }
        if !self.proto_ready {
            tracing::error!(
                event = "prototype_failed",
                pid = proto.pid,
                "the prototype (pid: {}) exited before loading the app; see the lines above",
                proto.pid
            );
            return Some(Outcome::Failed);
        }
        self.proto_ready = false;
        tracing::error!(
            event = "prototype_died",
            pid = proto.pid,
            "the prototype (pid: {}) died; starting a new one",
            proto.pid
        );
        for s in &mut self.slots {
            s.pending = None;
        }
        let delay = if self
            .proto_started
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            Duration::from_secs(1)
        } else {
            Duration::ZERO
        };
        tokio::time::sleep(delay).await;
        if let Err(e) = self.start_prototype() {
            tracing::error!(event = "prototype_failed", cause = %e, "cannot start the prototype");
            return Some(Outcome::Failed);
        }
        None
    }

    /// Reaps children: the prototype, and workers re-parented to us.
    fn reap(&mut self) {
        loop {
            let (pid, status) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid.as_raw(), code),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid.as_raw(), -(sig as i32)),
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => continue,
            };
            if self.crons.exited(pid) || self.daemons.exited(pid, status) {
                continue;
            }
            if self.proto.as_ref().is_some_and(|p| p.pid == pid) {
                tracing::debug!(event = "prototype_exited", pid, status, "prototype exited");
                continue;
            }
            if let Some(&slot) = self.pids.get(&pid) {
                self.on_exit(slot, pid, status);
            }
        }
    }

    /// Stops the workers and the prototype and waits for them.
    async fn stop(&mut self, sigchld: &mut tokio::signal::unix::Signal) {
        self.stopping = true;
        self.pool.close();
        // Closing the control socket ends the prototype; closed channels end
        // idle workers.
        let proto_pid = self.proto.take().map(|p| p.pid);
        let mut pids: Vec<i32> = self.pids.keys().copied().collect();
        pids.extend(proto_pid);
        pids.extend(self.reload_pids());
        pids.extend(self.daemons.stop());
        pids.extend(self.crons.stop());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            pids.retain(|&p| nix::sys::signal::kill(Pid::from_raw(p), None).is_ok());
            self.reap_quietly();
            if pids.is_empty() {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), sigchld.recv()).await;
        }
        for p in pids {
            tracing::warn!(
                event = "kill",
                pid = p,
                "process {p} did not exit in time; killing it"
            );
            let _ = nix::sys::signal::kill(Pid::from_raw(p), nix::sys::signal::Signal::SIGKILL);
        }
        self.reap_quietly();
    }

    fn reap_quietly(&mut self) {
        while let Ok(s) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            if s == WaitStatus::StillAlive {
                break;
            }
        }
    }
}

async fn recv_control(proto: Option<&Prototype>) -> Option<Received> {
    let Some(proto) = proto else {
        return std::future::pending().await;
    };
    loop {
        let mut guard = proto.control.readable().await.ok()?;
        match control::recv(proto.control.get_ref().as_fd(), true) {
            Ok(r) => return Some(r),
            Err(nix::errno::Errno::EAGAIN) => guard.clear_ready(),
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return Some(Received::Closed),
        }
    }
}
