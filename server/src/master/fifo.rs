//! The master FIFO (uWSGI `core/fifo.c`, reference §5.2): a named pipe,
//! created with mode 0600 (an old file is replaced), read one byte per
//! command. Supported: `+` and `-` (one worker more or fewer, through the
//! cheaper subsystem), `r` and `c` (graceful reload, worker by worker:
//! `supervisor/reload.rs`) and `q`/`Q` (graceful shutdown). Other uWSGI commands
//! are logged as not supported; unknown bytes (a newline from `echo`) are
//! ignored.

use std::path::PathBuf;

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

/// What the FIFO asks the master for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// One worker more (+1) or fewer (-1).
    Delta(i64),
    /// Graceful shutdown.
    Shutdown,
    /// Graceful reload.
    Reload,
    /// Open the log file again, in every process (`l`).
    LogReopen,
    /// Rotate the log file (`L`).
    LogRotate,
}

/// Maps a command byte.
pub fn parse(b: u8) -> Option<Result<Command, char>> {
    match b {
        b'+' => Some(Ok(Command::Delta(1))),
        b'-' => Some(Ok(Command::Delta(-1))),
        b'q' | b'Q' => Some(Ok(Command::Shutdown)),
        b'r' | b'c' => Some(Ok(Command::Reload)),
        b'l' => Some(Ok(Command::LogReopen)),
        b'L' => Some(Ok(Command::LogRotate)),
        b'0'..=b'9'
        | b'B'
        | b'C'
        | b'E'
        | b'f'
        | b'p'
        | b'P'
        | b'R'
        | b's'
        | b'S'
        | b'w'
        | b'W' => Some(Err(b as char)),
        _ => None,
    }
}

/// Creates the FIFO at `path` and forwards its commands until the receiver
/// goes away.
pub async fn serve(path: PathBuf, tx: mpsc::Sender<Command>) {
    let _ = std::fs::remove_file(&path);
    if let Err(e) = nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
        tracing::error!(event = "fifo_failed", cause = %e, path = %path.display(), "cannot create the master FIFO");
        return;
    }
    // Opened read-write, so the pipe never reports EOF when a writer leaves.
    let mut rx = match tokio::net::unix::pipe::OpenOptions::new()
        .read_write(true)
        .open_receiver(&path)
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(event = "fifo_failed", cause = %e, path = %path.display(), "cannot open the master FIFO");
            return;
        }
    };
    tracing::info!(event = "fifo", path = %path.display(), "master FIFO ready at {}", path.display());
    let mut buf = [0u8; 64];
    loop {
        let n = match rx.read(&mut buf).await {
            Ok(0) => continue,
            Ok(n) => n,
            Err(e) => {
                tracing::error!(event = "fifo_failed", cause = %e, "master FIFO read failed");
                return;
            }
        };
        for &b in buf.get(..n).unwrap_or_default() {
            match parse(b) {
                Some(Ok(cmd)) if tx.send(cmd).await.is_err() => return,
                Some(Ok(_)) => {}
                Some(Err(c)) => {
                    tracing::warn!(event = "fifo_unsupported", command = %c, "master FIFO command '{c}' is not supported");
                }
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(parse(b'+'), Some(Ok(Command::Delta(1))));
        assert_eq!(parse(b'-'), Some(Ok(Command::Delta(-1))));
        assert_eq!(parse(b'q'), Some(Ok(Command::Shutdown)));
        assert_eq!(parse(b'r'), Some(Ok(Command::Reload)));
        assert_eq!(parse(b'R'), Some(Err('R')));
        assert_eq!(parse(b'\n'), None);
    }
}
