//! The study's state directory (`<study>/.studymake/`): build records, the output cache by key,
//! human-readable manifests, and atomic publication of outputs.
//!
//! Layout:
//! ```text
//! .studymake/state.log            append-only log of build records (bincode frames); replayed once
//! .studymake/manifests/<t>.json   one versioned JSON manifest per target, for people and `verify`
//! .studymake/cache/<key>/out      the output built for that key (file or directory)
//! .studymake/cache/<key>/manifest.json
//! .studymake/tmp/<job>/           private scratch of a running job; reclaimed at the next run
//! .studymake/lock                 the study lock (see `lock`)
//! ```
//!
//! **Why a log.** A no-op run must read the state of thousands of targets quickly, and a killed
//! run must lose at most the record being written. Each record is one frame
//! `[len u32][first 4 bytes of blake3(payload)][payload]`; replay stops at the first torn frame,
//! and the log is compacted (rewritten atomically) when it holds far more frames than targets.
//!
//! **Publishing** a built output: it is fsynced in its private directory, renamed into the cache
//! under its key, copied next to its final path and renamed over it (directories are swapped
//! atomically with `renameat2(RENAME_EXCHANGE)`), then the manifest is written, then the record is
//! appended. A kill at any point leaves either the previous good output or the new one in place,
//! and the cache holds the new one, so the next run restores instead of rebuilding.

mod cache;
mod fs;
mod log;
mod manifest;
mod publish;

pub use fs::{bare, confined, copy_tree, remove_path, stat, write_atomic, write_replacing};
pub use manifest::{file_entries, manifest_name, read_manifest, FileEntry, Identity, Manifest};

use crate::error::{Error, Result};
use crate::key::{digest_file, digest_listing, list_tree, Digest, KeyMaterial};
use fs::stat_from;
use log::Entry;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Version of the state log and manifest formats.
pub const STATE_SCHEMA: u32 = 2;

/// One output file as recorded: content digest plus the stat fields that let a no-op run skip
/// rehashing it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Path relative to the output (empty for a single-file output).
    pub rel: String,
    pub digest: Digest,
    pub size: u64,
    pub mtime_ns: i64,
    pub ino: u64,
}

/// What the store knows about a built target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub key: Digest,
    pub material: KeyMaterial,
    /// Digest of the whole output (file digest or directory listing digest).
    pub output: Digest,
    pub files: Vec<FileRecord>,
}

/// The last failure of a target.
#[derive(Clone, Debug)]
pub struct Failure {
    pub key: Digest,
    pub message: String,
}

/// The state directory of one study.
pub struct Store {
    pub out_dir: PathBuf,
    pub dir: PathBuf,
    records: HashMap<String, Record>,
    failures: HashMap<String, Failure>,
    frames: usize,
    /// Bytes of the log, and of the frame holding each live record: when superseded frames
    /// (a large report record rewritten by every change, say) outweigh the live ones, compact.
    log_bytes: u64,
    live_bytes: HashMap<String, u64>,
    log: Option<File>,
}

/// The entries of the state directory and whether each is a directory.
const STATE_ENTRIES: [(&str, bool); 5] = [
    ("manifests", true),
    ("cache", true),
    ("tmp", true),
    ("lock", false),
    ("state.log", false),
];

/// Check the state directory `dir` (`<out>/.studymake`) and its fixed entries without following
/// any link: a symbolic link there could make reclamation delete, or the lock overwrite, files
/// outside the study, so a link (or an entry of the wrong type) is refused naming it. Missing
/// entries are fine (they are created). Files are then opened with `O_NOFOLLOW`.
pub fn check_state_dir(dir: &Path) -> Result<()> {
    let entries = std::iter::once((dir.to_path_buf(), true))
        .chain(STATE_ENTRIES.iter().map(|(n, d)| (dir.join(n), *d)));
    for (path, want_dir) in entries {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(&path, e)),
        };
        let ft = meta.file_type();
        let message = if ft.is_symlink() {
            "is a symbolic link; studymake never follows links inside its state directory (it \
             could point outside the study). Remove it: studymake recreates it"
                .to_string()
        } else if want_dir && !ft.is_dir() {
            format!(
                "is {}, not a directory; studymake keeps its state there. Move it away \
                 (studymake recreates the directory)",
                crate::filetype::describe(ft)
            )
        } else if !want_dir && !ft.is_file() {
            format!(
                "is {}, not a regular file; studymake keeps its state there. Move it away \
                 (studymake recreates the file)",
                crate::filetype::describe(ft)
            )
        } else {
            continue;
        };
        return Err(Error::State { path, message });
    }
    Ok(())
}

