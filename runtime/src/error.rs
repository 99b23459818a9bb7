//! The runtime's one error type. Every message is one self-contained line that names the
//! operation and the object it failed on; `main` prints it once.

use nix::errno::Errno;
use std::fmt::Display;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A wrong command line the parser could not catch (a bad signal name, a bad id).
    #[error("{0}")]
    Usage(String),
    /// config.json (or another input file) is malformed or asks for something invalid.
    #[error("{file}: {field}: {reason}")]
    InvalidSpec {
        file: String,
        field: String,
        reason: String,
    },
    #[error("container {id} does not exist")]
    NotFound { id: String },
    #[error("container {id} already exists")]
    Exists { id: String },
    #[error("cannot {verb} container {id}: it is {status}")]
    WrongStatus {
        id: String,
        status: String,
        verb: &'static str,
    },
    /// A syscall failed: crun's shape, "mount `proc` on `/proc`: EPERM: Operation not permitted".
    #[error("{op} `{object}`: {errno}")]
    Sys {
        op: String,
        object: String,
        errno: Errno,
    },
    #[error("{op} `{path}`: {source}")]
    Io {
        op: String,
        path: String,
        source: std::io::Error,
    },
    /// The container's init reported a failure over the sync socket.
    #[error("container init: {0}")]
    Init(String),
    #[error("{kind} hook `{path}`: {reason}")]
    Hook {
        kind: String,
        path: String,
        reason: String,
    },
    #[error("cgroup {op} `{path}`: {reason}")]
    Cgroup {
        op: String,
        path: String,
        reason: String,
    },
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn spec(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::InvalidSpec {
            file: "config.json".into(),
            field: field.into(),
            reason: reason.into(),
        }
    }
    pub fn sys(op: impl Into<String>, object: impl Display, errno: Errno) -> Error {
        Error::Sys {
            op: op.into(),
            object: object.to_string(),
            errno,
        }
    }
    pub fn io(op: impl Into<String>, path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            op: op.into(),
            path: path.display().to_string(),
            source,
        }
    }
}

/// `.ctx("mount", &target)`: attach the operation and the object to a bare errno or io error.
pub trait Context<T> {
    fn ctx(self, op: &str, object: impl Display) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, Errno> {
    fn ctx(self, op: &str, object: impl Display) -> Result<T> {
        self.map_err(|errno| Error::sys(op, object, errno))
    }
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn ctx(self, op: &str, object: impl Display) -> Result<T> {
        self.map_err(|source| Error::Io {
            op: op.into(),
            path: object.to_string(),
            source,
        })
    }
}
