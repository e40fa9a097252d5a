//! uWSGI's hooks (`core/hooks.c` `uwsgi_hooks_run` and the base actions):
//! `hook-PHASE = action:args`, and the `exec-PHASE = CMD` short forms.
//!
//! Phases, where rwsgi runs them:
//! - `asap`: in the master right after the configuration is read (before
//!   binding, with the privileges rwsgi started with);
//! - `as-root`: in the master after binding, before dropping privileges;
//! - `as-user`, then `pre-app`: in the master after dropping privileges,
//!   before the prototype imports the app (once, also with `lazy-apps`,
//!   where uWSGI runs `pre-app` in each worker);
//! - `post-app`: in the master once the first prototype has imported the
//!   app, before any worker is forked;
//! - `accepting`, `accepting1` (worker 1 only), and their `-once` forms
//!   (only the first worker of that slot, not its respawns): in each worker
//!   before it takes its first request;
//! - `as-user-atexit`: in the master at shutdown, once the workers are gone
//!   (failures are logged, never fatal).
//!
//! Actions: `exec` (through `/bin/sh -c`, waited for; a non-zero exit
//! fails), `safeexec` (the same, never failing), `print`/`log`, `mkdir`,
//! `create`/`creat`, `write`/`writen` (`FILE TEXT`, the `n` form adds a
//! newline), `append`/`appendn`, `writefifo` (`FIFO TEXT`, skipped when no
//! one reads the FIFO), `unlink`, `chmod` (`FILE MODE`, octal), `chown`
//! (`FILE USER GROUP`, names) and `chown2` (numbers), `cd`/`chdir`,
//! `wait_for_file`, `wait_for_dir`, `wait_for_fs` (either) and
//! `wait_for_socket` (a unix socket path or `host:port` that accepts a
//! connection), each waiting up to 60 s as uWSGI's defaults do. A `!`
//! before the action hides its arguments from the log (uWSGI's private
//! hooks). Other actions (`call*`, `mount`, `rpc`, `alarm`, `putenv` —
//! the `env` option sets variables —, …) are refused when the
//! configuration is read.
//!
//! As in uWSGI, each hook logs `running "action:args" (phase)...`; a failure
//! in a fatal phase logs `FATAL hook failed, destroying instance` and stops
//! rwsgi (exit 1; from a worker, the master is asked to shut down). Where
//! there is no `/bin/sh` (the `FROM scratch` image) an `exec` command is
//! split on spaces and run directly.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Right after the configuration is read.
    Asap,
    /// After binding, before dropping privileges.
    AsRoot,
    /// After dropping privileges.
    AsUser,
    /// Before the app is imported.
    PreApp,
    /// After the app is imported, before the workers fork.
    PostApp,
    /// In each worker, before its first request.
    Accepting,
    /// In worker 1, before its first request.
    Accepting1,
    /// In each worker slot's first worker.
    AcceptingOnce,
    /// In worker 1's first worker.
    Accepting1Once,
    /// At shutdown.
    AsUserAtexit,
}

impl Phase {
    /// The phase an option names (`hook-as-root`, `exec-as-user`, …).
    pub fn from_option(name: &str) -> Option<Phase> {
        let phase = name
            .strip_prefix("hook-")
            .or_else(|| name.strip_prefix("exec-"))?;
        Some(match phase {
            "asap" => Phase::Asap,
            "as-root" => Phase::AsRoot,
            "as-user" => Phase::AsUser,
            "pre-app" => Phase::PreApp,
            "post-app" => Phase::PostApp,
            "accepting" => Phase::Accepting,
            "accepting1" => Phase::Accepting1,
            "accepting-once" => Phase::AcceptingOnce,
            "accepting1-once" => Phase::Accepting1Once,
            "as-user-atexit" => Phase::AsUserAtexit,
            _ => return None,
        })
    }

