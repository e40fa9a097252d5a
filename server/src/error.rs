//! Typed errors, one enum per boundary. `Display` prints one level; the
//! logging boundary prints the `source()` chain.

use std::path::PathBuf;

use crate::config::sources::Origin;

/// A configuration error, naming the option and where it was given.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An option name nobody knows.
    #[error("{origin}: unknown option \"{name}\"{}", suggestion.map(|s| format!(" (did you mean \"{s}\"?)")).unwrap_or_default())]
    Unknown {
        /// The name as written.
        name: String,
        /// The closest known name.
        suggestion: Option<&'static str>,
        /// Where.
        origin: Origin,
    },
    /// A uWSGI option rwsgi refuses.
    #[error("{origin}: option \"{name}\" is not supported: {reason}")]
    Unsupported {
        /// The option.
        name: String,
        /// Why.
        reason: &'static str,
        /// Where.
        origin: Origin,
    },
    /// A value that does not parse.
    #[error("{origin}: invalid value \"{value}\" for option \"{name}\": {reason}")]
    Invalid {
        /// The option.
        name: String,
        /// The value.
        value: String,
        /// Why.
        reason: String,
        /// Where.
        origin: Origin,
    },
    /// Options that do not fit together (uWSGI's wording where it has one).
    #[error("{0}")]
    Rule(String),
    /// A config file that cannot be read.
    #[error("cannot read {}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Who caused a request to fail; decides the response, the log level and the
/// counter (in the spirit of pingora's `ErrorSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The peer sent something wrong.
    Client,
    /// The application failed.
    App,
    /// rwsgi itself (a worker died, the queue is full).
    Internal,
    /// The network.
    Io,
}
