//! uWSGI's local caches (`cache2 = name=...,items=N`, the legacy `cache =
//! N`; `core/cache.c`), for `uwsgi.cache_get` and the rest of the cache
//! API: a table of `items` slots of at most `keysize` + `blocksize` bytes
//! in one shared mapping per cache (`store.rs`): the master makes it, every
//! prototype generation maps it before it forks, so every worker, spooler
//! and mule sees the same items, across reloads.
//!
//! Each cache is guarded by a robust process-shared mutex (`worker/locks.rs`)
//! in the mapping's header: a worker that dies holding it does not stop the
//! others. Keys are found through hash buckets (FNV-1a) with chains; an
//! item with an expiry is dropped when a lookup meets it after its time,
//! and a full cache drops all its expired items (at most once a second)
//! before it evicts (`purge_lru`), empties itself (`clear_on_full`) or
//! refuses the new key (uWSGI's default). The header also holds the
//! counters the stats show (hits, misses, full, items).

pub mod store;
mod table;

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use self::store::{COUNT, FREE_HEAD, FULL, HEADER, HITS, LAST_MODIFIED, MISS, MUTEX, NEXT_SYNC};
use self::table::{SLOT_HEADER, Table, USED, get_u64, now_secs};
use crate::config::{CacheSpec, Preload};
use crate::worker::locks;

/// The environment variable that gives the prototype the master's cache
/// descriptors, in the order of the configuration.
pub const FDS_ENV: &str = "RWSGI_CACHE_FDS";

/// One cache in its shared mapping.
#[derive(Debug)]
pub struct Cache {
    spec: CacheSpec,
    base: *mut u8,
    len: usize,
    buckets: usize,
    slot_size: usize,
}

// SAFETY: the mapping is never unmapped; every access to it after setup
// happens while holding the process-shared mutex in its header.
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

/// Whether a new key found the cache full, to log once the mutex is
/// released.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WasFull {
    No,
    Yes,
}

impl Cache {
    /// The slot size, the number of buckets and the mapping's size.
    fn geometry(spec: &CacheSpec) -> io::Result<(usize, usize, usize)> {
        let slot_size = (SLOT_HEADER + spec.keysize + spec.blocksize).next_multiple_of(8);
        let buckets = spec.items.next_power_of_two();
        let len = spec
            .items
            .checked_mul(slot_size)
            .and_then(|s| s.checked_add(HEADER + (buckets * 4).next_multiple_of(8)))
            .ok_or_else(|| io::Error::other("cache too large"))?;
        Ok((slot_size, buckets, len))
    }

    fn from_mapping(spec: CacheSpec, mapping: store::Mapping) -> io::Result<Cache> {
        let (slot_size, buckets, _) = Cache::geometry(&spec)?;
        let cache = Cache {
            spec,
            base: mapping.base,
            len: mapping.len,
            buckets,
            slot_size,
        };
        if mapping.rebuild {
            cache.with(|t| t.rebuild()).map_err(io::Error::other)?;
        }
        Ok(cache)
    }

    /// Makes the cache's mapping (the master, once per instance); the fd
    /// is for the prototypes.
    pub fn make(spec: CacheSpec) -> io::Result<(OwnedFd, Cache)> {
        let (_, _, len) = Cache::geometry(&spec)?;
        let (fd, mapping) = store::make(&spec, len)?;
        Ok((fd, Cache::from_mapping(spec, mapping)?))
    }

    /// Maps the master's cache (a prototype).
    pub fn attach(spec: CacheSpec, fd: &OwnedFd) -> io::Result<Cache> {
        let (_, _, len) = Cache::geometry(&spec)?;
        let mapping = store::attach(&spec, fd, len)?;
        Cache::from_mapping(spec, mapping)
    }

    /// What the stats show: items held, hits, misses, full, last change.
    pub fn counters(&self) -> [u64; 5] {
        [COUNT, HITS, MISS, FULL, LAST_MODIFIED].map(|at| {
            // SAFETY: as in `Table::counter`; a read of an atomic word.
            unsafe { AtomicU64::from_ptr(self.base.add(at).cast()) }.load(Ordering::Relaxed)
        })
    }

    /// The configuration it was made with.
    pub fn spec(&self) -> &CacheSpec {
        &self.spec
    }

    /// Its number of hash buckets (the stats' `hashsize`).
    pub fn buckets(&self) -> usize {
        self.buckets
    }

