//! The Slurm client against a real Slurm: submit, poll, fail, cancel, find, batch polling.
//!
//! These tests need a cluster named by `SLURM_CONF` whose controller answers `scontrol ping`,
//! and whose nodes see this machine's `/tmp` (the local CI cluster of `.ci/slurm/start.sh`).
//! Without one each test prints `SKIPPED` and why, and passes, unless `STUDYMAKE_REQUIRE` lists
//! `slurm` (CI does): then it fails.
//!
//! ```sh
//! eval "$(.ci/slurm/start.sh)" && cargo test --test slurm_client -- --nocapture
//! .ci/slurm/stop.sh
//! ```

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use studymake_engine::executor::slurm::{
    write_job_script, JobExit, JobId, JobState, JobStatus, NameMatch, Slurm, SlurmConfig,
};

const SKIP: &str = "slurm not available: start it with .ci/slurm/start.sh \
                    (eval \"$(.ci/slurm/start.sh)\" exports SLURM_CONF)";

/// A client working in a fresh directory, or `None` (after saying why) without a cluster.
fn cluster(test: &str) -> Option<(Slurm, tempfile::TempDir)> {
    let dir = tempfile::Builder::new()
        .prefix("studymake-slurm-test-")
        .tempdir_in("/tmp")
        .expect("temporary directory");
    let slurm = Slurm::new(dir.path());
    // asked once per test binary: a broken SLURM_CONF makes the check take its 10 s timeout
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let here = common::available("slurm", || {
        if std::env::var_os("SLURM_CONF").is_none() {
            Err(format!("{test}: SLURM_CONF is unset; {SKIP}"))
        } else if !*AVAILABLE.get_or_init(|| slurm.available()) {
            Err(format!("{test}: `scontrol ping` does not answer; {SKIP}"))
        } else {
            Ok(())
        }
    });
    here.then_some((slurm, dir))
}

/// A job name no other test run uses.
fn unique_name(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("studymake:test-{}-{nanos}:{what}", std::process::id())
}

/// Write a job script running `sh -c CMD`, submit it, return (id, log path).
fn submit_sh(
    slurm: &Slurm,
    dir: &Path,
    what: &str,
    cmd: &str,
    cfg: &SlurmConfig,
) -> (JobId, PathBuf) {
    let script = dir.join(format!("{what}.sh"));
    let log = dir.join(format!("{what}.out"));
    write_job_script(&script, &["/bin/sh", "-c", cmd]).expect("job script");
    let id = slurm
        .submit(&unique_name(what), &script, &log, cfg)
        .expect("sbatch");
    (id, log)
}

