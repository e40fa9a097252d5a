//! Caches as `cache2` and the legacy `cache`/`cache-blocksize` describe
//! them (`core/cache.c` `uwsgi_cache_create`); `worker/cache.rs` makes and
//! serves them.

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
}

/// The most items one cache may hold.
pub const MAX_ITEMS: usize = 1 << 20;
/// The largest value.
pub const MAX_BLOCKSIZE: usize = 16 << 20;

impl CacheSpec {
    /// `cache2 = name=NAME,items=N[,blocksize=B][,keysize=K]`.
    pub fn keyed(v: &str) -> Result<CacheSpec, String> {
        let mut spec = CacheSpec {
            name: String::new(),
            items: 0,
            blocksize: 65536,
            keysize: 2048,
        };
        for item in v.split(',').filter(|i| !i.trim().is_empty()) {
            let (k, val) = item
                .split_once('=')
                .ok_or_else(|| format!("\"{item}\" is not key=value"))?;
            let n = || {
                super::value::parse_number(val.trim())
                    .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
            };
            match k.trim() {
                "name" => spec.name = val.trim().to_owned(),
                "items" | "maxitems" | "max_items" => spec.items = n()?,
                "blocksize" => spec.blocksize = n()?,
                "keysize" => spec.keysize = n()?,
                other => {
                    return Err(format!(
                        "key \"{other}\" is not supported (rwsgi's caches take name, items, blocksize, keysize)"
                    ));
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
        CacheSpec {
            name: "default".into(),
            items,
            blocksize,
            keysize: 2048,
        }
        .check()
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
        assert!(
            CacheSpec::keyed("name=x,items=10,purge_lru=1")
                .unwrap_err()
                .contains("purge_lru")
        );
        assert_eq!(CacheSpec::legacy(10, 4096).unwrap().name, "default");
    }
}
