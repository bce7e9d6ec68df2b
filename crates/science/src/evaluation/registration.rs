//! Sub-pixel image registration: cross-correlation with upsampled-DFT refinement
//! (Guizar-Sicairos et al. 2008, as scikit-image's `phase_cross_correlation`), phase-normalised
//! ([`Normalization::Phase`], scikit-image's and PtychoPINN's default) or unnormalised
//! ([`Normalization::None`], robust on stitched images with zero-filled borders), and the Fourier
//! shift that applies the result.
//!
//! Precision: the phase normalisation divides the cross-power spectrum by its magnitude, floored
//! at `100 eps` of the images' storage precision ([`Precision`], as scikit-image uses the dtype of
//! its input). Flooring single-precision images at the double-precision epsilon turns their
//! rounding noise into unit-magnitude spectrum terms that drown the signal: integer shifts (where
//! the noise moves with the image) were still found, every fractional shift was not.
//!
//! Convention: [`phase_cross_correlation`] returns `(dy, dx)`, the shift (rows, columns, pixels)
//! that [`fourier_shift`] must apply **to the moving image** to register it with the reference.
//! A positive shift moves content towards higher indices.

use crate::error::{Error, Result};
use crate::numerics::fft::{fftfreq, Fft2};
use ndarray::Array2;
use num_complex::Complex64;
use std::f64::consts::PI;

/// How the cross-power spectrum is normalised before the inverse transform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Normalization {
    /// Divided by its magnitude (scikit-image `normalization="phase"`, PtychoPINN's).
    Phase,
    /// Left as is (scikit-image `normalization=None`): the plain cross-correlation.
    None,
}

/// The floating-point precision the images were stored in (the `eps` of the phase normalisation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    Single,
    Double,
}

impl Precision {
    /// `Single` when every real and imaginary part is exactly an `f32` value (an image read from
    /// complex64 or float32 data), else `Double`.
    pub fn of(images: &[&Array2<Complex64>]) -> Precision {
        let exact = |v: f64| (v as f32) as f64 == v;
        if images
            .iter()
            .all(|a| a.iter().all(|z| exact(z.re) && exact(z.im)))
        {
            Precision::Single
        } else {
            Precision::Double
        }
    }

    fn epsilon(self) -> f64 {
        match self {
            Precision::Single => f32::EPSILON as f64,
            Precision::Double => f64::EPSILON,
        }
    }
}

/// Phase-normalised cross-correlation of double-precision images: see [`cross_correlation`].
pub fn phase_cross_correlation(
    reference: &Array2<f64>,
    moving: &Array2<f64>,
    upsample_factor: usize,
) -> Result<(f64, f64)> {
    cross_correlation(
        reference,
        moving,
        upsample_factor,
        Normalization::Phase,
        Precision::Double,
    )
}

