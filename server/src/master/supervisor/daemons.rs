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
//! - a reload stops them with their reload signal (else their stop signal,
//!   SIGTERM unless `attach-daemon2` says otherwise) and they start again
//!   (uWSGI re-execs its master and them); shutdown stops them with their
//!   stop signal, then SIGKILL. Signals go to the daemon's process group,
//!   as uWSGI sends them;
//! - in `attach-daemon2`'s `chdir`, else in the instance's `chdir` (uWSGI's
//!   master has changed there before it starts them); `max_throttle`;
//!   `touch` (a change of one of the files stops the daemon, which then
//!   starts again).
//!
//! `smart-attach-daemon = PIDFILE[,FREQ] COMMAND` is for a command that
//! daemonizes itself and writes its pid to PIDFILE (`core/daemons.c`
//! `uwsgi_daemons_smart_check`, once a second): at start it is not spawned
//! if the pidfile names a live process; one that was running and is gone is
//! started again; a freshly started one whose pidfile has not appeared after
//! FREQ checks (default 10) is started again with `[uwsgi-daemons] found
//! changed pidfile for "cmd" (old_pid: P new_pid: Q)`. They are independent
//! of the instance by design: not killed with the master, not restarted by a
//! reload, not stopped at shutdown. `smart-attach-daemon2` (and
//! `attach-daemon2`'s `daemonize`) is for a command that stays in the
//! foreground: rwsgi writes its pid to PIDFILE when it starts it (uWSGI
//! forks once more to detach it; here it stays a child of the master, which
//! reaps it, and lives on when the master goes).
//!
//! The supervisor reaps them (it reaps every child, and as a subreaper it
//! also gets daemonized grandchildren) and tells this table.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use crate::config::DaemonSpec;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long a daemon must live not to be throttled (uWSGI: 3 s).
const QUICK_EXIT: Duration = Duration::from_secs(3);

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
    spec: DaemonSpec,
    command: String,
    pid: Option<i32>,
    /// `Some` for smart daemons.
    watch: Option<Watch>,
    /// The `touch` files' modification times as last seen.
    touched: Vec<Option<SystemTime>>,
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
    /// A table for these daemons; nothing runs yet.
    pub fn new(specs: &[DaemonSpec]) -> Daemons {
        Daemons {
            list: specs
                .iter()
                .map(|spec| Daemon {
                    command: spec.command.clone(),
                    pid: None,
                    watch: spec.pidfile.as_ref().map(|pidfile| Watch {
                        pidfile: pidfile.clone(),
                        freq: spec.freq,
                        monitored: false,
                        checks: 0,
                    }),
                    touched: spec.touch.iter().map(|p| mtime(p)).collect(),
                    spec: spec.clone(),
                    spawns: 0,
                    last_spawn: None,
                    due: Some(Instant::now()),
                })
                .collect(),
            stopping: false,
        }
    }

    /// The once-a-second checks: `touch` files, and smart daemons'
    /// pidfiles.
    pub fn check(&mut self) {
        if self.stopping {
            return;
        }
        for d in &mut self.list {
            check_touch(d);
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
        let wait = throttle(d.spawns, lived, d.spec.max_throttle);
        if wait > 0 {
            tracing::info!(event = "daemon_throttled", seconds = wait, command = %d.command,
                "[uwsgi-daemons] throttling \"{}\" for {wait} seconds", d.command);
        }
        d.due = Some(Instant::now() + Duration::from_secs(wait));
        true
    }

    /// A reload: every running daemon that is not smart gets its reload
    /// signal (else its stop signal) and starts again when it exits.
    pub fn reload(&self) {
        for d in self.list.iter().filter(|d| d.watch.is_none()) {
            let sig = match d.spec.reload_signal {
                0 => d.spec.stop_signal,
                s => s,
            };
            signal_group(d, sig);
        }
    }

    /// Stops respawning and asks each daemon that is not smart to stop;
    /// returns their pids.
    pub fn stop(&mut self) -> Vec<i32> {
        self.stopping = true;
        let plain = self.list.iter().filter(|d| d.watch.is_none());
        for d in plain.clone() {
            signal_group(d, d.spec.stop_signal);
        }
        plain.filter_map(|d| d.pid).collect()
    }
}