    /// uWSGI's name for it in the `running` line.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Asap => "asap",
            Phase::AsRoot => "as root",
            Phase::AsUser => "as user",
            Phase::PreApp => "pre app",
            Phase::PostApp => "post app",
            Phase::Accepting => "accepting",
            Phase::Accepting1 => "accepting1",
            Phase::AcceptingOnce => "accepting-once",
            Phase::Accepting1Once => "accepting1-once",
            Phase::AsUserAtexit => "as user atexit",
        }
    }

    /// Whether a failure stops the instance.
    fn fatal(self) -> bool {
        self != Phase::AsUserAtexit
    }

    /// The accepting phases that apply to worker `slot`, `first` when it is
    /// the slot's first worker.
    pub fn accepting(slot: u32, first: bool) -> impl Iterator<Item = Phase> {
        [
            (Phase::Accepting, true),
            (Phase::Accepting1, slot == 1),
            (Phase::AcceptingOnce, first),
            (Phase::Accepting1Once, slot == 1 && first),
        ]
        .into_iter()
        .filter_map(|(p, on)| on.then_some(p))
    }
}

/// The actions rwsgi runs.
const ACTIONS: &[&str] = &[
    "exec",
    "safeexec",
    "print",
    "log",
    "mkdir",
    "create",
    "creat",
    "write",
    "writen",
    "append",
    "appendn",
    "writefifo",
    "unlink",
    "chmod",
    "chown",
    "chown2",
    "cd",
    "chdir",
    "wait_for_file",
    "wait_for_dir",
    "wait_for_fs",
    "wait_for_socket",
];

/// How long the `wait_for_*` actions wait (uWSGI's `wait-for-*-timeout`
/// defaults).
const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// One hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// When.
    pub phase: Phase,
    /// The action (`exec`, `mkdir`, …).
    pub action: String,
    /// What follows the colon.
    pub arg: String,
    /// `!action`: the arguments are not logged.
    pub private: bool,
}

impl Hook {
    /// Reads `action:args` (or, for an `exec-PHASE` option, the command).
    pub fn parse(phase: Phase, value: &str, exec_form: bool) -> Result<Hook, String> {
        let (action, arg) = if exec_form {
            ("exec", value)
        } else {
            value
                .split_once(':')
                .ok_or("invalid hook syntax, must be hook:args")?
        };
        let (action, private) = match action.strip_prefix('!') {
            Some(a) => (a, true),
            None => (action, false),
        };
        if !ACTIONS.contains(&action) {
            return Err(format!(
                "the hook action \"{action}\" is not supported (rwsgi runs {})",
                ACTIONS.join(", ")
            ));
        }
        if arg.trim().is_empty() && action != "print" && action != "log" {
            return Err(format!("{action}: needs an argument"));
        }
        Ok(Hook {
            phase,
            action: action.to_owned(),
            arg: arg.to_owned(),
            private,
        })
    }
}

/// Runs the hooks of `phase` in order; `false` when one failed in a fatal
/// phase (the instance must not go on).
pub fn run(hooks: &[Hook], phase: Phase) -> bool {
    for h in hooks.iter().filter(|h| h.phase == phase) {
        if h.private {
            tracing::info!(
                event = "hook",
                phase = phase.name(),
                "running --- PRIVATE HOOK --- ({})...",
                phase.name()
            );
        } else {
            tracing::info!(event = "hook", phase = phase.name(), action = %h.action,
                "running \"{}:{}\" ({})...", h.action, h.arg, phase.name());
        }
        if let Err(e) = act(&h.action, &h.arg) {
            tracing::error!(event = "hook_failed", action = %h.action, "{e}");
            if phase.fatal() {
                tracing::error!(
                    event = "hook_fatal",
                    "FATAL hook failed, destroying instance"
                );
                return false;
            }
        }
    }
    true
}

/// Splits `FILE REST` at the first space.
fn file_and<'a>(action: &str, arg: &'a str, what: &str) -> Result<(&'a str, &'a str), String> {
    arg.split_once(' ')
        .ok_or_else(|| format!("invalid hook {action} syntax, must be: <file> {what}"))
}

fn io(action: &str, e: std::io::Error) -> String {
    format!("uwsgi_hook_{action}(): {e}")
}

