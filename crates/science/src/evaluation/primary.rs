//! The primary scores: a reconstruction scored only where it was reconstructed. The covered
//! region is the set of pixels at least one stitched crop covers (non-zero in the stitched
//! image), eroded by [`COVERAGE_MARGIN`] px; on it, amplitude (mean-ratio normalised over the
//! region) and phase (a least-squares plane removed over the region, per image) get MAE, MSE,
//! PSNR with the truth's data range over the region as peak, and the Pearson correlation with
//! the truth: a phase measure that can fail (a flat phase scores 0, an inverted one -1).
//!
//! The PtychoPINN-compatible scores ([`crate::evaluation::metrics`]) stay beside these, on the
//! whole image, uncovered pixels (zeros) included, as PtychoPINN computes them.

use crate::error::{Error, Result};
use crate::evaluation::metrics::{psnr, METRIC_TRIM};
use ndarray::Array2;
use num_complex::Complex64;

/// Pixels the covered region is eroded by (a square neighbourhood): the edge of a stitched
/// crop is where a reconstruction is least trustworthy, and registration moves it by a pixel or
/// two.
pub const COVERAGE_MARGIN: usize = 2;

/// The primary scores of one channel on the covered region.
#[derive(Clone, Debug, PartialEq)]
pub struct PrimaryChannel {
    /// Pearson correlation with the truth (0 when either side is constant).
    pub pearson: f64,
    pub mae: f64,
    pub mse: f64,
    /// PSNR (dB) with the truth's data range over the region as peak.
    pub psnr: f64,
}

/// The primary scores of one reconstruction.
#[derive(Clone, Debug, PartialEq)]
pub struct PrimaryMetrics {
    /// Fraction of the scored area (after the metrics' trim) outside the covered region.
    pub uncovered_fraction: f64,
    pub amplitude: PrimaryChannel,
    pub phase: PrimaryChannel,
}

/// The covered region of a stitched image: its non-zero pixels, eroded by `margin` px (a pixel
/// stays covered only when its whole `(2 margin + 1)^2` neighbourhood inside the image is).
pub fn covered_mask(image: &Array2<Complex64>, margin: usize) -> Array2<bool> {
    let (h, w) = image.dim();
    let m = margin as isize;
    Array2::from_shape_fn((h, w), |(r, c)| {
        for dr in -m..=m {
            for dc in -m..=m {
                let (rr, cc) = (r as isize + dr, c as isize + dc);
                if rr < 0 || cc < 0 || rr >= h as isize || cc >= w as isize {
                    continue;
                }
                if image[[rr as usize, cc as usize]].norm_sqr() == 0.0 {
                    return false;
                }
            }
        }
        true
    })
}

/// Move a mask by the registration shift `(dy, dx)` rounded to whole pixels (what leaves the
/// image is dropped, what enters is uncovered), then crop `border` px from every side.
pub fn shift_and_crop_mask(mask: &Array2<bool>, dy: f64, dx: f64, border: usize) -> Array2<bool> {
    let (h, w) = mask.dim();
    let (sy, sx) = (dy.round() as isize, dx.round() as isize);
    let (oh, ow) = (h.saturating_sub(2 * border), w.saturating_sub(2 * border));
    Array2::from_shape_fn((oh, ow), |(r, c)| {
        let (rr, cc) = ((r + border) as isize - sy, (c + border) as isize - sx);
        rr >= 0 && cc >= 0 && rr < h as isize && cc < w as isize && mask[[rr as usize, cc as usize]]
    })
}

