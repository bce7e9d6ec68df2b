//! The engine, end to end: the real binary on the fixture study (tiny shell recipes) in temp dirs.

mod common;

use common::{built, Study};

#[test]
fn full_build_then_nothing_to_do() {
    let s = Study::new();
    let r = s.run(&["-j2"]);
    r.ok();
    assert_eq!(built(&r.stdout).len(), 21, "{}", r.stdout);
    assert!(s.path("out/gs2_hybrid/model/weights.txt").is_file());
    assert!(s.path("out/gs1_idealized/train_data.npz").is_file());
    assert!(s
        .path("out/.studymake/manifests/gs2_hybrid~model.json")
        .is_file());

    let r = s.run(&[]);
    r.ok();
    assert!(built(&r.stdout).is_empty(), "{}", r.stdout);
    assert!(
        r.stdout.contains("nothing to do: all 21 targets are fresh"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_seed_change_rebuilds_exactly_its_targets_and_going_back_restores_from_cache() {
    let s = Study::new();
    s.run(&[]).ok();
    s.append("\n[conditions.gs1_idealized]\ntrain_seed = 44\n");
    let dry = s.run(&["-n"]);
    dry.ok();
    assert!(
        dry.stdout.contains("would build gs1_idealized/train_data")
            && dry.stdout.contains("parameter `seed` changed: 42 -> 44"),
        "{}",
        dry.stdout
    );
    let r = s.run(&[]);
    r.ok();
    let mut b = built(&r.stdout);
    b.sort();
    assert_eq!(
        b,
        vec![
            "gs1_idealized/metrics",
            "gs1_idealized/model",
            "gs1_idealized/train_data",
            "report"
        ],
        "{}",
        r.stdout
    );
    // Back to the original seed: everything comes back from the cache, nothing executes.
    s.write_studyfile(&s.original());
    let r = s.run(&[]);
    r.ok();
    assert!(built(&r.stdout).is_empty(), "{}", r.stdout);
    assert_eq!(r.stdout.matches("] restored ").count(), 4, "{}", r.stdout);
    assert!(
        r.stdout.contains("from the cache, nothing executed"),
        "{}",
        r.stdout
    );
}

#[test]
fn early_cutoff_stops_the_cascade() {
    let s = Study::new();
    s.run(&[]).ok();
    // The object recipe ignores `lines`: the object is rebuilt to identical bytes.
    s.write_studyfile(&s.original().replace("lines = 400", "lines = 300"));
    let r = s.run(&[]);
    r.ok();
    assert_eq!(built(&r.stdout), vec!["objects/lines"], "{}", r.stdout);
    assert!(
        r.stdout.contains("output identical to the previous build"),
        "{}",
        r.stdout
    );
}

#[test]
fn touching_a_file_rebuilds_nothing_and_tampering_is_restored() {
    let s = Study::new();
    s.run(&[]).ok();
    let data = s.path("out/gs1_hybrid/train_data.npz");
    let bytes = std::fs::read(&data).unwrap();
    // Same bytes, new mtime and inode.
    std::fs::remove_file(&data).unwrap();
    std::fs::write(&data, &bytes).unwrap();
    let r = s.run(&[]);
    r.ok();
    assert!(built(&r.stdout).is_empty(), "{}", r.stdout);

    std::fs::write(&data, b"tampered").unwrap();
    let st = s.run(&["status"]);
    st.ok();
    assert!(st.stdout.contains("output modified"), "{}", st.stdout);
    let r = s.run(&[]);
    r.ok();
    assert!(built(&r.stdout).is_empty(), "{}", r.stdout);
    assert!(
        r.stdout.contains("restored gs1_hybrid/train_data"),
        "{}",
        r.stdout
    );
    assert_eq!(std::fs::read(&data).unwrap(), bytes);
}

#[test]
fn a_failure_skips_dependents_and_keep_going_builds_the_rest() {
    let s = Study::new();
    s.write_studyfile(
        &s.original()
            .replace("fail_on = \"none\"", "fail_on = \"gs2_hybrid\""),
    );
    let r = s.run(&["-j1"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("FAILED gs2_hybrid/model"), "{}", r.stderr);
    assert!(
        r.stderr.contains("gs2_hybrid/logs/model.log"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("failing on purpose"),
        "the log tail is shown: {}",
        r.stderr
    );
    assert!(!s.path("out/gs2_hybrid/model").exists());

    let s = Study::new();
    s.write_studyfile(
        &s.original()
            .replace("fail_on = \"none\"", "fail_on = \"gs2_hybrid\""),
    );
    let r = s.run(&["-k", "-j1"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("skipped gs2_hybrid/metrics"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("skipped report"), "{}", r.stdout);
    // 21 targets - the failed model - its metrics - the report.
    assert_eq!(built(&r.stdout).len(), 18, "{}", r.stdout);
    let st = s.run(&["status"]);
    assert!(st.stdout.contains("failed last time"), "{}", st.stdout);
}

#[test]
fn leaked_gridsize_is_refused_and_nothing_is_published() {
    let s = Study::new();
    let leaky = s.original().replace(
        "[recipes.model]\ncommand = [\"sh\", \"recipes/model.sh\", \"{output}\", \"{report}\", \"{gridsize}\", \"{seed}\", \"{param.epochs}\", \"{input.train_data}\", \"{condition}\", \"{param.fail_on}\"]",
        "[recipes.model]\ncommand = [\"sh\", \"recipes/model_leaky.sh\", \"{output}\", \"{report}\", \"{gridsize}\", \"{input.train_data}\", \"{param.epochs}\"]",
    )
    .replace("fail_on = \"none\"\n", "");
    assert_ne!(leaky, s.original());
    s.write_studyfile(&leaky);
    let r = s.run(&["-k", "-j1"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    // gs1 conditions run first and leave gridsize 1 behind; both gs2 models are refused.
    for c in ["gs2_idealized", "gs2_hybrid"] {
        let want = format!(
            "{c}/model: built with gridsize 1 (reported by the recipe), declared gridsize 2"
        );
        assert!(r.stderr.contains(&want), "{want}\n{}", r.stderr);
        assert!(
            !s.path(&format!("out/{c}/model")).exists(),
            "nothing is published for {c}"
        );
    }
    assert!(s.path("out/gs1_idealized/model/weights.txt").exists());
}

#[test]
fn a_killed_build_resumes_with_only_the_interrupted_target() {
    let s = Study::new();
    std::fs::write(s.path("sleep_on_gs2_idealized"), b"").unwrap();
    let mut child = s.spawn(&["-j1"]);
    let log = s.path("out/gs2_idealized/logs/model.log");
    let t0 = std::time::Instant::now();
    while !log.exists() {
        assert!(t0.elapsed().as_secs() < 20, "the slow target never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    child.kill().unwrap();
    let first = child.wait_with_output().unwrap();
    let first_built = built(&String::from_utf8_lossy(&first.stdout));
    assert!(!first_built.is_empty());
    std::fs::remove_file(s.path("sleep_on_gs2_idealized")).unwrap();

    let r = s.run(&["-j1"]);
    r.ok();
    let again = built(&r.stdout);
    assert!(
        again.contains(&"gs2_idealized/model".to_string()),
        "{}",
        r.stdout
    );
    for t in &first_built {
        assert!(!again.contains(t), "{t} was built twice:\n{}", r.stdout);
    }
    assert_eq!(
        first_built.len() + again.len(),
        21,
        "{:?} + {:?}",
        first_built,
        again
    );
    let leftovers: Vec<_> = std::fs::read_dir(s.path("out/.studymake/tmp"))
        .unwrap()
        .collect();
    assert!(leftovers.is_empty(), "scratch directories are reclaimed");
}

#[test]
fn concurrent_builds_never_both_write() {
    let s = Study::new();
    std::fs::write(s.path("sleep_on_gs1_idealized"), b"").unwrap();
    let mut first = s.spawn(&["-j1"]);
    let log = s.path("out/gs1_idealized/logs/model.log");
    let t0 = std::time::Instant::now();
    while !log.exists() {
        assert!(t0.elapsed().as_secs() < 20, "the slow target never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let second = s.run(&[]);
    assert_eq!(second.code, 2, "{}", second.stderr);
    assert!(
        second.stderr.contains("being built by another studymake"),
        "{}",
        second.stderr
    );
    assert!(
        second.stderr.contains(&format!("pid {}", first.id())),
        "{}",
        second.stderr
    );
    first.kill().unwrap();
    first.wait().unwrap();
    // The killed holder's lock does not block a later run.
    std::fs::remove_file(s.path("sleep_on_gs1_idealized")).unwrap();
    s.run(&[]).ok();
}

#[test]
fn waiting_builds_run_one_after_the_other() {
    let s = Study::new();
    let a = s.spawn(&["--wait"]);
    let b = s.spawn(&["--wait"]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success());
    let total = built(&String::from_utf8_lossy(&a.stdout)).len()
        + built(&String::from_utf8_lossy(&b.stdout)).len();
    assert_eq!(total, 21, "every target built exactly once");
}

#[test]
fn one_target_builds_only_what_it_needs_and_clean_removes_only_it() {
    let s = Study::new();
    let r = s.run(&["gs2_hybrid/model"]);
    r.ok();
    let mut b = built(&r.stdout);
    b.sort();
    assert_eq!(
        b,
        vec![
            "gs2_hybrid/model",
            "gs2_hybrid/train_data",
            "objects/lines",
            "probes/experimental",
            "probes/hybrid",
            "probes/idealized"
        ]
    );
    let r = s.run(&["clean", "gs2_hybrid/model"]);
    r.ok();
    assert!(!s.path("out/gs2_hybrid/model").exists());
    assert!(s.path("out/gs2_hybrid/train_data.npz").exists());
    let r = s.run(&["gs2_hybrid/model"]);
    r.ok();
    assert!(
        r.stdout.contains("restored gs2_hybrid/model"),
        "{}",
        r.stdout
    );
}

#[test]
fn explain_names_each_cause() {
    let s = Study::new();
    s.run(&[]).ok();
    s.write_studyfile(&s.original().replace("epochs = 3", "epochs = 4"));
    let r = s.run(&["explain", "gs1_idealized/metrics"]);
    r.ok();
    assert!(
        r.stdout.contains("gs1_idealized/metrics is stale"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("input `model` (gs1_idealized/model) is rebuilt first"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("parameter `epochs` changed: 3 -> 4"),
        "{}",
        r.stdout
    );
    // Its own key material is unchanged until its input is rebuilt: no invented cause.
    assert!(!r.stdout.contains("key schema"), "{}", r.stdout);
    let r = s.run(&["-n", "all"]);
    r.ok();
    assert!(!r.stdout.contains("key schema"), "{}", r.stdout);
}

#[test]
fn profiles_override_parameters() {
    let s = Study::new();
    s.run(&["--profile", "quick"]).ok();
    let w = std::fs::read_to_string(s.path("out/gs1_idealized/model/weights.txt")).unwrap();
    assert!(w.contains("epochs=1"), "{w}");
    // status remembers the profile of the last build
    let st = s.run(&["status"]);
    assert!(st.stderr.contains("using profile `quick`"), "{}", st.stderr);
    assert!(!st.stdout.contains("stale"), "{}", st.stdout);
    let r = s.run(&["--profile", "nope"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no profile `nope`"), "{}", r.stderr);
}

/// Every Studyfile under `fixtures/bad/studyfiles/` is refused with exit 2 and a message that
/// names the file, a line and column, and contains the case's `# expect:` text.
#[test]
fn bad_studyfiles_are_refused_with_file_line_and_key() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bad/studyfiles");
    let mut cases = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} lacks an `# expect:` line", path.display()))
            .to_string();
        let out = std::process::Command::new(common::BIN)
            .args(["-n", "-f"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", path.display());
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let located = stderr
            .split_once(&format!("{name}:"))
            .map(|(_, rest)| rest.split(':').take(2).all(|n| n.parse::<usize>().is_ok()))
            .unwrap_or(false);
        assert!(located, "{name}: no file:line:col in {stderr}");
        assert!(
            stderr.contains(&expect),
            "{name}: expected {expect:?} in {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        cases += 1;
    }
    assert!(cases >= 20, "only {cases} cases");
}

#[test]
fn the_no_op_stamp_never_hides_a_change() {
    let s = Study::new();
    std::fs::write(s.path("measured.npy"), b"first probe").unwrap();
    s.append(
        "\n[probes.measured]\ncommand = [\"cp\", \"{input.file}\", \"{output}\"]\n\
         output = \"npy\"\ninputs = { file = { path = \"measured.npy\" } }\n",
    );
    s.run(&[]).ok();
    let r = s.run(&["-v"]);
    r.ok();
    assert!(r.stderr.contains("stamp: nothing changed"), "{}", r.stderr);

    // A file added inside a directory output is seen (the directory's mtime moved).
    std::fs::write(s.path("out/gs2_hybrid/model/extra.txt"), b"x").unwrap();
    let r = s.run(&[]);
    r.ok();
    assert!(
        r.stdout.contains("restored gs2_hybrid/model"),
        "{}",
        r.stdout
    );
    assert!(!s.path("out/gs2_hybrid/model/extra.txt").exists());

    // A changed source file rebuilds what reads it (the report lists every probe).
    std::fs::write(s.path("measured.npy"), b"second probe!").unwrap();
    let r = s.run(&[]);
    r.ok();
    assert_eq!(
        built(&r.stdout),
        vec!["probes/measured", "report"],
        "{}",
        r.stdout
    );

    // Another selection or profile is another context: checked in full, right.
    let r = s.run(&["--profile", "quick", "-v"]);
    r.ok();
    assert!(!r.stderr.contains("stamp: nothing changed"), "{}", r.stderr);
    let r = s.run(&["--profile", "quick", "-v"]);
    r.ok();
    assert!(r.stderr.contains("stamp: nothing changed"), "{}", r.stderr);

    // A build of a failing target leaves no stamp behind it that could hide the failure.
    s.append("\n[conditions.gs1_idealized]\nfail_on = \"gs1_idealized\"\n");
    let r = s.run(&[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let r = s.run(&["-v"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(!r.stderr.contains("stamp: nothing changed"), "{}", r.stderr);
}

#[test]
fn replicates_share_their_datasets_and_a_seed_change_rebuilds_only_its_replicate() {
    let s = Study::new();
    s.write_studyfile(&s.original().replace(
        "train_seed = 42\n",
        "train_seed = 42\nmodel_seed = [42, 7]\n",
    ));
    let r = s.run(&[]);
    r.ok();
    // 3 probes, 1 object; per condition 2 datasets and 2 replicates of model and metrics; the
    // report.
    assert_eq!(
        built(&r.stdout).len(),
        3 + 1 + 4 * (2 + 2 * 2) + 1,
        "{}",
        r.stdout
    );
    let weights = |rep: &str| {
        std::fs::read_to_string(s.path(&format!("out/gs2_hybrid/{rep}/model/weights.txt"))).unwrap()
    };
    assert!(
        weights("s7").starts_with("weights gridsize=2 seed=7 "),
        "{}",
        weights("s7")
    );
    assert!(weights("s42").starts_with("weights gridsize=2 seed=42 "));
    // Both replicates trained on the one dataset of their condition.
    let on = |rep: &str| {
        std::fs::read(s.path(&format!("out/gs2_hybrid/{rep}/model/trained_on.txt"))).unwrap()
    };
    assert_eq!(on("s7"), on("s42"));
    // Each replicate logs on its own.
    for rep in ["s7", "s42"] {
        assert!(s
            .path(&format!("out/gs2_hybrid/{rep}/logs/model.log"))
            .is_file());
    }
    assert_eq!(
        on("s7"),
        std::fs::read(s.path("out/gs2_hybrid/train_data.npz")).unwrap()
    );
    let v = s.run(&["verify"]);
    v.ok();
    assert!(
        v.stdout.contains("verify: all 29 targets hold"),
        "{}",
        v.stdout
    );
    // One condition changes one of its seeds: that replicate's model and metrics and the
    // report are built, never a dataset.
    s.append("\n[conditions.gs1_idealized]\nmodel_seed = [42, 8]\n");
    let r = s.run(&[]);
    r.ok();
    let mut b = built(&r.stdout);
    b.sort();
    assert_eq!(
        b,
        [
            "gs1_idealized/s8/metrics",
            "gs1_idealized/s8/model",
            "report"
        ],
        "{}",
        r.stdout
    );
    // `CONDITION/KIND` selects every replicate: cleaned, then restored from the cache.
    s.run(&["clean", "gs2_hybrid/model"]).ok();
    assert!(!s.path("out/gs2_hybrid/s7/model").exists());
    assert!(!s.path("out/gs2_hybrid/s42/model").exists());
    let r = s.run(&["gs2_hybrid/model"]);
    r.ok();
    assert!(built(&r.stdout).is_empty(), "{}", r.stdout);
    assert_eq!(r.stdout.matches("] restored ").count(), 2, "{}", r.stdout);
    // A single seed: the plain names again, and the seed-42 model comes from the cache.
    s.write_studyfile(
        &s.original()
            .replace("train_seed = 42\n", "train_seed = 42\nmodel_seed = 42\n"),
    );
    let r = s.run(&["gs2_hybrid/model"]);
    r.ok();
    assert!(built(&r.stdout).is_empty(), "{}", r.stdout);
    assert!(s.path("out/gs2_hybrid/model/weights.txt").is_file());
}
