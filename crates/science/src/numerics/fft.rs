//! Centred 2-D discrete Fourier transforms on ndarray, with the conventions written down once.
//!
//! * Sign: numpy's, forward `X[k] = sum_n x[n] exp(-2 pi i k n / N)`.
//! * Normalisation: [`Fft2::forward`] and [`Fft2::inverse`] are **unnormalised** (like numpy's
//!   `fft2`/`ifft2 * N*M`); [`Fft2::forward_ortho`] scales by `1/sqrt(N M)` so that Parseval holds
//!   (`sum |X|^2 = sum |x|^2`), which is the far-field operator of the simulation.
//! * Order: frequency 0 first; [`fftshift`] moves it to index `N/2` (32 for N = 64), as numpy.
//!
//! Plans are made once per shape and reused; an [`Fft2`] is `Send + Sync` and can be shared by rayon
//! workers, each passing its own scratch.

use ndarray::{Array2, ArrayViewMut2, Axis};
use num_complex::Complex;
use rustfft::{Fft, FftNum, FftPlanner};
use std::sync::Arc;

/// A planned 2-D FFT for one shape (rows, cols).
pub struct Fft2<T: FftNum> {
    rows: usize,
    cols: usize,
    row_fwd: Arc<dyn Fft<T>>,
    col_fwd: Arc<dyn Fft<T>>,
    row_inv: Arc<dyn Fft<T>>,
    col_inv: Arc<dyn Fft<T>>,
}

impl<T: FftNum> Fft2<T> {
    /// Plan transforms for images of `rows x cols`.
    pub fn new(rows: usize, cols: usize) -> Self {
        let mut planner = FftPlanner::new();
        Fft2 {
            rows,
            cols,
            row_fwd: planner.plan_fft_forward(cols),
            col_fwd: planner.plan_fft_forward(rows),
            row_inv: planner.plan_fft_inverse(cols),
            col_inv: planner.plan_fft_inverse(rows),
        }
    }

