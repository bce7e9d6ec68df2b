//! The fuzz targets' harnesses on stable: every committed seed (`fuzz/corpus/<target>/seed-*`)
//! and every input a fuzzing run found to crash (`fuzz/regressions/<target>/*`) goes through the
//! same readers as `fuzz/fuzz_targets/*.rs`, so `cargo test` keeps each fixed crash fixed.
//! Regenerate the binary seeds with `cargo test --test fuzz_regressions -- --ignored`.

use ndarray::{arr0, Array1, Array2, Array3, Ix0, Ix1, Ix2, Ix3, IxDyn};
use num_complex::{Complex32, Complex64};
use std::path::{Path, PathBuf};
use studymake_engine::catalog::Catalog;
use studymake_engine::graph::Graph;
use studymake_engine::studyfile::Studyfile;
use studymake_science::io::dataset::{Dataset, DatasetSummary};
use studymake_science::io::npy::{self, NpzFile, NpzOut};
use studymake_study::Builtins;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// What `fuzz_targets/studyfile.rs` does; `true` when the text expanded to a graph.
fn studyfile_harness(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let catalog = Builtins::new();
    let Ok(sf) = Studyfile::parse(
        Path::new("/nonexistent/fuzz/Studyfile"),
        text.to_string(),
        catalog.shape(),
    ) else {
        return false;
    };
    let mut ok = false;
    for profile in [None, Some("quick")] {
        if let Ok(g) = Graph::from_studyfile(&sf, profile, &catalog) {
            for i in 0..g.targets.len() {
                let _ = g.output_path(i);
            }
            ok = true;
        }
    }
    ok
}

/// What `fuzz_targets/npy.rs` does, on a file; `true` when some reader accepted it.
fn npy_harness(path: &Path) -> bool {
    let _ = npy::is_zip(path);
    let mut ok = npy::npy_header(path).is_ok();
    ok |= npy::read_npy::<f32, IxDyn>(path).is_ok();
    ok |= npy::read_npy::<f64, Ix1>(path).is_ok();
    ok |= npy::read_npy::<i64, Ix2>(path).is_ok();
    ok |= npy::read_npy::<i32, IxDyn>(path).is_ok();
    ok |= npy::read_npy::<Complex64, Ix3>(path).is_ok();
    ok |= npy::read_npy::<Complex32, IxDyn>(path).is_ok();
    ok |= npy::read_complex2_npy(path).is_ok();
    ok
}

/// What `fuzz_targets/npz.rs` does, on a file; `true` when the archive opened.
fn npz_harness(path: &Path) -> bool {
    let mut ok = false;
    if let Ok(mut f) = NpzFile::open(path) {
        ok = true;
        for key in f.keys() {
            let _ = f.has(&key);
            let _ = f.header(&key);
            let _ = f.read::<f32, IxDyn>(&key);
            let _ = f.read::<f64, IxDyn>(&key);
            let _ = f.read::<i64, IxDyn>(&key);
            let _ = f.read::<i32, Ix0>(&key);
            let _ = f.read::<Complex32, IxDyn>(&key);
            let _ = f.read::<Complex64, IxDyn>(&key);
            let _ = f.scalar::<i64>(&key);
            let _ = npy::read_complex2_npz(&mut f, &key);
        }
        let _ = f.read::<f32, IxDyn>("missing");
    }
    let _ = Dataset::load(path);
    let _ = DatasetSummary::read(path);
    ok
}

fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn committed_seeds_are_accepted_by_their_readers() {
    let c = fuzz_dir().join("corpus");
    let studyfiles = files(&c.join("studyfile"), "seed-");
    assert!(studyfiles.len() >= 3, "studyfile seeds: {studyfiles:?}");
    let expanded = studyfiles
        .iter()
        .filter(|p| studyfile_harness(&std::fs::read(p).unwrap()))
        .count();
    assert!(expanded >= 2, "valid Studyfile seeds expand to graphs");
    let npys = files(&c.join("npy"), "seed-");
    assert!(npys.len() >= 4, "npy seeds: {npys:?}");
    for p in &npys {
        assert!(npy_harness(p), "{} is read", p.display());
    }
    let npzs = files(&c.join("npz"), "seed-");
    assert!(npzs.len() >= 2, "npz seeds: {npzs:?}");
    for p in &npzs {
        assert!(npz_harness(p), "{} opens", p.display());
    }
    assert!(Dataset::load(&c.join("npz/seed-dataset-gs1.npz")).is_ok());
}

