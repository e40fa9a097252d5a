//! `Modifier1` / `Modifier2` newtypes with named constants for the values
//! that matter to a WSGI server. Unknown values are kept as they are, so a
//! decoded header re-encodes to the same bytes.
//!
//! The table is uWSGI's (`reference/uwsgi-spec.md` §1.5): modifier1 selects
//! the request plugin; Python ignores modifier2.

use std::fmt;

/// The first modifier: which handler the packet is for.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Modifier1(pub u8);

/// The second modifier: a handler-specific sub-type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Modifier2(pub u8);

impl Modifier1 {
    /// A WSGI request (uWSGI's Python plugin).
    pub const WSGI: Modifier1 = Modifier1(0);
    /// A WSGI request for which `len(SCRIPT_NAME)` bytes are stripped from the
    /// front of `PATH_INFO` (the legacy nginx mount-point hack; uWSGI
    /// `plugins/python/wsgi_subhandler.c`).
    pub const WSGI_STRIP_SCRIPT_NAME: Modifier1 = Modifier1(30);
    /// Ping: a header-only packet answered by a pong.
    pub const PING: Modifier1 = Modifier1(100);
    /// Raise a uWSGI signal, its number in modifier2; answered with a bare
    /// RESPONSE header whose modifier2 is 1 (sent) or 0 (uWSGI's
    /// `plugins/signal/signal_plugin.c`).
    pub const SIGNAL: Modifier1 = Modifier1(110);
    /// The generic response modifier.
    pub const RESPONSE: Modifier1 = Modifier1(255);

    /// Whether this modifier asks for a WSGI request.
    pub const fn is_wsgi(self) -> bool {
        self.0 == Self::WSGI.0 || self.0 == Self::WSGI_STRIP_SCRIPT_NAME.0
    }

    /// The name of a known modifier, if any.
    pub const fn name(self) -> Option<&'static str> {
        match self.0 {
            0 => Some("wsgi"),
            30 => Some("wsgi-strip-script-name"),
            100 => Some("ping"),
            110 => Some("signal"),
            255 => Some("response"),
            _ => None,
        }
    }
}

impl fmt::Debug for Modifier1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "Modifier1({}: {name})", self.0),
            None => write!(f, "Modifier1({})", self.0),
        }
    }
}

impl fmt::Display for Modifier1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Modifier2 {
    /// modifier2 of a ping request.
    pub const PING: Modifier2 = Modifier2(0);
    /// modifier2 of the reply to a ping.
    pub const PONG: Modifier2 = Modifier2(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wsgi_modifiers() {
        assert!(Modifier1(0).is_wsgi());
        assert!(Modifier1(30).is_wsgi());
        assert!(!Modifier1(100).is_wsgi());
        assert!(!Modifier1(5).is_wsgi());
        assert_eq!(Modifier1::SIGNAL.name(), Some("signal"));
    }

    #[test]
    fn unknown_values_are_kept() {
        let m = Modifier1(77);
        assert_eq!(m.0, 77);
        assert_eq!(m.name(), None);
        assert_eq!(format!("{m:?}"), "Modifier1(77)");
        assert_eq!(format!("{:?}", Modifier1::PING), "Modifier1(100: ping)");
    }
}