    /// Scratch length needed by the `*_with_scratch` methods.
    pub fn scratch_len(&self) -> usize {
        [
            self.row_fwd.get_inplace_scratch_len(),
            self.col_fwd.get_inplace_scratch_len(),
            self.row_inv.get_inplace_scratch_len(),
            self.col_inv.get_inplace_scratch_len(),
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
        .max(self.rows)
    }

    fn run(
        &self,
        mut a: ArrayViewMut2<Complex<T>>,
        row: &Arc<dyn Fft<T>>,
        col: &Arc<dyn Fft<T>>,
        scratch: &mut Vec<Complex<T>>,
    ) {
        assert_eq!(
            a.dim(),
            (self.rows, self.cols),
            "Fft2 planned for another shape"
        );
        let need = self.scratch_len();
        if scratch.len() < need + self.rows {
            scratch.resize(need + self.rows, Complex::new(T::zero(), T::zero()));
        }
        let (work, column) = scratch.split_at_mut(need);
        // Rows: contiguous in standard layout.
        for mut r in a.axis_iter_mut(Axis(0)) {
            if let Some(s) = r.as_slice_mut() {
                row.process_with_scratch(s, work);
            } else {
                let mut v = r.to_vec();
                row.process_with_scratch(&mut v, work);
                r.iter_mut().zip(v).for_each(|(d, s)| *d = s);
            }
        }
        // Columns: gather, transform, scatter.
        let column = &mut column[..self.rows];
        for mut c in a.axis_iter_mut(Axis(1)) {
            column.iter_mut().zip(c.iter()).for_each(|(d, s)| *d = *s);
            col.process_with_scratch(column, work);
            c.iter_mut().zip(column.iter()).for_each(|(d, s)| *d = *s);
        }
    }

    /// Unnormalised forward transform in place, with caller-owned scratch.
    pub fn forward_with_scratch(
        &self,
        a: ArrayViewMut2<Complex<T>>,
        scratch: &mut Vec<Complex<T>>,
    ) {
        self.run(a, &self.row_fwd, &self.col_fwd, scratch)
    }

    /// Unnormalised forward transform of the row-major `rows x cols` values in `a`, leaving the
    /// result **transposed** in `out` (`out[c * rows + r] = X[r, c]`; `a` is overwritten with the
    /// row transforms). All rows go through rustfft in one batched call, one transpose follows, then
    /// all columns (rows of `out`) in one batched call: the same 1-D transforms in the same order
    /// as [`Fft2::forward_with_scratch`], without its per-column gather and scatter. For callers
    /// that read the spectrum through an index map anyway (an fftshift), which then costs nothing.
    /// Errors (`Error::Invalid`) when `a` or `out` is not `rows * cols` long.
    pub fn forward_transposed(
        &self,
        a: &mut [Complex<T>],
        out: &mut [Complex<T>],
        scratch: &mut Vec<Complex<T>>,
    ) -> crate::error::Result<()> {
        let (r, c) = (self.rows, self.cols);
        if a.len() != r * c || out.len() != r * c {
            return Err(crate::error::Error::Invalid(format!(
                "Fft2::forward_transposed: planned for {r} x {c} = {} values, got {} and {}",
                r * c,
                a.len(),
                out.len()
            )));
        }
        let need = self.scratch_len();
        if scratch.len() < need {
            scratch.resize(need, Complex::new(T::zero(), T::zero()));
        }
        if r * c == 0 {
            return Ok(());
        }
        self.row_fwd.process_with_scratch(a, &mut scratch[..need]);
        for (i, row) in a.chunks_exact(c).enumerate() {
            for (j, z) in row.iter().enumerate() {
                out[j * r + i] = *z;
            }
        }
        self.col_fwd.process_with_scratch(out, &mut scratch[..need]);
        Ok(())
    }

    /// Unnormalised inverse transform in place, with caller-owned scratch.
    pub fn inverse_with_scratch(
        &self,
        a: ArrayViewMut2<Complex<T>>,
        scratch: &mut Vec<Complex<T>>,
    ) {
        self.run(a, &self.row_inv, &self.col_inv, scratch)
    }

    /// Unnormalised forward transform in place.
    pub fn forward(&self, a: &mut Array2<Complex<T>>) {
        self.forward_with_scratch(a.view_mut(), &mut Vec::new())
    }

    /// Unnormalised inverse transform in place (numpy's `ifft2` times `rows*cols`).
    pub fn inverse(&self, a: &mut Array2<Complex<T>>) {
        self.inverse_with_scratch(a.view_mut(), &mut Vec::new())
    }

    /// Orthonormal forward transform in place: `forward / sqrt(rows*cols)`.
    pub fn forward_ortho(&self, a: &mut Array2<Complex<T>>) {
        self.forward(a);
        let s = T::from_f64(1.0 / ((self.rows * self.cols) as f64).sqrt()).unwrap();
        a.mapv_inplace(|z| z * s);
    }

    /// Normalised inverse (numpy's `ifft2`): `inverse / (rows*cols)`.
    pub fn inverse_normalized(&self, a: &mut Array2<Complex<T>>) {
        self.inverse(a);
        let s = T::from_f64(1.0 / ((self.rows * self.cols) as f64)).unwrap();
        a.mapv_inplace(|z| z * s);
    }
}

/// numpy's `fftshift` for 2-D arrays: frequency 0 moves from index 0 to index `n/2`.
pub fn fftshift<A: Clone>(a: &Array2<A>) -> Array2<A> {
    let (r, c) = a.dim();
    Array2::from_shape_fn((r, c), |(i, j)| {
        a[[(i + r - r / 2) % r, (j + c - c / 2) % c]].clone()
    })
}

/// numpy's `ifftshift` for 2-D arrays (the inverse of [`fftshift`], different for odd sizes).
pub fn ifftshift<A: Clone>(a: &Array2<A>) -> Array2<A> {
    let (r, c) = a.dim();
    Array2::from_shape_fn((r, c), |(i, j)| {
        a[[(i + r / 2) % r, (j + c / 2) % c]].clone()
    })
}

/// numpy's `fftfreq(n)` (cycles per sample): `[0, 1, ..., n/2-1, -n/2, ..., -1] / n`.
pub fn fftfreq(n: usize) -> Vec<f64> {
    (0..n)
        .map(|k| {
            let k = k as i64;
            let n = n as i64;
            let v = if k < (n + 1) / 2 { k } else { k - n };
            v as f64 / n as f64
        })
        .collect()
}

/// A naive O(N^4) 2-D DFT, the reference the fast path is tested against.
pub fn naive_dft2(a: &Array2<Complex<f64>>, inverse: bool) -> Array2<Complex<f64>> {
    let (r, c) = a.dim();
    let sign = if inverse { 1.0 } else { -1.0 };
    Array2::from_shape_fn((r, c), |(k, l)| {
        let mut acc = Complex::new(0.0, 0.0);
        for m in 0..r {
            for n in 0..c {
                let ph = sign
                    * 2.0
                    * std::f64::consts::PI
                    * ((k * m) as f64 / r as f64 + (l * n) as f64 / c as f64);
                acc += a[[m, n]] * Complex::new(ph.cos(), ph.sin());
            }
        }
        acc
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(r: usize, c: usize) -> Array2<Complex<f64>> {
        Array2::from_shape_fn((r, c), |(i, j)| {
            let x = (i * 31 + j * 17) as f64;
            Complex::new((x * 0.37).sin(), (x * 0.11).cos())
        })
    }

    #[test]
    fn forward_and_inverse_match_the_naive_dft() {
        for &(r, c) in &[(8, 8), (6, 10), (7, 5)] {
            let a = sample(r, c);
            let plan = Fft2::new(r, c);
            let mut f = a.clone();
            plan.forward(&mut f);
            let want = naive_dft2(&a, false);
            let err = (&f - &want).iter().map(|z| z.norm()).fold(0.0, f64::max);
            assert!(err < 1e-10, "forward {r}x{c}: {err}");
            let mut g = a.clone();
            plan.inverse(&mut g);
            let want = naive_dft2(&a, true);
            let err = (&g - &want).iter().map(|z| z.norm()).fold(0.0, f64::max);
            assert!(err < 1e-10, "inverse {r}x{c}: {err}");
        }
    }

    #[test]
    fn transposed_forward_equals_forward_bit_for_bit() {
        for (r, c) in [(64, 64), (8, 12), (5, 3)] {
            let src = sample(r, c).mapv(|z| Complex::new(z.re as f32, z.im as f32));
            let plan = Fft2::<f32>::new(r, c);
            let mut want = src.clone();
            plan.forward(&mut want);
            let mut a: Vec<Complex<f32>> = src.iter().copied().collect();
            let mut out = vec![Complex::new(0.0f32, 0.0); r * c];
            plan.forward_transposed(&mut a, &mut out, &mut Vec::new())
                .unwrap();
            for ((i, j), w) in want.indexed_iter() {
                assert_eq!(out[j * r + i], *w, "{r}x{c} ({i}, {j})");
            }
            assert!(plan
                .forward_transposed(&mut a[1..], &mut out, &mut Vec::new())
                .is_err());
        }
    }

    #[test]
    fn orthonormal_transform_keeps_energy() {
        let a = sample(16, 16);
        let mut f = a.clone();
        Fft2::new(16, 16).forward_ortho(&mut f);
        let ea: f64 = a.iter().map(|z| z.norm_sqr()).sum();
        let ef: f64 = f.iter().map(|z| z.norm_sqr()).sum();
        assert!((ea - ef).abs() < 1e-10 * ea);
    }

    #[test]
    fn fftshift_puts_zero_frequency_at_half() {
        let mut a = Array2::<f64>::zeros((64, 64));
        a[[0, 0]] = 1.0;
        let s = fftshift(&a);
        assert_eq!(s[[32, 32]], 1.0);
        let b = Array2::from_shape_fn((5, 7), |(i, j)| (i * 7 + j) as f64);
        assert_eq!(ifftshift(&fftshift(&b)), b);
        assert_eq!(fftshift(&b)[[2, 3]], b[[0, 0]]);
        assert_eq!(fftfreq(4), vec![0.0, 0.25, -0.5, -0.25]);
        assert_eq!(fftfreq(5), vec![0.0, 0.2, 0.4, -0.4, -0.2]);
    }
}
