//! The built-in recipes end to end through the binary, on the tiny study of `fixtures/tiny/` (the
//! example study's shape with tiny numbers): every target builds, `verify` holds, a second run
//! has nothing to do, and what was built is what each kind should be. The full-size version is
//! `tests/example_study.rs` (ignored by default: minutes).

mod common;

use common::{built, Study};

#[test]
fn the_builtin_recipes_build_the_tiny_study_and_it_verifies() {
    let s = Study::from_fixture("tiny");
    let t0 = std::time::Instant::now();
    let r = s.run(&["-j2", "all"]);
    r.ok();
    assert_eq!(built(&r.stdout).len(), 21, "{}", r.stdout);
    eprintln!("tiny study built in {:.1} s", t0.elapsed().as_secs_f64());

    let v = s.run(&["verify"]);
    v.ok();
    assert!(
        v.stdout.contains("verify: all 21 targets hold"),
        "{}",
        v.stdout
    );
    for row in [
        "gs1_idealized",
        "gs1_hybrid",
        "gs2_idealized",
        "gs2_hybrid",
        "study",
    ] {
        let line = v.stdout.lines().find(|l| l.starts_with(row)).unwrap();
        assert_eq!(line.matches(" ok").count(), 5, "{line}");
    }

    let again = s.run(&["all"]);
    again.ok();
    assert!(
        again
            .stdout
            .contains("nothing to do: all 21 targets are fresh"),
        "{}",
        again.stdout
    );

    // What each kind built shows its condition's gridsize, read back as the engine reads it.
    let study = s.path("study");
    for (c, g) in [("gs1_idealized", 1), ("gs2_hybrid", 2)] {
        let facts = studymake_study::facts::dataset(&study.join(c).join("train_data.npz")).unwrap();
        assert_eq!(
            facts[0].value,
            studymake_engine::params::Value::Int(g),
            "{c}"
        );
        let facts = studymake_study::facts::model(&study.join(c).join("model")).unwrap();
        assert_eq!(
            facts[0].value,
            studymake_engine::params::Value::Int(g),
            "{c}"
        );
        let facts = studymake_study::facts::metrics(&study.join(c).join("evaluation")).unwrap();
        assert_eq!(
            facts[0].value,
            studymake_engine::params::Value::Int(g),
            "{c}"
        );
    }
    let summary = std::fs::read_to_string(study.join("report/summary.csv")).unwrap();
    assert_eq!(summary.lines().count(), 1 + 8, "{summary}");
    for f in [
        "summary.md",
        "reconstructions.png",
        "probes.png",
        "losses.png",
    ] {
        assert!(study.join("report").join(f).is_file(), "{f}");
    }
}

#[test]
fn replicates_of_the_builtin_model_verify_and_the_report_gives_their_spread() {
    let s = Study::from_fixture("tiny");
    s.write_studyfile(&s.original().replace(
        "train_seed = 42\n",
        "train_seed = 42\nmodel_seed = [42, 5]\n",
    ));
    let r = s.run(&["-j2", "all"]);
    r.ok();
    assert_eq!(
        built(&r.stdout).len(),
        4 + 4 * (2 + 2 * 2) + 1,
        "{}",
        r.stdout
    );
    let v = s.run(&["verify"]);
    v.ok();
    assert!(
        v.stdout.contains("verify: all 29 targets hold"),
        "{}",
        v.stdout
    );
    // Each replicate's model holds its own seed, read back as verify reads it.
    let study = s.path("study");
    for seed in [42, 5] {
        let facts = studymake_study::facts::model(&study.join(format!("gs2_hybrid/s{seed}/model")))
            .unwrap();
        let f = facts.iter().find(|f| f.param == "seed").unwrap();
        assert_eq!(f.value, studymake_engine::params::Value::Int(seed));
    }
    let summary = std::fs::read_to_string(study.join("report/summary.csv")).unwrap();
    // Per condition two network rows and the baseline's.
    assert_eq!(summary.lines().count(), 1 + 4 * 3, "{summary}");
    let md = std::fs::read_to_string(study.join("report/summary.md")).unwrap();
    assert!(md.contains("| gs1_hybrid | 2 (s5, s42) |"), "{md}");
    assert!(md.contains("mean +- 2 standard errors"), "{md}");
}

#[test]
fn an_external_model_reads_the_test_data_and_evaluate_scores_its_prediction() {
    let Some(python) = common::python("to run the external model") else {
        return;
    };
    let s = Study::from_fixture("tiny");
    // The native network's parameters have no reader now (and an unread parameter is an error).
    let text = s.original();
    let text: Vec<&str> = text
        .lines()
        .filter(|l| {
            !["epochs", "batch_size", "n_filters_scale"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    s.write_studyfile(&text.join("\n"));
    // The model is an external command that predicts the test data itself (as PtychoPINN's
    // trainer run as a recipe does); `evaluate` scores its prediction.npz.
    s.append(&format!(
        "\n[recipes.model]\ncommand = [{python:?}, \"external_model.py\", \"{{input.test_data}}\", \
         \"{{output}}\", \"{{report}}\", \"{{gridsize}}\"]\n"
    ));
    let r = s.run(&["-j2", "all"]);
    r.ok();
    assert_eq!(built(&r.stdout).len(), 21, "{}", r.stdout);
    let study = s.path("study");
    for c in ["gs1_idealized", "gs1_hybrid", "gs2_idealized", "gs2_hybrid"] {
        assert!(study.join(c).join("model/prediction.npz").is_file());
        let m = studymake_science::evaluation::metrics_file::MetricsFile::read(
            &study.join(c).join("evaluation"),
        )
        .unwrap();
        // The true patches, stitched and scored as the network's are: the truth, up to the
        // stitching of sub-pixel positions (the tiny network scores about 0.5).
        let p = &m.primary.network;
        eprintln!("{c}: {} {}", p.amplitude.pearson.0, p.phase.pearson.0);
        assert!(
            p.amplitude.pearson.0 > 0.95,
            "{c}: {}",
            p.amplitude.pearson.0
        );
        assert!(p.phase.pearson.0 > 0.95, "{c}: {}", p.phase.pearson.0);
        let g = if c.starts_with("gs2") { 2 } else { 1 };
        assert_eq!(m.model.gridsize, g, "{c}");
    }
    let v = s.run(&["verify"]);
    v.ok();
    // A new test set retrains the external model, which reads it.
    s.write_studyfile(
        &std::fs::read_to_string(s.path("Studyfile"))
            .unwrap()
            .replace("test_seed = 43", "test_seed = 44"),
    );
    let r = s.run(&["gs1_idealized/model"]);
    r.ok();
    let mut b = built(&r.stdout);
    b.sort();
    assert_eq!(
        b,
        ["gs1_idealized/model", "gs1_idealized/test_data"],
        "{}",
        r.stdout
    );
}
