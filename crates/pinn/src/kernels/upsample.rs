//! Nearest 2x upsampling as a candle custom op: each pixel becomes a 2x2 block; the backward
//! sums each block's gradient.

use super::{err, slice_of, with_data};
use crate::raw;
use candle_core::WithDType;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};

/// Nearest-neighbour 2x upsampling (see [`upsample2`]).
struct Upsample2;

fn up_fwd<T: WithDType>(x: &[T], (b, h, w, c): (usize, usize, usize, usize)) -> Vec<T> {
    let (h2, w2) = (2 * h, 2 * w);
    raw::filled(b * h2 * w2 * c, w2 * c, |by, dst| {
        let (bi, y) = (by / h2, by % h2);
        for xo in 0..w2 {
            raw::write_from(
                &mut dst[xo * c..][..c],
                &x[((bi * h + y / 2) * w + xo / 2) * c..][..c],
            );
        }
    })
}

fn up_bwd<T: WithDType>(g: &[T], (b, h, w, c): (usize, usize, usize, usize)) -> Vec<T> {
    let w2 = 2 * w;
    raw::filled(b * h * w * c, w * c, |by, dst| {
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
