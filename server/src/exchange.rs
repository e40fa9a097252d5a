//! The master's side of one request on a leased worker: send the REQUEST
//! frame, then turn the worker's frames into [`Event`]s, answering READ
//! frames from the request body on the way. Both listeners (uwsgi and HTTP)
//! drive a request through this one type.

use std::future::Future;
use std::io;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::dispatch::Lease;
use crate::ipc::{self, EndInfo, FRAME_HEADER, Kind, ResponseHead};

/// Where request body bytes come from.
pub trait BodySource: Send {
    /// Up to `max` more bytes; empty at the end of the body.
    fn read(&mut self, max: usize) -> impl Future<Output = io::Result<Bytes>> + Send;
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

/// One request in flight on a worker.
#[derive(Debug)]
pub struct Exchange<B> {
    lease: Lease,
    rbuf: BytesMut,
    body: B,
    /// Request body bytes handed to the worker.
    pub body_sent: u64,
}

impl<B: BodySource> Exchange<B> {
    /// Sends the request frame.
    pub async fn start(mut lease: Lease, frame: &[u8], body: B) -> Result<Self, Gone> {
        let (slot, pid) = lease.ids();
        let conn = lease
            .conn()
            .ok_or_else(|| gone(slot, pid, "has no channel"))?;
        conn.stream
            .write_all(frame)
            .await
            .map_err(|e| gone(slot, pid, &format!("did not take the request: {e}")))?;
        Ok(Exchange {
            lease,
            rbuf: BytesMut::with_capacity(8 * 1024),
            body,
            body_sent: 0,
        })
    }

    /// The worker's slot and pid.
    pub fn ids(&self) -> (u32, i32) {
        self.lease.ids()
    }

    /// The lease (for its start time and counters).
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// The next event, waiting for the worker as needed.
    pub async fn next(&mut self) -> Result<Event, Gone> {
        loop {
            let (kind, payload) = self.frame().await?;
            if kind == Kind::Read {
                self.answer_read(&payload).await?;
                continue;
            }
            return self.event(kind, payload);
        }
    }

    /// The next event if it is already buffered (and is not a READ), without
    /// waiting.
    pub fn next_buffered(&mut self) -> Option<Result<Event, Gone>> {
        let (kind, len) = self.peek()?;
        if kind == Kind::Read || self.rbuf.len() < FRAME_HEADER + len {
            return None;
        }
        self.rbuf.advance(FRAME_HEADER);
        let payload = self.rbuf.split_to(len).freeze();
        Some(self.event(kind, payload))
    }

    /// Gives the worker back (after END).
    pub fn finish(self) -> Lease {
        self.lease
    }

    fn event(&self, kind: Kind, payload: Bytes) -> Result<Event, Gone> {
        let (slot, pid) = self.lease.ids();
        match kind {
            Kind::Head => ipc::parse_head(payload)
                .map(Event::Head)
                .map_err(|e| gone(slot, pid, &e.to_string())),
            Kind::Chunk => Ok(Event::Chunk(payload)),
            Kind::End => ipc::parse_end(&payload)
                .map(Event::End)
                .map_err(|e| gone(slot, pid, &e.to_string())),
            Kind::Abort => Ok(Event::Abort),
            other => Err(gone(
                slot,
                pid,
                &format!("sent an unexpected {other:?} frame"),
            )),
        }
    }

    fn peek(&self) -> Option<(Kind, usize)> {
        let head: [u8; FRAME_HEADER] = self.rbuf.get(..FRAME_HEADER)?.try_into().ok()?;
        ipc::parse_header(head).ok()
    }

    async fn frame(&mut self) -> Result<(Kind, Bytes), Gone> {
        let (slot, pid) = self.lease.ids();
        loop {
            if self.rbuf.len() >= FRAME_HEADER {
                let head: [u8; FRAME_HEADER] = self.rbuf[..FRAME_HEADER]
                    .try_into()
                    .map_err(|_| gone(slot, pid, "sent a short frame"))?;
                let (kind, len) =
                    ipc::parse_header(head).map_err(|e| gone(slot, pid, &e.to_string()))?;
                if self.rbuf.len() >= FRAME_HEADER + len {
                    self.rbuf.advance(FRAME_HEADER);
                    return Ok((kind, self.rbuf.split_to(len).freeze()));
                }
                self.rbuf.reserve(FRAME_HEADER + len - self.rbuf.len());
            }
            let conn = self
                .lease
                .conn()
                .ok_or_else(|| gone(slot, pid, "has no channel"))?;
            let n = conn
                .stream
                .read_buf(&mut self.rbuf)
                .await
                .map_err(|e| gone(slot, pid, &format!("channel failed: {e}")))?;
            if n == 0 {
                return Err(gone(slot, pid, "closed its channel"));
            }
        }
    }

    async fn answer_read(&mut self, payload: &[u8]) -> Result<(), Gone> {
        let (slot, pid) = self.lease.ids();
        let max = payload
            .first_chunk::<4>()
            .map(|b| u32::from_le_bytes(*b) as usize)
            .ok_or_else(|| gone(slot, pid, "sent a malformed READ"))?
            .min(ipc::CHUNK);
        // A client that fails mid-body ends the body; the worker sees a short
        // body and the app gets an error from wsgi.input.
        let data = match self.body.read(max).await {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(event = "body_read_failed", cause = %e, "request body read failed");
                Bytes::new()
            }
        };
        self.body_sent += data.len() as u64;
        let mut frame = BytesMut::with_capacity(FRAME_HEADER + data.len());
        ipc::put_frame(&mut frame, Kind::Body, &data);
        let conn = self
            .lease
            .conn()
            .ok_or_else(|| gone(slot, pid, "has no channel"))?;
        conn.stream
            .write_all(&frame)
            .await
            .map_err(|e| gone(slot, pid, &format!("channel failed: {e}")))
    }
}

fn gone(slot: u32, pid: i32, reason: &str) -> Gone {
    Gone {
        slot,
        pid,
        reason: reason.to_owned(),
    }
}
