//! Caches as `cache2` and the legacy `cache`/`cache-blocksize` describe
//! them (`core/cache.c` `uwsgi_cache_create`); `worker/cache.rs` makes and
//! serves them.

use std::path::PathBuf;

/// What `cache2` (or `cache`) asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSpec {
    /// The name (`default` for the legacy `cache` option).
    pub name: String,
    /// How many items it holds.
    pub items: usize,
    /// The largest value, in bytes.
    pub blocksize: usize,
    /// The longest key, in bytes.
    pub keysize: usize,
    /// `purge_lru`: a new key in a full cache evicts the least recently
    /// used item.
    pub purge_lru: bool,
    /// `clear_on_full`: a new key in a full cache empties it first.
    pub clear_on_full: bool,
    /// `ignore_full`: no log line when the cache is full.
    pub ignore_full: bool,
    /// `store`: the file the items live in, kept across restarts.
    pub store: Option<PathBuf>,
    /// `store_sync`: seconds between writes of the store to disk (0: the
    /// kernel decides).
    pub store_sync: u64,
    /// `store_delete`: a store made for another size is replaced rather
    /// than refused.
    pub store_delete: bool,
}

/// What goes into the caches at startup (uWSGI `uwsgi_cache_add_items`,
/// `uwsgi_cache_load_files`): `[CACHE ]KEY=VALUE` (`add-cache-item`) or
/// `[CACHE ]PATH` (`load-file-in-cache`, the path is the key and the
/// file's bytes the value). Without a cache name, every cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preload {
    /// `add-cache-item`.
    Item(String),
    /// `load-file-in-cache`.
    File(String),
}

impl Preload {
    /// The cache it names, if any, and the rest.
    pub fn target(&self) -> (Option<&str>, &str) {
        let v = match self {
            Preload::Item(v) | Preload::File(v) => v.as_str(),
        };
        match v.split_once(' ') {
            Some((cache, rest)) => (Some(cache), rest),
            None => (None, v),
        }
    }
}

/// The most items one cache may hold.
pub const MAX_ITEMS: usize = 1 << 20;
/// The largest value.
pub const MAX_BLOCKSIZE: usize = 16 << 20;

impl CacheSpec {
    fn new(name: String, items: usize, blocksize: usize) -> CacheSpec {
        CacheSpec {
            name,
            items,
            blocksize,
            keysize: 2048,
            purge_lru: false,
            clear_on_full: false,
            ignore_full: false,
            store: None,
            store_sync: 0,
            store_delete: false,
        }
    }

    /// `cache2 = name=NAME,items=N[,blocksize=B][,keysize=K][,…]` with
    /// uWSGI's keys (`core/cache.c` `uwsgi_cache_create`). `hash`,
    /// `hashsize`, `lastmod`, `lazy_expire` and `sweep_on_full` are
    /// accepted and change nothing: rwsgi's table has no separate hash
    /// table, and expired items are always dropped where a lookup meets
    /// them (so a full cache holds no expired item). Bitmap mode and the
    /// network keys are refused.
    pub fn keyed(v: &str) -> Result<CacheSpec, String> {
        let mut spec = CacheSpec::new(String::new(), 0, 65536);
        for item in v.split(',').filter(|i| !i.trim().is_empty()) {
            let (k, val) = item
                .split_once('=')
                .ok_or_else(|| format!("\"{item}\" is not key=value"))?;
            let val = val.trim();
            let n = || {
                super::value::parse_number(val).map(|n| usize::try_from(n).unwrap_or(usize::MAX))
            };
            let flag = super::value::parse_bool(val);
            match k.trim() {
                "name" => spec.name = val.to_owned(),
                "items" | "maxitems" | "max_items" | "max-items" => spec.items = n()?,
                "blocksize" => spec.blocksize = n()?,
                "keysize" | "key_size" => spec.keysize = n()?,
                "purge_lru" => spec.purge_lru = flag,
                "clear_on_full" => spec.clear_on_full = flag,
                "ignore_full" => spec.ignore_full = flag,
                "store" => spec.store = Some(PathBuf::from(val)),
                "store_sync" | "storesync" => spec.store_sync = n()? as u64,
                "store_delete" | "storedelete" => spec.store_delete = flag,
                "hash" | "hashsize" | "hash_size" | "lastmod" | "lazy_expire" | "sweep_on_full" => {
                }
                other @ ("bitmap" | "blocks") => {
                    return Err(format!(
                        "key \"{other}\" is not supported: rwsgi's caches hold one value of at most blocksize bytes per item"
                    ));
                }
                other @ ("node" | "nodes" | "sync" | "udp" | "udp_servers" | "udp_server"
                | "udpserver") => {
                    return Err(format!(
                        "key \"{other}\" is not supported: caches are not shared between instances (use Redis or memcached)"
                    ));
                }
                other => {
                    return Err(format!("key \"{other}\" is not a cache2 key"));
                }
            }
        }
        if spec.name.is_empty() {
            return Err("a cache needs a name".into());
        }
        spec.check()
    }

    /// The legacy `cache = N` with `cache-blocksize`.
    pub fn legacy(items: usize, blocksize: usize) -> Result<CacheSpec, String> {
        CacheSpec::new("default".into(), items, blocksize).check()
    }

    fn check(self) -> Result<CacheSpec, String> {
        if !(1..=MAX_ITEMS).contains(&self.items) {
            return Err(format!("items must be between 1 and {MAX_ITEMS}"));
        }
        if !(1..=MAX_BLOCKSIZE).contains(&self.blocksize) {
            return Err(format!("blocksize must be between 1 and {MAX_BLOCKSIZE}"));
        }
        if !(1..=u16::MAX as usize).contains(&self.keysize) {
            return Err("keysize must be between 1 and 65535".into());
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_as_cache2_writes_them() {
        let s = CacheSpec::keyed("name=mycache,items=100,blocksize=1024").unwrap();
        assert_eq!(
            (s.name.as_str(), s.items, s.blocksize, s.keysize),
            ("mycache", 100, 1024, 2048)
        );
        assert!(CacheSpec::keyed("items=10").is_err());
        assert!(CacheSpec::keyed("name=x,items=0").is_err());
        let s = CacheSpec::keyed(
            "name=x,items=10,purge_lru=1,ignore_full=true,store=/tmp/c,store_sync=5,storedelete=1,hash=murmur2",
        )
        .unwrap();
        assert!(s.purge_lru && s.ignore_full && s.store_delete && !s.clear_on_full);
        assert_eq!(
            (s.store.as_deref(), s.store_sync),
            (Some(std::path::Path::new("/tmp/c")), 5)
        );
        for refused in ["bitmap=1", "nodes=127.0.0.1:4000", "colour=blue"] {
            let err = CacheSpec::keyed(&format!("name=x,items=10,{refused}")).unwrap_err();
            assert!(err.contains(refused.split('=').next().unwrap()), "{err}");
        }
        assert_eq!(CacheSpec::legacy(10, 4096).unwrap().name, "default");
    }
}
