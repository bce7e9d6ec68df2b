//! The inputs a job reads, checked before it starts and after it ends: a job's key names its
//! inputs' bytes, so a job may only start on, and publish from, inputs that still are those
//! bytes. A recipe that writes to its input (or a job beside it that does) fails, naming it,
//! and the damaged input, a published output, is restored from the cache at once, so nothing
//! computed from changed bytes is published or cached under a key that claims the clean ones.
//!
//! Cost: one `stat` per input file per check; a rehash only when a stat moved (a directory input
//! is compared by its listing too). Permissions are not relied on: everything may run as root.

use crate::error::{Error, Result};
use crate::freshness::Planner;
use crate::graph::InputSource;
use crate::key::KeyMaterial;
use crate::store::{stat, FileRecord, Store};
use std::path::PathBuf;

/// One input of a job as its key names it: where it is and the files (stat and digest) it holds.
pub(super) struct Snapshot {
    role: String,
    path: PathBuf,
    is_dir: bool,
    files: Vec<FileRecord>,
    /// The target whose output it is, if any (restorable from the cache).
    source: Option<usize>,
}

/// The inputs of target `i` as its key material names them. A target input is its record's
/// files (checked against the disk by [`check`] before the job starts); a source file is
/// its stat now and the digest the key was computed from.
pub(super) fn snapshot(
    planner: &Planner,
    i: usize,
    material: &KeyMaterial,
) -> Result<Vec<Snapshot>> {
    let graph = planner.graph;
    let t = &graph.targets[i];
    let mut out = Vec::new();
    for inp in &t.inputs {
        let Some(digest) = material.inputs.get(&inp.role) else {
            continue;
        };
        match &inp.source {
            InputSource::Target(j) => {
                let Some(rec) = planner.store.record(&graph.targets[*j].name) else {
                    continue;
                };
                out.push(Snapshot {
                    role: inp.role.clone(),
                    path: graph.output_path(*j),
                    is_dir: rec.material.output == "dir",
                    files: rec.files.clone(),
                    source: Some(*j),
                });
            }
            InputSource::File(p) => {
                let (size, mtime_ns, ino) = stat(p).map_err(|e| Error::io(p, e))?;
                out.push(Snapshot {
                    role: inp.role.clone(),
                    path: p.clone(),
                    is_dir: false,
                    files: vec![FileRecord {
                        rel: String::new(),
                        digest: *digest,
                        size,
                        mtime_ns,
                        ino,
                    }],
                    source: None,
                });
            }
        }
    }
    Ok(out)
}

/// The inputs whose bytes are no longer what the snapshot names.
fn changed(inputs: &[Snapshot]) -> Result<Vec<&Snapshot>> {
    let mut out = Vec::new();
    for s in inputs {
        let meta = match std::fs::symlink_metadata(&s.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                out.push(s);
                continue;
            }
            Err(e) => return Err(Error::io(&s.path, e)),
        };
        let mut updated = None;
        if Store::check_files(&s.path, &meta, s.is_dir, &s.files, &mut updated, false)?.is_some() {
            out.push(s);
        }
    }
    Ok(out)
}

/// Before target `target`'s job starts: every input must still be the bytes its key names. A
/// damaged target input (an earlier job wrote to it) is restored from the cache; `Err` names
/// the first input that is neither intact nor restorable.
pub(super) fn check_before(
    planner: &mut Planner,
    target: &str,
    inputs: &[Snapshot],
    restored: &mut Vec<String>,
) -> Result<()> {
    for s in changed(inputs)? {
        if !repair(planner, s, restored)? {
            return Err(Error::Build {
                target: target.to_string(),
                message: format!(
                    "input `{}` ({}) no longer holds the bytes it was built with (a job changed \
                     it) and the cache has no copy; build it again",
                    s.role,
                    s.path.display()
                ),
            });
        }
    }
    Ok(())
}

/// After target `target`'s job ended (and every process of it): an input whose bytes changed
/// fails the job, and is restored from the cache when it is a published output.
pub(super) fn check_after(
    planner: &mut Planner,
    target: &str,
    inputs: &[Snapshot],
    restored: &mut Vec<String>,
) -> Result<()> {
    let changed = changed(inputs)?;
    let Some(first) = changed.first() else {
        return Ok(());
    };
    let err = Error::Build {
        target: target.to_string(),
        message: format!(
            "input `{}` ({}) changed while the recipe ran (by this recipe or a job running beside \
             it); nothing was published. A recipe must not write to its inputs",
            first.role,
            first.path.display()
        ),
    };
    for s in changed {
        repair(planner, s, restored)?;
    }
    Err(err)
}

/// Restore a damaged target input from the cache under its record's key; whether it was.
fn repair(planner: &mut Planner, s: &Snapshot, restored: &mut Vec<String>) -> Result<bool> {
    let Some(j) = s.source else {
        return Ok(false);
    };
    let graph = planner.graph;
    let name = &graph.targets[j].name;
    let Some(key) = planner.store.record(name).map(|r| r.key) else {
        return Ok(false);
    };
    let id = super::publish::identity(graph, j);
    match planner.store.restore(&key, &graph.output_path(j), &id)? {
        Some(_) => {
            restored.push(name.clone());
            Ok(true)
        }
        None => Ok(false),
    }
}
