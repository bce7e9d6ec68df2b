//! Tests that try hard to break studymake: SIGKILL at random moments, concurrent builds, and
//! `clean` next to symlinks that point out of the study.

mod common;

use common::Study;
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

/// Output digests of every cache entry: the set of complete, published artifacts.
fn published_digests(s: &Study) -> HashSet<String> {
    let mut out = HashSet::new();
    if let Ok(entries) = std::fs::read_dir(s.path("out/.studymake/cache")) {
        for e in entries.flatten() {
            if let Ok(text) = std::fs::read_to_string(e.path().join("manifest.json")) {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                out.insert(v["output_digest"].as_str().unwrap().to_string());
            }
        }
    }
    out
}

fn digest_of(path: &Path) -> String {
    studymake_engine::store::Store::hash_output(path)
        .unwrap()
        .0
        .hex()
}

/// 50 builds killed with SIGKILL at seeded random moments, each followed by a rerun to
/// completion: nothing good is lost, nothing partial is ever in place, manifests always parse,
/// scratch is reclaimed, and `verify` passes after every rerun.
#[test]
fn fifty_random_kills_lose_nothing() {
    let s = Study::new();
    s.run(&["-j2"]).ok();
    // How long one round's rebuild takes here, so the kills land across the whole build.
    s.write_studyfile(&s.original().replace("epochs = 3", "epochs = 99"));
    let t0 = std::time::Instant::now();
    s.run(&["-j2"]).ok();
    let round_ms = (t0.elapsed().as_millis() as u64).max(50);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2026);
    let mut survived = 0;
    let mut interrupted = 0;
    for round in 0..50 {
        // A new epochs value each round: models, metrics and the report must be rebuilt.
        s.write_studyfile(
            &s.original()
                .replace("epochs = 3", &format!("epochs = {}", 100 + round)),
        );
        let mut child = s.spawn(&["-j2"]);
        let delay = rng.random_range(0..round_ms);
        std::thread::sleep(Duration::from_millis(delay));
        let finished_first = child.try_wait().unwrap().is_some();
        // SIGKILL: no handler runs; the workers die with it (PR_SET_PDEATHSIG).
        let _ = child.kill();
        let _ = child.wait();
        if !finished_first {
            interrupted += 1;
        }

        // Whatever is in place is a complete published artifact (or the previous good one).
        let published = published_digests(&s);
        for m in std::fs::read_dir(s.path("out/.studymake/manifests")).unwrap() {
            let m = m.unwrap();
            if m.file_name().to_string_lossy().starts_with(".tmp-") {
                continue; // a manifest being written when the kill came; never read as one
            }
            let text = std::fs::read_to_string(m.path()).unwrap();
            let v: serde_json::Value = serde_json::from_str(&text).expect("manifests always parse");
            let out = s.path("out").join(v["output_path"].as_str().unwrap());
            if std::fs::symlink_metadata(&out).is_ok() {
                let d = digest_of(&out);
                assert!(
                    published.contains(&d),
                    "round {round}: {} is not a published artifact",
                    out.display()
                );
            }
        }

        let r = s.run(&["-j2"]);
        r.ok();
        let v = s.run(&["verify"]);
        assert_eq!(v.code, 0, "round {round}: {}", v.stdout);
        // A process of the killed run may still have been finishing a write while the rerun
        // reclaimed scratch; the next run reclaims whatever it left.
        let noop = s.run(&["-j2"]);
        noop.ok();
        assert!(
            noop.stdout.contains("nothing to do"),
            "round {round}: {}",
            noop.stdout
        );
        let leftovers = std::fs::read_dir(s.path("out/.studymake/tmp"))
            .unwrap()
            .count();
        assert_eq!(leftovers, 0, "round {round}: scratch left behind");
        survived += 1;
    }
    eprintln!("kills survived: {survived} (of which {interrupted} interrupted a running build)");
    assert!(
        interrupted >= 15,
        "too few kills landed mid-build ({interrupted} of 50, rebuild {round_ms} ms)"
    );
}

#[test]
fn four_concurrent_builds_one_at_a_time_and_the_result_verifies() {
    let s = Study::new();
    let children: Vec<_> = (0..4).map(|_| s.spawn(&["--wait", "-j2"])).collect();
    let mut total = 0;
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        total += common::built(&String::from_utf8_lossy(&o.stdout)).len();
    }
    assert_eq!(
        total, 21,
        "each target was built exactly once across the four runs"
    );
    s.run(&["verify"]).ok();

    // Without --wait, the others exit 2 naming the holder.
    std::fs::write(s.path("sleep_on_gs1_hybrid"), b"").unwrap();
    s.write_studyfile(&s.original().replace("epochs = 3", "epochs = 9"));
    let log = s.path("out/gs1_hybrid/logs/model.log");
    std::fs::remove_file(&log).unwrap();
    let mut holder = s.spawn(&["-j1"]);
    let t0 = std::time::Instant::now();
    while !std::fs::read_to_string(&log)
        .map(|t| t.contains("epochs"))
        .unwrap_or(false)
    {
        assert!(t0.elapsed().as_secs() < 30);
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..3 {
        let r = s.run(&[]);
        assert_eq!(r.code, 2);
        assert!(
            r.stderr.contains(&format!("pid {}", holder.id())),
            "{}",
            r.stderr
        );
    }
    holder.kill().unwrap();
    holder.wait().unwrap();
    std::fs::remove_file(s.path("sleep_on_gs1_hybrid")).unwrap();
    s.run(&[]).ok();
    s.run(&["verify"]).ok();
}

#[test]
fn clean_never_follows_a_symlink_out_of_the_study() {
    let s = Study::new();
    s.run(&[]).ok();
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(outside.path().join("model")).unwrap();
    std::fs::write(outside.path().join("model/precious.txt"), b"keep me").unwrap();
    std::fs::write(outside.path().join("train_data.npz"), b"keep me too").unwrap();
    // Replace a condition directory by a symlink that points outside the study.
    std::fs::remove_dir_all(s.path("out/gs2_hybrid")).unwrap();
    std::os::unix::fs::symlink(outside.path(), s.path("out/gs2_hybrid")).unwrap();
    let r = s.run(&["clean"]);
    r.ok();
    assert!(outside.path().join("model/precious.txt").exists());
    assert!(outside.path().join("train_data.npz").exists());
    assert!(
        r.stderr.contains("not inside the study directory"),
        "{}",
        r.stderr
    );
    assert!(
        !s.path("out/gs1_hybrid/model").exists(),
        "the rest is cleaned"
    );
}
