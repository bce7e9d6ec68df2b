//! Reliability II (issue 19): what a hostile or careless recipe or Studyfile must not be able to
//! do. Each test is one reproduction from the issue, through the real binary on a copy of
//! `fixtures/study` whose shell recipes are edited to misbehave, and asserts what the user should
//! see: no wrong bytes published, nothing touched outside the study, no state studymake cannot
//! leave, stated limits, and messages that name what happened. `docs/hardening.md` lists them.

mod common;

use common::{files_containing, tree, Immutable, Run, Study};
use std::time::{Duration, Instant};

const GIB: u64 = 1 << 30;

/// The lines of `text` that contain every one of `parts`.
fn lines_with<'a>(text: &'a str, parts: &[&str]) -> Vec<&'a str> {
    text.lines()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .collect()
}

fn show(r: &Run) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        r.code, r.stdout, r.stderr
    )
}

/// Paths whose entry differs between two [`tree`] snapshots (created, removed or changed).
fn changed(
    before: &std::collections::BTreeMap<String, Vec<u8>>,
    after: &std::collections::BTreeMap<String, Vec<u8>>,
) -> Vec<String> {
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect()
}

/// The failed expectations of a test's sub-cases, so that one run reports every case.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    /// Note `expected` with the run's output unless `ok`.
    fn check(&mut self, ok: bool, expected: impl std::fmt::Display, r: &Run) {
        if !ok {
            self.0.push(format!("{expected}; got {}", show(r)));
        }
    }

    fn note(&mut self, problem: String) {
        self.0.push(problem);
    }

    #[track_caller]
    fn assert_none(self) {
        assert!(self.0.is_empty(), "{}", self.0.join("\n\n"));
    }
}

/// 1-based number of the first line of `text` that starts with `start`.
fn line_of(text: &str, start: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no line starting with {start:?}"))
        + 1
}

/// Case 1. The condition's name and the target's name reach the command line through
/// `{condition}` and `{target}`; two targets whose commands differ only there must not share a
/// key, or the cache hands one target's bytes to the other.
#[test]
fn condition_and_target_names_are_in_the_key_and_never_restored_across_targets() {
    let s = Study::new();
    s.append(
        "\n[conditions.replica]\ngridsize = 1\nprobe = \"idealized\"\n\n\
         [probes.twin_a]\ncommand = [\"sh\", \"recipes/probe.sh\", \"{output}\", \"{target}\"]\n\
         output = \"npy\"\n\n\
         [probes.twin_b]\ncommand = [\"sh\", \"recipes/probe.sh\", \"{output}\", \"{target}\"]\n\
         output = \"npy\"\n",
    );
    // The model writes the condition it was told into its weights.
    s.edit_recipe(
        "model.sh",
        "> \"$1/weights.txt\"\n",
        "> \"$1/weights.txt\"\nprintf 'condition=%s\\n' \"$7\" >> \"$1/weights.txt\"\n",
    );
    let weights =
        |c: &str| std::fs::read_to_string(s.path(&format!("out/{c}/model/weights.txt"))).unwrap();
    let twin_a = || std::fs::read_to_string(s.path("out/twin_a_probe.npy")).unwrap();
    s.run(&["-j1"]).ok();
    assert!(weights("replica").contains("condition=replica\n"));
    assert!(weights("gs1_idealized").contains("condition=gs1_idealized\n"));

    // Remove one of each pair and build again: each comes back with its own bytes.
    s.run(&["clean", "gs1_idealized/model", "probes/twin_a"])
        .ok();
    s.run(&["-j1"]).ok();
    assert!(
        weights("gs1_idealized").contains("condition=gs1_idealized\n"),
        "gs1_idealized/model was given another target's output:\n{}",
        weights("gs1_idealized")
    );
    assert_eq!(
        twin_a(),
        "probe probes/twin_a\n",
        "probes/twin_a was given another target's output"
    );

    // The keys say so, and every manifest describes its own target.
    for (a, b) in [
        ("gs1_idealized/model", "replica/model"),
        ("probes/twin_a", "probes/twin_b"),
    ] {
        assert_ne!(
            s.manifest(a)["key"],
            s.manifest(b)["key"],
            "{a} and {b} run different command lines under one key"
        );
    }
    for c in ["gs1_idealized", "replica"] {
        for kind in ["train_data", "test_data", "model", "metrics"] {
            let m = s.manifest(&format!("{c}/{kind}"));
            assert_eq!(m["target"], format!("{c}/{kind}"));
            assert_eq!(m["condition"], c, "{c}/{kind}: {m:#}");
            for (role, source) in m["input_sources"].as_object().unwrap() {
                let source = source.as_str().unwrap();
                assert!(
                    source.starts_with("probes/")
                        || source.starts_with("objects/")
                        || source.starts_with(&format!("{c}/")),
                    "{c}/{kind}: input `{role}` recorded as {source}"
                );
            }
        }
    }
    let v = s.run(&["verify"]);
    assert_eq!(v.code, 0, "{}", show(&v));
}

