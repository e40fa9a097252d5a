//! Limits checked before any parsing: pure data.
//!
//! uWSGI's default `buffer-size` is 4096 and nginx's own maximum vars block is
//! 65535 (`reference/uwsgi-spec.md` §1.4, §2.3). rwsgi defaults to 65535, so
//! big cookies do not turn into 502s; `--buffer-size 4096` restores uWSGI's
//! limit.

/// The limits a decoder enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest vars block accepted, in bytes (`buffer-size`).
    pub max_block: u16,
    /// The largest number of key/value pairs accepted in one vars block.
    pub max_vars: u16,
}

impl Limits {
    /// rwsgi's defaults: nginx's maximum block size and 1024 pairs.
    ///
    /// uWSGI accepts about 128 pairs (`max-vars` 64 sizes an iovec array of
    /// 261 slots, two per pair). A request through nginx carries 14 params
    /// plus one var per header, so 1024 leaves room for header-heavy clients
    /// while still bounding the work per packet.
    pub const DEFAULT: Limits = Limits {
        max_block: u16::MAX,
        max_vars: 1024,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
