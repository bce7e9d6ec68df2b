//! Simulation of a ptychography dataset (reference section 4): random scan positions, sub-pixel
//! bilinear patch extraction, exit wave, orthonormal centred far field, the `nphotons` intensity
//! scale, seeded Poisson noise, and neighbour grouping (section 6, see [`crate::grouping`]).
//!
//! Conventions:
//! * Positions: `buffer = min(N/2, min(H, W)/2 - 1)` (section 4.2, `N/2` with integer division);
//!   all `n` x first, then all `n` y, each `buffer + (size - 2 buffer) u`, `u` uniform in [0, 1)
//!   (so x is in `[buffer, W - buffer)`), from `ChaCha8Rng::seed_from_u64(seed)` stream 0.
//! * Patch: `patch[i, j] = O_bilinear(y - N/2 + i, x - N/2 + j)`; a bilinear corner outside the
//!   object contributes 0; real and imaginary parts are interpolated separately (float32).
//! * Scale: `s = sqrt(nphotons / mean_patterns(sum_pixels |patch|^2 |P|^2))`, per-pattern sums in
//!   float64 over 8 partial sums in a fixed order ([`illuminated_energy`]), then summed over
//!   patterns in index order (thread-independent).
//! * Far field: `lambda = s^2 |fftshift(F(patch P))|^2 / N^2` (orthonormal DFT, numpy sign),
//!   FFT in float32 on `patch P` (s applied to the float32 intensity), `lambda` in float64.
//! * Noise: `counts ~ Poisson(lambda)`, exact (inversion below 20, numpy's PTRS above), drawn for a
//!   whole pattern by [`poisson_fill`] (its documentation fixes the order in which the uniforms
//!   are used; the same bits on every instruction set and platform) from `ChaCha8Rng::seed_from_u64(seed)` with stream `1 + pattern index`. Saved
//!   amplitude `diffraction = sqrt(counts) / s`, evaluated as `sqrt(f32(counts / s^2))` (float32,
//!   within one ulp of the exact value). With noise off, `diffraction = sqrt(lambda) / s`.
//! * Every position is simulated independently for every gridsize; gridsize only changes
//!   `group_index`. Results are bit-identical for any number of rayon threads.

use crate::error::{Error, Result};
use crate::io::dataset::Dataset;
use crate::numerics::fft::Fft2;
use crate::numerics::poisson::{poisson_fill, PoissonScratch};
use crate::physics::grouping::group_neighbours;
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

/// The RNG of pattern `index`'s noise: `ChaCha8Rng::seed_from_u64(seed)`, stream `1 + index`.
pub fn pattern_rng(seed: u64, index: usize) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(1 + index as u64);
    r
}

/// A buffer of `n * n` values that ndarray refuses as `n x n` (cannot happen; no panic either).
fn shape_err(e: ndarray::ShapeError) -> Error {
    Error::Invalid(format!("simulate: internal buffer of the wrong shape: {e}"))
}

fn finite(a: &ArrayView2<Complex32>) -> bool {
    a.iter().all(|z| z.re.is_finite() && z.im.is_finite())
}

/// `len` complex zeros from the allocator's zeroed memory (`vec![0f32; 2 len]`: for large sizes
/// fresh pages that no thread has touched yet), so that the rayon workers that fill the buffer
/// fault its pages in, in parallel, instead of one thread writing zeros first.
fn zeroed_complex(len: usize) -> Vec<Complex32> {
    let v = vec![0f32; 2 * len];
    if v.capacity() != 2 * len {
        return vec![Complex32::new(0.0, 0.0); len];
    }
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: Complex32 is #[repr(C)] { re: f32, im: f32 }: size 8 and alignment 4, f32's. The
    // allocation holds exactly 2 len f32, i.e. len Complex32 (same size in bytes and alignment,
    // so it is freed with the layout it was allocated with), all zero bits, which is 0 + 0i.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr() as *mut Complex32, len, len) }
}

