//! The differentiable physics of the PINN (reference section 7.3 steps 4-10): object from
//! amplitude and phase, reassembly of the C patches of a group onto one canvas with their
//! offsets, coverage normalisation, re-extraction, illumination by the normalised probe
//! (section 1) and the centred far field `|fftshift(F(.))| / N`.
//!
//! Conventions:
//! * The decoder emits only the central `N/2 x N/2` of each patch (section 7.6, `probe_big`
//!   False); the rest of the `N x N` patch is zero.
//! * Canvas side `M = N + (gridsize - 1) * 4 + 10` (the reference's offset 4 and jitter 10), the
//!   patch sitting at `(M - N) / 2` from the canvas edge before translation.
//! * The canvas lies on the object's pixel grid, its centre on the group's anchor `a` (the
//!   centroid rounded to whole pixels; at gridsize 1 the scan position itself). Channel `c`'s
//!   patch is the object on that grid around `round(p_c)`: it is placed into the canvas by the
//!   whole-pixel offset `round(p_c - a)` (exactly, no interpolation) and its pattern is formed
//!   from the canvas by the simulator's own single bilinear extraction at `p_c - a` (zero fill,
//!   `out(r) = canvas_bilinear(r + d)`). So the true object pushed through this physics gives
//!   the simulator's patterns exactly (tested). PtychoPINN instead translates each patch by the
//!   fractional `p_c - g` into the canvas and by `g - p_c` out of it: two bilinear
//!   interpolations, whose product is not the identity; the true object then misses the
//!   simulator's patterns by 20 times the Poisson noise floor (mean squared amplitude residual
//!   5.4 against 0.25 at gridsize 1) and training converged to that mismatched model's optimum,
//!   a blur. Offsets are constants, so each placement and extraction is a fixed (per-group)
//!   matrix applied on both sides of the image with candle's batched matmul; the autodiff flows
//!   through the image only.
//! * Coverage: the canvas is divided by `norm + 0.001`, `norm` the same reassembly of a mask that
//!   is 1 on each channel's central `N/2 x N/2` (section 7.3.5).
//! * Far field: `Fs = S F / sqrt(N)` with `S` the fftshift permutation folded into the rows of the
//!   DFT matrix, so `Fs psi Fs^T = fftshift(F psi) / N`. Real and imaginary parts travel side by
//!   side as `(.., N, 2N)` and each axis is one real matmul with a `2N x 2N` block matrix. The
//!   result comes out **transposed per pattern** (`[k_col, k_row]`), which saves a copy; the loss
//!   compares it with the equally transposed measurement.

use super::network::ce;
use candle_core::{DType, Device, Tensor};
use ndarray::{Array2, Array3};
use num_complex::Complex32;
use studymake_science::error::{Error, Result};

/// Canvas side for a patch size and gridsize (reference: offset 4, max_position_jitter 10).
pub fn canvas_size(n: usize, gridsize: usize) -> usize {
    n + (gridsize.max(1) - 1) * 4 + 10
}

/// The probe as the model sees it (section 1): `P / (4 mean_{N x N}(|P| M16))`, `M16` the disk of
/// radius `N/4` about `((N-1)/2, (N-1)/2)`. Errors if that mean is zero.
pub fn normalised_probe(probe: &Array2<Complex32>) -> Result<Array2<(f64, f64)>> {
    let (r, c) = probe.dim();
    let cy = (r as f64 - 1.0) / 2.0;
    let cx = (c as f64 - 1.0) / 2.0;
    let rad = (r / 4) as f64;
    let mut acc = 0.0f64;
    for ((i, j), p) in probe.indexed_iter() {
        let d = ((i as f64 - cy).powi(2) + (j as f64 - cx).powi(2)).sqrt();
        if d < rad {
            acc += (p.re as f64).hypot(p.im as f64);
        }
    }
    let mean = acc / (r * c) as f64;
    if !(mean > 0.0 && mean.is_finite()) {
        return Err(Error::Invalid(
            "the probe has no amplitude inside the central disk of radius N/4; cannot normalise it"
                .into(),
        ));
    }
    let k = 1.0 / (4.0 * mean);
    Ok(probe.mapv(|p| (p.re as f64 * k, p.im as f64 * k)))
}

