//! The no-op stamp: a compact proof, cheap to check, that nothing a build depends on changed
//! since a build left every selected target fresh, so that a no-op run need not expand the graph,
//! replay the state log or recompute a single key.
//!
//! A build that ends with every selected target fresh or built writes `.studymake/stamp`: a
//! digest of its *context* (this studymake's version and key/state schemas, the built-in recipes
//! and their versions, the Studyfile's path and bytes, the profile, the targets asked for), the
//! number of targets, the stat (size, mtime, inode) of the state log, and the stat of every path
//! the freshness check would look at: every output file and directory as its record has it, and
//! every source file the keys read. The next build with the same context checks those stats and
//! the stamp's state-log stat; if all are equal and no scratch is left over, every target is
//! fresh for the same reasons the full check would give, and the run ends there. Any difference,
//! however small, falls back to the full check, which then writes a new stamp. The stamp is a
//! shortcut only: deleting it never changes what is built.

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::key::{Digest, KEY_SCHEMA};
use crate::store::STATE_SCHEMA;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Version of the stamp format.
const STAMP_SCHEMA: u32 = 1;

/// Stat fields compared: size, mtime in ns, inode.
pub type Stat = (u64, i64, u64);

#[derive(Serialize, Deserialize)]
struct Stamp {
    schema: u32,
    context: Digest,
    targets: u64,
    state_log: Stat,
    paths: Vec<(PathBuf, Stat)>,
}

fn stamp_path(state_dir: &Path) -> PathBuf {
    state_dir.join("stamp")
}

/// The digest of everything besides files that decides what a build does.
pub fn context(
    catalog: &dyn Catalog,
    studyfile: &Path,
    studyfile_bytes: &[u8],
    profile: Option<&str>,
    selection: &[String],
) -> Digest {
    let mut h = blake3::Hasher::new();
    let mut field = |b: &[u8]| {
        h.update(&(b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(b"studymake stamp context");
    field(env!("CARGO_PKG_VERSION").as_bytes());
    field(&KEY_SCHEMA.to_le_bytes());
    field(&STATE_SCHEMA.to_le_bytes());
    for r in catalog.recipes() {
        field(r.name.as_bytes());
        field(&r.version.to_le_bytes());
    }
    field(studyfile.as_os_str().as_encoded_bytes());
    field(studyfile_bytes);
    match profile {
        Some(p) => field(format!("profile {p}").as_bytes()),
        None => field(b"no profile"),
    }
    for t in selection {
        field(t.as_bytes());
    }
    Digest(*h.finalize().as_bytes())
}

fn stat(path: &Path) -> Option<Stat> {
    crate::store::stat(path).ok()
}

/// If the stamp in `state_dir` proves a build with this context has nothing to do, the number of
/// targets it covers. Call only while holding the study lock.
pub fn check(state_dir: &Path, context: &Digest) -> Option<u64> {
    let bytes = std::fs::read(stamp_path(state_dir)).ok()?;
    let (stamp, _): (Stamp, _) =
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).ok()?;
    if stamp.schema != STAMP_SCHEMA || stamp.context != *context {
        return None;
    }
    if stat(&state_dir.join("state.log"))? != stamp.state_log {
        return None;
    }
    // Scratch left by an interrupted run is reclaimed by the full path.
    if std::fs::read_dir(state_dir.join("tmp"))
        .ok()?
        .next()
        .is_some()
    {
        return None;
    }
    for (p, st) in &stamp.paths {
        if stat(p)? != *st {
            return None;
        }
    }
    Some(stamp.targets)
}

/// Remove the stamp (before anything that changes outputs or state behind a build's back).
pub fn remove(state_dir: &Path) -> Result<()> {
    crate::store::remove_path(&stamp_path(state_dir))
}

/// Write the stamp for a build that left `targets` targets fresh, whose freshness rests on
/// `paths` (with the stats the records hold). The state log must be final (synced) already.
pub fn write(
    state_dir: &Path,
    context: &Digest,
    targets: usize,
    paths: Vec<(PathBuf, Stat)>,
) -> Result<()> {
    let log = state_dir.join("state.log");
    let Some(state_log) = stat(&log) else {
        // Nothing was ever recorded: nothing to vouch for.
        return remove(state_dir);
    };
    let stamp = Stamp {
        schema: STAMP_SCHEMA,
        context: *context,
        targets: targets as u64,
        state_log,
        paths,
    };
    let bytes = bincode::serde::encode_to_vec(&stamp, bincode::config::standard())
        .map_err(|e| Error::Other(format!("could not encode the no-op stamp: {e}")))?;
    // A lost or torn stamp only costs the next run the full check.
    let path = stamp_path(state_dir);
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(state_dir)
        .map_err(|e| Error::io(&path, crate::store::bare(e)))?;
    tmp.write_all(&bytes).map_err(|e| Error::io(&path, e))?;
    tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
    Ok(())
}
