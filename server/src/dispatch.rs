//! The pool of worker channels and the bounded queue of requests waiting for
//! one. A connection task leases a channel for one request and gives it back
//! when the worker says END; a lease dropped without that (the worker died,
//! the client vanished mid-response) discards the channel, which makes the
//! worker exit, and the supervisor respawns it.
//!
//! Idle channels are taken most-recently-idle first, so hot workers stay hot
//! and idle ones stay idle long enough to be cheaped. Waiting requests are
//! served first come, first served; the queue is bounded by `listen`: past it
//! the caller answers 503.
//!
//! **Pipelining.** When every channel is busy, a waiting request may be
//! *queued on* a busy channel ([`Grant::Queued`]): its REQUEST frame is
//! written into the channel at once, so the worker finds it on its next read
//! and starts it without sleeping and without a round trip through the
//! master. This is what keeps uWSGI's workers busy behind nginx (they find
//! the next connection already in the accept queue); without it every
//! request costs the worker a sleep and a wake-up (measured: about one
//! context switch per request and worker, against 0.06 for uWSGI). The
//! channel passes to the queued request when the current one ENDs
//! ([`Queued::handover`]); at most one request is queued per channel. A
//! queued request is bound to its worker, so it is used only where it pays
//! and cannot cost much: the worker's running average request time and the
//! current request's age must be under [`PIPELINE_WINDOW`] (fast apps, where
//! a wake-up is a large part of a request), the worker must not be wanted
//! by a reload or `max-worker-lifetime` ([`Pool::take_idle`] holds it) or
//! by a uWSGI signal for it ([`Pool::lease_slot`]), and
//! `worker-pipeline = false` turns it off. A queued request that its worker
//! never read (the worker died or retired first) is told so and is leased
//! again; one the worker did read is that worker's, as any request in
//! flight.
//!
//! The pool also keeps each slot's busy time, exactly: a slot is busy from
//! the moment a lease starts until its last lease ends, whether the request
//! completed or is still running. The cheaper algorithms read it; requests
//! queued on busy channels count as backlog, as requests in uWSGI's accept
//! queue do.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;

/// Pipelining is used only on workers whose average request, and whose
/// current request so far, took less than this.
pub const PIPELINE_WINDOW: Duration = Duration::from_millis(5);
/// How many requests may be queued on one busy channel. Two keep a fast
/// worker from ever waiting for the master (measured: one leaves it asleep
/// at about half its requests, three gain nothing over two).
pub const PIPELINE_DEPTH: usize = 2;

/// How long a failed [`Pool::take_idle`] keeps requests from being queued on
/// the slot's busy channels (the supervisor asks again at each check).
const HOLD: Duration = Duration::from_secs(3);

/// The write half of a worker channel, shared by the request in flight on
/// it (BODY frames) and a request queued behind it (its REQUEST frame): the
/// lock keeps frames whole.
pub type Writer = tokio::sync::Mutex<OwnedWriteHalf>;

/// A worker's channel, as the master holds it.
#[derive(Debug)]
pub struct WorkerConn {
    /// The worker's slot (1-based).
    pub slot: u32,
    /// Its pid.
    pub pid: i32,
    /// Which of the worker's threads this channel serves.
    pub core: u16,
    /// The master's read half; only the request in flight reads.
    pub reader: OwnedReadHalf,
    /// Bytes read and not yet consumed: the frames of a queued request's
    /// response may arrive in the same read as the END before it.
    pub rbuf: BytesMut,
    writer: Arc<Writer>,
    /// Cleared by the supervisor when the process exits.
    pub alive: Arc<AtomicBool>,
}

impl WorkerConn {
    /// The master's end of a worker's request channel.
    pub fn new(slot: u32, pid: i32, core: u16, stream: UnixStream, alive: Arc<AtomicBool>) -> Self {
        let (reader, writer) = stream.into_split();
        WorkerConn {
            slot,
            pid,
            core,
            reader,
            rbuf: BytesMut::with_capacity(8 * 1024),
            writer: Arc::new(tokio::sync::Mutex::new(writer)),
            alive,
        }
    }

