//! Attached daemons as the options describe them (uWSGI's `core/daemons.c`
//! `uwsgi_opt_add_daemon` and `uwsgi_opt_add_daemon2`):
//!
//! - `attach-daemon = COMMAND`: started beside the workers, started again
//!   when it exits, stopped with the instance;
//! - `smart-attach-daemon = PIDFILE[,FREQ] COMMAND`: a command that
//!   daemonizes itself and writes PIDFILE; watched through it;
//! - `smart-attach-daemon2 = PIDFILE[,FREQ] COMMAND`: the same for a command
//!   that stays in the foreground: rwsgi writes PIDFILE;
//! - `attach-daemon2 = key=value,…` with uWSGI's keys: `cmd` (or `command`,
//!   `exec`), `pidfile`, `freq`, `daemonize` (or `daemon`), `stopsignal`,
//!   `reloadsignal`, `chdir`, `max_throttle`, `touch` (files separated by
//!   `;`). A `,` inside a value is written `\,`, as uWSGI's kvlist reads it.
//!   `control`, `uid`, `gid`, `stdin`, `ns_pid`, `legion` and `notifypid`
//!   are refused with the reason: they need what rwsgi does not do.

use std::path::PathBuf;

/// An attached daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSpec {
    /// The command (run through `/bin/sh -c` where there is one).
    pub command: String,
    /// A smart daemon's pidfile: it is watched through it and lives on its
    /// own (not stopped with the instance).
    pub pidfile: Option<PathBuf>,
    /// rwsgi writes the pidfile for a command that stays in the foreground.
    pub daemonize: bool,
    /// Checks without a live pidfile before starting it again (default 10).
    pub freq: u64,
    /// The signal that stops it (default SIGTERM).
    pub stop_signal: i32,
    /// The signal a reload sends it instead (0: the stop signal).
    pub reload_signal: i32,
    /// Its working directory.
    pub chdir: Option<PathBuf>,
    /// Files whose change stops it, to start it again.
    pub touch: Vec<PathBuf>,
    /// The longest wait before starting it again after quick exits, in
    /// seconds (uWSGI's `max_throttle`; rwsgi's default cap is 300).
    pub max_throttle: u64,
}

/// rwsgi's cap on the throttle when none is given (uWSGI uses 300 s too,
/// "to avoid endless sleeps").
pub const DEFAULT_MAX_THROTTLE: u64 = 300;

impl DaemonSpec {
    fn new(command: &str) -> DaemonSpec {
        DaemonSpec {
            command: command.trim().to_owned(),
            pidfile: None,
            daemonize: false,
            freq: 10,
            stop_signal: libc::SIGTERM,
            reload_signal: 0,
            chdir: None,
            touch: Vec::new(),
            max_throttle: DEFAULT_MAX_THROTTLE,
        }
    }

    /// `attach-daemon = COMMAND`.
    pub fn plain(v: &str) -> Result<DaemonSpec, String> {
        if v.trim().is_empty() {
            return Err("expected a command".into());
        }
        Ok(DaemonSpec::new(v))
    }

    /// `smart-attach-daemon[2] = PIDFILE[,FREQ] COMMAND`: the pidfile (with
    /// an optional `,freq`) up to the first space, then the command.
    pub fn smart(v: &str, daemonize: bool) -> Result<DaemonSpec, String> {
        let (pidfile, command) = v
            .trim()
            .split_once(' ')
            .filter(|(_, c)| !c.trim().is_empty())
            .ok_or("expected PIDFILE[,FREQ] COMMAND")?;
        let (pidfile, freq) = match pidfile.split_once(',') {
            Some((p, f)) => (p, super::value::parse_number(f)?.max(1)),
            None => (pidfile, 10),
        };
        Ok(DaemonSpec {
            pidfile: Some(PathBuf::from(pidfile)),
            daemonize,
            freq,
            ..DaemonSpec::new(command)
        })
    }

