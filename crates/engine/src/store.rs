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

use crate::error::{Error, Result};
use crate::key::{digest_file, digest_listing, list_tree, Digest, KeyMaterial};
use crate::params::Params;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Version of the state log and manifest formats.
pub const STATE_SCHEMA: u32 = 1;

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

/// One frame of the state log.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Entry {
    Built {
        target: String,
        record: Record,
    },
    Failed {
        target: String,
        key: Digest,
        message: String,
    },
    Forget {
        target: String,
    },
}

/// Room allocated at the end of the state log for one frame (see [`Store::reserve`]).
struct Reserved {
    offset: u64,
    bytes: Vec<u8>,
    entry: Entry,
}

/// The last failure of a target.
#[derive(Clone, Debug)]
pub struct Failure {
    pub key: Digest,
    pub message: String,
}

/// The per-target manifest: versioned, human-readable JSON.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: u32,
    pub studymake: String,
    pub target: String,
    pub kind: String,
    #[serde(default)]
    pub condition: Option<String>,
    pub key: Digest,
    /// Everything the key was computed from.
    pub material: KeyMaterial,
    /// Where each input came from: a target name or a source file path.
    pub input_sources: BTreeMap<String, String>,
    /// The parameters the worker reported it used.
    pub reported: Params,
    /// Structural facts read back from the output's content.
    pub inspected: Params,
    /// Output path relative to the study directory.
    pub output_path: String,
    pub output_digest: Digest,
    /// Relative file path -> (digest, size).
    pub files: BTreeMap<String, FileEntry>,
    /// Unix seconds when the build started, and how long it took.
    pub started_unix: u64,
    pub seconds: f64,
}

/// One file in a manifest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    pub digest: Digest,
    pub size: u64,
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

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
}

/// Stat fields of a path (size, mtime in ns, inode).
pub fn stat(path: &Path) -> std::io::Result<(u64, i64, u64)> {
    let m = std::fs::symlink_metadata(path)?;
    Ok((m.len(), m.mtime() * 1_000_000_000 + m.mtime_nsec(), m.ino()))
}

/// [`stat`], taking the fields from `meta` when the caller already has the path's metadata.
fn stat_from(path: &Path, meta: Option<&std::fs::Metadata>) -> std::io::Result<(u64, i64, u64)> {
    match meta {
        Some(m) => Ok((m.len(), m.mtime() * 1_000_000_000 + m.mtime_nsec(), m.ino())),
        None => stat(path),
    }
}

/// Write a file atomically: temp file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    write_replacing(path, bytes, true, dir)
}

/// Write a file atomically (a temp file in `tmp_dir`, which must be on the same filesystem, then
/// a rename), with or without an fsync of its bytes first. Without one, a crash of the process still leaves the old or the new file,
/// never a torn one; only a power loss can leave it short, which is acceptable for files that are
/// read back with checks (manifests: the state log is the authority and outputs are verified by
/// digest).
pub fn write_replacing(path: &Path, bytes: &[u8], durable: bool, tmp_dir: &Path) -> Result<()> {
    write_staged(path, bytes, durable, tmp_dir)?
        .persist(path)
        .map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Write a file's new bytes into a temp file in `tmp_dir` without putting them in place yet:
/// [`tempfile::NamedTempFile::persist`] to `path` publishes them; dropping it discards them.
fn write_staged(
    path: &Path,
    bytes: &[u8],
    durable: bool,
    tmp_dir: &Path,
) -> Result<tempfile::NamedTempFile> {
    let dir = tmp_dir;
    let mut tmp = match tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            tempfile::Builder::new()
                .prefix(".tmp-")
                .tempfile_in(dir)
                .map_err(|e| Error::io(dir, e))?
        }
        Err(e) => return Err(Error::io(dir, e)),
    };
    // Errors name the file being written, not its temporary name.
    tmp.as_file_mut()
        .write_all(bytes)
        .and_then(|()| {
            if durable {
                tmp.as_file().sync_all()
            } else {
                Ok(())
            }
        })
        .map_err(|e| Error::io(path, e))?;
    Ok(tmp)
}

