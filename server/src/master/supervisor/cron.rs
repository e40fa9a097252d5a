//! `cron`, `unique-cron`, `cron2`: the master runs each command when its
//! schedule matches (`config/cron.rs`), checked on its once-a-second cycle
//! as uWSGI's master does (`uwsgi_manage_command_cron`): at most once a
//! minute, not again while a `unique` one still runs, in local time (the
//! container has no time zone: UTC there).
//!
//! Each command runs through `/bin/sh -c` in a session of its own (stdin
//! on `/dev/null`), in `chdir` when one is given (uWSGI's master has changed
//! there); the supervisor reaps it. uWSGI's lines: `[uwsgi-cron]
//! running "CMD" (pid P)`, `[uwsgi-cron] command "CMD" running with pid P
//! exited after N second(s)`, and `*** HARAKIRI ON CRON "CMD" (pid: P) ***`
//! when it outlives its harakiri (its process group gets SIGKILL). At
//! shutdown the commands still running get SIGTERM (then SIGKILL with every
//! other straggler), so nothing is left behind.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::config::CronSpec;

#[derive(Debug)]
struct Job {
    spec: CronSpec,
    /// When it last started (at most once a minute).
    last: Option<Instant>,
    /// The running command.
    pid: Option<i32>,
    started: Option<Instant>,
    /// When it is killed.
    deadline: Option<Instant>,
}

/// The scheduled commands.
#[derive(Debug, Default)]
pub struct Crons {
    jobs: Vec<Job>,
    /// `cron-harakiri`: seconds a command may run (0: no limit).
    harakiri: u64,
    /// Where the commands run: `chdir`, as uWSGI's master has changed there.
    cwd: Option<std::path::PathBuf>,
}

impl Crons {
    /// The table; nothing runs yet.
    pub fn new(specs: &[CronSpec], harakiri: u64, cwd: Option<std::path::PathBuf>) -> Crons {
        Crons {
            jobs: specs
                .iter()
                .map(|spec| Job {
                    spec: spec.clone(),
                    last: None,
                    pid: None,
                    started: None,
                    deadline: None,
                })
                .collect(),
            harakiri,
            cwd,
        }
    }

    /// The once-a-second check: kills the commands past their harakiri,
    /// starts those whose time has come.
    pub fn check(&mut self) {
        if self.jobs.is_empty() {
            return;
        }
        let now = Instant::now();
        for job in &mut self.jobs {
            if let (Some(pid), Some(d)) = (job.pid, job.deadline) {
                if now >= d {
                    tracing::error!(event = "cron_harakiri", command = %job.spec.command, pid,
                        "*** HARAKIRI ON CRON \"{}\" (pid: {pid}) ***", job.spec.command);
                    let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
                    job.deadline = None;
                }
            }
        }
        let Some(tm) = local_now() else { return };
        let (limit, cwd) = (self.harakiri, self.cwd.as_deref());
        for job in &mut self.jobs {
            if job.spec.unique && job.pid.is_some() {
                continue;
            }
            if !job.spec.matches(tm) {
                continue;
            }
            if job.last.is_some_and(|t| now - t < Duration::from_secs(60)) {
                continue;
            }
            job.last = Some(now);
            run(job, limit, cwd, now);
        }
    }

    /// Whether `pid` was one of ours; if so it is logged as done.
    pub fn exited(&mut self, pid: i32) -> bool {
        let Some(job) = self.jobs.iter_mut().find(|j| j.pid == Some(pid)) else {
            return false;
        };
        let secs = job.started.map_or(0, |t| t.elapsed().as_secs());
        tracing::info!(event = "cron_exited", command = %job.spec.command, pid, seconds = secs,
            "[uwsgi-cron] command \"{}\" running with pid {pid} exited after {secs} second(s)",
            job.spec.command);
        job.pid = None;
        job.started = None;
        job.deadline = None;
        true
    }

    /// Shutdown: SIGTERM to the commands still running; their pids.
    pub fn stop(&mut self) -> Vec<i32> {
        let pids: Vec<i32> = self.jobs.iter().filter_map(|j| j.pid).collect();
        for &pid in &pids {
            let _ = kill(Pid::from_raw(-pid), Signal::SIGTERM);
        }
        self.jobs.clear();
        pids
    }
}

fn run(job: &mut Job, default_harakiri: u64, cwd: Option<&std::path::Path>, now: Instant) {
    let mut cmd = crate::hooks::session_command(&job.spec.command, cwd, false);
    match cmd.spawn() {
        Ok(child) => {
            let pid = i32::try_from(child.id()).unwrap_or(0);
            // The supervisor reaps it; the handle is not needed.
            drop(child);
            tracing::info!(event = "cron_run", command = %job.spec.command, pid,
                "[uwsgi-cron] running \"{}\" (pid {pid})", job.spec.command);
            job.pid = Some(pid);
            job.started = Some(now);
            let limit = job.spec.harakiri.unwrap_or(default_harakiri);
            job.deadline = (limit > 0).then(|| now + Duration::from_secs(limit));
        }
        Err(e) => {
            tracing::error!(event = "cron_failed", command = %job.spec.command, cause = %e,
                "[uwsgi-cron] unable to run \"{}\": {e}", job.spec.command);
        }
    }
}

/// The local time as (minute, hour, day of month, month 1-12, weekday 0-6).
pub(super) fn local_now() -> Option<[i32; 5]> {
    // SAFETY: time(NULL) and localtime_r with a zeroed tm we own; the result
    // is checked for NULL before the tm is read.
    unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return None;
        }
        Some([tm.tm_min, tm.tm_hour, tm.tm_mday, tm.tm_mon + 1, tm.tm_wday])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_runs_once_a_minute_and_a_unique_one_waits_for_itself() {
        let every = CronSpec::keyed("unique=1 sleep 5").unwrap();
        let mut c = Crons::new(&[every], 0, None);
        c.check();
        let pid = c.jobs[0].pid.expect("started");
        // Still running: not started again.
        c.check();
        assert_eq!(c.jobs[0].pid, Some(pid));
        let pids = c.stop();
        assert_eq!(pids, [pid]);
        let status = nix::sys::wait::waitpid(Pid::from_raw(pid), None).unwrap();
        assert!(matches!(
            status,
            nix::sys::wait::WaitStatus::Signaled(_, Signal::SIGTERM, _)
        ));
    }

    #[test]
    fn harakiri_kills_a_command_that_runs_too_long() {
        let spec = CronSpec::keyed("harakiri=1 sleep 30").unwrap();
        let mut c = Crons::new(&[spec], 0, None);
        c.check();
        let pid = c.jobs[0].pid.expect("started");
        c.jobs[0].deadline = Some(Instant::now());
        c.check();
        let status = nix::sys::wait::waitpid(Pid::from_raw(pid), None).unwrap();
        assert!(matches!(
            status,
            nix::sys::wait::WaitStatus::Signaled(_, Signal::SIGKILL, _)
        ));
        assert!(c.exited(pid));
        assert!(!c.exited(pid));
    }
}
