//! The CPU scheduling policy of the whole process tree (`sched-policy`).
//!
//! rwsgi hands every request from one process to another (the master to a
//! worker and back), so each request wakes processes that then sleep again.
//! Under Linux's default policy a woken task may preempt the one that woke
//! it: the master, which has just handed a request to a worker, is switched
//! out before it can read the next connection, and the two ping-pong
//! through the scheduler. `SCHED_BATCH` keeps the fair share of CPU but
//! gives up wake-up preemption: the woken worker runs on an idle core at
//! once, or when the master next blocks. Measured behind nginx (`uwsgi_pass`,
//! Flask hello, 2 workers, 2 cores, `bench/`): about a third more requests
//! per second and a lower p99; direct HTTP with keep-alive is unchanged.
//!
//! The policy is set once, in the master before it starts the prototype,
//! and is inherited across fork and exec by the prototype and every worker.
//! `SCHED_BATCH` needs no privilege. `sched-policy = other` keeps the
//! default policy (what uWSGI runs with).

use crate::config::SchedPolicy;

/// Applies `policy` to this process; a refusal is logged, not fatal.
pub fn apply(policy: SchedPolicy) {
    let which = match policy {
        SchedPolicy::Batch => libc::SCHED_BATCH,
        SchedPolicy::Other => return,
    };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is this process; `param` is a valid sched_param.
    if unsafe { libc::sched_setscheduler(0, which, &param) } != 0 {
        let e = std::io::Error::last_os_error();
        tracing::warn!(event = "sched_policy_failed", cause = %e, "cannot set the SCHED_BATCH policy; keeping the default");
    }
}
