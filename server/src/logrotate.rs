//! `log-maxsize` and `log-backupname`: the log file is rotated when it
//! grows past a size, as uWSGI's `uwsgi_log_do_rotate` does: the line
//! `logsize: N, triggering rotation to BACKUP...` goes into the old log, the
//! backup is `log-backupname` or `LOGFILE.<unix time>`, and logging goes on
//! in a fresh file of the same name.
//!
//! uWSGI renames the file and reopens it in its log master, the one process
//! that writes the log. Here every process writes the log itself through
//! the descriptor it inherited, so a rename would leave the workers writing
//! to the backup. The master copies the file to the backup and truncates
//! it instead (logrotate's `copytruncate`): every process's next write, in
//! append mode, lands at the start of the fresh file. A line written
//! between the copy and the truncation can be lost. The size is checked
//! once a second; the copy runs off the master's thread.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Watches `log` until the task is dropped.
pub async fn watch(log: PathBuf, max: u64, backup: Option<PathBuf>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let size = match std::fs::metadata(&log) {
            Ok(m) => m.len(),
            Err(_) => continue,
        };
        if size >= max {
            rotate_now(&log, backup.as_deref()).await;
        }
    }
}

/// Rotates `log` now (to `backup`, else `LOGFILE.<unix time>`), with
/// uWSGI's line; `log-maxsize`, `touch-logrotate` and the master FIFO's
/// `L` (`uwsgi_log_rotate`).
pub async fn rotate_now(log: &Path, backup: Option<&Path>) {
    let size = std::fs::metadata(log).map_or(0, |m| m.len());
    let to = backup.map_or_else(|| backup_name(log, now()), Path::to_path_buf);
    tracing::info!(event = "log_rotate", size, to = %to.display(),
        "logsize: {size}, triggering rotation to {}...", to.display());
    let (from, dest) = (log.to_path_buf(), to);
    let done = tokio::task::spawn_blocking(move || rotate(&from, &dest)).await;
    if let Err(e) = done.map_err(io::Error::other).and_then(|r| r) {
        tracing::error!(event = "log_rotate_failed", cause = %e, "unable to rotate log: {e}");
    }
}

/// `LOGFILE.<unix time>`, uWSGI's default backup name.
pub fn backup_name(log: &Path, unix_time: u64) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(format!(".{unix_time}"));
    PathBuf::from(name)
}

/// Copies `log` to `to`, then empties `log` in place.
pub fn rotate(log: &Path, to: &Path) -> io::Result<()> {
    std::fs::copy(log, to)?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(log)?
        .set_len(0)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn rotation_keeps_the_writers_descriptor_working() {
        let dir = std::env::temp_dir().join(format!("rwsgi-rotate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("app.log");
        let mut writer = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        writer.write_all(b"old line\n").unwrap();
        let to = backup_name(&log, 1_796_398_546);
        assert!(to.ends_with("app.log.1796398546"));
        rotate(&log, &to).unwrap();
        writer.write_all(b"new line\n").unwrap();
        assert_eq!(std::fs::read_to_string(&to).unwrap(), "old line\n");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "new line\n");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
