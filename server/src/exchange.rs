//! The master's side of one request on a leased worker: send the REQUEST
//! frame, then turn the worker's frames into [`Event`]s, answering READ
//! frames from the request body on the way. Both listeners (uwsgi and HTTP)
//! drive a request through this one type.
//!
//! An exchange dropped before END (the client went away, hyper dropped the
//! request) does not cost the worker: a drain task answers the worker's READs
//! with end-of-body, discards its output until END, and gives the worker
//! back. A worker that does not reach END within [`DRAIN_LIMIT`] (an endless
//! stream, say) loses its channel instead, exits and is respawned.

use std::future::Future;
use std::io;
use std::time::Duration;

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncReadExt;

use crate::dispatch::{Grant, Handover, Lease, Pool, Queued, Unavailable};
use crate::ipc::{self, EndInfo, FRAME_HEADER, Kind, ResponseHead};

/// How long a drain may wait for a worker to reach END.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(30);
/// How much output a drain discards before giving up on the worker.
pub const DRAIN_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Where request body bytes come from.
pub trait BodySource: Send {
    /// Up to `max` more bytes; empty at the end of the body.
    fn read(&mut self, max: usize) -> impl Future<Output = io::Result<Bytes>> + Send;
}

/// A request without a body (a uWSGI signal's delivery).
#[derive(Debug)]
pub struct NoBody;

impl BodySource for NoBody {
    async fn read(&mut self, _max: usize) -> io::Result<Bytes> {
        Ok(Bytes::new())
    }
}

/// What the worker said.
#[derive(Debug)]
pub enum Event {
    /// Status and headers.
    Head(ResponseHead),
    /// Body bytes.
    Chunk(Bytes),
    /// The response is complete; the worker is idle again.
    End(EndInfo),
    /// The response failed midway: the client must see a failure.
    Abort,
}

/// The worker's channel failed: it died or broke the protocol.
#[derive(Debug, thiserror::Error)]
#[error("worker {slot} (pid {pid}) {reason}")]
pub struct Gone {
    /// The worker's slot.
    pub slot: u32,
    /// Its pid.
    pub pid: i32,
    /// What happened.
    pub reason: String,
}

/// Why a request could not be started on a worker.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No worker: the queue is full or the server is stopping (503).
    #[error("no worker available ({0:?})")]
    Unavailable(Unavailable),
    /// The worker failed before it got the request (502).
    #[error(transparent)]
    Gone(#[from] Gone),
}

/// How many times a request queued on a worker that then went away (died,
/// retired) before reading it is leased again.
const REQUEUES: usize = 3;

/// A leased worker's channel.
#[derive(Debug)]
struct Link {
    lease: Lease,
}

impl Link {
    fn gone(&self, reason: &str) -> Gone {
        let (slot, pid) = self.lease.ids();
        Gone {
            slot,
            pid,
            reason: reason.to_owned(),
        }
    }

    async fn write(&mut self, data: &[u8]) -> Result<(), Gone> {
        let res = match self.lease.conn() {
            Some(conn) => conn.write(data).await,
            None => Err(io::Error::other("no channel")),
        };
        res.map_err(|e| self.gone(&format!("channel failed: {e}")))
    }

    /// The next complete frame, reading as needed.
    async fn frame(&mut self) -> Result<(Kind, Bytes), Gone> {
        loop {
            if let Some(f) = self.buffered(true)? {
                return Ok(f);
            }
            let res = match self.lease.conn() {
                Some(conn) => conn.reader.read_buf(&mut conn.rbuf).await,
                None => Err(io::Error::other("no channel")),
            };
            match res {
                Ok(0) => {
                    self.lease.worker_closed();
                    return Err(self.gone("closed its channel"));
                }
                Ok(_) => {}
                Err(e) => {
                    // A worker that exits with frames unread in its channel
                    // gives ECONNRESET rather than EOF: closed all the same.
                    self.lease.worker_closed();
                    return Err(self.gone(&format!("channel failed: {e}")));
                }
            }
        }
    }

