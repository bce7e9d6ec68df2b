//! 2x2 max pooling as a candle custom op: the forward takes each window's maximum, the backward
//! sends the gradient to the first maximum of each window (row-major order).

use super::{err, slice_of, with_data};
use crate::raw;
use candle_core::WithDType;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};

/// 2x2 max pooling with stride 2 (see [`max_pool2`]).
struct MaxPool2;

/// Which of a window's four values `[v00, v01, v10, v11]` wins: the first maximum in row-major
/// window order (as TensorFlow). A tournament of the two rows (the first of equal values wins
/// each match), which gives the same index as a scan for the first maximum but compiles to
/// conditional moves: the scan's branches on random data cost a misprediction per window.
#[inline]
pub(super) fn pool_winner<T: WithDType>(v: [T; 4]) -> usize {
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
    raw::filled(b * h2 * w2 * c, w2 * c, |by, dst| {
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
    raw::filled(b * h * w * c, 2 * w * c, |by, dst| {
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