    /// `attach-daemon2 = key=value,…`.
    pub fn keyed(v: &str) -> Result<DaemonSpec, String> {
        let mut d = DaemonSpec::new("");
        for (key, value) in kvlist(v)? {
            let number = || super::value::parse_number(&value);
            let signal = || {
                number().and_then(|n| {
                    i32::try_from(n)
                        .ok()
                        .filter(|s| (1..=64).contains(s))
                        .ok_or(format!("{key}: {n} is not a signal number"))
                })
            };
            match key.as_str() {
                "cmd" | "command" | "exec" => d.command = value.trim().to_owned(),
                "pidfile" => d.pidfile = Some(PathBuf::from(value)),
                "freq" => d.freq = number()?.max(1),
                "daemonize" | "daemon" => d.daemonize = true,
                "stopsignal" | "stop_signal" => d.stop_signal = signal()?,
                "reloadsignal" | "reload_signal" => d.reload_signal = signal()?,
                "chdir" => d.chdir = Some(PathBuf::from(value)),
                "max_throttle" => d.max_throttle = number()?,
                "touch" => d.touch.extend(
                    value
                        .split(';')
                        .filter(|t| !t.is_empty())
                        .map(PathBuf::from),
                ),
                "control" => return Err(refused(&key, "a daemon whose death stops the instance")),
                "uid" | "gid" => {
                    return Err(refused(
                        &key,
                        "another user for the daemon: daemons run as the instance's user",
                    ));
                }
                "stdin" => return Err(refused(&key, "the instance's stdin for the daemon")),
                "ns_pid" | "legion" | "notifypid" => {
                    return Err(refused(&key, "PID namespaces, legions or pid notification"));
                }
                _ => return Err(format!("unknown key \"{key}\"")),
            }
        }
        if d.command.is_empty() {
            return Err("you need to specify a 'command' key".into());
        }
        if d.daemonize && d.pidfile.is_none() {
            return Err("daemonize needs a pidfile".into());
        }
        Ok(d)
    }
}

fn refused(key: &str, what: &str) -> String {
    format!("key \"{key}\" is not supported: rwsgi does not do {what}")
}

/// uWSGI's kvlist: `key=value` items separated by `,`; a backslash keeps
/// the next character (`\,` is a comma in a value).
fn kvlist(v: &str) -> Result<Vec<(String, String)>, String> {
    let mut items = vec![String::new()];
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => items
                .last_mut()
                .into_iter()
                .for_each(|i| i.extend(chars.next())),
            ',' => items.push(String::new()),
            c => items.last_mut().into_iter().for_each(|i| i.push(c)),
        }
    }
    items
        .into_iter()
        .filter(|i| !i.trim().is_empty())
        .map(|i| {
            let (k, v) = i
                .split_once('=')
                .ok_or(format!("\"{i}\" is not key=value"))?;
            Ok((k.trim().to_owned(), v.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_syntaxes() {
        assert_eq!(
            DaemonSpec::plain(" celery worker ").unwrap().command,
            "celery worker"
        );
        assert!(DaemonSpec::plain(" ").is_err());
        let s = DaemonSpec::smart("/run/w.pid,5 celery -A app worker --detach", false).unwrap();
        assert_eq!(s.pidfile, Some(PathBuf::from("/run/w.pid")));
        assert_eq!(
            (s.freq, s.command.as_str(), s.daemonize),
            (5, "celery -A app worker --detach", false)
        );
        assert!(DaemonSpec::smart("/run/w.pid", true).is_err());
        let k = DaemonSpec::keyed(
            "cmd=celery -A app worker -Q a\\,b,stopsignal=3,reloadsignal=1,chdir=/srv,max_throttle=30,touch=/a;/b,pidfile=/run/c.pid,daemonize=1,freq=4",
        )
        .unwrap();
        assert_eq!(k.command, "celery -A app worker -Q a,b");
        assert_eq!(
            (k.stop_signal, k.reload_signal, k.max_throttle, k.freq),
            (3, 1, 30, 4)
        );
        assert_eq!(k.chdir, Some(PathBuf::from("/srv")));
        assert_eq!(k.touch, [PathBuf::from("/a"), PathBuf::from("/b")]);
        assert!(k.daemonize);
        let k = DaemonSpec::keyed("exec=sleep 9").unwrap();
        assert_eq!(
            (k.stop_signal, k.reload_signal, k.pidfile),
            (libc::SIGTERM, 0, None)
        );
    }

    #[test]
    fn what_cannot_be_done_is_refused_by_name() {
        for (v, says) in [
            ("freq=3", "'command' key"),
            ("cmd=x,uid=33", "key \"uid\" is not supported"),
            ("cmd=x,control=1", "key \"control\" is not supported"),
            ("cmd=x,colour=red", "unknown key \"colour\""),
            ("cmd=x,stopsignal=99", "not a signal number"),
            ("cmd=x,daemonize=1", "daemonize needs a pidfile"),
            ("cmd", "is not key=value"),
        ] {
            let err = DaemonSpec::keyed(v).unwrap_err();
            assert!(err.contains(says), "{v}: {err}");
        }
    }
}