    /// A complete frame if one is buffered; with `read_ok` false, a READ is
    /// left in the buffer.
    fn buffered(&mut self, read_ok: bool) -> Result<Option<(Kind, Bytes)>, Gone> {
        // A loop, not recursion: an app may send any number of HARAKIRI
        // frames in a row.
        loop {
            let Some(rbuf) = self.lease.conn().map(|c| &mut c.rbuf) else {
                return Err(self.gone("has no channel"));
            };
            let Some(head) = rbuf.first_chunk::<FRAME_HEADER>() else {
                return Ok(None);
            };
            let (kind, len) = match ipc::parse_header(*head) {
                Ok(h) => h,
                Err(e) => return Err(self.gone(&e.to_string())),
            };
            if (!read_ok && kind == Kind::Read) || rbuf.len() < FRAME_HEADER + len {
                rbuf.reserve(FRAME_HEADER + len);
                return Ok(None);
            }
            rbuf.advance(FRAME_HEADER);
            let payload = rbuf.split_to(len).freeze();
            if kind != Kind::Harakiri {
                return Ok(Some((kind, payload)));
            }
            // Not an event: the app's deadline for this request, for the
            // supervisor's harakiri check.
            let secs = payload
                .first_chunk::<4>()
                .map(|b| u32::from_le_bytes(*b))
                .ok_or_else(|| self.gone("sent a malformed HARAKIRI"))?;
            self.lease.user_harakiri(secs);
        }
    }

    /// Sends a BODY frame.
    async fn body(&mut self, data: &[u8]) -> Result<(), Gone> {
        let mut frame = BytesMut::with_capacity(FRAME_HEADER + data.len());
        ipc::put_frame(&mut frame, Kind::Body, data);
        self.write(&frame).await
    }

    /// Decodes an END payload; a worker that retires after it (it said so)
    /// gets no other request.
    fn end(&mut self, payload: &Bytes) -> Result<ipc::EndInfo, ipc::FrameError> {
        let end = ipc::parse_end(payload)?;
        if end.retire {
            self.lease.retire();
        }
        Ok(end)
    }

    /// Reads the rest of an abandoned exchange and gives the worker back.
    async fn drain(mut self) {
        let mut discarded = 0u64;
        let done = tokio::time::timeout(DRAIN_LIMIT, async {
            loop {
                match self.frame().await? {
                    (Kind::Read, _) => self.body(&[]).await?,
                    (Kind::End, payload) => {
                        // A malformed END still ends the exchange.
                        let _ = self.end(&payload);
                        return Ok::<bool, Gone>(true);
                    }
                    (_, payload) => {
                        discarded += payload.len() as u64;
                        if discarded > DRAIN_MAX_BYTES {
                            return Ok(false);
                        }
                    }
                }
            }
        })
        .await;
        match done {
            Ok(Ok(true)) => self.lease.release(),
            Ok(Err(e)) => {
                tracing::debug!(event = "drain_failed", cause = %e, "worker failed while draining")
            }
            Ok(Ok(false)) | Err(_) => {
                let (slot, pid) = self.lease.ids();
                tracing::warn!(
                    event = "drain_abandoned",
                    worker = slot,
                    pid,
                    "worker {slot} (pid: {pid}) kept responding to a client that left; recycling it"
                );
            }
        }
    }
}

/// One request in flight on a worker.
#[derive(Debug)]
pub struct Exchange<B: BodySource> {
    /// `None` once finished or handed to a drain.
    link: Option<Link>,
    body: B,
}

impl<B: BodySource> Exchange<B> {
    /// Leases a worker (or a place on a busy one, see `dispatch`) and sends
    /// it the request frame.
    pub async fn start(pool: &Arc<Pool>, frame: &[u8], body: B) -> Result<Self, StartError> {
        Ok(Exchange {
            link: Some(place(pool, frame).await?),
            body,
        })
    }

    /// Leases worker `slot` itself (any worker: 0) when it is free, ahead
    /// of the requests waiting and with nothing queued behind
    /// (`Pool::lease_slot`), and sends it `frame`.
    pub async fn start_on(
        pool: &Arc<Pool>,
        slot: u32,
        frame: &[u8],
        body: B,
    ) -> Result<Self, StartError> {
        let lease = pool
            .lease_slot(slot)
            .await
            .map_err(StartError::Unavailable)?;
        let mut link = Link { lease };
        link.write(frame).await?;
        Ok(Exchange {
            link: Some(link),
            body,
        })
    }

    /// The worker's slot and pid.
    pub fn ids(&self) -> (u32, i32) {
        self.link.as_ref().map_or((0, 0), |l| l.lease.ids())
    }

    /// The worker thread (core) serving it.
    pub fn core(&self) -> u16 {
        self.link.as_ref().map_or(0, |l| l.lease.core())
    }

    /// Requests served by the instance so far.
    pub fn total_requests(&self) -> u64 {
        self.link.as_ref().map_or(0, |l| l.lease.total_requests())
    }

