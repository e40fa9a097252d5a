//! uWSGI signals in the master (`core/signal.c` `uwsgi_route_signal`,
//! `core/master.c`): the table of targets each prototype generation
//! registered, its timers, cron schedules and file monitors, and the
//! delivery of a raised signal to a worker.
//!
//! Messages come on the generation's datagram socket (`uwsgi_signal.rs`).
//! Only the current generation's timers, crons and monitors run, and its
//! table routes; a reload's new prototype registers its own as it imports
//! the app, and they take over when it does, so a reload never doubles a
//! timer and a removed one stops. Within a generation, a timer, cron or
//! monitor registered again with the same values is kept once (with
//! `lazy-apps` every worker registers them).
//!
//! A delivery is a request without a client: a SIGNAL frame on a leased
//! worker's channel, answered with END. The lease goes ahead of the
//! requests waiting and no request is pipelined behind it, so a worker runs
//! one handler at a time and no request meanwhile, its busy time and `harakiri` cover the
//! handler (as uWSGI's `uwsgi_signal_handler` sets harakiri), and a worker
//! that dies in a handler is respawned like any other. `worker` (or no
//! target) takes the first worker free, `workerN` waits for that worker,
//! `workers` and `active-workers` go to every running worker. A signal
//! nobody registered goes to the first worker free, which logs uWSGI's
//! `error managing signal` line, as in uWSGI.
//!
//! Bounds: at most [`MAX_PENDING`] deliveries at once (uWSGI's bound is its
//! signal pipes' buffers; past it, its `could not deliver` line), each
//! waits at most [`DELIVERY_WAIT`] for its worker, and at most
//! `MAX_TIMERS` timers, rb-timers, crons and monitors each.
//!
//! Timers are exact to the millisecond (tokio's clock); cron schedules and
//! file monitors are checked on the master's once-a-second cycle, the
//! monitors by modification and change time (uWSGI uses inotify).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::unix::AsyncFd;

use crate::dispatch::Pool;
use crate::exchange::{Event, Exchange, NoBody, StartError};
use crate::uwsgi_signal::{HelperInbox, MAX_MESSAGE, MAX_TIMERS, Message, Target};

/// How long a delivery waits for its worker to be free.
pub const DELIVERY_WAIT: Duration = Duration::from_secs(60);
/// The most deliveries at once.
pub const MAX_PENDING: u64 = 256;
/// The most messages read at one wake-up (the rest at the next).
const BATCH: usize = 64;

/// The master's end of a generation's signal socket.
#[derive(Debug)]
pub struct Inbox {
    sock: AsyncFd<OwnedFd>,
    /// Every sender is gone (EOF): nothing more will come.
    closed: AtomicBool,
}

impl Inbox {
    /// A new socket: the inbox, and the end the prototype inherits
    /// (close-on-exec: the spawn clears it for the prototype only).
    pub fn pair() -> std::io::Result<(Inbox, OwnedFd)> {
        let (master, proto) = crate::ipc::datagram_pair()?;
        // SAFETY: `master` is an OwnedFd that the AsyncFd owns from here on;
        // it is not registered elsewhere.
        let sock = unsafe { AsyncFd::register(master) }.map_err(|e| e.into_parts().1)?;
        let inbox = Inbox {
            sock,
            closed: AtomicBool::new(false),
        };
        Ok((inbox, proto))
    }

    /// The messages waiting, once there is at least one; malformed ones
    /// are logged and dropped.
    async fn recv(&self) -> Vec<Message> {
        let mut out = Vec::new();
        while !self.closed.load(Ordering::Relaxed) {
            let Ok(mut guard) = self.sock.readable().await else {
                break;
            };
            let mut buf = [0u8; MAX_MESSAGE];
            while out.len() < BATCH {
                // SAFETY: recv(2) into a buffer we own, of its length.
                let n = unsafe {
                    libc::recv(
                        self.sock.get_ref().as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        libc::MSG_DONTWAIT,
                    )
                };
                match usize::try_from(n) {
                    Ok(0) => {
                        // No sender sends an empty datagram: this is EOF.
                        self.closed.store(true, Ordering::Relaxed);
                        break;
                    }
                    Ok(n) => match Message::decode(&buf[..n]) {
                        Some(m) => out.push(m),
                        None => tracing::error!(
                            event = "signal_garbage",
                            bytes = n,
                            "malformed message on the signal socket, dropped"
                        ),
                    },
                    Err(_) => {
                        let e = std::io::Error::last_os_error();
                        if e.kind() == std::io::ErrorKind::WouldBlock {
                            guard.clear_ready();
                        } else if e.kind() != std::io::ErrorKind::Interrupted {
                            tracing::error!(event = "signal_socket_failed", cause = %e, "signal socket failed");
                            self.closed.store(true, Ordering::Relaxed);
                        }
                        break;
                    }
                }
            }
            if !out.is_empty() {
                return out;
            }
        }
        std::future::pending().await
    }
}

