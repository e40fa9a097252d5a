//! Startup hooks that run commands: `hook-asap`, `hook-pre-app`,
//! `hook-post-app` with the `exec:` action, and their short forms
//! `exec-asap`, `exec-pre-app`, `exec-post-app`
//! (uWSGI's `core/hooks.c` `uwsgi_hooks_run` and `uwsgi_hook_exec`). The
//! common use is `hook-pre-app = exec:./manage.py migrate`.
//!
//! As in uWSGI: each command runs through `/bin/sh -c` and is waited for,
//! with the line `running "exec:CMD" (pre app)...`; one that fails logs
//! `command "CMD" exited with non-zero code: N` and
//! `FATAL hook failed, destroying instance`, and rwsgi exits with 1.
//! `asap` hooks run in the master right after the configuration is read
//! (before binding, with the privileges rwsgi started with); `pre app`
//! hooks run in the master after binding and dropping privileges, before
//! the prototype imports the app — once, also with `lazy-apps` (uWSGI runs
//! them in each worker there); `post app` hooks run in the master once the
//! first prototype has imported the app, before any worker is forked.
//! Where there is no `/bin/sh` (the `FROM
//! scratch` image) the command is split on spaces and run directly.

use std::path::Path;
use std::process::Command;

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Right after the configuration is read.
    Asap,
    /// Before the app is imported.
    PreApp,
    /// After the app is imported, before the workers fork.
    PostApp,
}

impl Phase {
    /// uWSGI's name for it in the `running` line.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Asap => "asap",
            Phase::PreApp => "pre app",
            Phase::PostApp => "post app",
        }
    }
}

/// One hook: a command, run at a phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// When.
    pub phase: Phase,
    /// The command (what follows `exec:`).
    pub command: String,
}

/// The command of a hook value; `Err` names an action rwsgi does not run.
pub fn parse(value: &str) -> Result<String, String> {
    match value.split_once(':') {
        Some(("exec", cmd)) if !cmd.trim().is_empty() => Ok(cmd.to_owned()),
        Some(("exec", _)) => Err("exec: needs a command".into()),
        Some((action, _)) => Err(format!(
            "the hook action \"{action}\" is not supported (exec: is)"
        )),
        None => Err("invalid hook syntax, must be hook:args".into()),
    }
}

/// Runs the hooks of `phase` in order; `false` when one failed (the
/// instance must not start).
pub fn run(hooks: &[Hook], phase: Phase) -> bool {
    for h in hooks.iter().filter(|h| h.phase == phase) {
        tracing::info!(event = "hook", phase = phase.name(), command = %h.command,
            "running \"exec:{}\" ({})...", h.command, phase.name());
        let code = match command(&h.command).status() {
            Ok(st) => st.code().unwrap_or(1),
            Err(e) => {
                tracing::error!(event = "hook_failed", command = %h.command, cause = %e,
                    "cannot run \"{}\": {e}", h.command);
                127
            }
        };
        if code != 0 {
            tracing::error!(event = "hook_failed", command = %h.command, code,
                "command \"{}\" exited with non-zero code: {code}", h.command);
            tracing::error!(
                event = "hook_fatal",
                "FATAL hook failed, destroying instance"
            );
            return false;
        }
    }
    true
}

/// `/bin/sh -c CMD`, or the words of `CMD` where there is no shell.
pub fn command(cmd: &str) -> Command {
    if Path::new("/bin/sh").exists() {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(cmd);
        return c;
    }
    let mut words = cmd.split(' ').filter(|w| !w.is_empty());
    let mut c = Command::new(words.next().unwrap_or_default());
    c.args(words);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_hooks_run_in_order_and_a_failure_stops_the_phase() {
        assert_eq!(
            parse("exec:./manage.py migrate").unwrap(),
            "./manage.py migrate"
        );
        assert!(parse("mkdir:/tmp/x").unwrap_err().contains("mkdir"));
        assert!(parse("exec:").is_err());
        assert!(parse("nothing").is_err());
        let dir = std::env::temp_dir().join(format!("rwsgi-hooks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("order");
        let hook = |phase, cmd: String| Hook {
            phase,
            command: cmd,
        };
        let hooks = [
            hook(Phase::PreApp, format!("echo one >> {}", out.display())),
            hook(Phase::Asap, format!("echo asap >> {}", out.display())),
            hook(Phase::PreApp, format!("echo two >> {}", out.display())),
        ];
        assert!(run(&hooks, Phase::PreApp));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "one\ntwo\n");
        let failing = [
            hook(Phase::PreApp, "exit 3".into()),
            hook(Phase::PreApp, format!("echo never >> {}", out.display())),
        ];
        assert!(!run(&failing, Phase::PreApp));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "one\ntwo\n");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