impl Store {
    /// Open (creating) the state directory of a study and replay its log.
    pub fn open(out_dir: &Path) -> Result<Store> {
        let dir = out_dir.join(".studymake");
        check_state_dir(&dir)?;
        for sub in ["manifests", "cache", "tmp"] {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
        }
        let mut store = Store {
            out_dir: out_dir.to_path_buf(),
            dir,
            records: HashMap::new(),
            failures: HashMap::new(),
            frames: 0,
            log_bytes: 0,
            live_bytes: HashMap::new(),
            log: None,
        };
        store.replay()?;
        Ok(store)
    }

    /// A store with no records that writes nothing (for dry runs of a study never built).
    pub fn in_memory(out_dir: &Path) -> Store {
        Store {
            out_dir: out_dir.to_path_buf(),
            dir: out_dir.join(".studymake"),
            records: HashMap::new(),
            failures: HashMap::new(),
            frames: 0,
            log_bytes: 0,
            live_bytes: HashMap::new(),
            log: None,
        }
    }

    /// Open read-only if the study has state; `None` if it was never built.
    pub fn open_existing(out_dir: &Path) -> Result<Option<Store>> {
        if !out_dir.join(".studymake").is_dir() {
            return Ok(None);
        }
        Store::open(out_dir).map(Some)
    }

    /// The record of a target, if it was built.
    pub fn record(&self, target: &str) -> Option<&Record> {
        self.records.get(target)
    }

    /// The last failure of a target, if its last build failed.
    pub fn failure(&self, target: &str) -> Option<&Failure> {
        self.failures.get(target)
    }

    /// Note a failed build.
    pub fn record_failure(&mut self, target: &str, key: Digest, message: &str) -> Result<()> {
        self.append(Entry::Failed {
            target: target.to_string(),
            key,
            message: message.to_string(),
        })
    }

    /// Forget a target (after `clean`).
    pub fn forget(&mut self, target: &str) -> Result<()> {
        if self.records.contains_key(target) || self.failures.contains_key(target) {
            self.append(Entry::Forget {
                target: target.to_string(),
            })?;
        }
        let m = self.manifest_path(target);
        remove_path(&m)
    }

    /// A fresh private scratch directory for a job.
    pub fn scratch(&self, target: &str) -> Result<PathBuf> {
        let base = self.dir.join("tmp");
        let d = tempfile::Builder::new()
            .prefix(&format!("{}-", target.replace('/', "~")))
            .tempdir_in(&base)
            .map_err(|e| Error::io(&base, bare(e)))?;
        Ok(d.keep())
    }

