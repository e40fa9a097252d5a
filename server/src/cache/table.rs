//! A cache's table while its mutex is held: the slots, the hash buckets
//! that find them (one chain per bucket, as uWSGI's hash table), the free
//! list, the LRU list (`purge_lru`) and the header counters. Every walk is
//! bounded by the number of items and every link read is checked, so a
//! holder that died mid-update cannot make one loop or step outside the
//! mapping; the index is then built again from the slots
//! ([`Table::rebuild`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::store::{COUNT, FREE_HEAD, HEADER, LAST_MODIFIED, LRU_HEAD, LRU_TAIL, NEXT_SWEEP};

/// Slot states.
pub(super) const FREE: u8 = 0;
pub(super) const USED: u8 = 1;

/// A slot's header: state, key length, value length, expiry, LRU links
/// (previous, next), the next slot of its bucket chain or of the free list.
pub(super) const SLOT_HEADER: usize = 32;
/// No slot (the end of a chain or list).
pub(super) const NIL: u32 = u32::MAX;

pub(super) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn fnv1a(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

pub(super) fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// A slot, seen through its bytes (the caller holds the mutex).
pub(super) struct Slot<'a>(pub(super) &'a mut [u8]);

impl Slot<'_> {
    pub(super) fn state(&self) -> u8 {
        self.0[0]
    }
    pub(super) fn key_len(&self) -> usize {
        usize::from(u16::from_le_bytes([self.0[2], self.0[3]]))
    }
    pub(super) fn val_len(&self) -> usize {
        get_u32(self.0, 4) as usize
    }
    pub(super) fn key(&self, keysize: usize) -> &[u8] {
        let n = self.key_len().min(keysize);
        &self.0[SLOT_HEADER..SLOT_HEADER + n]
    }
    pub(super) fn value(&self, keysize: usize) -> &[u8] {
        let start = SLOT_HEADER + keysize;
        let n = self.val_len().min(self.0.len() - start);
        &self.0[start..start + n]
    }
    pub(super) fn expired(&self, now: u64) -> bool {
        let e = get_u64(self.0, 8);
        e != 0 && e <= now
    }
    pub(super) fn write(&mut self, keysize: usize, key: &[u8], value: &[u8], expires: u64) {
        self.0[0] = USED;
        self.0[2..4].copy_from_slice(&(key.len() as u16).to_le_bytes());
        put_u32(self.0, 4, value.len() as u32);
        self.0[8..16].copy_from_slice(&expires.to_le_bytes());
        self.0[SLOT_HEADER..SLOT_HEADER + key.len()].copy_from_slice(key);
        let start = SLOT_HEADER + keysize;
        self.0[start..start + value.len()].copy_from_slice(value);
    }
    pub(super) fn prev(&self) -> u32 {
        get_u32(self.0, 16)
    }
    pub(super) fn next(&self) -> u32 {
        get_u32(self.0, 20)
    }
    pub(super) fn set_lru(&mut self, prev: u32, next: u32) {
        put_u32(self.0, 16, prev);
        put_u32(self.0, 20, next);
    }
    pub(super) fn chain(&self) -> u32 {
        get_u32(self.0, 24)
    }
    pub(super) fn set_chain(&mut self, next: u32) {
        put_u32(self.0, 24, next);
    }
}

/// The mapping while the mutex is held. Keys are found through buckets
/// (one chain of slots per hash bucket, as uWSGI's hash table); unused
/// slots form a free list; with `purge_lru` the used ones also form a list
/// from least to most recently used. Every walk is bounded by the number
/// of items, and every link read is checked, so a holder that died
/// mid-update cannot make one loop or step outside the mapping; the index
/// is then built again from the slots ([`Table::rebuild`]).
pub(super) struct Table<'a> {
    pub(super) bytes: &'a mut [u8],
    pub(super) items: usize,
    pub(super) buckets: usize,
    pub(super) slot_size: usize,
    pub(super) keysize: usize,
    pub(super) lru: bool,
}

