//! Manifests (`.studymake/manifests/<target>.json`, and one per cache entry): versioned,
//! human-readable JSON for people and audits: the key material, the output's digests, what the
//! worker reported and what was read back from the output, timings.

use super::{FileRecord, Record, Store};
use crate::error::{Error, Result};
use crate::key::{Digest, KeyMaterial};
use crate::params::Params;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

/// Who a manifest describes: the part of it a cache entry shared by several targets (equal
/// keys) does not vouch for, and which a restore therefore takes from the restoring target.
#[derive(Clone, Debug)]
pub struct Identity {
    pub target: String,
    pub kind: String,
    pub condition: Option<String>,
    pub input_sources: BTreeMap<String, String>,
    pub output_path: String,
}

impl Manifest {
    /// This manifest with its identity replaced by `id`'s.
    pub fn with_identity(mut self, id: &Identity) -> Manifest {
        self.target = id.target.clone();
        self.kind = id.kind.clone();
        self.condition = id.condition.clone();
        self.input_sources = id.input_sources.clone();
        self.output_path = id.output_path.clone();
        self
    }
}

/// One file in a manifest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    pub digest: Digest,
    pub size: u64,
}

/// A file name for a target's manifest (`l1_a/fit` -> `l1_a~fit.json`).
pub fn manifest_name(target: &str) -> String {
    format!("{}.json", target.replace('/', "~"))
}

impl Store {
    /// Path of a target's manifest.
    pub fn manifest_path(&self, target: &str) -> PathBuf {
        self.dir.join("manifests").join(manifest_name(target))
    }

    /// Read a target's manifest, if any.
    pub fn manifest(&self, target: &str) -> Result<Option<Manifest>> {
        read_manifest(&self.manifest_path(target))
    }

    /// Rewrite a fresh target's missing or unreadable manifest: from the cache entry of its key
    /// when it is intact (everything the key vouches for, with `id`'s identity), else from the
    /// record (without what the worker reported or was read back, and without timings).
    pub fn rewrite_manifest(&self, id: &Identity, rec: &Record) -> Result<()> {
        let cached = read_manifest(&self.cache_dir(&rec.key).join("manifest.json"))
            .ok()
            .flatten()
            .filter(|m| m.key == rec.key && m.output_digest == rec.output);
        let m = match cached {
            Some(m) => m,
            None => Manifest {
                schema: super::STATE_SCHEMA,
                studymake: env!("CARGO_PKG_VERSION").into(),
                target: String::new(),
                kind: String::new(),
                condition: None,
                key: rec.key,
                material: rec.material.clone(),
                input_sources: BTreeMap::new(),
                reported: Params::new(),
                inspected: Params::new(),
                output_path: String::new(),
                output_digest: rec.output,
                files: file_entries(&rec.files),
                started_unix: 0,
                seconds: 0.0,
            },
        }
        .with_identity(id);
        let json = serde_json::to_string_pretty(&m).expect("manifests serialise");
        super::write_atomic(&self.manifest_path(&id.target), json.as_bytes())
    }
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
