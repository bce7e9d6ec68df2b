//! Winograd minimal-filtering kernels F(m x m, 3 x 3) of the 3x3 'same' convolution on NHWC
//! slices: the forward convolution (fused with bias and ReLU; also used for the input gradient,
//! which is the convolution of the output gradient with the flipped, transposed kernel) and the
//! kernel gradient, both computed in the transform domain.
//!
//! Why: with `A = m + 2` points per dimension, each `m x m` output tile costs `A^2` products per
//! (input, output) channel pair instead of `9 m^2`: 2.25x fewer multiplications for F(2x2, 3x3)
//! and 4x fewer for F(4x4, 3x3), done as `A^2` matrix products (one per transform point) of
//! `tiles x Cin` by `Cin x Cout`. Two ways to run them, each layer taking the one that moves
//! fewer bytes: in chunks of tile rows sized to stay in L2 (the transformed input and output of
//! a chunk are a few hundred KiB; one chunk per rayon task, a single-threaded gemm per
//! transform point, but every chunk reads the whole transformed kernel), or over the whole
//! layer (every tile transformed first, then one gemm per point over all tiles). The kernel
//! gradient likewise: chunk by chunk into 8 fixed partial sums, or over the whole layer.
//!
//! Conventions (Lavin and Gray 2016): `Y = A^T [(G w G^T) . (B^T d B)] A` for an `A x A` input
//! tile `d` starting one pixel above and left of the output tile (the 'same' padding), with zero
//! outside the image; tiles past the image edge are computed and their outside pixels dropped.
//! Transform-domain arrays are `[point][tile][channel]`, point `xi = i * A + j`.
//!
//! Determinism: every output pixel is written by one task; sums run over fixed index orders
//! (transform rows in index order, zero coefficients skipped); chunks depend only on the
//! shapes and so does the choice of way; each gemm is single-threaded; the kernel gradient's
//! partial sums are fixed runs of chunks, added in order. So results do not depend on the
//! thread count. The
//! channel loops are the same scalar code compiled with and without AVX2 / AVX-512 (selected
//! at run time); Rust never contracts `a * b + c` into an FMA, so every path gives the same
//! bits. F(4x4, 3x3) has its one-dimensional transforms factored by hand (shared sums and
//! differences: about half the arithmetic of the matrices' rows); other algorithms run
//! loops over their matrices' coefficients ([`Points`]).

use crate::gemm::{matmul_into, matmul_with, sum_in_order};
use crate::raw::{self, Disjoint};
use candle_core::WithDType;
use rayon::prelude::*;
use std::marker::PhantomData;
use std::mem::MaybeUninit;

/// Channels per vector block in the transforms.
const CB: usize = 16;

/// Bytes of transformed input plus output per chunk (the L2 is 2 MiB per core here).
const CHUNK_BYTES: usize = 768 << 10;

/// Tiles per chunk of [`Wino::kernel_grad_chunked`] (at least; whole tile rows): 64 tiles
/// of 64 + 64 channels are 1.2 MB of transform-domain data, within L2, and give the products
/// a 64-long inner dimension.
const KG_CHUNK_TILES: usize = 64;

/// Partial sums of [`Wino::kernel_grad_chunked`] (fixed, so the result does not depend on the
/// thread count).
const KG_PARTS: usize = 8;

/// The fewest tiles per chunk (see [`rows_per_chunk`]).
const MIN_CHUNK_TILES: usize = 32;

/// The matrices of a Winograd algorithm F(M x M, 3 x 3) with `A = M + 2` points per dimension,
/// as compile-time constants, and its one-dimensional transforms. By default those loop over
/// the coefficients; the compiler does not unroll them under AVX-512, so every coefficient is
/// still loaded, broadcast and tested against zero at run time. [`F4Points`] overrides them
/// with factored formulas (the input transform took half the time; bench/README.md).
pub trait Points<const M: usize, const A: usize>: Send + Sync + 'static {
    /// Input transform `B^T` (A x A).
    const BT: [[f64; A]; A];
    /// Kernel transform `G` (A x 3).
    const G: [[f64; 3]; A];
    /// Output transform `A^T` (M x A).
    const AT: [[f64; A]; M];

    /// `out[i * os + oo] = sum_k BT[i][k] s[k * st + so]`: the input transform along one
    /// dimension (by default the coefficient loops; an algorithm may give a factored form).
    #[inline(always)]
    fn tr_in<T: WithDType>(
        s: &[[T; CB]],
        st: (usize, usize),
        out: &mut [[T; CB]],
        o: (usize, usize),
    ) {
        tr_rows(&cast(&Self::BT), s, st, out, o)
    }

    /// `out[i * os + oo] = sum_k AT[i][k] s[k * st + so]`: the output transform along one
    /// dimension.
    #[inline(always)]
    fn tr_out<T: WithDType>(
        s: &[[T; CB]],
        st: (usize, usize),
        out: &mut [[T; CB]],
        o: (usize, usize),
    ) {
        tr_rows(&cast(&Self::AT), s, st, out, o)
    }

    /// `out[i * os + oo] = sum_k AT[k][i] s[k * st + so]`: the output-gradient transform (the
    /// adjoint of the output transform) along one dimension.
    #[inline(always)]
    fn tr_grad<T: WithDType>(
        s: &[[T; CB]],
        st: (usize, usize),
        out: &mut [[T; CB]],
        o: (usize, usize),
    ) {
        tr_rows::<T, A, M>(&transposed(&Self::AT), s, st, out, o)
    }
}

/// F(2x2, 3x3), points 0, 1, -1, infinity: every coefficient is 0, +-1 or +-1/2.
pub struct F2Points;

