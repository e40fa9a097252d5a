//! `attach-daemon`: commands the master starts beside the workers and
//! starts again when they exit (a Celery worker, a mail loop), as uWSGI's
//! `core/daemons.c` does:
//! - each runs through `/bin/sh -c` (uWSGI's `uwsgi_exec_command_with_args`);
//!   where there is no shell, as in rwsgi's `FROM scratch` image, the
//!   command is split on spaces and run directly;
//! - in a session of its own (`setsid`), stdin on `/dev/null`, killed if
//!   the master dies (`PR_SET_PDEATHSIG`), with the instance's uid and gid;
//! - uWSGI's lines: `[uwsgi-daemons] spawning "cmd" (uid: U gid: G)`, then
//!   `respawning`; one that exits within 3 s of its start waits (its spawn
//!   count minus the seconds it lived, at least 1 s; capped here at 300 s)
//!   with `[uwsgi-daemons] throttling "cmd" for N seconds`;
//! - a reload stops them with SIGTERM and they start again (uWSGI re-execs
//!   its master and them); shutdown stops them with SIGTERM, then SIGKILL.
//!
//! The supervisor reaps them (it reaps every child) and tells this table.

use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long a daemon must live not to be throttled (uWSGI: 3 s).
const QUICK_EXIT: Duration = Duration::from_secs(3);
/// The longest throttle.
const MAX_THROTTLE: u64 = 300;

#[derive(Debug)]
struct Daemon {
    command: String,
    pid: Option<i32>,
    /// Spawns so far (uWSGI's `respawns`, which counts the first too).
    spawns: u64,
    last_spawn: Option<Instant>,
    /// When a dead daemon is started again.
    due: Option<Instant>,
}

/// The attached daemons.
#[derive(Debug, Default)]
pub struct Daemons {
    list: Vec<Daemon>,
    stopping: bool,
}

impl Daemons {
    /// A table for these commands; nothing runs yet.
    pub fn new(commands: &[String]) -> Daemons {
        Daemons {
            list: commands
                .iter()
                .map(|c| Daemon {
                    command: c.clone(),
                    pid: None,
                    spawns: 0,
                    last_spawn: None,
                    due: Some(Instant::now()),
                })
                .collect(),
            stopping: false,
        }
    }

    /// The next time one is due to start.
    pub fn next_due(&self) -> Option<Instant> {
        if self.stopping {
            return None;
        }
        self.list.iter().filter_map(|d| d.due).min()
    }

    /// Starts those that are due.
    pub fn spawn_due(&mut self) {
        if self.stopping {
            return;
        }
        let now = Instant::now();
        for d in &mut self.list {
            if d.due.is_some_and(|t| t <= now) {
                d.due = None;
                spawn(d);
            }
        }
    }

    /// Whether `pid` was one of ours; if so, it is scheduled to start again.
    pub fn exited(&mut self, pid: i32, status: i32) -> bool {
        let Some(d) = self.list.iter_mut().find(|d| d.pid == Some(pid)) else {
            return false;
        };
        d.pid = None;
        tracing::info!(event = "daemon_exited", pid, status, command = %d.command,
            "[uwsgi-daemons] \"{}\" (pid: {pid}) exited with status {status}", d.command);
        if self.stopping {
            return true;
        }
        let lived = d.last_spawn.map_or(Duration::MAX, |t| t.elapsed());
        let wait = throttle(d.spawns, lived);
        if wait > 0 {
            tracing::info!(event = "daemon_throttled", seconds = wait, command = %d.command,
                "[uwsgi-daemons] throttling \"{}\" for {wait} seconds", d.command);
        }
        d.due = Some(Instant::now() + Duration::from_secs(wait));
        true
    }

    /// Sends `sig` to every running daemon (SIGTERM on reload: they start
    /// again when they exit).
    pub fn signal(&self, sig: Signal) {
        for pid in self.list.iter().filter_map(|d| d.pid) {
            let _ = kill(Pid::from_raw(pid), sig);
        }
    }

    /// Stops respawning and asks each to stop; returns their pids.
    pub fn stop(&mut self) -> Vec<i32> {
        self.stopping = true;
        self.signal(Signal::SIGTERM);
        self.list.iter().filter_map(|d| d.pid).collect()
    }
}

/// Seconds to wait before starting again a daemon spawned `spawns` times
/// that lived `lived` (uWSGI's formula, capped).
fn throttle(spawns: u64, lived: Duration) -> u64 {
    if lived > QUICK_EXIT {
        return 0;
    }
    spawns
        .saturating_sub(lived.as_secs())
        .clamp(1, MAX_THROTTLE)
}

fn spawn(d: &mut Daemon) {
    let mut cmd = crate::hooks::command(&d.command);
    cmd.stdin(Stdio::null());
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls setsid and prctl, which are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            Ok(())
        });
    }
    let again = if d.spawns > 0 { "re" } else { "" };
    tracing::info!(event = "daemon_spawn", command = %d.command,
        "[uwsgi-daemons] {again}spawning \"{}\" (uid: {} gid: {})",
        d.command, nix::unistd::getuid(), nix::unistd::getgid());
    d.spawns += 1;
    d.last_spawn = Some(Instant::now());
    match cmd.spawn() {
        // The supervisor reaps it; the handle is not needed.
        Ok(child) => d.pid = i32::try_from(child.id()).ok(),
        Err(e) => {
            tracing::error!(event = "daemon_failed", command = %d.command, cause = %e,
                "[uwsgi-daemons] unable to spawn \"{}\": {e}", d.command);
            let wait = throttle(d.spawns, Duration::ZERO);
            d.due = Some(Instant::now() + Duration::from_secs(wait));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_exits_are_throttled_as_uwsgi_does() {
        let s = Duration::from_secs;
        assert_eq!(throttle(1, s(60)), 0);
        assert_eq!(throttle(1, s(4)), 0);
        assert_eq!(throttle(1, s(0)), 1);
        assert_eq!(throttle(5, s(2)), 3);
        assert_eq!(throttle(2, s(3)), 1);
        assert_eq!(throttle(10_000, s(0)), MAX_THROTTLE);
    }

    #[test]
    fn a_daemon_runs_and_is_started_again() {
        let mut d = Daemons::new(&["exit 3".to_owned()]);
        assert!(d.next_due().is_some());
        d.spawn_due();
        let pid = d.list[0].pid.expect("spawned");
        let status = nix::sys::wait::waitpid(Pid::from_raw(pid), None).unwrap();
        assert_eq!(
            status,
            nix::sys::wait::WaitStatus::Exited(Pid::from_raw(pid), 3)
        );
        assert!(d.exited(pid, 3));
        assert!(!d.exited(pid, 3), "already gone");
        // It lived under 3 s: started again after a 1 s throttle.
        let due = d.next_due().unwrap();
        assert!(due > Instant::now());
        assert!(d.stop().is_empty());
        assert_eq!(d.next_due(), None);
    }
}
