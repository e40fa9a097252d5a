//! Files whose modification makes the master act, as uWSGI's `touch-*`
//! options describe them (`core/uwsgi.c` option table; the master loop
//! compares modification times once a second): `touch-reload` (and
//! `touch-chain-reload`, `touch-workers-reload`), `touch-gracefully-stop`,
//! `touch-exec = FILE COMMAND`, `touch-signal = FILE SIGNAL`,
//! `touch-logrotate`, `touch-logreopen`. `master/touch.rs` watches them.
//!
//! The same actions for `fs-reload`, `fs-brutal-reload` and `fs-signal =
//! PATH SIGNAL` (uWSGI's `fsmon`), whose paths `master/fsmon.rs` watches
//! with inotify: a directory's watch also sees its entries change.

use std::path::PathBuf;

/// What a touched file asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TouchAction {
    /// A graceful reload.
    Reload,
    /// A graceful shutdown.
    Stop,
    /// Run this command (through the shell).
    Exec(String),
    /// Raise this uWSGI signal.
    Signal(u8),
    /// Rotate the log file (as `log-maxsize` does).
    LogRotate,
    /// Open the log file again, in every process.
    LogReopen,
}

/// One watched file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touch {
    /// The file.
    pub path: PathBuf,
    /// What its modification, creation or removal does.
    pub action: TouchAction,
}

impl Touch {
    /// The touch the option `name` (canonical) describes with value `v`,
    /// or `None` when `name` is not a touch option.
    pub fn parse(name: &str, v: &str) -> Option<Result<Touch, String>> {
        let plain = |action| {
            Ok(Touch {
                path: PathBuf::from(v),
                action,
            })
        };
        let split = |what: &str| {
            v.trim()
                .split_once(' ')
                .map(|(file, rest)| (PathBuf::from(file), rest.trim().to_owned()))
                .filter(|(_, rest)| !rest.is_empty())
                .ok_or_else(|| format!("expected FILE {what}"))
        };
        Some(match name {
            "touch-reload" | "fs-reload" | "fs-brutal-reload" => plain(TouchAction::Reload),
            "touch-gracefully-stop" => plain(TouchAction::Stop),
            "touch-logrotate" => plain(TouchAction::LogRotate),
            "touch-logreopen" => plain(TouchAction::LogReopen),
            "touch-exec" => split("COMMAND").map(|(path, cmd)| Touch {
                path,
                action: TouchAction::Exec(cmd),
            }),
            "touch-signal" | "fs-signal" => split("SIGNAL").and_then(|(path, sig)| {
                let n = sig
                    .parse::<u8>()
                    .map_err(|_| format!("\"{sig}\" is not a signal number (0 to 255)"))?;
                Ok(Touch {
                    path,
                    action: TouchAction::Signal(n),
                })
            }),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touch_options_parse_as_uwsgi_writes_them() {
        let t = |name, v| Touch::parse(name, v).unwrap();
        assert_eq!(t("touch-reload", "/a").unwrap().action, TouchAction::Reload);
        let exec = t("touch-exec", "/tmp/go  ./deploy.sh --now").unwrap();
        assert_eq!(exec.path, PathBuf::from("/tmp/go"));
        assert_eq!(exec.action, TouchAction::Exec("./deploy.sh --now".into()));
        assert_eq!(
            t("touch-signal", "/tmp/s 17").unwrap().action,
            TouchAction::Signal(17)
        );
        assert!(t("touch-signal", "/tmp/s 300").is_err());
        assert_eq!(
            t("fs-signal", "/srv 3").unwrap().action,
            TouchAction::Signal(3)
        );
        assert_eq!(
            t("fs-brutal-reload", "/srv").unwrap().action,
            TouchAction::Reload
        );
        assert!(t("touch-exec", "/tmp/only").is_err());
        assert!(Touch::parse("socket", "/x").is_none());
    }
}
