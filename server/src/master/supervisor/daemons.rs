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
//! `smart-attach-daemon = PIDFILE[,FREQ] COMMAND` is for a command that
//! daemonizes itself and writes its pid to PIDFILE (`core/daemons.c`
//! `uwsgi_daemons_smart_check`, once a second): at start it is not spawned
//! if the pidfile names a live process; one that was running and is gone is
//! started again; a freshly started one whose pidfile has not appeared after
//! FREQ checks (default 10) is started again with `[uwsgi-daemons] found
//! changed pidfile for "cmd" (old_pid: P new_pid: Q)`. They are independent
//! of the instance by design: not killed with the master, not restarted by a
//! reload, not stopped at shutdown.
//!
//! The supervisor reaps them (it reaps every child, and as a subreaper it
//! also gets daemonized grandchildren) and tells this table.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;

pub use crate::config::SmartDaemon;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long a daemon must live not to be throttled (uWSGI: 3 s).
const QUICK_EXIT: Duration = Duration::from_secs(3);
/// The longest throttle.
const MAX_THROTTLE: u64 = 300;

/// A smart daemon's pidfile watch.
#[derive(Debug)]
struct Watch {
    pidfile: PathBuf,
    /// Checks without a pidfile before starting again (uWSGI's `freq`).
    freq: u64,
    /// Seen running (uWSGI's status 2).
    monitored: bool,
    /// Checks without a live pidfile since the last spawn.
    checks: u64,
}

#[derive(Debug)]
struct Daemon {
    command: String,
    pid: Option<i32>,
    /// `Some` for `smart-attach-daemon`.
    watch: Option<Watch>,
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
    /// A table for these commands and smart daemons; nothing runs yet.
    pub fn new(commands: &[String], smart: &[SmartDaemon]) -> Daemons {
        let plain = commands.iter().map(|c| (c.clone(), None));
        let smart = smart.iter().map(|s| {
            let watch = Watch {
                pidfile: s.pidfile.clone(),
                freq: s.freq,
                monitored: false,
                checks: 0,
            };
            (s.command.clone(), Some(watch))
        });
        Daemons {
            list: plain
                .chain(smart)
                .map(|(command, watch)| Daemon {
                    command,
                    pid: None,
                    watch,
                    spawns: 0,
                    last_spawn: None,
                    due: Some(Instant::now()),
                })
                .collect(),
            stopping: false,
        }
    }

    /// The once-a-second pidfile check of smart daemons.
    pub fn check(&mut self) {
        if self.stopping {
            return;
        }
        for d in &mut self.list {
            let Some(w) = &mut d.watch else { continue };
            if d.due.is_some() {
                continue;
            }
            match live_pid(&w.pidfile) {
                None if w.monitored => {
                    w.monitored = false;
                    w.checks = 0;
                    spawn(d);
                }
                None => {
                    w.checks += 1;
                    if w.checks >= w.freq {
                        tracing::info!(event = "daemon_pidfile", command = %d.command,
                            "[uwsgi-daemons] found changed pidfile for \"{}\" (old_pid: {} new_pid: 0)",
                            d.command, d.pid.unwrap_or(0));
                        w.checks = 0;
                        spawn(d);
                    }
                }
                Some(p) if d.pid != Some(p) => {
                    tracing::info!(event = "daemon_pidfile", command = %d.command,
                        "[uwsgi-daemons] found changed pidfile for \"{}\" (old_pid: {} new_pid: {p})",
                        d.command, d.pid.unwrap_or(0));
                    d.pid = Some(p);
                }
                Some(_) => w.monitored = true,
            }
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
                // A smart daemon still running from before is watched, not
                // started again.
                if let Some(p) = d.watch.as_ref().and_then(|w| live_pid(&w.pidfile)) {
                    d.pid = Some(p);
                    if let Some(w) = &mut d.watch {
                        w.monitored = true;
                    }
                    continue;
                }
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
        // A smart daemon's first process exits once it has daemonized; the
        // pidfile check decides what runs.
        if self.stopping || d.watch.is_some() {
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
        let plain = self.list.iter().filter(|d| d.watch.is_none());
        for pid in plain.filter_map(|d| d.pid) {
            let _ = kill(Pid::from_raw(pid), sig);
        }
    }

    /// Stops respawning and asks each to stop; returns their pids.
    pub fn stop(&mut self) -> Vec<i32> {
        self.stopping = true;
        self.signal(Signal::SIGTERM);
        let plain = self.list.iter().filter(|d| d.watch.is_none());
        plain.filter_map(|d| d.pid).collect()
    }
}

/// The pid in `pidfile`, if that process is alive (uWSGI's
/// `uwsgi_check_pidfile`).
fn live_pid(pidfile: &std::path::Path) -> Option<i32> {
    let text = std::fs::read_to_string(pidfile).ok()?;
    let pid: i32 = text.trim().parse().ok().filter(|&p| p > 0)?;
    kill(Pid::from_raw(pid), None).is_ok().then_some(pid)
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
    // Plain daemons die with the master; smart ones are on their own.
    let tied = d.watch.is_none();
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls setsid and prctl, which are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if tied {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            }
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
        let mut d = Daemons::new(&["exit 3".to_owned()], &[]);
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
