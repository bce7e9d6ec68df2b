//! Hand-written CPU kernels of the network's layers as candle custom ops, each with its own local
//! backward pass: the 3x3 'same' convolution fused with its bias and (optionally) ReLU, 2x2 max
//! pooling and nearest 2x upsampling, all on NHWC `(B, H, W, C)` tensors of f32 or f64.
//!
//! Why: built from candle's generic ops, one convolution step was a dozen full passes over the
//! activations and a 9x im2col buffer (gather, bias broadcast, ReLU mask, backprop's
//! zero-initialised accumulators, scatter-add), and those passes, single-threaded, took about
//! two thirds of the training time. Here the convolution is computed by one of three
//! algorithms ([`ConvAlgo`]): im2col and `gemm` (the first layer), Winograd F(4x4, 3x3)
//! ([`super::winograd`], the layers with 16 or more channels in and out) or direct summation
//! ([`super::direct`], the heads).
//!
//! Only the *local* derivative of each op is written by hand (tested against finite
//! differences and against candle's autodiff of the same op built from generic candle ops); the
//! network's gradient is still assembled by candle's autodiff.
//!
//! Determinism: every output element is written by exactly one task, sums run in a fixed order
//! (taps in `ky, kx` order, pooling windows in row-major order), and the matrix products are
//! `gemm` calls with the same blocking as candle's matmul, so results do not depend on how rayon
//! schedules the work.

use super::{direct, winograd};
use candle_core::{
    CpuStorage, CustomOp1, CustomOp3, DType, Error, Layout, Result, Shape, Storage, Tensor,
    WithDType,
};
use rayon::prelude::*;
use std::borrow::Cow;
use std::mem::MaybeUninit;

fn err(msg: impl Into<String>) -> Error {
    Error::Msg(msg.into())
}

/// `Tensor::from_vec(body, like's shape and device)` with the type `$t` bound to `like`'s float
/// type (f32 or f64) inside `body`; any other type returns an error naming the op.
macro_rules! float_tensor_like {
    ($op:literal, $like:expr, |$t:ident| $body:expr) => {
        match $like.dtype() {
            DType::F32 => {
                type $t = f32;
                Tensor::from_vec($body, $like.shape(), $like.device())?
            }
            DType::F64 => {
                type $t = f64;
                Tensor::from_vec($body, $like.shape(), $like.device())?
            }
            dt => {
                return Err(err(format!(
                    concat!($op, " supports f32 and f64 only, got {:?}"),
                    dt
                )))
            }
        }
    };
}

/// The contiguous data of a CPU storage under a layout.
fn slice_of<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [T]> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| err("a custom kernel needs a contiguous tensor"))?;
    Ok(&s.as_slice::<T>()?[a..b])
}

/// Run `f` on the (contiguous) data of a CPU tensor without copying it when it is contiguous.
fn with_data<T: WithDType, R>(t: &Tensor, f: impl FnOnce(&[T]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (s, l) = t.storage_and_layout();
    match &*s {
        Storage::Cpu(c) => f(slice_of::<T>(c, l)?),
        _ => Err(err("the custom kernels run on the CPU only")),
    }
}

/// A raw pointer that may cross threads: for tasks that write disjoint parts of one buffer.
/// Read it through [`SendPtr::get`] so closures capture the wrapper, not the bare pointer.
#[derive(Clone, Copy)]
pub(super) struct SendPtr<T>(pub *mut T);

// SAFETY: the users only write disjoint ranges through it while the buffer is alive (each use
// states why).
unsafe impl<T: Send> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    pub(super) fn get(&self) -> *mut T {
        self.0
    }
}

/// Rows of `dst` per task in [`matmul_rows`].
const ROWS_PER_TASK: usize = 2048;

/// Partitions of the inner dimension in [`matmul_inner_split`].
const INNER_PARTS: usize = 8;

/// [`matmul_with`] in parallel blocks of [`ROWS_PER_TASK`] rows of `dst` (and `lhs`), one
/// single-threaded gemm each. The im2col products are thin (N = 1-4 at the heads, K = 9 or 36
/// at the first layer): gemm's own threading ran them on one thread, the caller's, while
/// the pool waited. The blocks depend only on the shapes, so the results do not depend on the
/// thread count.
#[allow(clippy::too_many_arguments)]
fn matmul_rows<T: WithDType>(
    (m, n, k): (usize, usize, usize),
    dst: &mut [T],
    accumulate: bool,
    lhs: &[T],
    lhs_s: (usize, usize),
    rhs: &[T],
    rhs_s: (usize, usize),
) {
    dst[..m * n]
        .par_chunks_mut((ROWS_PER_TASK * n).max(1))
        .enumerate()
        .for_each(|(i, d)| {
            let rows = d.len() / n.max(1);
            let lhs = &lhs[i * ROWS_PER_TASK * lhs_s.0..];
            let par = gemm::Parallelism::None;
            matmul_with((rows, n, k), d, accumulate, lhs, lhs_s, rhs, rhs_s, par);
        });
}

/// The element-wise sum of `parts` (each of `n` elements), added in order onto zero: how the
/// fixed partial sums of the kernels' reductions are combined, independently of the threads.
pub(super) fn sum_in_order<T: WithDType>(parts: &[Vec<T>], n: usize) -> Vec<T> {
    let mut sum = vec![T::zero(); n];
    for p in parts {
        for (s, v) in sum.iter_mut().zip(p) {
            *s += *v;
        }
    }
    sum
}

/// `dst (m x n) = lhs (m x k) rhs (k x n)` for a long inner dimension `k` (the kernel
/// gradients of the im2col convolutions, `k` = pixels): [`INNER_PARTS`] fixed slices of `k` in
/// parallel, one single-threaded gemm each, their products added in slice order.
#[allow(clippy::too_many_arguments)]
fn matmul_inner_split<T: WithDType>(
    (m, n, k): (usize, usize, usize),
    dst: &mut [T],
    lhs: &[T],
    lhs_s: (usize, usize),
    rhs: &[T],
    rhs_s: (usize, usize),
) {
    let len = k.div_ceil(INNER_PARTS).max(1);
    let partial: Vec<Vec<T>> = (0..k.div_ceil(len))
        .into_par_iter()
        .map(|p| {
            let (a, b) = (p * len, ((p + 1) * len).min(k));
            let mut d = vec![T::zero(); m * n];
            let (l, r) = (&lhs[a * lhs_s.1..], &rhs[a * rhs_s.0..]);
            let par = gemm::Parallelism::None;
            matmul_with((m, n, b - a), &mut d, false, l, lhs_s, r, rhs_s, par);
            d
        })
        .collect();
    dst[..m * n].copy_from_slice(&sum_in_order(&partial, m * n));
}

