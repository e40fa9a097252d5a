//! The stats socket: TCP or unix. Raw mode writes the document on accept
//! without reading anything (uWSGI's default; clients read to EOF).
//! `stats-http` first reads the request (at most 4096 bytes, within
//! `socket-timeout`), then answers HTTP/1.0 with exactly uWSGI's headers.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Info;
use crate::conn::Lazy;
use crate::dispatch::Pool;
use crate::listen::{Accepted, Listener};

/// uWSGI's `uwsgi_send_http_stats` headers.
const HTTP_HEAD: &[u8] =
    b"HTTP/1.0 200 OK\r\nConnection: close\r\nAccess-Control-Allow-Origin: *\r\nContent-Type: application/json\r\n\r\n";

/// Serves the stats socket until the task is dropped.
pub async fn serve(
    listener: Listener,
    pool: Arc<Pool>,
    info: Arc<Info>,
    http: bool,
    timeout: Duration,
) {
    loop {
        let conn = listener.next().await;
        let doc = super::render(&pool, &info);
        tokio::spawn(async move {
            match conn {
                Accepted::Tcp(s, _) => answer(Lazy::new(s), doc, http, timeout).await,
                Accepted::Unix(s) => answer(Lazy::new(s), doc, http, timeout).await,
            }
        });
    }
}

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    doc: Vec<u8>,
    http: bool,
    timeout: Duration,
) {
    let write = async {
        if http {
            let mut buf = vec![0u8; 4096];
            let _ = tokio::time::timeout(timeout, s.read(&mut buf)).await;
            s.write_all(HTTP_HEAD).await?;
        }
        s.write_all(&doc).await?;
        s.shutdown().await
    };
    if let Ok(Err(e)) = tokio::time::timeout(timeout, write).await {
        tracing::debug!(event = "stats_write_failed", cause = %e, "stats write failed");
    }
}