    /// The next event, waiting for the worker as needed.
    pub async fn next(&mut self) -> Result<Event, Gone> {
        let Some(link) = self.link.as_mut() else {
            return Err(Gone {
                slot: 0,
                pid: 0,
                reason: "exchange already finished".into(),
            });
        };
        loop {
            let (kind, payload) = link.frame().await?;
            if kind != Kind::Read {
                return event(link, kind, payload);
            }
            let max = payload
                .first_chunk::<4>()
                .map(|b| u32::from_le_bytes(*b) as usize)
                .ok_or_else(|| link.gone("sent a malformed READ"))?
                .min(ipc::CHUNK);
            // A client that fails mid-body ends the body; the worker sees a
            // short body and the app gets an error from wsgi.input.
            let data = match self.body.read(max).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::debug!(event = "body_read_failed", cause = %e, "request body read failed");
                    Bytes::new()
                }
            };
            link.body(&data).await?;
        }
    }

    /// The next event if it is already buffered (and is not a READ), without
    /// waiting.
    pub fn next_buffered(&mut self) -> Option<Result<Event, Gone>> {
        let link = self.link.as_mut()?;
        match link.buffered(false) {
            Ok(Some((kind, payload))) => Some(event(link, kind, payload)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }

    /// Gives the worker back after END, counting the request.
    pub fn finish(&mut self, done: crate::dispatch::Done) {
        if let Some(link) = self.link.take() {
            link.lease.finish(done);
        }
    }

    /// Reads and drops what the app left of the request body: at most
    /// `max` bytes, within `within` in all.
    pub async fn drain_body(&mut self, max: u64, within: std::time::Duration) {
        let drain = async {
            let mut drained = 0u64;
            while drained < max {
                match self.body.read(64 * 1024).await {
                    Ok(b) if !b.is_empty() => drained += b.len() as u64,
                    _ => break,
                }
            }
        };
        let _ = tokio::time::timeout(within, drain).await;
    }

    /// Gives the worker back after END without counting a request (a
    /// signal's delivery).
    pub fn release(mut self) {
        if let Some(link) = self.link.take() {
            link.lease.release();
        }
    }

    /// Drops the worker's channel: it failed, and must not serve again.
    pub fn discard(&mut self) {
        self.link = None;
    }
}

impl<B: BodySource> Drop for Exchange<B> {
    fn drop(&mut self) {
        let Some(link) = self.link.take() else { return };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(link.drain());
        }
    }
}

/// Leases a worker, or a place behind the request in flight on one, and
/// sends it `frame`.
async fn place(pool: &Arc<Pool>, frame: &[u8]) -> Result<Link, StartError> {
    for _ in 0..REQUEUES {
        match pool.lease().await.map_err(StartError::Unavailable)? {
            Grant::Ready(lease) => {
                let mut link = Link { lease };
                link.write(frame).await?;
                return Ok(link);
            }
            Grant::Queued(queued) => match queue(queued, frame).await {
                Handover::Channel(lease) => return Ok(Link { lease }),
                Handover::Requeue => continue,
                Handover::Lost => {
                    return Err(StartError::Gone(Gone {
                        slot: 0,
                        pid: 0,
                        reason: "failed with this request queued on it".into(),
                    }));
                }
            },
        }
    }
    Err(StartError::Gone(Gone {
        slot: 0,
        pid: 0,
        reason: "went away before the request started, each time it was queued".into(),
    }))
}

/// Sends the frame behind the request in flight and waits for the channel.
/// If this future is dropped after the frame went out (an HTTP client
/// left), the worker will run the request anyway: a drain takes its answer.
async fn queue(queued: Queued, frame: &[u8]) -> Handover {
    struct Waiting(Option<Queued>);
    impl Drop for Waiting {
        fn drop(&mut self) {
            let Some(mut q) = self.0.take().filter(Queued::sent) else {
                return;
            };
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if let Handover::Channel(lease) = q.handover().await {
                        Link { lease }.drain().await;
                    }
                });
            }
        }
    }
    let mut waiting = Waiting(Some(queued));
    let Some(q) = waiting.0.as_mut() else {
        return Handover::Lost;
    };
    if let Err(e) = q.send(frame).await {
        // The channel broke (the worker exited): the request in flight on
        // it fails, and this one waits for the verdict like any other.
        tracing::debug!(event = "queue_failed", cause = %e, "cannot queue a request on a worker");
    }
    let outcome = q.handover().await;
    waiting.0 = None;
    outcome
}

fn event(link: &mut Link, kind: Kind, payload: Bytes) -> Result<Event, Gone> {
    match kind {
        Kind::Head => ipc::parse_head(payload)
            .map(Event::Head)
            .map_err(|e| link.gone(&e.to_string())),
        Kind::Chunk => Ok(Event::Chunk(payload)),
        Kind::End => link
            .end(&payload)
            .map(Event::End)
            .map_err(|e| link.gone(&e.to_string())),
        Kind::Abort => Ok(Event::Abort),
        other => Err(link.gone(&format!("sent an unexpected {other:?} frame"))),
    }
}