impl Table<'_> {
    pub(super) fn slots_at(&self) -> usize {
        HEADER + self.buckets * 4
    }

    pub(super) fn slot(&mut self, i: usize) -> Slot<'_> {
        let at = self.slots_at() + i * self.slot_size;
        Slot(&mut self.bytes[at..at + self.slot_size])
    }

    pub(super) fn bucket_of(&self, key: &[u8]) -> usize {
        (fnv1a(key) % self.buckets as u64) as usize
    }

    pub(super) fn bucket(&self, b: usize) -> u32 {
        get_u32(self.bytes, HEADER + b * 4)
    }

    pub(super) fn set_bucket(&mut self, b: usize, v: u32) {
        put_u32(self.bytes, HEADER + b * 4, v);
    }

    /// A header counter, updated as an atomic: the master reads them for
    /// the stats without the mutex.
    pub(super) fn counter(&mut self, at: usize) -> &AtomicU64 {
        // SAFETY: `at` is an 8-aligned offset inside the header of a
        // page-aligned mapping; every access to these words is atomic.
        unsafe { AtomicU64::from_ptr(self.bytes.as_mut_ptr().add(at).cast()) }
    }

    /// An item was added (1), removed (-1), or all were (`None`: recount).
    pub(super) fn changed(&mut self, delta: Option<i64>, now: u64) {
        match delta {
            Some(1) => {
                self.counter(COUNT).fetch_add(1, Ordering::Relaxed);
            }
            Some(_) => {
                let _ =
                    self.counter(COUNT)
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                            Some(n.saturating_sub(1))
                        });
            }
            None => {
                let used = (0..self.items)
                    .filter(|&i| self.slot(i).state() == USED)
                    .count();
                self.counter(COUNT).store(used as u64, Ordering::Relaxed);
            }
        }
        self.counter(LAST_MODIFIED).store(now, Ordering::Relaxed);
    }

    pub(super) fn head_word(&self, at: usize) -> u32 {
        get_u32(self.bytes, at)
    }

    pub(super) fn set_head_word(&mut self, at: usize, v: u32) {
        put_u32(self.bytes, at, v);
    }

    /// A link read from the mapping: `None` for the end or anything that
    /// is not a slot number.
    pub(super) fn valid(&self, link: u32) -> Option<usize> {
        (link != NIL && (link as usize) < self.items).then_some(link as usize)
    }

    /// The slot holding `key`, dropping expired items of its chain.
    pub(super) fn find(&mut self, key: &[u8], now: u64) -> Option<usize> {
        let b = self.bucket_of(key);
        let mut prev: Option<usize> = None;
        let mut link = self.bucket(b);
        for _ in 0..self.items {
            let i = self.valid(link)?;
            let keysize = self.keysize;
            let (used, next, expired, same) = {
                let s = self.slot(i);
                let used = s.state() == USED;
                (used, s.chain(), s.expired(now), s.key(keysize) == key)
            };
            if !used {
                // Only a holder that died mid-update leaves this.
                return None;
            }
            if expired {
                self.unchain(b, prev, i, next);
                self.release(i);
                self.changed(Some(-1), now);
            } else if same {
                return Some(i);
            } else {
                prev = Some(i);
            }
            link = next;
        }
        None
    }

    pub(super) fn unchain(&mut self, b: usize, prev: Option<usize>, i: usize, next: u32) {
        match prev {
            Some(p) => self.slot(p).set_chain(next),
            None => self.set_bucket(b, next),
        }
        self.slot(i).set_chain(NIL);
    }

    /// Removes the item in slot `i` (which holds `key`).
    pub(super) fn remove(&mut self, i: usize) {
        let keysize = self.keysize;
        let key = self.slot(i).key(keysize).to_vec();
        let b = self.bucket_of(&key);
        let mut prev = None;
        let mut link = self.bucket(b);
        for _ in 0..self.items {
            let Some(j) = self.valid(link) else { break };
            let next = self.slot(j).chain();
            if j == i {
                self.unchain(b, prev, i, next);
                break;
            }
            prev = Some(j);
            link = next;
        }
        self.release(i);
        self.changed(Some(-1), now_secs());
    }

    /// Puts slot `i`, already out of its chain, on the free list.
    pub(super) fn release(&mut self, i: usize) {
        if self.lru {
            self.unlink(i);
        }
        let free = self.head_word(FREE_HEAD);
        let mut s = self.slot(i);
        s.0[0] = FREE;
        s.set_chain(free);
        self.set_head_word(FREE_HEAD, i as u32);
    }

    /// A free slot, off the free list (not in any chain yet).
    pub(super) fn take_free(&mut self) -> Option<usize> {
        let i = self.valid(self.head_word(FREE_HEAD))?;
        if self.slot(i).state() != FREE {
            return None;
        }
        let next_free = self.slot(i).chain();
        self.set_head_word(FREE_HEAD, next_free);
        self.slot(i).set_chain(NIL);
        Some(i)
    }

    /// Writes an item into slot `i`; a slot from [`Table::take_free`]
    /// (`fresh`) joins the key's chain. Either way it is now the most
    /// recently used.
    pub(super) fn put(&mut self, i: usize, fresh: bool, key: &[u8], value: &[u8], expires: u64) {
        let keysize = self.keysize;
        self.slot(i).write(keysize, key, value, expires);
        if fresh {
            let b = self.bucket_of(key);
            let first = self.bucket(b);
            self.slot(i).set_chain(first);
            self.set_bucket(b, i as u32);
            self.changed(Some(1), now_secs());
        }
        self.touch(i);
    }

    /// Takes slot `i` out of the LRU list (if it is in it).
    pub(super) fn unlink(&mut self, i: usize) {
        let (prev, next) = {
            let s = self.slot(i);
            (s.prev(), s.next())
        };
        let (head, tail) = (self.head_word(LRU_HEAD), self.head_word(LRU_TAIL));
        match self.valid(prev) {
            Some(p) => {
                let pp = self.slot(p).prev();
                self.slot(p).set_lru(pp, next);
            }
            None if head == i as u32 => self.set_head_word(LRU_HEAD, next),
            None => {}
        }
        match self.valid(next) {
            Some(n) => {
                let nn = self.slot(n).next();
                self.slot(n).set_lru(prev, nn);
            }
            None if tail == i as u32 => self.set_head_word(LRU_TAIL, prev),
            None => {}
        }
        self.slot(i).set_lru(NIL, NIL);
    }

    /// Marks slot `i` as the most recently used.
    pub(super) fn touch(&mut self, i: usize) {
        if !self.lru {
            return;
        }
        self.unlink(i);
        match self.valid(self.head_word(LRU_TAIL)) {
            Some(t) => {
                let tp = self.slot(t).prev();
                self.slot(t).set_lru(tp, i as u32);
                self.slot(i).set_lru(t as u32, NIL);
            }
            None => self.set_head_word(LRU_HEAD, i as u32),
        }
        self.set_head_word(LRU_TAIL, i as u32);
    }

    /// The least recently used item, if the list is sound.
    pub(super) fn lru_victim(&mut self) -> Option<usize> {
        let head = self.valid(self.head_word(LRU_HEAD))?;
        (self.slot(head).state() == USED).then_some(head)
    }

    /// Removes every expired item (a full cache, at most once a second:
    /// uWSGI's `sweep_on_full`).
    pub(super) fn sweep(&mut self, now: u64) {
        if get_u64(self.bytes, NEXT_SWEEP) > now {
            return;
        }
        self.bytes[NEXT_SWEEP..NEXT_SWEEP + 8].copy_from_slice(&(now + 1).to_le_bytes());
        for i in 0..self.items {
            let dead = {
                let s = self.slot(i);
                s.state() == USED && s.expired(now)
            };
            if dead {
                self.remove(i);
            }
        }
    }

    /// Builds the buckets, the free list and the LRU list from the slots
    /// (the LRU order is lost): for a fresh mapping, a store of an earlier
    /// instance, or after a holder of the mutex died.
    pub(super) fn rebuild(&mut self) {
        for b in 0..self.buckets {
            self.set_bucket(b, NIL);
        }
        for at in [FREE_HEAD, LRU_HEAD, LRU_TAIL] {
            self.set_head_word(at, NIL);
        }
        for i in (0..self.items).rev() {
            let used = self.slot(i).state() == USED;
            self.slot(i).set_lru(NIL, NIL);
            if used {
                let keysize = self.keysize;
                let key = self.slot(i).key(keysize).to_vec();
                let b = self.bucket_of(&key);
                let first = self.bucket(b);
                self.slot(i).set_chain(first);
                self.set_bucket(b, i as u32);
                self.touch(i);
            } else {
                self.release(i);
            }
        }
        self.changed(None, now_secs());
    }

    /// Empties the table.
    pub(super) fn clear(&mut self) {
        for i in 0..self.items {
            self.slot(i).0[0] = FREE;
        }
        self.rebuild();
    }
}