/// The shift `(dy, dx)` to apply to `moving` so that it matches `reference`, to a precision of
/// `1 / upsample_factor` pixel. Shifts above half the size wrap to negative. With
/// [`Normalization::Phase`] the cross-power spectrum is normalised by its magnitude, floored at
/// `100 eps` of `precision`.
pub fn cross_correlation(
    reference: &Array2<f64>,
    moving: &Array2<f64>,
    upsample_factor: usize,
    normalization: Normalization,
    precision: Precision,
) -> Result<(f64, f64)> {
    if reference.dim() != moving.dim() {
        return Err(Error::Invalid(format!(
            "registration: reference {:?} and moving image {:?} differ in shape",
            reference.dim(),
            moving.dim()
        )));
    }
    let (h, w) = reference.dim();
    if h == 0 || w == 0 || upsample_factor == 0 {
        return Err(Error::Invalid(
            "registration needs non-empty images and an upsample factor of at least 1".into(),
        ));
    }
    let plan = Fft2::<f64>::new(h, w);
    let mut a = reference.mapv(|v| Complex64::new(v, 0.0));
    let mut b = moving.mapv(|v| Complex64::new(v, 0.0));
    plan.forward(&mut a);
    plan.forward(&mut b);
    let floor = 100.0 * precision.epsilon();
    let product = Array2::from_shape_fn((h, w), |ij| {
        let z = a[ij] * b[ij].conj();
        match normalization {
            Normalization::Phase => z / z.norm().max(floor),
            Normalization::None => z,
        }
    });
    let mut cc = product.clone();
    plan.inverse_normalized(&mut cc);
    let (mut pr, mut pc, mut best) = (0usize, 0usize, f64::NEG_INFINITY);
    for ((r, c), z) in cc.indexed_iter() {
        let v = z.norm();
        if v > best {
            best = v;
            pr = r;
            pc = c;
        }
    }
    let wrap = |p: usize, n: usize| {
        let mid = (n / 2) as f64;
        let p = p as f64;
        if p > mid {
            p - n as f64
        } else {
            p
        }
    };
    let (mut dy, mut dx) = (wrap(pr, h), wrap(pc, w));
    if upsample_factor == 1 {
        return Ok((dy, dx));
    }
    let uf = upsample_factor as f64;
    dy = (dy * uf).round() / uf;
    dx = (dx * uf).round() / uf;
    let region = (uf * 1.5).ceil() as usize;
    let dftshift = (region as f64 / 2.0).floor();
    let (off_r, off_c) = (dftshift - dy * uf, dftshift - dx * uf);
    // CC[a, b] = sum_{r,c} P[r,c] exp(+2 pi i ((a - off_r) fr_r + (b - off_c) fc_c)),
    // with fr = fftfreq(h) / uf, fc = fftfreq(w) / uf: the inverse DFT sampled on the fine grid.
    let fr: Vec<f64> = fftfreq(h).into_iter().map(|f| f / uf).collect();
    let fc: Vec<f64> = fftfreq(w).into_iter().map(|f| f / uf).collect();
    let kc = Array2::from_shape_fn((region, w), |(bb, c)| {
        Complex64::from_polar(1.0, 2.0 * PI * (bb as f64 - off_c) * fc[c])
    });
    let kr = Array2::from_shape_fn((region, h), |(aa, r)| {
        Complex64::from_polar(1.0, 2.0 * PI * (aa as f64 - off_r) * fr[r])
    });
    // (h, w) x (w, region)^T -> (h, region), then (region, h) x (h, region).
    let tmp = product.dot(&kc.t());
    let fine = kr.dot(&tmp);
    let (mut ar, mut ac, mut best) = (0usize, 0usize, f64::NEG_INFINITY);
    for ((r, c), z) in fine.indexed_iter() {
        let v = z.norm();
        if v > best {
            best = v;
            ar = r;
            ac = c;
        }
    }
    dy += (ar as f64 - dftshift) / uf;
    dx += (ac as f64 - dftshift) / uf;
    Ok((dy, dx))
}