/// Bilinear resampling matrix `T (out_len x src_len)`: `out[r] = src_bilinear(pos(r))`, the two
/// interpolation corners contributing 0 outside `[0, src_len)`.
pub fn bilinear_matrix(out_len: usize, src_len: usize, pos: impl Fn(usize) -> f64) -> Array2<f64> {
    let mut t = Array2::zeros((out_len, src_len));
    for r in 0..out_len {
        let p = pos(r);
        let i0 = p.floor();
        let f = p - i0;
        for (k, w) in [(i0, 1.0 - f), (i0 + 1.0, f)] {
            if w != 0.0 && k >= 0.0 && (k as usize) < src_len {
                t[[r, k as usize]] += w;
            }
        }
    }
    t
}

/// The fixed geometry of one model: patch size, channels, canvas.
#[derive(Clone, Debug)]
pub struct Geometry {
    pub n: usize,
    pub gridsize: usize,
    pub channels: usize,
    /// Canvas side `M`.
    pub canvas: usize,
}

impl Geometry {
    pub fn new(n: usize, gridsize: usize) -> Geometry {
        Geometry {
            n,
            gridsize,
            channels: gridsize * gridsize,
            canvas: canvas_size(n, gridsize),
        }
    }

    fn pad(&self) -> usize {
        (self.canvas - self.n) / 2
    }

    /// The constant operators for a batch. `shifts[b][c] = (dx, dy) = p_c - g` in pixels.
    pub fn batch_ops(&self, shifts: &[Vec<(f64, f64)>], dtype: DType) -> Result<BatchOps> {
        let (n, m, h) = (self.n, self.canvas, self.n / 2);
        let (pad, q) = (self.pad() as f64, (self.n / 4) as f64);
        let b = shifts.len();
        let cc = self.channels;
        let mut ay = Vec::with_capacity(b * cc * m * h);
        let mut axt = Vec::with_capacity(b * cc * m * h);
        let mut by = Vec::with_capacity(b * cc * n * m);
        let mut bxt = Vec::with_capacity(b * cc * n * m);
        let mut norm = Array3::<f64>::zeros((b, m, m));
        for (bi, group) in shifts.iter().enumerate() {
            if group.len() != cc {
                return Err(Error::Invalid(format!(
                    "a group has {} offsets but the model has {cc} channels",
                    group.len()
                )));
            }
            for &(dx, dy) in group {
                // Into the canvas, on the object's pixel grid: central patch pixel k sits at
                // pad + N/4 + k, moved by the whole pixels round(d) (an exact placement).
                let (ix, iy) = (dx.round(), dy.round());
                let in_y = bilinear_matrix(m, h, |r| r as f64 - iy - pad - q);
                let in_x = bilinear_matrix(m, h, |r| r as f64 - ix - pad - q);
                // Out of the canvas: the simulator's one bilinear extraction at the scan
                // position, crop the central N.
                let out_y = bilinear_matrix(n, m, |i| pad + i as f64 + dy);
                let out_x = bilinear_matrix(n, m, |i| pad + i as f64 + dx);
                let sy = in_y.sum_axis(ndarray::Axis(1));
                let sx = in_x.sum_axis(ndarray::Axis(1));
                let mut nb = norm.index_axis_mut(ndarray::Axis(0), bi);
                for r in 0..m {
                    for s in 0..m {
                        nb[[r, s]] += sy[r] * sx[s];
                    }
                }
                ay.extend(in_y.iter().copied());
                axt.extend(in_x.t().iter().copied());
                by.extend(out_y.iter().copied());
                bxt.extend(out_x.t().iter().copied());
            }
        }
        let dev = Device::Cpu;
        let mk = |v: Vec<f64>, s: (usize, usize, usize)| {
            Tensor::from_vec(v, s, &dev)
                .and_then(|t| t.to_dtype(dtype))
                .map_err(ce)
        };
        let inv: Vec<f64> = norm.iter().map(|v| 1.0 / (v + 0.001)).collect();
        Ok(BatchOps {
            ay: mk(ay, (b * cc, m, h))?,
            axt: mk(axt, (b * cc, h, m))?,
            by: mk(by, (b * cc, n, m))?,
            bxt: mk(bxt, (b * cc, m, n))?,
            inv_norm: mk(inv, (b, m, m))?,
            batch: b,
        })
    }
}

