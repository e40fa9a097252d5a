//! The pool of idle workers and the bounded queue of requests waiting for
//! one. A connection task leases a worker for one request and gives it back
//! when the worker says END; a lease dropped without that (the worker died,
//! the client vanished mid-response) discards the worker's channel, which
//! makes the worker exit, and the supervisor respawns it.
//!
//! Idle workers are taken most-recently-idle first, so hot workers stay hot
//! and idle ones stay idle long enough to be cheaped. The wait queue is
//! bounded by `listen`: past it the caller answers 503.
//!
//! The pool also keeps each slot's busy time, exactly: a slot is busy from
//! the moment a lease starts until its last lease ends, whether the request
//! completed or is still running. The cheaper algorithms read it.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use tokio::net::UnixStream;
use tokio::sync::Semaphore;

/// A worker's channel, as the master holds it.
#[derive(Debug)]
pub struct WorkerConn {
    /// The worker's slot (1-based).
    pub slot: u32,
    /// Its pid.
    pub pid: i32,
    /// Which of the worker's threads this channel serves.
    pub core: u16,
    /// The master's end of the request channel.
    pub stream: UnixStream,
    /// Cleared by the supervisor when the process exits.
    pub alive: Arc<AtomicBool>,
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

/// The pool.
#[derive(Debug)]
pub struct Pool {
    idle: Mutex<Vec<WorkerConn>>,
    permits: Semaphore,
    /// Permits owed for channels taken out of `idle` by `take_idle` when
    /// their permit could not be taken back at once.
    debt: AtomicUsize,
    /// Per-slot busy time and counters.
    pub table: Table,
    waiting: AtomicUsize,
    max_waiting: usize,
    /// Requests served by the whole instance.
    pub total_requests: AtomicU64,
}

impl Pool {
    /// An empty pool for `slots` worker slots of `threads` channels each,
    /// whose queue holds at most `max_waiting` requests.
    pub fn new(max_waiting: usize, slots: usize, threads: usize) -> Arc<Pool> {
        Arc::new(Pool {
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(0),
            debt: AtomicUsize::new(0),
            table: Table::new(slots, threads),
            waiting: AtomicUsize::new(0),
            max_waiting,
            total_requests: AtomicU64::new(0),
        })
    }

    /// Adds an idle worker.
    pub fn add(&self, w: WorkerConn) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(w);
            self.permits.add_permits(1);
        }
    }

    /// Requests waiting for a worker now (the master's queue).
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// The backlog the cheaper algorithms and the stats see: the master's
    /// queue plus the kernel accept queue of the given TCP listeners.
    pub fn backlog(&self, tcp_listeners: impl IntoIterator<Item = std::os::fd::RawFd>) -> u64 {
        let kernel: u64 = tcp_listeners
            .into_iter()
            .filter_map(crate::listen::tcp_accept_queue)
            .map(u64::from)
            .sum();
        kernel + self.waiting() as u64
    }

    /// Takes every channel of `slot` out of the pool if all `channels` of
    /// them are idle (so the worker can be stopped between requests).
    pub fn take_idle(&self, slot: u32, channels: usize) -> Option<Vec<WorkerConn>> {
        let mut idle = self.idle.lock().ok()?;
        if idle.iter().filter(|c| c.slot == slot).count() != channels {
            return None;
        }
        Some(self.take_locked(&mut idle, slot))
    }

    /// Takes whichever channels of `slot` are idle out of the pool.
    pub fn take_idle_channels(&self, slot: u32) -> Vec<WorkerConn> {
        match self.idle.lock() {
            Ok(mut idle) => self.take_locked(&mut idle, slot),
            Err(_) => Vec::new(),
        }
    }

    fn take_locked(&self, idle: &mut Vec<WorkerConn>, slot: u32) -> Vec<WorkerConn> {
        let (taken, kept): (Vec<_>, Vec<_>) = std::mem::take(idle)
            .into_iter()
            .partition(|c| c.slot == slot);
        *idle = kept;
        for _ in &taken {
            match self.permits.try_acquire() {
                Ok(p) => p.forget(),
                Err(_) => {
                    self.debt.fetch_add(1, Ordering::AcqRel);
                }
            }
        }
        taken
    }

    /// Every slot's busy state now.
    pub fn busy_samples(&self) -> Vec<BusySample> {
        self.table.busy_samples()
    }

    /// Stops leasing: waiters and later callers get `Closed`.
    pub fn close(&self) {
        self.permits.close();
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }

    /// Waits for an idle worker.
    pub async fn lease(self: &Arc<Self>) -> Result<Lease, Unavailable> {
        // The count goes down when the wait ends however it ends: a request
        // whose client leaves while it waits drops this future.
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let waiting = Waiting(&self.waiting);
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            drop(waiting);
            return Err(Unavailable::QueueFull);
        }
        let res = self.lease_inner().await;
        drop(waiting);
        res
    }

    async fn lease_inner(self: &Arc<Self>) -> Result<Lease, Unavailable> {
        loop {
            let permit = self
                .permits
                .acquire()
                .await
                .map_err(|_| Unavailable::Closed)?;
            permit.forget();
            // A permit whose channel `take_idle` removed pays a debt.
            if self
                .debt
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| d.checked_sub(1))
                .is_ok()
            {
                continue;
            }
            let conn = self.idle.lock().map_err(|_| Unavailable::Closed)?.pop();
            match conn {
                Some(c) if c.alive.load(Ordering::Acquire) => {
                    self.table.begin(c.slot, c.core);
                    return Ok(Lease {
                        pool: self.clone(),
                        conn: Some(c),
                        started: Instant::now(),
                    });
                }
                // A worker that died while idle: drop it and take another.
                Some(_) | None => continue,
            }
        }
    }
}

/// A worker leased for one request.
#[derive(Debug)]
pub struct Lease {
    pool: Arc<Pool>,
    conn: Option<WorkerConn>,
    /// When the lease began (the request's busy time starts here).
    pub started: Instant,
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
    pub fn finish(self, done: Done) {
        self.give_back(Some(done));
    }

    /// Gives the worker back after an exchange that did not complete (the
    /// client left and the rest was drained): not counted as a request.
    pub fn release(self) {
        self.give_back(None);
    }

    fn give_back(mut self, done: Option<Done>) {
        if let Some(c) = self.conn.take() {
            self.pool.table.end(c.slot, c.core, done);
            if done.is_some() {
                self.pool.total_requests.fetch_add(1, Ordering::Relaxed);
            }
            if c.alive.load(Ordering::Acquire) {
                self.pool.add(c);
            }
        }
    }

    /// The instance's request count.
    pub fn total_requests(&self) -> u64 {
        self.pool.total_requests.load(Ordering::Relaxed)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // A lease dropped without `release`: the channel is discarded, and
        // the slot is no longer busy with it.
        if let Some(c) = self.conn.take() {
            self.pool.table.end(c.slot, c.core, None);
        }
    }
}
