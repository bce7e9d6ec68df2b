//! Publishing an output: fsynced in its scratch directory, moved into the cache under its key,
//! copied next to its final path and renamed over it (a directory is swapped atomically), then
//! its manifest and its record written. A kill at any point leaves the previous good output or
//! the new one, and the cache holds the new one.

use super::fs::{copy_tree, remove_path, replace, sync_files, write_replacing, write_staged};
use super::log::Entry;
use super::manifest::read_manifest;
use super::{stat, FileRecord, Manifest, Record, Store};
use crate::error::{Error, Result};
use crate::key::Digest;
use std::path::Path;

impl Store {
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
        // First writer wins: an intact entry for this key stays (with deterministic recipes its
        // bytes are these; if not, which bytes a restore gets must not depend on build order).
        if self.cached(&manifest.key) {
            if let Ok((digest, _)) = Self::hash_output(&cache.join("out")) {
                let intact = read_manifest(&cache.join("manifest.json"))
                    .ok()
                    .flatten()
                    .is_some_and(|m| m.output_digest == digest && m.key == manifest.key);
                if intact {
                    if digest != manifest.output_digest {
                        tracing::debug!(
                            "{}: built bytes differ from the cache entry of its key {}: a \
                             non-deterministic recipe",
                            manifest.target,
                            manifest.key.short()
                        );
                    }
                    return self.put_in_place(built, dest, manifest);
                }
            }
        }
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

    /// Swap a complete, synced output (`ready`, on the study's filesystem) in at `dest`, with its
    /// manifest and record. Every step that needs space (the manifest, room in the log for the
    /// record) happens before the swap, so a failed write leaves the previous output, manifest
    /// and record as they were. After the swap, the manifest is renamed into place and the record
    /// written into its room (the log is synced when the build ends); a kill before the record
    /// leaves the old record, and the next run restores the new output from the cache.
    pub(super) fn put_in_place(
        &mut self,
        ready: &Path,
        dest: &Path,
        manifest: &Manifest,
    ) -> Result<Record> {
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
    pub(super) fn hash_output_trusting(
        dest: &Path,
        manifest: &Manifest,
    ) -> Result<(Digest, Vec<FileRecord>)> {
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
}
