//! The twin-image ambiguity: with a centrosymmetric real probe one diffraction pattern cannot
//! tell an object patch `O` from its twin `conj(O)` rotated 180 degrees about the patch centre.
//! Each predicted patch is scored against its true patch and against that twin, and the
//! fraction of patches closer to the twin is reported.
//!
//! Score: the Pearson correlation of the amplitudes inside the central disk of radius
//! [`disk_radius`] (`N / 4`) around the patch centre, pixel `(N/2, N/2)`, where the probe is
//! bright. The twin's amplitude is the true amplitude rotated 180 degrees about that pixel
//! (`i -> N - i`); conjugation leaves the amplitude unchanged.

use crate::error::{Error, Result};
use crate::evaluation::primary::pearson;
use crate::evaluation::stitch::extract_patch;
use ndarray::{Array2, Array3};
use num_complex::Complex64;

/// The radius of the scored central disk for patches of `n x n` pixels.
pub fn disk_radius(n: usize) -> f64 {
    n as f64 / 4.0
}

/// The twin-image summary of one reconstruction's patches.
#[derive(Clone, Debug, PartialEq)]
pub struct TwinScores {
    /// Patches whose amplitude correlates better with the twin than with the truth.
    pub closer_to_twin: usize,
    pub n_patches: usize,
    /// Mean Pearson correlation with the true patch and with the twin.
    pub mean_pearson_true: f64,
    pub mean_pearson_twin: f64,
    pub disk_radius: f64,
}

impl TwinScores {
    /// `closer_to_twin / n_patches`.
    pub fn fraction_closer_to_twin(&self) -> f64 {
        self.closer_to_twin as f64 / self.n_patches.max(1) as f64
    }
}

/// `(Pearson with the truth, Pearson with the twin)` of one predicted patch's amplitude.
pub fn patch_scores(pred: &Array2<Complex64>, truth: &Array2<Complex64>) -> (f64, f64) {
    let n = truth.nrows();
    let c = (n / 2) as f64;
    let r2 = disk_radius(n).powi(2);
    let (mut p, mut t, mut w) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        for j in 0..n {
            let (di, dj) = (i as f64 - c, j as f64 - c);
            // The disk (radius N/4) keeps N - i and N - j inside the patch.
            if di * di + dj * dj > r2 {
                continue;
            }
            p.push(pred[[i, j]].norm());
            t.push(truth[[i, j]].norm());
            w.push(truth[[n - i, n - j]].norm());
        }
    }
    (pearson(&p, &t), pearson(&p, &w))
}

/// Score every predicted patch (`(M, N, N)`, centred on `centroids` `(x, y)`) against the
/// object's patch there and its twin.
pub fn twin_scores(
    patches: &Array3<Complex64>,
    centroids: &Array2<f64>,
    object: &Array2<Complex64>,
) -> Result<TwinScores> {
    let (m, n, n2) = patches.dim();
    if n != n2 || n < 4 || centroids.dim() != (m, 2) || m == 0 {
        return Err(Error::Invalid(format!(
            "twin scores: patches {:?} and centroids {:?} do not fit",
            patches.dim(),
            centroids.dim()
        )));
    }
    let (mut closer, mut st, mut sw) = (0usize, 0.0, 0.0);
    for k in 0..m {
        let truth = extract_patch(object, centroids[[k, 0]], centroids[[k, 1]], n);
        let pred = patches.index_axis(ndarray::Axis(0), k).to_owned();
        let (t, w) = patch_scores(&pred, &truth);
        if w > t {
            closer += 1;
        }
        st += t;
        sw += w;
    }
    Ok(TwinScores {
        closer_to_twin: closer,
        n_patches: m,
        mean_pearson_true: st / m as f64,
        mean_pearson_twin: sw / m as f64,
        disk_radius: disk_radius(n),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object() -> Array2<Complex64> {
        Array2::from_shape_fn((64, 64), |(r, c)| {
            let (r, c) = (r as f64, c as f64);
            Complex64::from_polar(
                1.0 + 0.4 * (0.37 * r + 0.11 * c).sin()
                    + 0.2 * (0.23 * c).cos() * (0.05 * r * r).sin(),
                0.3 * (0.2 * r).cos(),
            )
        })
    }

    #[test]
    fn the_truth_is_closer_to_itself_and_its_twin_to_the_twin() {
        let obj = object();
        let centroids = ndarray::arr2(&[[30.0, 31.0], [34.5, 29.0]]);
        let n = 16;
        let mut truth = Array3::<Complex64>::zeros((2, n, n));
        let mut twin = Array3::<Complex64>::zeros((2, n, n));
        for k in 0..2 {
            let t = extract_patch(&obj, centroids[[k, 0]], centroids[[k, 1]], n);
            for i in 0..n {
                for j in 0..n {
                    truth[[k, i, j]] = t[[i, j]];
                    twin[[k, i, j]] = t[[(n - i) % n, (n - j) % n]].conj();
                }
            }
        }
        let s = twin_scores(&truth, &centroids, &obj).unwrap();
        assert_eq!(s.closer_to_twin, 0);
        assert!((s.mean_pearson_true - 1.0).abs() < 1e-12);
        let w = twin_scores(&twin, &centroids, &obj).unwrap();
        assert_eq!(w.fraction_closer_to_twin(), 1.0);
        assert!((w.mean_pearson_twin - 1.0).abs() < 1e-12);
        assert_eq!(w.disk_radius, 4.0);
    }
}
