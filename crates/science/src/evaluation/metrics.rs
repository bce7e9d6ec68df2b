//! Image-quality metrics of a reconstruction against ground truth (reference section 8, step 6):
//! MAE, MSE, PSNR, SSIM, MS-SSIM, FRC, and the amplitude/phase preparation that precedes them.
//!
//! Conventions (all computations in f64):
//! * images are `Array2<f64>` indexed `[row, col]`; both images of a pair have the same shape;
//! * SSIM is scikit-image's `structural_similarity` with its defaults: 7x7 uniform window,
//!   K1 = 0.01, K2 = 0.03, sample covariance (x 49/48), scipy `reflect` padding (edge sample
//!   repeated: `d c b a | a b c d`), mean over the image after dropping 3 border pixels;
//! * MS-SSIM is PtychoPINN's (HEAD): weights `[0.0448, 0.2856, 0.3001, 0.2363, 0.1333]`, range
//!   computed once at the start, decimation by taking every 2nd row and column, stop when the
//!   smaller side drops below 7, negative SSIM clamped to 1e-4, the whole MS-SSIM 0 when any
//!   level's SSIM is NaN;
//! * FRC rings use numpy rounding (half to even) of the distance to `(h/2, w/2)`; FRC50 and
//!   FRC 1/7 are linearly interpolated crossings (HEAD convention), in ring units.

use crate::error::{Error, Result};
use crate::numerics::gaussian::reflect_index;
use ndarray::{s, Array2};
use num_complex::Complex64;
use std::f64::consts::PI;

/// MS-SSIM level weights (Wang et al. 2003, as PtychoPINN).
pub const MS_SSIM_WEIGHTS: [f64; 5] = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333];

fn same_shape(a: &Array2<f64>, b: &Array2<f64>, what: &str) -> Result<()> {
    if a.dim() != b.dim() {
        return Err(Error::Invalid(format!(
            "{what}: images have different shapes {:?} and {:?}",
            a.dim(),
            b.dim()
        )));
    }
    if a.is_empty() {
        return Err(Error::Invalid(format!("{what}: images are empty")));
    }
    Ok(())
}

/// Mean absolute error `mean |t - p|`.
pub fn mae(t: &Array2<f64>, p: &Array2<f64>) -> Result<f64> {
    same_shape(t, p, "MAE")?;
    let s: f64 = t.iter().zip(p.iter()).map(|(a, b)| (a - b).abs()).sum();
    Ok(s / t.len() as f64)
}

/// Mean squared error `mean (t - p)^2`.
pub fn mse(t: &Array2<f64>, p: &Array2<f64>) -> Result<f64> {
    same_shape(t, p, "MSE")?;
    let s: f64 = t.iter().zip(p.iter()).map(|(a, b)| (a - b) * (a - b)).sum();
    Ok(s / t.len() as f64)
}

/// PSNR in dB for a mean squared error and a peak value: `20 log10(peak / sqrt(mse))`.
/// `mse = 0` gives +infinity. With `peak = 255` this is OpenCV's `cv2.PSNR` default, which
/// PtychoPINN uses for amplitude and phase alike.
pub fn psnr(mse: f64, peak: f64) -> f64 {
    if mse <= 0.0 {
        f64::INFINITY
    } else {
        20.0 * (peak / mse.sqrt()).log10()
    }
}

/// `max - min` of an image.
pub fn data_range(a: &Array2<f64>) -> f64 {
    let (lo, hi) = a
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    hi - lo
}

/// Mean-ratio normalisation of a predicted amplitude: `p * mean(t) / mean(p)` (unchanged when
/// `mean(p)` is zero).
pub fn normalize_mean_ratio(t: &Array2<f64>, p: &Array2<f64>) -> Array2<f64> {
    let mp = p.mean().unwrap_or(0.0);
    let mt = t.mean().unwrap_or(0.0);
    if mp == 0.0 {
        p.clone()
    } else {
        p * (mt / mp)
    }
}

