//! The spooler options (uWSGI's `core/spooler.c`, `core/uwsgi.c` option
//! table): where tasks are spooled and how the spooler processes run them.

use std::path::PathBuf;

/// uWSGI's default `spooler-frequency`, in seconds.
pub const DEFAULT_FREQUENCY: u64 = 30;
/// The most spooler processes per directory.
pub const MAX_PROCESSES: u64 = 64;

/// What `spooler*` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spooling {
    /// `spooler`: directories, each with `processes` spooler processes.
    pub dirs: Vec<PathBuf>,
    /// `spooler-external`: directories tasks may be spooled to, whose
    /// spooler runs elsewhere.
    pub external: Vec<PathBuf>,
    /// `spooler-processes`: processes per directory (default 1).
    pub processes: u32,
    /// `spooler-frequency`: seconds between scans of a directory.
    pub frequency: u64,
    /// `spooler-harakiri`: seconds a task may run (0: no limit).
    pub harakiri: u64,
    /// `spooler-max-tasks`: a spooler process is recycled after this many
    /// tasks (0: never).
    pub max_tasks: u64,
    /// `spooler-quiet`: no line per task.
    pub quiet: bool,
    /// `spooler-chdir`: where tasks run.
    pub chdir: Option<PathBuf>,
    /// `spooler-import`: modules imported in the spooler processes only.
    pub imports: Vec<String>,
}

impl Default for Spooling {
    fn default() -> Self {
        Spooling {
            dirs: Vec::new(),
            external: Vec::new(),
            processes: 1,
            frequency: DEFAULT_FREQUENCY,
            harakiri: 0,
            max_tasks: 0,
            quiet: false,
            chdir: None,
            imports: Vec::new(),
        }
    }
}

impl Spooling {
    /// Whether tasks can be spooled at all.
    pub fn enabled(&self) -> bool {
        !self.dirs.is_empty() || !self.external.is_empty()
    }
}
