//! Write failures through the real binary: a file size limit (`RLIMIT_FSIZE`) at several sizes,
//! directories made immutable (`chattr +i`, which binds root too), and a full small filesystem
//! (a tmpfs mounted in a private mount namespace). Each faulty run must end the target with a
//! clear error (exit 1, naming the target and the file), keep every output that was not rebuilt
//! byte-identical with its manifest, leave no partial file behind, keep `verify` free of anything
//! but staleness, and a rerun without the fault must complete and verify.

mod common;

use common::{Immutable, Run, Study, BIN};
use std::collections::{BTreeMap, HashSet};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every file of an output (a file or a directory), relative path -> bytes.
fn read_tree(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, p: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(meta) = std::fs::symlink_metadata(p) else {
            return;
        };
        if meta.is_dir() {
            for e in std::fs::read_dir(p).unwrap() {
                walk(base, &e.unwrap().path(), out);
            }
        } else {
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            out.insert(rel, std::fs::read(p).unwrap());
        }
    }
    walk(path, path, &mut out);
    out
}

/// What a study holds now: per target, its manifest's bytes and its output's bytes. `root`
/// prefixes every path (`/proc/PID/root` to look into another mount namespace).
type Snapshot = BTreeMap<String, (Vec<u8>, BTreeMap<String, Vec<u8>>)>;

fn snapshot(root: &Path, study: &Path) -> Snapshot {
    let at = |p: &Path| root.join(p.strip_prefix("/").unwrap());
    let out = at(&study.join("out"));
    let mut snap = Snapshot::new();
    for m in std::fs::read_dir(out.join(".studymake/manifests")).unwrap() {
        let m = m.unwrap();
        if m.file_name().to_string_lossy().starts_with(".tmp-") {
            continue;
        }
        let bytes = std::fs::read(m.path()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let target = v["target"].as_str().unwrap().to_string();
        let files = read_tree(&out.join(v["output_path"].as_str().unwrap()));
        snap.insert(target, (bytes, files));
    }
    snap
}

/// Targets a run says it built or restored (their outputs may rightly have changed).
fn changed(stdout: &str) -> HashSet<String> {
    stdout
        .lines()
        .filter_map(|l| {
            let rest = l
                .split_once("] built ")
                .or_else(|| l.split_once("] restored "))?
                .1;
            Some(rest.split(':').next()?.trim().to_string())
        })
        .collect()
}

/// Partial files a failed write could leave in the study: output copies being installed next to
/// their destination, half cache entries, manifests being written.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    fn walk(p: &Path, found: &mut Vec<PathBuf>) {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let bad = (name.starts_with('.') && name.contains(".new-"))
                    || name.contains(".tmp-")
                    || name.contains(".old-");
                if bad {
                    found.push(e.path());
                }
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    walk(&e.path(), found);
                }
            }
        }
    }
    walk(dir, &mut found);
    found
}

/// The checks every faulty run must pass. `before` was taken just before the run; `after` just
/// after; `verify` is `verify --json` run after it (with the same Studyfile).
fn check_faulty_run(case: &str, r: &Run, before: &Snapshot, after: &Snapshot, verify: &str) {
    assert_eq!(r.code, 1, "{case}: exit 1\n{}\n{}", r.stdout, r.stderr);
    assert!(!r.stderr.contains("panicked"), "{case}: {}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    let mut failed = 0;
    for (k, l) in lines.iter().enumerate() {
        let Some((_, f)) = l.split_once("] FAILED ") else {
            continue;
        };
        failed += 1;
        // `target: /path/of/the/file: what went wrong`, or a recipe's failure with its log.
        let names_file = f.contains(": /")
            || lines
                .get(k + 1)
                .is_some_and(|n| n.trim_start().starts_with("log: /"));
        assert!(
            names_file,
            "{case}: the failure names the file: {f}\n{}",
            r.stderr
        );
    }
    assert!(failed > 0, "{case}: a target failed\n{}", r.stderr);
    let rebuilt = changed(&r.stdout);
    for (target, (manifest, files)) in before {
        if rebuilt.contains(target) {
            continue;
        }
        let (m2, f2) = after
            .get(target)
            .unwrap_or_else(|| panic!("{case}: {target} lost its manifest"));
        assert!(m2 == manifest, "{case}: manifest of {target} changed");
        assert!(
            f2 == files,
            "{case}: output of {target} changed though it was not rebuilt"
        );
    }
    let v: serde_json::Value = serde_json::from_str(verify).unwrap();
    assert_eq!(v["missing"], serde_json::json!([]), "{case}: {verify}");
    for f in v["findings"].as_array().unwrap() {
        let check = f["check"].as_str().unwrap();
        let msg = f["message"].as_str().unwrap();
        let stale_lineage = check == "lineage" && rebuilt.iter().any(|t| msg.contains(t.as_str()));
        assert!(
            check == "freshness" || stale_lineage,
            "{case}: verify found more than staleness: {f}"
        );
    }
}

/// Run studymake under a file size limit, with SIGXFSZ left at its default: studymake must
/// ignore it itself (a write past the limit is then an EFBIG error, not a kill).
fn run_with_fsize(s: &Study, limit: u64, args: &[&str]) -> Run {
    let mut c = Command::new(BIN);
    c.current_dir(s.dir.path())
        .args(args)
        .env_remove("RUST_LOG");
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: libc::RLIM_INFINITY,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_DFL);
            Ok(())
        });
    }
    let out = c.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A file size limit at sizes that make different writes fail: the lock file, the job spec, the
