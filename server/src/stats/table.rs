//! The worker table the master keeps for every slot: exact busy time (what
//! the cheaper algorithms read) and uWSGI's per-worker and per-core counters
//! (what the stats server shows). Updated when a lease begins and ends and
//! when the supervisor spawns or reaps a worker; with `worker-accept`, the
//! requests the workers took themselves are read from the workers' board
//! (`board.rs`) whenever the table is read.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::board::{Board, Figures};

/// How a request ended, for the counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Done {
    /// The app raised.
    pub exception: bool,
    /// Bytes sent to the client (headers and body).
    pub tx: u64,
}

/// One thread's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Core {
    /// Requests it completed.
    pub requests: u64,
    /// Serving one now.
    pub in_request: bool,
}

/// One slot, as the stats show it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotView {
    /// The slot number once a worker was spawned in it, else 0 (uWSGI's
    /// `id`, written by the worker at fork).
    pub id: u32,
    /// The running worker's pid, or 0.
    pub pid: i32,
    /// Ever had a worker (uWSGI's stale `accepting`).
    pub accepting: bool,
    /// Requests, across respawns.
    pub requests: u64,
    /// Requests since the last spawn.
    pub delta_requests: u64,
    /// Requests whose app raised.
    pub exceptions: u64,
    /// No worker on purpose (cheaped or never spawned).
    pub cheaped: bool,
    /// Serving now.
    pub busy: bool,
    /// Sum of completed request durations, µs.
    pub running_time: u64,
    /// uWSGI's running average `(avg + last) / 2`, µs.
    pub avg_rt: u64,
    /// Bytes sent.
    pub tx: u64,
    /// Unix time of the last spawn.
    pub last_spawn: u64,
    /// Times a worker was forked for this slot.
    pub respawn_count: u64,
    /// Harakiri incidents (a request killed for running too long).
    pub harakiri_count: u64,
    /// uWSGI signals whose handler it ran.
    pub signals: u64,
    /// The uWSGI signal whose handler it runs now.
    pub signum: Option<u8>,
    /// Per thread.
    pub cores: Vec<Core>,
}

/// uWSGI's status words for a worker slot, in the order the shared
/// snapshot numbers them (`snapshot.rs`).
pub const STATUSES: [&str; 3] = ["idle", "busy", "cheap"];

impl SlotView {
    /// uWSGI's status word: `cheap` with no worker, `sigN` while it runs
    /// the handler of uWSGI signal N, else `busy` or `idle`.
    pub fn status(&self) -> std::borrow::Cow<'static, str> {
        if self.cheaped || self.pid == 0 {
            "cheap".into()
        } else if let Some(n) = self.signum {
            format!("sig{n}").into()
        } else if self.busy {
            "busy".into()
        } else {
            "idle".into()
        }
    }
}

/// One slot's busy state at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusySample {
    /// Serving now.
    pub busy: bool,
    /// Total busy time so far, in microseconds.
    pub busy_us: u64,
}

#[derive(Debug, Clone, Default)]
struct Slot {
    view: SlotView,
    in_flight: u32,
    since: Option<Instant>,
    busy_total: Duration,
    started: Vec<Option<Instant>>,
    /// Per core: the deadline the app set for its request
    /// (`uwsgi.set_user_harakiri`).
    user_deadline: Vec<Option<Instant>>,
    /// The board's figures as last read (its counters only grow).
    seen: Figures,
    /// Per core: the request it took itself (start, the app's deadline),
    /// from the board.
    direct: Vec<(Option<Instant>, Option<Instant>)>,
}

impl Slot {
    /// Serving now: a leased request or one the worker took itself.
    fn busy(&self) -> bool {
        self.in_flight > 0 || self.direct.iter().any(|d| d.0.is_some())
    }

    /// Takes in what the board says since it was last read.
    fn absorb(&mut self, now: Instant, now_us: u64, f: Figures) {
        let at = |us: u64| (us > 0).then(|| now - Duration::from_micros(now_us.saturating_sub(us)));
        let old = std::mem::take(&mut self.seen);
        let requests = f.requests.saturating_sub(old.requests);
        let v = &mut self.view;
        v.requests += requests;
        v.delta_requests += requests;
        v.exceptions += f.exceptions.saturating_sub(old.exceptions);
        v.tx += f.tx.saturating_sub(old.tx);
        v.running_time += f.running_time.saturating_sub(old.running_time);
        if requests > 0 {
            v.avg_rt = f.avg_rt;
        }
        self.busy_total += Duration::from_micros(f.busy.saturating_sub(old.busy));
        self.direct.clear();
        for (i, &(started, deadline, done)) in f.cores.iter().enumerate() {
            self.direct.push((at(started), at(deadline)));
            if let Some(c) = v.cores.get_mut(i) {
                let before = old.cores.get(i).map_or(0, |o| o.2);
                c.requests += done.saturating_sub(before);
            }
        }
        self.seen = f;
    }
}

