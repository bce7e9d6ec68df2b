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
            bindings: BTreeMap::new(),
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

/// Build `sources/a` (`hello`, key 7…) in `dir`'s store and publish it as `a_source.txt`.
fn publish_a(store: &mut Store, dir: &Path) -> (Digest, PathBuf, Record) {
    let scratch = store.scratch("sources/a").unwrap();
    let built = scratch.join("out");
    std::fs::write(&built, b"hello").unwrap();
    let key = Digest([7; 32]);
    let m = manifest(key, "sources/a", &built);
    let dest = dir.join("a_source.txt");
    let rec = store.publish(&built, &dest, &m).unwrap();
    (key, dest, rec)
}

#[test]
fn publish_restore_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let (key, dest, rec) = publish_a(&mut store, dir.path());
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
    let id = |target: &str, path: &str| Identity {
        target: target.into(),
        kind: "source".into(),
        condition: None,
        input_sources: BTreeMap::new(),
        output_path: path.into(),
    };
    store
        .restore(&key, &dest, &id("sources/a", "a_source.txt"))
        .unwrap()
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"hello");

    // Another target with the same key shares the bytes, never the lineage.
    let other = dir.path().join("b_source.txt");
    store
        .restore(&key, &other, &id("sources/b", "b_source.txt"))
        .unwrap()
        .unwrap();
    let m = store.manifest("sources/b").unwrap().unwrap();
    assert_eq!(
        (m.target.as_str(), m.output_path.as_str()),
        ("sources/b", "b_source.txt")
    );
    let m = store.manifest("sources/a").unwrap().unwrap();
    assert_eq!(m.target, "sources/a");
}

#[test]
fn an_emptied_or_headerless_log_is_an_empty_state_or_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    publish_a(&mut store, dir.path());
    store.finish().unwrap();
    drop(store);
    let log = dir.path().join(".studymake/state.log");
    let bytes = std::fs::read(&log).unwrap();
    let header = format!("studymake state v{STATE_SCHEMA}\n");
    assert!(bytes.starts_with(header.as_bytes()));

    // The frames without their header (what an emptied log got from older versions): repaired.
    std::fs::write(&log, &bytes[header.len()..]).unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(store.record("sources/a").is_some());
    assert!(std::fs::read(&log).unwrap().starts_with(header.as_bytes()));
    drop(store);

    // Emptied: an empty state whose next frame comes after a header.
    std::fs::write(&log, b"").unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    assert!(store.record("sources/a").is_none());
    publish_a(&mut store, dir.path());
    store.finish().unwrap();
    drop(store);
    assert!(std::fs::read(&log).unwrap().starts_with(header.as_bytes()));
    assert!(Store::open(dir.path())
        .unwrap()
        .record("sources/a")
        .is_some());

    // Anything else is refused, saying how to start afresh.
    std::fs::write(&log, b"garbage").unwrap();
    let e = Store::open(dir.path()).err().unwrap().to_string();
    assert!(e.contains("clean --cache"), "{e}");
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

/// A state log of schema 1 (key material without bindings) is read, its records kept, and
/// rewritten as the current schema.
#[test]
fn a_schema_1_log_is_read_and_upgraded() {
    #[derive(serde::Serialize)]
    struct Material {
        recipe: Recipe,
        output: String,
        params: Params,
        inputs: BTreeMap<String, Digest>,
    }
    #[derive(serde::Serialize)]
    struct OldRecord {
        key: Digest,
        material: Material,
        output: Digest,
        files: Vec<FileRecord>,
    }
    #[derive(serde::Serialize)]
    enum OldEntry {
        Built { target: String, record: OldRecord },
    }
    let entry = OldEntry::Built {
        target: "sources/a".into(),
        record: OldRecord {
            key: Digest([1; 32]),
            material: Material {
                recipe: Recipe::Builtin {
                    name: "x".into(),
                    version: 1,
                },
                output: "npy".into(),
                params: Params::new(),
                inputs: BTreeMap::new(),
            },
            output: Digest([2; 32]),
            files: Vec::new(),
        },
    };
    let payload = bincode::serde::encode_to_vec(&entry, bincode::config::standard()).unwrap();
    let mut bytes = b"studymake state v1\n".to_vec();
    bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&blake3::hash(&payload).as_bytes()[..4]);
    bytes.extend_from_slice(&payload);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join(".studymake/state.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    std::fs::write(&log, &bytes).unwrap();

    let store = Store::open(dir.path()).unwrap();
    let r = store.record("sources/a").unwrap();
    assert_eq!((r.key, r.output), (Digest([1; 32]), Digest([2; 32])));
    assert!(r.material.bindings.is_empty());
    let header = format!("studymake state v{STATE_SCHEMA}\n");
    assert!(std::fs::read(&log).unwrap().starts_with(header.as_bytes()));
    drop(store);
    assert!(Store::open(dir.path())
        .unwrap()
        .record("sources/a")
        .is_some());
}

/// A temp file that cannot be created is reported by its OS error alone, not tempfile's
/// `at path ".../.tmp-XXXXXX"`.
#[test]
fn bare_drops_the_temp_files_name() {
    let e = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in("/nonexistent/dir")
        .unwrap_err();
    assert!(e.to_string().contains(".tmp-"), "{e}");
    let b = bare(e);
    assert_eq!(b.raw_os_error(), Some(2), "{b}");
    assert!(!b.to_string().contains(".tmp-"));
}
