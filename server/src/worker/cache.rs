//! uWSGI's local caches (`cache2 = name=...,items=N`, the legacy `cache =
//! N`; `core/cache.c`), for `uwsgi.cache_get` and the rest of the cache
//! API: a table of `items` slots of at most `keysize` + `blocksize` bytes,
//! in one shared mapping per cache that the prototype makes before it
//! forks, so every worker sees the same items.
//!
//! Each cache is guarded by a robust process-shared mutex (`locks.rs`):
//! a worker that dies holding it does not stop the others. Keys are found
//! by open addressing (linear probing from an FNV-1a hash) with tombstones
//! for deleted slots, so a lookup is bounded by `items` probes. An item
//! with an expiry is dropped when it is next looked at after its time
//! (uWSGI's master also sweeps them periodically; here they cost a slot
//! until then). A full cache refuses new keys (`cache_set` returns `None`),
//! as uWSGI's does without `purge_lru`.

use std::io;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use super::locks;
use crate::config::CacheSpec;

/// Slot states.
const FREE: u8 = 0;
const USED: u8 = 1;
const DELETED: u8 = 2;

/// A slot's header: state, key length, value length, expiry.
const SLOT_HEADER: usize = 16;

/// One cache in its shared mapping.
#[derive(Debug)]
pub struct Cache {
    spec: CacheSpec,
    mutex: *mut libc::pthread_mutex_t,
    slots: *mut u8,
    slot_size: usize,
}

// SAFETY: the mapping is never unmapped; every access to the slots happens
// while holding the process-shared mutex.
unsafe impl Send for Cache {}
// SAFETY: as above.
unsafe impl Sync for Cache {}

/// Why a cache operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// No cache of that name.
    #[error("no local uWSGI cache available named \"{0}\"")]
    NoCache(String),
    /// The key or value does not fit the cache.
    #[error("{0}")]
    TooBig(String),
    /// The mutex failed.
    #[error("cache lock: {0}")]
    Lock(#[from] io::Error),
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn fnv1a(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A slot, seen through its bytes (the caller holds the mutex).
struct Slot<'a>(&'a mut [u8]);

impl Slot<'_> {
    fn state(&self) -> u8 {
        self.0[0]
    }
    fn key_len(&self) -> usize {
        usize::from(u16::from_le_bytes([self.0[2], self.0[3]]))
    }
    fn val_len(&self) -> usize {
        u32::from_le_bytes([self.0[4], self.0[5], self.0[6], self.0[7]]) as usize
    }
    fn expires(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[8..16]);
        u64::from_le_bytes(b)
    }
    fn key(&self, keysize: usize) -> &[u8] {
        let n = self.key_len().min(keysize);
        &self.0[SLOT_HEADER..SLOT_HEADER + n]
    }
    fn value(&self, keysize: usize) -> &[u8] {
        let start = SLOT_HEADER + keysize;
        let n = self.val_len().min(self.0.len() - start);
        &self.0[start..start + n]
    }
    fn expired(&self, now: u64) -> bool {
        let e = self.expires();
        e != 0 && e <= now
    }
    fn write(&mut self, keysize: usize, key: &[u8], value: &[u8], expires: u64) {
        self.0[0] = USED;
        self.0[2..4].copy_from_slice(&(key.len() as u16).to_le_bytes());
        self.0[4..8].copy_from_slice(&(value.len() as u32).to_le_bytes());
        self.0[8..16].copy_from_slice(&expires.to_le_bytes());
        self.0[SLOT_HEADER..SLOT_HEADER + key.len()].copy_from_slice(key);
        let start = SLOT_HEADER + keysize;
        self.0[start..start + value.len()].copy_from_slice(value);
    }
    fn free(&mut self) {
        self.0[0] = DELETED;
    }
}

/// What [`Cache::find`] found.
enum Found {
    /// The slot holding the key.
    At(usize),
    /// Not there; the first slot it could go in, if any.
    Missing(Option<usize>),
}

impl Cache {
    /// Makes the cache's mapping and mutex (in the prototype).
    pub fn new(spec: CacheSpec) -> io::Result<Cache> {
        let slot_size = (SLOT_HEADER + spec.keysize + spec.blocksize).next_multiple_of(8);
        let mutex_size = std::mem::size_of::<libc::pthread_mutex_t>().next_multiple_of(64);
        let size = spec
            .items
            .checked_mul(slot_size)
            .and_then(|s| s.checked_add(mutex_size))
            .ok_or_else(|| io::Error::other("cache too large"))?;
        let base = locks::shared_mapping(size)?;
        let mutex = base.cast::<libc::pthread_mutex_t>();
        // SAFETY: the mutex is at the start of the fresh, page-aligned
        // mapping, used by no other process yet.
        unsafe { locks::init_mutex(mutex)? };
        // SAFETY: `mutex_size` is inside the mapping.
        let slots = unsafe { base.add(mutex_size) };
        Ok(Cache {
            spec,
            mutex,
            slots,
            slot_size,
        })
    }

