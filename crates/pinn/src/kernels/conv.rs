//! The 3x3 'same' convolution fused with its bias and ReLU, as a candle custom op with its own
//! backward pass: the algorithm per layer ([`ConvAlgo`]: im2col and gemm, Winograd, direct),
//! the ReLU mask, and the bias, input and kernel gradients.

use super::im2col::{col2im, im2col, im2col_pixels};
use super::{err, slice_of, with_data};
use crate::gemm::{matmul_inner_split, matmul_rows, matmul_with, sum_in_order, ROWS_PER_TASK};
use crate::{direct, raw, winograd};
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;
use std::borrow::Cow;
use std::mem::MaybeUninit;

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
    raw::filled(b * h * wd * cout, ROWS_PER_TASK * cout, |i, y| {
        let rows = y.len() / cout;
        let mut col = Vec::with_capacity(rows * k);
        let p0 = i * ROWS_PER_TASK;
        im2col_pixels(x, (b, h, wd, cin), p0..p0 + rows, col.spare_capacity_mut());
        // im2col_pixels wrote all rows * k elements.
        raw::set_written_len(&mut col, rows * k);
        for r in y.chunks_mut(cout) {
            raw::write_from(r, bias);
        }
        // Every element of y was just written.
        let y = raw::assume_written_mut(y);
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
        *e = raw::keep_if_positive(*e, *e);
    }
}

/// `dst[i] = v[i]` where `r[i] > 0`, else `+0`: the ReLU and its backward. NaN in `r` counts as
/// not positive.
pub(super) fn keep_where_positive<T: WithDType>(r: &[T], v: &[T], dst: &mut [MaybeUninit<T>]) {
    assert!(r.len() == dst.len() && v.len() == dst.len());
    for ((d, r), v) in dst.iter_mut().zip(r).zip(v) {
        d.write(raw::keep_if_positive(*r, *v));
    }
}

/// The kernel of the input gradient's convolution: `wf[(8 - t) * Cout + co, ci] =
/// w[t * Cin + ci, co]` for tap `t = ky * 3 + kx` (flipped taps, transposed channels), `(9 Cout,
/// Cin)`, in parallel blocks of 16 rows (a transpose: on one thread it was a few percent of a
/// training step's single-threaded time at `n_filters_scale` 2).
fn flipped_kernel<T: WithDType>(w: &[T], cin: usize, cout: usize) -> Vec<T> {
    raw::filled(9 * cout * cin, 16 * cin, |i, dst| {
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
                // keep_where_positive wrote every element of dst.
                block_sum(raw::assume_written(dst))
            })
            .collect();
        // The blocks cover all m * cout elements and each was written above.
        raw::set_written_len(&mut gv, m * cout);
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
