//! A shared array of `u64` words in a memfd: made by the master, mapped
//! by the prototype before it forks (so every worker and helper process
//! has it), read and written only through atomics. `snapshot.rs` (the
//! worker table the workers read) and `worker/spool_api.rs` (the spooler
//! processes' counters the stats read) are built on it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::AtomicU64;

/// A mapping of `words` words.
#[derive(Debug)]
pub struct Words {
    base: *mut AtomicU64,
    words: usize,
}

// SAFETY: the mapping lives as long as the process (never unmapped) and is
// only accessed through atomics.
unsafe impl Send for Words {}
// SAFETY: as above.
unsafe impl Sync for Words {}

impl Words {
    /// A new memfd of `words` zeroed words, mapped read-write; the fd is
    /// close-on-exec (the spawn clears that for the prototype).
    pub fn create(name: &std::ffi::CStr, words: usize) -> io::Result<(OwnedFd, Words)> {
        // SAFETY: memfd_create with a NUL-terminated name; the result is
        // checked and owned from here on.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let len = libc::off_t::try_from(words * 8).map_err(io::Error::other)?;
        // SAFETY: ftruncate on an fd we own.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), len) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let map = Words::map(fd.as_raw_fd(), words, true)?;
        Ok((fd, map))
    }

    /// Maps an existing file, its size from `fstat`; the mapping stays
    /// valid after the fd is closed.
    pub fn open(fd: &OwnedFd, write: bool) -> io::Result<Words> {
        let len = std::fs::File::from(fd.try_clone()?).metadata()?.len();
        let words = usize::try_from(len).map_err(io::Error::other)? / 8;
        Words::map(fd.as_raw_fd(), words, write)
    }

    fn map(fd: RawFd, words: usize, write: bool) -> io::Result<Words> {
        let prot = if write {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a shared mapping of an fd we hold, of the size it was
        // made with; checked against MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                (words * 8).max(1),
                prot,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Words {
            base: p.cast(),
            words,
        })
    }

    /// How many words there are.
    pub fn len(&self) -> usize {
        self.words
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.words == 0
    }

    /// Word `i`; `None` past the end.
    pub fn get(&self, i: usize) -> Option<&AtomicU64> {
        // SAFETY: `i` is inside the mapping (checked); page-aligned memory
        // holds aligned u64s; AtomicU64 has u64's layout.
        (i < self.words).then(|| unsafe { &*self.base.add(i) })
    }

    /// Word `i`, which must exist.
    pub fn word(&self, i: usize) -> &AtomicU64 {
        self.get(i)
            .unwrap_or_else(|| panic!("shared word {i} out of {}", self.words))
    }
}