/// The messages of `inbox`, or never when there is none.
pub async fn recv(inbox: Option<&Inbox>) -> Vec<Message> {
    match inbox {
        Some(i) => i.recv().await,
        None => std::future::pending().await,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Timer {
    sig: u8,
    period: Duration,
    next: Instant,
    /// Raises left (rb-timers with iterations), `None` forever.
    left: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Cron {
    sig: u8,
    when: [i32; 5],
    last: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Monitor {
    sig: u8,
    path: PathBuf,
    seen: Option<(SystemTime, SystemTime)>,
}

fn stamp(p: &std::path::Path) -> Option<(SystemTime, SystemTime)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(p).ok()?;
    let ctime = SystemTime::UNIX_EPOCH
        + Duration::new(
            u64::try_from(m.ctime()).unwrap_or(0),
            u32::try_from(m.ctime_nsec()).unwrap_or(0),
        );
    Some((m.modified().ok()?, ctime))
}

/// One generation's signals.
#[derive(Debug, Default)]
pub struct Table {
    targets: Vec<Option<Target>>,
    timers: Vec<Timer>,
    rb_timers: Vec<Timer>,
    crons: Vec<Cron>,
    monitors: Vec<Monitor>,
}

impl Table {
    /// Takes in a message; a signal raised is returned, to be routed.
    pub fn apply(&mut self, m: Message, now: Instant) -> Option<u8> {
        match m {
            Message::Raise(sig) => return Some(sig),
            Message::Register(sig, target) => {
                if self.targets.len() < 256 {
                    self.targets.resize(256, None);
                }
                self.targets[usize::from(sig)] = Some(target);
            }
            Message::Timer(sig, secs) => {
                let period = Duration::from_secs(u64::from(secs.max(1)));
                add_timer(&mut self.timers, sig, period, None, now, "timers");
            }
            Message::RbTimer(sig, secs, iterations) => {
                let period = Duration::from_secs(u64::from(secs.max(1)));
                let left = (iterations > 0).then_some(iterations);
                add_timer(&mut self.rb_timers, sig, period, left, now, "rb_timers");
            }
            Message::Cron(sig, when) => {
                let c = Cron {
                    sig,
                    when,
                    last: None,
                };
                if !self.crons.iter().any(|o| o.sig == sig && o.when == when) {
                    push_bounded(&mut self.crons, c, "crons");
                }
            }
            Message::FileMonitor(sig, path) => {
                let path = PathBuf::from(path);
                if !self.monitors.iter().any(|o| o.sig == sig && o.path == path) {
                    let seen = stamp(&path);
                    push_bounded(
                        &mut self.monitors,
                        Monitor { sig, path, seen },
                        "file monitors",
                    );
                }
            }
        }
        None
    }

    /// Where `sig` goes: its target, or the first worker free when nobody
    /// registered it.
    pub fn target(&self, sig: u8) -> Target {
        self.targets
            .get(usize::from(sig))
            .cloned()
            .flatten()
            .unwrap_or(Target::Any)
    }

    /// When the next timer is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.timers
            .iter()
            .chain(&self.rb_timers)
            .map(|t| t.next)
            .min()
    }

    /// The signals of the timers due at `now`; each timer moves on by its
    /// period (to `now` + period when it fell behind: no burst after a
    /// stall), and an rb-timer is dropped after its last raise.
    pub fn due(&mut self, now: Instant) -> Vec<u8> {
        let mut fired = Vec::new();
        for t in self.timers.iter_mut().chain(self.rb_timers.iter_mut()) {
            if t.next > now {
                continue;
            }
            fired.push(t.sig);
            t.next += t.period;
            if t.next <= now {
                t.next = now + t.period;
            }
            t.left = t.left.map(|n| n.saturating_sub(1));
        }
        self.rb_timers.retain(|t| t.left != Some(0));
        fired
    }

    /// The once-a-second check: the signals of the cron schedules due at
    /// the local time `tm` (each at most once a minute) and of the
    /// monitored paths that changed.
    pub fn check(&mut self, tm: Option<[i32; 5]>, now: Instant) -> Vec<u8> {
        let mut fired = Vec::new();
        if let Some(tm) = tm {
            for c in &mut self.crons {
                let recent = c
                    .last
                    .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(60));
                if !recent && crate::config::cron::schedule_matches(c.when, tm) {
                    c.last = Some(now);
                    fired.push(c.sig);
                }
            }
        }
        for m in &mut self.monitors {
            let seen = stamp(&m.path);
            if seen != m.seen {
                m.seen = seen;
                fired.push(m.sig);
            }
        }
        fired
    }
}

fn add_timer(
    list: &mut Vec<Timer>,
    sig: u8,
    period: Duration,
    left: Option<u32>,
    now: Instant,
    what: &str,
) {
    if list.iter().any(|t| t.sig == sig && t.period == period) {
        return;
    }
    let t = Timer {
        sig,
        period,
        next: now + period,
        left,
    };
    push_bounded(list, t, what);
}

fn push_bounded<T>(list: &mut Vec<T>, item: T, what: &str) {
    if list.len() >= MAX_TIMERS {
        tracing::error!(
            event = "signal_table_full",
            "you can register max {MAX_TIMERS} {what} !!!"
        );
        return;
    }
    list.push(item);
}

/// Which prototype generation a message came from.
#[derive(Debug, Clone, Copy)]
pub(super) enum Generation {
    /// The one serving.
    Current,
    /// One a reload is starting.
    Next,
    /// The one a reload is replacing.
    Old,
}

impl super::Supervisor {
    /// Takes in messages from a generation's processes, and routes what
    /// they raised (with the current generation's table).
    pub(super) fn on_signal_messages(&mut self, from: Generation, msgs: Vec<Message>) {
        let now = Instant::now();
        let proto = match from {
            Generation::Current => self.proto.as_mut(),
            Generation::Next => self.next_proto.as_mut(),
            Generation::Old => self.old_proto.as_mut(),
        };
        let Some(p) = proto else { return };
        let raised: Vec<u8> = msgs
            .into_iter()
            .filter_map(|m| p.signal_table.apply(m, now))
            .collect();
        raised.into_iter().for_each(|sig| self.raise(sig));
    }

    /// Routes `sig` (from an app, a timer, or a uwsgi packet with
    /// modifier1 110).
    pub(super) fn raise(&self, sig: u8) {
        if self.stopping {
            return;
        }
        let target = self
            .proto
            .as_ref()
            .map_or(Target::Any, |p| p.signal_table.target(sig));
        if let Some(inboxes) = helper_inboxes(&target, &self.settings.farms) {
            let p = self.proto.as_ref();
            for inbox in inboxes {
                let fd = p.and_then(|p| p.helper_inboxes.get(&inbox));
                send_to_helper(fd, inbox, sig);
            }
            return;
        }
        let running: Vec<u32> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.running())
            .filter_map(|(i, _)| u32::try_from(i + 1).ok())
            .collect();
        let slots = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        route(&self.pool, sig, &target, &running, slots);
    }

    /// When the current generation's next timer is due.
    pub(super) fn next_signal_timer(&self) -> Option<Instant> {
        self.proto.as_ref()?.signal_table.next_due()
    }

    /// Raises the signals of the timers due now.
    pub(super) fn fire_signal_timers(&mut self) {
        let now = Instant::now();
        let fired = self
            .proto
            .as_mut()
            .map(|p| p.signal_table.due(now))
            .unwrap_or_default();
        fired.into_iter().for_each(|sig| self.raise(sig));
    }

    /// The once-a-second check of cron signals and file monitors.
    pub(super) fn check_signal_schedules(&mut self) {
        let now = Instant::now();
        let tm = super::cron::local_now();
        let fired = self
            .proto
            .as_mut()
            .map(|p| p.signal_table.check(tm, now))
            .unwrap_or_default();
        fired.into_iter().for_each(|sig| self.raise(sig));
    }
}

