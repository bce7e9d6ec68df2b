//! Interop: a dataset written by studymake is read by numpy with the contract's dtypes and shapes
//! (`scripts/check_dataset.py`). Needs `STUDYMAKE_PYTHON` naming a python with numpy; without
//! it the numpy half prints `SKIPPED`, unless `STUDYMAKE_REQUIRE` lists `python` (CI does).

mod common;

use studymake_science::io::dataset::Dataset;
use studymake_science::physics::simulate::{simulate, SimParams};
use studymake_science::physics::{object, probe};

#[test]
fn numpy_reads_a_simulated_dataset_per_the_contract() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = object::lines_object(96, 60, 0.1, 3).expect("object");
    let p = probe::default_probe(32);
    let mut files = Vec::new();
    for gs in [1usize, 2] {
        let d = simulate(&o, &p, &SimParams::new(40, 1e8, 42, gs)).expect("simulate");
        let path = dir.path().join(format!("gs{gs}.npz"));
        d.save(&path).expect("save");
        assert_eq!(Dataset::load(&path).expect("load"), d);
        files.push(path);
    }
    let Some(python) = common::python("to check the files with numpy") else {
        return;
    };
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check_dataset.py");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .args(&files)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "check_dataset.py failed:\n{text}");
}