/// Runs one action.
fn act(action: &str, arg: &str) -> Result<(), String> {
    let write = |path: &str, text: &str, append: bool| {
        std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| io(action, e))
    };
    match action {
        "exec" | "safeexec" => {
            let code = match command(arg).status() {
                Ok(st) => st.code().unwrap_or(1),
                Err(e) => {
                    tracing::error!(event = "hook_failed", command = %arg, cause = %e,
                        "cannot run \"{arg}\": {e}");
                    127
                }
            };
            if code != 0 {
                let msg = format!("command \"{arg}\" exited with non-zero code: {code}");
                if action == "exec" {
                    return Err(msg);
                }
                tracing::error!(event = "hook_failed", command = %arg, code, "{msg}");
            }
            Ok(())
        }
        "print" | "log" => {
            tracing::info!(event = "hook_print", "{arg}");
            Ok(())
        }
        "mkdir" => std::fs::DirBuilder::new()
            .mode(0o777)
            .create(arg)
            .map_err(|e| io(action, e)),
        "create" | "creat" => write(arg, "", false),
        "write" | "writen" | "append" | "appendn" => {
            let (file, text) = match arg.split_once(' ') {
                Some(ft) => ft,
                // appendn FILE alone appends a newline.
                None if action == "appendn" => (arg, ""),
                None => file_and(action, arg, "<string>")?,
            };
            let text = if action.ends_with('n') {
                format!("{text}\n")
            } else {
                text.to_owned()
            };
            write(file, &text, action.starts_with("append"))
        }
        "writefifo" => {
            let (fifo, text) = file_and(action, arg, "<string>")?;
            let opened = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(fifo);
            match opened {
                Ok(mut f) => f.write_all(text.as_bytes()).map_err(|e| io(action, e)),
                // No reader: nothing to tell, as in uWSGI.
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => Ok(()),
                Err(e) => Err(io(action, e)),
            }
        }
        "unlink" => std::fs::remove_file(arg).map_err(|e| io(action, e)),
        "chmod" => {
            let (file, mode) = file_and(action, arg, "<mode>")?;
            let mode = u32::from_str_radix(mode.trim(), 8)
                .map_err(|_| format!("invalid hook chmod mask: {mode}"))?;
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode))
                .map_err(|e| io(action, e))
        }
        "chown" | "chown2" => {
            let (file, owner) = file_and(action, arg, "<uid> <gid>")?;
            let (user, group) = owner.split_once(' ').ok_or_else(|| {
                format!("invalid hook {action} syntax, must be: <file> <uid> <gid>")
            })?;
            let (uid, gid) = if action == "chown2" {
                let n = |s: &str| {
                    s.trim()
                        .parse::<u32>()
                        .map_err(|_| format!("invalid hook chown2 syntax, {s} must be a number"))
                };
                (n(user)?, n(group)?)
            } else {
                let uid = nix::unistd::User::from_name(user.trim())
                    .ok()
                    .flatten()
                    .ok_or_else(|| format!("unable to find uid {user}"))?
                    .uid;
                let gid = nix::unistd::Group::from_name(group.trim())
                    .ok()
                    .flatten()
                    .ok_or_else(|| format!("unable to find gid {group}"))?
                    .gid;
                (uid.as_raw(), gid.as_raw())
            };
            std::os::unix::fs::chown(file, Some(uid), Some(gid)).map_err(|e| io(action, e))
        }
        "cd" | "chdir" => std::env::set_current_dir(arg).map_err(|e| io(action, e)),
        "wait_for_file" | "wait_for_dir" | "wait_for_fs" => {
            let ok = |m: &std::fs::Metadata| match action {
                "wait_for_file" => m.is_file(),
                "wait_for_dir" => m.is_dir(),
                _ => true,
            };
            wait_until(action, arg, || std::fs::metadata(arg).is_ok_and(|m| ok(&m)))
        }
        "wait_for_socket" => wait_until(action, arg, || {
            if arg.contains('/') {
                std::os::unix::net::UnixStream::connect(arg).is_ok()
            } else {
                std::net::TcpStream::connect(arg).is_ok()
            }
        }),
        other => Err(format!("hook action not found: {other}")),
    }
}

