//! Where a cache's bytes live: a shared anonymous mapping, or with
//! `store = PATH` a shared mapping of that file, so the items outlive the
//! instance (uWSGI `core/cache.c` `uwsgi_cache_init`, with its lines:
//! `creating a new cache store file`, `recovered cache from backing store
//! file`, `Removing invalid cache store file`).
//!
//! The mapping starts with a header that says what the file was made for
//! (a magic word, items, keysize, blocksize) and which instance (master
//! pid) last set up its mutex. A store made for another size is refused,
//! or replaced with `store_delete`, as in uWSGI. The header's mutex is set
//! up again by a new instance (its previous holders are gone), but kept by
//! a reload's new prototype: the old generation's workers still use it.
//!
//! `store_sync = N`: at most every N seconds, a cache operation hands a
//! `msync(MS_SYNC)` of the mapping to a short-lived thread (uWSGI's master
//! does it on a timer); without it the kernel writes the pages back when
//! it likes, and always after the processes are gone.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::locks;
use crate::config::CacheSpec;

/// The header's size; the slots follow it.
pub const HEADER: usize = 128;
/// "rwsgi cache, layout 1".
const MAGIC: &[u8; 8] = b"RWSGIC01";
/// Header offsets.
pub const ITEMS: usize = 8;
pub const KEYSIZE: usize = 16;
pub const BLOCKSIZE: usize = 24;
/// LRU list ends (u32 slot numbers).
pub const LRU_HEAD: usize = 32;
pub const LRU_TAIL: usize = 36;
/// When `store_sync` next writes the file (unix seconds).
pub const NEXT_SYNC: usize = 40;
/// The master pid that set up the mutex.
const OWNER: usize = 48;
/// The first free slot (u32; free slots are chained).
pub const FREE_HEAD: usize = 56;
/// The mutex.
pub const MUTEX: usize = 64;
/// When a full cache may next look for expired items (unix seconds).
pub const NEXT_SWEEP: usize = 112;

const _: () = assert!(std::mem::size_of::<libc::pthread_mutex_t>() <= NEXT_SWEEP - MUTEX);

/// A cache's mapping.
#[derive(Debug)]
pub struct Mapping {
    /// Its first byte (page-aligned; never unmapped).
    pub base: *mut u8,
    /// Its size.
    pub len: usize,
    /// Fresh, or recovered from a store of an earlier instance: the index
    /// (buckets, free list, LRU list) must be built from the slots.
    pub rebuild: bool,
}

fn word(base: *mut u8, at: usize) -> u64 {
    // SAFETY: callers pass offsets inside the header of a live mapping.
    unsafe { base.add(at).cast::<u64>().read_unaligned() }
}

fn set_word(base: *mut u8, at: usize, v: u64) {
    // SAFETY: as for `word`.
    unsafe { base.add(at).cast::<u64>().write_unaligned(v) }
}

/// The mapping for `spec`, `len` bytes, with its mutex ready.
pub fn open(spec: &CacheSpec, len: usize) -> io::Result<Mapping> {
    let (base, made) = match &spec.store {
        None => (locks::shared_mapping(len)?, true),
        Some(path) => map_store(path, spec, len)?,
    };
    if made {
        // SAFETY: the fresh mapping is `len >= HEADER` bytes.
        unsafe { std::ptr::copy_nonoverlapping(MAGIC.as_ptr(), base, MAGIC.len()) };
        set_word(base, ITEMS, spec.items as u64);
        set_word(base, KEYSIZE, spec.keysize as u64);
        set_word(base, BLOCKSIZE, spec.blocksize as u64);
    }
    let master = u64::from(nix::unistd::getppid().as_raw().unsigned_abs());
    let owner = word(base, OWNER);
    if made || owner != master {
        // SAFETY: a new instance: no process of it uses the mutex yet, and
        // the previous instance's processes are gone (a store shared by
        // two running instances is not supported, as in uWSGI).
        unsafe { locks::init_mutex(base.add(MUTEX).cast())? };
        set_word(base, OWNER, master);
    }
    Ok(Mapping {
        base,
        len,
        rebuild: made || owner != master,
    })
}

/// Whether the file's header is one this spec can use.
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

/// Maps the store file, making it when missing; `true` when made.
fn map_store(path: &Path, spec: &CacheSpec, len: usize) -> io::Result<(*mut u8, bool)> {
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
        .open(path)?;
    if made {
        tracing::info!(event = "cache_store_created", path = %path.display(),
            "creating a new cache store file: {}", path.display());
        file.set_len(len as u64)?;
    } else {
        tracing::info!(event = "cache_store_recovered", path = %path.display(),
            "recovered cache from backing store file: {}", path.display());
    }
    // SAFETY: a shared mapping of the whole file (`len` bytes, the size
    // just checked or set), checked against MAP_FAILED; the descriptor may
    // close afterwards.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok((base.cast(), made))
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
