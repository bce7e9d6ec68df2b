//! Simulation of a ptychography dataset (reference section 4): random scan positions, sub-pixel
//! bilinear patch extraction, exit wave, orthonormal centred far field, the `nphotons` intensity
//! scale, seeded Poisson noise, and neighbour grouping (section 6, see [`crate::science::grouping`]).
//!
//! Conventions:
//! * Positions: `buffer = min(N/2, min(H, W)/2 - 1)` (section 4.2, `N/2` with integer division);
//!   all `n` x first, then all `n` y, each `buffer + (size - 2 buffer) u`, `u` uniform in [0, 1)
//!   (so x is in `[buffer, W - buffer)`), from `ChaCha8Rng::seed_from_u64(seed)` stream 0.
//! * Patch: `patch[i, j] = O_bilinear(y - N/2 + i, x - N/2 + j)`; a bilinear corner outside the
//!   object contributes 0; real and imaginary parts are interpolated separately (float32).
//! * Scale: `s = sqrt(nphotons / mean_patterns(sum_pixels |patch|^2 |P|^2))`, per-pattern sums in
//!   float64 in row-major order, then summed over patterns in index order (thread-independent).
//! * Far field: `lambda = s^2 |fftshift(F(patch P))|^2 / N^2` (orthonormal DFT, numpy sign),
//!   FFT in float32, `lambda` in float64.
//! * Noise: `counts ~ Poisson(lambda)` drawn pixel by pixel in row-major order of the shifted
//!   pattern from `ChaCha8Rng::seed_from_u64(seed)` with stream `1 + pattern index` ([`poisson`]:
//!   inversion below 10, numpy's PTRS above). Saved amplitude `diffraction = sqrt(counts) / s`,
//!   evaluated as `sqrt(f32(counts / s^2))` (float32, within one ulp of the exact value). With
//!   noise off, `diffraction = sqrt(lambda) / s`.
//! * Every position is simulated independently for every gridsize; gridsize only changes
//!   `group_index`. Results are bit-identical for any number of rayon threads.

use crate::error::{Error, Result};
use crate::science::dataset::Dataset;
use crate::science::fft::Fft2;
use crate::science::grouping::group_neighbours;
use ndarray::{Array1, Array2, Array3, ArrayView2, ArrayViewMut2, Axis};
use num_complex::Complex32;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Parameters of one simulated dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct SimParams {
    /// Number of patterns (positions).
    pub n_images: usize,
    /// Mean photons per pattern (the `nphotons` of section 4.5).
    pub nphotons: f64,
    /// Seed of positions and noise.
    pub seed: u64,
    /// Group side; groups have `gridsize^2` patterns.
    pub gridsize: usize,
    /// Draw Poisson noise (true for the study; false gives the noise-free amplitude).
    pub noise: bool,
    /// Distance of positions from the object edge; `None` uses the default rule of section 4.2.
    pub buffer: Option<f64>,
}

impl SimParams {
    /// Parameters with noise on and the default buffer.
    pub fn new(n_images: usize, nphotons: f64, seed: u64, gridsize: usize) -> SimParams {
        SimParams {
            n_images,
            nphotons,
            seed,
            gridsize,
            noise: true,
            buffer: None,
        }
    }
}

/// The default buffer of section 4.2: `min(N/2, min(H, W)/2 - 1)`.
pub fn default_buffer(n: usize, h: usize, w: usize) -> f64 {
    ((n / 2) as f64).min(h.min(w) as f64 / 2.0 - 1.0)
}

/// Scan positions `(x, y)` (column, row) in object pixels: all x first, then all y, from stream 0
/// of `ChaCha8Rng::seed_from_u64(seed)`. x in `[buffer, w - buffer)`, y in `[buffer, h - buffer)`.
pub fn scan_positions(
    n: usize,
    h: usize,
    w: usize,
    buffer: f64,
    seed: u64,
) -> (Vec<f64>, Vec<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut draw = |lo: f64, hi: f64| -> Vec<f64> {
        (0..n)
            .map(|_| lo + (hi - lo) * rng.random::<f64>())
            .collect()
    };
    let x = draw(buffer, w as f64 - buffer);
    let y = draw(buffer, h as f64 - buffer);
    (x, y)
}

