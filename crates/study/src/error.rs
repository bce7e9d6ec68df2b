//! The study layer's error: an engine error (a job spec without a parameter, a build refused) or a
//! science error (a file that is not what it should be, numbers a routine cannot accept). Its
//! message is the layer's own; the worker hands it to the engine as the engine's error.

use std::fmt;

/// Result with the study layer's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while the study's recipes run.
#[derive(Debug)]
pub enum Error {
    /// A recipe failed while building `target`; the message says why.
    Build { target: String, message: String },
    /// From the engine's side of the contract (the job spec, a refused build).
    Engine(studymake_engine::Error),
    /// From the science (io, numerics, physics, evaluation).
    Science(studymake_science::Error),
}

impl Error {
    /// Reading or writing `path` failed.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Science(studymake_science::Error::io(path, source))
    }

    /// A science error as a failure of `target`: numbers the science cannot accept become a
    /// build error of the target; a file error keeps its path.
    pub fn in_target(target: &str, e: studymake_science::Error) -> Self {
        match e {
            studymake_science::Error::Invalid(message) => Error::Build {
                target: target.to_string(),
                message,
            },
            other => Error::Science(other),
        }
    }

    /// A data file is not what was expected.
    pub fn data(path: impl AsRef<std::path::Path>, message: impl Into<String>) -> Self {
        Error::Science(studymake_science::Error::data(path, message))
    }
}

impl From<studymake_engine::Error> for Error {
    fn from(e: studymake_engine::Error) -> Self {
        Error::Engine(e)
    }
}

impl From<studymake_science::Error> for Error {
    fn from(e: studymake_science::Error) -> Self {
        Error::Science(e)
    }
}

/// The engine sees every failure of a recipe as its own error: a science error keeps its
/// message (and its path), and its exit code is the engine's for input errors.
impl From<Error> for studymake_engine::Error {
    fn from(e: Error) -> Self {
        use studymake_science::Error as S;
        match e {
            Error::Build { target, message } => studymake_engine::Error::Build { target, message },
            Error::Engine(e) => e,
            Error::Science(S::Io { path, source }) => studymake_engine::Error::Io { path, source },
            Error::Science(S::Data { path, message }) => {
                studymake_engine::Error::Data { path, message }
            }
            Error::Science(S::Invalid(m)) => studymake_engine::Error::Other(m),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Build { target, message } => write!(f, "{target}: {message}"),
            Error::Engine(e) => e.fmt(f),
            Error::Science(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Build { .. } => None,
            Error::Engine(e) => Some(e),
            Error::Science(e) => Some(e),
        }
    }
}