/// Each input a fuzzing run found to crash, hang or exhaust memory: now an error, never a panic.
#[test]
fn inputs_that_once_crashed_the_fuzzers_are_refused_cleanly() {
    let r = fuzz_dir().join("regressions");
    let mut n = 0;
    for p in files(&r.join("studyfile"), "") {
        studyfile_harness(&std::fs::read(&p).unwrap());
        n += 1;
    }
    for p in files(&r.join("npy"), "") {
        npy_harness(&p);
        n += 1;
    }
    for p in files(&r.join("npz"), "") {
        npz_harness(&p);
        n += 1;
    }
    eprintln!("{n} regression inputs replayed");
}

fn tiny_dataset(n: usize, gridsize: i64) -> Dataset {
    let nn = 4;
    let c = (gridsize * gridsize) as usize;
    Dataset {
        diffraction: Array3::from_shape_fn((n, nn, nn), |(i, j, k)| (i + j + k) as f32),
        y: Array3::from_shape_fn((n, nn, nn), |(i, j, k)| {
            Complex32::new(i as f32, (j * k) as f32)
        }),
        object: Array2::from_shape_fn((6, 6), |(i, j)| Complex32::new(i as f32, j as f32)),
        probe: Array2::from_elem((nn, nn), Complex32::new(1.0, 0.5)),
        xcoords: Array1::from_shape_fn(n, |i| 1.0 + i as f64),
        ycoords: Array1::from_shape_fn(n, |i| 1.5 + i as f64),
        xcoords_start: Array1::from_shape_fn(n, |i| 1.0 + i as f64),
        ycoords_start: Array1::from_shape_fn(n, |i| 1.5 + i as f64),
        scan_index: Array1::zeros(n),
        group_index: Array2::from_shape_fn((n, c), |(i, j)| ((i + j) % n) as i64),
        gridsize,
        seed: 1,
        nphotons: 1e9,
        intensity_scale: 2.0,
    }
}

/// Writes the binary seeds with the project's own writers (run by hand; the files are committed).
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let c = fuzz_dir().join("corpus");
    let npy_dir = c.join("npy");
    let npz_dir = c.join("npz");
    std::fs::create_dir_all(&npy_dir).unwrap();
    std::fs::create_dir_all(&npz_dir).unwrap();
    let probe = Array2::from_shape_fn((4, 4), |(i, j)| Complex32::new(i as f32, j as f32 - 1.0));
    npy::write_npy(&npy_dir.join("seed-probe-c8.npy"), &probe).unwrap();
    npy::write_npy(
        &npy_dir.join("seed-c16.npy"),
        &probe.mapv(|z| Complex64::new(z.re as f64, z.im as f64)),
    )
    .unwrap();
    npy::write_npy(
        &npy_dir.join("seed-f4-3d.npy"),
        &Array3::from_shape_fn((2, 2, 3), |(i, j, k)| (i * 6 + j * 3 + k) as f32),
    )
    .unwrap();
    npy::write_npy(
        &npy_dir.join("seed-f8-1d.npy"),
        &Array1::linspace(0.0, 1.0, 5),
    )
    .unwrap();
    npy::write_npy(
        &npy_dir.join("seed-i8-2d.npy"),
        &Array2::from_shape_fn((3, 2), |(i, j)| (i * 2 + j) as i64),
    )
    .unwrap();
    npy::write_npy(&npy_dir.join("seed-i4-0d.npy"), &arr0(7i32)).unwrap();
    tiny_dataset(3, 1)
        .save(&npz_dir.join("seed-dataset-gs1.npz"))
        .unwrap();
    tiny_dataset(4, 2)
        .save(&npz_dir.join("seed-dataset-gs2.npz"))
        .unwrap();
    let mut w = NpzOut::create(&npz_dir.join("seed-probe.npz"), false).unwrap();
    w.add("probeGuess", &probe).unwrap();
    w.add("scale", &arr0(0.5f64)).unwrap();
    w.finish().unwrap();
}