/// The object sampled bilinearly at (row `r`, col `c`), a corner outside the image contributing 0.
pub fn bilinear(object: &ArrayView2<Complex32>, r: f64, c: f64) -> Complex32 {
    let (h, w) = object.dim();
    let (r0, c0) = (r.floor(), c.floor());
    let (fr, fc) = ((r - r0) as f32, (c - c0) as f32);
    let get = |i: f64, j: f64| -> Complex32 {
        if i >= 0.0 && j >= 0.0 && (i as usize) < h && (j as usize) < w {
            object[[i as usize, j as usize]]
        } else {
            Complex32::new(0.0, 0.0)
        }
    };
    get(r0, c0) * ((1.0 - fr) * (1.0 - fc))
        + get(r0, c0 + 1.0) * ((1.0 - fr) * fc)
        + get(r0 + 1.0, c0) * (fr * (1.0 - fc))
        + get(r0 + 1.0, c0 + 1.0) * (fr * fc)
}

/// Extract the `out.dim()` patch centred on (x, y): `out[i, j] = O_bilinear(y - rows/2 + i,
/// x - cols/2 + j)` (section 4 step 4; `rows/2` with integer division). Patch pixel
/// `(rows/2, cols/2)` is object (row y, col x). Corners outside the object contribute 0.
pub fn extract_patch_into(
    object: &ArrayView2<Complex32>,
    x: f64,
    y: f64,
    mut out: ArrayViewMut2<Complex32>,
) {
    let (h, w) = object.dim();
    let (pr, pc) = out.dim();
    let ry = y - (pr / 2) as f64;
    let rx = x - (pc / 2) as f64;
    let (y0, x0) = (ry.floor(), rx.floor());
    let (fy, fx) = ((ry - y0) as f32, (rx - x0) as f32);
    let (w00, w01, w10, w11) = (
        (1.0 - fy) * (1.0 - fx),
        (1.0 - fy) * fx,
        fy * (1.0 - fx),
        fy * fx,
    );
    let interior = y0 >= 0.0
        && x0 >= 0.0
        && y0 + (pr as f64) < h as f64
        && x0 + (pc as f64) < w as f64
        && object.is_standard_layout();
    if interior {
        let (y0, x0) = (y0 as usize, x0 as usize);
        let o = object.as_slice().unwrap_or(&[]);
        for (i, mut row) in out.axis_iter_mut(Axis(0)).enumerate() {
            let a = as_floats(&o[(y0 + i) * w + x0..(y0 + i) * w + x0 + pc + 1]);
            let b = as_floats(&o[(y0 + i + 1) * w + x0..(y0 + i + 1) * w + x0 + pc + 1]);
            // On interleaved (re, im) floats: out[k] = w00 a[k] + w01 a[k+2] + w10 b[k] + w11 b[k+2],
            // the same arithmetic as per complex value, in a form the compiler vectorises.
            let lerp = |k: usize| w00 * a[k] + w01 * a[k + 2] + w10 * b[k] + w11 * b[k + 2];
            match row.as_slice_mut() {
                Some(r) => {
                    for (j, d) in r.iter_mut().enumerate() {
                        *d = Complex32::new(lerp(2 * j), lerp(2 * j + 1));
                    }
                }
                None => {
                    for (j, d) in row.iter_mut().enumerate() {
                        *d = Complex32::new(lerp(2 * j), lerp(2 * j + 1));
                    }
                }
            }
        }
    } else {
        let get = |i: f64, j: f64| -> Complex32 {
            if i >= 0.0 && j >= 0.0 && (i as usize) < h && (j as usize) < w {
                object[[i as usize, j as usize]]
            } else {
                Complex32::new(0.0, 0.0)
            }
        };
        for ((i, j), d) in out.indexed_iter_mut() {
            let (r, c) = (y0 + i as f64, x0 + j as f64);
            *d = get(r, c) * w00
                + get(r, c + 1.0) * w01
                + get(r + 1.0, c) * w10
                + get(r + 1.0, c + 1.0) * w11;
        }
    }
}

