//! `studymake compare`: the evaluation's alignment and metric pipeline on any two complex 2-D
//! images, read from `.npy` or `.npz` files. Writes nothing.
//!
//! Pipeline: centre-crop both images to their common size; optionally register the
//! reconstruction to the ground truth (phase cross-correlation of the amplitudes to 1/50 px,
//! Fourier shift, then a 2 px crop from every border, as PtychoPINN's `compare_models.py`); then
//! the metrics of [`crate::evaluation::metrics::image_metrics`] (which trim 2 px). Without
//! registration there is no second crop: PtychoPINN's `eval_reconstruction` scores the pair
//! trimmed once.

use crate::error::{Error, Result};
use crate::evaluation::metrics::{center_crop, image_metrics, ImageMetrics};
use crate::evaluation::primary::{primary_metrics, PrimaryMetrics, COVERAGE_MARGIN};
use crate::evaluation::registration::Normalization;
use crate::evaluation::{
    aligned_mask, f6, metrics_json, primary_json, register_and_crop, Aligned, PRIMARY_NOTE,
    PSNR_NOTE,
};
use crate::io::npy::{read_complex2_npy_f64, read_complex2_npz_f64, NpzFile};
use ndarray::Array2;
use num_complex::Complex64;
use serde_json::json;
use std::path::{Path, PathBuf};

/// The result of comparing two images.
#[derive(Clone, Debug)]
pub struct ComparisonReport {
    pub reconstruction: PathBuf,
    pub ground_truth: PathBuf,
    /// The npz member used for each file (`None` for `.npy`).
    pub reconstruction_key: Option<String>,
    pub ground_truth_key: Option<String>,
    pub reconstruction_shape: (usize, usize),
    pub ground_truth_shape: (usize, usize),
    /// The shape the metrics were computed on (after cropping, before the 2 px metric trim).
    pub compared_shape: (usize, usize),
    /// `(dy, dx)` applied to the reconstruction, when registration ran.
    pub offset: Option<(f64, f64)>,
    pub metrics: ImageMetrics,
    /// The primary scores, on the pixels where the reconstruction is non-zero (eroded).
    pub primary: PrimaryMetrics,
}