/// Ask Linux for transparent huge pages on the 2 MiB-aligned part of a large, not yet touched
/// buffer: one page fault per 2 MiB instead of per 4 KiB. Only a hint (errors are ignored; the
/// contents are unaffected); a no-op elsewhere.
fn advise_huge_pages<T>(buf: &mut [T]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = buf.as_mut_ptr() as usize;
        let end = start + std::mem::size_of_val(buf);
        let (a, b) = (start.div_ceil(HUGE) * HUGE, end / HUGE * HUGE);
        if b > a {
            // SAFETY: [a, b) lies inside `buf`'s allocation, which we own; MADV_HUGEPAGE changes
            // how pages are backed, never their contents.
            unsafe {
                libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = buf;
}

/// Illuminated energy `sum |patch|^2 |P|^2` in float64, accumulated in 8 partial sums (pixel index
/// mod 8, row-major) added as `((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))`: a fixed order,
/// so the result does not depend on threads, and one the compiler can keep in vector registers.
fn illuminated_energy(patch: &[Complex32], probe_i2: &[f64]) -> f64 {
    let mut acc = [0f64; 8];
    let (zc, pc) = (patch.chunks_exact(8), probe_i2.chunks_exact(8));
    let (zr, pr) = (zc.remainder(), pc.remainder());
    for (z, p2) in zc.zip(pc) {
        for l in 0..8 {
            acc[l] += z[l].norm_sqr() as f64 * p2[l];
        }
    }
    for (l, (z, p2)) in zr.iter().zip(pr).enumerate() {
        acc[l] += z.norm_sqr() as f64 * p2;
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
}

/// `out = |fftshift(X)|^2` (float32) for an `n x n` spectrum `X` stored transposed
/// (`spectrum[c * n + r] = X[r, c]`, as [`Fft2::forward_transposed`] leaves it): output `(i, j)`
/// takes `X[(i + n - n/2) % n, (j + n - n/2) % n]`.
fn shifted_intensity(spectrum: &[Complex32], out: &mut [f32], n: usize) {
    let shift = (n - n / 2) % n;
    for (c, col) in spectrum.chunks_exact(n).enumerate() {
        let j = (c + n - shift) % n;
        // Rows r < shift go to i = r + n - shift, rows r >= shift to i = r - shift.
        let (low, high) = col.split_at(shift);
        for (i, z) in high.iter().enumerate() {
            out[i * n + j] = z.norm_sqr();
        }
        for (r, z) in low.iter().enumerate() {
            out[(r + n - shift) * n + j] = z.norm_sqr();
        }
    }
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

    // Pass 1, per pattern: the patch (into Y), its illuminated energy, and the shifted far-field
    // intensity |fftshift(F(patch P))|^2 in float32, written into `diffraction` and replaced by
    // the amplitude in pass 2 (the FFT is linear, so s is applied to the intensity there).
    let obj = object.as_standard_layout();
    let obj = obj.view();
    let probe_s = probe.as_standard_layout();
    let probe_flat: Vec<Complex32> = probe_s.iter().copied().collect();
    let probe_i2: Vec<f64> = probe_flat.iter().map(|z| z.norm_sqr() as f64).collect();
    let plan = Fft2::<f32>::new(n, n);
    let nn = n * n;
    let zero = Complex32::new(0.0, 0.0);
    let mut y_flat = zeroed_complex(count * nn);
    let mut d_flat = vec![0f32; count * nn];
    advise_huge_pages(&mut y_flat);
    advise_huge_pages(&mut d_flat);
    let energies: Vec<f64> = y_flat
        .par_chunks_mut(nn)
        .zip(d_flat.par_chunks_mut(nn))
        .enumerate()
        .map_init(
            || (vec![zero; nn], vec![zero; nn], Vec::new()),
            |(buf, spectrum, scratch), (k, (patch, out))| -> Result<f64> {
                extract_patch_into(
                    &obj,
                    xs[k],
                    ys[k],
                    ArrayViewMut2::from_shape((n, n), &mut *patch).map_err(shape_err)?,
                );
                let e = illuminated_energy(patch, &probe_i2);
                for ((b, z), pz) in buf.iter_mut().zip(patch.iter()).zip(&probe_flat) {
                    *b = z * pz;
                }
                plan.forward_transposed(buf, spectrum, scratch)?;
                shifted_intensity(spectrum, out, n);
                Ok(e)
            },
        )
        .collect::<Result<Vec<f64>>>()?;
    let mean_e = energies.iter().sum::<f64>() / count as f64;
    let s = (p.nphotons / mean_e).sqrt();
    if !(s.is_finite() && s > 0.0) {
        return Err(Error::Invalid(format!(
            "simulate: the illuminated energy is {mean_e}; the object and probe do not overlap"
        )));
    }

    // Pass 2: lambda = s^2 |.|^2 / N^2, noise, amplitude in object units.
    let lam_scale = s * s / nn as f64;
    let inv_s2 = 1.0 / (s * s);
    if p.noise {
        d_flat.par_chunks_mut(nn).enumerate().for_each_init(
            || (vec![0f64; nn], PoissonScratch::default()),
            |(lam, scratch), (k, out)| {
                for (l, o) in lam.iter_mut().zip(out.iter()) {
                    *l = *o as f64 * lam_scale;
                }
                poisson_fill(&mut pattern_rng(p.seed, k), lam, scratch);
                // sqrt(counts) / s, as sqrt(counts / s^2) in float32 (within 1 ulp).
                for (o, c) in out.iter_mut().zip(lam.iter()) {
                    *o = ((c * inv_s2) as f32).sqrt();
                }
            },
        );
    } else {
        d_flat.par_chunks_mut(nn).for_each(|out| {
            for o in out.iter_mut() {
                *o = ((*o as f64 * lam_scale * inv_s2) as f32).sqrt();
            }
        });
    }
    let diffraction = Array3::from_shape_vec((count, n, n), d_flat).map_err(shape_err)?;
    let y = Array3::from_shape_vec((count, n, n), y_flat).map_err(shape_err)?;

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
    use crate::numerics::fft::naive_dft2;
    use crate::physics::{object, probe};
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
            let want = crate::numerics::fft::fftshift(&f).mapv(|z| z.norm() / 8.0);
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
