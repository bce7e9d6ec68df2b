//! The measured fly001 probe (PtychoPINN's experimental probe; it is not part of this repository:
//! `STUDYMAKE_FLY001` names the file, by default `../shared/data/fly001_probe.npz` beside the
//! checkout): read as a probe and made into the hybrid probe, by the science directly and by the
//! probe recipes through the binary. CI requires it (`STUDYMAKE_REQUIRE=...,fly001`).

mod common;

use std::path::PathBuf;
use studymake_science::physics::probe::{default_probe, hybrid, load_probe};

fn fly001() -> Option<PathBuf> {
    let path = match std::env::var_os("STUDYMAKE_FLY001") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/fly001_probe.npz"),
    };
    common::available("fly001", || {
        if path.is_file() {
            Ok(())
        } else {
            Err(format!(
                "{} is not present (set STUDYMAKE_FLY001 to the file)",
                path.display()
            ))
        }
    })
    .then_some(path)
}

#[test]
fn the_hybrid_of_the_real_probe_keeps_the_energy_and_takes_its_phase() {
    let Some(path) = fly001() else { return };
    let exp = load_probe(&path).unwrap();
    assert_eq!(exp.dim(), (64, 64));
    let a = default_probe(64);
    let h = hybrid(&a, &exp).unwrap();
    let ea: f64 = a.iter().map(|z| z.norm_sqr() as f64).sum();
    let eh: f64 = h.iter().map(|z| z.norm_sqr() as f64).sum();
    assert!((ea - eh).abs() < 1e-4 * ea);
    // The phase inside the disk is the experimental probe's.
    let (za, zp) = (h[[31, 31]], exp[[31, 31]]);
    assert!((za.arg() - zp.arg()).abs() < 1e-4 || zp.norm() == 0.0);
}

#[test]
fn the_probe_recipes_read_the_real_probe() {
    let Some(path) = fly001() else { return };
    let s = common::Study::empty();
    s.write_studyfile(&format!(
        "[study]\nname = \"fly\"\n\n\
         [probes.ideal]\nrecipe = \"default_probe\"\n\n\
         [probes.fly]\nrecipe = \"npz_probe\"\ninputs = {{ file = {{ path = {:?} }} }}\n\n\
         [probes.hybrid]\nrecipe = \"hybrid_probe\"\ninputs = {{ amplitude = \"ideal\", phase = \"fly\" }}\n",
        path.display().to_string()
    ));
    s.run(&["probes"]).ok();
    let h = load_probe(&s.path("study/hybrid_probe.npy")).unwrap();
    let fly = load_probe(&s.path("study/fly_probe.npy")).unwrap();
    let ideal = default_probe(64);
    assert_eq!(h.dim(), (64, 64));
    for ((hz, fz), iz) in h.iter().zip(fly.iter()).zip(ideal.iter()) {
        assert!((hz.norm() - iz.norm()).abs() <= 1e-6 * iz.norm().max(1e-3));
        if iz.norm() > 0.1 && fz.norm() > 0.0 {
            let d = (hz.arg() - fz.arg()).rem_euclid(std::f32::consts::TAU);
            assert!(!(1e-4..=std::f32::consts::TAU - 1e-4).contains(&d));
        }
    }
}
