//! Direct 3x3 'same' convolutions of thin layers, those with a few input or output channels:
//! the forward pass (fused with bias and ReLU; also the input gradient, the convolution of the
//! output gradient with the flipped, transposed kernel) and the kernel gradient, read straight
//! from the NHWC tensors. [`super::kernels::ConvAlgo::Auto`] uses them for the network's heads
//! (`32f -> C`) with 16 or more input channels per output channel.
//!
//! Why: a head's im2col matrix is 9x its input (37.7 MB at 64 channels and 32x32, built twice
//! per step) and feeds products with 1 to 4 columns, and the im2col path made separate passes
//! for the bias and the ReLU. Here each output pixel is summed in registers from its 3x3
//! neighbourhood and written once. Forward + backward per head (`cargo bench --bench
//! train_ops -- thin`, fastest of 10): `64 -> 1` 4.1-4.9 ms against im2col's 8.3-8.6, `64 -> 4`
//! 8.3-10.1 against 13.6-16.5, `32 -> 1` 3.7-3.9 against 3.7-3.9; `32 -> 4` (9.4-11.7 against
//! 6.9-9.2) and the first layer (`C -> 32f`) keep im2col, whose gemm was as fast or faster.
//!
//! Vectorised along the wide side: with at least as many output channels as input channels,
//! a pixel's outputs are accumulated as a vector over output channels (one scaled kernel row
//! per tap and input channel); otherwise each output channel is a dot product over input
//! channels, in [`LANES`] fixed partial sums.
//!
//! Determinism: every output element is written by one task and summed in a fixed order (taps
//! in `ky, kx` order, then input channels; the partial sums' lanes added as a fixed tree); the
//! kernel gradient is summed per fixed block of [`DW_ROWS`] pixel rows, the blocks added in
//! order. Results do not depend on the thread count. Rust never contracts `a * b + c` into an
//! FMA, so the vectorised and scalar code give the same bits.

use crate::gemm::sum_in_order;
use crate::raw;
use candle_core::WithDType;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// NHWC dimensions `(B, H, W, C)`.
type Dims = (usize, usize, usize, usize);

/// Partial sums of a dot product over input channels.
const LANES: usize = 16;

/// Pixel rows per partial kernel gradient.
const DW_ROWS: usize = 8;

/// The taps of output pixel `(y, x)` of image `bi` whose source pixel lies inside the image,
/// in `ky, kx` order: the tap `t = ky * 3 + kx` and the source pixel's channels in `x`.
#[inline(always)]
fn taps<T>(
    x: &[T],
    (bi, y, xo): (usize, usize, usize),
    (h, w, c): (usize, usize, usize),
) -> impl Iterator<Item = (usize, &[T])> {
    (0..9).filter_map(move |t| {
        let (yy, xx) = ((y + t / 3).wrapping_sub(1), (xo + t % 3).wrapping_sub(1));
        (yy < h && xx < w).then(|| (t, &x[((bi * h + yy) * w + xx) * c..][..c]))
    })
}

/// `lanes[l] += a[i] b[i]` for `i = l (mod LANES)`, `i` ascending.
#[inline(always)]
fn dot_into<T: WithDType>(lanes: &mut [T; LANES], a: &[T], b: &[T]) {
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..LANES {
            lanes[l] += x[l] * y[l];
        }
    }
    for (l, (x, y)) in ca.remainder().iter().zip(cb.remainder()).enumerate() {
        lanes[l] += *x * *y;
    }
}

/// The sum of the lanes as a fixed tree (lane `i` plus lane `i + 8`, then `+ 4`, `+ 2`, `+ 1`):
/// four vector steps instead of sixteen dependent additions.
#[inline(always)]
fn lane_sum<T: WithDType>(mut lanes: [T; LANES]) -> T {
    let mut half = LANES / 2;
    while half > 0 {
        for i in 0..half {
            lanes[i] += lanes[i + half];
        }
        half /= 2;
    }
    lanes[0]
}

/// The kernel `(9 Cin, Cout)` as `(Cout, 9, Cin)`: each output channel's taps contiguous.
fn by_output<T: WithDType>(w: &[T], cin: usize, cout: usize) -> Vec<T> {
    let mut t = vec![T::zero(); 9 * cin * cout];
    for (r, row) in w.chunks(cout).enumerate() {
        for (co, v) in row.iter().enumerate() {
            t[co * 9 * cin + r] = *v;
        }
    }
    t
}

/// `relu?(conv3x3_same(x, w) + bias)` for `x` `(B, H, W, Cin)` and `w` `(9 Cin, Cout)` (row
/// `(ky * 3 + kx) * Cin + ci`); result `(B, H, W, Cout)`. With `relu`, outputs that are not
/// positive (NaN included) become `+0`, as the other algorithms' ReLU.
pub fn conv<T: WithDType>(
    x: &[T],
    w: &[T],
    bias: &[T],
    (b, h, wd, cin): Dims,
    cout: usize,
    relu: bool,
) -> Vec<T> {
    let wt = if cout >= cin {
        Vec::new()
    } else {
        by_output(w, cin, cout)
    };
    raw::filled(b * h * wd * cout, (wd * cout).max(1), |row, dst| {
        raw::simd(ConvRow {
            x,
            w,
            wt: &wt,
            bias,
            d: (b, h, wd, cin),
            cout,
            relu,
            row,
            dst,
        })
    })
}

