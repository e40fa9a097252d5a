//! Process limits set by the master before anything starts, so every
//! process inherits them: `max-fd` (`RLIMIT_NOFILE`) and `limit-as`
//! (`RLIMIT_AS`), with uWSGI's log lines.

use std::io;

/// Sets the open-file limit, soft and hard, to `n` (`max-fd`; raising the
/// hard limit needs privileges) and logs the limit in force, as uWSGI does
/// (`detected max file descriptor number`). Every process rwsgi starts
/// inherits it. A refusal is logged and the current limit kept.
pub fn raise_fd_limit(n: u64) {
    let want = libc::rlimit {
        rlim_cur: n,
        rlim_max: n,
    };
    // SAFETY: setrlimit reads a valid `rlimit` for this process only.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } != 0 {
        let e = io::Error::last_os_error();
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
    let bytes = mib.saturating_mul(1024 * 1024);
    let want = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: setrlimit reads a valid `rlimit` for this process only.
    if unsafe { libc::setrlimit(libc::RLIMIT_AS, &want) } != 0 {
        let e = io::Error::last_os_error();
        tracing::error!(event = "limit_as_failed", cause = %e, "setrlimit(): {e}");
        return;
    }
    tracing::info!(
        event = "limit_as",
        mib,
        "limiting address space of processes..."
    );
}