/// Per-batch constant operators of the reassembly (see the module docs).
pub struct BatchOps {
    /// `(B C, M, N/2)` into-canvas rows.
    pub ay: Tensor,
    /// `(B C, N/2, M)` into-canvas columns, transposed.
    pub axt: Tensor,
    /// `(B C, N, M)` out-of-canvas rows.
    pub by: Tensor,
    /// `(B C, M, N)` out-of-canvas columns, transposed.
    pub bxt: Tensor,
    /// `(B, M, M)` `1 / (coverage + 0.001)`.
    pub inv_norm: Tensor,
    pub batch: usize,
}

/// The physics layer's constants: geometry, probe, DFT block matrix.
pub struct Physics {
    pub geom: Geometry,
    /// `(N, N)` real and imaginary parts of the normalised probe.
    pub probe_re: Tensor,
    pub probe_im: Tensor,
    /// `(2N, 2N)` block DFT matrix `[[Fs_r^T, Fs_i^T], [-Fs_i^T, Fs_r^T]]`.
    pub dft: Tensor,
    pub dtype: DType,
}

/// The `(2N, 2N)` real block matrix `G` with `[x_r | x_i] G = [x Fs^T]_r | [x Fs^T]_i`, where
/// `Fs[k, n] = exp(-2 pi i ((k + N - N/2) mod N) n / N) / sqrt(N)` (fftshift folded in).
pub fn dft_block_matrix(n: usize) -> Array2<f64> {
    let mut g = Array2::zeros((2 * n, 2 * n));
    let norm = 1.0 / (n as f64).sqrt();
    for k in 0..n {
        let kk = (k + n - n / 2) % n;
        for j in 0..n {
            let ph = -2.0 * std::f64::consts::PI * ((kk * j) % n) as f64 / n as f64;
            let (fr, fi) = (ph.cos() * norm, ph.sin() * norm);
            g[[j, k]] = fr;
            g[[j, n + k]] = fi;
            g[[n + j, k]] = -fi;
            g[[n + j, n + k]] = fr;
        }
    }
    g
}

impl Physics {
    /// Constants for a probe (`N x N`, not yet normalised) and gridsize.
    pub fn new(probe: &Array2<Complex32>, gridsize: usize, dtype: DType) -> Result<Physics> {
        let (n, n2) = probe.dim();
        if n != n2 {
            return Err(Error::Invalid(format!(
                "the probe must be square, got {n} x {n2}"
            )));
        }
        let p = normalised_probe(probe)?;
        let dev = Device::Cpu;
        let re: Vec<f64> = p.iter().map(|z| z.0).collect();
        let im: Vec<f64> = p.iter().map(|z| z.1).collect();
        let g = dft_block_matrix(n);
        let t = |v: Vec<f64>, s: (usize, usize)| {
            Tensor::from_vec(v, s, &dev)
                .and_then(|t| t.to_dtype(dtype))
                .map_err(ce)
        };
        Ok(Physics {
            geom: Geometry::new(n, gridsize),
            probe_re: t(re, (n, n))?,
            probe_im: t(im, (n, n))?,
            dft: t(g.iter().copied().collect(), (2 * n, 2 * n))?,
            dtype,
        })
    }

