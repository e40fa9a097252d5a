//! The workers' board: what workers that accept connections themselves
//! (`worker-accept`, `worker/direct.rs`) tell the master about the
//! requests it never sees. A memfd of atomic words (`shared_words.rs`) the
//! master makes once per instance; every prototype generation maps it
//! before it forks, the workers write it, the master's worker table
//! (`stats/table.rs`) reads it for the stats, the cheaper algorithms' busy
//! time and harakiri.
//!
//! Counters only grow (a respawned worker adds to its slot's), so the
//! reader turns them into deltas; a thread's start time is 0 while it is
//! idle. Times are `CLOCK_MONOTONIC` microseconds, the same clock in every
//! process.
//!
//! Layout, in cache lines of [`LINE`] words so that no two writers share
//! one: the instance's request count (word 0); then, per slot, a line of
//! the slot's words ([`SLOT_WORDS`]) followed by a line per thread
//! ([`CORE_WORDS`]).

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;

use crate::shared_words::Words;

/// The variable that hands the board's fd to the prototype.
pub const FD_ENV: &str = "RWSGI_BOARD_FD";

const REQUESTS: usize = 0;
const EXCEPTIONS: usize = 1;
const TX: usize = 2;
const RUNNING_TIME: usize = 3;
const AVG_RT: usize = 4;
const BUSY: usize = 5;
/// Words per slot before its threads' words.
const SLOT_WORDS: usize = 6;
/// Words per cache line: each part of the board starts on its own.
const LINE: usize = 8;

const STARTED: usize = 0;
const DEADLINE: usize = 1;
const CORE_REQUESTS: usize = 2;
/// Words per thread.
const CORE_WORDS: usize = 3;
const _: () = assert!(SLOT_WORDS <= LINE && CORE_WORDS <= LINE);

/// The board.
#[derive(Debug)]
pub struct Board {
    words: Words,
    slots: usize,
    threads: usize,
}

/// A slot's figures as the board has them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    /// Requests completed (cumulative).
    pub requests: u64,
    /// Requests whose app raised (cumulative).
    pub exceptions: u64,
    /// Bytes sent (cumulative).
    pub tx: u64,
    /// Sum of request durations, µs (cumulative).
    pub running_time: u64,
    /// uWSGI's running average, µs.
    pub avg_rt: u64,
    /// Busy time of completed requests, µs (cumulative).
    pub busy: u64,
    /// Per thread: (start of the request it serves, µs, or 0; the app's
    /// deadline, µs, or 0; requests it completed).
    pub cores: Vec<(u64, u64, u64)>,
}

/// `CLOCK_MONOTONIC` in microseconds.
pub fn now_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000
        + u64::try_from(ts.tv_nsec).unwrap_or(0) / 1000
}

impl Board {
    fn size(slots: usize, threads: usize) -> usize {
        LINE + slots * Board::stride(threads)
    }

    /// Words per slot: its line and its threads'.
    fn stride(threads: usize) -> usize {
        LINE * (1 + threads)
    }

    /// A new zeroed board for `slots` slots of `threads` threads (master).
    pub fn create(slots: usize, threads: usize) -> io::Result<(OwnedFd, Board)> {
        let (fd, words) = Words::create(c"rwsgi-board", Board::size(slots, threads))?;
        Ok((
            fd,
            Board {
                words,
                slots,
                threads,
            },
        ))
    }

    /// Maps the master's board (prototype, before it forks).
    pub fn open(fd: &OwnedFd, slots: usize, threads: usize) -> io::Result<Board> {
        let words = Words::open(fd, true)?;
        if words.len() < Board::size(slots, threads) {
            return Err(io::Error::other(
                "the workers' board is smaller than the configuration",
            ));
        }
        Ok(Board {
            words,
            slots,
            threads,
        })
    }

    /// Word `w` of `slot` (1-based); `None` for an unknown slot.
    fn slot_word(&self, slot: u32, w: usize) -> Option<&std::sync::atomic::AtomicU64> {
        let i = (slot as usize).checked_sub(1).filter(|&i| i < self.slots)?;
        self.words.get(LINE + i * Board::stride(self.threads) + w)
    }

    fn core_word(&self, slot: u32, core: u16, w: usize) -> Option<&std::sync::atomic::AtomicU64> {
        let core = usize::from(core);
        if core >= self.threads {
            return None;
        }
        self.slot_word(slot, LINE * (1 + core) + w)
    }

    /// Worker: thread `core` of `slot` starts a request.
    pub fn begin(&self, slot: u32, core: u16) {
        if let Some(w) = self.core_word(slot, core, DEADLINE) {
            w.store(0, Ordering::Relaxed);
        }
        if let Some(w) = self.core_word(slot, core, STARTED) {
            w.store(now_us(), Ordering::Release);
        }
    }

    /// Whether thread `core` of `slot` is serving a connection it took
    /// itself (master: such a thread does not read its channel meanwhile).
    pub fn serving(&self, slot: u32, core: u16) -> bool {
        self.core_word(slot, core, STARTED)
            .is_some_and(|w| w.load(Ordering::Acquire) != 0)
    }