/// Subtract the least-squares plane `z = a col + b row + c` fitted over all pixels.
/// The normal equations are solved on centred coordinates, so the fit is exact for a plane.
pub fn remove_plane(z: &Array2<f64>) -> Array2<f64> {
    let (h, w) = z.dim();
    let n = (h * w) as f64;
    let rc = (h as f64 - 1.0) / 2.0;
    let cc = (w as f64 - 1.0) / 2.0;
    let mean = z.sum() / n;
    // With centred coordinates, the column/row sums vanish and Sum(r c) = 0 on a full grid.
    let (mut sxz, mut syz, mut sxx, mut syy) = (0.0, 0.0, 0.0, 0.0);
    for ((r, c), &v) in z.indexed_iter() {
        let x = c as f64 - cc;
        let y = r as f64 - rc;
        sxz += x * v;
        syz += y * v;
        sxx += x * x;
        syy += y * y;
    }
    let a = if sxx > 0.0 { sxz / sxx } else { 0.0 };
    let b = if syy > 0.0 { syz / syy } else { 0.0 };
    Array2::from_shape_fn((h, w), |(r, c)| {
        z[[r, c]] - (a * (c as f64 - cc) + b * (r as f64 - rc) + mean)
    })
}

/// scipy.ndimage `reflect` index (`d c b a | a b c d | d c b a`): the Gaussian filter's.
fn reflect(i: isize, n: usize) -> usize {
    reflect_index(i as i64, n)
}

/// Separable correlation with a symmetric 1-D kernel (odd length), scipy `reflect` boundary.
fn filter_separable(a: &Array2<f64>, k: &[f64]) -> Array2<f64> {
    let (h, w) = a.dim();
    let r = (k.len() / 2) as isize;
    let mut tmp = Array2::<f64>::zeros((h, w));
    for i in 0..h {
        for j in 0..w {
            let mut s = 0.0;
            for (t, kv) in k.iter().enumerate() {
                s += kv * a[[i, reflect(j as isize + t as isize - r, w)]];
            }
            tmp[[i, j]] = s;
        }
    }
    let mut out = Array2::<f64>::zeros((h, w));
    for i in 0..h {
        for j in 0..w {
            let mut s = 0.0;
            for (t, kv) in k.iter().enumerate() {
                s += kv * tmp[[reflect(i as isize + t as isize - r, h), j]];
            }
            out[[i, j]] = s;
        }
    }
    out
}

/// scipy.ndimage `uniform_filter(a, size)` with `reflect` boundary (odd `size`).
pub fn uniform_filter(a: &Array2<f64>, size: usize) -> Array2<f64> {
    let k = vec![1.0 / size as f64; size];
    filter_separable(a, &k)
}

/// scipy.ndimage `gaussian_filter(a, sigma)` with its defaults (`truncate = 4`, `reflect`
/// boundary) for MS-SSIM's amplitude blur: the one Gaussian of [`crate::numerics::gaussian`], the
/// probe's and the object's (`sigma <= 0`: no blur).
fn blur(a: &Array2<f64>, sigma: f64) -> Array2<f64> {
    crate::numerics::gaussian::gaussian_filter(
        &a.view(),
        sigma,
        crate::numerics::gaussian::TRUNCATE,
    )
}

/// SSIM as scikit-image `structural_similarity(t, p, data_range)` with default settings (see
/// the module doc). Images must be at least 7x7.
pub fn ssim(t: &Array2<f64>, p: &Array2<f64>, data_range: f64) -> Result<f64> {
    same_shape(t, p, "SSIM")?;
    const WIN: usize = 7;
    let (h, w) = t.dim();
    if h < WIN || w < WIN {
        return Err(Error::Invalid(format!(
            "SSIM needs images of at least 7x7, got {h}x{w}"
        )));
    }
    if data_range.is_nan() || data_range <= 0.0 {
        return Err(Error::Invalid(format!(
            "SSIM needs a positive data range, got {data_range}"
        )));
    }
    let np = (WIN * WIN) as f64;
    let cov_norm = np / (np - 1.0);
    let ux = uniform_filter(t, WIN);
    let uy = uniform_filter(p, WIN);
    let uxx = uniform_filter(&(t * t), WIN);
    let uyy = uniform_filter(&(p * p), WIN);
    let uxy = uniform_filter(&(t * p), WIN);
    let c1 = (0.01 * data_range).powi(2);
    let c2 = (0.03 * data_range).powi(2);
    let pad = (WIN - 1) / 2;
    let mut sum = 0.0;
    let mut n = 0usize;
    for i in pad..h - pad {
        for j in pad..w - pad {
            let (mx, my) = (ux[[i, j]], uy[[i, j]]);
            let vx = cov_norm * (uxx[[i, j]] - mx * mx);
            let vy = cov_norm * (uyy[[i, j]] - my * my);
            let vxy = cov_norm * (uxy[[i, j]] - mx * my);
            let a1 = 2.0 * mx * my + c1;
            let a2 = 2.0 * vxy + c2;
            let b1 = mx * mx + my * my + c1;
            let b2 = vx + vy + c2;
            sum += a1 * a2 / (b1 * b2);
            n += 1;
        }
    }
    Ok(sum / n as f64)
}