/// Takes in the master's end of a helper's signal inbox (a `HelperInbox`
/// control message with its fd).
pub(super) fn add_helper_inbox(p: &mut super::Prototype, kind: u32, id: u32, fds: Vec<OwnedFd>) {
    let (Some(inbox), Some(fd)) = (HelperInbox::from_words(kind, id), fds.into_iter().next())
    else {
        tracing::error!(
            event = "control_garbage",
            kind,
            id,
            "malformed helper inbox from the prototype"
        );
        return;
    };
    p.helper_inboxes.insert(inbox, fd);
}

/// The helper inboxes a target names, or `None` for a worker target.
fn helper_inboxes(target: &Target, farms: &[String]) -> Option<Vec<HelperInbox>> {
    Some(match target {
        Target::Any | Target::All | Target::Active | Target::Worker(_) => return None,
        Target::Spooler => vec![HelperInbox::Spoolers],
        Target::Mule(0) => vec![HelperInbox::Mules],
        Target::Mule(n) => vec![HelperInbox::Mule(*n)],
        // Every mule: those whose inbox the prototype sent.
        Target::Mules => (1..=crate::config::mules::MAX_MULES as u32)
            .map(HelperInbox::Mule)
            .collect(),
        Target::FarmIndex(n) => vec![HelperInbox::Farm(*n)],
        Target::FarmName(name) => {
            let i = farms.iter().position(|f| f == name).map_or(0, |i| i + 1);
            vec![HelperInbox::Farm(u32::try_from(i).unwrap_or(0))]
        }
    })
}

