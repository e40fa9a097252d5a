//! Where a cache's bytes live: a memfd, or with `store = PATH` that file,
//! so the items outlive the instance (uWSGI `core/cache.c`
//! `uwsgi_cache_init`, with its lines: `creating a new cache store file`,
//! `recovered cache from backing store file`, `Removing invalid cache store
//! file`).
//!
//! The master makes each mapping once per instance ([`make`]), sets up its
//! header and mutex, and hands the descriptor to every prototype
//! generation, which maps it too ([`attach`]) before it forks: the items
//! survive reloads (each is a chain reload), and the master reads the
//! counters for the stats. The header says what the mapping was made for
//! (a magic word, items, keysize, blocksize): a store file made for another
//! size is refused, or replaced with `store_delete`, as in uWSGI; a
//! prototype whose configuration asks for another size (the ini changed
//! before a reload) is refused, and the old workers keep serving.
//!
//! `store_sync = N`: at most every N seconds, a cache operation hands a
//! `msync(MS_SYNC)` of the mapping to a short-lived thread (uWSGI's master
//! does it on a timer); without it the kernel writes the pages back when
//! it likes, and always after the processes are gone.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::config::CacheSpec;
use crate::worker::locks;

/// "rwsgi cache, layout 1".
const MAGIC: &[u8; 8] = b"RWSGIC01";
/// Header offsets (u64 words unless said).
pub const ITEMS: usize = 8;
pub const KEYSIZE: usize = 16;
pub const BLOCKSIZE: usize = 24;
/// LRU list ends (u32 slot numbers).
pub const LRU_HEAD: usize = 32;
pub const LRU_TAIL: usize = 36;
/// When `store_sync` next writes the file (unix seconds).
pub const NEXT_SYNC: usize = 40;
/// The first free slot (u32; free slots are chained).
pub const FREE_HEAD: usize = 56;
/// The mutex.
pub const MUTEX: usize = 64;
/// When a full cache may next look for expired items (unix seconds).
pub const NEXT_SWEEP: usize = 112;
/// The stats' counters: lookups that found their key, lookups that did
/// not, new keys that found the cache full, items held, and the last
/// change (unix seconds).
pub const HITS: usize = 128;
pub const MISS: usize = 136;
pub const FULL: usize = 144;
pub const COUNT: usize = 152;
pub const LAST_MODIFIED: usize = 160;
/// The header's size; the buckets, then the slots, follow it.
pub const HEADER: usize = 192;

const _: () = assert!(std::mem::size_of::<libc::pthread_mutex_t>() <= NEXT_SWEEP - MUTEX);

/// A cache's mapping.
#[derive(Debug)]
pub struct Mapping {
    /// Its first byte (page-aligned; never unmapped).
    pub base: *mut u8,
    /// Its size.
    pub len: usize,
    /// Fresh, or a store of an earlier instance: the index (buckets, free
    /// list, LRU list) and the count must be built from the slots.
    pub rebuild: bool,
}

fn set_word(base: *mut u8, at: usize, v: u64) {
    // SAFETY: callers pass offsets inside the header of a live mapping.
    unsafe { base.add(at).cast::<u64>().write_unaligned(v) }
}