/// Multi-scale SSIM (PtychoPINN's `ms_ssim`, HEAD): both images optionally blurred with a
/// Gaussian of `sigma` (0 = none) first; `data_range = max(range(t), range(p))` of the (blurred)
/// inputs, computed once; at each level multiply by `SSIM^w` (a negative SSIM replaced by 1e-4;
/// a NaN SSIM makes the whole result 0), then keep every 2nd row and column; stop when the
/// smaller side would drop below 7.
pub fn ms_ssim(t: &Array2<f64>, p: &Array2<f64>, sigma: f64) -> Result<f64> {
    same_shape(t, p, "MS-SSIM")?;
    let mut a = blur(t, sigma);
    let mut b = blur(p, sigma);
    let range = data_range(&a).max(data_range(&b));
    let mut value = 1.0;
    for &wgt in MS_SSIM_WEIGHTS.iter() {
        let (h, w) = a.dim();
        if h.min(w) < 7 {
            break;
        }
        let s = ssim(&a, &b, range)?;
        if s.is_nan() {
            return Ok(0.0);
        }
        value *= if s < 0.0 { 1e-4 } else { s }.powf(wgt);
        a = a.slice(s![..;2, ..;2]).to_owned();
        b = b.slice(s![..;2, ..;2]).to_owned();
    }
    Ok(value)
}

/// Centre-crop to `(th, tw)`: `start = (size - target) / 2` per axis.
pub fn center_crop<T: Clone>(a: &Array2<T>, th: usize, tw: usize) -> Array2<T> {
    let (h, w) = a.dim();
    let (r0, c0) = ((h - th.min(h)) / 2, (w - tw.min(w)) / 2);
    a.slice(s![r0..r0 + th.min(h), c0..c0 + tw.min(w)])
        .to_owned()
}

/// numpy's `round` (half to even) for non-negative values.
fn round_half_even(x: f64) -> usize {
    let f = x.floor();
    let d = x - f;
    let r = if d > 0.5 || (d == 0.5 && (f as i64) % 2 == 1) {
        f + 1.0
    } else {
        f
    };
    r as usize
}

/// Fourier ring correlation of two images (centre-cropped to a square first). Ring `k` holds
/// the pixels whose rounded distance to `(h/2, w/2)` of the fftshifted spectrum is `k`; rings
/// run to the corners. `FRC_k = |<F1 F2*>| / sqrt(<|F1|^2> <|F2|^2>)`, 0 when either ring has
/// no power.
pub fn frc(t: &Array2<f64>, p: &Array2<f64>) -> Result<Vec<f64>> {
    same_shape(t, p, "FRC")?;
    let (h, w) = t.dim();
    let m = h.min(w);
    let t = center_crop(t, m, m);
    let p = center_crop(p, m, m);
    let plan = crate::numerics::fft::Fft2::<f64>::new(m, m);
    let mut f1 = t.mapv(|v| Complex64::new(v, 0.0));
    let mut f2 = p.mapv(|v| Complex64::new(v, 0.0));
    plan.forward(&mut f1);
    plan.forward(&mut f2);
    let f1 = crate::numerics::fft::fftshift(&f1);
    let f2 = crate::numerics::fft::fftshift(&f2);
    let c = (m / 2) as f64;
    let ring_of = |r: usize, col: usize| {
        let d = ((r as f64 - c).powi(2) + (col as f64 - c).powi(2)).sqrt();
        round_half_even(d)
    };
    let nrings = ring_of(0, 0)
        .max(ring_of(m - 1, m - 1))
        .max(ring_of(0, m - 1))
        + 1;
    let mut cross = vec![Complex64::new(0.0, 0.0); nrings];
    let mut p1 = vec![0.0; nrings];
    let mut p2 = vec![0.0; nrings];
    let mut cnt = vec![0usize; nrings];
    for r in 0..m {
        for col in 0..m {
            let k = ring_of(r, col);
            let (a, b) = (f1[[r, col]], f2[[r, col]]);
            cross[k] += a * b.conj();
            p1[k] += a.norm_sqr();
            p2[k] += b.norm_sqr();
            cnt[k] += 1;
        }
    }
    Ok((0..nrings)
        .map(|k| {
            if cnt[k] == 0 {
                return 0.0;
            }
            let n = cnt[k] as f64;
            let den = ((p1[k] / n) * (p2[k] / n)).sqrt();
            if den > 0.0 {
                (cross[k] / n).norm() / den
            } else {
                0.0
            }
        })
        .collect())
}

