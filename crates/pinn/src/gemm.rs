//! Matrix products with `gemm` in fixed blocks: by rows of the destination ([`matmul_rows`])
//! or by fixed slices of a long inner dimension summed in order ([`matmul_inner_split`]), so the
//! results do not depend on the thread count; and the element-wise sum in order of fixed partial
//! sums ([`sum_in_order`]). The bottom of the kernels: the convolutions (im2col, Winograd,
//! direct) build on it, and it on nothing of theirs.

use crate::raw;
use candle_core::WithDType;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Rows of `dst` per task in [`matmul_rows`].
pub(crate) const ROWS_PER_TASK: usize = 2048;

/// Partitions of the inner dimension in [`matmul_inner_split`].
const INNER_PARTS: usize = 8;

/// [`matmul_with`] in parallel blocks of [`ROWS_PER_TASK`] rows of `dst` (and `lhs`), one
/// single-threaded gemm each. The im2col products are thin (N = 1-4 at the heads, K = 9 or 36
/// at the first layer): gemm's own threading ran them on one thread, the caller's, while
/// the pool waited. The blocks depend only on the shapes, so the results do not depend on the
/// thread count.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_rows<T: WithDType>(
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
pub(crate) fn sum_in_order<T: WithDType>(parts: &[Vec<T>], n: usize) -> Vec<T> {
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
pub(crate) fn matmul_inner_split<T: WithDType>(
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
pub(crate) fn matmul_with<T: WithDType>(
    mnk: (usize, usize, usize),
    dst: &mut [T],
    accumulate: bool,
    lhs: &[T],
    lhs_s: (usize, usize),
    rhs: &[T],
    rhs_s: (usize, usize),
    par: gemm::Parallelism,
) {
    // dst is initialised, so accumulating reads it soundly; gemm writes only values.
    raw::gemm(
        mnk,
        raw::as_uninit_mut(dst),
        accumulate,
        lhs,
        lhs_s,
        rhs,
        rhs_s,
        par,
    )
}

/// `dst (m x n) = lhs (m x k) rhs (k x n)` into memory not yet written (gemm does not read its
/// destination unless it accumulates): no zero fill of a buffer about to be overwritten.
pub(crate) fn matmul_into<T: WithDType>(
    mnk: (usize, usize, usize),
    dst: &mut [MaybeUninit<T>],
    lhs: &[T],
    lhs_s: (usize, usize),
    rhs: &[T],
    rhs_s: (usize, usize),
) {
    raw::gemm(
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
