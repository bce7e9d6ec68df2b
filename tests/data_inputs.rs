//! Bad data through the real binary: each file of `fixtures/bad/data/` fed to the `npz_probe`
//! recipe fails the build (exit 1) with one message naming the file's problem, and nothing is
//! published; `studymake compare` scores two complex images and writes nothing.

mod common;

use common::Study;

fn study_with_probe_file(path: &std::path::Path) -> Study {
    let s = Study::empty();
    s.write_studyfile(&format!(
        "[study]\nname = \"bad-data\"\n\n[probes.measured]\nrecipe = \"npz_probe\"\ninputs = {{ file = {{ path = {:?} }} }}\n",
        path.display().to_string()
    ));
    s
}

#[test]
fn each_bad_probe_file_fails_with_a_clear_message_and_publishes_nothing() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bad/data");
    let cases = [
        (
            "missing_key.npz",
            "no array `probeGuess` in this .npz; it holds: ",
        ),
        ("truncated.npz", "not a readable .npz archive"),
        ("not_numpy.npz", "not a .npy array"),
        ("real_valued.npy", "is real-valued; a complex array"),
        ("nonfinite.npy", "non-finite values"),
        ("three_d.npy", "where a 2-D array was expected"),
        ("absurd_shape.npy", "shape [100000, 100000, 100000]"),
        ("does_not_exist.npz", "does not exist"),
    ];
    for (file, expect) in cases {
        let s = study_with_probe_file(&data.join(file));
        let r = s.run(&[]);
        assert_eq!(r.code, 1, "{file}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains(expect),
            "{file}: expected {expect:?} in\n{}",
            r.stderr
        );
        assert!(
            r.stderr.contains("FAILED probes/measured"),
            "{file}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("panicked"), "{file}: {}", r.stderr);
        assert!(
            !s.path("study/measured_probe.npy").exists(),
            "{file}: nothing published"
        );
    }
}

#[test]
fn compare_scores_two_images_and_writes_nothing() {
    let s = Study::empty();
    s.write_studyfile(
        "[study]\nname = \"probes\"\n\n[probes.idealized]\nrecipe = \"default_probe\"\n\n\
         [probes.experimental]\nrecipe = \"aberrated_probe\"\n\n[probes.hybrid]\nrecipe = \"hybrid_probe\"\n\
         inputs = { amplitude = \"idealized\", phase = \"experimental\" }\n",
    );
    s.run(&[]).ok();
    let before: Vec<_> = std::fs::read_dir(s.path("study"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    // The idealized probe has a flat phase, so it is the reconstruction, never the truth.
    let a = s.path("study/idealized_probe.npy");
    let b = s.path("study/hybrid_probe.npy");
    let r = s.run(&[
        "compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--json",
    ]);
    r.ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v.to_string().contains("ssim"), "{}", r.stdout);
    let same = s.run(&["compare", b.to_str().unwrap(), b.to_str().unwrap()]);
    same.ok();
    assert!(
        same.stdout.to_lowercase().contains("ssim"),
        "{}",
        same.stdout
    );
    let after: Vec<_> = std::fs::read_dir(s.path("study"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after, "compare writes nothing");
    let bad = s.run(&["compare", "nope.npy", b.to_str().unwrap()]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("nope.npy"), "{}", bad.stderr);
}