    /// Object from the decoder outputs `(B, N/2, N/2, C)`: `(re, im)` each `(B C, N/2, N/2)`.
    pub fn object(amp: &Tensor, phase: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let (b, h, w, c) = amp.dims4()?;
        let a = amp.permute((0, 3, 1, 2))?.reshape((b * c, h, w))?;
        let p = phase.permute((0, 3, 1, 2))?.reshape((b * c, h, w))?;
        Ok(((&a * p.cos()?)?, (&a * p.sin()?)?))
    }

    /// Reassemble the channels onto the canvas and normalise by the coverage: `(B, M, M)` each.
    pub fn reassemble(
        &self,
        obj: &(Tensor, Tensor),
        ops: &BatchOps,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let (b, c, m) = (ops.batch, self.geom.channels, self.geom.canvas);
        let one = |o: &Tensor| -> candle_core::Result<Tensor> {
            let t = ops.ay.matmul(&o.matmul(&ops.axt)?)?;
            t.reshape((b, c, m, m))?.sum(1)?.mul(&ops.inv_norm)
        };
        Ok((one(&obj.0)?, one(&obj.1)?))
    }

    /// The model's reconstruction: the central `N x N` of the canvas, `(B, N, N)` each part.
    pub fn trimmed(&self, canvas: &(Tensor, Tensor)) -> candle_core::Result<(Tensor, Tensor)> {
        let pad = (self.geom.canvas - self.geom.n) / 2;
        let n = self.geom.n;
        let crop = |t: &Tensor| t.narrow(1, pad, n)?.narrow(2, pad, n);
        Ok((crop(&canvas.0)?, crop(&canvas.1)?))
    }

    /// Re-extract each channel's `N x N` patch from the canvas: `(B C, N, N)` each part.
    pub fn extract(
        &self,
        canvas: &(Tensor, Tensor),
        ops: &BatchOps,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let (b, c, m) = (ops.batch, self.geom.channels, self.geom.canvas);
        let one = |t: &Tensor| -> candle_core::Result<Tensor> {
            let rep = t
                .reshape((b, 1, m, m))?
                .broadcast_as((b, c, m, m))?
                .contiguous()?
                .reshape((b * c, m, m))?;
            ops.by.matmul(&rep)?.matmul(&ops.bxt)
        };
        Ok((one(&canvas.0)?, one(&canvas.1)?))
    }

    /// Multiply by the normalised probe: `(B C, N, N)` each part.
    pub fn illuminate(&self, patch: &(Tensor, Tensor)) -> candle_core::Result<(Tensor, Tensor)> {
        let (pr, pi) = (&self.probe_re, &self.probe_im);
        let re = (patch.0.broadcast_mul(pr)? - patch.1.broadcast_mul(pi)?)?;
        let im = (patch.0.broadcast_mul(pi)? + patch.1.broadcast_mul(pr)?)?;
        Ok((re, im))
    }

    /// The centred far field `fftshift(F psi) / N` of `(K, N, N)` exit waves, returned
    /// **transposed per pattern**: `(re, im)` each `(K, N, N)` indexed `[k, col, row]`.
    pub fn far_field_t(&self, psi: &(Tensor, Tensor)) -> candle_core::Result<(Tensor, Tensor)> {
        let (k, n, _) = psi.0.dims3()?;
        let x = Tensor::cat(&[&psi.0, &psi.1], 2)?.reshape((k * n, 2 * n))?;
        // Rows transformed: T = psi Fs^T as [Tr | Ti], (K, N_row, 2N).
        let t = x.matmul(&self.dft)?;
        // Transpose each part: (K, row, part, col) -> (K, col, part, row).
        let tt = t
            .reshape((k, n, 2, n))?
            .permute((0, 3, 2, 1))?
            .contiguous()?
            .reshape((k * n, 2 * n))?;
        let z = tt.matmul(&self.dft)?.reshape((k, n, 2 * n))?;
        Ok((z.narrow(2, 0, n)?, z.narrow(2, n, n)?))
    }