/// Sends `sig` to a running daemon's process group (it is the leader of a
/// session of its own).
fn signal_group(d: &Daemon, sig: i32) {
    if let (Some(pid), Ok(sig)) = (d.pid, Signal::try_from(sig)) {
        let _ = kill(Pid::from_raw(-pid), sig);
    }
}

fn mtime(p: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// A `touch` file changed (created, removed, modified): the running
/// daemon gets its stop signal and starts again when it exits (a smart one
/// when its pidfile check finds it gone).
fn check_touch(d: &mut Daemon) {
    let mut touched = None;
    for (path, seen) in d.spec.touch.iter().zip(d.touched.iter_mut()) {
        let now = mtime(path);
        if now != *seen {
            *seen = now;
            touched = Some(path);
        }
    }
    let (Some(path), Some(pid)) = (touched, d.pid) else {
        return;
    };
    tracing::info!(event = "daemon_touched", command = %d.command, pid, path = %path.display(),
        "[uwsgi-daemons] {} touched, stopping \"{}\" (pid: {pid}) to start it again",
        path.display(), d.command);
    signal_group(d, d.spec.stop_signal);
}

/// The pid in `pidfile`, if that process is alive (uWSGI's
/// `uwsgi_check_pidfile`).
fn live_pid(pidfile: &std::path::Path) -> Option<i32> {
    let text = std::fs::read_to_string(pidfile).ok()?;
    let pid: i32 = text.trim().parse().ok().filter(|&p| p > 0)?;
    kill(Pid::from_raw(pid), None).is_ok().then_some(pid)
}

/// Seconds to wait before starting again a daemon spawned `spawns` times
/// that lived `lived` (uWSGI's formula, capped at `max`).
fn throttle(spawns: u64, lived: Duration, max: u64) -> u64 {
    if lived > QUICK_EXIT {
        return 0;
    }
    spawns.saturating_sub(lived.as_secs()).clamp(1, max.max(1))
}

fn spawn(d: &mut Daemon) {
    // Plain daemons die with the master; smart ones are on their own.
    let tied = d.watch.is_none();
    let mut cmd = crate::hooks::session_command(&d.command, d.spec.chdir.as_deref(), tied);
    let again = if d.spawns > 0 { "re" } else { "" };
    tracing::info!(event = "daemon_spawn", command = %d.command,
        "[uwsgi-daemons] {again}spawning \"{}\" (uid: {} gid: {})",
        d.command, nix::unistd::getuid(), nix::unistd::getgid());
    d.spawns += 1;
    d.last_spawn = Some(Instant::now());
    match cmd.spawn() {
        // The supervisor reaps it; the handle is not needed.
        Ok(child) => {
            d.pid = i32::try_from(child.id()).ok();
            if let (true, Some(w), Some(pid)) = (d.spec.daemonize, &d.watch, d.pid) {
                // The command stays in the foreground: its pidfile is ours
                // to write (uWSGI's `uwsgi_write_pidfile` in the daemon).
                if let Err(e) = crate::master::write_pidfile(&w.pidfile, pid) {
                    tracing::error!(event = "daemon_pidfile_failed", command = %d.command, cause = %e,
                        "[uwsgi-daemons] cannot write {}: {e}", w.pidfile.display());
                }
            }
        }
        Err(e) => {
            tracing::error!(event = "daemon_failed", command = %d.command, cause = %e,
                "[uwsgi-daemons] unable to spawn \"{}\": {e}", d.command);
            let wait = throttle(d.spawns, Duration::ZERO, d.spec.max_throttle);
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
        let max = crate::config::daemon::DEFAULT_MAX_THROTTLE;
        assert_eq!(throttle(1, s(60), max), 0);
        assert_eq!(throttle(1, s(4), max), 0);
        assert_eq!(throttle(1, s(0), max), 1);
        assert_eq!(throttle(5, s(2), max), 3);
        assert_eq!(throttle(2, s(3), max), 1);
        assert_eq!(throttle(10_000, s(0), max), max);
        assert_eq!(throttle(10_000, s(0), 30), 30);
    }

    #[test]
    fn a_daemon_runs_and_is_started_again() {
        let mut d = Daemons::new(&[crate::config::DaemonSpec::plain("exit 3").unwrap()]);
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
