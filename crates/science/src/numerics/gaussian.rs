//! scipy.ndimage-compatible Gaussian filtering (`gaussian_filter`, `gaussian_filter1d`, order 0).
//!
//! Conventions (scipy's defaults, reference section 1 step 4):
//! * kernel radius `r = int(truncate * sigma + 0.5)` (truncate 4 gives r = 4 for sigma 1);
//! * weights `exp(-x^2 / (2 sigma^2))` for `x = -r..=r`, divided by their sum;
//! * boundary mode **reflect** (half-sample symmetric, `... c b a | a b c ...`), repeated as often
//!   as needed when the kernel is wider than the line;
//! * the 2-D filter is separable: axis 0 (rows index) first, then axis 1, in float64.
//!
//! The sum for one output sample is `w[0] x[i] + sum_{j=1..r} w[j] (x[i-j] + x[i+j])`, scipy's
//! order for symmetric kernels, so results match scipy to rounding.

use ndarray::{Array2, ArrayView2, Axis, Zip};

/// Default `truncate` of scipy's Gaussian filters.
pub const TRUNCATE: f64 = 4.0;

/// The normalised half-kernel `w[0..=r]` (w[j] = w[-j]) for `sigma` and `truncate`.
pub fn kernel(sigma: f64, truncate: f64) -> Vec<f64> {
    let r = (truncate * sigma + 0.5) as usize;
    let full: Vec<f64> = (-(r as i64)..=r as i64)
        .map(|x| (-0.5 / (sigma * sigma) * (x * x) as f64).exp())
        .collect();
    let sum: f64 = full.iter().sum();
    full[r..].iter().map(|w| w / sum).collect()
}

/// Index of sample `k` (possibly outside `0..n`) under scipy's `reflect` mode.
pub fn reflect_index(k: i64, n: usize) -> usize {
    let n = n as i64;
    if n == 1 {
        return 0;
    }
    let p = 2 * n;
    let m = k.rem_euclid(p);
    (if m >= n { p - 1 - m } else { m }) as usize
}

/// Filter one line (`src` -> `dst`, same length) with half-kernel `w`, reflect boundaries.
/// `ext` is scratch of any length; it is resized as needed.
pub fn filter_line(src: &[f64], dst: &mut [f64], w: &[f64], ext: &mut Vec<f64>) {
    let n = src.len();
    if n == 0 {
        return;
    }
    let r = w.len() - 1;
    ext.clear();
    ext.extend((0..n + 2 * r).map(|k| src[reflect_index(k as i64 - r as i64, n)]));
    for (i, d) in dst.iter_mut().enumerate() {
        let c = i + r;
        let mut acc = ext[c] * w[0];
        for (j, wj) in w.iter().enumerate().skip(1) {
            acc += (ext[c - j] + ext[c + j]) * wj;
        }
        *d = acc;
    }
}

/// `scipy.ndimage.gaussian_filter1d(a, sigma, axis, mode='reflect', truncate)` for a 2-D array.
pub fn gaussian_filter1d(
    a: &ArrayView2<f64>,
    sigma: f64,
    axis: usize,
    truncate: f64,
) -> Array2<f64> {
    let w = kernel(sigma, truncate);
    let mut out = Array2::<f64>::zeros(a.dim());
    Zip::from(out.lanes_mut(Axis(axis)))
        .and(a.lanes(Axis(axis)))
        .par_for_each(|mut o, i| {
            let src: Vec<f64> = i.iter().copied().collect();
            let mut dst = vec![0.0; src.len()];
            let mut ext = Vec::new();
            filter_line(&src, &mut dst, &w, &mut ext);
            o.iter_mut().zip(dst).for_each(|(o, v)| *o = v);
        });
    out
}