/// Writes `sig` into a helper's inbox, without waiting; uWSGI's lines when
/// it cannot.
fn send_to_helper(fd: Option<&OwnedFd>, inbox: HelperInbox, sig: u8) {
    let who = match inbox {
        HelperInbox::Spoolers => "the spooler".to_owned(),
        HelperInbox::Mules => "a mule".to_owned(),
        HelperInbox::Mule(n) => format!("mule {n}"),
        HelperInbox::Farm(n) => format!("farm {n}"),
    };
    let Some(fd) = fd else {
        // `mules` tries every possible mule: a missing one is not an error.
        if !matches!(inbox, HelperInbox::Mule(_)) {
            tracing::error!(
                event = "signal_target_invalid",
                signum = sig,
                "invalid signal target: {who}"
            );
        }
        return;
    };
    // SAFETY: send(2) of one byte from a buffer we own on an fd we own.
    let n = unsafe {
        libc::send(
            fd.as_raw_fd(),
            [sig].as_ptr().cast(),
            1,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n != 1 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::WouldBlock {
            tracing::error!(
                event = "signal_queue_full",
                signum = sig,
                "*** SIGNAL QUEUE IS FULL ***"
            );
        }
        tracing::error!(
            event = "signal_undelivered",
            signum = sig,
            "could not deliver signal {sig} to {who}"
        );
    }
}

/// Sends `sig` to `target`: `running` are the slots with a worker now,
/// `slots` how many there are.
pub fn route(pool: &Arc<Pool>, sig: u8, target: &Target, running: &[u32], slots: u32) {
    match *target {
        Target::Any => deliver(pool, sig, None),
        Target::All | Target::Active => {
            for &slot in running {
                deliver(pool, sig, Some(slot));
            }
        }
        Target::Worker(n) if (1..=slots).contains(&n) => deliver(pool, sig, Some(n)),
        Target::Worker(n) => {
            tracing::error!(
                event = "signal_target_invalid",
                signum = sig,
                "invalid signal target: worker{n}"
            )
        }
        // Helpers are reached through their inboxes (`raise`).
        _ => {}
    }
}

/// Starts one delivery, unless too many are under way.
fn deliver(pool: &Arc<Pool>, sig: u8, slot: Option<u32>) {
    let who = slot.map_or_else(|| "workers pool".to_owned(), |s| format!("worker {s}"));
    if pool.signal_queue.load(Ordering::Relaxed) >= MAX_PENDING {
        tracing::error!(
            event = "signal_queue_full",
            signum = sig,
            "*** SIGNAL QUEUE IS FULL: {MAX_PENDING} signals waiting *** could not deliver signal {sig} to {who}"
        );
        return;
    }
    pool.signal_queue.fetch_add(1, Ordering::Relaxed);
    let pool = pool.clone();
    tokio::spawn(async move {
        if let Err(why) = run_delivery(&pool, sig, slot).await {
            tracing::error!(
                event = "signal_undelivered",
                signum = sig,
                "could not deliver signal {sig} to {who}: {why}"
            );
        }
        pool.signal_queue.fetch_sub(1, Ordering::Relaxed);
    });
}

async fn run_delivery(pool: &Arc<Pool>, sig: u8, slot: Option<u32>) -> Result<(), String> {
    let mut frame = Vec::with_capacity(crate::ipc::FRAME_HEADER + 1);
    crate::ipc::put_frame(&mut frame, crate::ipc::Kind::Signal, &[sig]);
    // Slot 0: the first worker free. Either way ahead of the requests
    // waiting, and with nothing queued behind (`Pool::lease_slot`).
    let start = Exchange::start_on(pool, slot.unwrap_or(0), &frame, NoBody);
    let mut ex = match tokio::time::timeout(DELIVERY_WAIT, start).await {
        Ok(Ok(ex)) => ex,
        Ok(Err(StartError::Unavailable(u))) => return Err(format!("no worker ({u:?})")),
        Ok(Err(StartError::Gone(g))) => return Err(g.to_string()),
        Err(_) => {
            return Err(format!(
                "no worker was free within {} s",
                DELIVERY_WAIT.as_secs()
            ));
        }
    };
    let (worker, _) = ex.ids();
    pool.table.signal_start(worker, sig);
    match ex.next().await {
        Ok(Event::End(_)) => {
            pool.table.signal(worker);
            ex.release();
            Ok(())
        }
        Ok(other) => {
            ex.discard();
            Err(format!(
                "worker {worker} answered with {other:?} instead of END"
            ))
        }
        // The worker died in the handler: the supervisor respawns it.
        Err(g) => Err(g.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_fire_on_their_period_and_rb_timers_stop() {
        let t0 = Instant::now();
        let mut t = Table::default();
        t.apply(Message::Timer(3, 2), t0);
        // The same timer again (a lazy worker) is kept once.
        t.apply(Message::Timer(3, 2), t0);
        t.apply(Message::RbTimer(4, 1, 2), t0);
        assert_eq!(t.next_due(), Some(t0 + Duration::from_secs(1)));
        assert!(t.due(t0).is_empty());
        assert_eq!(t.due(t0 + Duration::from_secs(1)), [4]);
        assert_eq!(t.due(t0 + Duration::from_secs(2)), [3, 4]);
        // The rb-timer made its two raises.
        assert_eq!(t.due(t0 + Duration::from_secs(4)), [3]);
        // Far behind: one raise, not a burst.
        assert_eq!(t.due(t0 + Duration::from_secs(60)), [3]);
        assert_eq!(t.next_due(), Some(t0 + Duration::from_secs(62)));
    }

    #[test]
    fn targets_crons_and_monitors() {
        let t0 = Instant::now();
        let mut t = Table::default();
        assert_eq!(t.apply(Message::Raise(9), t0), Some(9));
        assert_eq!(t.target(9), Target::Any);
        t.apply(Message::Register(9, Target::All), t0);
        assert_eq!(t.target(9), Target::All);
        t.apply(Message::Cron(5, [-1, -1, -1, -1, -1]), t0);
        let tm = Some([35, 15, 4, 12, 5]);
        assert_eq!(t.check(tm, t0), [5]);
        // Once a minute.
        assert!(t.check(tm, t0 + Duration::from_secs(30)).is_empty());
        assert_eq!(t.check(tm, t0 + Duration::from_secs(61)), [5]);
        let dir = std::env::temp_dir().join(format!("rwsgi-filemon-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        t.apply(Message::FileMonitor(6, dir.display().to_string()), t0);
        assert!(t.check(None, t0).is_empty());
        std::fs::write(&dir, b"x").unwrap();
        assert_eq!(t.check(None, t0), [6]);
        assert!(t.check(None, t0).is_empty());
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(t.check(None, t0), [6]);
    }

    #[test]
    fn every_kind_is_bounded() {
        let t0 = Instant::now();
        let mut t = Table::default();
        for secs in 1..=100 {
            t.apply(Message::Timer(1, secs), t0);
            t.apply(Message::Cron(1, [secs as i32, -1, -1, -1, -1]), t0);
        }
        assert_eq!(t.timers.len(), MAX_TIMERS);
        assert_eq!(t.crons.len(), MAX_TIMERS);
    }
}