    /// Writes whole frames.
    pub async fn write(&self, data: &[u8]) -> io::Result<()> {
        self.writer.lock().await.write_all(data).await
    }
}

/// Why no worker could be leased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// The wait queue is full.
    QueueFull,
    /// The server is shutting down.
    Closed,
}

pub use crate::stats::table::{BusySample, Done, Table};

/// What a lease gets.
#[derive(Debug)]
pub enum Grant {
    /// An idle channel, now the caller's.
    Ready(Lease),
    /// A place behind the request in flight on a busy channel.
    Queued(Queued),
}

/// How far a queued request's REQUEST frame got.
const UNSENT: u8 = 0;
const PARTIAL: u8 = 1;
const SENT: u8 = 2;

/// What a queued request learns when the requests ahead of it are done.
#[derive(Debug)]
pub enum Handover {
    /// The channel is its own now.
    Channel(Lease),
    /// The worker will not read it (it retired or exited first): lease
    /// again.
    Requeue,
    /// The worker may have read it and can no longer answer: the request
    /// failed (a dropped sender means this too).
    Lost,
}

#[derive(Debug)]
struct Next {
    handover: oneshot::Sender<Handover>,
    sent: Arc<AtomicU8>,
}

impl Next {
    /// Tells the owner the worker is gone; `read_nothing`: it is known not
    /// to have read anything more.
    fn worker_gone(self, read_nothing: bool) {
        let unsent = self.sent.load(Ordering::Acquire) == UNSENT;
        let outcome = if read_nothing || unsent {
            Handover::Requeue
        } else {
            Handover::Lost
        };
        let _ = self.handover.send(outcome);
    }
}

/// A channel serving a request.
#[derive(Debug)]
struct Busy {
    slot: u32,
    core: u16,
    since: Instant,
    writer: Arc<Writer>,
    alive: Arc<AtomicBool>,
    next: VecDeque<Next>,
    /// A signal's delivery: nothing is queued behind it.
    exclusive: bool,
}

#[derive(Debug, Default)]
struct State {
    idle: Vec<WorkerConn>,
    busy: Vec<Busy>,
    waiters: VecDeque<oneshot::Sender<Grant>>,
    /// Leases that want one slot's worker (a uWSGI signal for `workerN`),
    /// served before `waiters` when that slot's channel comes free.
    slot_waiters: Vec<(u32, oneshot::Sender<Lease>)>,
    /// Slots the supervisor wants idle, and since when.
    held: Vec<(u32, Instant)>,
    closed: bool,
}

impl State {
    fn take_busy(&mut self, slot: u32, core: u16) -> Option<Busy> {
        let i = self
            .busy
            .iter()
            .position(|b| b.slot == slot && b.core == core)?;
        Some(self.busy.swap_remove(i))
    }

    fn queued(&self) -> usize {
        self.busy.iter().map(|b| b.next.len()).sum()
    }
}

/// The pool.
#[derive(Debug)]
pub struct Pool {
    state: Mutex<State>,
    /// Per-slot busy time and counters.
    pub table: Table,
    max_waiting: usize,
    pipeline: bool,
    /// Requests served by the whole instance.
    pub total_requests: AtomicU64,
    /// uWSGI signals being delivered (waiting for a worker or running).
    pub signal_queue: AtomicU64,
}

impl Pool {
    /// An empty pool for `slots` worker slots of `threads` channels each,
    /// whose queue holds at most `max_waiting` requests; `pipeline` allows
    /// queueing requests on busy channels.
    pub fn new(max_waiting: usize, slots: usize, threads: usize, pipeline: bool) -> Arc<Pool> {
        Arc::new(Pool {
            state: Mutex::new(State::default()),
            table: Table::new(slots, threads),
            max_waiting,
            pipeline,
            total_requests: AtomicU64::new(0),
            signal_queue: AtomicU64::new(0),
        })
    }

