//! Process titles, what `ps` shows (`auto-procname`, `procname`,
//! `procname-master`, `procname-prefix`, `procname-prefix-spaced`,
//! `procname-append`, and `uwsgi.setprocname()`), as uWSGI sets them
//! (`core/utils.c` `uwsgi_set_processname` and `uwsgi_fork`,
//! `core/master.c` `master_loop`):
//! - the master takes `procname-master`, else `procname`, else, with
//!   `auto-procname`, `uWSGI master`;
//! - a forked process is renamed only with `auto-procname`: `procname`
//!   when given, else its own name (`uWSGI worker N`, `uWSGI spooler`,
//!   `uWSGI mule N`; rwsgi's prototype is `uWSGI prototype`);
//! - every title is `prefix + name + append`.
//!
//! The title is written over the process's original argument strings, whose
//! address `/proc/self/stat` gives (`arg_start`/`arg_end`). As nginx and
//! `setproctitle` do, [`prepare`] first copies the environment strings that
//! follow them elsewhere (the `environ` entries are repointed), so a title
//! may use that space too; the kernel shows a title that runs past the
//! arguments because their last byte is no longer NUL. Unlike uWSGI, the
//! kernel's short name (`comm`, what `pgrep` and `killall` match) is left
//! alone. Without `/proc` (a bare chroot) titles are not set.

use std::ffi::{CStr, c_char};
use std::sync::{Mutex, OnceLock};

/// What the `procname*` options ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    /// `auto-procname`.
    pub auto: bool,
    /// `procname-prefix` (`procname-prefix-spaced` adds a space).
    pub prefix: String,
    /// `procname-append`.
    pub append: String,
    /// `procname`.
    pub procname: Option<String>,
    /// `procname-master`.
    pub master: Option<String>,
}

impl Names {
    /// Whether any process is renamed (so the master prepares the space).
    pub fn wanted(&self) -> bool {
        self.auto || self.procname.is_some() || self.master.is_some()
    }

    /// The master's title, if it gets one.
    pub fn for_master(&self) -> Option<String> {
        let name = (self.master.as_deref())
            .or(self.procname.as_deref())
            .or(self.auto.then_some("uWSGI master"))?;
        Some(self.full(name))
    }

    /// The title of a forked process uWSGI would call `name`, if it gets
    /// one.
    pub fn for_child(&self, name: &str) -> Option<String> {
        self.auto
            .then(|| self.full(self.procname.as_deref().unwrap_or(name)))
    }

    /// `prefix + name + append`.
    pub fn full(&self, name: &str) -> String {
        format!("{}{name}{}", self.prefix, self.append)
    }
}

/// The writable title space: its address and length (the last byte stays
/// NUL).
#[derive(Debug, Clone, Copy)]
struct Area {
    start: usize,
    len: usize,
}

static AREA: OnceLock<Option<Area>> = OnceLock::new();
static NAMES: OnceLock<Names> = OnceLock::new();
/// One writer at a time (an app's threads may all call `setprocname`).
static WRITING: Mutex<()> = Mutex::new(());

unsafe extern "C" {
    static mut environ: *mut *mut c_char;
}

/// `arg_start`, `arg_end`, `env_start`, `env_end` from `/proc/self/stat`
/// (fields 48 to 51, after the parenthesised command name).
fn stat_bounds(stat: &str) -> Option<[usize; 4]> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let mut out = [0usize; 4];
    for (i, o) in out.iter_mut().enumerate() {
        *o = fields.get(45 + i)?.parse().ok()?;
    }
    Some(out)
}

/// Records the options and finds the title space of this process image.
/// Must run while the process has one thread (it repoints `environ`) and
/// after the arguments were read: a title overwrites them. A second call
/// does nothing.
pub fn prepare(names: Names) {
    let _ = NAMES.set(names);
    AREA.get_or_init(|| {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let [arg_start, arg_end, env_start, env_end] = stat_bounds(&stat)?;
        if arg_end <= arg_start {
            return None;
        }
        let mut end = arg_end;
        if env_start == arg_end && env_end > env_start {
            // SAFETY: one thread runs (the caller's contract), so nothing
            // reads `environ` meanwhile. Each entry that points into the
            // original environment block is replaced by a copy that lives as
            // long as the process; the block is then free for titles.
            unsafe {
                let mut p = environ;
                while !p.is_null() && !(*p).is_null() {
                    let s = *p as usize;
                    if (env_start..env_end).contains(&s) {
                        *p = CStr::from_ptr(*p).to_owned().into_raw();
                    }
                    p = p.add(1);
                }
            }
            end = env_end;
        }
        Some(Area {
            start: arg_start,
            len: end - arg_start,
        })
    });
}

/// Sets this process's title (truncated to the space there is).
pub fn set(title: &str) {
    let Some(Some(area)) = AREA.get() else {
        return;
    };
    let n = title.len().min(area.len - 1);
    let _writing = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: the area is this process's own argument (and moved
    // environment) strings, mapped and writable for its whole life;
    // nothing reads them any more (`prepare`'s contract). Writes stay
    // inside it.
    unsafe {
        let dst = area.start as *mut u8;
        std::ptr::write_bytes(dst, 0, area.len);
        std::ptr::copy_nonoverlapping(title.as_ptr(), dst, n);
    }
}

/// Titles the master, when the options ask for it.
pub fn set_master() {
    if let Some(t) = NAMES.get().and_then(Names::for_master) {
        set(&t);
    }
}

/// Titles a forked process uWSGI would call `name`, when the options ask
/// for it.
pub fn set_child(name: &str) {
    if let Some(t) = NAMES.get().and_then(|n| n.for_child(name)) {
        set(&t);
    }
}

/// `uwsgi.setprocname(name)`: always, with the prefix and the suffix.
pub fn set_named(name: &str) {
    let full = NAMES
        .get()
        .map_or_else(|| name.to_owned(), |n| n.full(name));
    set(&full);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_uwsgi_precedence() {
        let mut n = Names::default();
        assert!(!n.wanted());
        assert_eq!(n.for_master(), None);
        assert_eq!(n.for_child("uWSGI worker 1"), None);
        n.auto = true;
        assert_eq!(n.for_master().as_deref(), Some("uWSGI master"));
        assert_eq!(
            n.for_child("uWSGI worker 1").as_deref(),
            Some("uWSGI worker 1")
        );
        n.prefix = "app ".into();
        n.append = " [x]".into();
        n.procname = Some("web".into());
        assert_eq!(n.for_master().as_deref(), Some("app web [x]"));
        assert_eq!(
            n.for_child("uWSGI worker 1").as_deref(),
            Some("app web [x]")
        );
        n.master = Some("boss".into());
        assert_eq!(n.for_master().as_deref(), Some("app boss [x]"));
        n.auto = false;
        assert!(n.wanted());
        assert_eq!(n.for_child("uWSGI worker 1"), None);
    }

    #[test]
    fn stat_fields_are_found_after_the_command_name() {
        let mut fields: Vec<String> = (3..=52).map(|i| i.to_string()).collect();
        fields[48 - 3] = "1000".into();
        fields[49 - 3] = "1010".into();
        fields[50 - 3] = "1010".into();
        fields[51 - 3] = "1100".into();
        let stat = format!("42 (a) b (c)) {}", fields.join(" "));
        assert_eq!(stat_bounds(&stat), Some([1000, 1010, 1010, 1100]));
        assert_eq!(stat_bounds("42 (short) S 1 2"), None);
    }
}
