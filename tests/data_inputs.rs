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

/// A dataset whose arrays disagree in length (10 diffraction patterns, 9 x positions), supplied
/// by an external command (`cp`, no shell) as `train_data` and `test_data`: the built-in `pinn`
/// and `evaluate` recipes refuse it with one message naming the file, the keys and the lengths.
#[test]
fn a_dataset_whose_arrays_disagree_in_length_fails_the_model_and_the_evaluation() {
    let bad = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/bad/data/length_mismatch.npz");
    let expect = "diffraction holds 10 patterns but xcoords holds 9 entries";
    let study = |model: &str| {
        format!(
            "[study]\nname = \"mismatch\"\n\n[params]\ntrain_seed = 1\n\
             test_seed = 1\nepochs = 1\n\n[probes.idealized]\nrecipe = \"default_probe\"\n\n\
             [objects.lines]\nrecipe = \"lines_object\"\nparams = {{ seed = 7, object_size = 64 }}\n\n[matrix]\ngridsize = [1]\n\
             probe = [\"idealized\"]\n\n[recipes.train_data]\ncommand = [\"cp\", {bad:?}, \"{{output}}\"]\n\n\
             [recipes.test_data]\ncommand = [\"cp\", {bad:?}, \"{{output}}\"]\n\n{model}\n\
             [recipes]\nmetrics = \"evaluate\"\nreport = \"report\"\n",
            bad = bad.display().to_string()
        )
    };
    // The build fails `target`, naming the dataset `input` and the problem, without panicking
    // and without publishing anything.
    let fails_naming = |s: &Study, target: &str, input: &str| {
        let r = s.run(&[]);
        assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
        let line = r
            .stderr
            .lines()
            .find(|l| l.contains(&format!("FAILED gs1_idealized/{target}")))
            .unwrap_or_else(|| panic!("{}", r.stderr));
        assert!(
            line.contains(&format!("gs1_idealized/{input}.npz")) && line.contains(expect),
            "{line}"
        );
        assert!(!s.path(&format!("study/gs1_idealized/{target}")).exists());
    };
    // The model recipe reads the training set.
    let s = Study::empty();
    s.write_studyfile(&study("[recipes.model]\nrecipe = \"pinn\"\n"));
    fails_naming(&s, "model", "train_data");

    // The evaluation reads the test set (the model is a stand-in directory).
    let s = Study::empty();
    std::fs::write(
        s.path("fake_model.sh"),
        "#!/bin/sh\nmkdir -p \"$1\"\nprintf '{\"params\": {\"gridsize\": 1}}\\n' > \"$2\"\n",
    )
    .unwrap();
    s.write_studyfile(&study(
        "[recipes.model]\ncommand = [\"sh\", \"fake_model.sh\", \"{output}\", \"{report}\", \"{param.epochs}\"]\noutput = \"dir\"\n",
    ));
    fails_naming(&s, "metrics", "test_data");
}