/// `scipy.ndimage.gaussian_filter(a, sigma, mode='reflect', truncate)` for a 2-D float64 array:
/// axis 0 then axis 1 with the same `sigma`. `sigma = 0` returns a copy (scipy skips the axis).
pub fn gaussian_filter(a: &ArrayView2<f64>, sigma: f64, truncate: f64) -> Array2<f64> {
    if sigma <= 1e-15 {
        return a.to_owned();
    }
    let t = gaussian_filter1d(a, sigma, 0, truncate);
    gaussian_filter1d(&t.view(), sigma, 1, truncate)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct 2-D reference: sum over the full separable kernel with reflected indices.
    fn naive(a: &Array2<f64>, sigma: f64) -> Array2<f64> {
        let w = kernel(sigma, TRUNCATE);
        let r = w.len() as i64 - 1;
        let (h, wd) = a.dim();
        Array2::from_shape_fn((h, wd), |(i, j)| {
            let mut acc = 0.0;
            for di in -r..=r {
                for dj in -r..=r {
                    let ii = reflect_index(i as i64 + di, h);
                    let jj = reflect_index(j as i64 + dj, wd);
                    acc +=
                        w[di.unsigned_abs() as usize] * w[dj.unsigned_abs() as usize] * a[[ii, jj]];
                }
            }
            acc
        })
    }

    #[test]
    fn kernel_matches_scipy_radius_and_normalisation() {
        let w = kernel(1.0, 4.0);
        assert_eq!(w.len(), 5);
        let s: f64 = w[0] + 2.0 * w[1..].iter().sum::<f64>();
        assert!((s - 1.0).abs() < 1e-15);
        // scipy: gaussian_kernel1d(1, 0, 4)[4] = 0.3989422804014327 / 1.0000...; sum-normalised.
        assert!((w[0] - 0.398942280401432).abs() < 1e-4);
        assert_eq!(kernel(10.0, 4.0).len(), 41);
        assert_eq!(kernel(5.0, 4.0).len(), 21);
    }

    #[test]
    fn values_match_scipy() {
        // numpy: a = (arange(9*13).reshape(9,13) % 7).astype(float)
        // gaussian_filter(a, 5.0)[0, :3] and gaussian_filter(a, 2.5)[4, :3] (scipy 1.x).
        let a = Array2::from_shape_fn((9, 13), |(i, j)| ((i * 13 + j) % 7) as f64);
        let g5 = gaussian_filter(&a.view(), 5.0, TRUNCATE);
        let g25 = gaussian_filter(&a.view(), 2.5, TRUNCATE);
        for (k, w) in [2.91465426, 2.91773222, 2.92339499].iter().enumerate() {
            assert!((g5[[0, k]] - w).abs() < 1e-8, "{}", g5[[0, k]]);
        }
        for (k, w) in [3.00225747, 3.0025, 3.00204889].iter().enumerate() {
            assert!((g25[[4, k]] - w).abs() < 1e-8, "{}", g25[[4, k]]);
        }
    }

    #[test]
    fn reflect_mode_is_half_sample_symmetric() {
        let got: Vec<usize> = (-5..9).map(|k| reflect_index(k, 4)).collect();
        // ... c b a | a b c d | d c b a | a ...
        assert_eq!(got, vec![3, 3, 2, 1, 0, 0, 1, 2, 3, 3, 2, 1, 0, 0]);
        assert_eq!(reflect_index(-7, 1), 0);
    }

    #[test]
    fn separable_filter_matches_the_direct_sum_including_wide_kernels() {
        let a = Array2::from_shape_fn((9, 13), |(i, j)| {
            ((i * 7 + j * 3) % 5) as f64 + 0.25 * i as f64
        });
        for &s in &[1.0, 2.5, 5.0] {
            let f = gaussian_filter(&a.view(), s, TRUNCATE);
            let n = naive(&a, s);
            let err = (&f - &n).iter().fold(0.0f64, |m, x| m.max(x.abs()));
            assert!(err < 1e-12, "sigma {s}: {err}");
            // Reflect boundaries conserve the sum exactly for any kernel.
            assert!((f.sum() - a.sum()).abs() < 1e-9 * a.sum());
        }
    }
}