    /// Remove scratch directories left by killed runs. Call only while holding the study lock.
    pub fn reclaim_scratch(&self) -> Result<usize> {
        let base = self.dir.join("tmp");
        let mut n = 0;
        if let Ok(entries) = std::fs::read_dir(&base) {
            for e in entries.flatten() {
                // A process of the killed run may still be finishing a write in there; retry,
                // and never fail a build over leftover scratch (its name is unique anyway).
                let p = e.path();
                let mut result = remove_path(&p);
                for _ in 0..20 {
                    if result.is_ok() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(25));
                    result = remove_path(&p);
                }
                match result {
                    Ok(()) => n += 1,
                    Err(err) => tracing::warn!("could not reclaim scratch: {err}"),
                }
            }
        }
        // Manifests and state files being written when a run was killed (cache entries are
        // staged in tmp/, cleared above).
        for dir in [self.dir.join("manifests"), self.dir.clone()] {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries.flatten() {
                    if e.file_name().as_encoded_bytes().starts_with(b".tmp-") {
                        let _ = remove_path(&e.path());
                    }
                }
            }
        }
        Ok(n)
    }

    /// Hash a built output (file or directory) and stat its files.
    pub fn hash_output(path: &Path) -> Result<(Digest, Vec<FileRecord>)> {
        let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            let files = list_tree(path)?;
            let records: Vec<FileRecord> = files
                .iter()
                .map(|rel| file_record(&path.join(rel), rel))
                .collect::<Result<_>>()?;
            let d = digest_listing(records.iter().map(|r| (r.rel.as_str(), &r.digest)));
            Ok((d, records))
        } else if meta.is_file() {
            let r = file_record(path, "")?;
            Ok((r.digest, vec![r]))
        } else {
            Err(Error::data(
                path,
                "an output must be a regular file or a directory",
            ))
        }
    }

    /// Check a published output against its record, using the stat cache: unchanged stat means
    /// unchanged bytes; a changed stat is rehashed. Returns `Ok(None)` when intact, or what differs.
    /// Updates stat fields in `record` when the bytes are unchanged.
    pub fn check_output(
        path: &Path,
        record: &mut Record,
        full: bool,
    ) -> Result<Option<OutputProblem>> {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Some(OutputProblem::Missing(path.to_path_buf())))
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        let is_dir = record.material.output == "dir";
        let mut updated = None;
        let problem = Self::check_files(path, &meta, is_dir, &record.files, &mut updated, full)?;
        if let Some(files) = updated {
            record.files = files;
        }
        Ok(problem)
    }

    /// [`Store::check_output`] on a record's file list alone, given the output's metadata (so a
    /// caller need not clone the record to check it, and a single-file output is not stat'ed
    /// twice). When the bytes are intact but some stat fields moved, `updated` receives the file
    /// list with the new stat fields.
    pub fn check_files(
        path: &Path,
        meta: &std::fs::Metadata,
        is_dir: bool,
        files: &[FileRecord],
        updated: &mut Option<Vec<FileRecord>>,
        full: bool,
    ) -> Result<Option<OutputProblem>> {
        if meta.is_dir() != is_dir || meta.file_type().is_symlink() {
            return Ok(Some(OutputProblem::Modified(path.to_path_buf())));
        }
        if is_dir {
            let listed = list_tree(path)?;
            let recorded: Vec<&str> = files.iter().map(|f| f.rel.as_str()).collect();
            if listed
                .iter()
                .map(String::as_str)
                .ne(recorded.iter().copied())
            {
                return Ok(Some(OutputProblem::Modified(path.to_path_buf())));
            }
        }
        for (n, f) in files.iter().enumerate() {
            let p = if f.rel.is_empty() {
                path.to_path_buf()
            } else {
                path.join(&f.rel)
            };
            let st = match stat_from(&p, f.rel.is_empty().then_some(meta)) {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(Some(OutputProblem::Missing(p)))
                }
                Err(e) => return Err(Error::io(&p, e)),
            };
            if !full && st == (f.size, f.mtime_ns, f.ino) {
                continue;
            }
            if st.0 != f.size || digest_file(&p)? != f.digest {
                return Ok(Some(OutputProblem::Modified(p)));
            }
            if st != (f.size, f.mtime_ns, f.ino) {
                let u = updated.get_or_insert_with(|| files.to_vec());
                (u[n].size, u[n].mtime_ns, u[n].ino) = st;
            }
        }
        Ok(None)
    }

    /// Update a record's stat fields (after a check that found the bytes unchanged).
    pub fn refresh(&mut self, target: &str, record: Record) -> Result<()> {
        if self.records.get(target) != Some(&record) {
            self.append(Entry::Built {
                target: target.to_string(),
                record,
            })?;
        }
        Ok(())
    }
}

fn file_record(path: &Path, rel: &str) -> Result<FileRecord> {
    let digest = digest_file(path)?;
    let (size, mtime_ns, ino) = stat(path).map_err(|e| Error::io(path, e))?;
    Ok(FileRecord {
        rel: rel.to_string(),
        digest,
        size,
        mtime_ns,
        ino,
    })
}

/// What is wrong with a published output.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputProblem {
    Missing(PathBuf),
    Modified(PathBuf),
}

#[cfg(test)]
mod tests;
