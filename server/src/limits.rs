//! Process limits set by the master before anything starts, so every
//! process inherits them: `max-fd` (`RLIMIT_NOFILE`) and `limit-as`
//! (`RLIMIT_AS`), with uWSGI's log lines.

use std::io;

/// Sets a limit, soft and hard, to `value`.
fn set(resource: libc::__rlimit_resource_t, value: u64) -> io::Result<()> {
    let want = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: setrlimit reads a valid `rlimit` for this process only.
    if unsafe { libc::setrlimit(resource, &want) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets the open-file limit to `n` (`max-fd`; raising the hard limit needs
/// privileges) and logs the limit in force, as uWSGI does (`detected max
/// file descriptor number`). A refusal is logged and the limit kept.
pub fn raise_fd_limit(n: u64) {
    if let Err(e) = set(libc::RLIMIT_NOFILE, n) {
        tracing::error!(event = "max_fd_failed", cause = %e, "setrlimit(): {e}");
    }
    let mut now = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into `now`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut now) } == 0 {
        tracing::info!(
            event = "max_fd",
            limit = now.rlim_cur,
            "detected max file descriptor number: {}",
            now.rlim_cur
        );
    }
}

/// `limit-as`: caps the address space of this process, and so of every
/// process it starts, at `mib` MiB (uWSGI sets `RLIMIT_AS` the same way and
/// logs the same line). A refusal is logged and nothing is limited.
pub fn limit_address_space(mib: u64) {
    match set(libc::RLIMIT_AS, mib.saturating_mul(1024 * 1024)) {
        Ok(()) => tracing::info!(
            event = "limit_as",
            mib,
            "limiting address space of processes..."
        ),
        Err(e) => tracing::error!(event = "limit_as_failed", cause = %e, "setrlimit(): {e}"),
    }
}