/// Translate an image by `(dx, dy)` (columns, rows) with bilinear interpolation and zero fill:
/// `out[r, c] = bilinear(img, r - dy, c - dx)` (PtychoPINN's `translate`, reference section 4
/// step 4). Positive `dx` moves content to the right. Same shape as `img`.
pub fn translate(img: &ArrayView2<Complex32>, dx: f64, dy: f64) -> Array2<Complex32> {
    let (h, w) = img.dim();
    let mut out = Array2::zeros((h, w));
    // The same arithmetic as a patch of the image's size centred at (w/2 - dx, h/2 - dy).
    extract_patch_into(
        img,
        (w / 2) as f64 - dx,
        (h / 2) as f64 - dy,
        out.view_mut(),
    );
    out
}

/// View complex64 values as interleaved (re, im) float32 pairs.
fn as_floats(z: &[Complex32]) -> &[f32] {
    // SAFETY: num_complex::Complex<T> is #[repr(C)] { re: T, im: T }, so a slice of n Complex32
    // is 2n contiguous, aligned f32 values; the lifetime is tied to `z`.
    unsafe { std::slice::from_raw_parts(z.as_ptr() as *const f32, z.len() * 2) }
}

/// [`extract_patch_into`] returning a new `n x n` patch.
pub fn extract_patch(
    object: &ArrayView2<Complex32>,
    x: f64,
    y: f64,
    n: usize,
) -> Array2<Complex32> {
    let mut out = Array2::zeros((n, n));
    extract_patch_into(object, x, y, out.view_mut());
    out
}

/// Noise-free far-field amplitude `|fftshift(F(patch * probe))| / N` (float32 FFT), the operator
/// of section 4 step 5 without the scale `s`.
pub fn diffract(patch: &ArrayView2<Complex32>, probe: &ArrayView2<Complex32>) -> Array2<f32> {
    let (r, c) = probe.dim();
    let plan = Fft2::<f32>::new(r, c);
    let mut psi = ndarray::Zip::from(patch)
        .and(probe)
        .map_collect(|a, b| a * b);
    plan.forward(&mut psi);
    let norm = 1.0 / ((r * c) as f64).sqrt();
    Array2::from_shape_fn((r, c), |(i, j)| {
        let z = psi[[(i + r - r / 2) % r, (j + c - c / 2) % c]];
        ((z.norm_sqr() as f64).sqrt() * norm) as f32
    })
}

/// ln Gamma(x) for x >= 1 as numpy's `random_loggam` (Stirling series).
pub fn loggam(x: f64) -> f64 {
    const A: [f64; 10] = [
        8.333333333333333e-02,
        -2.777777777777778e-03,
        7.936507936507937e-04,
        -5.952380952380952e-04,
        8.417508417508418e-04,
        -1.917526917526918e-03,
        6.41025641025641e-03,
        -2.955065359477124e-02,
        1.796443723688307e-01,
        -1.39243221690590e+00,
    ];
    if x == 1.0 || x == 2.0 {
        return 0.0;
    }
    let n = if x < 7.0 { (7.0 - x) as i64 } else { 0 };
    let mut x0 = x + n as f64;
    let x2 = (1.0 / x0) * (1.0 / x0);
    let mut gl0 = A[9];
    for k in (0..9).rev() {
        gl0 *= x2;
        gl0 += A[k];
    }
    let mut gl = gl0 / x0 + 0.5 * 1.8378770664093453 + (x0 - 0.5) * x0.ln() - x0;
    if x < 7.0 {
        for _ in 1..=n {
            gl -= (x0 - 1.0).ln();
            x0 -= 1.0;
        }
    }
    gl
}

