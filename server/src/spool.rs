//! Spool files, as uWSGI writes and reads them (`core/spooler.c`
//! `uwsgi_spool_request`, `spooler_manage_task`): a uwsgi packet header
//! with modifier1 17 and the vars block's size, the task's vars (the
//! `proto` crate's encoding, at most 64 KiB), then an optional body of any
//! size. A task file is named `uwsgi_spoolfile_on_<host>_<pid>_<counter>_
//! <random>_<sec>_<usec>`; `priority = N` puts it in the subdirectory `N`,
//! and `at = T` sets its modification time to T, before which it does not
//! run.
//!
//! A task is written under a hidden temporary name and renamed into place,
//! so a spooler never sees half a file (uWSGI holds an `fcntl` lock while it
//! writes instead); a spooler process holds an exclusive `flock` on the
//! task it runs, so two never run the same one.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// modifier1 of a spool file (uWSGI's `UWSGI_MODIFIER_SPOOL_REQUEST`).
pub const MODIFIER1: u8 = 17;
/// The name every task file starts with.
pub const PREFIX: &str = "uwsgi_spoolfile_on_";
/// The most task files one scan looks at (per directory).
pub const MAX_SCAN: usize = 10_000;
/// The largest task file read (the vars block is at most 64 KiB; the rest
/// is the body).
pub const MAX_FILE: u64 = 256 * 1024 * 1024;

/// Encodes a task: header, vars, body.
pub fn encode(vars: &[(Vec<u8>, Vec<u8>)], body: &[u8]) -> Result<Vec<u8>, String> {
    let mut block = Vec::new();
    let len = rwsgi_proto::encode_vars(vars, &mut block).map_err(|_| {
        "the spool arguments are limited to 64 KiB; pass bigger values in 'body'".to_owned()
    })?;
    let size = u16::try_from(len).map_err(|_| {
        "the spool arguments are limited to 64 KiB; pass bigger values in 'body'".to_owned()
    })?;
    let mut out = Vec::with_capacity(4 + block.len() + body.len());
    out.push(MODIFIER1);
    out.extend(size.to_le_bytes());
    out.push(0);
    out.extend(block);
    out.extend_from_slice(body);
    Ok(out)
}

/// A task read back.
pub type Task = (Vec<(Vec<u8>, Vec<u8>)>, Vec<u8>);

/// Decodes a task file: its vars and its body.
pub fn decode(data: &[u8]) -> Result<Task, String> {
    let (&[m1, a, b, _], rest) = data
        .split_first_chunk::<4>()
        .ok_or("shorter than a uwsgi header")?;
    if m1 != MODIFIER1 && m1 != 0 {
        return Err(format!("modifier1 {m1} is not a spool request"));
    }
    let size = usize::from(u16::from_le_bytes([a, b]));
    let block = rest.get(..size).ok_or("the vars block is cut short")?;
    let vars = crate::ipc::own_vars(block).map_err(|e| format!("bad vars block: {e}"))?;
    let vars = vars.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
    Ok((vars, rest[size..].to_vec()))
}

/// Where a task goes, from its special keys.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// `spooler`: the directory of the spooler that runs it.
    pub spooler: Option<Vec<u8>>,
    /// `priority`: a number, the subdirectory.
    pub priority: Option<String>,
    /// `at`: unix time before which it does not run.
    pub at: Option<i64>,
}

/// Reads the special keys; a priority that is not a number is refused
/// (it names a directory).
pub fn placement(vars: &[(Vec<u8>, Vec<u8>)]) -> Result<Placement, String> {
    let mut p = Placement::default();
    for (k, v) in vars {
        match k.as_slice() {
            b"spooler" => p.spooler = Some(v.clone()),
            b"priority" => {
                let s = std::str::from_utf8(v).unwrap_or("");
                if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) || s.len() > 18 {
                    return Err(format!(
                        "spool priority must be a number, not {:?}",
                        String::from_utf8_lossy(v)
                    ));
                }
                p.priority = Some(s.to_owned());
            }
            b"at" => {
                // "at can be a float": the part before the dot.
                let s = std::str::from_utf8(v).unwrap_or("");
                let whole = s.split('.').next().unwrap_or("");
                p.at = Some(
                    whole
                        .parse()
                        .map_err(|_| format!("spool 'at' must be a unix time, not {s:?}"))?,
                );
            }
            _ => {}
        }
    }
    Ok(p)
}