impl Points<2, 4> for F2Points {
    const BT: [[f64; 4]; 4] = [
        [1.0, 0.0, -1.0, 0.0],
        [0.0, 1.0, 1.0, 0.0],
        [0.0, -1.0, 1.0, 0.0],
        [0.0, 1.0, 0.0, -1.0],
    ];
    const G: [[f64; 3]; 4] = [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ];
    const AT: [[f64; 4]; 2] = [[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, -1.0, -1.0]];
}

/// F(4x4, 3x3), points 0, 1, -1, 2, -2, infinity (the matrices of Lavin and Gray; oneDNN's
/// CPU Winograd uses the same points).
pub struct F4Points;

impl Points<4, 6> for F4Points {
    const BT: [[f64; 6]; 6] = [
        [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
        [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
        [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
        [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
        [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
        [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
    ];
    const G: [[f64; 3]; 6] = [
        [1.0 / 4.0, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];
    const AT: [[f64; 6]; 4] = [
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
        [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
        [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
    ];

    // The transforms factored by hand (shared sums and differences, no zero terms, no
    // multiplications by +-1): the coefficient loops above compiled to runtime tests of every
    // coefficient against zero and a multiply-add for each, half the input transform's time.

    #[inline(always)]
    fn tr_in<T: WithDType>(
        s: &[[T; CB]],
        (st, so): (usize, usize),
        out: &mut [[T; CB]],
        (os, oo): (usize, usize),
    ) {
        let (two, four, five) = (T::from_f64(2.0), T::from_f64(4.0), T::from_f64(5.0));
        let d: [&[T; CB]; 6] = std::array::from_fn(|k| &s[k * st + so]);
        let mut v = [[T::zero(); CB]; 6];
        for l in 0..CB {
            let p = d[4][l] - d[2][l];
            let q = two * (d[3][l] - d[1][l]);
            v[0][l] = four * d[0][l] - five * d[2][l] + d[4][l];
            v[1][l] = (d[3][l] + d[4][l]) - four * (d[1][l] + d[2][l]);
            v[2][l] = (d[4][l] - d[3][l]) + four * (d[1][l] - d[2][l]);
            v[3][l] = p + q;
            v[4][l] = p - q;
            v[5][l] = four * d[1][l] - five * d[3][l] + d[5][l];
        }
        for (i, vi) in v.iter().enumerate() {
            out[i * os + oo] = *vi;
        }
    }

    #[inline(always)]
    fn tr_out<T: WithDType>(
        s: &[[T; CB]],
        (st, so): (usize, usize),
        out: &mut [[T; CB]],
        (os, oo): (usize, usize),
    ) {
        let (two, four, eight) = (T::from_f64(2.0), T::from_f64(4.0), T::from_f64(8.0));
        let z: [&[T; CB]; 6] = std::array::from_fn(|k| &s[k * st + so]);
        let mut y = [[T::zero(); CB]; 4];
        for l in 0..CB {
            let a = z[1][l] + z[2][l];
            let b = z[1][l] - z[2][l];
            let c = z[3][l] + z[4][l];
            let d = z[3][l] - z[4][l];
            y[0][l] = z[0][l] + a + c;
            y[1][l] = b + two * d;
            y[2][l] = a + four * c;
            y[3][l] = b + eight * d + z[5][l];
        }
        for (i, yi) in y.iter().enumerate() {
            out[i * os + oo] = *yi;
        }
    }

    #[inline(always)]
    fn tr_grad<T: WithDType>(
        s: &[[T; CB]],
        (st, so): (usize, usize),
        out: &mut [[T; CB]],
        (os, oo): (usize, usize),
    ) {
        let (two, four, eight) = (T::from_f64(2.0), T::from_f64(4.0), T::from_f64(8.0));
        let g: [&[T; CB]; 4] = std::array::from_fn(|k| &s[k * st + so]);
        let mut o = [[T::zero(); CB]; 6];
        for l in 0..CB {
            let e = g[0][l] + g[2][l];
            let f = g[1][l] + g[3][l];
            let e2 = g[0][l] + four * g[2][l];
            let f2 = two * g[1][l] + eight * g[3][l];
            o[0][l] = g[0][l];
            o[1][l] = e + f;
            o[2][l] = e - f;
            o[3][l] = e2 + f2;
            o[4][l] = e2 - f2;
            o[5][l] = g[3][l];
        }
        for (i, oi) in o.iter().enumerate() {
            out[i * os + oo] = *oi;
        }
    }
}

/// A Winograd algorithm F(M x M, 3 x 3) with `A = M + 2` points per dimension and the matrices
/// of `P`: the convolution and kernel-gradient entry points.
pub struct Wino<P, const M: usize, const A: usize>(std::marker::PhantomData<P>);

/// F(2x2, 3x3) ([`F2Points`]).
pub const F2: Wino<F2Points, 2, 4> = Wino(std::marker::PhantomData);

/// F(4x4, 3x3) ([`F4Points`]).
pub const F4: Wino<F4Points, 4, 6> = Wino(std::marker::PhantomData);

/// Fills the transform-domain values of a range of tile rows.
type ChunkFill<'a, T> = dyn Fn(std::ops::Range<usize>, &mut [&mut [MaybeUninit<T>]]) + Sync + 'a;

/// NHWC dimensions `(B, H, W, C)`.
type Dims = (usize, usize, usize, usize);

/// Tile grid of an image: tile rows per image and tiles per tile row.
fn grid<const M: usize>(h: usize, w: usize) -> (usize, usize) {
    (h.div_ceil(M), w.div_ceil(M))
}

/// Tile rows per chunk for `cin` input and `cout` output channels: about [`CHUNK_BYTES`] of
/// transform-domain data but at least [`MIN_CHUNK_TILES`] tiles (so the transformed kernel,
/// packed once per chunk and point, is used enough), and at least 8 chunks when there are
/// that many tile rows.
fn rows_per_chunk<T, const A: usize>(ntx: usize, rows: usize, cin: usize, cout: usize) -> usize {
    let per_row = A * A * ntx * (cin + cout) * std::mem::size_of::<T>();
    (CHUNK_BYTES / per_row.max(1))
        .max(MIN_CHUNK_TILES.div_ceil(ntx))
        .min(rows.div_ceil(8))
        .max(1)
}

/// The coefficients of a matrix in `T`.
#[inline(always)]
fn cast<T: WithDType, const R: usize, const C: usize>(m: &[[f64; C]; R]) -> [[T; C]; R] {
    m.map(|r| r.map(T::from_f64))
}

/// The transpose of a matrix, in `T` (`A` from `A^T`).
#[inline(always)]
fn transposed<T: WithDType, const R: usize, const C: usize>(m: &[[f64; C]; R]) -> [[T; R]; C] {
    std::array::from_fn(|i| std::array::from_fn(|j| T::from_f64(m[j][i])))
}

/// `dst = src[..cb]`, zero-padded to [`CB`] lanes (a fixed-size copy in the common full case:
/// a variable-length one is a `memmove` call per 64 bytes).
#[inline(always)]
fn load<T: WithDType>(dst: &mut [T; CB], src: &[T], cb: usize) {
    if cb == CB {
        dst.copy_from_slice(&src[..CB]);
    } else {
        dst[..cb].copy_from_slice(&src[..cb]);
        dst[cb..].fill(T::zero());
    }
}

/// `dst[..cb] = src[..cb]` (see [`load`]).
#[inline(always)]
fn store<T: WithDType>(dst: &mut [MaybeUninit<T>], src: &[T; CB], cb: usize) {
    if cb == CB {
        raw::write_from(&mut dst[..CB], src);
    } else {
        raw::write_from(&mut dst[..cb], &src[..cb]);
    }
}

/// The first `n` elements of `v`, which the caller has written.
fn written<T>(v: &[MaybeUninit<T>], n: usize) -> &[T] {
    raw::assume_written(&v[..n])
}

/// `acc[l] = sum_k coef[k] * src[k * stride + off][l]` over nonzero `coef[k]`, `k` ascending.
/// (Fused multiply-adds, with +-1 coefficients added directly, measured ~10% slower in training.)
#[inline(always)]
fn comb<T: WithDType, const K: usize>(
    coef: &[T; K],
    src: &[[T; CB]],
    stride: usize,
    off: usize,
) -> [T; CB] {
    let mut acc = [T::zero(); CB];
    for (k, &c) in coef.iter().enumerate() {
        let s = &src[k * stride + off];
        if c == T::zero() {
            continue;
        }
        for l in 0..CB {
            acc[l] += c * s[l];
        }
    }
    acc
}

/// `out[i * os + oo] = sum_k mat[i][k] s[k * st + so]` for `i < R`, `k < K`: a transform along
/// one dimension by the rows of any matrix (F(4x4, 3x3) has its own, factored: these loops
/// compiled to a run-time test of every coefficient and a multiply-add for each, see
/// [`F4Points`]).
#[inline(always)]
fn tr_rows<T: WithDType, const R: usize, const K: usize>(
    mat: &[[T; K]; R],
    s: &[[T; CB]],
    (st, so): (usize, usize),
    out: &mut [[T; CB]],
    (os, oo): (usize, usize),
) {
    for (i, row) in mat.iter().enumerate() {
        out[i * os + oo] = comb(row, s, st, so);
    }
}

/// Input transform `V = B^T d B` of tile rows `rows` of `x` into `v`: `v[p]` holds transform
/// point `p` of those tiles, `[tile][c]`, tiles numbered from the first row of `rows` (so each
/// point's values are contiguous, whether `v` splits a chunk's buffer or the whole layer's).
#[inline(always)]
fn input_tiles<T: WithDType, const M: usize, const A: usize, P: Points<M, A>>(
    x: &[T],
    (_, h, w, c): Dims,
    rows: std::ops::Range<usize>,
    v: &mut [&mut [MaybeUninit<T>]],
) {
    let (nty, ntx) = grid::<M>(h, w);
    let mut d = [[T::zero(); CB]; 36];
    let mut tmp = [[T::zero(); CB]; 36];
    for r in rows.clone() {
        let (bi, ty) = (r / nty, r % nty);
        for tx in 0..ntx {
            let t = (r - rows.start) * ntx + tx;
            for c0 in (0..c).step_by(CB) {
                let cb = CB.min(c - c0);
                for i in 0..A {
                    let yy = (ty * M + i).wrapping_sub(1);
                    for j in 0..A {
                        let xx = (tx * M + j).wrapping_sub(1);
                        let dd = &mut d[i * A + j];
                        if yy < h && xx < w {
                            load(dd, &x[((bi * h + yy) * w + xx) * c + c0..], cb);
                        } else {
                            dd.fill(T::zero());
                        }
                    }
                }
                // tmp = B^T d (along y), then V = tmp B (along x).
                for j in 0..A {
                    P::tr_in(&d, (A, j), &mut tmp, (A, j));
                }
                for i in 0..A {
                    P::tr_in(&tmp, (1, i * A), &mut d, (1, i * A));
                }
                for (vp, dp) in v.iter_mut().zip(&d[..A * A]) {
                    store(&mut vp[t * c + c0..], dp, cb);
                }
            }
        }
    }
}

/// Output-gradient transform `A g A^T` (the adjoint of the output transform) of tile rows `rows`
/// of `g` (`(B, H, W, c)`, zero outside the image) into `m` (per point, as [`input_tiles`]).
#[inline(always)]
fn grad_tiles<T: WithDType, const M: usize, const A: usize, P: Points<M, A>>(
    g: &[T],
    (_, h, w, c): Dims,
    rows: std::ops::Range<usize>,
    m: &mut [&mut [MaybeUninit<T>]],
) {
    let (nty, ntx) = grid::<M>(h, w);
    let mut d = [[T::zero(); CB]; 16];
    let mut tmp = [[T::zero(); CB]; 24];
    let mut o = [[T::zero(); CB]; 36];
    for r in rows.clone() {
        let (bi, ty) = (r / nty, r % nty);
        for tx in 0..ntx {
            let t = (r - rows.start) * ntx + tx;
            for c0 in (0..c).step_by(CB) {
                let cb = CB.min(c - c0);
                for i in 0..M {
                    let yy = ty * M + i;
                    for j in 0..M {
                        let xx = tx * M + j;
                        let dd = &mut d[i * M + j];
                        if yy < h && xx < w {
                            load(dd, &g[((bi * h + yy) * w + xx) * c + c0..], cb);
                        } else {
                            dd.fill(T::zero());
                        }
                    }
                }
                // tmp (A x M) = A g, then A g A^T.
                for j in 0..M {
                    P::tr_grad(&d, (M, j), &mut tmp, (M, j));
                }
                for i in 0..A {
                    P::tr_grad(&tmp, (1, i * M), &mut o, (1, i * A));
                }
                for (mp, op) in m.iter_mut().zip(&o[..A * A]) {
                    store(&mut mp[t * c + c0..], op, cb);
                }
            }
        }
    }
}

/// Output transform `A^T Z A` of the tiles in `z` (`[A*A][tiles][c]`, point `p` from element
/// `p * zs`, tile rows `rows` from tile 0) plus
/// `bias`, ReLU if asked, into `y`, the slice of the `(B, H, W, c)` output that holds those tile
/// rows' pixels.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn output_tiles<T: WithDType, const M: usize, const A: usize, P: Points<M, A>>(
    z: &[T],
    zs: usize,
    bias: &[T],
    relu: bool,
    (_, h, w, c): Dims,
    rows: std::ops::Range<usize>,
    y: &mut [MaybeUninit<T>],
) {
    let (nty, ntx) = grid::<M>(h, w);
    let base = {
        let (bi, ty) = (rows.start / nty, rows.start % nty);
        (bi * h + ty * M) * w * c
    };
    let mut d = [[T::zero(); CB]; 36];
    let mut tmp = [[T::zero(); CB]; 24];
    let mut bv = [T::zero(); CB];
    for r in rows.clone() {
        let (bi, ty) = (r / nty, r % nty);
        for tx in 0..ntx {
            let t = (r - rows.start) * ntx + tx;
            for c0 in (0..c).step_by(CB) {
                let cb = CB.min(c - c0);
                load(&mut bv, &bias[c0..], cb);
                for (p, dd) in d.iter_mut().take(A * A).enumerate() {
                    load(dd, &z[p * zs + t * c + c0..], cb);
                }
                // tmp (M x A) = A^T Z, then A^T Z A.
                for j in 0..A {
                    P::tr_out(&d, (A, j), &mut tmp, (A, j));
                }
                for i in 0..M {
                    P::tr_out(&tmp, (1, i * A), &mut d, (1, i * M));
                }
                for i in 0..M {
                    let yy = ty * M + i;
                    if yy >= h {
                        break;
                    }
                    for j in 0..M {
                        let xx = tx * M + j;
                        if xx >= w {
                            break;
                        }
                        let mut o = d[i * M + j];
                        for l in 0..CB {
                            o[l] += bv[l];
                            if relu && o[l] < T::zero() {
                                o[l] = T::zero();
                            }
                        }
                        let off = ((bi * h + yy) * w + xx) * c + c0 - base;
                        store(&mut y[off..], &o, cb);
                    }
                }
            }
        }
    }
}

/// [`input_tiles`] as a kernel compiled for the CPU's vector instructions ([`raw::simd`]).
struct InputTiles<'a, 'b, T, const M: usize, const A: usize, P> {
    x: &'a [T],
    d: Dims,
    rows: std::ops::Range<usize>,
    v: &'a mut [&'b mut [MaybeUninit<T>]],
    points: PhantomData<P>,
}

impl<T: WithDType, const M: usize, const A: usize, P: Points<M, A>> raw::Kernel
    for InputTiles<'_, '_, T, M, A, P>
{
    #[inline(always)]
    fn run(self) {
        input_tiles::<T, M, A, P>(self.x, self.d, self.rows, self.v)
    }
}

/// [`grad_tiles`] as a kernel compiled for the CPU's vector instructions ([`raw::simd`]).
struct GradTiles<'a, 'b, T, const M: usize, const A: usize, P> {
    g: &'a [T],
    d: Dims,
    rows: std::ops::Range<usize>,
    m: &'a mut [&'b mut [MaybeUninit<T>]],
    points: PhantomData<P>,
}

impl<T: WithDType, const M: usize, const A: usize, P: Points<M, A>> raw::Kernel
    for GradTiles<'_, '_, T, M, A, P>
{
    #[inline(always)]
    fn run(self) {
        grad_tiles::<T, M, A, P>(self.g, self.d, self.rows, self.m)
    }
}

/// [`output_tiles`] as a kernel compiled for the CPU's vector instructions ([`raw::simd`]).
struct OutputTiles<'a, T, const M: usize, const A: usize, P> {
    z: &'a [T],
    zs: usize,
    bias: &'a [T],
    relu: bool,
    d: Dims,
    rows: std::ops::Range<usize>,
    y: &'a mut [MaybeUninit<T>],
    points: PhantomData<P>,
}

impl<T: WithDType, const M: usize, const A: usize, P: Points<M, A>> raw::Kernel
    for OutputTiles<'_, T, M, A, P>
{
    #[inline(always)]
    fn run(self) {
        output_tiles::<T, M, A, P>(
            self.z, self.zs, self.bias, self.relu, self.d, self.rows, self.y,
        )
    }
}

/// [`input_tiles`] compiled for the CPU's vector instructions.
fn input_tiles_d<T: WithDType, const M: usize, const A: usize, P: Points<M, A>>(
    x: &[T],
    d: Dims,
    rows: std::ops::Range<usize>,
    v: &mut [&mut [MaybeUninit<T>]],
) {
    raw::simd(InputTiles::<T, M, A, P> {
        x,
        d,
        rows,
        v,
        points: PhantomData,
    })
}

/// [`grad_tiles`] compiled for the CPU's vector instructions.
fn grad_tiles_d<T: WithDType, const M: usize, const A: usize, P: Points<M, A>>(
    g: &[T],
    d: Dims,
    rows: std::ops::Range<usize>,
    m: &mut [&mut [MaybeUninit<T>]],
) {
    raw::simd(GradTiles::<T, M, A, P> {
        g,
        d,
        rows,
        m,
        points: PhantomData,
    })
}

/// [`output_tiles`] compiled for the CPU's vector instructions.
#[allow(clippy::too_many_arguments)]
fn output_tiles_d<T: WithDType, const M: usize, const A: usize, P: Points<M, A>>(
    z: &[T],
    zs: usize,
    bias: &[T],
    relu: bool,
    d: Dims,
    rows: std::ops::Range<usize>,
    y: &mut [MaybeUninit<T>],
) {
    raw::simd(OutputTiles::<T, M, A, P> {
        z,
        zs,
        bias,
        relu,
        d,
        rows,
        y,
        points: PhantomData,
    })
}

/// One stage of a two-stage linear transform of kernels (see [`combine2`]): `rows` output
/// blocks, block `o` = `sum_t cf * in[b]` over `t = 0..terms` with `(cf, b) = term(o, t)`.
type Stage<'a, T> = (
    usize,
    usize,
    bool,
    &'a (dyn Fn(usize, usize) -> (T, usize) + Sync),
);

/// Columns of the kernels per task in [`combine2`]: its intermediate (at most 18 rows of them,
/// 72 KiB in f32) stays in L2.
const KERNEL_COLUMNS: usize = 1024;

/// Two stages of block combinations over `n`-element blocks of `src`: stage one makes
/// `s1.0` blocks from `src`, stage two `s2.0` blocks from those, each block `o` the sum over
/// `t` in order of `cf * block b` with `(cf, b) = term(o, t)`, added onto zero, zero
/// coefficients skipped when the stage says so. Done [`KERNEL_COLUMNS`] columns at a time, one
/// rayon task each, both stages in cache: the kernel transforms and their adjoint (run as two
/// passes over whole layers, they moved 21 MB at 256 x 256 channels, from and to memory).
fn combine2<T: WithDType>(n: usize, src: &[T], s1: Stage<'_, T>, s2: Stage<'_, T>) -> Vec<T> {
    /// Block `o < rows` of the stage = its sum of source blocks (`len` elements each), into
    /// `dst(o)`, which it writes in full.
    #[inline(always)]
    fn stage<'d, T: WithDType + 'd>(
        (rows, terms, skip_zero, term): Stage<'_, T>,
        src: impl Fn(usize) -> &'d [T],
        mut dst: impl FnMut(usize) -> &'d mut [MaybeUninit<T>],
    ) {
        for o in 0..rows {
            let d = dst(o);
            for e in d.iter_mut() {
                e.write(T::zero());
            }
            let d = raw::assume_written_mut(d);
            for t in 0..terms {
                let (cf, b) = term(o, t);
                if skip_zero && cf == T::zero() {
                    continue;
                }
                for (d, s) in d.iter_mut().zip(src(b)) {
                    *d += cf * *s;
                }
            }
        }
    }
    /// Columns `c0..c0 + len` of both stages: `src` then a `tmp` of `s1.0` blocks of `len`,
    /// into the same columns of `out`'s blocks of `n`, which this task alone writes.
    struct Columns<'a, T> {
        n: usize,
        src: &'a [T],
        stages: (Stage<'a, T>, Stage<'a, T>),
        tmp: &'a mut [T],
        out: &'a Disjoint<'a, T>,
        c0: usize,
        len: usize,
    }
    impl<T: WithDType> raw::Kernel for Columns<'_, T> {
        #[inline(always)]
        fn run(self) {
            let Columns {
                n,
                src,
                stages: (s1, s2),
                tmp,
                out,
                c0,
                len,
            } = self;
            {
                // Stage one asks for its blocks in order, each once.
                let mut blocks = raw::as_uninit_mut(tmp).chunks_mut(len.max(1));
                stage(
                    s1,
                    |b| &src[b * n + c0..][..len],
                    |_| blocks.next().expect("a tmp block per row"),
                );
            }
            let tmp: &[T] = tmp;
            stage(s2, |b| &tmp[b * len..][..len], |o| out.block(o, n, c0, len));
        }
    }
    let mut out: Vec<T> = Vec::with_capacity(s2.0 * n);
    {
        let dst = Disjoint::new(&mut out, s2.0 * n);
        let avx512 = cfg!(target_arch = "x86_64") && std::arch::is_x86_feature_detected!("avx512f");
        (0..n.div_ceil(KERNEL_COLUMNS))
            .into_par_iter()
            .for_each(|blk| {
                let c0 = blk * KERNEL_COLUMNS;
                let len = KERNEL_COLUMNS.min(n - c0);
                let mut tmp = vec![T::zero(); s1.0 * len];
                // This task alone writes columns c0..c0 + len of every output block.
                let k = Columns {
                    n,
                    src,
                    stages: (s1, s2),
                    tmp: &mut tmp,
                    out: &dst,
                    c0,
                    len,
                };
                if avx512 {
                    raw::simd_avx512(k)
                } else {
                    raw::Kernel::run(k)
                }
            });
    }
    // The tasks cover columns 0..n of every output block and wrote each.
    raw::set_written_len(&mut out, s2.0 * n);
    out
}

/// The transform-domain values of every tile of a layer, point-major `[A*A][tiles][c]` (each
/// point's matrix contiguous for its product; tile-major `[tiles][A*A][c]` made those products
/// read rows 36 c elements apart, a new page every row or two: 2x slower gemm at 64x64 and
/// 32x32), filled by `f` in chunks of `rpc` of the `rows` tile rows (`ntx` tiles each), in
/// parallel.
fn whole_layer<T: WithDType, const A: usize>(
    (rows, ntx, rpc): (usize, usize, usize),
    c: usize,
    f: &ChunkFill<'_, T>,
) -> Vec<T> {
    let tiles = rows * ntx;
    let nchunks = rows.div_ceil(rpc);
    let n = tiles * A * A * c;
    let mut v: Vec<T> = Vec::with_capacity(n);
    // Chunk ci's tiles of every point: A*A disjoint slices.
    let mut parts: Vec<Vec<&mut [MaybeUninit<T>]>> =
        (0..nchunks).map(|_| Vec::with_capacity(A * A)).collect();
    for point in v.spare_capacity_mut()[..n].chunks_mut((tiles * c).max(1)) {
        let mut rest = point;
        for (ci, part) in parts.iter_mut().enumerate() {
            let chunk_tiles = (((ci + 1) * rpc).min(rows) - ci * rpc) * ntx;
            let (mine, others) = std::mem::take(&mut rest).split_at_mut(chunk_tiles * c);
            part.push(mine);
            rest = others;
        }
    }
    parts
        .into_par_iter()
        .enumerate()
        .for_each(|(ci, mut dst)| f(ci * rpc..((ci + 1) * rpc).min(rows), &mut dst));
    // The chunks cover all tile rows of every point, and the transforms write every tile and
    // channel of theirs.
    raw::set_written_len(&mut v, n);
    v
}

/// `dst (tiles x Cout) = v u` for one transform point of the convolution: `v` the point's
/// transformed input `[tile][Cin]`, `u` its transformed kernel `[Cin][Cout]`.
fn forward_product<T: WithDType>(
    dst: &mut [MaybeUninit<T>],
    v: &[T],
    u: &[T],
    (tiles, cin, cout): (usize, usize, usize),
) {
    let (v, u) = (&v[..tiles * cin], &u[..cin * cout]);
    matmul_into((tiles, cout, cin), dst, v, (cin, 1), u, (cout, 1));
}

/// `dst (Cin x Cout) [+]= v^T m` for one transform point of the kernel gradient: `v` the
/// point's transformed input `[tile][Cin]`, `m` its transformed output gradient `[tile][Cout]`.
fn point_product<T: WithDType>(
    dst: &mut [MaybeUninit<T>],
    accumulate: bool,
    v: &[T],
    m: &[T],
    (cin, cout, tiles): (usize, usize, usize),
) {
    let dims = (cin, cout, tiles);
    if accumulate {
        // An accumulating caller passes a destination it has written.
        let dst = raw::assume_written_mut(dst);
        matmul_with(
            dims,
            dst,
            true,
            v,
            (1, cin),
            m,
            (cout, 1),
            gemm::Parallelism::None,
        );
    } else {
        matmul_into(dims, dst, v, (1, cin), m, (cout, 1));
    }
}

impl<P: Points<M, A>, const M: usize, const A: usize> Wino<P, M, A> {
    /// Kernel transform `U = G w G^T`: `w` `(9 Cin, Cout)` with row `(ky * 3 + kx) * Cin + ci`,
    /// result `[A*A][Cin][Cout]`.
    pub fn kernel<T: WithDType>(&self, w: &[T], cin: usize, cout: usize) -> Vec<T> {
        let g: [[T; 3]; A] = cast(&P::G);
        let n = cin * cout;
        // tmp[i][kx] = sum_ky g[i][ky] w[ky][kx], then U[i][j] = sum_kx tmp[i][kx] g[j][kx].
        let s1 = |ik: usize, ky: usize| {
            let (i, kx) = (ik / 3, ik % 3);
            (g[i][ky], ky * 3 + kx)
        };
        let s2 = |ij: usize, kx: usize| {
            let (i, j) = (ij / A, ij % A);
            (g[j][kx], i * 3 + kx)
        };
        combine2(n, w, (A * 3, 3, true, &s1), (A * A, 3, true, &s2))
    }

    /// The adjoint of [`Self::kernel`]: `dw = G^T dU G` in the `(9 Cin, Cout)` layout.
    fn kernel_adjoint<T: WithDType>(&self, du: &[T], cin: usize, cout: usize) -> Vec<T> {
        let g: [[T; 3]; A] = cast(&P::G);
        let n = cin * cout;
        let s1 = |ik: usize, j: usize| {
            let (i, kx) = (ik / 3, ik % 3);
            (g[j][kx], i * A + j)
        };
        let s2 = |t: usize, i: usize| {
            let (ky, kx) = (t / 3, t % 3);
            (g[i][ky], i * 3 + kx)
        };
        combine2(n, du, (A * 3, A, false, &s1), (9, A, false, &s2))
    }

    /// `relu?(conv3x3_same(x, w) + bias)` for `x` `(B, H, W, Cin)` and the transformed kernel
    /// `u` (`[A*A][Cin][Cout]`, see [`Self::kernel`]); result `(B, H, W, Cout)`.
    ///
    /// Chunk by chunk ([`Self::conv_chunked`]) reads all of `u` once per chunk; transforming the
    /// whole layer first ([`Self::conv_whole`]) writes and reads back every tile's transformed
    /// input and output instead, and its products are larger. The whole layer when the chunks'
    /// reads of `u` exceed the transformed input and output in size: every layer but the
    /// 64x64 ones. (Measured: the 16x16 and 8x8 layers' `u`, 2.4-9.4 MB at 128-256 channels,
    /// came from L3 or memory for every chunk; taking the whole layer there gave 8-12% in
    /// training, and at the 32x32 layers too another 2% at `n_filters_scale` 2 and 13% at 1;
    /// the 64x64 layers too lost 1%.)
    pub fn conv<T: WithDType>(
        &self,
        x: &[T],
        u: &[T],
        bias: &[T],
        (b, h, w, cin): Dims,
        cout: usize,
        relu: bool,
    ) -> Vec<T> {
        let (nty, ntx) = grid::<M>(h, w);
        let rows = b * nty;
        let rpc = rows_per_chunk::<T, A>(ntx, rows, cin, cout);
        let chunks = rows.div_ceil(rpc);
        if chunks * cin * cout > rows * ntx * (cin + cout) {
            self.conv_whole(x, u, bias, (b, h, w, cin), cout, relu)
        } else {
            self.conv_chunked(x, u, bias, (b, h, w, cin), cout, relu)
        }
    }

    /// [`Self::conv`] with the transformed input of all tiles first (point-major), one
    /// product per point over every tile, then the output transform in chunks.
    fn conv_whole<T: WithDType>(
        &self,
        x: &[T],
        u: &[T],
        bias: &[T],
        (b, h, w, cin): Dims,
        cout: usize,
        relu: bool,
    ) -> Vec<T> {
        let (nty, ntx) = grid::<M>(h, w);
        let rows = b * nty;
        let tiles = rows * ntx;
        let rpc = rows_per_chunk::<T, A>(ntx, rows, cin, cout);
        let v = whole_layer::<T, A>((rows, ntx, rpc), cin, &|r, dst| {
            input_tiles_d::<T, M, A, P>(x, (b, h, w, cin), r, dst)
        });
        let z = raw::filled(A * A * tiles * cout, tiles * cout, |p, zp| {
            let (vp, up) = (&v[p * tiles * cin..], &u[p * cin * cout..]);
            forward_product(zp, vp, up, (tiles, cin, cout));
        });
        let d = (b, h, w, cout);
        self.by_output_chunks(
            d,
            rpc,
            || (),
            |_, r, ys| {
                let zc = &z[r.start * ntx * cout..];
                output_tiles_d::<T, M, A, P>(zc, tiles * cout, bias, relu, d, r, ys);
            },
        )
    }

    /// The `(B, H, W, c)` output of a convolution, written chunk by chunk in parallel: `f`
    /// gets a scratch value from `init` (one per rayon split), chunk `ci`'s tile rows `r`
    /// (`rpc` per chunk) and the output elements of their pixel rows, all of which it must
    /// write.
    fn by_output_chunks<T: WithDType, S>(
        &self,
        (b, h, w, c): Dims,
        rpc: usize,
        init: impl Fn() -> S + Sync + Send,
        f: impl Fn(&mut S, std::ops::Range<usize>, &mut [MaybeUninit<T>]) + Sync + Send,
    ) -> Vec<T> {
        let nty = grid::<M>(h, w).0;
        let rows = b * nty;
        let n = b * h * w * c;
        let mut y: Vec<T> = Vec::with_capacity(n);
        let out = Disjoint::new(&mut y, n);
        let pixel_row = |r: usize| (r / nty * h + (r % nty * M).min(h)) * w * c;
        (0..rows.div_ceil(rpc))
            .into_par_iter()
            .for_each_init(init, |s, ci| {
                let r = ci * rpc..((ci + 1) * rpc).min(rows);
                let (lo, hi) = (pixel_row(r.start), pixel_row(r.end));
                // Chunk ci owns output elements [lo, hi): its tile rows' pixel rows, disjoint
                // between chunks.
                f(s, r, out.range(lo, hi));
            });
        // The chunks cover tile rows 0..rows, i.e. every pixel row of every image, and f wrote
        // all their elements.
        raw::set_written_len(&mut y, n);
        y
    }

    /// [`Self::conv`] a chunk of tile rows at a time (transform, 36 products, output transform
    /// in L2), one chunk per rayon task.
    fn conv_chunked<T: WithDType>(
        &self,
        x: &[T],
        u: &[T],
        bias: &[T],
        (b, h, w, cin): Dims,
        cout: usize,
        relu: bool,
    ) -> Vec<T> {
        let (nty, ntx) = grid::<M>(h, w);
        let rows = b * nty;
        let rpc = rows_per_chunk::<T, A>(ntx, rows, cin, cout);
        let d = (b, h, w, cout);
        self.by_output_chunks(
            d,
            rpc,
            || (Vec::<MaybeUninit<T>>::new(), Vec::<MaybeUninit<T>>::new()),
            |(v, z), r, ys| {
                let tl = r.len() * ntx;
                v.resize(A * A * tl * cin, MaybeUninit::uninit());
                z.resize(A * A * tl * cout, MaybeUninit::uninit());
                let mut vp: Vec<&mut [MaybeUninit<T>]> = v.chunks_mut(tl * cin).collect();
                input_tiles_d::<T, M, A, P>(x, (b, h, w, cin), r.clone(), &mut vp);
                // input_tiles wrote every point, tile and channel of the chunk.
                let v = written(v, A * A * tl * cin);
                for p in 0..A * A {
                    let zp = &mut z[p * tl * cout..][..tl * cout];
                    forward_product(
                        zp,
                        &v[p * tl * cin..],
                        &u[p * cin * cout..],
                        (tl, cin, cout),
                    );
                }
                // The products wrote every point, tile and channel of the chunk.
                let z = written(z, A * A * tl * cout);
                // output_tiles writes every pixel of the chunk's tile rows (tiles cover all).
                output_tiles_d::<T, M, A, P>(z, tl * cout, bias, relu, d, r, ys);
            },
        )
    }

    /// The kernel gradient of the convolution `x` `(B, H, W, Cin)` -> `(B, H, W, Cout)` given the
    /// gradient `g` of its pre-activation output, in the `(9 Cin, Cout)` layout: per transform
    /// point the product `V^T (A g A^T)` of the transformed input and output gradient summed
    /// over every tile, then `G^T dU G`. Layers with many tiles per weight (the 64x64 and
    /// 32x32 ones) sum it chunk by chunk ([`Self::kernel_grad_chunked`]); the others transform
    /// the whole layer first ([`Self::kernel_grad_whole`]).
    pub fn kernel_grad<T: WithDType>(
        &self,
        x: &[T],
        g: &[T],
        (b, h, w, cin): Dims,
        cout: usize,
    ) -> Vec<T> {
        let (nty, ntx) = grid::<M>(h, w);
        let tiles = b * nty * ntx;
        // The chunked sums keep KG_PARTS partial dU, the whole-layer transforms every tile's
        // transformed input and output gradient: take the smaller.
        if KG_PARTS * cin * cout < tiles * (cin + cout) {
            self.kernel_grad_chunked(x, g, (b, h, w, cin), cout)
        } else {
            self.kernel_grad_whole(x, g, (b, h, w, cin), cout)
        }
    }

    /// [`Self::kernel_grad`] a chunk of [`KG_CHUNK_TILES`] tiles at a time: the chunk's
    /// transformed input and output gradient (a few hundred KiB, in L2) and at once its 36
    /// products added onto a partial dU. The chunks are split into [`KG_PARTS`] fixed runs of
    /// consecutive chunks, one partial dU each (in parallel), added in order: the result does
    /// not depend on the thread count. (Transforming the whole layer first wrote and read back
    /// 75 MB per step at 64x64 and 64 channels.)
    fn kernel_grad_chunked<T: WithDType>(
        &self,
        x: &[T],
        g: &[T],
        (b, h, w, cin): Dims,
        cout: usize,
    ) -> Vec<T> {
        let (nty, ntx) = grid::<M>(h, w);
        let rows = b * nty;
        let rpc = KG_CHUNK_TILES.div_ceil(ntx).clamp(1, rows.max(1));
        let nchunks = rows.div_ceil(rpc);
        let per_part = nchunks.div_ceil(KG_PARTS).max(1);
        let n = cin * cout;
        let partial: Vec<Vec<T>> = (0..nchunks.div_ceil(per_part))
            .into_par_iter()
            .map(|part| {
                let mut du: Vec<T> = Vec::with_capacity(A * A * n);
                let du_mem = &mut du.spare_capacity_mut()[..A * A * n];
                let (mut v, mut m) = (Vec::<MaybeUninit<T>>::new(), Vec::<MaybeUninit<T>>::new());
                let first = part * per_part;
                for ci in first..((part + 1) * per_part).min(nchunks) {
                    let r = ci * rpc..((ci + 1) * rpc).min(rows);
                    let tl = r.len() * ntx;
                    v.resize(A * A * tl * cin, MaybeUninit::uninit());
                    m.resize(A * A * tl * cout, MaybeUninit::uninit());
                    let mut vp: Vec<&mut [MaybeUninit<T>]> = v.chunks_mut(tl * cin).collect();
                    input_tiles_d::<T, M, A, P>(x, (b, h, w, cin), r.clone(), &mut vp);
                    let mut mp: Vec<&mut [MaybeUninit<T>]> = m.chunks_mut(tl * cout).collect();
                    grad_tiles_d::<T, M, A, P>(g, (b, h, w, cout), r, &mut mp);
                    // The transforms wrote every point, tile and channel of the chunk.
                    let (vs, ms) = (
                        written(&v, A * A * tl * cin),
                        written(&m, A * A * tl * cout),
                    );
                    // The part's first chunk writes du, the others add onto it.
                    for (q, dst) in du_mem.chunks_mut(n).enumerate() {
                        let (vq, mq) = (&vs[q * tl * cin..], &ms[q * tl * cout..]);
                        point_product(dst, ci > first, vq, mq, (cin, cout, tl));
                    }
                }
                // The part has at least one chunk (parts are made only for chunks), whose
                // products wrote all A*A*n elements.
                raw::set_written_len(&mut du, A * A * n);
                du
            })
            .collect();
        self.kernel_adjoint(&sum_in_order(&partial, A * A * n), cin, cout)
    }

    /// [`Self::kernel_grad`] with the transformed input and output gradient of all tiles
    /// first (point-major), then per point one product over every tile.
    fn kernel_grad_whole<T: WithDType>(
        &self,
        x: &[T],
        g: &[T],
        (b, h, w, cin): Dims,
        cout: usize,
    ) -> Vec<T> {
        let (nty, ntx) = grid::<M>(h, w);
        let rows = b * nty;
        let tiles = rows * ntx;
        let rpc = rows_per_chunk::<T, A>(ntx, rows, cin, cout);
        let (v, m) = rayon::join(
            || {
                whole_layer::<T, A>((rows, ntx, rpc), cin, &|r, dst| {
                    input_tiles_d::<T, M, A, P>(x, (b, h, w, cin), r, dst)
                })
            },
            || {
                whole_layer::<T, A>((rows, ntx, rpc), cout, &|r, dst| {
                    grad_tiles_d::<T, M, A, P>(g, (b, h, w, cout), r, dst)
                })
            },
        );
        let n = cin * cout;
        let du = raw::filled(A * A * n, n, |q, dst| {
            let (vq, mq) = (&v[q * tiles * cin..], &m[q * tiles * cout..]);
            point_product(dst, false, vq, mq, (cin, cout, tiles));
        });
        self.kernel_adjoint(&du, cin, cout)
    }
}
