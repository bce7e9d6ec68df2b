//! Probes: PtychoPINN's idealized blurred-disk probe, an aberrated experimental-like probe, loading
//! a measured probe, the hybrid probe, and the model-side probe normalisation (reference sections
//! 1 and 2).
//!
//! All probes are `N x N` complex64 arrays indexed `[row, col]`, centred at `((N-1)/2, (N-1)/2)`
//! (31.5, 31.5 for N = 64), half a pixel off the FFT centre `N/2` as in PtychoPINN.
//!
//! # The aberrated probe
//!
//! [`aberrated_probe`] stands in for a measured probe so that the study runs without external
//! data. With `c = (N-1)/2`, `r = sqrt((i-c)^2 + (j-c)^2)`, `theta = atan2(i-c, j-c)` and
//! `rho = r / aperture`:
//!
//! * amplitude: a soft-edged disk `A(r) = 1 / (1 + exp((r - aperture) / w))` with edge width
//!   `w = 0.5` px (A = 1/2 at the radius, about 1e-9 twenty edge widths further out);
//! * phase (radians, un-normalised Zernike polynomials with unit peak at `rho = 1`):
//!   `phi = defocus (2 rho^2 - 1) + astigmatism rho^2 cos(2 theta)
//!          + coma (3 rho^3 - 2 rho) cos(theta)`;
//! * `P = A exp(i phi)`, computed in float64 and cast to complex64.

use crate::error::{Error, Result};
use crate::io::npy;
use crate::numerics::gaussian;
use ndarray::Array2;
use num_complex::Complex32;
use std::path::Path;

/// PtychoPINN's `default_probe_scale`.
pub const DEFAULT_PROBE_SCALE: f64 = 0.7;
/// The model's `probe_scale` (ModelConfig default, reference section 1).
pub const MODEL_PROBE_SCALE: f64 = 4.0;

/// scipy's `signal.windows.gaussian(n, std, sym=True)` divided by its maximum.
fn gaussian_window(n: usize, std: f64) -> Vec<f64> {
    let c = (n as f64 - 1.0) / 2.0;
    let w: Vec<f64> = (0..n)
        .map(|k| (-0.5 * ((k as f64 - c) / std).powi(2)).exp())
        .collect();
    let m = w.iter().cloned().fold(f64::MIN, f64::max);
    w.into_iter().map(|v| v / m).collect()
}

/// The idealized probe as float64 (reference section 1 steps 1-4): the disk
/// `w[i] w[j] > 0.5` of a Gaussian window with `sigma = N / (0.7 pi^2)`, blurred with the scipy
/// Gaussian filter (sigma 1, truncate 4, reflect), plus 1e-9. Real and positive.
pub fn default_probe_real(n: usize) -> Array2<f64> {
    let sigma = n as f64 / (DEFAULT_PROBE_SCALE * std::f64::consts::PI.powi(2));
    let w = gaussian_window(n, sigma);
    let disk = Array2::from_shape_fn((n, n), |(i, j)| if w[i] * w[j] > 0.5 { 1.0 } else { 0.0 });
    gaussian::gaussian_filter(&disk.view(), 1.0, gaussian::TRUNCATE).mapv(|v| v + 1e-9)
}

/// The idealized ("default") probe, `N x N` complex64 with zero phase (reference section 1).
/// For N = 64: a 376-pixel disk blurred, sum 376.000004, sum |P|^2 about 337.757.
pub fn default_probe(n: usize) -> Array2<Complex32> {
    default_probe_real(n).mapv(|v| Complex32::new(v as f32, 0.0))
}

/// Parameters of [`aberrated_probe`] (see the module documentation for the formula).
#[derive(Clone, Debug, PartialEq)]
pub struct AberrationParams {
    /// Probe size N in pixels.
    pub n: usize,
    /// Aperture radius in pixels.
    pub aperture: f64,
    /// Zernike defocus amplitude in radians.
    pub defocus: f64,
    /// Zernike astigmatism amplitude in radians.
    pub astigmatism: f64,
    /// Zernike coma amplitude in radians.
    pub coma: f64,
}

impl Default for AberrationParams {
    fn default() -> Self {
        AberrationParams {
            n: 64,
            aperture: 11.0,
            defocus: 2.0,
            astigmatism: 0.5,
            coma: 0.3,
        }
    }
}

/// Edge width of the aberrated probe's soft aperture, in pixels.
pub const APERTURE_EDGE: f64 = 0.5;

