//! Targets declared in the Studyfile (`[targets.NAME]`) through the binary: the pty-chi example's
//! declaration, with its numpy stand-in in place of pty-chi (which needs PyTorch), added to the
//! tiny study. Its targets build in every condition, are scored by `evaluate` and appear in the
//! report, rebuild exactly when their own parameters change, and `verify` audits them.

mod common;

use common::{built, Study};
use std::path::Path;

/// The example's `[targets.ptychi]` table, as written in `examples/ptychi/Studyfile`.
fn example_table() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ptychi/Studyfile");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text
        .find("[targets.ptychi]\n")
        .expect("the example declares ptychi");
    let rest = &text[start..];
    let end = rest.find("\n\n").unwrap_or(rest.len());
    rest[..end].to_string()
}

/// The tiny study with the example's declaration, pty-chi swapped for the numpy stand-in.
fn study(python: &str) -> Study {
    let s = Study::from_fixture("tiny");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ptychi");
    for script in ["standin.py", "dataset.py"] {
        std::fs::copy(example.join(script), s.path(script)).unwrap();
    }
    let table = example_table();
    let table = table
        .replace(
            "\"../../target/ptychi-venv/bin/python\", \"recipe.py\"",
            &format!("{python:?}, \"standin.py\""),
        )
        .replace(",\n           \"--algorithm\", \"lsqml\"", "")
        .replace("params = { epochs = 200 }", "params = { epochs = 20 }");
    assert!(
        table.contains("standin.py") && table.contains("epochs = 20 }"),
        "{table}"
    );
    s.append(&format!("\n{table}\n"));
    s
}

#[test]
fn the_ptychi_example_expands_with_its_declared_targets() {
    let s = Study::empty();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ptychi/Studyfile");
    s.write_studyfile(&std::fs::read_to_string(example).unwrap());
    let r = s.run(&["-n", "all", "--profile", "quick"]);
    r.ok();
    for c in ["gs1_idealized", "gs1_hybrid", "gs2_idealized", "gs2_hybrid"] {
        for kind in ["ptychi", "ptychi_epie", "metrics"] {
            let name = format!("{c}/{kind}");
            assert!(r.stdout.contains(&name), "{name} missing:\n{}", r.stdout);
        }
    }
    // `explain` knows it and what it reads.
    let e = s.run(&["explain", "gs2_hybrid/ptychi"]);
    e.ok();
    assert!(
        e.stdout.contains("gs2_hybrid/ptychi is stale"),
        "{}",
        e.stdout
    );
    assert!(
        e.stdout.contains("gs2_hybrid/test_data is stale"),
        "{}",
        e.stdout
    );
}

#[test]
fn a_declared_reconstruction_builds_is_scored_in_the_report_rebuilds_and_verifies() {
    let Some(python) = common::python("to run the pty-chi stand-in") else {
        return;
    };
    let s = study(&python);
    let r = s.run(&["-j2", "all"]);
    r.ok();
    let b = built(&r.stdout);
    assert_eq!(b.len(), 25, "{}", r.stdout);
    let study_dir = s.path("study");
    let conditions = ["gs1_idealized", "gs1_hybrid", "gs2_idealized", "gs2_hybrid"];
    for c in conditions {
        assert!(b.contains(&format!("{c}/ptychi")), "{}", r.stdout);
        assert!(study_dir
            .join(c)
            .join("ptychi/reconstruction.npz")
            .is_file());
        let m = studymake_science::evaluation::metrics_file::MetricsFile::read(
            &study_dir.join(c).join("evaluation"),
        )
        .unwrap();
        let rec = &m.reconstructions["ptychi"];
        // The stand-in's ePIE, scored as studymake's own ePIE is: a real reconstruction.
        let (a, p) = (rec.primary.amplitude.pearson.0, rec.primary.phase.pearson.0);
        eprintln!("{c}: stand-in amplitude/phase Pearson {a:.3} {p:.3}");
        assert!(a > 0.5 && p > 0.5, "{c}: {a} {p}");
    }
    // The report: a row per condition, in the CSV and the tables.
    let csv = std::fs::read_to_string(study_dir.join("report/summary.csv")).unwrap();
    for c in conditions {
        assert!(
            csv.lines()
                .any(|l| l.starts_with(&format!("{c},")) && l.contains(",ptychi,")),
            "{csv}"
        );
    }
    let md = std::fs::read_to_string(study_dir.join("report/summary.md")).unwrap();
    assert!(md.contains("| gs2_hybrid | ptychi |"), "{md}");

    let v = s.run(&["verify"]);
    v.ok();
    assert!(
        v.stdout.contains("verify: all 25 targets hold"),
        "{}",
        v.stdout
    );

    // Its own parameter changes: it, the evaluations that read it and the report rebuild.
    let text = std::fs::read_to_string(s.path("Studyfile")).unwrap();
    s.write_studyfile(&text.replace("params = { epochs = 20 }", "params = { epochs = 10 }"));
    let r = s.run(&["-j2", "all"]);
    r.ok();
    let mut b = built(&r.stdout);
    b.sort();
    let mut want: Vec<String> = conditions
        .iter()
        .flat_map(|c| [format!("{c}/metrics"), format!("{c}/ptychi")])
        .collect();
    want.push("report".into());
    want.sort();
    assert_eq!(b, want, "{}", r.stdout);
    let again = s.run(&["all"]);
    again.ok();
    assert!(built(&again.stdout).is_empty(), "{}", again.stdout);

    // A reconstruction changed behind studymake's back is found by `verify`.
    let rec = study_dir.join("gs1_hybrid/ptychi/reconstruction.npz");
    let mut bytes = std::fs::read(&rec).unwrap();
    let k = bytes.len() / 2;
    bytes[k] ^= 0xff;
    std::fs::write(&rec, bytes).unwrap();
    let v = s.run(&["verify"]);
    assert_eq!(v.code, 1, "{}", v.stdout);
    assert!(v.stdout.contains("gs1_hybrid/ptychi"), "{}", v.stdout);
}