/// One Poisson(lambda) draw: inversion by sequential search (one uniform) for lambda < 10,
/// Hörmann's PTRS transformed rejection (numpy's algorithm) otherwise. Exact up to float64
/// rounding for every lambda (not a normal approximation); 0 for lambda <= 0 or NaN.
pub fn poisson<R: Rng + ?Sized>(rng: &mut R, lam: f64) -> f64 {
    if lam.is_nan() || lam <= 0.0 {
        return 0.0;
    }
    if lam < 10.0 {
        // Inversion by sequential search: one uniform, the CDF summed term by term.
        let mut p = (-lam).exp();
        let mut f = p;
        let u = rng.random::<f64>();
        let mut x = 0.0;
        while u > f && p > 0.0 {
            x += 1.0;
            p *= lam / x;
            f += p;
        }
        return x;
    }
    let slam = lam.sqrt();
    let b = 0.931 + 2.53 * slam;
    let a = -0.059 + 0.02483 * b;
    let vr = 0.9277 - 3.6224 / (b - 2.0);
    // Per-lambda constants of the slow path, computed on first use.
    let mut slow: Option<(f64, f64)> = None;
    loop {
        let u = rng.random::<f64>() - 0.5;
        let v = rng.random::<f64>();
        let us = 0.5 - u.abs();
        let k = floor((2.0 * a / us + b) * u + lam + 0.43);
        if us >= 0.07 && v <= vr {
            return k;
        }
        if k < 0.0 || (us < 0.013 && v > us) {
            continue;
        }
        let (loglam, invalpha) =
            *slow.get_or_insert_with(|| (lam.ln(), 1.1239 + 1.1328 / (b - 3.4)));
        // numpy: log(V) + log(invalpha) - log(a/us^2 + b) <= -lam + k log(lam) - loggam(k+1),
        // with the three logarithms on the left folded into one.
        if (v * invalpha / (a / (us * us) + b)).ln() <= -lam + k * loglam - loggam(k + 1.0) {
            return k;
        }
    }
}

/// `x.floor()` without a libm call (the default x86-64 target has no rounding instruction);
/// exact for |x| < 2^63, and passes infinities and NaN to `f64::floor`.
fn floor(x: f64) -> f64 {
    if x.abs() < 9.0e18 {
        let t = x as i64 as f64;
        if t > x {
            t - 1.0
        } else {
            t
        }
    } else {
        x.floor()
    }
}

/// The RNG of pattern `index`'s noise: `ChaCha8Rng::seed_from_u64(seed)`, stream `1 + index`.
pub fn pattern_rng(seed: u64, index: usize) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(1 + index as u64);
    r
}

fn finite(a: &ArrayView2<Complex32>) -> bool {
    a.iter().all(|z| z.re.is_finite() && z.im.is_finite())
}