/// Whether a header is one this spec can use.
fn header_fits(head: &[u8], spec: &CacheSpec) -> bool {
    let num = |at: usize| {
        head.get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    head.starts_with(MAGIC)
        && num(ITEMS) == Some(spec.items as u64)
        && num(KEYSIZE) == Some(spec.keysize as u64)
        && num(BLOCKSIZE) == Some(spec.blocksize as u64)
}

fn map(fd: &OwnedFd, len: usize) -> io::Result<*mut u8> {
    // SAFETY: a shared mapping of `len` bytes of a file we hold, whose size
    // the caller checked or set; checked against MAP_FAILED. It stays valid
    // after the fd is closed.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(base.cast())
}

/// Makes the mapping for `spec` (`len` bytes) in the master, with its
/// header and mutex; the fd is for the prototype.
pub fn make(spec: &CacheSpec, len: usize) -> io::Result<(OwnedFd, Mapping)> {
    let (fd, made) = match &spec.store {
        None => (memfd(&spec.name, len)?, true),
        Some(path) => open_store(path, spec, len)?,
    };
    let base = map(&fd, len)?;
    if made {
        // SAFETY: the fresh mapping is `len >= HEADER` bytes.
        unsafe { std::ptr::copy_nonoverlapping(MAGIC.as_ptr(), base, MAGIC.len()) };
        set_word(base, ITEMS, spec.items as u64);
        set_word(base, KEYSIZE, spec.keysize as u64);
        set_word(base, BLOCKSIZE, spec.blocksize as u64);
    }
    // SAFETY: no process uses the mutex yet: the instance is starting, and
    // an earlier instance's processes are gone (a store shared by two
    // running instances is not supported, as in uWSGI).
    unsafe { locks::init_mutex(base.add(MUTEX).cast())? };
    Ok((
        fd,
        Mapping {
            base,
            len,
            rebuild: true,
        },
    ))
}

/// Maps the master's mapping in a prototype, if it is the one `spec`
/// describes.
pub fn attach(spec: &CacheSpec, fd: &OwnedFd, len: usize) -> io::Result<Mapping> {
    let size = std::fs::File::from(fd.try_clone()?).metadata()?.len();
    let base = (size == len as u64).then(|| map(fd, len)).transpose()?;
    // SAFETY: the header is inside the `len` bytes just mapped.
    let fits =
        base.is_some_and(|b| header_fits(unsafe { std::slice::from_raw_parts(b, HEADER) }, spec));
    match base {
        Some(base) if fits => Ok(Mapping {
            base,
            len,
            rebuild: false,
        }),
        _ => Err(io::Error::other(format!(
            "cache \"{}\" was made for another items/blocksize/keysize when the instance started; restart rwsgi to change it",
            spec.name
        ))),
    }
}

fn memfd(name: &str, len: usize) -> io::Result<OwnedFd> {
    let name = std::ffi::CString::new(format!("rwsgi-cache-{name}")).map_err(io::Error::other)?;
    // SAFETY: memfd_create with a NUL-terminated name; the result is
    // checked and owned from here on.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    std::fs::File::from(fd.try_clone()?).set_len(len as u64)?;
    Ok(fd)
}

/// Opens the store file, making it when missing or replacing one of
/// another size (`store_delete`); `true` when made.
fn open_store(path: &Path, spec: &CacheSpec, len: usize) -> io::Result<(OwnedFd, bool)> {
    let fits = |path: &Path| -> io::Result<bool> {
        let mut head = vec![0u8; HEADER];
        let f = std::fs::File::open(path)?;
        let size = f.metadata()?.len();
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut head, 0)?;
        Ok(size == len as u64 && header_fits(&head, spec))
    };
    let mut made = !path.exists();
    if !made && !fits(path).unwrap_or(false) {
        if !spec.store_delete {
            return Err(io::Error::other(format!(
                "invalid cache store file {}: it was made for another items/blocksize/keysize; remove it, or add store_delete=1 to replace it",
                path.display()
            )));
        }
        tracing::info!(event = "cache_store_removed", path = %path.display(),
            "Removing invalid cache store file: {}", path.display());
        std::fs::remove_file(path)?;
        made = true;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)?;
    if made {
        tracing::info!(event = "cache_store_created", path = %path.display(),
            "creating a new cache store file: {}", path.display());
        file.set_len(len as u64)?;
    } else {
        tracing::info!(event = "cache_store_recovered", path = %path.display(),
            "recovered cache from backing store file: {}", path.display());
    }
    Ok((file.into(), made))
}

/// Writes the mapping to its file now, off the caller's thread.
pub fn sync(base: *mut u8, len: usize) {
    let addr = base as usize;
    let spawned = std::thread::Builder::new()
        .name("cache-sync".into())
        .spawn(move || {
            // SAFETY: msync of a mapping that is never unmapped.
            unsafe { libc::msync(addr as *mut libc::c_void, len, libc::MS_SYNC) };
        });
    if let Err(e) = spawned {
        tracing::warn!(event = "cache_sync_failed", cause = %e, "cannot start the cache store sync");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_fits_only_the_spec_it_was_made_for() {
        let spec = CacheSpec::keyed("name=c,items=4,blocksize=16,keysize=8").unwrap();
        let mut head = vec![0u8; HEADER];
        head[..8].copy_from_slice(MAGIC);
        head[ITEMS..ITEMS + 8].copy_from_slice(&4u64.to_le_bytes());
        head[KEYSIZE..KEYSIZE + 8].copy_from_slice(&8u64.to_le_bytes());
        head[BLOCKSIZE..BLOCKSIZE + 8].copy_from_slice(&16u64.to_le_bytes());
        assert!(header_fits(&head, &spec));
        let other = CacheSpec::keyed("name=c,items=5,blocksize=16,keysize=8").unwrap();
        assert!(!header_fits(&head, &other));
        head[0] = b'X';
        assert!(!header_fits(&head, &spec));
    }
}
