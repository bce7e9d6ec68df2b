//! The Slurm executor against a real Slurm (started by `.ci/slurm/start.sh`; CI does). When no
//! cluster answers, each test prints `SKIPPED` and passes, unless `STUDYMAKE_REQUIRE` lists
//! `slurm` (CI does): then it fails.

mod common;

use common::{built, Study};
use std::process::Command;

fn slurm_available() -> bool {
    common::available("slurm", || {
        if std::env::var_os("SLURM_CONF").is_none() {
            return Err("SLURM_CONF is unset; start Slurm with .ci/slurm/start.sh".into());
        }
        let up = Command::new("scontrol")
            .arg("ping")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("is UP"))
            .unwrap_or(false);
        if up {
            Ok(())
        } else {
            Err("`scontrol ping` does not answer; start Slurm with .ci/slurm/start.sh".into())
        }
    })
}

fn digests(s: &Study) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(s.path("out/.studymake/manifests")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        out.push((
            v["target"].as_str().unwrap().to_string(),
            v["output_digest"].as_str().unwrap().to_string(),
        ));
    }
    out.sort();
    out
}

fn queue_of(prefix: &str) -> Vec<String> {
    let o = Command::new("squeue")
        .args(["-h", "-o", "%j"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

#[test]
fn slurm_build_equals_local_build_and_verifies() {
    if !slurm_available() {
        return;
    }
    let local = Study::new();
    local.run(&["-j2"]).ok();
    let remote = Study::new();
    let r = remote.run(&["--executor", "slurm", "-j8"]);
    r.ok();
    assert_eq!(built(&r.stdout).len(), 21, "{}", r.stdout);
    assert_eq!(
        digests(&local),
        digests(&remote),
        "identical bytes whichever executor ran them"
    );
    remote.run(&["verify"]).ok();
    let again = remote.run(&["--executor", "slurm"]);
    again.ok();
    assert!(again.stdout.contains("nothing to do"), "{}", again.stdout);
}

#[test]
fn a_failing_slurm_job_is_reported_with_its_state_and_log() {
    if !slurm_available() {
        return;
    }
    let s = Study::new();
    s.write_studyfile(
        &s.original()
            .replace("fail_on = \"none\"", "fail_on = \"gs1_hybrid\""),
    );
    let r = s.run(&["--executor", "slurm", "-k", "-j8"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("FAILED gs1_hybrid/model"), "{}", r.stderr);
    assert!(r.stderr.contains("ended FAILED, exit 1"), "{}", r.stderr);
    assert!(
        r.stderr.contains("gs1_hybrid/logs/model.log"),
        "{}",
        r.stderr
    );
    assert!(
        r.stdout.contains("skipped gs1_hybrid/metrics"),
        "{}",
        r.stdout
    );
    assert_eq!(built(&r.stdout).len(), 18, "{}", r.stdout);
}

#[test]
fn sigint_cancels_the_runs_jobs_and_a_rerun_completes_only_what_is_missing() {
    if !slurm_available() {
        return;
    }
    let s = Study::new();
    std::fs::write(s.path("sleep_on_gs2_hybrid"), b"").unwrap();
    let child = s.spawn(&["--executor", "slurm", "-j8"]);
    let log = s.path("out/gs2_hybrid/logs/model.log");
    let t0 = std::time::Instant::now();
    while !std::fs::read_to_string(&log)
        .map(|t| t.contains("runs"))
        .unwrap_or(false)
    {
        assert!(t0.elapsed().as_secs() < 60, "the slow job never started");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let first = child.wait_with_output().unwrap();
    assert_eq!(
        first.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let first_built = built(&String::from_utf8_lossy(&first.stdout));
    let manifests =
        std::fs::read_to_string(s.path("out/.studymake/manifests/gs2_hybrid~model.json"));
    assert!(
        manifests.is_err(),
        "the interrupted target was not published"
    );
    let t0 = std::time::Instant::now();
    loop {
        let q = queue_of("studymake:fixture-");
        let ours: Vec<_> = q
            .iter()
            .filter(|j| j.contains(":gs2_hybrid/model"))
            .collect();
        if ours.is_empty() {
            break;
        }
        assert!(t0.elapsed().as_secs() < 30, "jobs left in the queue: {q:?}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    std::fs::remove_file(s.path("sleep_on_gs2_hybrid")).unwrap();
    let r = s.run(&["--executor", "slurm", "-j8"]);
    r.ok();
    let again = built(&r.stdout);
    for t in &first_built {
        assert!(!again.contains(t), "{t} built twice");
    }
    assert_eq!(first_built.len() + again.len(), 21);
    s.run(&["verify"]).ok();
}
