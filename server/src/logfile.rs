//! `logto`, `logto2` and `logger = file:PATH`: every process's stdout and
//! stderr go to a file (or to `host:port` over UDP), as in uWSGI
//! (`core/logging.c` `logto`: `open(O_RDWR|O_CREAT|O_APPEND, 0640)`, then
//! `dup2` onto 1 and 2). The master redirects its own descriptors; the
//! prototype and the workers inherit them, so the app's `print` and
//! tracebacks land in the same file. `log-reopen` opens the file again at
//! each graceful reload, for logrotate's move-and-reload; the new
//! generation of workers writes to the new file. `touch-logreopen` and the
//! master FIFO's `l` open it again at once: the master itself, and every
//! other process through the log generation word of the worker snapshot
//! ([`follow`]): a worker before its next request, a spooler before its
//! next scan, a mule before its next message (uWSGI needs `log-master` for
//! this, its master being the only writer).

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What [`reopen_now`] opens again: the target and its mode.
static TARGET: Mutex<Option<(String, Option<u32>)>> = Mutex::new(None);
/// `log-reopen`: [`reopen`] at each graceful reload.
static ON_RELOAD: AtomicBool = AtomicBool::new(false);
/// The log generation this process last followed.
static SEEN: AtomicU64 = AtomicU64::new(0);

/// Points stdout and stderr at `target` and remembers it; [`reopen`] opens
/// it again at each reload when `reopen_on_reload`.
pub fn redirect(target: &str, chmod: Option<u32>, reopen_on_reload: bool) -> io::Result<()> {
    point_std_at(&open(target, chmod)?)?;
    remember(target, chmod);
    if reopen_on_reload {
        ON_RELOAD.store(true, Ordering::Relaxed);
    }
    Ok(())
}

/// Remembers the log target a process inherited (the prototype: the
/// master opened it), so it and its children can open it again.
pub fn remember(target: &str, chmod: Option<u32>) {
    if let Ok(mut r) = TARGET.lock() {
        *r = Some((target.to_owned(), chmod));
    }
}

/// Opens the log file again at a reload (`log-reopen`), if asked for.
pub fn reopen() {
    if ON_RELOAD.load(Ordering::Relaxed) {
        reopen_now(true);
    }
}

/// Opens the log file again now (nothing without one); logs a failure and
/// keeps the old file, and with `tell` the success too.
pub fn reopen_now(tell: bool) {
    let target = TARGET.lock().ok().and_then(|r| r.clone());
    let Some((target, chmod)) = target else {
        return;
    };
    match open(&target, chmod).and_then(|fd| point_std_at(&fd)) {
        Ok(()) if tell => {
            tracing::info!(event = "log_reopened", path = %target, "log file reopened")
        }
        Ok(()) => {}
        Err(e) => {
            tracing::error!(event = "log_reopen_failed", path = %target, cause = %e, "cannot reopen the log file")
        }
    }
}

/// Opens the log file again if the master asked for it since this process
/// last looked (`generation` is the snapshot's log generation).
pub fn follow(generation: u64) {
    if SEEN.swap(generation, Ordering::Relaxed) != generation {
        reopen_now(false);
    }
}

/// Makes stdout and stderr `fd`.
fn point_std_at(fd: &OwnedFd) -> io::Result<()> {
    for std_fd in [1, 2] {
        // SAFETY: dup2 on two valid descriptors; 1 and 2 are then the log,
        // which is what every writer of stdout/stderr expects them to be.
        if unsafe { libc::dup2(fd.as_raw_fd(), std_fd) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn open(target: &str, chmod: Option<u32>) -> io::Result<OwnedFd> {
    if let Some(addr) = udp_address(target) {
        let sock = std::net::UdpSocket::bind(if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        })?;
        sock.connect(addr)?;
        return Ok(sock.into());
    }
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o640)
        .open(target)?;
    if let Some(mode) = chmod {
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    Ok(file.into())
}

/// `host:port` rather than a path: a literal address, or a host name with
/// a numeric port, resolved once (its first address). uWSGI reads any value
/// with a colon as one; here a value with a `/`, or whose part after the
/// last colon is not a port, is a file.
pub fn udp_address(target: &str) -> Option<std::net::SocketAddr> {
    use std::net::ToSocketAddrs;
    if target.contains('/') {
        return None;
    }
    if let Ok(a) = target.parse() {
        return Some(a);
    }
    let (host, port) = target.rsplit_once(':')?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return None;
    }
    target.to_socket_addrs().ok()?.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_udp_addresses() {
        assert!(udp_address("/var/log/app.log").is_none());
        assert!(udp_address("app.log").is_none());
        assert_eq!(
            udp_address("127.0.0.1:1717"),
            Some("127.0.0.1:1717".parse().unwrap())
        );
        // A host name with a port is resolved; a colon in a file name is not
        // a port.
        assert_eq!(udp_address("localhost:1717").map(|a| a.port()), Some(1717));
        assert!(udp_address("app:1.log").is_none());
        assert!(udp_address(":1717").is_none());
    }
}
