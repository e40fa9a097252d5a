//! The worker table as the workers can read it: once a second the master
//! copies each slot's counters into a small shared memory file (a memfd the
//! prototype maps read-only before it forks, so every worker sees it), for
//! `uwsgi.workers()` and `uwsgi.total_requests()`. uWSGI's workers read the
//! master's shared table directly; here the copy is at most a second old,
//! as uWSGI's own total is (its master sums it once per cycle).
//!
//! Layout, all little-endian `u64` words: a sequence number (odd while
//! the master writes: a seqlock), the instance's total requests, the
//! record count, the log generation (outside the seqlock: bumped when the
//! log file is to be opened again, `logfile.rs`), then fixed-size records
//! ([`Record`]). Every word is read
//! and written as an atomic, so a reader racing the writer sees torn data
//! only as a changed sequence number, and tries again.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::shared_words::Words;
use std::sync::atomic::{Ordering, fence};

/// The environment variable that carries the fd to the prototype.
pub const FD_ENV: &str = "RWSGI_WORKERS_FD";

const HEADER_WORDS: usize = 4;
/// The word bumped when every process should open the log file again.
const LOG_GENERATION: usize = 3;
const RECORD_WORDS: usize = 11;

/// One worker slot's counters (the stats server's names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Record {
    /// The slot (1-based).
    pub id: u64,
    /// The worker's pid (0: none).
    pub pid: u64,
    /// Requests served.
    pub requests: u64,
    /// Requests since the last spawn.
    pub delta_requests: u64,
    /// Requests that raised.
    pub exceptions: u64,
    /// An index into `stats::table::STATUSES` (0 idle, 1 busy, 2 cheap).
    pub status: u64,
    /// Busy time in µs.
    pub running_time: u64,
    /// When it was last spawned (unix seconds).
    pub last_spawn: u64,
    /// Spawns of the slot.
    pub respawn_count: u64,
    /// Bytes sent.
    pub tx: u64,
    /// Running average request time in µs.
    pub avg_rt: u64,
}

impl Record {
    fn words(&self) -> [u64; RECORD_WORDS] {
        [
            self.id,
            self.pid,
            self.requests,
            self.delta_requests,
            self.exceptions,
            self.status,
            self.running_time,
            self.last_spawn,
            self.respawn_count,
            self.tx,
            self.avg_rt,
        ]
    }

    fn from_words(w: [u64; RECORD_WORDS]) -> Record {
        let [
            id,
            pid,
            requests,
            delta_requests,
            exceptions,
            status,
            running_time,
            last_spawn,
            respawn_count,
            tx,
            avg_rt,
        ] = w;
        Record {
            id,
            pid,
            requests,
            delta_requests,
            exceptions,
            status,
            running_time,
            last_spawn,
            respawn_count,
            tx,
            avg_rt,
        }
    }

    /// uWSGI's status word.
    pub fn status_name(&self) -> &'static str {
        let statuses = crate::stats::table::STATUSES;
        usize::try_from(self.status)
            .ok()
            .and_then(|i| statuses.get(i))
            .copied()
            .unwrap_or(statuses[0])
    }
}

/// The master's side.
#[derive(Debug)]
pub struct Writer {
    fd: OwnedFd,
    map: Words,
    slots: usize,
}

impl Writer {
    /// A snapshot file for `slots` worker slots.
    pub fn new(slots: usize) -> io::Result<Writer> {
        let words = HEADER_WORDS + slots * RECORD_WORDS;
        let (fd, map) = Words::create(c"rwsgi-workers", words)?;
        Ok(Writer { fd, map, slots })
    }

    /// The fd the prototype maps.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Asks every process to open the log file again (`logfile::follow`).
    pub fn bump_log_generation(&self) {
        self.map
            .word(LOG_GENERATION)
            .fetch_add(1, Ordering::Release);
    }

    /// Publishes the total and the records (at most the slots made).
    pub fn write(&self, total_requests: u64, records: &[Record]) {
        let records = &records[..records.len().min(self.slots)];
        let seq = self.map.word(0);
        let s = seq.load(Ordering::Relaxed);
        seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.map.word(1).store(total_requests, Ordering::Relaxed);
        self.map
            .word(2)
            .store(records.len() as u64, Ordering::Relaxed);
        for (r, rec) in records.iter().enumerate() {
            for (i, w) in rec.words().into_iter().enumerate() {
                self.map
                    .word(HEADER_WORDS + r * RECORD_WORDS + i)
                    .store(w, Ordering::Relaxed);
            }
        }
        seq.store(s.wrapping_add(2), Ordering::Release);
    }
}

/// A worker's side.
#[derive(Debug)]
pub struct Reader {
    map: Words,
}

impl Reader {
    /// Maps the master's snapshot file read-only (its size from `fstat`).
    pub fn open(fd: OwnedFd) -> io::Result<Reader> {
        let map = Words::open(&fd, false)?;
        if map.len() < HEADER_WORDS {
            return Err(io::Error::other("the workers snapshot is too small"));
        }
        Ok(Reader { map })
    }

    /// How many times the master asked to open the log file again.
    pub fn log_generation(&self) -> u64 {
        self.map.word(LOG_GENERATION).load(Ordering::Acquire)
    }

    /// The total and the records, as last published; `None` when the master
    /// kept writing during every try.
    pub fn read(&self) -> Option<(u64, Vec<Record>)> {
        for _ in 0..1000 {
            let s1 = self.map.word(0).load(Ordering::Acquire);
            if s1 % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let total = self.map.word(1).load(Ordering::Relaxed);
            let max = (self.map.len() - HEADER_WORDS) / RECORD_WORDS;
            let n = usize::try_from(self.map.word(2).load(Ordering::Relaxed))
                .unwrap_or(0)
                .min(max);
            let records = (0..n)
                .map(|r| {
                    let mut w = [0u64; RECORD_WORDS];
                    for (i, slot) in w.iter_mut().enumerate() {
                        *slot = self
                            .map
                            .word(HEADER_WORDS + r * RECORD_WORDS + i)
                            .load(Ordering::Relaxed);
                    }
                    Record::from_words(w)
                })
                .collect();
            fence(Ordering::Acquire);
            if self.map.word(0).load(Ordering::Relaxed) == s1 {
                return Some((total, records));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::FromRawFd;

    #[test]
    fn a_reader_sees_what_the_writer_published() {
        let w = Writer::new(2).unwrap();
        // SAFETY: dup of an fd the writer owns, for the reader to own.
        let fd = unsafe { OwnedFd::from_raw_fd(libc::dup(w.fd())) };
        let r = Reader::open(fd).unwrap();
        assert_eq!(r.read(), Some((0, Vec::new())));
        let rec = |id| Record {
            id,
            pid: 100 + id,
            requests: 7,
            status: 1,
            ..Record::default()
        };
        // More records than slots: the extra one is left out.
        w.write(14, &[rec(1), rec(2), rec(3)]);
        let (total, records) = r.read().unwrap();
        assert_eq!(total, 14);
        assert_eq!(records, [rec(1), rec(2)]);
        assert_eq!(records[0].status_name(), "busy");
        w.write(15, &[rec(1)]);
        assert_eq!(r.read().unwrap().1.len(), 1);
        assert_eq!(r.log_generation(), 0);
        w.bump_log_generation();
        assert_eq!(r.log_generation(), 1);
    }
}
