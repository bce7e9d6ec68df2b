//! `studymake compare` through the binary on pairs with known answers: identical, flat phase,
//! inverted phase, shifted, and a reconstruction with a hole; the primary scores (covered region,
//! Pearson correlation) say what each pair is.

mod common;

use ndarray::Array2;
use num_complex::Complex64;
use std::path::Path;
use studymake_science::evaluation::registration::fourier_shift;
use studymake_science::io::npy::write_npy;

/// A periodic 64x64 object (every period divides 64, so a Fourier shift is exact; the amplitude
/// has frequency 1 along both axes, so its correlation has a single peak).
fn object() -> Array2<Complex64> {
    let tau = 2.0 * std::f64::consts::PI;
    Array2::from_shape_fn((64, 64), |(r, c)| {
        let (r, c) = (r as f64 / 64.0, c as f64 / 64.0);
        Complex64::from_polar(
            1.0 + 0.3 * (tau * 3.0 * r).sin() * (tau * 2.0 * c).cos()
                + 0.1 * (tau * 5.0 * c).sin()
                + 0.15 * (tau * (r + c)).cos(),
            0.4 * (tau * (2.0 * r + c)).sin() + 0.2 * (tau * 4.0 * c).cos(),
        )
    })
}

fn compare(dir: &Path, name: &str, recon: &Array2<Complex64>, extra: &[&str]) -> serde_json::Value {
    let gt_path = dir.join("gt.npy");
    write_npy(&gt_path, &object()).unwrap();
    let path = dir.join(format!("{name}.npy"));
    write_npy(&path, recon).unwrap();
    let mut args = vec![
        "compare",
        path.to_str().unwrap(),
        gt_path.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = std::process::Command::new(common::BIN)
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn num(v: &serde_json::Value, path: &[&str]) -> f64 {
    let mut x = v;
    for k in path {
        x = &x[*k];
    }
    match x {
        serde_json::Value::String(s) if s == "inf" => f64::INFINITY,
        _ => x.as_f64().unwrap_or_else(|| panic!("{path:?} in {v}")),
    }
}

#[test]
fn compare_gives_the_known_primary_scores() {
    let d = tempfile::tempdir().unwrap();
    let gt = object();
    let pearson = |v: &serde_json::Value, part: &str| num(v, &["metrics", part, "pearson"]);

    let same = compare(d.path(), "same", &gt, &[]);
    assert!((pearson(&same, "amplitude") - 1.0).abs() < 1e-9);
    assert!((pearson(&same, "phase") - 1.0).abs() < 1e-9);
    assert_eq!(num(&same, &["primary", "uncovered_fraction"]), 0.0);
    assert_eq!(num(&same, &["primary", "phase", "psnr"]), f64::INFINITY);

    // A flat phase must fail the phase measure (phase SSIM scores it near 1).
    let flat = compare(
        d.path(),
        "flat",
        &gt.mapv(|z| Complex64::new(z.norm(), 0.0)),
        &[],
    );
    assert!(pearson(&flat, "phase").abs() < 0.3, "{flat}");
    assert!((pearson(&flat, "amplitude") - 1.0).abs() < 1e-9);

    // An inverted phase correlates at -1.
    let inverted = compare(d.path(), "inverted", &gt.mapv(|z| z.conj()), &[]);
    assert!(
        (pearson(&inverted, "phase") + 1.0).abs() < 1e-9,
        "{inverted}"
    );

    // A fractional shift is found to 1/50 px and registered away.
    let shifted = compare(
        d.path(),
        "shifted",
        &fourier_shift(&gt, 1.3, -0.7),
        &["--register"],
    );
    let (dy, dx) = (
        num(&shifted, &["registration", "dy"]),
        num(&shifted, &["registration", "dx"]),
    );
    assert!(
        (dy + 1.3).abs() <= 0.02 + 1e-9 && (dx - 0.7).abs() <= 0.02 + 1e-9,
        "{dy} {dx}"
    );
    assert!(pearson(&shifted, "amplitude") > 0.999 && pearson(&shifted, "phase") > 0.999);

    // A hole is not scored: the primary scores stay perfect, the fraction is reported, and the
    // PtychoPINN-compatible scores (which count the zeros) drop.
    let mut holed = gt.clone();
    holed
        .slice_mut(ndarray::s![20..30, 20..30])
        .fill(Complex64::new(0.0, 0.0));
    let h = compare(d.path(), "holed", &holed, &[]);
    assert!((pearson(&h, "phase") - 1.0).abs() < 1e-9, "{h}");
    // 14x14 of the 60x60 scored pixels (margin 2 around the 10x10 hole).
    assert!((num(&h, &["primary", "uncovered_fraction"]) - 196.0 / 3600.0).abs() < 1e-12);
    assert!(num(&h, &["metrics", "amplitude", "ssim"]) < 0.99);
}
