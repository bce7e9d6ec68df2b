//! Shared test harness: a copy of a fixture study in a temp dir, and the real binary.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_studymake");

/// A fixture study copied into a fresh temp directory.
pub struct Study {
    pub dir: tempfile::TempDir,
    /// The study directory: the temp dir itself, or `<tmp>/study` for [`Study::nested`].
    root: PathBuf,
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
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        Study {
            dir,
            root,
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
        let root = dir.path().to_path_buf();
        Study {
            dir,
            root,
            original,
        }
    }

    /// The default fixture in `<tmp>/study`, beside an empty `<tmp>/outside` ([`Study::outside`]):
    /// for reproductions that must show nothing outside the study is touched, without leaving
    /// the test's temp dir.
    pub fn nested() -> Study {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("study");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/study");
        copy_dir(&src, &root);
        std::fs::create_dir(dir.path().join("outside")).unwrap();
        let original = std::fs::read_to_string(root.join("Studyfile")).unwrap();
        Study {
            dir,
            root,
            original,
        }
    }

    /// `<tmp>/outside`: a directory beside the study (only for [`Study::nested`]).
    pub fn outside(&self) -> PathBuf {
        assert_ne!(
            self.root,
            self.dir.path(),
            "only a nested study has an outside"
        );
        self.dir.path().join("outside")
    }

    /// The study directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Edit one of the study's recipe scripts: replace `from` (which must occur) by `to`.
    pub fn edit_recipe(&self, recipe: &str, from: &str, to: &str) {
        let p = self.path("recipes").join(recipe);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(from), "{recipe} has no {from:?}");
        std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
    }

    /// A target's manifest, parsed.
    pub fn manifest(&self, target: &str) -> serde_json::Value {
        let p = self
            .path("out/.studymake/manifests")
            .join(format!("{}.json", target.replace('/', "~")));
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
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
        c.current_dir(&self.root).args(args).env_remove("RUST_LOG");
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

    /// Run studymake with an address-space limit (`RLIMIT_AS`, bytes) and a time limit: a run
    /// that would read or allocate without bound ends (exit code -1) instead of taking the
    /// machine's memory. A run killed at the time limit has `(killed after N s)` in its stderr.
    pub fn run_limited(&self, args: &[&str], timeout: Duration, max_memory: Option<u64>) -> Run {
        use std::io::Read;
        use std::os::unix::process::CommandExt;
        let mut c = self.command(args);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        if let Some(limit) = max_memory {
            // SAFETY: only setrlimit, async-signal-safe, between fork and exec.
            unsafe {
                c.pre_exec(move || {
                    let r = libc::rlimit {
                        rlim_cur: limit as libc::rlim_t,
                        rlim_max: limit as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_AS, &r) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = c.spawn().unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let out = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = out.read_to_end(&mut v);
            v
        });
        let err = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = err.read_to_end(&mut v);
            v
        });
        let t0 = Instant::now();
        let (status, killed) = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break (st, false);
            }
            if t0.elapsed() > timeout {
                let _ = child.kill();
                break (child.wait().unwrap(), true);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
        if killed {
            stderr.push_str(&format!("\n(killed after {} s)", timeout.as_secs()));
        }
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.join().unwrap()).into_owned(),
            stderr,
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

/// The python with numpy that `STUDYMAKE_PYTHON` names, if set; `None` (the test then returns)
/// when it is not, unless `STUDYMAKE_REQUIRE` lists `python`, when [`available`] panics. `what`
/// says what the test would do with it.
pub fn python(what: &str) -> Option<String> {
    let python = std::env::var("STUDYMAKE_PYTHON").unwrap_or_default();
    available("python", || {
        if python.is_empty() {
            Err(format!(
                "set STUDYMAKE_PYTHON to a python with numpy {what}"
            ))
        } else {
            Ok(())
        }
    })
    .then_some(python)
}

/// Everything under `path`, not following symbolic links: relative path -> the bytes of a file,
/// `<dir>` for a directory, `<symlink> TARGET` for a link, `<other>` for anything else. Two
/// equal snapshots mean nothing under `path` was created, removed or changed.
pub fn tree(path: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, p: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(meta) = std::fs::symlink_metadata(p) else {
            return;
        };
        let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = std::fs::read_link(p).unwrap();
            let v = format!("<symlink> {}", target.display()).into_bytes();
            out.insert(rel, v);
        } else if ft.is_dir() {
            out.insert(rel, b"<dir>".to_vec());
            for e in std::fs::read_dir(p).unwrap() {
                walk(base, &e.unwrap().path(), out);
            }
        } else if ft.is_file() {
            out.insert(rel, std::fs::read(p).unwrap());
        } else {
            out.insert(rel, b"<other>".to_vec());
        }
    }
    let mut out = BTreeMap::new();
    walk(path, path, &mut out);
    out
}

/// The regular files under `path` (not following links) whose bytes contain `needle`, as paths
/// relative to `path`.
pub fn files_containing(path: &Path, needle: &[u8]) -> Vec<String> {
    tree(path)
        .into_iter()
        .filter(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle))
        .map(|(rel, _)| rel)
        .collect()
}

/// Makes a directory immutable (`chattr +i`: no entry can be created, removed or renamed in it,
/// even by root) and undoes it when dropped. `None` where `chattr` does not work here.
pub struct Immutable(PathBuf);

impl Immutable {
    pub fn set(dir: &Path) -> Option<Immutable> {
        let ok = Command::new("chattr")
            .arg("+i")
            .arg(dir)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        // Check that it binds: some filesystems accept the flag and ignore it.
        let probe = dir.join(".immutable-probe");
        if ok && std::fs::write(&probe, b"x").is_ok() {
            let _ = std::fs::remove_file(&probe);
            drop(Immutable(dir.to_path_buf()));
            return None;
        }
        ok.then(|| Immutable(dir.to_path_buf()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}