    /// The cache's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Runs `f` on the slots with the mutex held.
    fn with<R>(&self, f: impl FnOnce(&mut [u8]) -> R) -> Result<R, CacheError> {
        // SAFETY: the mutex was made by init_mutex in a mapping that stays.
        unsafe { locks::lock_mutex(self.mutex)? };
        // SAFETY: the slots region is `items * slot_size` bytes of the
        // mapping, and we hold the mutex every process takes before
        // touching it.
        let slots =
            unsafe { std::slice::from_raw_parts_mut(self.slots, self.spec.items * self.slot_size) };
        let r = f(slots);
        // SAFETY: as for the lock.
        unsafe { locks::unlock_mutex(self.mutex)? };
        Ok(r)
    }

    fn slot<'a>(&self, slots: &'a mut [u8], i: usize) -> Slot<'a> {
        Slot(&mut slots[i * self.slot_size..(i + 1) * self.slot_size])
    }

    /// Where `key` is, dropping expired items on the way.
    fn find(&self, slots: &mut [u8], key: &[u8], now: u64) -> Found {
        let items = self.spec.items;
        let start = (fnv1a(key) % items as u64) as usize;
        let mut first_free = None;
        for probe in 0..items {
            let i = (start + probe) % items;
            let mut s = self.slot(slots, i);
            match s.state() {
                FREE => return Found::Missing(first_free.or(Some(i))),
                USED if s.expired(now) => {
                    s.free();
                    first_free.get_or_insert(i);
                }
                USED if s.key(self.spec.keysize) == key => return Found::At(i),
                USED => {}
                _ => {
                    first_free.get_or_insert(i);
                }
            }
        }
        Found::Missing(first_free)
    }

    fn fits(&self, key: &[u8], value: &[u8]) -> Result<(), CacheError> {
        if key.is_empty() || key.len() > self.spec.keysize {
            return Err(CacheError::TooBig(format!(
                "a key of cache \"{}\" is 1 to {} bytes",
                self.spec.name, self.spec.keysize
            )));
        }
        if value.len() > self.spec.blocksize {
            return Err(CacheError::TooBig(format!(
                "a value of cache \"{}\" is at most {} bytes (blocksize)",
                self.spec.name, self.spec.blocksize
            )));
        }
        Ok(())
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, CacheError> {
        let now = now_secs();
        self.with(|slots| match self.find(slots, key, now) {
            Found::At(i) => Some(self.slot(slots, i).value(self.spec.keysize).to_vec()),
            Found::Missing(_) => None,
        })
    }

    /// Stores `value` (`overwrite`: replacing one that is there); `false`
    /// when the key exists and may not be replaced, or the cache is full.
    pub fn set(
        &self,
        key: &[u8],
        value: &[u8],
        expires_in: u64,
        overwrite: bool,
    ) -> Result<bool, CacheError> {
        self.fits(key, value)?;
        let now = now_secs();
        let expires = if expires_in == 0 {
            0
        } else {
            now.saturating_add(expires_in)
        };
        let keysize = self.spec.keysize;
        self.with(|slots| {
            let at = match self.find(slots, key, now) {
                Found::At(i) if overwrite => i,
                Found::At(_) => return false,
                Found::Missing(Some(i)) => i,
                Found::Missing(None) => return false,
            };
            self.slot(slots, at).write(keysize, key, value, expires);
            true
        })
    }

    /// Removes `key`; `false` when it was not there.
    pub fn delete(&self, key: &[u8]) -> Result<bool, CacheError> {
        let now = now_secs();
        self.with(|slots| match self.find(slots, key, now) {
            Found::At(i) => {
                self.slot(slots, i).free();
                true
            }
            Found::Missing(_) => false,
        })
    }

    /// Empties the cache.
    pub fn clear(&self) -> Result<(), CacheError> {
        self.with(|slots| {
            for i in 0..self.spec.items {
                self.slot(slots, i).0[0] = FREE;
            }
        })
    }

    /// Applies `op` to the 64-bit number stored at `key` (0 when missing),
    /// as uWSGI's `cache_inc` and friends do; `false` when the value there
    /// is not 8 bytes or the cache is full.
    pub fn math(
        &self,
        key: &[u8],
        op: impl FnOnce(i64) -> Option<i64>,
        expires_in: u64,
    ) -> Result<bool, CacheError> {
        self.fits(key, &[0; 8])?;
        let now = now_secs();
        let keysize = self.spec.keysize;
        let expires = if expires_in == 0 {
            0
        } else {
            now.saturating_add(expires_in)
        };
        self.with(|slots| {
            let (at, old) = match self.find(slots, key, now) {
                Found::At(i) => {
                    let s = self.slot(slots, i);
                    let Ok(b) = <[u8; 8]>::try_from(s.value(keysize)) else {
                        return false;
                    };
                    (i, i64::from_ne_bytes(b))
                }
                Found::Missing(Some(i)) => (i, 0),
                Found::Missing(None) => return false,
            };
            let Some(new) = op(old) else { return false };
            self.slot(slots, at)
                .write(keysize, key, &new.to_ne_bytes(), expires);
            true
        })
    }

    /// The keys there now.
    pub fn keys(&self) -> Result<Vec<Vec<u8>>, CacheError> {
        let now = now_secs();
        self.with(|slots| {
            (0..self.spec.items)
                .filter_map(|i| {
                    let s = self.slot(slots, i);
                    (s.state() == USED && !s.expired(now))
                        .then(|| s.key(self.spec.keysize).to_vec())
                })
                .collect()
        })
    }
}