/// Read one complex 2-D array (complex64 or complex128) from an `.npy` file, or from an `.npz`
/// member: `key` if given, otherwise the only complex 2-D member. Returns the member used.
pub fn load_complex_image(
    path: &Path,
    key: Option<&str>,
) -> Result<(Array2<Complex64>, Option<String>)> {
    let is_npz = path
        .extension()
        .map(|e| e.eq_ignore_ascii_case("npz"))
        .unwrap_or(false);
    if !is_npz {
        if let Some(k) = key {
            return Err(Error::data(
                path,
                format!("a key (`{k}`) was given but this is not an .npz file"),
            ));
        }
        return read_complex2_npy_f64(path).map(|a| (a, None));
    }
    let mut npz = NpzFile::open(path)?;
    let names = npz.keys();
    match key {
        Some(k) => {
            if !names.iter().any(|n| n == k) {
                return Err(Error::data(
                    path,
                    format!("has no array `{k}`; keys present: {}", names.join(", ")),
                ));
            }
            read_complex2_npz_f64(&mut npz, k).map(|a| (a, Some(k.to_string())))
        }
        None => {
            let mut found = Vec::new();
            for n in &names {
                if let Ok(a) = read_complex2_npz_f64(&mut npz, n) {
                    found.push((n.clone(), a));
                }
            }
            if found.len() == 1 {
                let (n, a) = found.pop().expect("one element");
                Ok((a, Some(n)))
            } else {
                Err(Error::data(
                    path,
                    format!(
                        "holds {} 2-D complex arrays ({}); name one with a key (keys present: {})",
                        found.len(),
                        found
                            .iter()
                            .map(|(n, _)| n.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        names.join(", ")
                    ),
                ))
            }
        }
    }
}

/// Compare two in-memory images with the evaluation pipeline (see the module doc); returns the
/// registered, cropped pair, its PtychoPINN-compatible metrics and its primary scores (on the
/// reconstruction's non-zero pixels, eroded by [`COVERAGE_MARGIN`] px).
pub fn compare_images(
    recon: &Array2<Complex64>,
    gt: &Array2<Complex64>,
    register: bool,
) -> Result<(Aligned, ImageMetrics, PrimaryMetrics)> {
    let th = recon.nrows().min(gt.nrows());
    let tw = recon.ncols().min(gt.ncols());
    let r = center_crop(recon, th, tw);
    let g = center_crop(gt, th, tw);
    let aligned = register_and_crop(&r, &g, register, Normalization::Phase, None)?;
    let metrics = image_metrics(&aligned.recon, &aligned.gt)?;
    let primary = primary_metrics(&aligned.recon, &aligned.gt, &aligned_mask(&r, &aligned))?;
    Ok((aligned, metrics, primary))
}

/// Compare the complex image in `recon` with the one in `ground_truth` (each `.npy`, or `.npz`
/// with one complex 2-D array or the member `key`). With `register` the reconstruction is
/// registered to the ground truth first. Reads the two files, writes nothing.
pub fn compare(
    recon: &Path,
    ground_truth: &Path,
    key: Option<&str>,
    register: bool,
) -> Result<ComparisonReport> {
    let (r, rk) = load_complex_image(recon, key)?;
    let (g, gk) = load_complex_image(ground_truth, key)?;
    let (aligned, metrics, primary) = compare_images(&r, &g, register).map_err(|e| {
        Error::Invalid(format!(
            "comparing {} with {}: {e}",
            recon.display(),
            ground_truth.display()
        ))
    })?;
    Ok(ComparisonReport {
        reconstruction: recon.to_path_buf(),
        ground_truth: ground_truth.to_path_buf(),
        reconstruction_key: rk,
        ground_truth_key: gk,
        reconstruction_shape: r.dim(),
        ground_truth_shape: g.dim(),
        compared_shape: aligned.gt.dim(),
        offset: aligned.offset,
        metrics,
        primary,
    })
}

impl ComparisonReport {
    fn describe(p: &Path, k: &Option<String>) -> String {
        match k {
            Some(k) => format!("{} [{k}]", p.display()),
            None => p.display().to_string(),
        }
    }

    /// A plain-text table: one row per metric, amplitude and phase columns.
    pub fn to_table(&self) -> String {
        let a = &self.metrics.amplitude;
        let p = &self.metrics.phase;
        let mut s = String::new();
        s.push_str(&format!(
            "reconstruction: {} {:?}\n",
            Self::describe(&self.reconstruction, &self.reconstruction_key),
            self.reconstruction_shape
        ));
        s.push_str(&format!(
            "ground truth:   {} {:?}\n",
            Self::describe(&self.ground_truth, &self.ground_truth_key),
            self.ground_truth_shape
        ));
        s.push_str(&format!(
            "compared on:    {:?} (before a 2 px metric trim)\n",
            self.compared_shape
        ));
        match self.offset {
            Some((dy, dx)) => s.push_str(&format!(
                "registration:   dy {dy:.2} px, dx {dx:.2} px (applied to the reconstruction)\n"
            )),
            None => s.push_str("registration:   skipped\n"),
        }
        s.push_str(&format!(
            "\n{:<12} {:>14} {:>14}\n",
            "metric", "amplitude", "phase"
        ));
        let rows: [(&str, f64, f64); 8] = [
            ("mae", a.mae, p.mae),
            ("mse", a.mse, p.mse),
            ("psnr_range", a.psnr_range, p.psnr_range),
            ("psnr_255", a.psnr_255, p.psnr_255),
            ("ssim", a.ssim, p.ssim),
            ("ms_ssim", a.ms_ssim, p.ms_ssim),
            ("frc50", a.frc50, p.frc50),
            ("frc1over7", a.frc1over7, p.frc1over7),
        ];
        for (n, x, y) in rows {
            s.push_str(&format!("{n:<12} {:>14} {:>14}\n", f6(x), f6(y)));
        }
        let (pa, pp) = (&self.primary.amplitude, &self.primary.phase);
        s.push_str(&format!(
            "\nprimary scores (covered region, {:.2}% of the scored area uncovered):\n",
            100.0 * self.primary.uncovered_fraction
        ));
        let rows: [(&str, f64, f64); 4] = [
            ("pearson", pa.pearson, pp.pearson),
            ("mae", pa.mae, pp.mae),
            ("mse", pa.mse, pp.mse),
            ("psnr", pa.psnr, pp.psnr),
        ];
        for (n, x, y) in rows {
            s.push_str(&format!("{n:<12} {:>14} {:>14}\n", f6(x), f6(y)));
        }
        s.push_str(&format!("\nPSNR (dB): {PSNR_NOTE}.\n"));
        s.push_str(&format!(
            "Primary: {PRIMARY_NOTE} (here: the reconstruction's non-zero pixels, margin \
             {COVERAGE_MARGIN}).\n"
        ));
        s
    }

    /// The same as JSON (pretty, keys sorted).
    pub fn to_json(&self) -> String {
        let v = json!({
            "reconstruction": { "path": self.reconstruction.display().to_string(), "key": self.reconstruction_key, "shape": [self.reconstruction_shape.0, self.reconstruction_shape.1] },
            "ground_truth": { "path": self.ground_truth.display().to_string(), "key": self.ground_truth_key, "shape": [self.ground_truth_shape.0, self.ground_truth_shape.1] },
            "compared_shape": [self.compared_shape.0, self.compared_shape.1],
            "registration": self.offset.map(|(dy, dx)| json!({"dy": dy, "dx": dx})),
            "metrics": metrics_json(&self.metrics, &self.primary),
            "primary": primary_json(&self.primary),
            "primary_note": PRIMARY_NOTE,
            "psnr_note": PSNR_NOTE,
        });
        serde_json::to_string_pretty(&v).expect("JSON values always serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluation::registration::fourier_shift;
    use ndarray_npy::{NpzWriter, WriteNpyExt};
    use num_complex::Complex32;

    fn image(h: usize, w: usize) -> Array2<Complex64> {
        Array2::from_shape_fn((h, w), |(r, c)| {
            let (r, c) = (r as f64, c as f64);
            let amp = 1.0
                + 0.5 * (-((r - 30.0).powi(2) + (c - 28.0).powi(2)) / 60.0).exp()
                + 0.2 * (0.3 * r).sin() * (0.25 * c).cos();
            Complex64::from_polar(amp, 0.3 * (0.2 * c).sin())
        })
    }

    #[test]
    fn compares_files_and_recovers_a_shift() {
        let d = tempfile::tempdir().unwrap();
        let gt = image(60, 56);
        let shifted = fourier_shift(&gt, 1.3, -0.7);
        let gt_path = d.path().join("gt.npy");
        gt.mapv(|z| Complex32::new(z.re as f32, z.im as f32))
            .write_npy(std::fs::File::create(&gt_path).unwrap())
            .unwrap();
        let rec_path = d.path().join("rec.npz");
        let mut w = NpzWriter::new(std::fs::File::create(&rec_path).unwrap());
        w.add_array(
            "recon",
            &shifted.mapv(|z| Complex32::new(z.re as f32, z.im as f32)),
        )
        .unwrap();
        w.add_array("amplitude", &shifted.mapv(|z| z.norm() as f32))
            .unwrap();
        w.finish().unwrap();
        let rep = compare(&rec_path, &gt_path, None, true).unwrap();
        let (dy, dx) = rep.offset.unwrap();
        // The periodic shift of a non-periodic image wraps its edges: 1/50 px grid plus a little.
        assert!(
            (dy + 1.3).abs() <= 0.03 && (dx - 0.7).abs() <= 0.03,
            "{dy} {dx}"
        );
        assert_eq!(rep.reconstruction_key.as_deref(), Some("recon"));
        assert!(
            rep.metrics.amplitude.ssim > 0.95,
            "{}",
            rep.metrics.amplitude.ssim
        );
        assert!(rep.to_table().contains("psnr_range"));
        let j: serde_json::Value = serde_json::from_str(&rep.to_json()).unwrap();
        assert!(j["metrics"]["phase"]["ssim"].as_f64().unwrap() > 0.9);
        // Without registration the shift stays and the metrics are worse.
        let raw = compare(&rec_path, &gt_path, None, false).unwrap();
        assert!(raw.offset.is_none());
        assert!(raw.metrics.amplitude.mse > rep.metrics.amplitude.mse);
        // A missing key is named with the keys present.
        let e = compare(&rec_path, &gt_path, Some("nope"), true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("rec.npz") && e.contains("`nope`") && e.contains("recon, amplitude"),
            "{e}"
        );
    }

    /// The 68x68 pair of `scripts/reference_metrics.py` (same formulas on both sides).
    fn reference_complex_pair() -> (Array2<Complex64>, Array2<Complex64>) {
        let f = |r: usize, c: usize| {
            let (rf, cf) = (r as f64, c as f64);
            let amp_t = 1.0
                + 0.3 * (0.23 * cf).sin() * (0.17 * rf).cos()
                + 0.05 * ((3 * r + 5 * c) % 4) as f64;
            let phi_t = 0.4 * (0.11 * rf + 0.07 * cf).sin() + 0.2 * (0.3 * cf).cos() + 0.01 * cf;
            let amp_p = 0.9
                * (amp_t
                    + 0.06 * (0.5 * rf - 0.35 * cf).cos()
                    + 0.02 * (((7 * r + 2 * c) % 5) as f64 - 2.0));
            let phi_p = phi_t + 0.1 * (0.41 * rf).sin() * (0.29 * cf).cos() - 0.02 * rf + 0.5;
            (
                Complex64::from_polar(amp_t, phi_t),
                Complex64::from_polar(amp_p, phi_p),
            )
        };
        let gt = Array2::from_shape_fn((68, 68), |(r, c)| f(r, c).0);
        let rec = Array2::from_shape_fn((68, 68), |(r, c)| f(r, c).1);
        (gt, rec)
    }

    #[test]
    fn unregistered_scores_are_ptychopinns_trimmed_once() {
        let (gt, rec) = reference_complex_pair();
        let (al, m, _) = compare_images(&rec, &gt, false).unwrap();
        assert_eq!(al.gt.dim(), (68, 68), "no crop besides the metrics' trim");
        let (wa, wp) = crate::evaluation::metrics::tests_reference_unregistered();
        for (got, want, part) in [(&m.amplitude, wa, "amplitude"), (&m.phase, wp, "phase")] {
            let got6 = [
                got.mae,
                got.mse,
                got.ssim,
                got.ms_ssim,
                got.frc50,
                got.frc1over7,
            ];
            for (k, (a, b)) in got6.iter().zip(want.iter()).enumerate() {
                assert!((a - b).abs() < 1e-9, "{part} metric {k}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn identical_images_compare_perfectly() {
        let a = image(40, 40);
        let (al, m, p) = compare_images(&a, &a, true).unwrap();
        assert!((p.phase.pearson - 1.0).abs() < 1e-9 && p.uncovered_fraction == 0.0);
        assert_eq!(al.offset, Some((0.0, 0.0)));
        assert_eq!(al.gt.dim(), (36, 36));
        assert!(m.amplitude.mae < 1e-12);
        assert!((m.phase.ssim - 1.0).abs() < 1e-12);
    }
}