/// Case 2. A recipe appends to its published input (everything runs as root here, so file
/// permissions do not stop it). The job must fail naming the input, and nothing computed from
/// the changed bytes may be published or cached.
#[test]
fn a_recipe_that_changes_its_input_fails_naming_it() {
    let s = Study::new();
    s.edit_recipe(
        "data.sh",
        "set -e\n",
        "set -e\nif [ \"$3\" = 1 ] && [ \"$4\" = 42 ]; then echo CORRUPTED >> \"$6\"; fi\n",
    );
    let r = s.run(&["-j1", "-k"]);
    assert_eq!(
        r.code,
        1,
        "a job changed its input and the build passed:\n{}",
        show(&r)
    );
    let named = lines_with(
        &r.stderr,
        &[
            "FAILED gs1_idealized/train_data",
            "`probe`",
            "idealized_probe.npy",
            "changed",
        ],
    );
    assert!(!named.is_empty(), "{}", show(&r));
    // The two probes hold what the recipe appended to them; nothing else may.
    let corrupted: Vec<String> = files_containing(&s.path("out"), b"CORRUPTED")
        .into_iter()
        .filter(|p| p != "idealized_probe.npy" && p != "hybrid_probe.npy")
        .collect();
    assert!(
        corrupted.is_empty(),
        "published or cached from a changed input: {corrupted:#?}"
    );

    // With the recipe fixed, one build repairs the study: no corrupted byte is left anywhere.
    s.edit_recipe(
        "data.sh",
        "if [ \"$3\" = 1 ] && [ \"$4\" = 42 ]; then echo CORRUPTED >> \"$6\"; fi\n",
        "",
    );
    s.run(&["-j1"]).ok();
    let left = files_containing(&s.path("out"), b"CORRUPTED");
    assert!(left.is_empty(), "still corrupted: {left:#?}");
    let v = s.run(&["verify"]);
    assert_eq!(v.code, 0, "{}", show(&v));
}

/// Case 3. A recipe leaves a process behind that holds its output file open and writes into it
/// after the job has ended: every process a job started must be gone before its output is
/// hashed and published.
#[test]
fn a_lingering_grandchild_cannot_write_into_a_published_output() {
    let s = Study::new();
    s.edit_recipe(
        "model.sh",
        "cat \"$6\" > \"$1/trained_on.txt\"\n",
        "cat \"$6\" > \"$1/trained_on.txt\"\nexec 3>>\"$1/weights.txt\"; ( sleep 1; echo LATE >&3 ) &\n",
    );
    s.run(&["gs1_idealized/model"]).ok();
    let weights = s.path("out/gs1_idealized/model/weights.txt");
    let published = std::fs::read(&weights).unwrap();
    std::thread::sleep(Duration::from_millis(2000));
    let now = std::fs::read(&weights).unwrap();
    assert!(
        !String::from_utf8_lossy(&now).contains("LATE"),
        "a process the recipe left behind wrote into the output"
    );
    assert_eq!(
        String::from_utf8_lossy(&now),
        String::from_utf8_lossy(&published),
        "a process the recipe left behind wrote into the published output"
    );
    let v = s.run(&["verify", "gs1_idealized/model"]);
    assert_eq!(v.code, 0, "{}", show(&v));
}

/// Whether a process is still running (a zombie waiting for a parent that never reaps it is not).
fn running(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z') | Some('X') | None)
}