    /// Requests served by the whole instance: through the master, and
    /// taken by the workers themselves (`worker-accept`).
    pub fn requests(&self) -> u64 {
        self.total_requests.load(Ordering::Relaxed) + self.table.direct_requests()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent across a panic (none is expected):
        // every change is made under the lock in a few plain steps.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an idle channel (a new worker's).
    pub fn add(self: &Arc<Self>, w: WorkerConn) {
        let mut st = self.state();
        self.idle(&mut st, w);
        self.fill(&mut st);
    }

    /// Requests waiting for a worker now: the master's queue and the
    /// requests queued on busy channels.
    pub fn waiting(&self) -> usize {
        let st = self.state();
        st.waiters.iter().filter(|w| !w.is_closed()).count() + st.queued()
    }

    /// The backlog the cheaper algorithms and the stats see: the requests
    /// waiting plus the kernel accept queue of the given listeners.
    pub fn backlog(
        &self,
        listeners: impl IntoIterator<Item = crate::accept_queue::Listener>,
    ) -> u64 {
        let kernel: u64 = listeners
            .into_iter()
            .filter_map(crate::accept_queue::len)
            .map(u64::from)
            .sum();
        kernel + self.waiting() as u64
    }

    /// Takes every channel of `slot` out of the pool if all `channels` of
    /// them are idle (so the worker can be stopped between requests). If
    /// they are not, no request is queued on the slot's busy channels for a
    /// while, so that they become idle.
    pub fn take_idle(&self, slot: u32, channels: usize) -> Option<Vec<WorkerConn>> {
        let mut st = self.state();
        if st.idle.iter().filter(|c| c.slot == slot).count() != channels {
            st.held.retain(|(s, _)| *s != slot);
            st.held.push((slot, Instant::now()));
            return None;
        }
        st.held.retain(|(s, _)| *s != slot);
        Some(take_slot(&mut st.idle, slot))
    }

    /// Takes whichever channels of `slot` are idle out of the pool.
    pub fn take_idle_channels(&self, slot: u32) -> Vec<WorkerConn> {
        take_slot(&mut self.state().idle, slot)
    }

    /// Every slot's busy state now.
    pub fn busy_samples(&self) -> Vec<BusySample> {
        self.table.busy_samples()
    }

    /// Stops leasing: waiters and later callers get `Closed`. Requests in
    /// flight, and those already queued on a channel, complete.
    pub fn close(&self) {
        let mut st = self.state();
        st.closed = true;
        st.idle.clear();
        st.waiters.clear();
        st.slot_waiters.clear();
    }

    /// Waits for an idle channel of worker `slot`, or of any worker when
    /// `slot` is 0, ahead of the requests waiting (a uWSGI signal's
    /// delivery). The lease is exclusive: never a place behind a request,
    /// and no request is queued behind it. The waiters are bounded like the
    /// queue.
    pub async fn lease_slot(self: &Arc<Self>, slot: u32) -> Result<Lease, Unavailable> {
        let rx = {
            let mut st = self.state();
            if st.closed {
                return Err(Unavailable::Closed);
            }
            let free = st
                .idle
                .iter()
                .rposition(|c| (slot == 0 || c.slot == slot) && c.alive.load(Ordering::Acquire));
            if let Some(i) = free {
                let c = st.idle.remove(i);
                return Ok(self.start(&mut st, c, true));
            }
            st.slot_waiters.retain(|(_, w)| !w.is_closed());
            if st.slot_waiters.len() >= self.max_waiting {
                return Err(Unavailable::QueueFull);
            }
            let (tx, rx) = oneshot::channel();
            st.slot_waiters.push((slot, tx));
            rx
        };
        rx.await.map_err(|_| Unavailable::Closed)
    }

    /// Waits for a channel, or a place on a busy one.
    pub async fn lease(self: &Arc<Self>) -> Result<Grant, Unavailable> {
        let rx = {
            let mut st = self.state();
            if st.closed {
                return Err(Unavailable::Closed);
            }
            // Nobody is waiting ahead of this request: it may be served now.
            if st.waiters.iter().all(|w| w.is_closed()) {
                st.waiters.clear();
                if let Some(grant) = self.grant_now(&mut st) {
                    return Ok(grant);
                }
            }
            if st.waiters.len() >= self.max_waiting {
                st.waiters.retain(|w| !w.is_closed());
                if st.waiters.len() >= self.max_waiting {
                    return Err(Unavailable::QueueFull);
                }
            }
            let (tx, rx) = oneshot::channel();
            st.waiters.push_back(tx);
            rx
        };
        rx.await.map_err(|_| Unavailable::Closed)
    }

    /// An idle channel, else a place on a busy one, if there is either.
    fn grant_now(self: &Arc<Self>, st: &mut State) -> Option<Grant> {
        while let Some(i) = self.pick_idle(st) {
            let c = st.idle.remove(i);
            if c.alive.load(Ordering::Acquire) {
                return Some(Grant::Ready(self.start(st, c, false)));
            }
            // A worker that died while idle: drop it and take another.
        }
        let i = self.pipeline_target(st)?;
        Some(Grant::Queued(self.queue_on(st, i)))
    }

    /// The idle channel to lease: the most recently idle one, passing over
    /// those whose thread is serving a connection it took itself
    /// (`worker-accept`: it reads its channel only when that is done)
    /// unless every one is.
    fn pick_idle(&self, st: &State) -> Option<usize> {
        let last = st.idle.len().checked_sub(1)?;
        let free = st
            .idle
            .iter()
            .rposition(|c| !self.table.serving_directly(c.slot, c.core));
        Some(free.unwrap_or(last))
    }

    /// Marks `c` busy with a new request; nothing is queued behind an
    /// `exclusive` one.
    fn mark_busy(&self, st: &mut State, c: &WorkerConn, exclusive: bool) {
        self.table.begin(c.slot, c.core);
        st.busy.push(Busy {
            slot: c.slot,
            core: c.core,
            since: Instant::now(),
            writer: c.writer.clone(),
            alive: c.alive.clone(),
            next: VecDeque::new(),
            exclusive,
        });
    }

    /// A lease on `c`, now busy.
    fn start(self: &Arc<Self>, st: &mut State, c: WorkerConn, exclusive: bool) -> Lease {
        self.mark_busy(st, &c, exclusive);
        Lease {
            pool: self.clone(),
            conn: Some(c),
            closed: false,
        }
    }

    /// The busy channel a request may be queued on: among those that
    /// qualify (module docs), the one whose request has run longest, as the
    /// likeliest to finish first.
    fn pipeline_target(&self, st: &State) -> Option<usize> {
        if !self.pipeline {
            return None;
        }
        let now = Instant::now();
        st.busy
            .iter()
            .enumerate()
            .filter(|(_, b)| {
                b.next.len() < PIPELINE_DEPTH
                    && !b.exclusive
                    && b.alive.load(Ordering::Acquire)
                    && now.saturating_duration_since(b.since) < PIPELINE_WINDOW
                    && !st
                        .held
                        .iter()
                        .any(|(s, t)| *s == b.slot && now.saturating_duration_since(*t) < HOLD)
                    // A signal waits for this worker: it goes next.
                    && !st.slot_waiters.iter().any(|(s, _)| *s == b.slot)
                    && self.table.avg_rt(b.slot) < PIPELINE_WINDOW
            })
            .min_by_key(|(_, b)| b.since)
            .map(|(i, _)| i)
    }

    fn queue_on(self: &Arc<Self>, st: &mut State, i: usize) -> Queued {
        let (tx, rx) = oneshot::channel();
        let sent = Arc::new(AtomicU8::new(UNSENT));
        let b = &mut st.busy[i];
        b.next.push_back(Next {
            handover: tx,
            sent: sent.clone(),
        });
        Queued {
            writer: b.writer.clone(),
            handover: rx,
            sent,
        }
    }

    /// Gives waiting requests the places on busy channels that qualify.
    fn fill(self: &Arc<Self>, st: &mut State) {
        while !st.waiters.is_empty() {
            let Some(i) = self.pipeline_target(st) else {
                return;
            };
            let Some(waiter) = st.waiters.pop_front() else {
                return;
            };
            if waiter.is_closed() {
                continue;
            }
            let q = self.queue_on(st, i);
            if let Err(Grant::Queued(q)) = waiter.send(Grant::Queued(q)) {
                // The waiter left between the check and the send; nothing
                // was written for it.
                drop(q);
                st.busy[i].next.pop_back();
            }
        }
    }

    /// An idle channel goes to the first waiter, else back to the pool.
    fn idle(self: &Arc<Self>, st: &mut State, mut c: WorkerConn) {
        if st.closed || !c.alive.load(Ordering::Acquire) {
            return;
        }
        while let Some(i) = st
            .slot_waiters
            .iter()
            .position(|(s, _)| *s == 0 || *s == c.slot)
        {
            let (_, waiter) = st.slot_waiters.remove(i);
            match self.offer(st, c, true, |lease| waiter.send(lease).err()) {
                Some(back) => c = back,
                None => return,
            }
        }
        while let Some(waiter) = st.waiters.pop_front() {
            if waiter.is_closed() {
                continue;
            }
            let refused = |lease| match waiter.send(Grant::Ready(lease)) {
                Err(Grant::Ready(lease)) => Some(lease),
                _ => None,
            };
            match self.offer(st, c, false, refused) {
                Some(back) => c = back,
                None => return,
            }
        }
        st.idle.push(c);
    }

    /// Starts a lease on `c` and hands it over with `send`, which gives it
    /// back when its receiver left: then the lease is undone and the
    /// channel returned, for the next waiter.
    fn offer(
        self: &Arc<Self>,
        st: &mut State,
        c: WorkerConn,
        exclusive: bool,
        send: impl FnOnce(Lease) -> Option<Lease>,
    ) -> Option<WorkerConn> {
        let lease = self.start(st, c, exclusive);
        let back = send(lease)?.conn.take()?;
        st.take_busy(back.slot, back.core);
        self.table.end(back.slot, back.core, None);
        Some(back)
    }

    /// The end of a lease on `c`: the channel goes to the first request
    /// queued on it, or to the first waiter, or back to the pool.
    fn give_back(self: &Arc<Self>, c: WorkerConn, done: Option<Done>) {
        self.table.end(c.slot, c.core, done);
        if done.is_some() {
            self.total_requests.fetch_add(1, Ordering::Relaxed);
        }
        let mut st = self.state();
        let mut queue = st
            .take_busy(c.slot, c.core)
            .map(|b| b.next)
            .unwrap_or_default();
        if !c.alive.load(Ordering::Acquire) {
            // It retired after this request (or exited): it reads nothing
            // more, so what was queued on it is leased again.
            queue.into_iter().for_each(|n| n.worker_gone(true));
            return;
        }
        let mut c = c;
        while let Some(first) = queue.pop_front() {
            match self.hand_over(&mut st, c, first, queue) {
                Passed::Taken => {
                    self.fill(&mut st);
                    return;
                }
                Passed::Back(back, rest) => (c, queue) = (back, rest),
                Passed::Dropped => return,
            }
        }
        self.idle(&mut st, c);
        self.fill(&mut st);
    }

    /// Passes `c`, and the requests queued behind `next`, to `next`.
    fn hand_over(
        self: &Arc<Self>,
        st: &mut State,
        c: WorkerConn,
        next: Next,
        rest: VecDeque<Next>,
    ) -> Passed {
        let lease = self.start(st, c, false);
        if let Some(b) = st.busy.last_mut() {
            b.next = rest;
        }
        let Err(Handover::Channel(mut lease)) = next.handover.send(Handover::Channel(lease)) else {
            return Passed::Taken;
        };
        // Its owner left: undo, and see what it left in the channel.
        let Some(c) = lease.conn.take() else {
            return Passed::Dropped;
        };
        let rest = st
            .take_busy(c.slot, c.core)
            .map(|b| b.next)
            .unwrap_or_default();
        self.table.end(c.slot, c.core, None);
        if next.sent.load(Ordering::Acquire) == UNSENT {
            return Passed::Back(c, rest);
        }
        // Part of a frame, or a request nobody waits for, is in the channel:
        // the worker must go (dropping the channel stops it), and may have
        // read what was queued behind.
        tracing::debug!(
            event = "queued_request_lost",
            worker = c.slot,
            "a request queued on worker {} left before it started",
            c.slot
        );
        rest.into_iter().for_each(|n| n.worker_gone(false));
        Passed::Dropped
    }
}

/// What became of a channel passed to the first request queued on it.
enum Passed {
    /// That request has it.
    Taken,
    /// Its owner left before its frame was written: the channel comes back
    /// with the requests queued behind.
    Back(WorkerConn, VecDeque<Next>),
    /// The channel had to go (the worker may have read part of a frame).
    Dropped,
}

fn take_slot(idle: &mut Vec<WorkerConn>, slot: u32) -> Vec<WorkerConn> {
    let (taken, kept): (Vec<_>, Vec<_>) = std::mem::take(idle)
        .into_iter()
        .partition(|c| c.slot == slot);
    *idle = kept;
    taken
}

/// A request's place behind the one in flight on a busy channel.
#[derive(Debug)]
pub struct Queued {
    writer: Arc<Writer>,
    handover: oneshot::Receiver<Handover>,
    sent: Arc<AtomicU8>,
}

impl Queued {
    /// Writes the request's REQUEST frame into the channel now.
    pub async fn send(&self, frame: &[u8]) -> io::Result<()> {
        let mut w = self.writer.lock().await;
        self.sent.store(PARTIAL, Ordering::Release);
        w.write_all(frame).await?;
        self.sent.store(SENT, Ordering::Release);
        Ok(())
    }

