//! `studymake verify` on the fixture study: each test reproduces a way the original study went
//! wrong, and a clean study passes.

mod common;

use common::Study;

#[test]
fn a_clean_study_passes_and_a_never_built_one_reports_missing() {
    let s = Study::new();
    let r = s.run(&["verify"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("gs1_idealized/model: missing"),
        "{}",
        r.stdout
    );
    assert!(!r.stderr.contains("panicked"));

    s.run(&[]).ok();
    let t0 = std::time::Instant::now();
    let r = s.run(&["verify"]);
    r.ok();
    assert!(
        r.stdout.contains("verify: all 21 targets hold"),
        "{}",
        r.stdout
    );
    eprintln!("verify of the clean fixture study took {:?}", t0.elapsed());
    let j = s.run(&["verify", "--json"]);
    j.ok();
    let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(v["findings"].as_array().unwrap().len(), 0);
}

#[test]
fn swapped_model_directories_fail_on_both_conditions() {
    let s = Study::new();
    s.run(&[]).ok();
    let a = s.path("out/gs1_idealized/model");
    let b = s.path("out/gs2_idealized/model");
    let tmp = s.path("out/swap");
    std::fs::rename(&a, &tmp).unwrap();
    std::fs::rename(&b, &a).unwrap();
    std::fs::rename(&tmp, &b).unwrap();
    let r = s.run(&["verify"]);
    assert_eq!(r.code, 1);
    for c in ["gs1_idealized", "gs2_idealized"] {
        assert!(
            r.stdout
                .contains(&format!("{c}/model: output is not the recorded bytes")),
            "{c}: {}",
            r.stdout
        );
    }
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("gs1_hybrid ") && !l.contains("FAIL")),
        "{}",
        r.stdout
    );
}

#[test]
fn one_changed_byte_fails_integrity_and_everything_downstream() {
    let s = Study::new();
    s.run(&[]).ok();
    let p = s.path("out/gs2_hybrid/train_data.npz");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&p, bytes).unwrap();
    let r = s.run(&["verify"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout
            .contains("gs2_hybrid/train_data: output is not the recorded bytes"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("gs2_hybrid/model: stale: input `train_data` changed"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("gs2_hybrid/metrics: stale: input `model` changed")
            || r.stdout
                .contains("gs2_hybrid/model: built from gs2_hybrid/train_data"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("report: stale"), "{}", r.stdout);
}

#[test]
fn an_edited_seed_fails_freshness_naming_old_and_new() {
    let s = Study::new();
    s.run(&[]).ok();
    s.write_studyfile(&s.original().replace("test_seed = 43", "test_seed = 45"));
    let r = s.run(&["verify", "gs1_hybrid"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout
            .contains("gs1_hybrid/test_data: stale: parameter `seed` changed: 43 -> 45"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("recorded seed is 43, the condition declares test_seed 45"),
        "{}",
        r.stdout
    );
}

#[test]
fn train_and_test_seeds_must_differ() {
    let s = Study::new();
    s.write_studyfile(&s.original().replace("test_seed = 43", "test_seed = 42"));
    s.run(&[]).ok();
    let r = s.run(&["verify"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("train and test sets share seed 42"),
        "{}",
        r.stdout
    );
}

#[test]
fn the_original_bug_is_refused_and_a_hand_placed_output_fails_verify() {
    let s = Study::new();
    let leaky = s
        .original()
        .replace("\"recipes/model.sh\"", "\"recipes/model_leaky.sh\"")
        .replace(
            "\"{gridsize}\", \"{seed}\", \"{param.epochs}\", \"{input.train_data}\", \"{condition}\", \"{param.fail_on}\"]",
            "\"{gridsize}\", \"{input.train_data}\", \"{param.epochs}\", \"{seed}\"]",
        )
        .replace("fail_on = \"none\"\n", "");
    s.write_studyfile(&leaky);
    let r = s.run(&["-k", "-j1"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("gs2_hybrid/model: built with gridsize 1"),
        "{}",
        r.stderr
    );
    assert!(!s.path("out/gs2_hybrid/model").exists());
    // A user forces the leaked model into place by hand.
    std::fs::create_dir_all(s.path("out/gs2_hybrid/model")).unwrap();
    std::fs::write(
        s.path("out/gs2_hybrid/model/weights.txt"),
        "weights gridsize=1\n",
    )
    .unwrap();
    let r = s.run(&["verify"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout
            .contains("gs2_hybrid/model: gs2_hybrid/model exists but studymake never published it"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("gs2_hybrid ") && l.contains("FAIL")),
        "{}",
        r.stdout
    );
}