/// Simulate a dataset from a complex object and probe (module documentation for conventions).
/// Errors (`Error::Invalid`, naming the parameter) when the probe is not square or not smaller
/// than the object, values are not finite, `gridsize == 0`, `n_images == 0`, `nphotons` is not a
/// positive number, or there are fewer than `gridsize^2` patterns to group.
pub fn simulate(
    object: &Array2<Complex32>,
    probe: &Array2<Complex32>,
    p: &SimParams,
) -> Result<Dataset> {
    let (h, w) = object.dim();
    let (n, pc) = probe.dim();
    if n != pc || n == 0 {
        return Err(Error::Invalid(format!(
            "simulate: the probe must be square, got {n} x {pc}"
        )));
    }
    if n >= h || n >= w {
        return Err(Error::Invalid(format!(
            "simulate: the probe ({n} x {n}) must be smaller than the object ({h} x {w})"
        )));
    }
    if p.gridsize == 0 {
        return Err(Error::Invalid(
            "simulate: gridsize must be at least 1".into(),
        ));
    }
    if p.n_images == 0 {
        return Err(Error::Invalid(
            "simulate: n_images must be at least 1".into(),
        ));
    }
    if !(p.nphotons.is_finite() && p.nphotons > 0.0) {
        return Err(Error::Invalid(format!(
            "simulate: nphotons must be a positive number, got {}",
            p.nphotons
        )));
    }
    if !finite(&object.view()) {
        return Err(Error::Invalid(
            "simulate: the object holds non-finite values".into(),
        ));
    }
    if !finite(&probe.view()) {
        return Err(Error::Invalid(
            "simulate: the probe holds non-finite values".into(),
        ));
    }
    let seed_i64 = i64::try_from(p.seed)
        .map_err(|_| Error::Invalid(format!("simulate: seed {} does not fit in int64", p.seed)))?;
    let buffer = p.buffer.unwrap_or_else(|| default_buffer(n, h, w));
    if !(buffer.is_finite() && buffer >= 0.0 && 2.0 * buffer < h.min(w) as f64) {
        return Err(Error::Invalid(format!(
            "simulate: buffer {buffer} leaves no room for positions in a {h} x {w} object"
        )));
    }
    let count = p.n_images;
    let (xs, ys) = scan_positions(count, h, w, buffer, p.seed);
    let group_index = group_neighbours(&xs, &ys, p.gridsize)?;

    // Pass 1: patches and their illuminated energies.
    let obj = object.as_standard_layout();
    let obj = obj.view();
    let probe_i2: Vec<f64> = probe.iter().map(|z| z.norm_sqr() as f64).collect();
    let mut y = Array3::<Complex32>::zeros((count, n, n));
    let energies: Vec<f64> = y
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .map(|(k, mut patch)| {
            extract_patch_into(&obj, xs[k], ys[k], patch.view_mut());
            patch
                .iter()
                .zip(&probe_i2)
                .map(|(z, p2)| z.norm_sqr() as f64 * p2)
                .sum::<f64>()
        })
        .collect();
    let mean_e = energies.iter().sum::<f64>() / count as f64;
    let s = (p.nphotons / mean_e).sqrt();
    if !(s.is_finite() && s > 0.0) {
        return Err(Error::Invalid(format!(
            "simulate: the illuminated energy is {mean_e}; the object and probe do not overlap"
        )));
    }

    // Pass 2: far field, noise, amplitude in object units.
    let plan = Fft2::<f32>::new(n, n);
    let probe_s = probe.as_standard_layout();
    let probe_flat = probe_s.as_slice().unwrap_or(&[]);
    let lam_scale = s * s / (n * n) as f64;
    let inv_s2 = 1.0 / (s * s);
    let mut diffraction = Array3::<f32>::zeros((count, n, n));
    diffraction
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(y.axis_iter(Axis(0)).into_par_iter())
        .enumerate()
        .for_each_init(
            || (vec![Complex32::new(0.0, 0.0); n * n], Vec::new()),
            |(buf, scratch), (k, (mut out, patch))| {
                for ((b, z), pz) in buf.iter_mut().zip(patch.iter()).zip(probe_flat) {
                    *b = z * pz;
                }
                if let Ok(view) = ArrayViewMut2::from_shape((n, n), &mut buf[..]) {
                    plan.forward_with_scratch(view, scratch);
                }
                let mut rng = pattern_rng(p.seed, k);
                // fftshift: output (i, j) takes buf[(i + shift) % n, (j + shift) % n].
                let shift = n - n / 2;
                for (i, mut orow) in out.axis_iter_mut(Axis(0)).enumerate() {
                    let r = (i + shift) % n;
                    let src = &buf[r * n..(r + 1) * n];
                    let src = src[shift % n..].iter().chain(&src[..shift % n]);
                    for (o, z) in orow.iter_mut().zip(src) {
                        let lam = z.norm_sqr() as f64 * lam_scale;
                        let counts = if p.noise { poisson(&mut rng, lam) } else { lam };
                        // sqrt(counts) / s, as sqrt(counts / s^2) in float32 (within 1 ulp).
                        *o = ((counts * inv_s2) as f32).sqrt();
                    }
                }
            },
        );

    let xc = Array1::from(xs);
    let yc = Array1::from(ys);
    Ok(Dataset {
        diffraction,
        y,
        object: object.clone(),
        probe: probe.clone(),
        xcoords_start: xc.clone(),
        ycoords_start: yc.clone(),
        xcoords: xc,
        ycoords: yc,
        scan_index: Array1::zeros(count),
        group_index,
        gridsize: p.gridsize as i64,
        seed: seed_i64,
        nphotons: p.nphotons,
        intensity_scale: s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::science::fft::naive_dft2;
    use crate::science::{object, probe};
    use num_complex::Complex64;

    fn small_object(h: usize, w: usize) -> Array2<Complex32> {
        Array2::from_shape_fn((h, w), |(i, j)| {
            let a = 1.0 + 0.5 * ((i as f32 * 0.37).sin() * (j as f32 * 0.23).cos());
            Complex32::from_polar(a, 0.1 * a + 0.01 * j as f32)
        })
    }

    #[test]
    fn bilinear_extraction_matches_hand_values_with_zero_fill() {
        // 3x3 object with values 1..9 (real), 2j..18j imaginary.
        let o = Array2::from_shape_fn((3, 3), |(i, j)| {
            let v = (i * 3 + j + 1) as f32;
            Complex32::new(v, 2.0 * v)
        });
        let ov = o.view();
        // 2x2 patch centred on (x, y) = (1.25, 1.5): rows y-1+i = 0.5, 1.5; cols x-1+j = 0.25, 1.25.
        let p = extract_patch(&ov, 1.25, 1.5, 2);
        // O(0.5, 0.25) = 0.5*(0.75*1 + 0.25*2) + 0.5*(0.75*4 + 0.25*5) = 0.625 + 2.125 = 2.75
        assert!((p[[0, 0]].re - 2.75).abs() < 1e-6);
        assert!((p[[0, 0]].im - 5.5).abs() < 1e-6);
        // O(1.5, 1.25) = 0.5*(0.75*5 + 0.25*6) + 0.5*(0.75*8 + 0.25*9) = 2.625 + 4.125 = 6.75
        assert!((p[[1, 1]].re - 6.75).abs() < 1e-6);
        // Edge: O(2.5, 2.25): only (2,2)=9 is inside, weight 0.5*0.75 -> 3.375.
        assert!((bilinear(&ov, 2.5, 2.25).re - 3.375).abs() < 1e-6);
        // Negative side: O(-0.5, 0) = 0.5 * O(0,0) = 0.5.
        assert!((bilinear(&ov, -0.5, 0.0).re - 0.5).abs() < 1e-6);
        // Fully outside: 0.
        assert_eq!(bilinear(&ov, -1.0, 5.0), Complex32::new(0.0, 0.0));
        // Patch near the corner uses zero fill: centre (0.5, 0.5) size 2 -> rows -0.5, 0.5.
        let q = extract_patch(&ov, 0.5, 0.5, 2);
        assert!((q[[0, 0]].re - 0.25).abs() < 1e-6); // 0.25 * O(0,0)
                                                     // Integer position: patch pixel (N/2, N/2) is object (y, x) exactly.
        let big = small_object(40, 40);
        let pz = extract_patch(&big.view(), 20.0, 17.0, 8);
        assert_eq!(pz[[4, 4]], big[[17, 20]]);
        // Fast interior path agrees with the general bilinear sampler.
        let pf = extract_patch(&big.view(), 20.3, 17.8, 8);
        for ((i, j), z) in pf.indexed_iter() {
            let want = bilinear(&big.view(), 17.8 - 4.0 + i as f64, 20.3 - 4.0 + j as f64);
            assert!((z - want).norm() < 1e-5);
        }
    }

    #[test]
    fn patch_is_the_top_left_of_the_translated_padded_object() {
        // Section 4 step 4 literally: pad by N/2, translate by (-x, -y), take the top-left N x N.
        let o = small_object(20, 24);
        let n = 8;
        let mut padded = Array2::<Complex32>::zeros((20 + n, 24 + n));
        padded
            .slice_mut(ndarray::s![n / 2..n / 2 + 20, n / 2..n / 2 + 24])
            .assign(&o);
        for &(x, y) in &[(4.0, 4.0), (10.37, 7.81), (19.5, 15.25), (0.2, 0.9)] {
            let t = translate(&padded.view(), -x, -y);
            let want = t.slice(ndarray::s![..n, ..n]);
            let got = extract_patch(&o.view(), x, y, n);
            for (g, w) in got.iter().zip(want.iter()) {
                assert!((g - w).norm() < 1e-5, "({x}, {y}): {g} vs {w}");
            }
        }
        // Integer translation shifts content, filling with zeros.
        let t = translate(&o.view(), 2.0, 1.0);
        assert_eq!(t[[1 + 3, 2 + 5]], o[[3, 5]]);
        assert_eq!(t[[0, 0]], Complex32::new(0.0, 0.0));
    }

    #[test]
    fn noise_free_simulation_equals_the_naive_dft() {
        let o = small_object(24, 24);
        let pr = probe::aberrated_probe(&probe::AberrationParams {
            n: 8,
            aperture: 2.5,
            ..Default::default()
        })
        .unwrap();
        let mut prm = SimParams::new(5, 1e6, 11, 1);
        prm.noise = false;
        let d = simulate(&o, &pr, &prm).unwrap();
        let s = d.intensity_scale;
        // s from its definition.
        let mean: f64 = (0..5)
            .map(|k| {
                d.y.index_axis(Axis(0), k)
                    .iter()
                    .zip(pr.iter())
                    .map(|(a, b)| (a.norm() as f64 * b.norm() as f64).powi(2))
                    .sum::<f64>()
            })
            .sum::<f64>()
            / 5.0;
        assert!((s - (1e6 / mean).sqrt()).abs() < 1e-9 * s);
        for k in 0..5 {
            let patch = d.y.index_axis(Axis(0), k);
            // Y is the bilinear patch at the recorded position.
            let want_patch = extract_patch(&o.view(), d.xcoords[k], d.ycoords[k], 8);
            assert_eq!(patch, want_patch.view());
            let psi = Array2::from_shape_fn((8, 8), |(i, j)| {
                let z = patch[[i, j]] * pr[[i, j]];
                Complex64::new(z.re as f64, z.im as f64)
            });
            let f = naive_dft2(&psi, false);
            let want = crate::science::fft::fftshift(&f).mapv(|z| z.norm() / 8.0);
            let got = d.diffraction.index_axis(Axis(0), k);
            let peak = want.iter().cloned().fold(0.0, f64::max);
            for (g, w) in got.iter().zip(want.iter()) {
                assert!((*g as f64 - w).abs() < 2e-6 * peak, "{g} vs {w}");
            }
            // Parseval: sum a^2 = sum |patch P|^2.
            let ea: f64 = got.iter().map(|v| (*v as f64).powi(2)).sum();
            let ep: f64 = psi.iter().map(|z| z.norm_sqr()).sum();
            assert!((ea - ep).abs() < 1e-4 * ep);
        }
    }

    #[test]
    fn poisson_mean_and_variance_match() {
        let mut rng = ChaCha8Rng::seed_from_u64(2024);
        let n = 100_000;
        for &lam in &[0.3, 4.0, 9.99, 10.0, 37.5, 1000.0, 2.5e6] {
            let xs: Vec<f64> = (0..n).map(|_| poisson(&mut rng, lam)).collect();
            assert!(xs.iter().all(|x| *x >= 0.0 && x.fract() == 0.0));
            let mean = xs.iter().sum::<f64>() / n as f64;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            // Mean within 5 standard errors; variance within 5 standard errors of the sample
            // variance (sd about lam * sqrt(2/n) for large lam, plus the small-lam excess).
            let se_mean = (lam / n as f64).sqrt();
            assert!((mean - lam).abs() < 5.0 * se_mean, "lam {lam}: mean {mean}");
            let se_var = ((2.0 * lam * lam + lam) / n as f64).sqrt();
            assert!((var - lam).abs() < 5.0 * se_var, "lam {lam}: var {var}");
        }
        // Small lambda: the frequency of 0 matches exp(-lam).
        let lam = 1.5;
        let zeros = (0..n).filter(|_| poisson(&mut rng, lam) == 0.0).count() as f64 / n as f64;
        assert!((zeros - (-lam).exp()).abs() < 0.005);
        assert_eq!(poisson(&mut rng, 0.0), 0.0);
        for x in [
            -2.5,
            -2.0,
            -0.1,
            0.0,
            0.3,
            1.0,
            7.9999,
            1e17,
            -1e300,
            f64::INFINITY,
        ] {
            assert_eq!(floor(x), x.floor(), "{x}");
        }
        assert!((loggam(10.0) - 362880f64.ln()).abs() < 1e-10);
        assert!((loggam(3.5) - 1.2009736023470743).abs() < 1e-10);
    }

    #[test]
    fn same_seed_same_bytes_for_any_thread_count_and_seeds_differ() {
        let o = object::lines_object(64, 40, 0.1, 5).unwrap();
        let pr = probe::default_probe(16);
        let prm = SimParams::new(40, 1e7, 9, 2);
        let run = |k: usize, prm: &SimParams| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(k)
                .build()
                .unwrap()
                .install(|| simulate(&o, &pr, prm).unwrap())
        };
        let a = run(1, &prm);
        let b = run(2, &prm);
        let c = run(3, &prm);
        assert_eq!(a, b);
        assert_eq!(a, c);
        let dir = tempfile::tempdir().unwrap();
        a.save(&dir.path().join("a.npz")).unwrap();
        b.save(&dir.path().join("b.npz")).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("a.npz")).unwrap(),
            std::fs::read(dir.path().join("b.npz")).unwrap()
        );
        let d = run(2, &SimParams::new(40, 1e7, 10, 2));
        assert_ne!(a.xcoords, d.xcoords);
        assert_ne!(a.diffraction, d.diffraction);
        // Same seed, gridsize 1: identical patterns, only group_index differs.
        let g1 = run(2, &SimParams::new(40, 1e7, 9, 1));
        assert_eq!(g1.diffraction, a.diffraction);
        assert_eq!(g1.y, a.y);
        assert_eq!(g1.xcoords, a.xcoords);
        assert_eq!(g1.group_index.dim(), (40, 1));
        assert_eq!(a.group_index.dim(), (40, 4));
        // Noise differs between patterns (distinct streams) even at the same lambda.
        assert_ne!(
            pattern_rng(9, 0).random::<u64>(),
            pattern_rng(9, 1).random::<u64>()
        );
    }

    #[test]
    fn reference_invariants_of_section_4() {
        let o = object::lines_object(224, 400, 0.1, 1).unwrap();
        let pr = probe::default_probe(64);
        let d = simulate(&o, &pr, &SimParams::new(200, 1e9, 42, 1)).unwrap();
        assert_eq!(default_buffer(64, 224, 224), 32.0);
        assert!(d
            .xcoords
            .iter()
            .chain(d.ycoords.iter())
            .all(|v| (32.0..192.0).contains(v)));
        assert_eq!(d.xcoords, d.xcoords_start);
        assert!(d.scan_index.iter().all(|v| *v == 0));
        // Diffraction in object units: mean sum d^2 equals mean sum |Y P|^2 within noise.
        let n = d.len();
        let mean_d: f64 = d
            .diffraction
            .outer_iter()
            .map(|a| a.iter().map(|v| (*v as f64).powi(2)).sum::<f64>())
            .sum::<f64>()
            / n as f64;
        let mean_y: f64 =
            d.y.outer_iter()
                .map(|a| {
                    a.iter()
                        .zip(pr.iter())
                        .map(|(y, p)| (y.norm() as f64 * p.norm() as f64).powi(2))
                        .sum::<f64>()
                })
                .sum::<f64>()
                / n as f64;
        // Poisson: total counts per pattern ~ 1e9 +- sqrt(1e9); relative error ~ 3e-5 per pattern.
        assert!((mean_d / mean_y - 1.0).abs() < 1e-4, "{mean_d} vs {mean_y}");
        // s^2 * mean energy = nphotons.
        assert!((d.intensity_scale.powi(2) * mean_y / 1e9 - 1.0).abs() < 1e-6);
        // The amplitude is sqrt(integer)/s: every value times s squares to an integer.
        let s = d.intensity_scale;
        for v in d.diffraction.iter().step_by(4099).take(200) {
            let c = (*v as f64 * s).powi(2);
            assert!((c - c.round()).abs() < 1e-3 * c.max(1.0), "{c}");
        }
    }

    #[test]
    fn invalid_inputs_are_refused_with_the_parameter_named() {
        let o = small_object(16, 16);
        let pr = probe::default_probe(8);
        let e = simulate(&o, &probe::default_probe(16), &SimParams::new(4, 1e9, 1, 1)).unwrap_err();
        assert!(e.to_string().contains("smaller than the object"));
        let e = simulate(&o, &pr, &SimParams::new(4, 1e9, 1, 0)).unwrap_err();
        assert!(e.to_string().contains("gridsize"));
        let e = simulate(&o, &pr, &SimParams::new(0, 1e9, 1, 1)).unwrap_err();
        assert!(e.to_string().contains("n_images"));
        let e = simulate(&o, &pr, &SimParams::new(4, -1.0, 1, 1)).unwrap_err();
        assert!(e.to_string().contains("nphotons"));
        let e = simulate(&o, &pr, &SimParams::new(3, 1e9, 1, 2)).unwrap_err();
        assert!(e.to_string().contains("at least 4 patterns"));
        let mut bad = o.clone();
        bad[[0, 0]] = Complex32::new(f32::NAN, 0.0);
        let e = simulate(&bad, &pr, &SimParams::new(4, 1e9, 1, 1)).unwrap_err();
        assert!(e.to_string().contains("object holds non-finite"));
    }
}