/// Polls `ready` every 100 ms for up to [`WAIT_LIMIT`].
fn wait_until(action: &str, arg: &str, ready: impl Fn() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + WAIT_LIMIT;
    tracing::info!(event = "hook_wait", action, "waiting for {arg} ...");
    while !ready() {
        if Instant::now() >= deadline {
            return Err(format!("{action}: {arg} not ready after {WAIT_LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// [`command`] for a process the master starts and leaves running (daemons,
/// cron): stdin on `/dev/null`, in `dir`, in a session of its own (so its
/// process group can be signalled), killed with the master when `tied`.
pub fn session_command(cmd: &str, dir: Option<&Path>, tied: bool) -> Command {
    let mut c = command(cmd);
    c.stdin(std::process::Stdio::null());
    if let Some(dir) = dir {
        c.current_dir(dir);
    }
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls setsid and prctl, which are async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if tied {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            }
            Ok(())
        });
    }
    c
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
    use std::os::unix::fs::MetadataExt;

    fn dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("rwsgi-hooks-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn hooks_are_parsed_with_their_phase_and_action() {
        let h = Hook::parse(Phase::PreApp, "exec:./manage.py migrate", false).unwrap();
        assert_eq!(
            (h.action.as_str(), h.arg.as_str()),
            ("exec", "./manage.py migrate")
        );
        let h = Hook::parse(Phase::AsRoot, "chown -R x", true).unwrap();
        assert_eq!((h.action.as_str(), h.arg.as_str()), ("exec", "chown -R x"));
        assert!(
            Hook::parse(Phase::Asap, "!write:/tmp/x secret", false)
                .unwrap()
                .private
        );
        assert!(
            Hook::parse(Phase::Asap, "mount:proc none /proc", false)
                .unwrap_err()
                .contains("\"mount\" is not supported")
        );
        assert!(Hook::parse(Phase::Asap, "exec:", false).is_err());
        assert!(Hook::parse(Phase::Asap, "nothing", false).is_err());
        assert_eq!(
            Phase::from_option("exec-as-user-atexit"),
            Some(Phase::AsUserAtexit)
        );
        assert_eq!(
            Phase::from_option("hook-accepting1-once"),
            Some(Phase::Accepting1Once)
        );
        assert_eq!(Phase::from_option("hook-in-jail"), None);
        let phases: Vec<_> = Phase::accepting(1, true).collect();
        assert_eq!(phases.len(), 4);
        let phases: Vec<_> = Phase::accepting(2, false).collect();
        assert_eq!(phases, [Phase::Accepting]);
    }

    #[test]
    fn exec_hooks_run_in_order_and_a_failure_stops_the_phase() {
        let d = dir("exec");
        let out = d.join("order");
        let hook = |phase, cmd: String| Hook::parse(phase, &cmd, true).unwrap();
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
        // safeexec and the atexit phase log a failure and go on.
        let safe = [Hook::parse(Phase::PreApp, "safeexec:exit 3", false).unwrap()];
        assert!(run(&safe, Phase::PreApp));
        assert!(run(
            &[hook(Phase::AsUserAtexit, "exit 3".into())],
            Phase::AsUserAtexit
        ));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn file_actions() {
        let d = dir("files");
        let p = |n: &str| d.join(n).display().to_string();
        let ok = |v: String| {
            assert_eq!(
                act(v.split_once(':').unwrap().0, v.split_once(':').unwrap().1),
                Ok(()),
                "{v}"
            )
        };
        ok(format!("mkdir:{}", p("sub")));
        assert!(d.join("sub").is_dir());
        ok(format!("write:{} hello", p("w")));
        ok(format!("writen:{} again", p("w")));
        ok(format!("append:{} more", p("w")));
        ok(format!("appendn:{} end", p("w")));
        ok(format!("appendn:{}", p("w")));
        assert_eq!(
            std::fs::read_to_string(d.join("w")).unwrap(),
            "again\nmoreend\n\n"
        );
        ok(format!("create:{}", p("c")));
        ok(format!("chmod:{} 600", p("c")));
        assert_eq!(
            std::fs::metadata(d.join("c")).unwrap().mode() & 0o777,
            0o600
        );
        let me = std::fs::metadata(d.join("c")).unwrap();
        ok(format!("chown2:{} {} {}", p("c"), me.uid(), me.gid()));
        ok(format!("unlink:{}", p("c")));
        assert!(!d.join("c").exists());
        assert!(act("unlink", &p("c")).is_err());
        // A FIFO nobody reads is skipped.
        nix::unistd::mkfifo(d.join("fifo").as_path(), nix::sys::stat::Mode::S_IRWXU).unwrap();
        ok(format!("writefifo:{} r", p("fifo")));
        ok(format!("wait_for_dir:{}", p("sub")));
        ok(format!("wait_for_file:{}", p("w")));
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        ok(format!("wait_for_socket:{}", l.local_addr().unwrap()));
        std::fs::remove_dir_all(d).unwrap();
    }
}