/// The table.
#[derive(Debug)]
pub struct Table {
    slots: Mutex<Vec<Slot>>,
    board: OnceLock<Arc<Board>>,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Table {
    /// A table of `slots` slots with `threads` cores each.
    pub fn new(slots: usize, threads: usize) -> Table {
        let slot = Slot {
            view: SlotView {
                cores: vec![Core::default(); threads],
                cheaped: true,
                ..SlotView::default()
            },
            started: vec![None; threads],
            user_deadline: vec![None; threads],
            ..Slot::default()
        };
        Table {
            slots: Mutex::new(vec![slot; slots]),
            board: OnceLock::new(),
        }
    }

    /// Reads the workers' board from now on (`worker-accept`).
    pub fn set_board(&self, board: Arc<Board>) {
        let _ = self.board.set(board);
    }

    /// Whether thread `core` of `slot` is serving a connection it took
    /// itself (`worker-accept`).
    pub fn serving_directly(&self, slot: u32, core: u16) -> bool {
        self.board.get().is_some_and(|b| b.serving(slot, core))
    }

    /// Requests the workers took themselves (`worker-accept`), all slots.
    pub fn direct_requests(&self) -> u64 {
        self.board.get().map_or(0, |b| b.total_requests())
    }

    /// The slots, with what the board says taken in.
    fn read(&self) -> Option<std::sync::MutexGuard<'_, Vec<Slot>>> {
        let mut slots = self.slots.lock().ok()?;
        if let Some(b) = self.board.get() {
            let (now, now_us) = (Instant::now(), crate::board::now_us());
            for (i, s) in slots.iter_mut().enumerate() {
                s.absorb(
                    now,
                    now_us,
                    b.read(u32::try_from(i + 1).unwrap_or(u32::MAX)),
                );
            }
        }
        Some(slots)
    }

    fn with<R>(&self, slot: u32, f: impl FnOnce(&mut Slot) -> R) -> Option<R> {
        let mut slots = self.slots.lock().ok()?;
        let s = (slot as usize)
            .checked_sub(1)
            .and_then(|i| slots.get_mut(i))?;
        Some(f(s))
    }

    /// A request starts on `slot`'s thread `core`.
    pub fn begin(&self, slot: u32, core: u16) {
        let now = Instant::now();
        self.with(slot, |s| {
            if s.in_flight == 0 {
                s.since = Some(now);
            }
            s.in_flight += 1;
            if let Some(c) = s.view.cores.get_mut(usize::from(core)) {
                c.in_request = true;
            }
            if let Some(t) = s.started.get_mut(usize::from(core)) {
                *t = Some(now);
            }
            if let Some(d) = s.user_deadline.get_mut(usize::from(core)) {
                *d = None;
            }
        });
    }

    /// A request ends; `done` is `None` when it did not complete (the
    /// worker died, the client left): it is not counted then.
    pub fn end(&self, slot: u32, core: u16, done: Option<Done>) {
        let now = Instant::now();
        self.with(slot, |s| {
            if s.in_flight > 0 {
                s.in_flight -= 1;
                if s.in_flight == 0 {
                    if let Some(since) = s.since.take() {
                        s.busy_total += now - since;
                    }
                }
            }
            let started = s.started.get_mut(usize::from(core)).and_then(Option::take);
            if let Some(d) = s.user_deadline.get_mut(usize::from(core)) {
                *d = None;
            }
            if let Some(c) = s.view.cores.get_mut(usize::from(core)) {
                c.in_request = false;
                if done.is_some() {
                    c.requests += 1;
                }
            }
            let Some(done) = done else { return };
            let rt = started.map_or(0, |t| micros(now - t));
            let v = &mut s.view;
            v.requests += 1;
            v.delta_requests += 1;
            v.exceptions += u64::from(done.exception);
            v.tx += done.tx;
            v.running_time += rt;
            v.avg_rt = (v.avg_rt + rt) / 2;
        });
    }

    /// `slot`'s running average request time (uWSGI's `avg_rt`).
    pub fn avg_rt(&self, slot: u32) -> Duration {
        Duration::from_micros(self.with(slot, |s| s.view.avg_rt).unwrap_or(u64::MAX))
    }