    /// The cache's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    fn mutex(&self) -> *mut libc::pthread_mutex_t {
        // SAFETY: the mutex is inside the header of the live mapping.
        unsafe { self.base.add(MUTEX).cast() }
    }

    /// Runs `f` on the table with the mutex held.
    fn with<R>(&self, f: impl FnOnce(&mut Table<'_>) -> R) -> Result<R, CacheError> {
        // SAFETY: the mutex was set up by store::make in a mapping
        // that stays.
        let holder_died = unsafe { locks::lock_mutex(self.mutex())? };
        // SAFETY: the mapping is `len` bytes and we hold the mutex every
        // process takes before touching it.
        let bytes = unsafe { std::slice::from_raw_parts_mut(self.base, self.len) };
        let mut table = Table {
            bytes,
            items: self.spec.items,
            buckets: self.buckets,
            slot_size: self.slot_size,
            keysize: self.spec.keysize,
            lru: self.spec.purge_lru,
        };
        if holder_died {
            table.rebuild();
        }
        let r = f(&mut table);
        let mut sync_now = false;
        if self.spec.store_sync > 0 && self.spec.store.is_some() {
            let now = now_secs();
            if now >= get_u64(table.bytes, NEXT_SYNC) {
                let next = now + self.spec.store_sync;
                table.bytes[NEXT_SYNC..NEXT_SYNC + 8].copy_from_slice(&next.to_le_bytes());
                sync_now = true;
            }
        }
        // SAFETY: as for the lock.
        unsafe { locks::unlock_mutex(self.mutex())? };
        if sync_now {
            store::sync(self.base, self.len);
        }
        Ok(r)
    }

    /// A free slot for a new key; when the cache is full, one made by
    /// dropping expired items, `purge_lru` or `clear_on_full` (uWSGI
    /// `cache_full`).
    fn place(&self, t: &mut Table<'_>, now: u64) -> (Option<usize>, WasFull) {
        if let Some(i) = t.take_free() {
            return (Some(i), WasFull::No);
        }
        t.counter(FULL).fetch_add(1, Ordering::Relaxed);
        t.sweep(now);
        if let Some(i) = t.take_free() {
            return (Some(i), WasFull::No);
        }
        if self.spec.purge_lru {
            if t.lru_victim().is_none() {
                t.rebuild();
            }
            if let Some(v) = t.lru_victim() {
                t.remove(v);
            }
        } else if self.spec.clear_on_full {
            t.clear();
        } else if t.valid(t.head_word(FREE_HEAD)).is_some() {
            // A free list that does not start at a free slot: a holder
            // died mid-update.
            t.rebuild();
        }
        (t.take_free(), WasFull::Yes)
    }

    /// Writes an item where `found` says the key is, else in a slot made
    /// for it ([`Cache::place`]); `false` when the cache is full.
    fn store(
        &self,
        t: &mut Table<'_>,
        found: Option<usize>,
        key: &[u8],
        value: &[u8],
        expires: u64,
        now: u64,
    ) -> (bool, WasFull) {
        let (at, fresh, full) = match found {
            Some(i) => (Some(i), false, WasFull::No),
            None => {
                let (at, full) = self.place(t, now);
                (at, true, full)
            }
        };
        let Some(i) = at else {
            return (false, full);
        };
        t.put(i, fresh, key, value, expires);
        (true, full)
    }

    /// uWSGI's lines for a full cache (unless `ignore_full`).
    fn report(&self, full: WasFull) {
        if full == WasFull::No || self.spec.ignore_full {
            return;
        }
        let name = &self.spec.name;
        if self.spec.purge_lru {
            tracing::info!(event = "cache_lru_purge", cache = %name,
                "LRU item will be purged from cache \"{name}\"");
        } else {
            tracing::warn!(event = "cache_full", cache = %name,
                "*** DANGER cache \"{name}\" is FULL !!! ***");
        }
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

    fn expiry(expires_in: u64, now: u64) -> u64 {
        if expires_in == 0 {
            0
        } else {
            now.saturating_add(expires_in)
        }
    }

    /// The value of `key` (a use, for `purge_lru`).
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, CacheError> {
        let now = now_secs();
        let keysize = self.spec.keysize;
        self.with(|t| {
            let Some(i) = t.find(key, now) else {
                t.counter(MISS).fetch_add(1, Ordering::Relaxed);
                return None;
            };
            t.counter(HITS).fetch_add(1, Ordering::Relaxed);
            t.touch(i);
            Some(t.slot(i).value(keysize).to_vec())
        })
    }

    /// Whether `key` is there (not a use, as in uWSGI).
    pub fn exists(&self, key: &[u8]) -> Result<bool, CacheError> {
        let now = now_secs();
        self.with(|t| t.find(key, now).is_some())
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
        let expires = Cache::expiry(expires_in, now);
        let (stored, full) = self.with(|t| match t.find(key, now) {
            Some(_) if !overwrite => (false, WasFull::No),
            found => self.store(t, found, key, value, expires, now),
        })?;
        self.report(full);
        Ok(stored)
    }

    /// Removes `key`; `false` when it was not there.
    pub fn delete(&self, key: &[u8]) -> Result<bool, CacheError> {
        let now = now_secs();
        self.with(|t| match t.find(key, now) {
            Some(i) => {
                t.remove(i);
                true
            }
            None => false,
        })
    }

    /// Empties the cache.
    pub fn clear(&self) -> Result<(), CacheError> {
        self.with(|t| t.clear())
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
        let expires = Cache::expiry(expires_in, now);
        let (done, full) = self.with(|t| {
            let found = t.find(key, now);
            let old = match found {
                Some(i) => match <[u8; 8]>::try_from(t.slot(i).value(keysize)) {
                    Ok(b) => i64::from_ne_bytes(b),
                    Err(_) => return (false, WasFull::No),
                },
                None => 0,
            };
            // Computed before a full cache makes room for a new key.
            let Some(new) = op(old) else {
                return (false, WasFull::No);
            };
            self.store(t, found, key, &new.to_ne_bytes(), expires, now)
        })?;
        self.report(full);
        Ok(done)
    }

    /// Stores an `add-cache-item` or `load-file-in-cache` item meant for
    /// this cache, with uWSGI's lines.
    fn preload(&self, p: &Preload) {
        let name = &self.spec.name;
        let (target, rest) = p.target();
        if target.is_some_and(|t| t != name) {
            return;
        }
        let (key, value) = match p {
            Preload::Item(_) => match rest.split_once('=') {
                Some((k, v)) => (k, v.as_bytes().to_vec()),
                None => {
                    tracing::warn!(event = "cache_preload_failed", cache = %name,
                        "[cache] unable to store item {rest}");
                    return;
                }
            },
            Preload::File(_) => match std::fs::read(rest) {
                Ok(bytes) => (rest, bytes),
                Err(e) => {
                    tracing::warn!(event = "cache_preload_failed", cause = %e, cache = %name,
                        "[cache-error] unable to read file \"{rest}\"");
                    return;
                }
            },
        };
        match self.set(key.as_bytes(), &value, 0, true) {
            Ok(true) => tracing::info!(event = "cache_preloaded", cache = %name,
                "[cache] stored \"{key}\" in \"{name}\""),
            Ok(false) | Err(_) => tracing::warn!(event = "cache_preload_failed", cache = %name,
                "[cache-error] unable to store \"{key}\" in \"{name}\""),
        }
    }

    /// The keys there now.
    pub fn keys(&self) -> Result<Vec<Vec<u8>>, CacheError> {
        let now = now_secs();
        let keysize = self.spec.keysize;
        self.with(|t| {
            (0..t.items)
                .filter_map(|i| {
                    let s = t.slot(i);
                    (s.state() == USED && !s.expired(now)).then(|| s.key(keysize).to_vec())
                })
                .collect()
        })
    }
}

static CACHES: OnceLock<Vec<Cache>> = OnceLock::new();

/// Makes the configured caches and fills them (`add-cache-item`,
/// `load-file-in-cache`): the master, once per instance. The fds go to
/// every prototype (`FDS_ENV`).
pub fn make_all(specs: &[CacheSpec], preload: &[Preload]) -> io::Result<Vec<(OwnedFd, Cache)>> {
    let mut caches = Vec::with_capacity(specs.len());
    for spec in specs {
        let items = spec.items;
        let name = spec.name.clone();
        let (fd, cache) = Cache::make(spec.clone())
            .map_err(|e| io::Error::new(e.kind(), format!("cache \"{name}\": {e}")))?;
        tracing::info!(event = "cache", cache = %name, items,
            "*** Cache \"{name}\" initialized: {items} items ***");
        for p in preload {
            cache.preload(p);
        }
        caches.push((fd, cache));
    }
    Ok(caches)
}

/// The descriptors a prototype inherited, until [`attach_all`].
static INHERITED: Mutex<Vec<OwnedFd>> = Mutex::new(Vec::new());

/// Takes the descriptors named by `FDS_ENV` (a prototype, at its start).
///
/// # Safety
/// The variable must have been set by the master, to descriptors it left
/// open for this process, owned by nothing else here.
pub unsafe fn inherit(var: &str) {
    let fds = var
        .split(',')
        .filter_map(|f| f.parse::<i32>().ok())
        // SAFETY: as the caller promises.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    if let Ok(mut v) = INHERITED.lock() {
        v.extend(fds);
    }
}