    /// The whole physics from decoder outputs to the (transposed) far-field intensity in object
    /// units, `|fftshift(F(probe * patch))|^2 / N^2`, `(B, C, N, N)` indexed `[b, c, col, row]`.
    pub fn intensity_t(
        &self,
        amp: &Tensor,
        phase: &Tensor,
        ops: &BatchOps,
    ) -> candle_core::Result<Tensor> {
        let obj = Self::object(amp, phase)?;
        let canvas = self.reassemble(&obj, ops)?;
        let patch = self.extract(&canvas, ops)?;
        let psi = self.illuminate(&patch)?;
        let z = self.far_field_t(&psi)?;
        let n = self.geom.n;
        (z.0.sqr()? + z.1.sqr()?)?.reshape((ops.batch, self.geom.channels, n, n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_complex::Complex;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use studymake_science::numerics::fft::{fftshift, Fft2};

    fn disk_probe(n: usize) -> Array2<Complex32> {
        let c = (n as f64 - 1.0) / 2.0;
        Array2::from_shape_fn((n, n), |(i, j)| {
            let r = ((i as f64 - c).powi(2) + (j as f64 - c).powi(2)).sqrt();
            Complex32::new(
                (0.5 * (1.0 - ((r - n as f64 / 6.0) / 1.5).tanh())) as f32,
                0.0,
            )
        })
    }

    fn to_vec3(t: &Tensor) -> Vec<f64> {
        t.to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn probe_normalisation_follows_section_1() {
        // A constant probe of 1: mean(|P| M16) = (pixels of the disk) / N^2.
        let p = Array2::from_elem((64, 64), Complex32::new(1.0, 0.0));
        let q = normalised_probe(&p).unwrap();
        let disk = (0..64 * 64)
            .filter(|k| {
                let (i, j) = ((k / 64) as f64, (k % 64) as f64);
                ((i - 31.5).powi(2) + (j - 31.5).powi(2)).sqrt() < 16.0
            })
            .count();
        assert_eq!(disk, 812, "the M16 disk of the reference has 812 pixels");
        let want = 1.0 / (4.0 * 812.0 / 4096.0);
        assert!((q[[0, 0]].0 - want).abs() < 1e-12);
        assert!(normalised_probe(&Array2::zeros((8, 8))).is_err());
    }

    #[test]
    fn centred_dft_layer_equals_science_fft() {
        let n = 16;
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let k = 3;
        let re: Vec<f64> = (0..k * n * n)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let im: Vec<f64> = (0..k * n * n)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let phys = Physics::new(&disk_probe(n), 1, DType::F32).unwrap();
        let t = |v: &Vec<f64>| {
            Tensor::from_vec(v.clone(), (k, n, n), &Device::Cpu)
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap()
        };
        let (zr, zi) = phys.far_field_t(&(t(&re), t(&im))).unwrap();
        let (zr, zi) = (to_vec3(&zr), to_vec3(&zi));
        let plan = Fft2::<f64>::new(n, n);
        let mut worst = 0.0f64;
        for p in 0..k {
            let mut a = Array2::from_shape_fn((n, n), |(i, j)| {
                let o = (p * n + i) * n + j;
                Complex::new(re[o], im[o])
            });
            plan.forward(&mut a);
            let want = fftshift(&a).mapv(|z| z / n as f64);
            for i in 0..n {
                for j in 0..n {
                    // transposed layout [p, col, row]
                    let o = (p * n + j) * n + i;
                    let got = Complex::new(zr[o], zi[o]);
                    worst = worst.max((got - want[[i, j]]).norm());
                }
            }
        }
        assert!(
            worst < 2e-5,
            "DFT layer differs from fftshift(fft2)/N by {worst}"
        );
    }

    #[test]
    fn dft_gradient_matches_finite_differences() {
        let n = 8;
        let k = 2;
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut r =
            |len: usize| -> Vec<f64> { (0..len).map(|_| rng.random_range(-1.0..1.0)).collect() };
        let (re, im, w) = (r(k * n * n), r(k * n * n), r(k * n * n));
        let phys = Physics::new(&disk_probe(n), 1, DType::F64).unwrap();
        let dev = Device::Cpu;
        let wt = Tensor::from_vec(w, (k, n, n), &dev).unwrap();
        let loss = |re: &Tensor, im: &Tensor| -> Tensor {
            let z = phys.far_field_t(&(re.clone(), im.clone())).unwrap();
            ((z.0.sqr().unwrap() + z.1.sqr().unwrap()).unwrap() * &wt)
                .unwrap()
                .sum_all()
                .unwrap()
        };
        let vr = candle_core::Var::from_vec(re.clone(), (k, n, n), &dev).unwrap();
        let vi = candle_core::Var::from_vec(im.clone(), (k, n, n), &dev).unwrap();
        let grads = loss(vr.as_tensor(), vi.as_tensor()).backward().unwrap();
        let gr = to_vec3(grads.get(vr.as_tensor()).unwrap());
        let gi = to_vec3(grads.get(vi.as_tensor()).unwrap());
        let h = 1e-6;
        for &idx in &[0usize, 7, 45, 64 + 19, 2 * n * n - 1] {
            for (part, g) in [(0, &gr), (1, &gi)] {
                let f = |delta: f64| {
                    let mut a = re.clone();
                    let mut b = im.clone();
                    if part == 0 {
                        a[idx] += delta
                    } else {
                        b[idx] += delta
                    }
                    let ta = Tensor::from_vec(a, (k, n, n), &dev).unwrap();
                    let tb = Tensor::from_vec(b, (k, n, n), &dev).unwrap();
                    loss(&ta, &tb).to_scalar::<f64>().unwrap()
                };
                let fd = (f(h) - f(-h)) / (2.0 * h);
                assert!(
                    (fd - g[idx]).abs() < 1e-6 * (1.0 + fd.abs()),
                    "gradient {part}/{idx}: autodiff {} vs finite difference {fd}",
                    g[idx]
                );
            }
        }
    }

    /// Naive translate with zero fill, the reference's convention.
    fn naive_translate(img: &Array2<f64>, dx: f64, dy: f64) -> Array2<f64> {
        let (h, w) = img.dim();
        let at = |r: i64, c: i64| -> f64 {
            if r < 0 || c < 0 || r >= h as i64 || c >= w as i64 {
                0.0
            } else {
                img[[r as usize, c as usize]]
            }
        };
        Array2::from_shape_fn((h, w), |(r, c)| {
            let (y, x) = (r as f64 - dy, c as f64 - dx);
            let (y0, x0) = (y.floor(), x.floor());
            let (fy, fx) = (y - y0, x - x0);
            let (y0, x0) = (y0 as i64, x0 as i64);
            (1.0 - fy) * (1.0 - fx) * at(y0, x0)
                + (1.0 - fy) * fx * at(y0, x0 + 1)
                + fy * (1.0 - fx) * at(y0 + 1, x0)
                + fy * fx * at(y0 + 1, x0 + 1)
        })
    }

    #[test]
    fn reassembly_matches_a_naive_pad_and_translate() {
        let n = 16;
        let geom = Geometry::new(n, 2);
        let m = geom.canvas;
        let shifts = vec![vec![(1.3, -0.6), (-2.25, 0.5), (0.0, 2.0), (0.95, -1.95)]];
        let ops = geom.batch_ops(&shifts, DType::F64).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let h = n / 2;
        let patches: Vec<Array2<f64>> = (0..4)
            .map(|_| Array2::from_shape_fn((h, h), |_| rng.random_range(0.0..1.0)))
            .collect();
        let flat: Vec<f64> = patches.iter().flat_map(|p| p.iter().copied()).collect();
        let o = Tensor::from_vec(flat, (4, h, h), &Device::Cpu).unwrap();
        let z = o.zeros_like().unwrap();
        let phys = Physics::new(&disk_probe(n), 2, DType::F64).unwrap();
        let (cr, _) = phys.reassemble(&(o, z), &ops).unwrap();
        let got = to_vec3(&cr);
        // naive: pad each central patch into the canvas, translate, sum; same for the mask
        let pad = (m - n) / 2 + n / 4;
        let mut sum = Array2::<f64>::zeros((m, m));
        let mut norm = Array2::<f64>::zeros((m, m));
        for (c, p) in patches.iter().enumerate() {
            let mut big = Array2::<f64>::zeros((m, m));
            let mut mask = Array2::<f64>::zeros((m, m));
            big.slice_mut(ndarray::s![pad..pad + h, pad..pad + h])
                .assign(p);
            mask.slice_mut(ndarray::s![pad..pad + h, pad..pad + h])
                .fill(1.0);
            // Placed by whole pixels (the canvas is on the object's pixel grid).
            let (dx, dy) = shifts[0][c];
            let (dx, dy) = (dx.round(), dy.round());
            sum = sum + naive_translate(&big, dx, dy);
            norm = norm + naive_translate(&mask, dx, dy);
        }
        let want = sum / norm.mapv(|v| v + 0.001);
        let err = want
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-9, "reassembly differs from the naive one by {err}");
    }

    #[test]
    fn round_trip_is_identity_where_covered() {
        // Integer offsets, patches cut from one consistent image: re-extraction returns each
        // patch times count / (count + 0.001) on its own central region.
        let n = 16;
        let h = n / 2;
        for (gridsize, shifts) in [
            (1usize, vec![vec![(0.0, 0.0)]]),
            (
                2,
                vec![vec![(-2.0, -1.0), (2.0, -1.0), (-1.0, 2.0), (1.0, 0.0)]],
            ),
        ] {
            let geom = Geometry::new(n, gridsize);
            let c = geom.channels;
            let m = geom.canvas;
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let img = Array2::from_shape_fn((m + 8, m + 8), |_| rng.random_range(0.5..1.5));
            let base = (m - n) / 2 + n / 4 + 4;
            let cut = |dx: f64, dy: f64| {
                let (r0, c0) = ((base as f64 + dy) as usize, (base as f64 + dx) as usize);
                img.slice(ndarray::s![r0..r0 + h, c0..c0 + h]).to_owned()
            };
            let patches: Vec<Array2<f64>> = shifts[0].iter().map(|&(x, y)| cut(x, y)).collect();
            let flat: Vec<f64> = patches.iter().flat_map(|p| p.iter().copied()).collect();
            let o = Tensor::from_vec(flat, (c, h, h), &Device::Cpu).unwrap();
            let ops = geom.batch_ops(&shifts, DType::F64).unwrap();
            let phys = Physics::new(&disk_probe(n), gridsize, DType::F64).unwrap();
            let canvas = phys
                .reassemble(&(o.clone(), o.zeros_like().unwrap()), &ops)
                .unwrap();
            let (back, _) = phys.extract(&canvas, &ops).unwrap();
            let back = to_vec3(&back);
            let norm = to_vec3(&ops.inv_norm.recip().unwrap());
            let q = n / 4;
            for (ci, p) in patches.iter().enumerate() {
                let (dx, dy) = shifts[0][ci];
                for i in 0..h {
                    for j in 0..h {
                        let got = back[(ci * n + i + q) * n + j + q];
                        let cy = ((m - n) / 2) as f64 + (i + q) as f64 + dy;
                        let cx = ((m - n) / 2) as f64 + (j + q) as f64 + dx;
                        let cover = norm[cy as usize * m + cx as usize] - 0.001;
                        let want = p[[i, j]] * cover / (cover + 0.001);
                        assert!(
                            (got - want).abs() < 1e-9,
                            "gridsize {gridsize} channel {ci} ({i},{j}): {got} vs {want}"
                        );
                    }
                }
                if gridsize == 1 {
                    // Outside the central region nothing was reconstructed.
                    assert!(back[(ci * n) * n].abs() < 1e-12);
                }
            }
        }
    }
}
