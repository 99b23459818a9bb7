//! The crate's one error type: every variant renders as a single line naming the operation and the object.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while reading an archive or building a bundle.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem or read error, with the operation and the path it concerned.
    #[error("{op} `{}`: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The archive does not have the shape of any supported format.
    #[error("{0}")]
    Format(String),
    /// A blob's content does not match its descriptor (digest, size or DiffID).
    #[error("{what} `{name}`: {reason}")]
    Integrity {
        what: &'static str,
        name: String,
        reason: String,
    },
    /// A layer entry that would escape the rootfs or is otherwise malicious.
    #[error("layer {layer} entry `{entry}`: {reason}")]
    Hostile {
        layer: usize,
        entry: String,
        reason: String,
    },
    /// A layer entry that failed to apply for an ordinary reason.
    #[error("layer {layer} entry `{entry}`: {op}: {source}")]
    Apply {
        layer: usize,
        entry: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// Image selection failed (no image, several images, unknown name or platform).
    #[error("{0}")]
    Select(String),
    /// The image config cannot be turned into a runtime config.
    #[error("convert image config: {0}")]
    Convert(String),
    /// The command line asked for something that cannot be done.
    #[error("{0}")]
    Usage(String),
}

/// Crate-wide result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach an operation and a path to an `io::Error`.
pub(crate) trait IoCtx<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoCtx<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            op,
            path: path.into(),
            source,
        })
    }
}