/// An experimental-like probe: soft aperture with Zernike phase (module documentation).
pub fn aberrated_probe(p: &AberrationParams) -> Result<Array2<Complex32>> {
    if p.n == 0 {
        return Err(Error::Invalid("aberrated probe: N must be positive".into()));
    }
    if !(p.aperture.is_finite() && p.aperture > 0.0) {
        return Err(Error::Invalid(format!(
            "aberrated probe: aperture must be a positive number of pixels, got {}",
            p.aperture
        )));
    }
    for (name, v) in [
        ("defocus", p.defocus),
        ("astigmatism", p.astigmatism),
        ("coma", p.coma),
    ] {
        if !v.is_finite() {
            return Err(Error::Invalid(format!(
                "aberrated probe: {name} must be finite, got {v}"
            )));
        }
    }
    let c = (p.n as f64 - 1.0) / 2.0;
    Ok(Array2::from_shape_fn((p.n, p.n), |(i, j)| {
        let (dy, dx) = (i as f64 - c, j as f64 - c);
        let r = dy.hypot(dx);
        let th = dy.atan2(dx);
        let rho = r / p.aperture;
        let amp = 1.0 / (1.0 + ((r - p.aperture) / APERTURE_EDGE).exp());
        let phi = p.defocus * (2.0 * rho * rho - 1.0)
            + p.astigmatism * rho * rho * (2.0 * th).cos()
            + p.coma * (3.0 * rho.powi(3) - 2.0 * rho) * th.cos();
        Complex32::new((amp * phi.cos()) as f32, (amp * phi.sin()) as f32)
    }))
}

/// Load a measured probe: `probeGuess` from an `.npz`, or the array of a `.npy` (reference
/// section 2; the format is recognised from the file's first bytes, not its name). It must be 2-D, complex (a real array is refused) and finite; it is cast to
/// complex64. A missing key lists the keys present. Every error names the file.
pub fn load_probe(path: &Path) -> Result<Array2<Complex32>> {
    let p = if npy::is_zip(path)? {
        let mut f = npy::NpzFile::open(path)?;
        npy::read_complex2_npz(&mut f, "probeGuess")?
    } else {
        npy::read_complex2_npy(path)?
    };
    if p.iter().any(|z| !z.re.is_finite() || !z.im.is_finite()) {
        return Err(Error::data(path, "the probe holds non-finite values"));
    }
    if p.is_empty() {
        return Err(Error::data(path, "the probe is empty"));
    }
    Ok(p)
}

/// Save a probe as a complex64 `.npy`.
pub fn save_probe(path: &Path, p: &Array2<Complex32>) -> Result<()> {
    npy::write_npy(path, p)
}

/// The hybrid probe `|amplitude| * exp(i arg(phase))` (reference section 2). Shapes must be
/// identical (no resizing); a non-finite result is an error.
pub fn hybrid(
    amplitude: &Array2<Complex32>,
    phase: &Array2<Complex32>,
) -> Result<Array2<Complex32>> {
    if amplitude.dim() != phase.dim() {
        return Err(Error::Invalid(format!(
            "hybrid probe: the amplitude source has shape {:?} and the phase source {:?}; \
             they must be identical (no automatic resizing is performed)",
            amplitude.shape(),
            phase.shape()
        )));
    }
    let h = ndarray::Zip::from(amplitude)
        .and(phase)
        .map_collect(|a, p| {
            let (a, ph) = (a.norm() as f64, (p.im as f64).atan2(p.re as f64));
            Complex32::new((a * ph.cos()) as f32, (a * ph.sin()) as f32)
        });
    if h.iter().any(|z| !z.re.is_finite() || !z.im.is_finite()) {
        return Err(Error::Invalid(
            "hybrid probe: the result holds non-finite values".into(),
        ));
    }
    Ok(h)
}

/// The model's probe normalisation (reference section 1, `set_probe`):
/// `P / (probe_scale * mean_{N x N}(|P| * M))`, where `M` is the disk
/// `sqrt((i-c)^2 + (j-c)^2) < N/4` (integer division), `c = (N-1)/2` (812 pixels for N = 64).
/// For the idealized probe with `probe_scale = 4` this is `P * 2.723404`.
pub fn probe_model_normalise(p: &Array2<Complex32>, probe_scale: f64) -> Result<Array2<Complex32>> {
    let (r, c) = p.dim();
    if r != c || r == 0 {
        return Err(Error::Invalid(format!(
            "probe normalisation needs a square probe, got {r} x {c}"
        )));
    }
    let f = probe_model_factor(p, probe_scale)?;
    Ok(p.mapv(|z| z * f as f32))
}