    /// A worker was forked for `slot`.
    pub fn spawned(&self, slot: u32, pid: i32) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.with(slot, |s| {
            let v = &mut s.view;
            v.id = slot;
            v.pid = pid;
            v.accepting = true;
            v.cheaped = false;
            v.delta_requests = 0;
            v.last_spawn = now;
            v.respawn_count += 1;
        });
    }

    /// The worker of `slot` is gone; `cheaped` if on purpose.
    pub fn exited(&self, slot: u32, cheaped: bool) {
        if let Some(b) = self.board.get() {
            b.clear_running(slot);
        }
        self.with(slot, |s| {
            s.direct.clear();
            s.view.pid = 0;
            s.view.cheaped = cheaped;
            s.view.signum = None;
        });
    }

    /// The app on `slot`'s thread `core` gave its request `secs` seconds
    /// from now (0: no deadline of its own).
    pub fn user_harakiri(&self, slot: u32, core: u16, secs: u32) {
        let deadline = (secs > 0).then(|| Instant::now() + Duration::from_secs(u64::from(secs)));
        self.with(slot, |s| {
            let core = usize::from(core);
            if s.started.get(core).is_some_and(Option::is_some) {
                if let Some(d) = s.user_deadline.get_mut(core) {
                    *d = deadline;
                }
            }
        });
    }

    /// The (slot, core) pairs serving a request that started at least
    /// `limit` ago (`Duration::ZERO`: no limit), or whose app-set deadline
    /// has passed, with how long it has run (harakiri). As in uWSGI, the
    /// two deadlines are separate: either one kills.
    pub fn overdue(&self, limit: Duration) -> Vec<(u32, u16, Duration)> {
        let Some(slots) = self.read() else {
            return Vec::new();
        };
        let now = Instant::now();
        let mut out = Vec::new();
        for (i, s) in slots.iter().enumerate() {
            // Per thread: the leased request, and the one the worker took
            // itself (`worker-accept`).
            let leased = s
                .started
                .iter()
                .copied()
                .zip(s.user_deadline.iter().copied());
            let direct = s.direct.iter().copied();
            for (core, (started, deadline)) in leased.enumerate().chain(direct.enumerate()) {
                let Some(t) = started else { continue };
                let global = !limit.is_zero() && now.saturating_duration_since(t) >= limit;
                let user = deadline.is_some_and(|d| now >= d);
                if global || user {
                    let slot = u32::try_from(i + 1).unwrap_or(u32::MAX);
                    let ran = now.saturating_duration_since(t);
                    out.push((slot, u16::try_from(core).unwrap_or(u16::MAX), ran));
                }
            }
        }
        out
    }

    /// Counts a harakiri on `slot`.
    pub fn harakiri(&self, slot: u32) {
        self.with(slot, |s| s.view.harakiri_count += 1);
    }

    /// `slot` starts running the handler of uWSGI signal `sig`.
    pub fn signal_start(&self, slot: u32, sig: u8) {
        self.with(slot, |s| s.view.signum = Some(sig));
    }

    /// `slot` ran a uWSGI signal's handler.
    pub fn signal(&self, slot: u32) {
        self.with(slot, |s| {
            s.view.signals += 1;
            s.view.signum = None;
        });
    }

    /// Every slot's busy state now.
    pub fn busy_samples(&self) -> Vec<BusySample> {
        let Some(slots) = self.read() else {
            return Vec::new();
        };
        let now = Instant::now();
        slots
            .iter()
            .map(|s| {
                let since = s.since.filter(|_| s.in_flight > 0);
                let earliest = s.direct.iter().filter_map(|d| d.0).chain(since).min();
                let running = earliest.map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
                BusySample {
                    busy: s.busy(),
                    busy_us: micros(s.busy_total + running),
                }
            })
            .collect()
    }

    /// Every slot's counters now.
    pub fn snapshot(&self) -> Vec<SlotView> {
        let Some(slots) = self.read() else {
            return Vec::new();
        };
        slots
            .iter()
            .map(|s| {
                let mut view = SlotView {
                    busy: s.busy(),
                    ..s.view.clone()
                };
                for (c, d) in view.cores.iter_mut().zip(&s.direct) {
                    c.in_request |= d.0.is_some();
                }
                view
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_follow_uwsgi() {
        let t = Table::new(2, 2);
        let never = t.snapshot();
        assert_eq!(
            (
                never[0].id,
                never[0].pid,
                never[0].accepting,
                never[0].cheaped
            ),
            (0, 0, false, true)
        );
        t.spawned(1, 100);
        t.begin(1, 1);
        assert!(t.snapshot()[0].busy);
        assert!(t.snapshot()[0].cores[1].in_request);
        assert!(t.busy_samples()[0].busy);
        t.end(
            1,
            1,
            Some(Done {
                exception: true,
                tx: 64,
            }),
        );
        t.begin(1, 0);
        t.end(1, 0, None);
        let s = &t.snapshot()[0];
        assert_eq!(
            (
                s.id,
                s.pid,
                s.requests,
                s.delta_requests,
                s.exceptions,
                s.tx
            ),
            (1, 100, 1, 1, 1, 64)
        );
        assert_eq!((s.cores[0].requests, s.cores[1].requests), (0, 1));
        assert!(!s.busy);
        // Respawn: delta resets, totals stay; cheaped slots keep their id.
        t.exited(1, false);
        t.spawned(1, 101);
        let s = &t.snapshot()[0];
        assert_eq!(
            (s.pid, s.requests, s.delta_requests, s.respawn_count),
            (101, 1, 0, 2)
        );
        t.exited(1, true);
        let s = &t.snapshot()[0];
        assert_eq!((s.id, s.pid, s.accepting, s.cheaped), (1, 0, true, true));
        // Unknown slots are ignored.
        t.begin(9, 0);
        t.end(0, 0, None);
    }

    #[test]
    fn requests_the_workers_took_themselves_come_from_the_board() {
        let (fd, board) = Board::create(2, 2).unwrap();
        let worker = Board::open(&fd, 2, 2).unwrap();
        let t = Table::new(2, 2);
        t.set_board(Arc::new(board));
        t.spawned(2, 200);
        worker.begin(2, 1);
        assert!(t.snapshot()[1].busy);
        assert!(t.snapshot()[1].cores[1].in_request);
        assert!(t.busy_samples()[1].busy);
        assert!(!t.busy_samples()[0].busy);
        // The global limit and the app's deadline both see it.
        std::thread::sleep(Duration::from_millis(5));
        let due: Vec<_> = t
            .overdue(Duration::from_millis(1))
            .iter()
            .map(|o| (o.0, o.1))
            .collect();
        assert_eq!(due, [(2, 1)]);
        assert!(t.overdue(Duration::from_secs(3600)).is_empty());
        worker.end(2, 1, true, 100);
        worker.begin(2, 0);
        worker.end(2, 0, false, 50);
        // A leased request beside them (an HTTP socket).
        t.begin(2, 0);
        t.end(
            2,
            0,
            Some(Done {
                exception: false,
                tx: 10,
            }),
        );
        let v = &t.snapshot()[1];
        assert_eq!(
            (v.requests, v.delta_requests, v.exceptions, v.tx, v.busy),
            (3, 3, 1, 160, false)
        );
        assert_eq!((v.cores[0].requests, v.cores[1].requests), (2, 1));
        assert!(t.busy_samples()[1].busy_us >= 5000);
        // Read twice, counted once; a respawn starts delta_requests again.
        assert_eq!(t.snapshot()[1].requests, 3);
        t.exited(2, false);
        t.spawned(2, 201);
        assert_eq!(t.snapshot()[1].delta_requests, 0);
        assert_eq!(t.direct_requests(), 2);
        // A worker that died mid-request: the master clears its start.
        worker.begin(1, 0);
        t.exited(1, false);
        assert!(!t.snapshot()[0].busy);
    }

    #[test]
    fn the_apps_own_deadline_is_checked_beside_the_limit() {
        let t = Table::new(2, 2);
        let long = Duration::from_secs(3600);
        t.begin(1, 1);
        t.begin(2, 0);
        assert!(t.overdue(long).is_empty());
        assert!(t.overdue(Duration::ZERO).is_empty());
        // The shortest deadline there is (0 clears): wait it out.
        t.user_harakiri(1, 1, 1);
        std::thread::sleep(Duration::from_millis(1010));
        let due: Vec<_> = t
            .overdue(Duration::ZERO)
            .iter()
            .map(|o| (o.0, o.1))
            .collect();
        assert_eq!(due, [(1, 1)]);
        let due: Vec<_> = t.overdue(long).iter().map(|o| (o.0, o.1)).collect();
        assert_eq!(due, [(1, 1)]);
        // Cleared with 0, or by the end of the request; none without one.
        t.user_harakiri(1, 1, 0);
        assert!(t.overdue(Duration::ZERO).is_empty());
        t.user_harakiri(1, 1, 1);
        t.end(1, 1, None);
        t.user_harakiri(1, 0, 1);
        std::thread::sleep(Duration::from_millis(1010));
        assert!(t.overdue(Duration::ZERO).is_empty());
        // The global limit alone.
        let due: Vec<_> = t
            .overdue(Duration::from_millis(1))
            .iter()
            .map(|o| (o.0, o.1))
            .collect();
        assert_eq!(due, [(2, 0)]);
    }
}