/// Case 3, the README's promise: "a killed studymake takes its workers with it", for everything
/// a recipe started (a background loop and a foreground child), whatever the signal: SIGHUP and
/// SIGKILL as well as SIGINT and SIGTERM. A handled signal also reclaims the scratch directory;
/// after SIGKILL the next run does. The rerun finishes and verifies.
#[test]
fn a_killed_studymake_takes_every_process_of_its_jobs_with_it() {
    let hold = "if [ -f \"hold_$7\" ]; then\n  ( while :; do sleep 0.2; done ) &\n  \
                echo $! >> \"pids_$7\"\n  sleep 60 &\n  echo $! >> \"pids_$7\"\n  wait\nfi\n";
    let mut problems = Problems::default();
    for (name, sig) in [
        ("SIGHUP", libc::SIGHUP),
        ("SIGKILL", libc::SIGKILL),
        ("SIGINT", libc::SIGINT),
        ("SIGTERM", libc::SIGTERM),
    ] {
        let s = Study::new();
        s.edit_recipe(
            "model.sh",
            "mkdir -p \"$1\"\n",
            &format!("{hold}mkdir -p \"$1\"\n"),
        );
        std::fs::write(s.path("hold_gs1_idealized"), b"").unwrap();
        let pids_file = s.path("pids_gs1_idealized");
        let mut child = s.spawn(&["gs1_idealized/model"]);
        let t0 = Instant::now();
        let pids: Vec<i32> = loop {
            let pids: Vec<i32> = std::fs::read_to_string(&pids_file)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            if pids.len() == 2 {
                break pids;
            }
            if t0.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{name}: the recipe never started its processes");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(200));
        // SAFETY: signalling the child we started.
        unsafe {
            libc::kill(child.id() as i32, sig);
        }
        let t0 = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if t0.elapsed() > Duration::from_secs(10) {
                problems.note(format!("{name}: studymake did not end within 10 s"));
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.wait();
        let t0 = Instant::now();
        while pids.iter().any(|&p| running(p)) && t0.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let left: Vec<i32> = pids.iter().copied().filter(|&p| running(p)).collect();
        if !left.is_empty() {
            problems.note(format!(
                "{name}: processes the recipe started still run 3 s after studymake ended: {left:?}"
            ));
            for p in left {
                // SAFETY: ending the processes this test's recipe started.
                unsafe {
                    libc::kill(p, libc::SIGKILL);
                }
            }
        }
        let scratch: Vec<_> = std::fs::read_dir(s.path("out/.studymake/tmp"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        if sig != libc::SIGKILL && !scratch.is_empty() {
            problems.note(format!("{name}: scratch left behind: {scratch:?}"));
        }
        std::fs::remove_file(s.path("hold_gs1_idealized")).unwrap();
        s.run(&["gs1_idealized/model"]).ok();
        s.run(&["verify", "gs1_idealized/model"]).ok();
        let scratch = std::fs::read_dir(s.path("out/.studymake/tmp"))
            .unwrap()
            .count();
        assert_eq!(scratch, 0, "{name}: the rerun left scratch");
    }
    problems.assert_none();
}

/// Case 4. A condition directory, or a logs directory, that is a symbolic link out of the study:
/// the build must not write, rename or delete anything through it (the rule `clean` already
/// follows), and the targets that would fail, naming the link.
#[test]
fn a_symlinked_condition_directory_is_refused() {
    let s = Study::nested();
    let outside = s.outside();
    for (rel, bytes) in [
        ("cond/train_data.npz", "my own data\n"),
        ("cond/model/precious.txt", "my own notes\n"),
        ("cond/logs/model.log", "my own log\n"),
        ("logs/train_data.log", "my other log\n"),
    ] {
        let p = outside.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
    }
    std::fs::create_dir_all(s.path("out/gs2_idealized")).unwrap();
    std::os::unix::fs::symlink(outside.join("cond"), s.path("out/gs1_idealized")).unwrap();
    std::os::unix::fs::symlink(outside.join("logs"), s.path("out/gs2_idealized/logs")).unwrap();
    let before = tree(&outside);
    let r = s.run(&["-k", "-j1", "gs1_idealized/model", "gs2_idealized/model"]);
    let changed = changed(&before, &tree(&outside));
    assert!(
        changed.is_empty(),
        "the build changed files outside the study: {changed:?}\n{}",
        show(&r)
    );
    assert_eq!(r.code, 1, "{}", show(&r));
    for target in ["gs1_idealized/train_data", "gs2_idealized/train_data"] {
        assert!(
            !lines_with(
                &r.stderr,
                &[
                    format!("FAILED {target}").as_str(),
                    "not inside the study directory"
                ]
            )
            .is_empty(),
            "{target}: {}",
            show(&r)
        );
    }
    assert!(
        s.path("out/idealized_probe.npy").is_file(),
        "the rest is built"
    );
}

/// Case 5. Nothing in `.studymake` is followed through a symbolic link: not the state directory
/// itself, not its scratch (which is reclaimed, i.e. deleted), lock, manifests, cache or log.
/// The build refuses (exit 2) naming the link, and the files it points to are untouched.
#[test]
fn symlinks_inside_dot_studymake_are_not_followed() {
    let mut problems = Problems::default();
    for entry in [
        ".studymake",
        "tmp",
        "lock",
        "manifests",
        "cache",
        "state.log",
    ] {
        let s = Study::nested();
        s.run(&["gs1_idealized/model"]).ok();
        let state = s.path("out/.studymake");
        let link = if entry == ".studymake" {
            state.clone()
        } else {
            state.join(entry)
        };
        let victim = s.outside().join(entry.trim_start_matches('.'));
        std::fs::rename(&link, &victim).unwrap();
        if victim.is_dir() {
            std::fs::write(victim.join("precious.txt"), b"not studymake's\n").unwrap();
        }
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        // A parameter change, so that the build has work to do.
        s.write_studyfile(&s.original().replace("epochs = 3", "epochs = 4"));
        let before = tree(&s.outside());
        let r = s.run(&["gs1_idealized/model"]);
        let changed = changed(&before, &tree(&s.outside()));
        if !changed.is_empty() {
            problems.note(format!(
                "{entry} -> outside: the build changed {changed:?} (exit {})",
                r.code
            ));
        }
        let rel = if entry == ".studymake" {
            ".studymake".to_string()
        } else {
            format!(".studymake/{entry}")
        };
        problems.check(
            r.code == 2 && !lines_with(&r.stderr, &[rel.as_str(), "symbolic link"]).is_empty(),
            format!("{entry} -> outside: expected exit 2 naming {rel} as a symbolic link"),
            &r,
        );
    }
    problems.assert_none();
}

/// Case 6. Condition names that are also kinds, selectors or study files make the build and
/// `clean` do what nobody meant (`[conditions.report]` shares `out/report` with the report;
/// `clean model` would also clean the condition `model`). They are refused when the Studyfile is
/// read: exit 2, `Studyfile:LINE:COL:`, saying the name is reserved. Also when a matrix `name`
/// pattern produces one.
#[test]
fn reserved_condition_names_are_refused_with_file_line_col() {
    let mut problems = Problems::default();
    for name in [
        "report",
        "model",
        "all",
        "probes",
        "objects",
        "train_data",
        "logs",
    ] {
        let s = Study::new();
        s.append(&format!(
            "\n[conditions.{name}]\ngridsize = 1\nprobe = \"idealized\"\n"
        ));
        let text = std::fs::read_to_string(s.path("Studyfile")).unwrap();
        let at = format!(
            "Studyfile:{}:",
            line_of(&text, &format!("[conditions.{name}]"))
        );
        for args in [vec![], vec!["clean", name]] {
            let r = s.run(&args);
            problems.check(
                r.code == 2 && !lines_with(&r.stderr, &[at.as_str(), name, "reserved"]).is_empty(),
                format!(
                    "[conditions.{name}], `studymake{}`: expected exit 2 with {at} ... reserved",
                    args.iter().map(|a| format!(" {a}")).collect::<String>()
                ),
                &r,
            );
        }
    }
    let s = Study::new();
    s.write_studyfile(
        &s.original()
            .replace("gridsize = [1, 2]", "gridsize = [1]")
            .replace(
                "probe = [\"idealized\", \"hybrid\"]",
                "probe = [\"idealized\"]\nname = \"report\"",
            ),
    );
    let text = std::fs::read_to_string(s.path("Studyfile")).unwrap();
    let at = format!("Studyfile:{}:", line_of(&text, "name = \"report\""));
    let r = s.run(&[]);
    problems.check(
        r.code == 2 && !lines_with(&r.stderr, &[at.as_str(), "report", "reserved"]).is_empty(),
        format!("[matrix] name = \"report\": expected exit 2 with {at} ... reserved"),
        &r,
    );
    problems.assert_none();
}

/// Case 7. An emptied state log (`: > out/.studymake/state.log`) is an empty state: the next
/// build restores from the cache and writes a log that `status`, `verify` and later builds read.
/// A log left without its header (by the old bug) can be started afresh with the command its
/// message suggests, `clean --cache`.
#[test]
fn an_emptied_state_log_is_recovered() {
    let s = Study::new();
    s.run(&[]).ok();
    let log = s.path("out/.studymake/state.log");
    std::fs::write(&log, b"").unwrap();
    s.run(&[]).ok();
    for args in [vec!["status"], vec!["verify"], vec![]] {
        let r = s.run(&args);
        assert_eq!(
            r.code,
            0,
            "`studymake {}` after an emptied log:\n{}",
            args.join(" "),
            show(&r)
        );
    }
    let bytes = std::fs::read(&log).unwrap();
    assert!(bytes.starts_with(b"studymake state v"), "no header");

    // The headerless log today's binary leaves behind.
    let header = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    std::fs::write(&log, &bytes[header..]).unwrap();
    let r = s.run(&["clean", "--cache"]);
    assert_eq!(r.code, 0, "{}", show(&r));
    s.run(&[]).ok();
    s.run(&["verify"]).ok();
}

/// Case 8. A deleted manifest and one overwritten with garbage: `verify` reports each of them
/// for its target (exit 1, the rest audited) instead of stopping whole (exit 2), `status` does
/// not call them fresh, and the next build repairs both.
#[test]
fn a_deleted_or_damaged_manifest_is_repaired_or_reported_per_target() {
    let s = Study::new();
    s.run(&[]).ok();
    let manifests = s.path("out/.studymake/manifests");
    std::fs::remove_file(manifests.join("gs1_idealized~model.json")).unwrap();
    std::fs::write(manifests.join("gs2_hybrid~metrics.json"), b"garbage\n").unwrap();

    let v = s.run(&["verify"]);
    assert_eq!(v.code, 1, "{}", show(&v));
    for t in ["gs1_idealized/model", "gs2_hybrid/metrics"] {
        assert!(
            !lines_with(&v.stdout, &[t, "manifest"]).is_empty(),
            "{t}: {}",
            show(&v)
        );
    }
    assert!(
        v.stdout.lines().any(|l| l.starts_with("gs1_hybrid ")),
        "the other targets are audited: {}",
        show(&v)
    );

    let st = s.run(&["status"]);
    st.ok();
    for t in ["gs1_idealized/model", "gs2_hybrid/metrics"] {
        let line = st
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{t} ")))
            .unwrap_or_else(|| panic!("{t} not in status:\n{}", st.stdout));
        assert!(
            line.contains("manifest"),
            "status of {t} says nothing of its manifest: {line}"
        );
    }

    s.run(&[]).ok();
    for t in ["gs1_idealized/model", "gs2_hybrid/metrics"] {
        assert_eq!(s.manifest(t)["target"], t);
    }
    let v = s.run(&["verify"]);
    assert_eq!(v.code, 0, "{}", show(&v));
}

/// Case 9. `clean` takes the selectors the build takes (groups `probes` and `objects`, names
/// with a trailing slash) and removes exactly their outputs.
#[test]
fn clean_accepts_exactly_the_selectors_the_build_accepts() {
    let s = Study::new();
    s.run(&[]).ok();
    let cases: [(&str, &[&str], &str); 6] = [
        (
            "probes",
            &[
                "idealized_probe.npy",
                "experimental_probe.npy",
                "hybrid_probe.npy",
            ],
            "lines_object.npz",
        ),
        ("objects", &["lines_object.npz"], "idealized_probe.npy"),
        (
            "probes/",
            &[
                "idealized_probe.npy",
                "experimental_probe.npy",
                "hybrid_probe.npy",
            ],
            "lines_object.npz",
        ),
        ("objects/lines/", &["lines_object.npz"], "hybrid_probe.npy"),
        (
            "gs1_idealized/",
            &[
                "gs1_idealized/train_data.npz",
                "gs1_idealized/test_data.npz",
                "gs1_idealized/model",
                "gs1_idealized/evaluation",
            ],
            "gs1_hybrid/model",
        ),
        (
            "gs2_hybrid/model/",
            &["gs2_hybrid/model"],
            "gs2_hybrid/evaluation",
        ),
    ];
    let mut problems = Problems::default();
    for (selector, removed, kept) in cases {
        let r = s.run(&["clean", selector]);
        let left: Vec<&str> = removed
            .iter()
            .copied()
            .filter(|p| s.path(&format!("out/{p}")).exists())
            .collect();
        let n = removed.len();
        let said = format!("removed {n} output{}", if n == 1 { "" } else { "s" });
        problems.check(
            r.code == 0 && left.is_empty() && r.stdout.contains(&said),
            format!("`clean {selector}`: expected {said:?}, left {left:?}"),
            &r,
        );
        if !s.path(&format!("out/{kept}")).exists() {
            problems.note(format!("`clean {selector}` also removed {kept}"));
        }
        s.run(&[]).ok();
    }
    problems.assert_none();
}

/// Case 9. `clean` never deletes a file studymake did not write (a user's notes inside the
/// report directory), and says it kept it; what it does remove the cache keeps, as it says.
#[test]
fn clean_never_deletes_files_studymake_did_not_write() {
    let s = Study::new();
    s.run(&[]).ok();
    let notes = s.path("out/report/notes.md");
    std::fs::write(&notes, b"what I found\n").unwrap();
    let r = s.run(&["clean"]);
    r.ok();
    assert_eq!(
        std::fs::read(&notes).ok().as_deref(),
        Some(&b"what I found\n"[..]),
        "clean deleted a file studymake never wrote: {}",
        show(&r)
    );
    assert!(
        r.stdout.contains("report/notes.md") || r.stderr.contains("report/notes.md"),
        "clean does not say it kept report/notes.md: {}",
        show(&r)
    );
    assert!(!s.path("out/report/summary.md").exists());
    assert!(!s.path("out/gs1_idealized/model").exists());
}

/// Case 10. A Studyfile of a million conditions, `-f /dev/zero`, and a small Studyfile that
/// expands to over a million targets: each is refused at once with exit 2 and a message stating
/// the limit, instead of reading or allocating until the machine's memory runs out. (Run under a
/// 1 GiB address-space limit and a 10 s time limit, so that today's binary fails fast.)
#[test]
fn studyfile_size_and_target_count_have_stated_limits() {
    let limit = Duration::from_secs(10);
    let mut problems = Problems::default();

    let s = Study::new();
    let mut text = s.original();
    text.reserve(50 << 20);
    for i in 0..1_000_000 {
        text.push_str(&format!(
            "\n[conditions.c{i}]\ngridsize = 1\nprobe = \"idealized\"\n"
        ));
    }
    s.write_studyfile(&text);
    drop(text);
    let t0 = Instant::now();
    let r = s.run_limited(&["-n"], limit, Some(GIB));
    problems.check(
        r.code == 2 && !lines_with(&r.stderr, &["Studyfile", "limit"]).is_empty(),
        format!(
            "a {} MB Studyfile: expected exit 2 stating the size limit (ran {:.1} s)",
            std::fs::metadata(s.path("Studyfile")).unwrap().len() >> 20,
            t0.elapsed().as_secs_f64()
        ),
        &r,
    );
    std::fs::remove_file(s.path("Studyfile")).unwrap();

    let s = Study::new();
    let r = s.run_limited(&["-f", "/dev/zero", "-n"], limit, Some(GIB));
    // Under the address-space limit today's binary ends with "/dev/zero: out of memory" after
    // reading a gigabyte: a stated limit (or the file's type) is what must be said.
    let said = lines_with(&r.stderr, &["/dev/zero"]);
    problems.check(
        r.code == 2
            && said
                .iter()
                .any(|l| l.contains("regular file") || l.contains("limit")),
        "-f /dev/zero: expected exit 2 saying it is not a regular file or stating the limit",
        &r,
    );

    // 40,000 probes by 8 gridsizes: 320,000 conditions, 1.3 million targets, in about 3 MB.
    let s = Study::new();
    let names: Vec<String> = (0..40_000).map(|i| format!("p{i}")).collect();
    let mut text = s
        .original()
        .replace("gridsize = [1, 2]", "gridsize = [1, 2, 3, 4, 5, 6, 7, 8]")
        .replace(
            "probe = [\"idealized\", \"hybrid\"]",
            &format!("probe = {names:?}"),
        );
    for n in &names {
        text.push_str(&format!(
            "\n[probes.{n}]\ncommand = [\"sh\", \"recipes/probe.sh\", \"{{output}}\", \"{n}\"]\n"
        ));
    }
    s.write_studyfile(&text);
    let size = text.len();
    let t0 = Instant::now();
    let r = s.run_limited(&["-n"], limit, Some(GIB));
    problems.check(
        r.code == 2 && !lines_with(&r.stderr, &["targets", "limit"]).is_empty(),
        format!(
            "a {} KB Studyfile of 1.3 million targets: expected exit 2 stating the target limit \
             (ran {:.1} s)",
            size >> 10,
            t0.elapsed().as_secs_f64()
        ),
        &r,
    );
    problems.assert_none();
}

/// A copy of the fixture with one more probe, `ext`, reading `{ path = PATH }`.
fn study_with_path_input(path: &str) -> Study {
    let s = Study::new();
    s.append(&format!(
        "\n[probes.ext]\ncommand = [\"sh\", \"recipes/probe.sh\", \"{{output}}\", \"ext\"]\n\
         output = \"npy\"\ninputs = {{ data = {{ path = {path:?} }} }}\n"
    ));
    s
}

/// Case 11. A `{ path = ... }` input that exists but is not a regular file is named for what it
/// is, not reported as "does not exist" (and a FIFO is never opened, so nothing hangs).
#[test]
fn a_path_input_that_is_not_a_regular_file_is_named_for_what_it_is() {
    let mut problems = Problems::default();
    for (what, word) in [
        ("directory", "directory"),
        ("fifo", "FIFO"),
        ("device", "device"),
        ("loop", "symbolic link"),
    ] {
        let path = if what == "device" {
            "/dev/null"
        } else {
            "input.dat"
        };
        let s = study_with_path_input(path);
        let p = s.path("input.dat");
        match what {
            "directory" => std::fs::create_dir(&p).unwrap(),
            "fifo" => assert!(std::process::Command::new("mkfifo")
                .arg(&p)
                .status()
                .unwrap()
                .success()),
            "loop" => std::os::unix::fs::symlink("input.dat", &p).unwrap(),
            _ => {}
        }
        let r = s.run_limited(&["probes/ext"], Duration::from_secs(20), None);
        problems.check(
            r.code == 1
                && !r.stderr.contains("does not exist")
                && !lines_with(&r.stderr, &["FAILED probes/ext", word]).is_empty(),
            format!("input that is a {what}: expected exit 1 and a FAILED line saying {word:?}"),
            &r,
        );
    }
    problems.assert_none();
}

/// Case 11. A recipe that writes a symbolic link as its output is told so, not "wrote a file but
/// a file was expected"; nothing is published.
#[test]
fn a_symlink_written_as_an_output_is_reported_as_a_symlink() {
    let s = Study::new();
    s.append(
        "\n[probes.link]\ncommand = [\"sh\", \"-c\", \"ln -s Studyfile \\\"$0\\\"\", \"{output}\"]\n\
         output = \"npy\"\n",
    );
    let r = s.run(&["probes/link"]);
    assert_eq!(r.code, 1, "{}", show(&r));
    assert!(
        !lines_with(&r.stderr, &["FAILED probes/link", "symbolic link"]).is_empty(),
        "{}",
        show(&r)
    );
    assert!(!r.stderr.contains("a file but a file"), "{}", show(&r));
    assert!(std::fs::symlink_metadata(s.path("out/link_probe.npy")).is_err());
}

/// Case 11. A regular file where one of `.studymake`'s directories belongs is named as such
/// (exit 2), not reported as "File exists (os error 17)".
#[test]
fn a_file_where_a_state_directory_belongs_is_named_as_such() {
    let mut problems = Problems::default();
    for sub in ["cache", "manifests", "tmp"] {
        let s = Study::new();
        s.run(&["gs1_idealized/model"]).ok();
        let p = s.path("out/.studymake").join(sub);
        std::fs::remove_dir_all(&p).unwrap();
        std::fs::write(&p, b"not a directory\n").unwrap();
        s.write_studyfile(&s.original().replace("epochs = 3", "epochs = 4"));
        let r = s.run(&["gs1_idealized/model"]);
        let rel = format!(".studymake/{sub}");
        problems.check(
            r.code == 2
                && !r.stderr.contains("os error 17")
                && !lines_with(&r.stderr, &[rel.as_str(), "not a directory"]).is_empty(),
            format!("a file at {rel}: expected exit 2 saying it is not a directory"),
            &r,
        );
    }
    problems.assert_none();
}

/// Case 11. Names longer than 100 characters are refused saying so, not as a character-set rule.
#[test]
fn names_longer_than_100_characters_are_refused_saying_so() {
    let long = "a".repeat(101);
    let mut problems = Problems::default();
    let s = Study::new();
    let variants = [
        (
            "condition",
            format!(
                "{}\n[conditions.{long}]\ngridsize = 1\nprobe = \"idealized\"\n",
                s.original()
            ),
        ),
        (
            "probe",
            format!(
                "{}\n[probes.{long}]\ncommand = [\"sh\", \"recipes/probe.sh\", \"{{output}}\", \"x\"]\n",
                s.original()
            ),
        ),
        (
            "study name",
            s.original()
                .replace("name = \"fixture\"", &format!("name = \"{long}\"")),
        ),
    ];
    for (what, text) in variants {
        s.write_studyfile(&text);
        let r = s.run(&["-n"]);
        problems.check(
            r.code == 2 && !lines_with(&r.stderr, &["Studyfile:", "100 characters"]).is_empty(),
            format!("a {what} of 101 characters: expected exit 2 stating the 100-character limit"),
            &r,
        );
    }
    problems.assert_none();
}

/// Case 11. A manifest that cannot be written is named in the failure, not the temp file
/// `.tmp-XXXXXX` it was being staged in. (Needs `chattr +i`; says SKIPPED where it does not work.)
#[test]
fn a_failed_manifest_write_names_the_manifest_not_its_temp_file() {
    let s = Study::new();
    s.run(&["gs1_idealized/model"]).ok();
    s.write_studyfile(&s.original().replace("epochs = 3", "epochs = 4"));
    let Some(guard) = Immutable::set(&s.path("out/.studymake/manifests")) else {
        eprintln!("SKIPPED: `chattr +i` does not work here");
        return;
    };
    let r = s.run(&["-j1", "gs1_idealized/model"]);
    drop(guard);
    assert_eq!(r.code, 1, "{}", show(&r));
    assert!(
        !lines_with(
            &r.stderr,
            &["FAILED gs1_idealized/model", "gs1_idealized~model.json"]
        )
        .is_empty(),
        "{}",
        show(&r)
    );
    assert!(!r.stderr.contains(".tmp-"), "{}", show(&r));
}

/// Case 11. A FIFO (or any file that is neither regular nor a directory) inside a directory
/// output fails the target naming it, instead of being published but left out of the manifest
/// and the cache.
#[test]
fn a_fifo_inside_a_directory_output_fails_the_target() {
    let s = Study::new();
    s.edit_recipe(
        "model.sh",
        "mkdir -p \"$1\"\n",
        "mkdir -p \"$1\"\nif [ \"$7\" = gs1_idealized ]; then mkfifo \"$1/pipe\"; fi\n",
    );
    let r = s.run_limited(&["gs1_idealized/model"], Duration::from_secs(20), None);
    assert_eq!(r.code, 1, "{}", show(&r));
    assert!(
        !lines_with(&r.stderr, &["FAILED gs1_idealized/model", "pipe", "FIFO"]).is_empty(),
        "{}",
        show(&r)
    );
    assert!(
        std::fs::symlink_metadata(s.path("out/gs1_idealized/model")).is_err(),
        "nothing is published"
    );
}