/// The first crossing of `threshold` by an FRC curve, linearly interpolated between ring `i-1`
/// and `i` (0 if ring 0 is already below), or the number of rings when it never drops below.
pub fn frc_crossing(curve: &[f64], threshold: f64) -> f64 {
    match curve.iter().position(|&v| v < threshold) {
        None => curve.len() as f64,
        Some(0) => 0.0,
        Some(i) => {
            let (a, b) = (curve[i - 1], curve[i]);
            let t = if a != b {
                (a - threshold) / (a - b)
            } else {
                0.0
            };
            (i - 1) as f64 + t
        }
    }
}

/// Metrics of one channel (amplitude or phase).
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelMetrics {
    pub mae: f64,
    pub mse: f64,
    /// PSNR with peak 255, as PtychoPINN reports it (comparable with the study, not meaningful).
    pub psnr_255: f64,
    /// PSNR with the ground truth's data range (max - min) as peak: the meaningful one.
    pub psnr_range: f64,
    pub ssim: f64,
    pub ms_ssim: f64,
    /// Interpolated first crossing of 0.5 (ring units).
    pub frc50: f64,
    /// Interpolated first crossing of 1/7 (ring units).
    pub frc1over7: f64,
    /// The FRC curve, ring 0 (DC) first.
    pub frc: Vec<f64>,
}

/// Amplitude and phase metrics of a reconstruction against ground truth.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageMetrics {
    pub amplitude: ChannelMetrics,
    pub phase: ChannelMetrics,
}

/// `MS-SSIM` Gaussian blur applied to amplitudes (PtychoPINN's `ms_ssim_sigma`).
pub const MS_SSIM_AMPLITUDE_SIGMA: f64 = 1.0;

/// Border trimmed from both images before the metrics (`offset / 2` in PtychoPINN).
pub const METRIC_TRIM: usize = 2;

/// Reference section 8 step 6 on two aligned complex images of the same shape: trim
/// [`METRIC_TRIM`] px, amplitude after mean-ratio normalisation of the reconstruction, phase after
/// least-squares plane removal of each image separately (no unwrapping), then every metric.
/// Amplitude SSIM uses the ground truth's range; phase SSIM and MS-SSIM use `(phi + pi) / 2pi`
/// with range 1; phase FRC uses the unscaled plane-removed phases. `psnr_range` uses the ground
/// truth's data range (amplitude; plane-removed phase).
pub fn image_metrics(recon: &Array2<Complex64>, gt: &Array2<Complex64>) -> Result<ImageMetrics> {
    if recon.dim() != gt.dim() {
        return Err(Error::Invalid(format!(
            "metrics: reconstruction {:?} and ground truth {:?} differ in shape",
            recon.dim(),
            gt.dim()
        )));
    }
    let (h, w) = gt.dim();
    let tr = METRIC_TRIM;
    if h < 2 * tr + 7 || w < 2 * tr + 7 {
        return Err(Error::Invalid(format!(
            "metrics: images of {h}x{w} are too small (need at least {0}x{0})",
            2 * tr + 7
        )));
    }
    let recon = recon.slice(s![tr..h - tr, tr..w - tr]);
    let gt = gt.slice(s![tr..h - tr, tr..w - tr]);
    let at = gt.mapv(|z| z.norm());
    let ap = normalize_mean_ratio(&at, &recon.mapv(|z| z.norm()));
    let pt = remove_plane(&gt.mapv(|z| z.arg()));
    let pp = remove_plane(&recon.mapv(|z| z.arg()));
    let amplitude = {
        let m = mse(&at, &ap)?;
        let curve = frc(&at, &ap)?;
        ChannelMetrics {
            mae: mae(&at, &ap)?,
            mse: m,
            psnr_255: psnr(m, 255.0),
            psnr_range: psnr(m, data_range(&at)),
            ssim: ssim(&at, &ap, data_range(&at))?,
            ms_ssim: ms_ssim(&at, &ap, MS_SSIM_AMPLITUDE_SIGMA)?,
            frc50: frc_crossing(&curve, 0.5),
            frc1over7: frc_crossing(&curve, 1.0 / 7.0),
            frc: curve,
        }
    };
    let phase = {
        let m = mse(&pt, &pp)?;
        let st = pt.mapv(|v| (v + PI) / (2.0 * PI));
        let sp = pp.mapv(|v| (v + PI) / (2.0 * PI));
        let curve = frc(&pt, &pp)?;
        ChannelMetrics {
            mae: mae(&pt, &pp)?,
            mse: m,
            psnr_255: psnr(m, 255.0),
            psnr_range: psnr(m, data_range(&pt)),
            ssim: ssim(&st, &sp, 1.0)?,
            ms_ssim: ms_ssim(&st, &sp, 0.0)?,
            frc50: frc_crossing(&curve, 0.5),
            frc1over7: frc_crossing(&curve, 1.0 / 7.0),
            frc: curve,
        }
    };
    Ok(ImageMetrics { amplitude, phase })
}