/// A task file name (uWSGI's pattern).
pub fn file_name(host: &str, pid: u32, counter: u64, random: u32, now: SystemTime) -> String {
    let t = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let host: String = host
        .chars()
        .map(|c| if c == '/' { '_' } else { c })
        .collect();
    format!(
        "{PREFIX}{host}_{pid}_{counter}_{random}_{}_{}",
        t.as_secs(),
        t.subsec_micros()
    )
}

/// Writes `data` as the task `name` in `dir`: a temporary file, its
/// modification time set to `at` when given, then renamed into place.
pub fn write_task(dir: &Path, name: &str, data: &[u8], at: Option<i64>) -> io::Result<PathBuf> {
    let final_path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(data)?;
        if let Some(at) = at.filter(|t| *t > 0) {
            let when = UNIX_EPOCH + std::time::Duration::from_secs(at.unsigned_abs());
            f.set_times(
                std::fs::FileTimes::new()
                    .set_accessed(when)
                    .set_modified(when),
            )?;
        }
        std::fs::rename(&tmp, &final_path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map(|()| final_path)
}

/// The tasks of `dir` in the order they run: the priority subdirectories
/// (numbers) lowest first, each in the same order, then the task files by
/// name. At most [`MAX_SCAN`] per directory.
pub fn tasks(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    let mut prios: Vec<(u64, PathBuf)> = Vec::new();
    for e in entries.flatten().take(MAX_SCAN) {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Ok(kind) = e.file_type() else { continue };
        if kind.is_file() && name.starts_with(PREFIX) {
            files.push(e.path());
        } else if kind.is_dir() {
            if let Ok(n) = name.parse::<u64>() {
                prios.push((n, e.path()));
            }
        }
    }
    files.sort();
    prios.sort();
    let mut out = Vec::new();
    for (_, p) in prios {
        // Priority directories hold task files only.
        let Ok(entries) = std::fs::read_dir(&p) else {
            continue;
        };
        let mut inner: Vec<PathBuf> = entries
            .flatten()
            .take(MAX_SCAN)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with(PREFIX))
            })
            .map(|e| e.path())
            .collect();
        inner.sort();
        out.extend(inner);
    }
    out.extend(files);
    out
}

/// The environment variable that carries the counters' fd to the prototype.
pub const COUNTERS_FD_ENV: &str = "RWSGI_SPOOLERS_FD";
/// The most spooler processes of an instance.
pub const MAX_SPOOLERS: usize = 256;
/// Words per spooler process: pid, tasks, respawns, running.
const WORDS_PER: usize = 4;

/// The spooler processes' counters, shared by the master (which reads them
/// for the stats' `spoolers`), the prototype and the spooler processes
/// (which write them); word 0 is the scan frequency (`set_spooler_frequency`).
#[derive(Debug)]
pub struct Counters {
    words: crate::shared_words::Words,
}

impl Counters {
    /// New counters (the master makes them; the fd goes to the prototype).
    pub fn create() -> io::Result<(std::os::fd::OwnedFd, Counters)> {
        let (fd, words) =
            crate::shared_words::Words::create(c"rwsgi-spoolers", 1 + WORDS_PER * MAX_SPOOLERS)?;
        Ok((fd, Counters { words }))
    }

    /// Maps counters the master made.
    pub fn open(fd: &std::os::fd::OwnedFd, write: bool) -> io::Result<Counters> {
        Ok(Counters {
            words: crate::shared_words::Words::open(fd, write)?,
        })
    }

    fn at(&self, index: usize, field: usize) -> Option<&std::sync::atomic::AtomicU64> {
        self.words.get(1 + index * WORDS_PER + field)
    }

