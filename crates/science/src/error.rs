//! The science's one error type: a file that is not what it should be, or numbers a routine
//! cannot accept. Each message is a complete sentence for the user; every I/O error names its path.
//!
//! The science knows nothing of targets, builds or locks: the study layer above it says which
//! target a failure belongs to.

use std::fmt;
use std::path::{Path, PathBuf};

/// Result with the science's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the science, named for what happened.
#[derive(Debug)]
pub enum Error {
    /// Reading or writing `path` failed.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A data file (probe, object, dataset, model, image) is not what was expected.
    Data { path: PathBuf, message: String },
    /// A numeric routine was called with arguments it cannot accept.
    Invalid(String),
}

impl Error {
    /// Wrap an I/O error with the path it happened on.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A data-file error naming the file.
    pub fn data(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Error::Data {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Data { path, message } => write!(f, "{}: {message}", path.display()),
            Error::Invalid(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_path() {
        let e = Error::io(
            "/x/y.npz",
            std::io::Error::new(std::io::ErrorKind::NotFound, "gone"),
        );
        assert_eq!(e.to_string(), "/x/y.npz: gone");
        assert_eq!(Error::data("/p.npy", "bad").to_string(), "/p.npy: bad");
    }
}
