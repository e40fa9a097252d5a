//! The pool of idle workers and the bounded queue of requests waiting for
//! one. A connection task leases a worker for one request and gives it back
//! when the worker says END; a lease dropped without that (the worker died,
//! the client vanished mid-response) discards the worker's channel, which
//! makes the worker exit, and the supervisor respawns it.
//!
//! Idle workers are taken most-recently-idle first, so hot workers stay hot.
//! The wait queue is bounded by `listen`: past it the caller answers 503.

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

/// The pool.
#[derive(Debug)]
pub struct Pool {
    idle: Mutex<Vec<WorkerConn>>,
    permits: Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
    /// Requests served by the whole instance.
    pub total_requests: AtomicU64,
    /// Requests answered 503 because the queue was full.
    pub rejected: AtomicU64,
}

impl Pool {
    /// An empty pool whose queue holds at most `max_waiting` requests.
    pub fn new(max_waiting: usize) -> Arc<Pool> {
        Arc::new(Pool {
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(0),
            waiting: AtomicUsize::new(0),
            max_waiting,
            total_requests: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        })
    }

    /// Adds an idle worker.
    pub fn add(&self, w: WorkerConn) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(w);
            self.permits.add_permits(1);
        }
    }

    /// Requests waiting for a worker now (the backlog).
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
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
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(Unavailable::QueueFull);
        }
        let res = self.lease_inner().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
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
            let conn = self.idle.lock().map_err(|_| Unavailable::Closed)?.pop();
            match conn {
                Some(c) if c.alive.load(Ordering::Acquire) => {
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

    /// Gives the worker back after a complete exchange.
    pub fn release(mut self) {
        if let Some(c) = self.conn.take() {
            self.pool.total_requests.fetch_add(1, Ordering::Relaxed);
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