    fn load(&self, index: usize, field: usize) -> u64 {
        self.at(index, field)
            .map_or(0, |w| w.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn store(&self, index: usize, field: usize, v: u64) {
        if let Some(w) = self.at(index, field) {
            w.store(v, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Seconds between scans (at least 1).
    pub fn frequency(&self) -> u64 {
        self.words
            .get(0)
            .map_or(1, |w| w.load(std::sync::atomic::Ordering::Relaxed))
            .max(1)
    }

    /// Sets the seconds between scans.
    pub fn set_frequency(&self, secs: u64) {
        if let Some(w) = self.words.get(0) {
            w.store(secs.max(1), std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Process `index`'s pid (0: none).
    pub fn pid(&self, index: usize) -> i32 {
        i32::try_from(self.load(index, 0)).unwrap_or(0)
    }

    /// Records process `index`'s pid (0: none).
    pub fn set_pid(&self, index: usize, pid: i32) {
        self.store(index, 0, u64::from(pid.unsigned_abs()));
    }

    /// Tasks process `index` (whichever process held it) ran.
    pub fn tasks(&self, index: usize) -> u64 {
        self.load(index, 1)
    }

    /// Counts a task run by process `index`.
    pub fn add_task(&self, index: usize) {
        self.store(index, 1, self.tasks(index) + 1);
    }

    /// Times process `index` was started again.
    pub fn respawns(&self, index: usize) -> u64 {
        self.load(index, 2)
    }

    /// Counts a respawn of process `index`.
    pub fn add_respawn(&self, index: usize) {
        self.store(index, 2, self.respawns(index) + 1);
    }

    /// Whether process `index` runs a task now.
    pub fn running(&self, index: usize) -> bool {
        self.load(index, 3) != 0
    }

    /// Marks process `index` as running a task or not.
    pub fn set_running(&self, index: usize, running: bool) {
        self.store(index, 3, u64::from(running));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: &str) -> (Vec<u8>, Vec<u8>) {
        (k.as_bytes().to_vec(), v.as_bytes().to_vec())
    }

    #[test]
    fn a_task_round_trips_with_uwsgis_header() {
        let vars = vec![kv("ud_spool_func", "send_mail"), kv("to", "a@b.c")];
        let data = encode(&vars, b"BODY").unwrap();
        assert_eq!(data[0], 17);
        assert_eq!(
            u16::from_le_bytes([data[1], data[2]]) as usize,
            data.len() - 8
        );
        assert_eq!(decode(&data).unwrap(), (vars, b"BODY".to_vec()));
        assert!(decode(&data[..3]).is_err());
        assert!(decode(&data[..10]).is_err());
        let mut other = data.clone();
        other[0] = 5;
        assert!(decode(&other).is_err());
        // Over 64 KiB of arguments: refused, with the way out.
        let big = vec![kv("x", &"y".repeat(70_000))];
        assert!(encode(&big, b"").unwrap_err().contains("body"));
    }

    #[test]
    fn counters_are_shared_through_their_fd() {
        let (fd, mine) = Counters::create().unwrap();
        let theirs = Counters::open(&fd, false).unwrap();
        mine.set_frequency(5);
        mine.set_pid(3, 77);
        mine.add_task(3);
        mine.add_task(3);
        mine.add_respawn(3);
        mine.set_running(3, true);
        assert_eq!(theirs.frequency(), 5);
        assert_eq!(
            (
                theirs.pid(3),
                theirs.tasks(3),
                theirs.respawns(3),
                theirs.running(3)
            ),
            (77, 2, 1, true)
        );
        assert_eq!(theirs.pid(MAX_SPOOLERS + 5), 0);
    }

    #[test]
    fn special_keys_place_the_task() {
        let p = placement(&[
            kv("priority", "3"),
            kv("at", "1700000000.5"),
            kv("spooler", "/s"),
        ]);
        assert_eq!(
            p.unwrap(),
            Placement {
                spooler: Some(b"/s".to_vec()),
                priority: Some("3".into()),
                at: Some(1_700_000_000),
            }
        );
        assert!(placement(&[kv("priority", "../etc")]).is_err());
        assert!(placement(&[kv("at", "soon")]).is_err());
    }

    #[test]
    fn tasks_run_by_priority_then_name_and_appear_whole() {
        let dir = std::env::temp_dir().join(format!("rwsgi-spool-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("2")).unwrap();
        std::fs::create_dir_all(dir.join("10")).unwrap();
        std::fs::create_dir_all(dir.join("other")).unwrap();
        let name = |n: u64| file_name("host", 1, n, 7, UNIX_EPOCH);
        let a = write_task(&dir, &name(1), b"a", None).unwrap();
        let b = write_task(&dir.join("10"), &name(2), b"b", None).unwrap();
        let c = write_task(&dir.join("2"), &name(3), b"c", Some(1)).unwrap();
        std::fs::write(dir.join("other").join(name(4)), b"x").unwrap();
        std::fs::write(dir.join("unrelated"), b"x").unwrap();
        assert_eq!(tasks(&dir), [c.clone(), b, a]);
        // `at` is the modification time.
        let mtime = std::fs::metadata(&c).unwrap().modified().unwrap();
        assert_eq!(mtime, UNIX_EPOCH + std::time::Duration::from_secs(1));
        // No temporary file is left.
        assert!(
            std::fs::read_dir(&dir)
                .unwrap()
                .flatten()
                .all(|e| !e.file_name().to_string_lossy().ends_with(".tmp"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
