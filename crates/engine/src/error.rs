//! The one error type of studymake: each variant's message is a sentence of the user's manual.
//!
//! Every I/O error carries its path. [`Error::exit_code`] maps each variant to the documented exit
//! codes: 1 when a build or audit failed, 2 for usage or input errors.

use std::fmt;
use std::path::{Path, PathBuf};

/// Result with studymake's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, named for what happened.
#[derive(Debug)]
pub enum Error {
    /// Reading or writing `path` failed.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A Studyfile (or other TOML) could not be read as a study: `file:line:col: message`.
    Studyfile {
        path: PathBuf,
        line: usize,
        col: usize,
        message: String,
    },
    /// The command line was wrong (unknown target, bad flag value).
    Usage(String),
    /// A data file (an input, or an output read back) is not what was expected.
    Data { path: PathBuf, message: String },
    /// A numeric routine was called with arguments it cannot accept.
    Invalid(String),
    /// A recipe named in the Studyfile or a job spec does not exist (yet).
    RecipeMissing { recipe: String, target: String },
    /// A worker built a target with different parameters than the ones declared: configuration
    /// leaked into the build. Nothing was published.
    Mismatch {
        target: String,
        param: String,
        declared: String,
        built: String,
    },
    /// A recipe failed while building a target.
    Build { target: String, message: String },
    /// One or more targets failed; details were printed as they happened.
    BuildFailed { failed: usize, skipped: usize },
    /// Another studymake process holds the study's lock.
    Locked { path: PathBuf, holder: String },
    /// `verify` found problems (already printed).
    AuditFailed { problems: usize },
    /// The study's state directory is unreadable or from an incompatible version.
    State { path: PathBuf, message: String },
    /// A Slurm command (`sbatch`, `squeue`, `scancel`, ...) failed: its command line and stderr.
    Slurm { command: String, message: String },
    /// Anything else, with its own complete sentence.
    Other(String),
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

    /// The process exit code for this error: 1 for failed builds and audits, 2 for usage and input.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Mismatch { .. }
            | Error::Build { .. }
            | Error::BuildFailed { .. }
            | Error::AuditFailed { .. } => 1,
            _ => 2,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Studyfile {
                path,
                line,
                col,
                message,
            } => write!(f, "{}:{line}:{col}: {message}", path.display()),
            Error::Usage(m) => write!(f, "{m}"),
            Error::Data { path, message } => write!(f, "{}: {message}", path.display()),
            Error::Invalid(m) => write!(f, "{m}"),
            Error::RecipeMissing { recipe, target } => write!(
                f,
                "{target}: recipe `{recipe}` is not available in this build of studymake \
                 (see `studymake recipes` for the ones that are)"
            ),
            Error::Mismatch {
                target,
                param,
                declared,
                built,
            } => write!(
                f,
                "{target}: built with {param} {built}, declared {param} {declared}; \
                 refusing to publish (configuration leaked into this build)"
            ),
            Error::Build { target, message } => write!(f, "{target}: {message}"),
            Error::BuildFailed { failed, skipped } => write!(
                f,
                "build failed: {failed} target{} failed, {skipped} skipped",
                if *failed == 1 { "" } else { "s" }
            ),
            Error::Locked { path, holder } => write!(
                f,
                "the study is being built by another studymake ({holder}; lock {}); \
                 wait for it with --wait",
                path.display()
            ),
            Error::AuditFailed { problems } => write!(
                f,
                "verify failed: {problems} problem{}",
                if *problems == 1 { "" } else { "s" }
            ),
            Error::State { path, message } => write!(f, "{}: {message}", path.display()),
            Error::Slurm { command, message } => {
                write!(f, "Slurm command `{command}` failed: {message}")
            }
            Error::Other(m) => write!(f, "{m}"),
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
    fn messages_name_the_path_and_codes_follow_the_manual() {
        let e = Error::io(
            "/x/y.npz",
            std::io::Error::new(std::io::ErrorKind::NotFound, "gone"),
        );
        assert_eq!(e.to_string(), "/x/y.npz: gone");
        assert_eq!(e.exit_code(), 2);
        let m = Error::Mismatch {
            target: "l2_a/fit".into(),
            param: "level".into(),
            declared: "2".into(),
            built: "1".into(),
        };
        assert!(m
            .to_string()
            .starts_with("l2_a/fit: built with level 1, declared level 2"));
        assert_eq!(m.exit_code(), 1);
    }
}