/// Poll `ids` (one call each round) until every one is terminal; panics after `limit`.
fn wait_all(slurm: &Slurm, ids: &[JobId], limit: Duration) -> HashMap<JobId, JobStatus> {
    let t0 = Instant::now();
    loop {
        let st = slurm.poll(ids).expect("poll");
        assert_eq!(st.len(), ids.len(), "poll answers for every id: {st:?}");
        if st.values().all(|s| s.state.is_terminal()) {
            return st;
        }
        assert!(
            t0.elapsed() < limit,
            "jobs not finished after {limit:?}: {st:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Poll one job until `pred` holds; panics after `limit`.
fn wait_for(
    slurm: &Slurm,
    id: JobId,
    limit: Duration,
    pred: impl Fn(&JobStatus) -> bool,
) -> JobStatus {
    let t0 = Instant::now();
    loop {
        let st = slurm
            .poll(&[id])
            .expect("poll")
            .remove(&id)
            .expect("status of id");
        if pred(&st) {
            return st;
        }
        assert!(t0.elapsed() < limit, "job {id} still {st} after {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Where the real program `name` is on PATH.
fn on_path(name: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not on PATH"))
}

const LIMIT: Duration = Duration::from_secs(90);

#[test]
fn trivial_job_completes_and_gets_only_path_from_the_submitter() {
    let Some((slurm, dir)) = cluster("trivial_job_completes") else {
        return;
    };
    assert!(
        std::env::var_os("CARGO_MANIFEST_DIR").is_some(),
        "cargo sets this in the test's environment"
    );
    let t0 = Instant::now();
    let (id, log) = submit_sh(
        &slurm,
        dir.path(),
        "hello",
        "echo hello from slurm; pwd; env",
        &SlurmConfig::default(),
    );
    let submitted = t0.elapsed();
    let st = wait_all(&slurm, &[id], LIMIT).remove(&id).unwrap();
    let done = t0.elapsed();
    eprintln!(
        "trivial job {id}: sbatch took {submitted:?}, sbatch -> {} took {done:?}",
        st.state
    );
    assert_eq!(st.state, JobState::Completed, "{st}");
    assert!(st.state.is_success());
    assert_eq!(st.exit, Some(JobExit { code: 0, signal: 0 }));
    let out = std::fs::read_to_string(&log).expect("job log");
    assert!(out.contains("hello from slurm"), "{out}");
    assert!(
        out.contains(&format!("studymake: Slurm job {id} on ")),
        "{out}"
    );
    // --chdir is the client's working directory
    let cwd = dir.path().canonicalize().unwrap();
    assert!(out.lines().any(|l| Path::new(l) == cwd), "{out}");
    // --export=PATH: the submitter's PATH, none of its other variables
    let path = std::env::var("PATH").unwrap();
    assert!(out.contains(&format!("PATH={path}\n")), "{out}");
    assert!(!out.contains("CARGO_MANIFEST_DIR="), "{out}");
}

#[test]
fn failing_job_is_failed_with_exit_code_3_and_its_log_has_the_output() {
    let Some((slurm, dir)) = cluster("failing_job") else {
        return;
    };
    let (id, log) = submit_sh(
        &slurm,
        dir.path(),
        "broken",
        "echo 'it broke' >&2; exit 3",
        &SlurmConfig::default(),
    );
    let st = wait_all(&slurm, &[id], LIMIT).remove(&id).unwrap();
    assert_eq!(st.state, JobState::Failed, "{st}");
    assert!(st.state.is_terminal() && !st.state.is_success());
    assert_eq!(st.exit, Some(JobExit { code: 3, signal: 0 }), "{st}");
    let out = std::fs::read_to_string(&log).expect("job log");
    assert!(
        out.contains("it broke"),
        "stderr goes to the log too: {out}"
    );
}

#[test]
fn cancelled_sleep_job_is_cancelled_and_leaves_nothing_in_the_queue() {
    let Some((slurm, dir)) = cluster("cancelled_sleep_job") else {
        return;
    };
    let script = dir.path().join("sleep.sh");
    let log = dir.path().join("sleep.out");
    // an unusual duration marks this sleep among the machine's processes
    let secs = format!("299.{}", std::process::id());
    write_job_script(&script, &["/bin/sleep", &secs]).unwrap();
    let name = unique_name("gs2_hybrid/model");
    let id = slurm
        .submit(&name, &script, &log, &SlurmConfig::default())
        .unwrap();
    wait_for(&slurm, id, LIMIT, |s| s.state == JobState::Running);

    // a rerun finds the job by its name, exactly or by the run's prefix
    let found = slurm.find_running(&NameMatch::Exact(name.clone())).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].id, &found[0].name), (id, &name));
    assert_eq!(found[0].state, JobState::Running);
    let prefix = name.rsplit_once(':').unwrap().0.to_string() + ":";
    let by_prefix = slurm.find_running(&NameMatch::Prefix(prefix)).unwrap();
    assert_eq!(by_prefix.iter().map(|j| j.id).collect::<Vec<_>>(), [id]);

    slurm.cancel(&[id]).unwrap();
    let st = wait_all(&slurm, &[id], LIMIT).remove(&id).unwrap();
    assert_eq!(st.state, JobState::Cancelled, "{st}");
    assert!(!st.state.is_success());
    assert!(slurm
        .find_running(&NameMatch::Exact(name.clone()))
        .unwrap()
        .is_empty());
    // cancelling a finished job again is not an error
    slurm.cancel(&[id]).unwrap();

    // the job's process is gone (checked where the node is this machine, as in CI)
    let t0 = Instant::now();
    loop {
        let alive = std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&secs))
                .unwrap_or(false)
        });
        if !alive {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "sleep {secs} still runs"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn several_jobs_are_polled_in_one_squeue_call() {
    let Some((slurm, dir)) = cluster("several_jobs_polled") else {
        return;
    };
    // wrappers that log each call and run the real command
    let bin = dir.path().join("bin");
    let calls = dir.path().join("calls.log");
    std::fs::create_dir(&bin).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for tool in ["sbatch", "squeue", "scontrol", "sacct", "scancel"] {
        let real = on_path(tool);
        std::fs::write(
            bin.join(tool),
            format!(
                "#!/bin/sh\necho {tool} >> '{}'\nexec '{}' \"$@\"\n",
                calls.display(),
                real.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(bin.join(tool), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let slurm = slurm.with_program_dir(&bin);
    let cfg = SlurmConfig::default();
    let (ok, _) = submit_sh(&slurm, dir.path(), "ok", "true", &cfg);
    let (bad, _) = submit_sh(&slurm, dir.path(), "bad", "exit 3", &cfg);
    let (slow, _) = submit_sh(&slurm, dir.path(), "slow", "sleep 1", &cfg);
    let (sig, _) = submit_sh(&slurm, dir.path(), "sig", "kill -9 $$", &cfg);
    let ids = [ok, bad, slow, sig];
    let st = wait_all(&slurm, &ids, LIMIT);
    assert_eq!(st[&ok].state, JobState::Completed);
    assert_eq!(st[&bad].state, JobState::Failed);
    assert_eq!(st[&bad].exit.map(|e| e.code), Some(3));
    assert_eq!(st[&slow].state, JobState::Completed);
    assert_eq!(st[&sig].state, JobState::Failed);
    assert_eq!(st[&sig].exit.map(|e| e.signal), Some(9));

    // one more poll of the four finished jobs: exactly one squeue call, nothing else
    std::fs::write(&calls, "").unwrap();
    let again = slurm.poll(&ids).unwrap();
    assert_eq!(again, st);
    assert_eq!(std::fs::read_to_string(&calls).unwrap(), "squeue\n");

    // an id Slurm never had: squeue leaves it out, the fallbacks are asked, it is Vanished
    let bogus = JobId(66_666_666);
    std::fs::write(&calls, "").unwrap();
    let mixed = slurm.poll(&[ok, bogus]).unwrap();
    assert_eq!(mixed[&ok].state, JobState::Completed);
    assert_eq!(mixed[&bogus].state, JobState::Vanished);
    assert!(mixed[&bogus].state.is_terminal());
    let log = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(log, "squeue\nscontrol\nsacct\n");
    // only unknown ids: squeue fails with "Invalid job id specified", which is not an error
    let only = slurm.poll(&[bogus]).unwrap();
    assert_eq!(only[&bogus].state, JobState::Vanished);
}

#[test]
fn unsatisfiable_request_is_refused_or_reported_stuck() {
    let Some((slurm, dir)) = cluster("unsatisfiable_request") else {
        return;
    };
    let cfg = SlurmConfig {
        cpus: Some(4096),
        ..Default::default()
    };
    let script = dir.path().join("big.sh");
    write_job_script(&script, &["/bin/true"]).unwrap();
    match slurm.submit(
        &unique_name("big"),
        &script,
        &dir.path().join("big.out"),
        &cfg,
    ) {
        Err(e) => {
            let m = e.to_string();
            assert!(
                m.contains("sbatch") && m.contains("--cpus-per-task=4096"),
                "{m}"
            );
        }
        Ok(id) => {
            let st = wait_for(&slurm, id, LIMIT, |s| s.stuck_reason().is_some());
            assert_eq!(st.state, JobState::Pending);
            slurm.cancel(&[id]).unwrap();
            let st = wait_all(&slurm, &[id], LIMIT).remove(&id).unwrap();
            assert_eq!(st.state, JobState::Cancelled);
        }
    }
}

/// Needs a cluster that forgets finished jobs quickly, e.g.
/// `STUDYMAKE_SLURM_MIN_JOB_AGE=2 .ci/slurm/start.sh` (add `STUDYMAKE_SLURM_ACCOUNTING=1` for
/// the sacct path); slurmctld purges in a background pass, so this takes up to a few minutes.
#[test]
#[ignore = "needs a cluster with a small MinJobAge; takes minutes"]
fn forgotten_jobs_come_from_sacct_or_are_vanished() {
    let Some((slurm, dir)) = cluster("forgotten_jobs") else {
        return;
    };
    let (id, _) = submit_sh(
        &slurm,
        dir.path(),
        "forgotten",
        "exit 3",
        &SlurmConfig::default(),
    );
    let st = wait_all(&slurm, &[id], LIMIT).remove(&id).unwrap();
    assert_eq!(st.state, JobState::Failed);
    // wait until squeue no longer lists it
    let t0 = Instant::now();
    loop {
        let out = std::process::Command::new("squeue")
            .args(["-h", "-t", "all", "-o", "%i"])
            .output()
            .unwrap();
        if !String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.trim() == id.to_string())
        {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "job {id} never purged"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    eprintln!("job {id} purged from slurmctld after {:?}", t0.elapsed());
    let accounting = std::process::Command::new("sacct")
        .args(["-n", "-X", "-j", &id.to_string()])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let st = slurm.poll(&[id]).unwrap().remove(&id).unwrap();
    if accounting {
        assert_eq!(st.state, JobState::Failed, "{st}");
        assert_eq!(st.exit, Some(JobExit { code: 3, signal: 0 }));
    } else {
        assert_eq!(st.state, JobState::Vanished, "{st}");
    }
    eprintln!("forgotten job {id} (accounting: {accounting}): {st}");
}

/// Benchmark: sbatch -> COMPLETED of trivial jobs, one at a time, polled every 20 ms, with the
/// default `--export=PATH` and with `export = ["ALL"]`.
/// `cargo test --release --test slurm_client latency -- --ignored --nocapture`
#[test]
#[ignore = "benchmark"]
fn latency_of_trivial_jobs() {
    let Some((slurm, dir)) = cluster("latency") else {
        return;
    };
    let script = dir.path().join("true.sh");
    write_job_script(&script, &["/bin/true"]).unwrap();
    for (label, cfg) in [
        ("--export=PATH", SlurmConfig::default()),
        (
            "--export=ALL,PATH",
            SlurmConfig {
                export: Some(vec!["ALL".into()]),
                ..Default::default()
            },
        ),
    ] {
        let mut times = Vec::new();
        for i in 0..6 {
            let t0 = Instant::now();
            let id = slurm
                .submit(
                    &unique_name(&format!("lat{i}")),
                    &script,
                    &dir.path().join("lat.out"),
                    &cfg,
                )
                .unwrap();
            let submit = t0.elapsed();
            loop {
                let st = slurm.poll(&[id]).unwrap().remove(&id).unwrap();
                if st.state.is_terminal() {
                    assert_eq!(st.state, JobState::Completed);
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            times.push((submit.as_secs_f64(), t0.elapsed().as_secs_f64()));
        }
        let mut done: Vec<f64> = times.iter().map(|t| t.1).collect();
        done.sort_by(f64::total_cmp);
        eprintln!(
            "{label}: sbatch {:.3}-{:.3} s; sbatch->COMPLETED min {:.2} s, median {:.2} s, max {:.2} s",
            times.iter().map(|t| t.0).fold(f64::MAX, f64::min),
            times.iter().map(|t| t.0).fold(0.0, f64::max),
            done[0],
            (done[2] + done[3]) / 2.0,
            done[5]
        );
    }
}