/// cache entry's manifest, the target's manifest, the state log. Outputs are a few hundred bytes
/// and always fit; what fails is studymake's own bookkeeping around them.
#[test]
fn file_size_limit_in_studymakes_own_writes_keeps_the_good_state() {
    let s = Study::new();
    s.run(&["-j1"]).ok();
    let root = Path::new("/");
    let log_size = std::fs::metadata(s.path("out/.studymake/state.log"))
        .unwrap()
        .len();
    let mut seen_files = HashSet::new();
    // 0: the lock; 512: the job spec; 1024 and 1300: a manifest; the log's size: the log.
    let limits = [512, 1024, 1300, 2048, log_size];
    for (round, limit) in limits.into_iter().enumerate() {
        s.write_studyfile(
            &s.original()
                .replace("epochs = 3", &format!("epochs = {}", 10 + round)),
        );
        let before = snapshot(root, s.dir.path());
        let r = run_with_fsize(&s, limit, &["-j1"]);
        let after = snapshot(root, s.dir.path());
        let v = s.run(&["verify", "--json"]);
        let case = format!("RLIMIT_FSIZE {limit}");
        check_faulty_run(&case, &r, &before, &after, &v.stdout);
        assert!(r.stderr.contains("File too large"), "{case}: {}", r.stderr);
        for l in r.stderr.lines().filter(|l| l.contains("] FAILED ")) {
            let file = l.rsplit_once(": File too large").unwrap().0;
            let file = file.rsplit('/').next().unwrap();
            seen_files.insert(if file.ends_with(".json") && file.contains('~') {
                "target manifest".to_string()
            } else {
                file.to_string()
            });
        }
        assert!(leftovers(&s.path("out")).is_empty(), "{case}");
    }
    eprintln!("files whose writes failed: {seen_files:?}");
    for f in ["job.json", "manifest.json", "state.log"] {
        assert!(seen_files.contains(f), "{f} never failed: {seen_files:?}");
    }
    // The limit on the lock itself: refused before anything starts, naming the lock.
    let r = run_with_fsize(&s, 0, &["-j1"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(".studymake/lock"), "{}", r.stderr);

    // Without the fault, the run completes (restoring what reached the cache) and verifies.
    s.run(&["-j1"]).ok();
    s.run(&["verify"]).ok();
    assert!(s.run(&[]).stdout.contains("nothing to do"));
    assert_eq!(
        std::fs::read_dir(s.path("out/.studymake/tmp"))
            .unwrap()
            .count(),
        0,
        "scratch is reclaimed"
    );
}

/// The recipe's own write fails: a model recipe that writes `epochs` x 8 KiB under a 48 KiB
/// limit. The worker gets EFBIG (not SIGXFSZ), the target fails naming the reason in its log
/// tail, and the previous model (24 KiB) stays.
#[test]
fn file_size_limit_in_the_recipe_fails_the_target_and_keeps_the_previous_output() {
    let s = Study::new();
    std::fs::write(
        s.path("recipes/big_model.sh"),
        "#!/bin/sh\n# big_model.sh OUTPUT REPORT GRIDSIZE EPOCHS\nset -e\nmkdir -p \"$1\"\n\
         printf 'weights gridsize=%s epochs=%s\\n' \"$3\" \"$4\" > \"$1/weights.txt\"\n\
         head -c $(($4 * 8192)) /dev/zero > \"$1/weights.bin\"\n\
         printf '{\"params\": {\"gridsize\": %s}}\\n' \"$3\" > \"$2\"\n",
    )
    .unwrap();
    let text = s.original().replace(
        "command = [\"sh\", \"recipes/model.sh\", \"{output}\", \"{report}\", \"{gridsize}\", \"{seed}\", \"{param.epochs}\", \"{input.train_data}\", \"{condition}\", \"{param.fail_on}\"]",
        "command = [\"sh\", \"recipes/big_model.sh\", \"{output}\", \"{report}\", \"{gridsize}\", \"{param.epochs}\"]",
    );
    let text = text.replace("fail_on = \"none\"\n", "");
    assert_ne!(text, s.original());
    s.write_studyfile(&text);
    s.run(&["-j1"]).ok();
    let model = s.path("out/gs1_idealized/model/weights.bin");
    assert_eq!(std::fs::metadata(&model).unwrap().len(), 3 * 8192);

    s.write_studyfile(&text.replace("epochs = 3", "epochs = 9"));
    let before = snapshot(Path::new("/"), s.dir.path());
    let r = run_with_fsize(&s, 48 * 1024, &["-j1"]);
    let after = snapshot(Path::new("/"), s.dir.path());
    let v = s.run(&["verify", "--json"]);
    check_faulty_run("recipe over RLIMIT_FSIZE", &r, &before, &after, &v.stdout);
    assert!(
        r.stderr.contains("FAILED gs1_idealized/model"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("File too large"),
        "the log tail shows the recipe's EFBIG: {}",
        r.stderr
    );
    assert_eq!(std::fs::metadata(&model).unwrap().len(), 3 * 8192);
    assert!(leftovers(&s.path("out")).is_empty());

    s.run(&["-j1"]).ok();
    s.run(&["verify"]).ok();
    assert_eq!(std::fs::metadata(&model).unwrap().len(), 9 * 8192);
}

/// Read-only directories root cannot bypass: the condition directory (the output cannot be
/// installed), the cache (the output cannot be published) and the manifest directory.
#[test]
fn immutable_directories_fail_the_target_and_keep_the_good_state() {
    let s = Study::new();
    s.run(&["-j1"]).ok();
    let probe = s.path("out/chattr-probe");
    std::fs::create_dir(&probe).unwrap();
    let works = Immutable::set(&probe).is_some_and(|g| {
        let blocked = std::fs::write(probe.join("x"), b"x").is_err();
        drop(g);
        blocked
    });
    std::fs::remove_dir_all(&probe).unwrap();
    if !common::available("chattr", || {
        works.then_some(()).ok_or_else(|| {
            "`chattr +i` is not supported on this filesystem or for this user".into()
        })
    }) {
        return;
    }
    let cases = [
        ("out/gs1_idealized", "gs1_idealized/model"),
        ("out/.studymake/cache", "gs1_idealized/model"),
        ("out/.studymake/manifests", "gs1_idealized/model"),
    ];
    for (round, (dir, target)) in cases.into_iter().enumerate() {
        s.write_studyfile(
            &s.original()
                .replace("epochs = 3", &format!("epochs = {}", 20 + round)),
        );
        let before = snapshot(Path::new("/"), s.dir.path());
        let guard = Immutable::set(&s.path(dir)).expect("chattr worked above");
        let r = s.run(&["-j1"]);
        drop(guard);
        let after = snapshot(Path::new("/"), s.dir.path());
        let v = s.run(&["verify", "--json"]);
        let case = format!("immutable {dir}");
        check_faulty_run(&case, &r, &before, &after, &v.stdout);
        assert!(
            r.stderr.contains(&format!("FAILED {target}: ")),
            "{case}: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains("Operation not permitted"),
            "{case}: {}",
            r.stderr
        );
        assert!(leftovers(&s.path("out")).is_empty(), "{case}");
    }
    s.run(&["-j1"]).ok();
    s.run(&["verify"]).ok();
}

/// A private mount namespace held open by a sleeping process, with a small tmpfs mounted on the
/// study's `out/`. Commands run in it with `nsenter`; its files are read through
/// `/proc/PID/root`. Dropping it ends the process, and the namespace and the tmpfs go with it.
struct SmallFs {
    holder: std::process::Child,
}

impl SmallFs {
    fn mount(out: &Path, size: &str) -> Result<SmallFs, String> {
        let mut holder = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sleep", "600"])
            .spawn()
            .map_err(|e| format!("unshare: {e}"))?;
        let pid = holder.id().to_string();
        // Wait until the holder is in its own namespace (after unshare's exec of sleep).
        let mine = std::fs::read_link("/proc/self/ns/mnt").map_err(|e| e.to_string())?;
        let t0 = std::time::Instant::now();
        loop {
            if let Ok(Some(st)) = holder.try_wait() {
                return Err(format!("`unshare -m` failed ({st})"));
            }
            let ns = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if ns.is_some_and(|n| n != mine) && comm.trim() == "sleep" {
                break;
            }
            if t0.elapsed().as_secs() > 10 {
                let _ = holder.kill();
                return Err("`unshare -m` did not start".into());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let fs = SmallFs { holder };
        let o = Command::new("nsenter")
            .args(["-t", &pid, "-m", "--", "mount", "-t", "tmpfs", "-o"])
            .arg(format!("size={size}"))
            .arg("studymake-test")
            .arg(out)
            .output()
            .map_err(|e| format!("nsenter: {e}"))?;
        if !o.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        Ok(fs)
    }

    fn root(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.holder.id()))
    }

    /// `path` as seen inside the namespace.
    fn at(&self, path: &Path) -> PathBuf {
        self.root().join(path.strip_prefix("/").unwrap())
    }

    fn run(&self, dir: &Path, args: &[&str]) -> Run {
        let out = Command::new("nsenter")
            .args(["-t", &self.holder.id().to_string(), "-m"])
            .arg(format!("--wd={}", dir.display()))
            .arg("--")
            .arg(BIN)
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Fill `file` until the filesystem is full, then give back `free` bytes.
fn fill(file: &Path, free: u64) {
    use std::io::Write;
    let mut f = std::fs::File::create(file).unwrap();
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    let len = f.metadata().unwrap().len();
    f.set_len(len.saturating_sub(free)).unwrap();
}

/// The study's `out/` on a 2 MiB tmpfs that a filler file leaves 0 to 64 KiB of: each rebuild
/// runs out of space at a different write (job spec, recipe output, cache copy, installed copy,
/// manifest, state log).
#[test]
fn full_filesystem_fails_the_target_and_keeps_the_good_state() {
    let s = Study::new();
    let out = s.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let mounted = SmallFs::mount(&out, "2m");
    if !common::available("tmpfs", || match &mounted {
        Ok(_) => Ok(()),
        Err(why) => Err(format!("cannot mount a small tmpfs here: {why}")),
    }) {
        return;
    }
    let Ok(fs) = mounted else { return };
    let study = s.dir.path();
    fs.run(study, &["-j1"]).ok();
    assert!(
        !out.join(".studymake").exists(),
        "the study was built on the tmpfs, not on the directory under it"
    );
    let filler = fs.at(&out.join("filler"));
    let mut failed_files = HashSet::new();
    let mut faulty = 0;
    for (round, free_pages) in [0u64, 1, 2, 3, 4, 6, 8, 12, 16].into_iter().enumerate() {
        s.write_studyfile(
            &s.original()
                .replace("epochs = 3", &format!("epochs = {}", 30 + round)),
        );
        fill(&filler, free_pages * 4096);
        let before = snapshot(&fs.root(), study);
        let r = fs.run(study, &["-j1"]);
        let after = snapshot(&fs.root(), study);
        std::fs::remove_file(&filler).unwrap();
        let case = format!("tmpfs with {free_pages} pages free");
        if r.code == 0 {
            // Enough room for this round's rebuild: nothing to check but success.
            continue;
        }
        if r.code == 2 {
            // Refused before building anything (the lock could not be written): nothing changed.
            assert!(
                r.stderr.contains("No space left on device") && r.stderr.contains(": /"),
                "{case}: {}",
                r.stderr
            );
            assert!(before == after, "{case}: a refused run changed nothing");
            failed_files.insert("lock".into());
            continue;
        }
        faulty += 1;
        let v = fs.run(study, &["verify", "--json"]);
        check_faulty_run(&case, &r, &before, &after, &v.stdout);
        // studymake's own writes say ENOSPC; `sh`'s printf says "I/O error" in the log tail.
        assert!(
            r.stderr.contains("No space left on device") || r.stderr.contains("| recipes/"),
            "{case}: {}",
            r.stderr
        );
        if !r.stderr.contains("No space left on device") {
            failed_files.insert("recipe output".into());
        }
        for l in r.stderr.lines().filter(|l| l.contains("] FAILED ")) {
            if let Some((file, _)) = l.rsplit_once(": No space left") {
                failed_files.insert(file.rsplit('/').next().unwrap().to_string());
            }
        }
        assert!(leftovers(&fs.at(&out)).is_empty(), "{case}");
        // Without the fault the rebuild completes and verifies.
        fs.run(study, &["-j1"]).ok();
        fs.run(study, &["verify"]).ok();
    }
    eprintln!(
        "full-filesystem rounds that failed: {faulty}; files whose writes failed: {failed_files:?}"
    );
    assert!(
        faulty >= 3,
        "the filler made too few rounds fail ({faulty})"
    );
}