/// `dst (m x n) = [dst +] lhs (m x k) rhs (k x n)`, each matrix given by its row and column
/// strides (in elements). `accumulate` keeps what `dst` holds.
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul_with<T: WithDType>(
    mnk: (usize, usize, usize),
    dst: &mut [T],
    accumulate: bool,
    lhs: &[T],
    lhs_s: (usize, usize),
    rhs: &[T],
    rhs_s: (usize, usize),
    par: gemm::Parallelism,
) {
    // SAFETY: MaybeUninit<T> has T's layout; every element of dst is initialised, so reading
    // it (accumulate) is sound.
    let dst = unsafe { &mut *(dst as *mut [T] as *mut [MaybeUninit<T>]) };
    matmul_raw(mnk, dst, accumulate, lhs, lhs_s, rhs, rhs_s, par)
}

/// `dst (m x n) = lhs (m x k) rhs (k x n)` into memory not yet written (gemm does not read its
/// destination unless it accumulates): no zero fill of a buffer about to be overwritten.
pub(super) fn matmul_into<T: WithDType>(
    mnk: (usize, usize, usize),
    dst: &mut [MaybeUninit<T>],
    lhs: &[T],
    lhs_s: (usize, usize),
    rhs: &[T],
    rhs_s: (usize, usize),
) {
    matmul_raw(
        mnk,
        dst,
        false,
        lhs,
        lhs_s,
        rhs,
        rhs_s,
        gemm::Parallelism::None,
    )
}

/// [`matmul_with`] on a destination that may be uninitialised: `accumulate` is only sound
/// when it is not.
#[allow(clippy::too_many_arguments)]
fn matmul_raw<T: WithDType>(
    (m, n, k): (usize, usize, usize),
    dst: &mut [MaybeUninit<T>],
    accumulate: bool,
    lhs: &[T],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[T],
    (rhs_rs, rhs_cs): (usize, usize),
    par: gemm::Parallelism,
) {
    assert!(dst.len() >= m * n, "gemm destination too small");
    assert!(m == 0 || k == 0 || lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs);
    assert!(k == 0 || n == 0 || rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs);
    // SAFETY: the asserts above keep every access of gemm inside the three slices; dst is a
    // row-major m x n block that does not alias lhs or rhs (distinct borrows); gemm reads dst
    // only when accumulating (read_dst), which the callers do on initialised memory only.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr().cast::<T>(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            if accumulate { T::one() } else { T::zero() },
            T::one(),
            false,
            false,
            false,
            par,
        )
    }
}

/// A vector of `n` elements filled by `fill`, which gets disjoint chunks of `chunk` elements
/// (the index of the chunk and the chunk) in parallel and must write every element.
pub(super) fn par_filled<T: Send>(
    n: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<T>]) + Sync + Send,
) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(n);
    v.spare_capacity_mut()[..n]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each(|(i, c)| fill(i, c));
    // SAFETY: `fill` wrote every element of the first n (the callers' loops cover each chunk
    // completely), and T is a plain number type.
    unsafe { v.set_len(n) };
    v
}

pub(super) fn write_from<T: Copy>(dst: &mut [MaybeUninit<T>], src: &[T]) {
    assert_eq!(dst.len(), src.len());
    // SAFETY: MaybeUninit<T> has T's layout, both ranges have dst.len() elements (asserted), and
    // they do not overlap (a shared and a mutable borrow).
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr().cast::<T>(), dst.len()) }
}

fn write_zeros<T: WithDType>(dst: &mut [MaybeUninit<T>]) {
    for e in dst {
        e.write(T::zero());
    }
}

/// im2col of a 3x3 'same' convolution: `(B H W, 9 Cin)`, row `(b, y, x)`, column
/// `(ky * 3 + kx) * Cin + ci` = `x[b, y + ky - 1, x + kx - 1, ci]` (zero outside the image).
fn im2col<T: WithDType>(x: &[T], d: (usize, usize, usize, usize)) -> Vec<T> {
    let (b, h, w, cin) = d;
    let row = 9 * cin;
    par_filled(b * h * w * row, w * row, |by, dst| {
        im2col_pixels(x, d, by * w..(by + 1) * w, dst)
    })
}