/// fsync the regular files under a path (or the file itself): the bytes an output's record
/// vouches for. Directory entries are not synced one by one: a lost rename after a power loss
/// shows as a missing or different output, which the next run detects by stat and digest.
fn sync_files(path: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        for rel in list_tree(path)? {
            let p = path.join(rel);
            File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(&p, e))?;
        }
        Ok(())
    } else {
        File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(path, e))
    }
}

/// Copy a file or directory tree (regular files only).
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(from).map_err(|e| Error::io(from, e))?;
    if meta.is_dir() {
        std::fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
        for rel in list_tree(from)? {
            let dst = to.join(&rel);
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            }
            std::fs::copy(from.join(&rel), &dst).map_err(|e| Error::io(&dst, e))?;
        }
    } else {
        std::fs::copy(from, to).map_err(|e| Error::io(to, e))?;
    }
    Ok(())
}

/// Remove a file or directory if it exists, never following a symlink out.
pub fn remove_path(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).map_err(|e| Error::io(path, e)),
        Ok(_) => std::fs::remove_file(path).map_err(|e| Error::io(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Atomically replace `dst` with `src` (same filesystem). Directories are exchanged with
/// `renameat2(RENAME_EXCHANGE)` and the old one removed, so `dst` never goes missing.
fn replace(src: &Path, dst: &Path) -> Result<()> {
    let src_dir = std::fs::symlink_metadata(src)
        .map_err(|e| Error::io(src, e))?
        .is_dir();
    let dst_meta = std::fs::symlink_metadata(dst).ok();
    match dst_meta {
        Some(m) if src_dir || m.is_dir() => {
            if crate::sys::exchange(src, dst).is_ok() {
                // `src` now holds the old output.
                return remove_path(src);
            }
            // Fallback: move the old one aside first.
            let aside = dst.with_file_name(format!(
                ".{}.old-{}",
                dst.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
                std::process::id()
            ));
            std::fs::rename(dst, &aside).map_err(|e| Error::io(dst, e))?;
            std::fs::rename(src, dst).map_err(|e| Error::io(dst, e))?;
            remove_path(&aside)
        }
        _ => std::fs::rename(src, dst).map_err(|e| Error::io(dst, e)),
    }
}

/// A file name for a target's manifest (`l1_a/fit` -> `l1_a~fit.json`).
pub fn manifest_name(target: &str) -> String {
    format!("{}.json", target.replace('/', "~"))
}

impl Store {
    /// Open (creating) the state directory of a study and replay its log.
    pub fn open(out_dir: &Path) -> Result<Store> {
        let dir = out_dir.join(".studymake");
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

    fn log_path(&self) -> PathBuf {
        self.dir.join("state.log")
    }

    fn replay(&mut self) -> Result<()> {
        let path = self.log_path();
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes).map_err(|e| Error::io(&path, e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(&path, e)),
        }
        let mut pos = 0;
        let mut torn = false;
        let header = format!("studymake state v{STATE_SCHEMA}\n");
        if bytes.starts_with(header.as_bytes()) {
            pos = header.len();
        } else if !bytes.is_empty() {
            return Err(Error::State {
                path,
                message: format!(
                    "not a studymake v{STATE_SCHEMA} state log; remove `.studymake` (or run \
                     `studymake clean --cache`) to start afresh"
                ),
            });
        }
        while pos < bytes.len() {
            if pos + 8 > bytes.len() {
                torn = true;
                break;
            }
            let len =
                u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap_or_default()) as usize;
            let sum = &bytes[pos + 4..pos + 8];
            let Some(payload) = bytes.get(pos + 8..pos + 8 + len) else {
                torn = true;
                break;
            };
            if &blake3::hash(payload).as_bytes()[..4] != sum {
                torn = true;
                break;
            }
            let Ok((entry, _)) =
                bincode::serde::decode_from_slice::<Entry, _>(payload, bincode_config())
            else {
                torn = true;
                break;
            };
            self.apply(entry, 8 + len as u64);
            self.frames += 1;
            pos += 8 + len;
        }
        self.log_bytes = pos as u64;
        if torn {
            tracing::warn!("state log has a torn tail (an interrupted write); compacting");
            self.compact()?;
        }
        Ok(())
    }

    fn apply(&mut self, entry: Entry, frame_bytes: u64) {
        match entry {
            Entry::Built { target, record } => {
                self.failures.remove(&target);
                self.live_bytes.insert(target.clone(), frame_bytes);
                self.records.insert(target, record);
            }
            Entry::Failed {
                target,
                key,
                message,
            } => {
                self.failures.insert(target, Failure { key, message });
            }
            Entry::Forget { target } => {
                self.live_bytes.remove(&target);
                self.records.remove(&target);
                self.failures.remove(&target);
            }
        }
    }

    fn frame(entry: &Entry) -> Vec<u8> {
        let payload =
            bincode::serde::encode_to_vec(entry, bincode_config()).expect("entries always encode");
        let mut out = Vec::with_capacity(payload.len() + 8);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&blake3::hash(&payload).as_bytes()[..4]);
        out.extend_from_slice(&payload);
        out
    }

    fn append(&mut self, entry: Entry) -> Result<()> {
        let path = self.log_path();
        self.open_log()?;
        let bytes = Self::frame(&entry);
        if let Some(f) = self.log.as_mut() {
            // A write that fails part-way (disk full, file size limit) must not leave a torn
            // frame that later frames would follow: replay stops at the first torn frame and
            // would drop them. Cut the log back to where the frame started.
            let start = f.metadata().map(|m| m.len());
            if let Err(e) = f.write_all(&bytes) {
                if let Ok(start) = start {
                    let _ = f.set_len(start);
                }
                self.log = None;
                return Err(Error::io(&path, e));
            }
        }
        self.log_bytes += bytes.len() as u64;
        self.apply(entry, bytes.len() as u64);
        self.frames += 1;
        Ok(())
    }

    /// Allocate room at the end of the log for `entry`'s frame, so that writing it later cannot
    /// fail for want of space or by the file size limit. The room reads as a torn tail (zeros)
    /// until [`Store::commit`] fills it; [`Store::release`] gives it back.
    fn reserve(&mut self, entry: Entry) -> Result<Reserved> {
        let path = self.log_path();
        self.open_log()?;
        let bytes = Self::frame(&entry);
        let Some(f) = self.log.as_mut() else {
            return Err(Error::Other("internal: the state log is not open".into()));
        };
        let offset = f.metadata().map_err(|e| Error::io(&path, e))?.len();
        if let Err(e) = crate::sys::allocate(f, offset, bytes.len() as u64) {
            let _ = f.set_len(offset);
            return Err(Error::io(&path, e));
        }
        Ok(Reserved {
            offset,
            bytes,
            entry,
        })
    }

    /// Write a reserved frame into its room.
    fn commit(&mut self, r: Reserved) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let path = self.log_path();
        // A second handle without O_APPEND, so the write lands at the reserved offset.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.write_all_at(&r.bytes, r.offset))
            .map_err(|e| Error::io(&path, e))?;
        self.log_bytes = self.log_bytes.max(r.offset) + r.bytes.len() as u64;
        self.apply(r.entry, r.bytes.len() as u64);
        self.frames += 1;
        Ok(())
    }

    /// Give back a reservation that will not be committed.
    fn release(&mut self, r: Reserved) {
        if let Some(f) = self.log.as_mut() {
            let _ = f.set_len(r.offset);
        }
    }

    fn open_log(&mut self) -> Result<()> {
        let path = self.log_path();
        if self.log.is_none() {
            let exists = path.exists();
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?;
            if !exists {
                f.write_all(format!("studymake state v{STATE_SCHEMA}\n").as_bytes())
                    .map_err(|e| Error::io(&path, e))?;
            }
            self.log = Some(f);
        }
        Ok(())
    }

    /// Rewrite the log with one frame per live record.
    pub fn compact(&mut self) -> Result<()> {
        let mut bytes = format!("studymake state v{STATE_SCHEMA}\n").into_bytes();
        let mut names: Vec<&String> = self.records.keys().collect();
        names.sort();
        for name in &names {
            bytes.extend(Self::frame(&Entry::Built {
                target: (*name).clone(),
                record: self.records[*name].clone(),
            }));
        }
        let mut fails: Vec<(&String, &Failure)> = self.failures.iter().collect();
        fails.sort_by_key(|(n, _)| *n);
        for (name, f) in fails {
            bytes.extend(Self::frame(&Entry::Failed {
                target: name.clone(),
                key: f.key,
                message: f.message.clone(),
            }));
        }
        self.log = None;
        write_atomic(&self.log_path(), &bytes)?;
        self.frames = self.records.len() + self.failures.len();
        self.log_bytes = bytes.len() as u64;
        Ok(())
    }

    /// Compact if the log has grown well beyond the live records; flush to disk.
    pub fn finish(&mut self) -> Result<()> {
        let live: u64 = self.live_bytes.values().sum();
        if self.frames > 2 * (self.records.len() + self.failures.len()) + 64
            || self.log_bytes > 2 * live + (1 << 20)
        {
            self.compact()?;
        } else if let Some(f) = self.log.as_mut() {
            f.sync_data()
                .map_err(|e| Error::io(self.dir.join("state.log"), e))?;
        }
        Ok(())
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

    /// Path of a target's manifest.
    pub fn manifest_path(&self, target: &str) -> PathBuf {
        self.dir.join("manifests").join(manifest_name(target))
    }

    /// Read a target's manifest, if any.
    pub fn manifest(&self, target: &str) -> Result<Option<Manifest>> {
        read_manifest(&self.manifest_path(target))
    }

    fn cache_dir(&self, key: &Digest) -> PathBuf {
        self.dir.join("cache").join(key.hex())
    }

    /// Whether the cache holds an output for a key.
    pub fn cached(&self, key: &Digest) -> bool {
        self.cache_dir(key).join("manifest.json").is_file()
    }

    /// A fresh private scratch directory for a job.
    pub fn scratch(&self, target: &str) -> Result<PathBuf> {
        let base = self.dir.join("tmp");
        let d = tempfile::Builder::new()
            .prefix(&format!("{}-", target.replace('/', "~")))
            .tempdir_in(&base)
            .map_err(|e| Error::io(&base, e))?;
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

    /// Publish a freshly built output: its bytes are synced where the worker wrote them, a copy
    /// goes into the cache under its key, the output itself is renamed into place, then the
    /// manifest and the record. `built` is the worker's output path inside its scratch dir (on
    /// the study's filesystem, so the rename is atomic).
    ///
    /// The cache copy is not synced: a cache entry is checked against its manifest's digest
    /// before every use and dropped when damaged, so a power loss can cost a rebuild, never a
    /// wrong output.
    pub fn publish(&mut self, built: &Path, dest: &Path, manifest: &Manifest) -> Result<Record> {
        sync_files(built)?;
        let cache = self.cache_dir(&manifest.key);
        let staging = self.dir.join("tmp").join(format!(
            "cache-{}-{}",
            manifest.key.hex(),
            std::process::id()
        ));
        remove_path(&staging)?;
        let staged = (|| {
            std::fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
            copy_tree(built, &staging.join("out"))?;
            write_replacing(
                &staging.join("manifest.json"),
                serde_json::to_string_pretty(manifest)
                    .expect("manifests serialise")
                    .as_bytes(),
                false,
                &staging,
            )?;
            remove_path(&cache)?;
            std::fs::rename(&staging, &cache).map_err(|e| Error::io(&cache, e))
        })();
        if let Err(e) = staged {
            // A failed write (disk full, read-only, file size limit) leaves no half entry.
            let _ = remove_path(&staging);
            return Err(e);
        }
        self.put_in_place(built, dest, manifest)
    }

    /// Restore the output of `key` from the cache into `dest`, after checking its bytes.
    /// Returns `Ok(None)` when the cache has no intact entry for the key.
    pub fn restore(&mut self, key: &Digest, dest: &Path, target: &str) -> Result<Option<Record>> {
        let cache = self.cache_dir(key);
        let mut manifest = match read_manifest(&cache.join("manifest.json")) {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(None),
            Err(e) => {
                tracing::warn!(
                    "cache entry {} is unreadable ({e}); dropping it",
                    key.short()
                );
                remove_path(&cache)?;
                return Ok(None);
            }
        };
        let (digest, _) = Self::hash_output(&cache.join("out"))?;
        if digest != manifest.output_digest || manifest.key != *key {
            tracing::warn!("cache entry {} is damaged; dropping it", key.short());
            remove_path(&cache)?;
            return Ok(None);
        }
        manifest.target = target.to_string();
        self.install(&cache, dest, &manifest).map(Some)
    }

    /// Copy a cache entry's output into place (synced: the copy is new bytes the record will
    /// vouch for), then record it.
    fn install(&mut self, cache: &Path, dest: &Path, manifest: &Manifest) -> Result<Record> {
        // Staged in the state's scratch (same filesystem), which the next run reclaims if this
        // one is killed, never beside the output.
        let tmp = self.dir.join("tmp").join(format!(
            "restore-{}-{}",
            manifest.target.replace('/', "~"),
            std::process::id()
        ));
        remove_path(&tmp)?;
        let copied = copy_tree(&cache.join("out"), &tmp).and_then(|()| sync_files(&tmp));
        let result = copied.and_then(|()| self.put_in_place(&tmp, dest, manifest));
        if result.is_err() {
            let _ = remove_path(&tmp);
        }
        result
    }

    /// Swap a complete, synced output (`ready`, on the study's filesystem) in at `dest`, with its
    /// manifest and record. Every step that needs space (the manifest, room in the log for the
    /// record) happens before the swap, so a failed write leaves the previous output, manifest
    /// and record as they were. After the swap, the manifest is renamed into place and the record
    /// written into its room (the log is synced when the build ends); a kill before the record
    /// leaves the old record, and the next run restores the new output from the cache.
    fn put_in_place(&mut self, ready: &Path, dest: &Path, manifest: &Manifest) -> Result<Record> {
        let parent = dest.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        let manifest_path = self.manifest_path(&manifest.target);
        // Renames keep inode, size and mtime, so the stat of `ready` is the stat of `dest`.
        let (digest, files) = Self::hash_output_trusting(ready, manifest)?;
        // Staged in the manifests directory itself, so that a directory that cannot take it
        // (read-only, full) fails the target before the swap, not after.
        let manifest_tmp = write_staged(
            &manifest_path,
            serde_json::to_string_pretty(manifest)
                .expect("manifests serialise")
                .as_bytes(),
            false,
            manifest_path.parent().unwrap_or(&self.dir),
        )?;
        let record = Record {
            key: manifest.key,
            material: manifest.material.clone(),
            output: digest,
            files,
        };
        let reserved = self.reserve(Entry::Built {
            target: manifest.target.clone(),
            record: record.clone(),
        })?;
        if let Err(e) = replace(ready, dest) {
            self.release(reserved);
            return Err(e);
        }
        if let Err(e) = manifest_tmp.persist(&manifest_path) {
            self.release(reserved);
            return Err(Error::io(&manifest_path, e.error));
        }
        self.commit(reserved)?;
        Ok(record)
    }

    /// Stat a just-installed output, taking digests from the manifest (the bytes were just copied
    /// from a checked source, so rehashing them would only cost time).
    fn hash_output_trusting(dest: &Path, manifest: &Manifest) -> Result<(Digest, Vec<FileRecord>)> {
        let mut files = Vec::new();
        for (rel, entry) in &manifest.files {
            let p = if rel.is_empty() {
                dest.to_path_buf()
            } else {
                dest.join(rel)
            };
            let (size, mtime_ns, ino) = stat(&p).map_err(|e| Error::io(&p, e))?;
            files.push(FileRecord {
                rel: rel.clone(),
                digest: entry.digest,
                size,
                mtime_ns,
                ino,
            });
        }
        Ok((manifest.output_digest, files))
    }

    /// Drop the whole cache.
    pub fn clear_cache(&self) -> Result<()> {
        let c = self.dir.join("cache");
        remove_path(&c)?;
        std::fs::create_dir_all(&c).map_err(|e| Error::io(&c, e))
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

/// A manifest's file table from the files of a hashed output.
pub fn file_entries(files: &[FileRecord]) -> BTreeMap<String, FileEntry> {
    files
        .iter()
        .map(|f| {
            let entry = FileEntry {
                digest: f.digest,
                size: f.size,
            };
            (f.rel.clone(), entry)
        })
        .collect()
}

/// Read a manifest file; `Ok(None)` if it does not exist.
pub fn read_manifest(path: &Path) -> Result<Option<Manifest>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::State {
                path: path.to_path_buf(),
                message: format!("not a readable studymake manifest: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// What is wrong with a published output.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputProblem {
    Missing(PathBuf),
    Modified(PathBuf),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::Recipe;

    fn manifest(key: Digest, target: &str, built: &Path) -> Manifest {
        let (output_digest, files) = Store::hash_output(built).unwrap();
        Manifest {
            schema: STATE_SCHEMA,
            studymake: "test".into(),
            target: target.into(),
            kind: "source".into(),
            condition: None,
            key,
            material: KeyMaterial {
                recipe: Recipe::Builtin {
                    name: "x".into(),
                    version: 1,
                },
                output: "npy".into(),
                params: Params::new(),
                inputs: BTreeMap::new(),
            },
            input_sources: BTreeMap::new(),
            reported: Params::new(),
            inspected: Params::new(),
            output_path: "p.npy".into(),
            output_digest,
            files: file_entries(&files),
            started_unix: 0,
            seconds: 0.0,
        }
    }

    #[test]
    fn publish_restore_and_replay() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let scratch = store.scratch("sources/a").unwrap();
        let built = scratch.join("out");
        std::fs::write(&built, b"hello").unwrap();
        let key = Digest([7; 32]);
        let m = manifest(key, "sources/a", &built);
        let dest = dir.path().join("a_source.txt");
        let rec = store.publish(&built, &dest, &m).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
        assert!(store.cached(&key));
        drop(store);

        let mut store = Store::open(dir.path()).unwrap();
        let mut r = store.record("sources/a").unwrap().clone();
        assert_eq!(r, rec);
        assert_eq!(Store::check_output(&dest, &mut r, false).unwrap(), None);
        std::fs::write(&dest, b"tampered").unwrap();
        assert!(matches!(
            Store::check_output(&dest, &mut r, false).unwrap(),
            Some(OutputProblem::Modified(_))
        ));
        store.restore(&key, &dest, "sources/a").unwrap().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
    }

    #[test]
    fn superseded_large_records_are_compacted_away() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let built = dir.path().join("built");
        std::fs::write(&built, b"x").unwrap();
        // A report-like record with thousands of inputs, rewritten a few times: few frames, but
        // most of the log's bytes are dead.
        let mut m = manifest(Digest([3; 32]), "report", &built);
        for i in 0..20_000 {
            m.material
                .inputs
                .insert(format!("metrics.condition_{i:05}"), Digest([4; 32]));
        }
        let (output, files) = Store::hash_output(&built).unwrap();
        for round in 0..4u8 {
            let mut record = Record {
                key: Digest([round; 32]),
                material: m.material.clone(),
                output,
                files: files.clone(),
            };
            record.key.0[1] = 9;
            store.refresh("report", record).unwrap();
        }
        let log = dir.path().join(".studymake/state.log");
        let before = std::fs::metadata(&log).unwrap().len();
        assert!(before > 3 << 20, "{before}");
        store.finish().unwrap();
        let after = std::fs::metadata(&log).unwrap().len();
        assert!(after < before / 3, "{before} -> {after}");
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.record("report").unwrap().key.0[0], 3);
    }

    #[test]
    fn torn_log_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store.record_failure("t", Digest([1; 32]), "boom").unwrap();
        store.record_failure("u", Digest([2; 32]), "bang").unwrap();
        drop(store);
        let log = dir.path().join(".studymake/state.log");
        let bytes = std::fs::read(&log).unwrap();
        std::fs::write(&log, &bytes[..bytes.len() - 3]).unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store.failure("t").is_some());
        assert!(store.failure("u").is_none());
    }

    #[test]
    fn directories_are_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let dst = dir.path().join("fitted");
        std::fs::create_dir(&dst).unwrap();
        std::fs::write(dst.join("old"), b"1").unwrap();
        let src = dir.path().join("new");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("w"), b"2").unwrap();
        replace(&src, &dst).unwrap();
        assert!(dst.join("w").exists() && !dst.join("old").exists() && !src.exists());
    }
}