/// One output pixel row (`row = image * H + y`) of [`conv`]; `wt` is the kernel by output
/// channel when the input side is the wider.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn conv_row<T: WithDType>(
    x: &[T],
    w: &[T],
    wt: &[T],
    bias: &[T],
    (_, h, wd, cin): Dims,
    cout: usize,
    relu: bool,
    row: usize,
    dst: &mut [MaybeUninit<T>],
) {
    let wide = cout >= cin;
    let (bi, y) = (row / h, row % h);
    let mut acc = vec![T::zero(); cout];
    let mut lanes = vec![[T::zero(); LANES]; if wide { 0 } else { cout }];
    for (xo, out) in dst.chunks_mut(cout).enumerate() {
        if wide {
            acc.copy_from_slice(bias);
            for (t, xs) in taps(x, (bi, y, xo), (h, wd, cin)) {
                for (ci, &xv) in xs.iter().enumerate() {
                    let wr = &w[(t * cin + ci) * cout..][..cout];
                    for (a, &wv) in acc.iter_mut().zip(wr) {
                        *a += xv * wv;
                    }
                }
            }
        } else {
            // Every output channel's partial sums at once: each tap's input read once.
            for l in lanes.iter_mut() {
                *l = [T::zero(); LANES];
            }
            for (t, xs) in taps(x, (bi, y, xo), (h, wd, cin)) {
                for (co, l) in lanes.iter_mut().enumerate() {
                    dot_into(l, xs, &wt[(co * 9 + t) * cin..][..cin]);
                }
            }
            for ((a, l), &b) in acc.iter_mut().zip(&lanes).zip(bias) {
                *a = b + lane_sum(*l);
            }
        }
        for (o, &a) in out.iter_mut().zip(&acc) {
            o.write(if !relu || a > T::zero() { a } else { T::zero() });
        }
    }
}

/// The kernel gradient `(9 Cin, Cout)` of the convolution of `x` `(B, H, W, Cin)` given the
/// gradient `g` `(B, H, W, Cout)` of its pre-activation output: `dw[(t Cin + ci) Cout + co] =
/// sum_p x[p + tap t, ci] g[p, co]`, summed per block of [`DW_ROWS`] pixel rows in parallel and
/// the blocks added in order.
pub fn kernel_grad<T: WithDType>(x: &[T], g: &[T], (b, h, wd, cin): Dims, cout: usize) -> Vec<T> {
    let rows = b * h;
    let n = 9 * cin * cout;
    let wide = cout >= cin;
    // wide: the `(9 Cin, Cout)` layout itself; otherwise `(Cout, 9, Cin)`, transposed below.
    let partial: Vec<Vec<T>> = (0..rows.div_ceil(DW_ROWS))
        .into_par_iter()
        .map(|blk| {
            let mut d = vec![T::zero(); n];
            let rows = blk * DW_ROWS..((blk + 1) * DW_ROWS).min(rows);
            raw::simd(DwRows {
                x,
                g,
                d: (b, h, wd, cin),
                cout,
                rows,
                acc: &mut d,
            });
            d
        })
        .collect();
    let sum = sum_in_order(&partial, n);
    if wide {
        return sum;
    }
    let mut dw = vec![T::zero(); n];
    for co in 0..cout {
        for r in 0..9 * cin {
            dw[r * cout + co] = sum[co * 9 * cin + r];
        }
    }
    dw
}

/// The kernel-gradient terms of output pixel rows `rows` added onto `d` (see [`kernel_grad`]
/// for its layout).
#[inline(always)]
fn dw_rows<T: WithDType>(
    x: &[T],
    g: &[T],
    (_, h, wd, cin): Dims,
    cout: usize,
    rows: std::ops::Range<usize>,
    d: &mut [T],
) {
    let wide = cout >= cin;
    for row in rows {
        let (bi, y) = (row / h, row % h);
        for xo in 0..wd {
            let gp = &g[((bi * h + y) * wd + xo) * cout..][..cout];
            for (t, xs) in taps(x, (bi, y, xo), (h, wd, cin)) {
                if wide {
                    for (ci, &xv) in xs.iter().enumerate() {
                        let dr = &mut d[(t * cin + ci) * cout..][..cout];
                        for (a, &gv) in dr.iter_mut().zip(gp) {
                            *a += xv * gv;
                        }
                    }
                } else {
                    for (co, &gv) in gp.iter().enumerate() {
                        let dr = &mut d[(co * 9 + t) * cin..][..cin];
                        for (a, &xv) in dr.iter_mut().zip(xs) {
                            *a += gv * xv;
                        }
                    }
                }
            }
        }
    }
}

/// [`conv_row`] as a kernel compiled for the CPU's vector instructions ([`raw::simd`]).
struct ConvRow<'a, T> {
    x: &'a [T],
    w: &'a [T],
    wt: &'a [T],
    bias: &'a [T],
    d: Dims,
    cout: usize,
    relu: bool,
    row: usize,
    dst: &'a mut [MaybeUninit<T>],
}

impl<T: WithDType> raw::Kernel for ConvRow<'_, T> {
    #[inline(always)]
    fn run(self) {
        conv_row::<T>(
            self.x, self.w, self.wt, self.bias, self.d, self.cout, self.relu, self.row, self.dst,
        )
    }
}

/// [`dw_rows`] as a kernel compiled for the CPU's vector instructions ([`raw::simd`]).
struct DwRows<'a, T> {
    x: &'a [T],
    g: &'a [T],
    d: Dims,
    cout: usize,
    rows: std::ops::Range<usize>,
    acc: &'a mut [T],
}

impl<T: WithDType> raw::Kernel for DwRows<'_, T> {
    #[inline(always)]
    fn run(self) {
        dw_rows::<T>(self.x, self.g, self.d, self.cout, self.rows, self.acc)
    }
}
