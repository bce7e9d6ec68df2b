//! The output cache (`.studymake/cache/<key>/`): every published output is kept under its key
//! with its manifest, so going back to an earlier key restores the output instead of rebuilding
//! it. An entry is checked against its manifest's digest before use; a bad one is dropped.

use super::fs::{copy_tree, remove_path, sync_files};
use super::manifest::{read_manifest, Identity, Manifest};
use super::{Record, Store};
use crate::error::{Error, Result};
use crate::key::Digest;
use std::path::{Path, PathBuf};

impl Store {
    pub(super) fn cache_dir(&self, key: &Digest) -> PathBuf {
        self.dir.join("cache").join(key.hex())
    }

    /// Whether the cache holds an output for a key.
    pub fn cached(&self, key: &Digest) -> bool {
        self.cache_dir(key).join("manifest.json").is_file()
    }

    /// Restore the output of `key` from the cache into `dest`, after checking its bytes. The
    /// manifest keeps what the key vouches for (material, digests, report, timings) and takes
    /// its identity (target, kind, condition, input sources, path) from `id`: two targets may
    /// share work, never lineage. Returns `Ok(None)` when the cache has no intact entry.
    pub fn restore(&mut self, key: &Digest, dest: &Path, id: &Identity) -> Result<Option<Record>> {
        let cache = self.cache_dir(key);
        let manifest = match read_manifest(&cache.join("manifest.json")) {
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
        let manifest = manifest.with_identity(id);
        self.install(&cache, dest, &manifest).map(Some)
    }

    /// Copy a cache entry's output into place (synced: the copy is new bytes the record will
    /// vouch for), then record it.
    pub(super) fn install(
        &mut self,
        cache: &Path,
        dest: &Path,
        manifest: &Manifest,
    ) -> Result<Record> {
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

    /// Drop the whole cache.
    pub fn clear_cache(&self) -> Result<()> {
        let c = self.dir.join("cache");
        remove_path(&c)?;
        std::fs::create_dir_all(&c).map_err(|e| Error::io(&c, e))
    }
}