/// The im2col rows of pixels `pixels` (numbered `(b * H + y) * W + x`) into `dst`.
fn im2col_pixels<T: WithDType>(
    x: &[T],
    (_, h, w, cin): (usize, usize, usize, usize),
    pixels: std::ops::Range<usize>,
    dst: &mut [MaybeUninit<T>],
) {
    let row = 9 * cin;
    for (p, dst) in pixels.zip(dst.chunks_mut(row)) {
        let (by, xo) = (p / w, p % w);
        let (bi, y) = (by / h, by % h);
        for ky in 0..3 {
            // Taps (ky, 0..3) are three neighbouring pixels: one copy when all are inside.
            let d = &mut dst[ky * 3 * cin..][..3 * cin];
            let yy = y + ky;
            if !(1..=h).contains(&yy) {
                write_zeros(d);
                continue;
            }
            let src_row = &x[(bi * h + yy - 1) * w * cin..][..w * cin];
            if xo >= 1 && xo + 1 < w {
                write_from(d, &src_row[(xo - 1) * cin..][..3 * cin]);
                continue;
            }
            for kx in 0..3 {
                let dk = &mut d[kx * cin..][..cin];
                let xx = xo + kx;
                if (1..=w).contains(&xx) {
                    write_from(dk, &src_row[(xx - 1) * cin..][..cin]);
                } else {
                    write_zeros(dk);
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: `gx[b, y, x, ci]` = the sum over taps `(ky, kx)` (in that order)
/// of `col[(b, y - ky + 1, x - kx + 1), (ky * 3 + kx) * Cin + ci]` over the output pixels inside
/// the image.
fn col2im<T: WithDType>(col: &[T], (b, h, w, cin): (usize, usize, usize, usize)) -> Vec<T> {
    let row = 9 * cin;
    par_filled(b * h * w * cin, w * cin, |by, dst| {
        let (bi, yy) = (by / h, by % h);
        let mut acc = vec![T::zero(); cin];
        for xx in 0..w {
            acc.fill(T::zero());
            for ky in 0..3 {
                for kx in 0..3 {
                    // Output pixel (yy + 1 - ky, xx + 1 - kx) reads this input through tap k.
                    let (y, x) = (yy + 1, xx + 1);
                    if y < ky || x < kx || y - ky >= h || x - kx >= w {
                        continue;
                    }
                    let src =
                        &col[((bi * h + y - ky) * w + x - kx) * row + (ky * 3 + kx) * cin..][..cin];
                    for (a, s) in acc.iter_mut().zip(src) {
                        *a += *s;
                    }
                }
            }
            write_from(&mut dst[xx * cin..][..cin], &acc);
        }
    })
}

/// How a 3x3 convolution is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvAlgo {
    /// im2col and one gemm (forward), `col^T g` and the flipped-kernel convolution (backward).
    Im2col,
    /// Winograd F(2x2, 3x3) forward, input gradient and kernel gradient
    /// ([`super::winograd::F2`]).
    WinogradF2,
    /// Winograd F(4x4, 3x3) ([`super::winograd::F4`]).
    WinogradF4,
    /// Direct summation over each pixel's neighbourhood ([`super::direct`]), for thin layers.
    Direct,
    /// [`ConvAlgo::WinogradF4`] when both channel counts are at least
    /// [`WINOGRAD_MIN_CHANNELS`] (the transform-domain products of thinner layers are too
    /// thin); below that, [`ConvAlgo::Direct`] when there are at least 16 input channels per
    /// output channel (the heads `64 -> 1`, `64 -> 4` and `32 -> 1`: 1.0-2x faster than
    /// im2col forward + backward, `train_ops -- thin`), else [`ConvAlgo::Im2col`] (the first
    /// layer and the head `32 -> 4`, where im2col's gemm was as fast or faster).
    Auto,
}

/// The fewest input and output channels for which [`ConvAlgo::Auto`] takes Winograd.
pub const WINOGRAD_MIN_CHANNELS: usize = 16;

impl ConvAlgo {
    fn resolve(self, cin: usize, cout: usize) -> ConvAlgo {
        match self {
            ConvAlgo::Auto if cin.min(cout) >= WINOGRAD_MIN_CHANNELS => ConvAlgo::WinogradF4,
            ConvAlgo::Auto if cout * 16 <= cin => ConvAlgo::Direct,
            ConvAlgo::Auto => ConvAlgo::Im2col,
            a => a,
        }
    }
}

/// The fused convolution `relu?(conv3x3_same(x, w) + b)` (see [`conv3x3_fused`]).
struct Conv3x3 {
    relu: bool,
    algo: ConvAlgo,
}

fn conv_dims(x: &Shape, w: &Shape, b: &Shape) -> Result<(usize, usize, usize, usize, usize)> {
    let (bs, h, wd, cin) = x.dims4()?;
    let (k, cout) = w.dims2()?;
    let bn = b.dims1()?;
    if k != 9 * cin || bn != cout {
        return Err(err(format!(
            "conv3x3: input {x:?} needs a (9 * {cin}, Cout) kernel and a (Cout,) bias, got {w:?} \
             and {b:?}"
        )));
    }
    Ok((bs, h, wd, cin, cout))
}

fn conv_fwd<T: WithDType>(
    x: &[T],
    w: &[T],
    bias: &[T],
    (b, h, wd, cin, cout): (usize, usize, usize, usize, usize),
    relu: bool,
    algo: ConvAlgo,
) -> Vec<T> {
    match algo.resolve(cin, cout) {
        ConvAlgo::WinogradF2 => {
            let u = winograd::F2.kernel(w, cin, cout);
            return winograd::F2.conv(x, &u, bias, (b, h, wd, cin), cout, relu);
        }
        ConvAlgo::WinogradF4 => {
            let u = winograd::F4.kernel(w, cin, cout);
            return winograd::F4.conv(x, &u, bias, (b, h, wd, cin), cout, relu);
        }
        ConvAlgo::Direct => return direct::conv(x, w, bias, (b, h, wd, cin), cout, relu),
        _ => {}
    }
    // In blocks of ROWS_PER_TASK output pixels (the blocks of matmul_rows), each in cache from
    // start to end: its im2col rows, the bias, gemm adding col w to it, the ReLU. (As separate
    // passes over the layer, the first layer's forward wrote and read 16 MB four times.)
    let k = 9 * cin;
    par_filled(b * h * wd * cout, ROWS_PER_TASK * cout, |i, y| {
        let rows = y.len() / cout;
        let mut col = Vec::with_capacity(rows * k);
        let p0 = i * ROWS_PER_TASK;
        im2col_pixels(x, (b, h, wd, cin), p0..p0 + rows, col.spare_capacity_mut());
        // SAFETY: im2col_pixels wrote all rows * k elements.
        unsafe { col.set_len(rows * k) };
        for r in y.chunks_mut(cout) {
            write_from(r, bias);
        }
        // SAFETY: every element of y was just written; MaybeUninit<T> has T's layout.
        let y = unsafe { &mut *(y as *mut [MaybeUninit<T>] as *mut [T]) };
        let par = gemm::Parallelism::None;
        matmul_with((rows, cout, k), y, true, &col, (k, 1), w, (cout, 1), par);
        if relu {
            relu_in_place(y);
        }
    })
}

/// `v[i] = v[i]` where positive, else `+0`: [`keep_where_positive`] in place.
fn relu_in_place<T: WithDType>(v: &mut [T]) {
    for e in v {
        *e = kept_if_positive(*e, *e);
    }
}

/// `dst[i] = v[i]` where `r[i] > 0`, else `+0`: the ReLU and its backward. NaN in `r` counts as
/// not positive.
fn keep_where_positive<T: WithDType>(r: &[T], v: &[T], dst: &mut [MaybeUninit<T>]) {
    assert!(r.len() == dst.len() && v.len() == dst.len());
    for ((d, r), v) in dst.iter_mut().zip(r).zip(v) {
        d.write(kept_if_positive(*r, *v));
    }
}

/// `v` if `r > 0`, else `+0` (NaN `r` counts as not positive, as in the select). For f32 and
/// f64 a bit mask: written as a select, it compiled to a branch that ReLU data mispredicts
/// about half the time (6 ns per element, 7x the masked loop; about a tenth of a training
/// step). The type tests are resolved at compile time.
#[inline(always)]
fn kept_if_positive<T: WithDType>(r: T, v: T) -> T {
    use std::any::TypeId;
    use std::mem::transmute_copy;
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        // SAFETY: T is f32 (same TypeId), so these copies reinterpret a value as itself.
        unsafe {
            let (r, v): (f32, f32) = (transmute_copy(&r), transmute_copy(&v));
            let mask = ((r > 0.0) as u32).wrapping_neg();
            transmute_copy(&f32::from_bits(v.to_bits() & mask))
        }
    } else if TypeId::of::<T>() == TypeId::of::<f64>() {
        // SAFETY: T is f64, as above.
        unsafe {
            let (r, v): (f64, f64) = (transmute_copy(&r), transmute_copy(&v));
            let mask = ((r > 0.0) as u64).wrapping_neg();
            transmute_copy(&f64::from_bits(v.to_bits() & mask))
        }
    } else if r > T::zero() {
        v
    } else {
        T::zero()
    }
}

/// The kernel of the input gradient's convolution: `wf[(8 - t) * Cout + co, ci] =
/// w[t * Cin + ci, co]` for tap `t = ky * 3 + kx` (flipped taps, transposed channels), `(9 Cout,
/// Cin)`, in parallel blocks of 16 rows (a transpose: on one thread it was a few percent of a
/// training step's single-threaded time at `n_filters_scale` 2).
fn flipped_kernel<T: WithDType>(w: &[T], cin: usize, cout: usize) -> Vec<T> {
    par_filled(9 * cout * cin, 16 * cin, |i, dst| {
        for (j, row) in dst.chunks_mut(cin).enumerate() {
            let r = i * 16 + j;
            let (t, co) = (8 - r / cout, r % cout);
            for (ci, d) in row.iter_mut().enumerate() {
                d.write(w[(t * cin + ci) * cout + co]);
            }
        }
    })
}

/// `(dx, dw)` of a convolution by Winograd algorithm `wino`, given the gradient `g` of its
/// pre-activation output: dx (if `need_dx`) is the 'same' convolution of g with the flipped,
/// transposed kernel (see [`conv_bwd`]), dw is computed in the transform domain; the two in
/// parallel.
fn winograd_bwd<T: WithDType, P: winograd::Points<M, A>, const M: usize, const A: usize>(
    wino: &winograd::Wino<P, M, A>,
    x: &[T],
    w: &[T],
    g: &[T],
    (b, h, wd, cin, cout): (usize, usize, usize, usize, usize),
    need_dx: bool,
) -> (Option<Vec<T>>, Vec<T>) {
    rayon::join(
        || {
            need_dx.then(|| {
                let u = wino.kernel(&flipped_kernel(w, cin, cout), cout, cin);
                let zero = vec![T::zero(); cin];
                wino.conv(g, &u, &zero, (b, h, wd, cout), cin, false)
            })
        },
        || wino.kernel_grad(x, g, (b, h, wd, cin), cout),
    )
}

/// Local backward of [`Conv3x3`]: `(dx, dw, db)` from the input, kernel, the op's output and
/// the gradient of that output; `dx` only if `need_dx` (not for the network's input).
#[allow(clippy::too_many_arguments)]
fn conv_bwd<T: WithDType>(
    x: &[T],
    w: &[T],
    res: &[T],
    grad: &[T],
    (b, h, wd, cin, cout): (usize, usize, usize, usize, usize),
    relu: bool,
    algo: ConvAlgo,
    need_dx: bool,
) -> (Option<Vec<T>>, Vec<T>, Vec<T>) {
    let m = b * h * wd;
    let k = 9 * cin;
    // db: partial sums over fixed blocks of DB_ROWS pixels (in parallel), added in block order.
    const DB_ROWS: usize = 512;
    let block_sum = |c: &[T]| {
        let mut acc = vec![T::zero(); cout];
        for r in c.chunks(cout) {
            for (a, v) in acc.iter_mut().zip(r) {
                *a += *v;
            }
        }
        acc
    };
    // Gradient before the ReLU: zero where the output was clipped (TensorFlow's convention:
    // the derivative at 0 is 0); each block's db partial sum taken while it is in cache.
    let (g, partial): (Cow<[T]>, Vec<Vec<T>>) = if relu {
        let block = (DB_ROWS * cout).max(1);
        let mut gv: Vec<T> = Vec::with_capacity(m * cout);
        let partial = gv.spare_capacity_mut()[..m * cout]
            .par_chunks_mut(block)
            .zip(res.par_chunks(block).zip(grad.par_chunks(block)))
            .map(|(dst, (r, v))| {
                keep_where_positive(r, v, dst);
                // SAFETY: keep_where_positive wrote every element of dst; MaybeUninit<T> has
                // T's layout.
                block_sum(unsafe { &*(dst as *const [MaybeUninit<T>] as *const [T]) })
            })
            .collect();
        // SAFETY: the blocks cover all m * cout elements and each was written above.
        unsafe { gv.set_len(m * cout) };
        (Cow::Owned(gv), partial)
    } else {
        let partial = grad.par_chunks(DB_ROWS * cout).map(block_sum).collect();
        (Cow::Borrowed(grad), partial)
    };
    let db = sum_in_order(&partial, cout);
    let algo = algo.resolve(cin, cout);
    if algo == ConvAlgo::Direct {
        // dx: the 'same' convolution of g with the flipped, transposed kernel (see below).
        let (dx, dw) = rayon::join(
            || {
                need_dx.then(|| {
                    let wf = flipped_kernel(w, cin, cout);
                    let zero = vec![T::zero(); cin];
                    direct::conv(&g, &wf, &zero, (b, h, wd, cout), cin, false)
                })
            },
            || direct::kernel_grad(x, &g, (b, h, wd, cin), cout),
        );
        return (dx, dw, db);
    }
    if algo != ConvAlgo::Im2col {
        let dims = (b, h, wd, cin, cout);
        let (dx, dw) = if algo == ConvAlgo::WinogradF2 {
            winograd_bwd(&winograd::F2, x, w, &g, dims, need_dx)
        } else {
            winograd_bwd(&winograd::F4, x, w, &g, dims, need_dx)
        };
        return (dx, dw, db);
    }
    let mut col = im2col(x, (b, h, wd, cin));
    // dw (9 Cin x Cout) = col^T g.
    let mut dw = vec![T::zero(); k * cout];
    matmul_inner_split((k, cout, m), &mut dw, &col, (1, k), &g, (cout, 1));
    let dx = if !need_dx {
        None
    } else if cout <= 2 * cin {
        // The adjoint of a stride-1 'same' 3x3 convolution is the 'same' convolution of g with
        // the flipped, transposed kernel: wf[(8 - t) * Cout + co, ci] = w[t * Cin + ci, co]
        // for tap t = ky * 3 + kx. One im2col of g and one gemm with K = 9 Cout.
        drop(col);
        let wf = flipped_kernel(w, cin, cout);
        let gcol = im2col(&g, (b, h, wd, cout));
        let mut dx = vec![T::zero(); m * cin];
        matmul_rows(
            (m, cin, 9 * cout),
            &mut dx,
            false,
            &gcol,
            (9 * cout, 1),
            &wf,
            (cin, 1),
        );
        Some(dx)
    } else {
        // Few input channels (the first layer): dcol (M x 9 Cin) = g w^T, written over col, then
        // folded back onto the pixels; smaller than g's im2col.
        matmul_rows((m, k, cout), &mut col, false, &g, (cout, 1), w, (1, cout));
        Some(col2im(&col, (b, h, wd, cin)))
    };
    (dx, dw, db)
}

impl CustomOp3 for Conv3x3 {
    fn name(&self) -> &'static str {
        "conv3x3"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = conv_dims(l1.shape(), l2.shape(), l3.shape())?;
        let shape = Shape::from((d.0, d.1, d.2, d.4));
        let st = match s1 {
            CpuStorage::F32(_) => CpuStorage::F32(conv_fwd::<f32>(
                slice_of(s1, l1)?,
                slice_of(s2, l2)?,
                slice_of(s3, l3)?,
                d,
                self.relu,
                self.algo,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(conv_fwd::<f64>(
                slice_of(s1, l1)?,
                slice_of(s2, l2)?,
                slice_of(s3, l3)?,
                d,
                self.relu,
                self.algo,
            )),
            _ => return Err(err("conv3x3 supports f32 and f64 only")),
        };
        Ok((st, shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        fn go<T: WithDType>(
            op: &Conv3x3,
            x: &Tensor,
            w: &Tensor,
            b: &Tensor,
            res: &Tensor,
            grad: &Tensor,
        ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
            let d = conv_dims(x.shape(), w.shape(), b.shape())?;
            // No input gradient for an input that no gradient flows to (the network's input).
            let need_dx = x.track_op();
            let (dx, dw, db) = with_data::<T, _>(x, |xs| {
                with_data::<T, _>(w, |ws| {
                    with_data::<T, _>(res, |rs| {
                        with_data::<T, _>(grad, |gs| {
                            Ok(conv_bwd(xs, ws, rs, gs, d, op.relu, op.algo, need_dx))
                        })
                    })
                })
            })?;
            let dev = x.device();
            Ok((
                dx.map(|dx| Tensor::from_vec(dx, x.shape(), dev))
                    .transpose()?,
                Some(Tensor::from_vec(dw, w.shape(), dev)?),
                Some(Tensor::from_vec(db, b.shape(), dev)?),
            ))
        }
        match x.dtype() {
            DType::F32 => go::<f32>(self, x, w, b, res, grad),
            DType::F64 => go::<f64>(self, x, w, b, res, grad),
            dt => Err(err(format!(
                "conv3x3 supports f32 and f64 only, got {dt:?}"
            ))),
        }
    }
}

/// `relu?(conv3x3_same(x, w) + b)`: `x` `(B, H, W, Cin)`, `w` `(9 Cin, Cout)` with row
/// `(ky * 3 + kx) * Cin + ci` (Keras' HWIO kernel flattened), `b` `(Cout,)`; result
/// `(B, H, W, Cout)`. With `relu`, the derivative at 0 is taken as 0.
/// Computed by [`ConvAlgo::Auto`] (Winograd F(4x4, 3x3) for 16 or more channels in and out).
pub fn conv3x3_fused(x: &Tensor, w: &Tensor, b: &Tensor, relu: bool) -> Result<Tensor> {
    conv3x3_with(x, w, b, relu, ConvAlgo::Auto)
}

/// [`conv3x3_fused`] computed by a given algorithm (all agree to rounding; tested).
pub fn conv3x3_with(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    relu: bool,
    algo: ConvAlgo,
) -> Result<Tensor> {
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, Conv3x3 { relu, algo })
}

/// 2x2 max pooling with stride 2 (see [`max_pool2`]).
struct MaxPool2;

/// Which of a window's four values `[v00, v01, v10, v11]` wins: the first maximum in row-major
/// window order (as TensorFlow). A tournament of the two rows (the first of equal values wins
/// each match), which gives the same index as a scan for the first maximum but compiles to
/// conditional moves: the scan's branches on random data cost a misprediction per window.
#[inline]
fn pool_winner<T: WithDType>(v: [T; 4]) -> usize {
    let top = (v[1] > v[0]) as usize;
    let bottom = 2 + (v[3] > v[2]) as usize;
    if v[bottom] > v[top] {
        bottom
    } else {
        top
    }
}

/// The four input rows of channels under output pixel `(bi, y, xo)`, as offsets in the NHWC
/// input, in row-major window order.
#[inline]
fn pool_offsets(
    (bi, y, xo): (usize, usize, usize),
    (h, w, c): (usize, usize, usize),
) -> [usize; 4] {
    let i00 = ((bi * h + 2 * y) * w + 2 * xo) * c;
    [i00, i00 + c, i00 + w * c, i00 + w * c + c]
}

fn pool_fwd<T: WithDType>(x: &[T], (b, h, w, c): (usize, usize, usize, usize)) -> Vec<T> {
    let (h2, w2) = (h / 2, w / 2);
    par_filled(b * h2 * w2 * c, w2 * c, |by, dst| {
        let (bi, y) = (by / h2, by % h2);
        for xo in 0..w2 {
            let [a, bb, cc, d] = pool_offsets((bi, y, xo), (h, w, c)).map(|o| &x[o..][..c]);
            for (ch, out) in dst[xo * c..][..c].iter_mut().enumerate() {
                let v = [a[ch], bb[ch], cc[ch], d[ch]];
                out.write(v[pool_winner(v)]);
            }
        }
    })
}

fn pool_bwd<T: WithDType>(x: &[T], g: &[T], (b, h, w, c): (usize, usize, usize, usize)) -> Vec<T> {
    let (h2, w2) = (h / 2, w / 2);
    // Output row (bi, y) owns input rows 2y and 2y + 1 of image bi: one contiguous chunk, each
    // element written once (the gradient at the window's winner, zero at the other three; a
    // zero fill first and then the winners was a second pass over the layer).
    par_filled(b * h * w * c, 2 * w * c, |by, dst| {
        let (bi, y) = (by / h2, by % h2);
        let base = (bi * h + 2 * y) * w * c;
        for xo in 0..w2 {
            let offs = pool_offsets((bi, y, xo), (h, w, c));
            let [a, bb, cc, d] = offs.map(|o| &x[o..][..c]);
            let gr = &g[((bi * h2 + y) * w2 + xo) * c..][..c];
            for ch in 0..c {
                let k = pool_winner([a[ch], bb[ch], cc[ch], d[ch]]);
                // An indexed pick, not a branch (which the data would mispredict).
                let pick = [T::zero(), gr[ch]];
                for (j, o) in offs.iter().enumerate() {
                    dst[o - base + ch].write(pick[(j == k) as usize]);
                }
            }
        }
    })
}

impl CustomOp1 for MaxPool2 {
    fn name(&self) -> &'static str {
        "max_pool2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = l.shape().dims4()?;
        if d.1 % 2 != 0 || d.2 % 2 != 0 {
            return Err(err(format!("max_pool2 needs even H and W, got {d:?}")));
        }
        let shape = Shape::from((d.0, d.1 / 2, d.2 / 2, d.3));
        let st = match s {
            CpuStorage::F32(_) => CpuStorage::F32(pool_fwd::<f32>(slice_of(s, l)?, d)),
            CpuStorage::F64(_) => CpuStorage::F64(pool_fwd::<f64>(slice_of(s, l)?, d)),
            _ => return Err(err("max_pool2 supports f32 and f64 only")),
        };
        Ok((st, shape))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let d = arg.dims4()?;
        let dx = float_tensor_like!("max_pool2", arg, |T| {
            with_data::<T, _>(arg, |x| with_data(grad, |g| Ok(pool_bwd(x, g, d))))?
        });
        Ok(Some(dx))
    }
}

/// 2x2 max pooling of `(B, H, W, C)` (H, W even) giving `(B, H/2, W/2, C)`; the gradient goes to
/// the first maximum of each window in row-major order, as Keras' MaxPool.
pub fn max_pool2(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(MaxPool2)
}

/// Nearest-neighbour 2x upsampling (see [`upsample2`]).
struct Upsample2;

fn up_fwd<T: WithDType>(x: &[T], (b, h, w, c): (usize, usize, usize, usize)) -> Vec<T> {
    let (h2, w2) = (2 * h, 2 * w);
    par_filled(b * h2 * w2 * c, w2 * c, |by, dst| {
        let (bi, y) = (by / h2, by % h2);
        for xo in 0..w2 {
            write_from(
                &mut dst[xo * c..][..c],
                &x[((bi * h + y / 2) * w + xo / 2) * c..][..c],
            );
        }
    })
}

fn up_bwd<T: WithDType>(g: &[T], (b, h, w, c): (usize, usize, usize, usize)) -> Vec<T> {
    let w2 = 2 * w;
    par_filled(b * h * w * c, w * c, |by, dst| {
        let (bi, y) = (by / h, by % h);
        // The two source rows of this output row; pixel 2x + dx of each.
        let r0 = &g[(bi * 2 * h + 2 * y) * w2 * c..][..w2 * c];
        let r1 = &g[(bi * 2 * h + 2 * y + 1) * w2 * c..][..w2 * c];
        for (x, out) in dst.chunks_mut(c).enumerate() {
            let (a, b) = (&r0[2 * x * c..][..2 * c], &r1[2 * x * c..][..2 * c]);
            let (a0, a1) = a.split_at(c);
            let (b0, b1) = b.split_at(c);
            for (ch, o) in out.iter_mut().enumerate() {
                o.write(a0[ch] + a1[ch] + b0[ch] + b1[ch]);
            }
        }
    })
}

impl CustomOp1 for Upsample2 {
    fn name(&self) -> &'static str {
        "upsample2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = l.shape().dims4()?;
        let shape = Shape::from((d.0, 2 * d.1, 2 * d.2, d.3));
        let st = match s {
            CpuStorage::F32(_) => CpuStorage::F32(up_fwd::<f32>(slice_of(s, l)?, d)),
            CpuStorage::F64(_) => CpuStorage::F64(up_fwd::<f64>(slice_of(s, l)?, d)),
            _ => return Err(err("upsample2 supports f32 and f64 only")),
        };
        Ok((st, shape))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let d = arg.dims4()?;
        let dx = float_tensor_like!("upsample2", arg, |T| {
            with_data::<T, _>(grad, |g| Ok(up_bwd(g, d)))?
        });
        Ok(Some(dx))
    }
}

/// Nearest-neighbour 2x upsampling of `(B, H, W, C)` giving `(B, 2H, 2W, C)`; the gradient of
/// each input pixel is the sum of its four copies' gradients.
pub fn upsample2(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Upsample2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn rand_var(shape: &[usize], seed: u64) -> Var {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap()).unwrap()
    }

    /// The same convolution from generic candle ops (zero pad, nine shifted views, one matmul),
    /// differentiated by candle's autodiff.
    fn conv_reference(x: &Tensor, w: &Tensor, b: &Tensor, relu: bool) -> Tensor {
        let (bs, h, wd, cin) = x.dims4().unwrap();
        let cout = w.dim(1).unwrap();
        let xp = x
            .pad_with_zeros(1, 1, 1)
            .unwrap()
            .pad_with_zeros(2, 1, 1)
            .unwrap();
        let mut taps = Vec::new();
        for ky in 0..3 {
            for kx in 0..3 {
                taps.push(xp.narrow(1, ky, h).unwrap().narrow(2, kx, wd).unwrap());
            }
        }
        let col = Tensor::cat(&taps, 3)
            .unwrap()
            .reshape((bs * h * wd, 9 * cin))
            .unwrap();
        let y = col
            .matmul(w)
            .unwrap()
            .broadcast_add(b)
            .unwrap()
            .reshape((bs, h, wd, cout))
            .unwrap();
        if relu {
            y.relu().unwrap()
        } else {
            y
        }
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    /// Checks the gradient of `loss(vars)` with respect to each var against central finite
    /// differences at `probes` random entries per var: `|analytic - fd| <= 1e-6 max(1, |fd|)`.
    fn check_finite_differences(vars: &[Var], loss: impl Fn(&[Tensor]) -> Tensor, seed: u64) {
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let grads = loss(&ts).backward().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let eps = 1e-6;
        for (i, v) in vars.iter().enumerate() {
            let g: Vec<f64> = grads
                .get(v)
                .expect("every var gets a gradient")
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let base: Vec<f64> = v.flatten_all().unwrap().to_vec1().unwrap();
            for _ in 0..12 {
                let j = rng.random_range(0..base.len());
                let eval = |d: f64| {
                    let mut p = base.clone();
                    p[j] += d;
                    let mut args = ts.clone();
                    args[i] = Tensor::from_vec(p, v.shape(), &Device::Cpu).unwrap();
                    loss(&args).to_scalar::<f64>().unwrap()
                };
                let fd = (eval(eps) - eval(-eps)) / (2.0 * eps);
                assert!(
                    (g[j] - fd).abs() <= 1e-6 * fd.abs().max(1.0),
                    "input {i} entry {j}: analytic gradient {} vs finite difference {fd}",
                    g[j]
                );
            }
        }
    }

    /// The tournament picks the first maximum of every window, ties included (all 4^4 windows
    /// of values 0-3), as the scan it replaced.
    #[test]
    fn pool_winner_is_the_first_maximum() {
        for code in 0..256usize {
            let v: [f64; 4] = std::array::from_fn(|k| ((code >> (2 * k)) & 3) as f64);
            let mut first = 0;
            for k in 1..4 {
                if v[k] > v[first] {
                    first = k;
                }
            }
            assert_eq!(pool_winner(v), first, "window {v:?}");
        }
    }

    /// The masked ReLU equals the select `if r > 0 { v } else { 0 }` bit for bit for f32 and f64
    /// (zeros of either sign, NaN and infinities in `r`), and in the generic path.
    #[test]
    fn keep_where_positive_equals_the_select() {
        fn check<T: WithDType>(r: &[T], v: &[T]) {
            let mut d = vec![MaybeUninit::<T>::uninit(); r.len()];
            keep_where_positive(r, v, &mut d);
            for ((d, r), v) in d.iter().zip(r).zip(v) {
                // SAFETY: keep_where_positive wrote every element.
                let d = unsafe { d.assume_init() };
                let want = if *r > T::zero() { *v } else { T::zero() };
                assert!(
                    d.to_f64().to_bits() == want.to_f64().to_bits(),
                    "{r} {v}: {d}"
                );
            }
        }
        let r = [
            1.5,
            -2.0,
            0.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e-300,
        ];
        let v = [-3.0, 4.0, 5.0, 6.0, 7.0, -0.0, 8.0, 9.0];
        check::<f64>(&r, &v);
        let (r32, v32): (Vec<f32>, Vec<f32>) = (
            r.iter().map(|&x| x as f32).collect(),
            v.iter().map(|&x| x as f32).collect(),
        );
        check::<f32>(&r32, &v32);
        check::<i64>(&[3, -1, 0, 7], &[1, 2, 3, -4]);
    }

    #[test]
    fn conv3x3_forward_and_gradients_match_candle_autodiff() {
        // (Cin, Cout) = (3, 4) takes the flipped-kernel input gradient, (1, 5) the col2im one.
        for (cin, cout) in [(3, 4), (1, 5)] {
            for relu in [false, true] {
                let x = rand_var(&[2, 6, 5, cin], 1);
                let w = rand_var(&[9 * cin, cout], 2);
                let b = rand_var(&[cout], 3);
                let r = rand_var(&[2, 6, 5, cout], 4);
                let got = conv3x3_fused(&x, &w, &b, relu).unwrap();
                let want = conv_reference(&x, &w, &b, relu);
                assert!(max_abs_diff(&got, &want) < 1e-12);
                let gg = (got * r.as_tensor())
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                let gw = (want * r.as_tensor())
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                for v in [&x, &w, &b] {
                    let e = max_abs_diff(gg.get(v).unwrap(), gw.get(v).unwrap());
                    assert!(
                        e < 1e-12,
                        "{cin}->{cout} relu {relu}: gradient differs by {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn no_input_gradient_for_an_untracked_input_and_the_same_kernel_gradient() {
        // Every algorithm skips dx when the input is a plain tensor (the network's input); the
        // kernel and bias gradients are those of a tracked input.
        for (cin, cout, algo) in [
            (1, 8, ConvAlgo::Im2col),
            (16, 16, ConvAlgo::WinogradF4),
            (16, 16, ConvAlgo::WinogradF2),
            (32, 1, ConvAlgo::Direct),
        ] {
            let xv = rand_var(&[2, 8, 8, cin], 1);
            let x = xv.as_tensor().detach();
            assert!(!x.track_op());
            let w = rand_var(&[9 * cin, cout], 2);
            let b = rand_var(&[cout], 3);
            let r = rand_var(&[2, 8, 8, cout], 4);
            let loss = |x: &Tensor| {
                (conv3x3_with(x, &w, &b, true, algo).unwrap() * r.as_tensor())
                    .unwrap()
                    .sum_all()
                    .unwrap()
            };
            let tracked = loss(xv.as_tensor()).backward().unwrap();
            let plain = loss(&x).backward().unwrap();
            assert!(tracked.get(&xv).is_some() && plain.get(&x).is_none());
            for v in [&w, &b] {
                let e = max_abs_diff(tracked.get(v).unwrap(), plain.get(v).unwrap());
                assert!(e == 0.0, "{algo:?}: gradient differs by {e}");
            }
        }
    }

    #[test]
    fn conv3x3_gradients_match_finite_differences() {
        for (cin, cout) in [(2, 3), (1, 4)] {
            for relu in [false, true] {
                let vars = [
                    rand_var(&[2, 5, 4, cin], 11),
                    rand_var(&[9 * cin, cout], 12),
                    rand_var(&[cout], 13),
                ];
                let r = rand_var(&[2, 5, 4, cout], 14).as_tensor().clone();
                check_finite_differences(
                    &vars,
                    |t| {
                        let y = conv3x3_fused(&t[0], &t[1], &t[2], relu).unwrap();
                        (y * &r).unwrap().sum_all().unwrap()
                    },
                    15,
                );
            }
        }
    }

    /// Forward value and the gradients of `sum(y * r)` with respect to x, w and b.
    fn conv_and_grads(
        x: &Var,
        w: &Var,
        b: &Var,
        r: &Tensor,
        relu: bool,
        algo: ConvAlgo,
    ) -> [Tensor; 4] {
        let y = conv3x3_with(x, w, b, relu, algo).unwrap();
        let g = (&y * r).unwrap().sum_all().unwrap().backward().unwrap();
        let gv = |v: &Var| g.get(v).unwrap().clone();
        [y, gv(x), gv(w), gv(b)]
    }

    #[test]
    fn winograd_and_direct_match_im2col_in_f64() {
        // Sizes that leave partial tiles at the right and bottom edges (F4: 7 = 4 + 3, 9 = 8 +
        // 1), channel counts across the 16-channel blocks, and the network's case (>= 16); for
        // the direct convolution both sides wide (more outputs; more inputs, with and without a
        // remainder after the 16-lane dot products).
        for (h, wd, cin, cout) in [
            (7, 9, 3, 5),
            (8, 8, 17, 20),
            (5, 6, 16, 1),
            (1, 3, 2, 2),
            (24, 20, 3, 2),
            (6, 5, 37, 3),
            (4, 4, 32, 1),
        ] {
            let x = rand_var(&[2, h, wd, cin], 41);
            let w = rand_var(&[9 * cin, cout], 42);
            let b = rand_var(&[cout], 43);
            let r = rand_var(&[2, h, wd, cout], 44).as_tensor().clone();
            for relu in [false, true] {
                let want = conv_and_grads(&x, &w, &b, &r, relu, ConvAlgo::Im2col);
                for algo in [ConvAlgo::WinogradF2, ConvAlgo::WinogradF4, ConvAlgo::Direct] {
                    let got = conv_and_grads(&x, &w, &b, &r, relu, algo);
                    for (k, (a, e)) in got.iter().zip(&want).enumerate() {
                        let scale = max_abs_diff(e, &e.zeros_like().unwrap()).max(1.0);
                        let d = max_abs_diff(a, e);
                        assert!(
                            d <= 1e-12 * scale,
                            "{algo:?} {h}x{wd} {cin}->{cout} relu {relu}: output {k} differs by \
                             {d} (scale {scale})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn winograd_gradients_match_finite_differences() {
        for algo in [ConvAlgo::WinogradF2, ConvAlgo::WinogradF4] {
            let vars = [
                rand_var(&[2, 6, 5, 3], 51),
                rand_var(&[27, 4], 52),
                rand_var(&[4], 53),
            ];
            let r = rand_var(&[2, 6, 5, 4], 54).as_tensor().clone();
            check_finite_differences(
                &vars,
                |t| {
                    let y = conv3x3_with(&t[0], &t[1], &t[2], true, algo).unwrap();
                    (y * &r).unwrap().sum_all().unwrap()
                },
                55,
            );
        }
    }

    /// The f32 Winograd convolution against the f64 im2col one (relative to the largest
    /// magnitude of each output: f32 rounding of sums of ~9 Cin terms of size ~1, amplified by
    /// the transforms' coefficients up to 8 for F4), and bit-for-bit equal on 1 and 3 threads.
    #[test]
    fn winograd_f32_is_accurate_and_independent_of_threads() {
        // The second shape has many tiles per weight: its kernel gradient is summed chunk by
        // chunk in fixed partial sums (winograd::Wino::kernel_grad_chunked); the third more
        // kernel elements than the kernel transforms take per task (winograd::KERNEL_COLUMNS).
        for (shape, cout) in [
            ([3, 12, 10, 24], 32),
            ([4, 40, 36, 5], 6),
            ([2, 9, 7, 40], 33),
        ] {
            f32_conv_against_f64(shape, cout);
        }
    }

    fn f32_conv_against_f64(shape: [usize; 4], cout: usize) {
        let cin = shape[3];
        let (x, w, b) = (
            rand_var(&shape, 61),
            rand_var(&[9 * cin, cout], 62),
            rand_var(&[cout], 63),
        );
        let r = rand_var(&[shape[0], shape[1], shape[2], cout], 64)
            .as_tensor()
            .clone();
        let want = conv_and_grads(&x, &w, &b, &r, true, ConvAlgo::Im2col);
        let f32v = |v: &Var| Var::from_tensor(&v.to_dtype(DType::F32).unwrap()).unwrap();
        let (x32, w32, b32, r32) = (
            f32v(&x),
            f32v(&w),
            f32v(&b),
            r.to_dtype(DType::F32).unwrap(),
        );
        for (algo, tol) in [
            (ConvAlgo::WinogradF2, 2e-6),
            (ConvAlgo::WinogradF4, 2e-5),
            (ConvAlgo::Direct, 2e-6),
        ] {
            let on = |threads: usize| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap()
                    .install(|| conv_and_grads(&x32, &w32, &b32, &r32, true, algo))
            };
            let (one, three) = (on(1), on(3));
            for (k, ((a, c), e)) in one.iter().zip(&three).zip(&want).enumerate() {
                let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                assert_eq!(
                    flat(a),
                    flat(c),
                    "{algo:?} {shape:?} output {k}: 1 and 3 threads differ"
                );
                let a64 = a.to_dtype(DType::F64).unwrap();
                let scale = max_abs_diff(e, &e.zeros_like().unwrap()).max(1.0);
                let d = max_abs_diff(&a64, e);
                assert!(
                    d <= tol * scale,
                    "{algo:?} {shape:?} output {k}: f32 differs from f64 im2col by {d} (scale \
                     {scale})"
                );
            }
        }
    }

    #[test]
    fn pool_and_upsample_gradients_match_finite_differences() {
        let x = [rand_var(&[2, 4, 6, 3], 21)];
        let r = rand_var(&[2, 2, 3, 3], 22).as_tensor().clone();
        check_finite_differences(
            &x,
            |t| (max_pool2(&t[0]).unwrap() * &r).unwrap().sum_all().unwrap(),
            23,
        );
        let r = rand_var(&[2, 8, 12, 3], 24).as_tensor().clone();
        check_finite_differences(
            &x,
            |t| (upsample2(&t[0]).unwrap() * &r).unwrap().sum_all().unwrap(),
            25,
        );
    }

    #[test]
    fn pool_gradient_goes_to_the_first_maximum_of_a_tie() {
        let x = Var::from_vec(vec![1.0f64, 2.0, 2.0, 0.0], (1, 2, 2, 1), &Device::Cpu).unwrap();
        let y = max_pool2(&x).unwrap();
        assert_eq!(y.flatten_all().unwrap().to_vec1::<f64>().unwrap(), [2.0]);
        let g = y.sum_all().unwrap().backward().unwrap();
        let gx: Vec<f64> = g.get(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(gx, [0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn f32_conv_matches_f64_and_repeats_bit_for_bit() {
        let x = rand_var(&[3, 8, 8, 5], 31);
        let w = rand_var(&[45, 7], 32);
        let b = rand_var(&[7], 33);
        let f32s = |t: &Var| t.to_dtype(DType::F32).unwrap();
        let run = || {
            let (x, w, b) = (
                Var::from_tensor(&f32s(&x)).unwrap(),
                Var::from_tensor(&f32s(&w)).unwrap(),
                Var::from_tensor(&f32s(&b)).unwrap(),
            );
            let y = conv3x3_fused(&x, &w, &b, true).unwrap();
            let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            (flat(&y), flat(g.get(&x).unwrap()), flat(g.get(&w).unwrap()))
        };
        let a = run();
        assert_eq!(a, run());
        let y64 = conv3x3_fused(&x, &w, &b, true).unwrap();
        let y64: Vec<f64> = y64.flatten_all().unwrap().to_vec1().unwrap();
        let e =
            a.0.iter()
                .zip(&y64)
                .map(|(p, q)| (*p as f64 - q).abs())
                .fold(0.0, f64::max);
        assert!(e < 1e-5, "f32 and f64 convolutions differ by {e}");
    }
}