/// The Pearson correlation of two samples (0 when either is constant).
pub(crate) fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    // A constant side has no correlation; rounding noise on a flat image is not one.
    let tiny = 1e-24 * n;
    if saa <= tiny || sbb <= tiny {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

/// Least-squares plane `z = a x + b y + c` over the points `(y, x, z)`, subtracted.
fn remove_plane_over(points: &[(f64, f64, f64)]) -> Vec<f64> {
    let n = points.len() as f64;
    let (my, mx) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let mz = points.iter().map(|p| p.2).sum::<f64>() / n;
    let (mut sxx, mut syy, mut sxy, mut sxz, mut syz) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(y, x, z) in points {
        let (x, y, z) = (x - mx, y - my, z - mz);
        sxx += x * x;
        syy += y * y;
        sxy += x * y;
        sxz += x * z;
        syz += y * z;
    }
    let det = sxx * syy - sxy * sxy;
    let (a, b) = if det.abs() > 1e-12 * (sxx * syy).max(1e-300) {
        ((sxz * syy - syz * sxy) / det, (syz * sxx - sxz * sxy) / det)
    } else {
        (0.0, 0.0)
    };
    points
        .iter()
        .map(|&(y, x, z)| z - mz - a * (x - mx) - b * (y - my))
        .collect()
}

fn channel(t: &[f64], p: &[f64]) -> PrimaryChannel {
    let n = t.len() as f64;
    let mae = t.iter().zip(p).map(|(a, b)| (a - b).abs()).sum::<f64>() / n;
    let mse = t.iter().zip(p).map(|(a, b)| (a - b) * (a - b)).sum::<f64>() / n;
    let (lo, hi) = t
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    PrimaryChannel {
        pearson: pearson(t, p),
        mae,
        mse,
        psnr: psnr(mse, hi - lo),
    }
}

/// The primary scores of `recon` against `gt` (aligned, same shape) on `mask` (same shape),
/// after the metrics' [`METRIC_TRIM`] px trim. Fails when fewer than 3 pixels are covered.
pub fn primary_metrics(
    recon: &Array2<Complex64>,
    gt: &Array2<Complex64>,
    mask: &Array2<bool>,
) -> Result<PrimaryMetrics> {
    if recon.dim() != gt.dim() || mask.dim() != gt.dim() {
        return Err(Error::Invalid(format!(
            "primary scores: reconstruction {:?}, ground truth {:?} and coverage mask {:?} \
             differ in shape",
            recon.dim(),
            gt.dim(),
            mask.dim()
        )));
    }
    let (h, w) = gt.dim();
    let t = METRIC_TRIM;
    let mut idx = Vec::new();
    let mut scored = 0usize;
    for r in t..h.saturating_sub(t) {
        for c in t..w.saturating_sub(t) {
            scored += 1;
            if mask[[r, c]] {
                idx.push((r, c));
            }
        }
    }
    if idx.len() < 3 {
        return Err(Error::Invalid(format!(
            "primary scores: only {} of {scored} pixels are covered by a stitched crop",
            idx.len()
        )));
    }
    let at: Vec<f64> = idx.iter().map(|&ij| gt[ij].norm()).collect();
    let ap_raw: Vec<f64> = idx.iter().map(|&ij| recon[ij].norm()).collect();
    let (mt, mp) = (
        at.iter().sum::<f64>() / at.len() as f64,
        ap_raw.iter().sum::<f64>() / ap_raw.len() as f64,
    );
    let ap: Vec<f64> = if mp == 0.0 {
        ap_raw
    } else {
        ap_raw.iter().map(|v| v * mt / mp).collect()
    };
    let phase_of = |img: &Array2<Complex64>| {
        let pts: Vec<(f64, f64, f64)> = idx
            .iter()
            .map(|&(r, c)| (r as f64, c as f64, img[[r, c]].arg()))
            .collect();
        remove_plane_over(&pts)
    };
    let (pt, pp) = (phase_of(gt), phase_of(recon));
    Ok(PrimaryMetrics {
        uncovered_fraction: 1.0 - idx.len() as f64 / scored as f64,
        amplitude: channel(&at, &ap),
        phase: channel(&pt, &pp),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(h: usize, w: usize) -> Array2<Complex64> {
        Array2::from_shape_fn((h, w), |(r, c)| {
            let (r, c) = (r as f64, c as f64);
            Complex64::from_polar(
                1.0 + 0.3 * (0.3 * r).sin() * (0.2 * c).cos(),
                0.2 * (0.25 * c + 0.1 * r).sin(),
            )
        })
    }

    #[test]
    fn known_answers_on_the_covered_region() {
        let gt = object(40, 40);
        let all = Array2::from_elem((40, 40), true);
        let same = primary_metrics(&gt, &gt, &all).unwrap();
        assert!((same.amplitude.pearson - 1.0).abs() < 1e-12);
        assert!((same.phase.pearson - 1.0).abs() < 1e-12);
        assert_eq!(same.uncovered_fraction, 0.0);
        let flat = gt.mapv(|z| Complex64::new(z.norm(), 0.0));
        let f = primary_metrics(&flat, &gt, &all).unwrap();
        assert!(f.phase.pearson.abs() < 0.3, "{}", f.phase.pearson);
        let inverted = gt.mapv(|z| z.conj());
        let i = primary_metrics(&inverted, &gt, &all).unwrap();
        assert!((i.phase.pearson + 1.0).abs() < 1e-9, "{}", i.phase.pearson);
        // Holes are not scored: zero a block, mask it, and the scores stay perfect.
        let mut holed = gt.clone();
        holed
            .slice_mut(ndarray::s![10..20, 10..20])
            .fill(Complex64::new(0.0, 0.0));
        let mask = covered_mask(&holed, COVERAGE_MARGIN);
        assert!(!mask[[8, 15]] && mask[[7, 15]] && !mask[[15, 21]] && mask[[15, 22]]);
        let h = primary_metrics(&holed, &gt, &mask).unwrap();
        assert!((h.phase.pearson - 1.0).abs() < 1e-12 && h.amplitude.mae < 1e-12);
        assert!((h.uncovered_fraction - 196.0 / 1296.0).abs() < 1e-12);
    }

    #[test]
    fn a_mask_moves_with_the_registration_shift() {
        let mut m = Array2::from_elem((10, 10), false);
        m[[4, 4]] = true;
        let s = shift_and_crop_mask(&m, 1.2, -2.4, 1);
        assert_eq!(s.dim(), (8, 8));
        assert!(s[[4, 1]]);
        assert_eq!(s.iter().filter(|&&v| v).count(), 1);
    }
}