static CACHES: OnceLock<Vec<Cache>> = OnceLock::new();

/// Makes the configured caches (the prototype, before the app's import).
pub fn init(specs: &[CacheSpec]) -> io::Result<()> {
    let mut caches = Vec::with_capacity(specs.len());
    for spec in specs {
        let items = spec.items;
        let name = spec.name.clone();
        caches.push(Cache::new(spec.clone())?);
        tracing::info!(event = "cache", cache = %name, items,
            "*** Cache \"{name}\" initialized: {items} items ***");
    }
    let _ = CACHES.set(caches);
    Ok(())
}

/// The cache of that name, or the first one for `None`.
pub fn by_name(name: Option<&str>) -> Result<&'static Cache, CacheError> {
    let caches = CACHES.get().map(Vec::as_slice).unwrap_or_default();
    match name {
        None => caches.first(),
        Some(n) => caches.iter().find(|c| c.name() == n),
    }
    .ok_or_else(|| CacheError::NoCache(name.unwrap_or("default").to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(items: usize) -> Cache {
        Cache::new(CacheSpec {
            name: "t".into(),
            items,
            blocksize: 16,
            keysize: 8,
        })
        .unwrap()
    }

    #[test]
    fn items_are_set_got_replaced_and_deleted() {
        let c = small(4);
        assert_eq!(c.get(b"a").unwrap(), None);
        assert!(c.set(b"a", b"1", 0, false).unwrap());
        // set does not replace; update does.
        assert!(!c.set(b"a", b"2", 0, false).unwrap());
        assert_eq!(c.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert!(c.set(b"a", b"22", 0, true).unwrap());
        assert_eq!(c.get(b"a").unwrap(), Some(b"22".to_vec()));
        assert!(c.delete(b"a").unwrap());
        assert!(!c.delete(b"a").unwrap());
        assert_eq!(c.get(b"a").unwrap(), None);
        // Limits.
        assert!(c.set(b"", b"x", 0, true).is_err());
        assert!(c.set(b"123456789", b"x", 0, true).is_err());
        assert!(c.set(b"k", &[0; 17], 0, true).is_err());
    }

    #[test]
    fn a_full_cache_refuses_new_keys_and_deleted_slots_are_reused() {
        let c = small(3);
        for k in [&b"a"[..], b"b", b"c"] {
            assert!(c.set(k, b"v", 0, false).unwrap());
        }
        assert!(!c.set(b"d", b"v", 0, false).unwrap());
        assert!(c.delete(b"b").unwrap());
        assert!(c.set(b"d", b"v", 0, false).unwrap());
        let mut keys = c.keys().unwrap();
        keys.sort();
        assert_eq!(keys, [b"a".to_vec(), b"c".to_vec(), b"d".to_vec()]);
        // Keys behind a deleted slot are still found.
        for k in [&b"a"[..], b"c", b"d"] {
            assert_eq!(c.get(k).unwrap(), Some(b"v".to_vec()), "{k:?}");
        }
        c.clear().unwrap();
        assert!(c.keys().unwrap().is_empty());
    }

    #[test]
    fn numbers_and_expiry() {
        let c = small(4);
        assert!(c.math(b"n", |v| v.checked_add(5), 0).unwrap());
        assert!(c.math(b"n", |v| v.checked_mul(3), 0).unwrap());
        assert_eq!(c.get(b"n").unwrap(), Some(15i64.to_ne_bytes().to_vec()));
        assert!(!c.math(b"n", |v| v.checked_div(0), 0).unwrap());
        assert!(c.set(b"s", b"text", 0, true).unwrap());
        assert!(!c.math(b"s", |v| v.checked_add(1), 0).unwrap());
        // An item whose time has passed is gone.
        assert!(c.set(b"e", b"x", 1, true).unwrap());
        assert_eq!(c.get(b"e").unwrap(), Some(b"x".to_vec()));
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert_eq!(c.get(b"e").unwrap(), None);
    }
}