/// Maps the master's caches (a prototype, before the app's import).
pub fn attach_all(specs: &[CacheSpec]) -> io::Result<()> {
    let fds = INHERITED
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default();
    if fds.len() != specs.len() {
        return Err(io::Error::other(format!(
            "the master made {} caches and the configuration asks for {}; restart rwsgi to change them",
            fds.len(),
            specs.len()
        )));
    }
    let caches = specs
        .iter()
        .zip(&fds)
        .map(|(spec, fd)| Cache::attach(spec.clone(), fd))
        .collect::<io::Result<Vec<_>>>()?;
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

    fn cache(extra: &str) -> Cache {
        let spec = CacheSpec::keyed(&format!("name=t,blocksize=16,keysize=8,{extra}")).unwrap();
        Cache::make(spec).unwrap().1
    }

    fn small(items: usize) -> Cache {
        cache(&format!("items={items}"))
    }

    fn sorted_keys(c: &Cache) -> Vec<Vec<u8>> {
        let mut keys = c.keys().unwrap();
        keys.sort();
        keys
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
        assert!(c.exists(b"a").unwrap());
        assert!(c.delete(b"a").unwrap());
        assert!(!c.delete(b"a").unwrap());
        assert_eq!(c.get(b"a").unwrap(), None);
        assert!(!c.exists(b"a").unwrap());
        // Limits.
        assert!(c.set(b"", b"x", 0, true).is_err());
        assert!(c.set(b"123456789", b"x", 0, true).is_err());
        assert!(c.set(b"k", &[0; 17], 0, true).is_err());
    }

    #[test]
    fn a_full_cache_refuses_new_keys_and_freed_slots_are_reused() {
        let c = small(3);
        for k in [&b"a"[..], b"b", b"c"] {
            assert!(c.set(k, b"v", 0, false).unwrap());
        }
        assert!(!c.set(b"d", b"v", 0, false).unwrap());
        assert!(!c.math(b"n", |v| v.checked_add(1), 0).unwrap());
        assert!(c.delete(b"b").unwrap());
        assert!(c.set(b"d", b"v", 0, false).unwrap());
        assert_eq!(
            sorted_keys(&c),
            [b"a".to_vec(), b"c".to_vec(), b"d".to_vec()]
        );
        for k in [&b"a"[..], b"c", b"d"] {
            assert_eq!(c.get(k).unwrap(), Some(b"v".to_vec()), "{k:?}");
        }
        c.clear().unwrap();
        assert!(c.keys().unwrap().is_empty());
        // Churn far past the size: nothing is lost, nothing leaks.
        for round in 0..50u32 {
            let k = format!("k{}", round % 7);
            c.set(k.as_bytes(), b"x", 0, true).unwrap();
            if round % 2 == 0 {
                c.delete(k.as_bytes()).unwrap();
            }
        }
        assert!(c.keys().unwrap().len() <= 3);
        assert!(c.set(b"z", b"v", 0, true).unwrap() || c.keys().unwrap().len() == 3);
    }

    #[test]
    fn purge_lru_evicts_the_least_recently_used() {
        let c = cache("items=3,purge_lru=1");
        for k in [&b"a"[..], b"b", b"c"] {
            assert!(c.set(k, b"v", 0, false).unwrap());
        }
        // A read is a use; exists is not.
        assert!(c.get(b"a").unwrap().is_some());
        assert!(c.exists(b"b").unwrap());
        assert!(c.set(b"d", b"v", 0, false).unwrap());
        assert_eq!(
            sorted_keys(&c),
            [b"a".to_vec(), b"c".to_vec(), b"d".to_vec()]
        );
        // An update is a use.
        assert!(c.set(b"c", b"w", 0, true).unwrap());
        assert!(c.math(b"n", |v| v.checked_add(2), 0).unwrap());
        assert_eq!(
            sorted_keys(&c),
            [b"c".to_vec(), b"d".to_vec(), b"n".to_vec()]
        );
        // A failed operation on a new key evicts nothing.
        assert!(!c.math(b"m", |v| v.checked_div(0), 0).unwrap());
        assert_eq!(c.keys().unwrap().len(), 3);
    }

    #[test]
    fn clear_on_full_empties_a_full_cache_for_the_new_key() {
        let c = cache("items=2,clear_on_full=1");
        assert!(c.set(b"a", b"v", 0, false).unwrap());
        assert!(c.set(b"b", b"v", 0, false).unwrap());
        assert!(c.set(b"c", b"v", 0, false).unwrap());
        assert_eq!(sorted_keys(&c), [b"c".to_vec()]);
    }

    #[test]
    fn numbers_and_expiry() {
        let c = small(2);
        assert!(c.math(b"n", |v| v.checked_add(5), 0).unwrap());
        assert!(c.math(b"n", |v| v.checked_mul(3), 0).unwrap());
        assert_eq!(c.get(b"n").unwrap(), Some(15i64.to_ne_bytes().to_vec()));
        assert!(!c.math(b"n", |v| v.checked_div(0), 0).unwrap());
        assert!(c.set(b"s", b"text", 0, true).unwrap());
        assert!(!c.math(b"s", |v| v.checked_add(1), 0).unwrap());
        assert!(c.delete(b"s").unwrap());
        // An item whose time has passed is gone, and a full cache drops
        // expired items to make room.
        assert!(c.set(b"e", b"x", 1, true).unwrap());
        assert_eq!(c.get(b"e").unwrap(), Some(b"x".to_vec()));
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert!(c.set(b"f", b"y", 0, true).unwrap());
        assert_eq!(c.get(b"e").unwrap(), None);
        assert_eq!(sorted_keys(&c), [b"f".to_vec(), b"n".to_vec()]);
    }

    #[test]
    fn a_store_keeps_the_items_and_refuses_another_size() {
        let dir = std::env::temp_dir().join(format!("rwsgi-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.store");
        let _ = std::fs::remove_file(&path);
        let store = format!("items=4,purge_lru=1,store={}", path.display());
        let c = cache(&store);
        assert!(c.set(b"kept", b"value", 0, false).unwrap());
        assert!(c.set(b"other", b"x", 0, false).unwrap());
        // Another instance finds the items and builds its index again.
        let again = cache(&store);
        assert_eq!(again.get(b"kept").unwrap(), Some(b"value".to_vec()));
        assert_eq!(again.keys().unwrap().len(), 2);
        assert!(again.set(b"three", b"3", 0, false).unwrap());
        // A store made for another size is refused, or replaced when asked.
        let bigger = format!("items=5,store={}", path.display());
        let err = Cache::make(
            CacheSpec::keyed(&format!("name=t,blocksize=16,keysize=8,{bigger}")).unwrap(),
        )
        .map(|_| ())
        .unwrap_err()
        .to_string();
        assert!(err.contains("store_delete"), "{err}");
        let replaced = cache(&format!("{bigger},store_delete=1"));
        assert!(replaced.keys().unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_prototype_attaches_the_masters_cache_of_the_same_size_only() {
        let spec = |items: usize| {
            CacheSpec::keyed(&format!("name=t,blocksize=16,keysize=8,items={items}")).unwrap()
        };
        let (fd, master) = Cache::make(spec(4)).unwrap();
        assert!(master.set(b"a", b"1", 0, false).unwrap());
        let proto = Cache::attach(spec(4), &fd).unwrap();
        assert_eq!(proto.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(proto.get(b"b").unwrap(), None);
        assert!(proto.set(b"b", b"2", 0, false).unwrap());
        // One table: the master sees the prototype's item and the counters.
        assert_eq!(master.get(b"b").unwrap(), Some(b"2".to_vec()));
        let [items, hits, miss, full, modified] = master.counters();
        assert_eq!((items, hits, miss, full), (2, 2, 1, 0));
        assert!(modified > 0);
        let err = Cache::attach(spec(5), &fd)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains("restart rwsgi"), "{err}");
    }
}