/// The factor of [`probe_model_normalise`]: `1 / (probe_scale * mean(|P| M))`.
pub fn probe_model_factor(p: &Array2<Complex32>, probe_scale: f64) -> Result<f64> {
    let n = p.nrows();
    let c = (n as f64 - 1.0) / 2.0;
    let rad = (n / 4) as f64;
    let mut acc = 0.0f64;
    for ((i, j), z) in p.indexed_iter() {
        if ((i as f64 - c).powi(2) + (j as f64 - c).powi(2)).sqrt() < rad {
            acc += z.norm() as f64;
        }
    }
    let mean = acc / p.len() as f64;
    let f = 1.0 / (probe_scale * mean);
    if !f.is_finite() || probe_scale.is_nan() || probe_scale <= 0.0 {
        return Err(Error::Invalid(format!(
            "probe normalisation: the probe has no amplitude inside radius {rad} \
             (or probe_scale {probe_scale} is not positive)"
        )));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_probe_matches_the_reference_invariants() {
        let w = gaussian_window(64, 64.0 / (0.7 * std::f64::consts::PI.powi(2)));
        let sigma = 64.0 / (0.7 * std::f64::consts::PI.powi(2));
        assert!((sigma - 9.263651).abs() < 1e-6);
        assert_eq!(w[31], 1.0);
        assert_eq!(w[32], 1.0);
        let disk: usize = (0..64)
            .flat_map(|i| (0..64).map(move |j| (i, j)))
            .filter(|&(i, j)| w[i] * w[j] > 0.5)
            .count();
        assert_eq!(disk, 376);
        let p = default_probe_real(64);
        let sum: f64 = p.sum();
        assert!((sum - 376.000004).abs() < 1e-6, "sum {sum}");
        let e: f64 = p.iter().map(|v| v * v).sum();
        assert!((e - 337.757).abs() < 1e-3, "energy {e}");
        let want = [0.2994, 0.6976, 0.9403, 0.9952, 0.9998];
        for (k, w) in want.iter().enumerate() {
            assert!(
                (p[[31, 20 + k]] - w).abs() < 1e-4,
                "col {} {}",
                20 + k,
                p[[31, 20 + k]]
            );
        }
        let max = p.iter().cloned().fold(0.0, f64::max);
        assert!((max - 1.000000001).abs() < 1e-12);
        // Symmetric about 31.5 and complex64 with zero phase.
        assert_eq!(p[[21, 31]], p[[42, 32]]);
        let pc = default_probe(64);
        assert!(pc.iter().all(|z| z.im == 0.0 && z.re > 0.0));
    }

    #[test]
    fn model_normalisation_of_the_default_probe() {
        let p = default_probe(64);
        let c = 31.5f64;
        let m16 = (0..64)
            .flat_map(|i| (0..64).map(move |j| (i, j)))
            .filter(|&(i, j)| ((i as f64 - c).powi(2) + (j as f64 - c).powi(2)).sqrt() < 16.0)
            .count();
        assert_eq!(m16, 812);
        let f = probe_model_factor(&p, MODEL_PROBE_SCALE).unwrap();
        assert!((f - 2.723404).abs() < 1e-5, "factor {f}");
        let pm = probe_model_normalise(&p, 4.0).unwrap();
        assert!((pm[[31, 31]].re as f64 - 2.723404 * p[[31, 31]].re as f64).abs() < 1e-5);
        assert!(probe_model_normalise(&Array2::zeros((8, 8)), 4.0).is_err());
    }

    #[test]
    fn aberrated_probe_has_its_aperture_and_phase() {
        let prm = AberrationParams::default();
        let p = aberrated_probe(&prm).unwrap();
        assert_eq!(p.dim(), (64, 64));
        // Near the centre the amplitude is 1 and the phase is about -defocus.
        let z = p[[31, 31]];
        assert!((z.norm() - 1.0).abs() < 1e-6);
        let rho2 = 0.5f64 / 121.0; // (0.5^2 + 0.5^2) / 11^2
        let th = (-0.5f64).atan2(-0.5);
        let want = 2.0 * (2.0 * rho2 - 1.0)
            + 0.5 * rho2 * (2.0 * th).cos()
            + 0.3 * (3.0 * rho2.powf(1.5) - 2.0 * rho2.sqrt()) * th.cos();
        assert!((z.arg() as f64 - want).abs() < 1e-5);
        // Half amplitude at the aperture radius, negligible far out.
        let edge = p[[31, 31 + 11]].norm() as f64; // r = hypot(0.5, 10.5)
        let r = 0.5f64.hypot(10.5);
        assert!((edge - 1.0 / (1.0 + ((r - 11.0) / 0.5).exp())).abs() < 1e-6);
        assert!(p[[0, 0]].norm() < 1e-9);
        assert!(p.iter().all(|z| z.re.is_finite() && z.im.is_finite()));
        assert!(aberrated_probe(&AberrationParams {
            aperture: -1.0,
            ..prm
        })
        .is_err());
    }

    #[test]
    fn hybrid_takes_amplitude_and_phase_and_checks_shapes() {
        let a = default_probe(64);
        let ph = aberrated_probe(&AberrationParams::default()).unwrap();
        let h = hybrid(&a, &ph).unwrap();
        for ((hz, az), pz) in h.iter().zip(&a).zip(&ph) {
            assert!((hz.norm() - az.norm()).abs() < 1e-6 * az.norm().max(1e-9));
            if az.norm() > 1e-3 && pz.norm() > 1e-3 {
                let d = (hz.arg() - pz.arg()).rem_euclid(std::f32::consts::TAU);
                assert!(!(1e-4..=std::f32::consts::TAU - 1e-4).contains(&d));
            }
        }
        let e = hybrid(&a, &Array2::zeros((32, 32)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("[64, 64]") && e.contains("[32, 32]"), "{e}");
        let mut bad = a.clone();
        bad[[0, 0]] = Complex32::new(f32::INFINITY, 0.0);
        assert!(hybrid(&bad, &ph).is_err());
    }

    #[test]
    fn load_probe_reads_npz_and_npy_and_refuses_bad_arrays() {
        let dir = tempfile::tempdir().unwrap();
        let p = aberrated_probe(&AberrationParams::default()).unwrap();
        let npy_path = dir.path().join("p.npy");
        save_probe(&npy_path, &p).unwrap();
        assert_eq!(load_probe(&npy_path).unwrap(), p);
        let npz_path = dir.path().join("p.npz");
        let mut w = npy::NpzOut::create(&npz_path, false).unwrap();
        w.add("probeGuess", &p).unwrap();
        w.add("other", &ndarray::arr0(1.0f64)).unwrap();
        w.finish().unwrap();
        assert_eq!(load_probe(&npz_path).unwrap(), p);
        // The format is recognised by content: store paths need not keep their extension.
        let noext = dir.path().join("blob");
        std::fs::copy(&npz_path, &noext).unwrap();
        assert_eq!(load_probe(&noext).unwrap(), p);
        // Missing key lists the keys present.
        let q = dir.path().join("q.npz");
        let mut w = npy::NpzOut::create(&q, false).unwrap();
        w.add("probe", &p).unwrap();
        w.add("objectGuess", &p).unwrap();
        w.finish().unwrap();
        let e = load_probe(&q).unwrap_err().to_string();
        assert!(
            e.contains("q.npz") && e.contains("probeGuess") && e.contains("probe, objectGuess"),
            "{e}"
        );
        // Real-valued, 3-D, and non-finite arrays are refused, naming the file.
        let r = dir.path().join("real.npy");
        npy::write_npy(&r, &Array2::<f32>::ones((4, 4))).unwrap();
        let e = load_probe(&r).unwrap_err().to_string();
        assert!(e.contains("real.npy") && e.contains("real-valued"), "{e}");
        let t = dir.path().join("three.npy");
        npy::write_npy(&t, &ndarray::Array3::<Complex32>::zeros((2, 4, 4))).unwrap();
        let e = load_probe(&t).unwrap_err().to_string();
        assert!(e.contains("three.npy") && e.contains("2-D"), "{e}");
        let nf = dir.path().join("nan.npy");
        let mut bad = p.clone();
        bad[[3, 3]] = Complex32::new(f32::NAN, 0.0);
        npy::write_npy(&nf, &bad).unwrap();
        let e = load_probe(&nf).unwrap_err().to_string();
        assert!(e.contains("nan.npy") && e.contains("non-finite"), "{e}");
    }
}