    /// Whether the REQUEST frame went out whole.
    pub fn sent(&self) -> bool {
        self.sent.load(Ordering::Acquire) == SENT
    }

    /// Waits for the requests ahead of this one to end.
    pub async fn handover(&mut self) -> Handover {
        (&mut self.handover).await.unwrap_or(Handover::Lost)
    }
}

/// A worker leased for one request.
#[derive(Debug)]
pub struct Lease {
    pool: Arc<Pool>,
    conn: Option<WorkerConn>,
    /// The worker closed its channel: it exited, and read nothing more.
    closed: bool,
}

impl Lease {
    /// The worker.
    pub fn conn(&mut self) -> Option<&mut WorkerConn> {
        self.conn.as_mut()
    }

    /// The worker's slot and pid.
    pub fn ids(&self) -> (u32, i32) {
        self.conn.as_ref().map_or((0, 0), |c| (c.slot, c.pid))
    }

    /// The worker thread (core) serving the lease.
    pub fn core(&self) -> u16 {
        self.conn.as_ref().map_or(0, |c| c.core)
    }

    /// The app gave its request a deadline of `secs` from now (0: none).
    pub fn user_harakiri(&self, secs: u32) {
        if let Some(c) = &self.conn {
            self.pool.table.user_harakiri(c.slot, c.core, secs);
        }
    }