/// The registration shift scikit-image found for the pair of `scripts/reference_metrics.py`.
#[cfg(test)]
pub(crate) fn tests_reference_shift() -> [f64; 2] {
    tests::reference_values::VALUES.registration_shift
}

/// scikit-image's results on the periodic registration cases of `scripts/reference_metrics.py`.
#[cfg(test)]
pub(crate) fn tests_reference_periodic_registrations() -> &'static [([f64; 2], [f64; 2], [f64; 2])]
{
    tests::reference_values::VALUES.periodic_registrations
}

/// PtychoPINN's unregistered scores of the 68x68 complex pair of `scripts/reference_metrics.py`
/// (amplitude, phase): `[mae, mse, ssim, ms_ssim, frc50, frc1over7]`.
#[cfg(test)]
pub(crate) fn tests_reference_unregistered() -> ([f64; 6], [f64; 6]) {
    let v = &tests::reference_values::VALUES;
    (v.unregistered_amplitude, v.unregistered_phase)
}

/// The fixed test pair shared with `scripts/reference_metrics.py` (same formulas on both sides):
/// `t[r,c] = 1 + 0.5 sin(0.3 c) cos(0.2 r) + 0.1 ((7 r + 3 c) mod 5)` and
/// `p[r,c] = t[r,c] + 0.08 cos(0.7 r + 0.45 c) + 0.03 ((11 r + 5 c) mod 7 - 3)`, 40 x 48.
#[cfg(test)]
pub(crate) fn reference_pair() -> (Array2<f64>, Array2<f64>) {
    let t = Array2::from_shape_fn((40, 48), |(r, c)| {
        let (rf, cf) = (r as f64, c as f64);
        1.0 + 0.5 * (0.3 * cf).sin() * (0.2 * rf).cos() + 0.1 * ((7 * r + 3 * c) % 5) as f64
    });
    let p = Array2::from_shape_fn((40, 48), |(r, c)| {
        let (rf, cf) = (r as f64, c as f64);
        t[[r, c]]
            + 0.08 * (0.7 * rf + 0.45 * cf).cos()
            + 0.03 * (((11 * r + 5 * c) % 7) as f64 - 3.0)
    });
    (t, p)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn smooth(h: usize, w: usize) -> Array2<f64> {
        Array2::from_shape_fn((h, w), |(r, c)| {
            1.0 + 0.4 * (0.21 * c as f64).sin() * (0.17 * r as f64).cos()
                + 0.2 * (0.05 * (r * c) as f64).sin()
        })
    }

    #[test]
    fn identical_images_are_perfect() {
        let a = smooth(32, 36);
        assert_eq!(mae(&a, &a).unwrap(), 0.0);
        assert_eq!(mse(&a, &a).unwrap(), 0.0);
        assert!((ssim(&a, &a, data_range(&a)).unwrap() - 1.0).abs() < 1e-12);
        assert!((ms_ssim(&a, &a, 1.0).unwrap() - 1.0).abs() < 1e-12);
        let curve = frc(&a, &a).unwrap();
        assert!(curve.iter().all(|&v| (v - 1.0).abs() < 1e-9), "{curve:?}");
        assert_eq!(frc_crossing(&curve, 0.5), curve.len() as f64);
        // 32x32 after the square crop: rings to the corner, round(sqrt(2) 16) + 1 = 24.
        assert_eq!(curve.len(), 24);
    }

    #[test]
    fn psnr_of_a_known_mse() {
        assert!((psnr(1.0, 255.0) - 48.130803608679).abs() < 1e-9);
        assert!((psnr(0.01, 1.0) - 20.0).abs() < 1e-12);
        let t = Array2::<f64>::zeros((4, 4));
        let p = Array2::<f64>::from_elem((4, 4), 0.1);
        let m = mse(&t, &p).unwrap();
        assert!((m - 0.01).abs() < 1e-15);
        assert!((mae(&t, &p).unwrap() - 0.1).abs() < 1e-15);
        assert_eq!(psnr(0.0, 1.0), f64::INFINITY);
    }

    #[test]
    fn a_phase_plane_is_removed_exactly() {
        let plane = Array2::from_shape_fn((17, 23), |(r, c)| 0.3 * c as f64 - 0.7 * r as f64 + 2.5);
        let res = remove_plane(&plane);
        assert!(res.iter().all(|v| v.abs() < 1e-12));
        // A plane added to a pattern is removed, leaving the pattern's own fit residual.
        let pat = smooth(17, 23);
        let a = remove_plane(&pat);
        let b = remove_plane(&(&pat + &plane));
        let d = (&a - &b).iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(d < 1e-12);
    }

    #[test]
    fn frc_crossing_is_interpolated() {
        assert_eq!(frc_crossing(&[1.0, 0.8, 0.4, 0.1], 0.5), 1.75);
        assert_eq!(frc_crossing(&[0.3, 0.2], 0.5), 0.0);
        assert_eq!(frc_crossing(&[1.0, 0.9], 0.5), 2.0);
    }

    #[test]
    fn filters_match_scipy_boundary_and_normalisation() {
        // reflect: d c b a | a b c d | d c b a
        assert_eq!(reflect(-1, 4), 0);
        assert_eq!(reflect(-2, 4), 1);
        assert_eq!(reflect(4, 4), 3);
        assert_eq!(reflect(5, 4), 2);
        let c = Array2::from_elem((9, 9), 3.0);
        assert!(blur(&c, 1.0).iter().all(|v| (v - 3.0).abs() < 1e-12));
        assert!(uniform_filter(&c, 7)
            .iter()
            .all(|v| (v - 3.0).abs() < 1e-12));
    }

    /// Values computed by `scripts/reference_metrics.py` (numpy 2, scikit-image, scipy) for the
    /// formula-defined pair in [`reference_pair`].
    #[test]
    fn ssim_msssim_and_frc_match_scikit_image() {
        let (t, p) = reference_pair();
        let r = data_range(&t);
        let s = ssim(&t, &p, r).unwrap();
        let ms = ms_ssim(&t, &p, 1.0).unwrap();
        let curve = frc(&t, &p).unwrap();
        let refs = reference_values::VALUES;
        assert!((s - refs.ssim).abs() < 1e-10, "ssim {s} vs {}", refs.ssim);
        assert!(
            (ms - refs.ms_ssim).abs() < 1e-10,
            "ms-ssim {ms} vs {}",
            refs.ms_ssim
        );
        assert_eq!(curve.len(), refs.frc.len());
        for (k, (a, b)) in curve.iter().zip(refs.frc.iter()).enumerate() {
            assert!((a - b).abs() < 1e-9, "ring {k}: {a} vs {b}");
        }
        assert!((frc_crossing(&curve, 0.5) - refs.frc50).abs() < 1e-9);
        let pt = remove_plane(&t);
        assert!((pt[[3, 5]] - refs.plane_removed_3_5).abs() < 1e-10);
    }

    pub(super) mod reference_values {
        include!("../../testdata/reference_metrics.rs");
    }
}