/// Shift an image by `(dy, dx)` pixels through the Fourier domain (periodic):
/// `ifft2(fft2(img) exp(-2 pi i (dy ky + dx kx)))` with `k = fftfreq`. Complex stays complex.
pub fn fourier_shift(img: &Array2<Complex64>, dy: f64, dx: f64) -> Array2<Complex64> {
    let (h, w) = img.dim();
    if h == 0 || w == 0 {
        return img.clone();
    }
    let plan = Fft2::<f64>::new(h, w);
    let mut f = img.clone();
    plan.forward(&mut f);
    let ky = fftfreq(h);
    let kx = fftfreq(w);
    for ((r, c), z) in f.indexed_iter_mut() {
        *z *= Complex64::from_polar(1.0, -2.0 * PI * (dy * ky[r] + dx * kx[c]));
    }
    plan.inverse_normalized(&mut f);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(h: usize, w: usize) -> Array2<f64> {
        Array2::from_shape_fn((h, w), |(r, c)| {
            let (r, c) = (r as f64, c as f64);
            (-((r - 30.0).powi(2) + (c - 38.0).powi(2)) / 90.0).exp()
                + 0.6 * (-((r - 18.0).powi(2) + (c - 20.0).powi(2)) / 30.0).exp()
                + 0.3 * (0.31 * r).sin() * (0.23 * c).cos().powi(2)
        })
    }

    fn shifted(a: &Array2<f64>, dy: f64, dx: f64) -> Array2<f64> {
        fourier_shift(&a.mapv(|v| Complex64::new(v, 0.0)), dy, dx).mapv(|z| z.re)
    }

    #[test]
    fn a_known_subpixel_shift_is_recovered() {
        let reference = pattern(64, 72);
        for &(sy, sx) in &[(1.37, -2.61), (-0.42, 0.18), (3.0, 5.5)] {
            let moving = shifted(&reference, sy, sx);
            let (dy, dx) = phase_cross_correlation(&reference, &moving, 50).unwrap();
            assert!((dy + sy).abs() <= 0.02 + 1e-9, "dy {dy} for shift {sy}");
            assert!((dx + sx).abs() <= 0.02 + 1e-9, "dx {dx} for shift {sx}");
            // Applying the result registers the images.
            let back = shifted(&moving, dy, dx);
            let err = (&back - &reference)
                .iter()
                .fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(err < 0.02, "residual {err}");
        }
    }

    #[test]
    fn matches_scikit_image_on_the_reference_pair() {
        // The pair of scripts/reference_metrics.py: moving = reference shifted by (1.37, -2.61).
        let reference = pattern(64, 72);
        let moving = shifted(&reference, 1.37, -2.61);
        let (dy, dx) = phase_cross_correlation(&reference, &moving, 50).unwrap();
        let want = crate::evaluation::metrics::tests_reference_shift();
        assert!((dy - want[0]).abs() < 1e-9, "{dy} vs {}", want[0]);
        assert!((dx - want[1]).abs() < 1e-9, "{dx} vs {}", want[1]);
    }

    /// The periodic image of `scripts/reference_metrics.py` (every period divides 68).
    fn periodic() -> Array2<f64> {
        let tau = 2.0 * PI;
        Array2::from_shape_fn((68, 68), |(r, c)| {
            let (r, c) = (r as f64, c as f64);
            1.0 + 0.5 * (tau * r / 68.0).sin() * (tau * 2.0 * c / 68.0).cos()
                + 0.3 * (tau * (3.0 * r + c) / 34.0).cos()
                + 0.2 * (tau * 5.0 * c / 68.0 + 1.0).sin()
        })
    }

    #[test]
    fn fractional_shifts_of_periodic_images_match_scikit_image_in_both_precisions() {
        let reference = periodic();
        let single = |a: &Array2<f64>| a.mapv(|v| v as f32 as f64);
        for (applied, want64, want32) in
            crate::evaluation::metrics::tests_reference_periodic_registrations()
        {
            let moving = shifted(&reference, applied[0], applied[1]);
            let got64 = cross_correlation(
                &reference,
                &moving,
                50,
                Normalization::Phase,
                Precision::Double,
            )
            .unwrap();
            // Stored as float32, as the study's images are; the precision is read off the data.
            let (r32, m32) = (single(&reference), single(&moving));
            let c = |a: &Array2<f64>| a.mapv(|v| Complex64::new(v, 0.0));
            let precision = Precision::of(&[&c(&r32), &c(&m32)]);
            assert_eq!(precision, Precision::Single);
            let got32 = cross_correlation(&r32, &m32, 50, Normalization::Phase, precision).unwrap();
            for (got, want) in [(got64, want64), (got32, want32)] {
                // One step of the 1/50 px grid at most (the two sides round differently).
                assert!(
                    (got.0 - want[0]).abs() <= 0.02 + 1e-6
                        && (got.1 - want[1]).abs() <= 0.02 + 1e-6,
                    "shift {applied:?}: found {got:?}, scikit-image {want:?}"
                );
            }
            // The unnormalised correlation finds the same shift on these images.
            let plain = cross_correlation(
                &reference,
                &moving,
                50,
                Normalization::None,
                Precision::Double,
            )
            .unwrap();
            assert!(
                (plain.0 + applied[0]).abs() <= 0.02 + 1e-6
                    && (plain.1 + applied[1]).abs() <= 0.02 + 1e-6,
                "unnormalised: {plain:?} for {applied:?}"
            );
        }
    }

    #[test]
    fn fourier_shift_by_whole_pixels_rolls() {
        let a = pattern(16, 12).mapv(|v| Complex64::new(v, 0.5 * v));
        let b = fourier_shift(&a, 2.0, -3.0);
        for ((r, c), z) in b.indexed_iter() {
            let src = a[[(r + 16 - 2) % 16, (c + 3) % 12]];
            assert!((z - src).norm() < 1e-12);
        }
    }
}