    /// Worker: the app gave its request `secs` seconds from now (0 clears;
    /// `uwsgi.set_user_harakiri`).
    pub fn deadline(&self, slot: u32, core: u16, secs: u32) {
        let at = if secs == 0 {
            0
        } else {
            now_us() + u64::from(secs) * 1_000_000
        };
        if let Some(w) = self.core_word(slot, core, DEADLINE) {
            w.store(at, Ordering::Release);
        }
    }

    /// Worker: the request of thread `core` of `slot` ended after `rt` µs,
    /// `tx` bytes sent; returns the instance's request count with it.
    pub fn end(&self, slot: u32, core: u16, exception: bool, tx: u64) -> u64 {
        let started = self
            .core_word(slot, core, STARTED)
            .map_or(0, |w| w.swap(0, Ordering::AcqRel));
        if let Some(w) = self.core_word(slot, core, DEADLINE) {
            w.store(0, Ordering::Relaxed);
        }
        let rt = if started == 0 {
            0
        } else {
            now_us().saturating_sub(started)
        };
        let add = |w: usize, v: u64| {
            if let Some(word) = self.slot_word(slot, w) {
                word.fetch_add(v, Ordering::Relaxed);
            }
        };
        add(EXCEPTIONS, u64::from(exception));
        add(TX, tx);
        add(RUNNING_TIME, rt);
        add(BUSY, rt);
        if let Some(w) = self.slot_word(slot, AVG_RT) {
            let avg = w.load(Ordering::Relaxed);
            w.store((avg + rt) / 2, Ordering::Relaxed);
        }
        if let Some(w) = self.core_word(slot, core, CORE_REQUESTS) {
            w.fetch_add(1, Ordering::Relaxed);
        }
        // Last, released, so a reader that sees the request sees its figures.
        if let Some(w) = self.slot_word(slot, REQUESTS) {
            w.fetch_add(1, Ordering::Release);
        }
        self.words.word(0).fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Master: a slot's figures now.
    pub fn read(&self, slot: u32) -> Figures {
        let get = |w: usize| {
            self.slot_word(slot, w)
                .map_or(0, |x| x.load(Ordering::Acquire))
        };
        let requests = get(REQUESTS);
        Figures {
            requests,
            exceptions: get(EXCEPTIONS),
            tx: get(TX),
            running_time: get(RUNNING_TIME),
            avg_rt: get(AVG_RT),
            busy: get(BUSY),
            cores: (0..self.threads)
                .map(|c| {
                    let c = u16::try_from(c).unwrap_or(u16::MAX);
                    let get = |w| {
                        self.core_word(slot, c, w)
                            .map_or(0, |x| x.load(Ordering::Acquire))
                    };
                    (get(STARTED), get(DEADLINE), get(CORE_REQUESTS))
                })
                .collect(),
        }
    }

    /// Master: the worker of `slot` is gone; whatever it was serving is
    /// over.
    pub fn clear_running(&self, slot: u32) {
        for c in 0..self.threads {
            let c = u16::try_from(c).unwrap_or(u16::MAX);
            for w in [STARTED, DEADLINE] {
                if let Some(word) = self.core_word(slot, c, w) {
                    word.store(0, Ordering::Release);
                }
            }
        }
    }

    /// The instance's request count.
    pub fn total_requests(&self) -> u64 {
        self.words.word(0).load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_writes_what_the_master_reads() {
        let (fd, master) = Board::create(2, 2).unwrap();
        let worker = Board::open(&fd, 2, 2).unwrap();
        assert!(Board::open(&fd, 3, 2).is_err());
        worker.begin(2, 1);
        worker.deadline(2, 1, 5);
        let f = master.read(2);
        assert!(f.cores[1].0 > 0 && f.cores[1].1 > f.cores[1].0);
        assert_eq!((f.cores[0], f.requests), ((0, 0, 0), 0));
        assert_eq!(worker.end(2, 1, true, 100), 1);
        worker.begin(2, 0);
        assert_eq!(worker.end(2, 0, false, 20), 2);
        let f = master.read(2);
        assert_eq!((f.requests, f.exceptions, f.tx), (2, 1, 120));
        assert_eq!((f.cores[0].2, f.cores[1].2), (1, 1));
        assert_eq!((f.cores[1].0, f.cores[1].1), (0, 0));
        assert_eq!(
            master.read(1),
            Figures {
                cores: vec![(0, 0, 0); 2],
                ..Figures::default()
            }
        );
        // Unknown slots and threads are ignored.
        worker.begin(3, 0);
        worker.begin(1, 2);
        assert_eq!(master.read(1).cores, vec![(0, 0, 0); 2]);
        // A dead worker's request is cleared by the master.
        worker.begin(1, 0);
        master.clear_running(1);
        assert_eq!(master.read(1).cores[0].0, 0);
        assert_eq!(master.total_requests(), 2);
    }
}