    /// The worker closed its channel (EOF or reset): requests queued on it were
    /// not read and are leased again when this lease drops.
    pub fn worker_closed(&mut self) {
        self.closed = true;
    }

    /// The worker retires after this request (it said so in its END): it
    /// gets no other request. Its idle channels (its other threads) are
    /// closed now, and this one when the lease ends.
    pub fn retire(&mut self) {
        if let Some(c) = &self.conn {
            c.alive.store(false, Ordering::Release);
            drop(self.pool.take_idle_channels(c.slot));
        }
    }

    /// Gives the worker back after a complete exchange, counting it.
    pub fn finish(mut self, done: Done) {
        if let Some(c) = self.conn.take() {
            self.pool.give_back(c, Some(done));
        }
    }

    /// Gives the worker back after an exchange that did not complete (the
    /// client left and the rest was drained): not counted as a request.
    pub fn release(mut self) {
        if let Some(c) = self.conn.take() {
            self.pool.give_back(c, None);
        }
    }

    /// The instance's request count.
    pub fn total_requests(&self) -> u64 {
        self.pool.requests()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // A lease dropped without `release`: the channel is discarded, and
        // the slot is no longer busy with it. A request queued on it is
        // leased again by its owner (its handover sender drops here).
        if let Some(c) = self.conn.take() {
            self.pool.table.end(c.slot, c.core, None);
            let busy = self.pool.state().take_busy(c.slot, c.core);
            for n in busy.map(|b| b.next).unwrap_or_default() {
                n.worker_gone(self.closed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A pool of one worker slot with one channel; the other end of the
    /// channel plays the worker.
    fn pool(pipeline: bool) -> (Arc<Pool>, UnixStream, Arc<AtomicBool>) {
        let p = Pool::new(8, 1, 1, pipeline);
        let (master, worker) = UnixStream::pair().unwrap();
        let alive = Arc::new(AtomicBool::new(true));
        p.table.spawned(1, 42);
        p.add(WorkerConn::new(1, 42, 0, master, alive.clone()));
        (p, worker, alive)
    }

    fn ready(g: Grant) -> Lease {
        match g {
            Grant::Ready(l) => l,
            Grant::Queued(_) => panic!("queued, expected ready"),
        }
    }

    fn queued(g: Grant) -> Queued {
        match g {
            Grant::Queued(q) => q,
            Grant::Ready(_) => panic!("ready, expected queued"),
        }
    }

    fn done() -> Done {
        Done {
            exception: false,
            tx: 0,
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn requests_queue_on_a_busy_channel_up_to_the_depth_and_take_it_over_in_order() {
        let (p, mut worker, _alive) = pool(true);
        let first = ready(p.lease().await.unwrap());
        let mut second = queued(p.lease().await.unwrap());
        let mut third = queued(p.lease().await.unwrap());
        assert_eq!(p.waiting(), 2);
        // Past the depth, a request waits in the master's queue.
        let fourth = tokio::spawn({
            let p = p.clone();
            async move { p.lease().await.map(|_| ()) }
        });
        tokio::task::yield_now().await;
        assert_eq!(p.waiting(), 3);
        // Queued frames reach the worker while the first request runs.
        second.send(b"two").await.unwrap();
        third.send(b"three").await.unwrap();
        let mut got = [0u8; 8];
        worker.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"twothree");
        first.finish(done());
        let Handover::Channel(second) = second.handover().await else {
            panic!("second did not get the channel");
        };
        second.finish(done());
        let Handover::Channel(third) = third.handover().await else {
            panic!("third did not get the channel");
        };
        // The waiter in the master's queue was given the freed place.
        fourth.await.unwrap().unwrap();
        third.finish(done());
        assert_eq!(p.total_requests.load(Ordering::Relaxed), 3);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_lease_for_one_slot_waits_for_it_ahead_of_the_queue() {
        let p = Pool::new(8, 2, 1, false);
        let mut workers = Vec::new();
        for slot in [1, 2] {
            let (master, worker) = UnixStream::pair().unwrap();
            p.table.spawned(slot, 40 + slot as i32);
            let alive = Arc::new(AtomicBool::new(true));
            p.add(WorkerConn::new(slot, 40 + slot as i32, 0, master, alive));
            workers.push(worker);
        }
        // Slot 2 is idle: leased at once, even with slot 1 idle too.
        let two = p.lease_slot(2).await.unwrap();
        assert_eq!(two.ids(), (2, 42));
        let one = ready(p.lease().await.unwrap());
        // Both busy: a lease for slot 2 and a plain one wait.
        let for_two = tokio::spawn({
            let p = p.clone();
            async move { p.lease_slot(2).await.map(|l| l.ids().0) }
        });
        let any = tokio::spawn({
            let p = p.clone();
            async move { p.lease().await.map(|g| ready(g).ids().0) }
        });
        tokio::task::yield_now().await;
        // Slot 2 comes free: it goes to the lease that wants it, although
        // the plain one could take it too.
        two.release();
        assert_eq!(for_two.await.unwrap(), Ok(2));
        one.release();
        assert_eq!(any.await.unwrap(), Ok(1));
        // Closing the pool ends waiting slot leases.
        let waiting = tokio::spawn({
            let p = p.clone();
            async move { p.lease_slot(1).await.map(|_| ()) }
        });
        tokio::task::yield_now().await;
        p.close();
        assert_eq!(waiting.await.unwrap(), Err(Unavailable::Closed));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn nothing_is_queued_on_a_worker_a_signal_waits_for() {
        let (p, _worker, _alive) = pool(true);
        let first = ready(p.lease().await.unwrap());
        let for_slot = tokio::spawn({
            let p = p.clone();
            async move {
                let l = p.lease_slot(1).await.unwrap();
                let id = l.ids().0;
                l.release();
                id
            }
        });
        tokio::task::yield_now().await;
        // Not queued behind the request in flight: it waits for the signal.
        let other = tokio::spawn({
            let p = p.clone();
            async move { matches!(p.lease().await, Ok(Grant::Ready(_))) }
        });
        tokio::task::yield_now().await;
        first.release();
        assert_eq!(for_slot.await.unwrap(), 1);
        assert!(other.await.unwrap());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn without_pipelining_requests_wait_for_an_idle_channel() {
        let (p, _worker, _alive) = pool(false);
        let first = ready(p.lease().await.unwrap());
        let second = tokio::spawn({
            let p = p.clone();
            async move { matches!(p.lease().await, Ok(Grant::Ready(_))) }
        });
        tokio::task::yield_now().await;
        assert_eq!(p.waiting(), 1);
        first.finish(done());
        assert!(second.await.unwrap());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_worker_that_exits_sends_its_queued_requests_elsewhere() {
        let (p, worker, alive) = pool(true);
        let mut first = ready(p.lease().await.unwrap());
        let mut second = queued(p.lease().await.unwrap());
        second.send(b"frame").await.unwrap();
        // The worker exits: its channel reaches EOF.
        drop(worker);
        alive.store(false, Ordering::Release);
        first.worker_closed();
        drop(first);
        assert!(matches!(second.handover().await, Handover::Requeue));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_channel_dropped_with_a_live_worker_fails_what_it_may_have_read() {
        let (p, _worker, _alive) = pool(true);
        let first = ready(p.lease().await.unwrap());
        let mut sent = queued(p.lease().await.unwrap());
        let mut unsent = queued(p.lease().await.unwrap());
        sent.send(b"frame").await.unwrap();
        // A protocol error, say: the lease drops without an EOF seen.
        drop(first);
        assert!(matches!(sent.handover().await, Handover::Lost));
        assert!(matches!(unsent.handover().await, Handover::Requeue));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_retiring_worker_gets_nothing_more_and_its_queue_is_leased_again() {
        let (p, _worker, _alive) = pool(true);
        let mut first = ready(p.lease().await.unwrap());
        let mut second = queued(p.lease().await.unwrap());
        second.send(b"frame").await.unwrap();
        first.retire();
        first.finish(done());
        assert!(matches!(second.handover().await, Handover::Requeue));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_slot_the_supervisor_wants_gets_no_queued_request_and_becomes_idle() {
        let (p, _worker, _alive) = pool(true);
        let first = ready(p.lease().await.unwrap());
        assert!(p.take_idle(1, 1).is_none());
        let second = tokio::spawn({
            let p = p.clone();
            async move { matches!(p.lease().await, Ok(Grant::Ready(_))) }
        });
        tokio::task::yield_now().await;
        // Not queued on the wanted slot: it waits in the master's queue.
        assert_eq!(p.waiting(), 1);
        p.close();
        first.finish(done());
        assert!(!second.await.unwrap());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_queued_request_whose_owner_left_unsent_frees_its_place() {
        let (p, _worker, _alive) = pool(true);
        let first = ready(p.lease().await.unwrap());
        drop(queued(p.lease().await.unwrap()));
        first.finish(done());
        // The channel is idle again, not lost.
        assert!(matches!(p.lease().await, Ok(Grant::Ready(_))));
    }
}
