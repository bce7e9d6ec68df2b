//! The example study end to end with the native recipes (about 15 minutes on 2 cores, so it is
//! behind `--ignored`): `cargo test --release --test example_study -- --ignored --nocapture`.

mod common;

use common::Study;

#[test]
#[ignore = "runs the whole quick 2x2 study (minutes); run with --ignored"]
fn the_quick_example_study_builds_reports_all_four_conditions_and_verifies() {
    let s = Study::empty();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Studyfile.example");
    s.write_studyfile(&std::fs::read_to_string(example).unwrap());
    let t0 = std::time::Instant::now();
    let r = s.run(&["all", "--profile", "quick"]);
    r.ok();
    eprintln!("quick study built in {:?}", t0.elapsed());
    let summary = std::fs::read_to_string(s.path("study/report/summary.md")).unwrap();
    for c in ["gs1_idealized", "gs1_hybrid", "gs2_idealized", "gs2_hybrid"] {
        assert!(
            summary.contains(&format!("| {c} | ")),
            "{c} missing from the report"
        );
    }
    for f in [
        "reconstructions.png",
        "probes.png",
        "losses.png",
        "frc_amplitude.png",
        "summary.csv",
    ] {
        assert!(s.path(&format!("study/report/{f}")).is_file(), "{f}");
    }
    s.run(&["verify"]).ok();
    let again = s.run(&["all", "--profile", "quick"]);
    again.ok();
    assert!(again.stdout.contains("nothing to do"), "{}", again.stdout);
}
