//! Shared test harness: a copy of a fixture study in a temp dir, and the real binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_studymake");

/// A fixture study copied into a fresh temp directory.
pub struct Study {
    pub dir: tempfile::TempDir,
    original: String,
}

/// One finished run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Assert success, showing the output otherwise.
    pub fn ok(&self) {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == "out" {
            continue;
        }
        let dst = to.join(&name);
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

impl Study {
    /// The default fixture, `fixtures/study`.
    pub fn new() -> Study {
        Study::from_fixture("study")
    }

    /// An empty directory; write its Studyfile with [`Study::write_studyfile`].
    pub fn empty() -> Study {
        Study {
            dir: tempfile::tempdir().unwrap(),
            original: String::new(),
        }
    }

    /// A fixture under `fixtures/NAME`.
    pub fn from_fixture(name: &str) -> Study {
        let dir = tempfile::tempdir().unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name);
        copy_dir(&src, dir.path());
        let original = std::fs::read_to_string(dir.path().join("Studyfile")).unwrap_or_default();
        Study { dir, original }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn original(&self) -> String {
        self.original.clone()
    }

    pub fn write_studyfile(&self, text: &str) {
        std::fs::write(self.path("Studyfile"), text).unwrap();
    }

    pub fn append(&self, text: &str) {
        let mut s = std::fs::read_to_string(self.path("Studyfile")).unwrap();
        s.push_str(text);
        self.write_studyfile(&s);
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(self.dir.path())
            .args(args)
            .env_remove("RUST_LOG");
        c
    }

    /// Run studymake in the study directory.
    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Start studymake without waiting.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// The targets a run's output says were built.
pub fn built(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once("] built ")?;
            Some(rest.split(':').next()?.trim().to_string())
        })
        .collect()
}

/// Whether an external dependency of a test is here. `check` says why not when it is not.
///
/// CI lists what it provides in `STUDYMAKE_REQUIRE` (comma-separated: `slurm`, `python`,
/// `fly001`, ...): a test whose listed dependency is missing fails, naming it and why, so a
/// broken CI machine cannot pass by skipping. Outside CI a missing dependency makes the test
/// print `SKIPPED` with the reason and return early.
pub fn available(dep: &str, check: impl FnOnce() -> Result<(), String>) -> bool {
    let Err(why) = check() else {
        return true;
    };
    let required = std::env::var("STUDYMAKE_REQUIRE").unwrap_or_default();
    if required.split(',').any(|r| r.trim() == dep) {
        panic!("{dep} is required (STUDYMAKE_REQUIRE={required}) but not available: {why}");
    }
    eprintln!("SKIPPED: {dep} is not available: {why}");
    false
}
