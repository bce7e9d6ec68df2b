//! The store: publish, restore, replay, compaction, torn tails and atomic directory swaps.

use super::fs::replace;
use super::*;
use crate::params::Params;
use crate::recipe::Recipe;
use std::collections::BTreeMap;

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
