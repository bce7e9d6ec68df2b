//! Hand-written CPU kernels of the network's layers as candle custom ops, each with its own local
//! backward pass: the 3x3 'same' convolution fused with its bias and (optionally) ReLU, 2x2 max
//! pooling and nearest 2x upsampling, all on NHWC `(B, H, W, C)` tensors of f32 or f64.
//!
//! Why: built from candle's generic ops, one convolution step was a dozen full passes over the
//! activations and a 9x im2col buffer (gather, bias broadcast, ReLU mask, backprop's
//! zero-initialised accumulators, scatter-add), and those passes, single-threaded, took about
//! two thirds of the training time. Here the convolution is computed by one of three
//! algorithms ([`ConvAlgo`]): im2col and `gemm` (the first layer), Winograd F(4x4, 3x3)
//! ([`crate::winograd`], the layers with 16 or more channels in and out) or direct summation
//! ([`crate::direct`], the heads). One op per module: [`conv`], [`pool`], [`upsample`]; [`im2col`]
//! lays out the first layer's products, [`crate::gemm`] runs them.
//!
//! Only the *local* derivative of each op is written by hand (tested against finite
//! differences and against candle's autodiff of the same op built from generic candle ops); the
//! network's gradient is still assembled by candle's autodiff.
//!
//! Determinism: every output element is written by exactly one task, sums run in a fixed order
//! (taps in `ky, kx` order, pooling windows in row-major order), and the matrix products are
//! `gemm` calls with the same blocking as candle's matmul, so results do not depend on how rayon
//! schedules the work.

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

mod conv;
mod im2col;
mod pool;
#[cfg(test)]
mod tests;
mod upsample;

pub use conv::{conv3x3_fused, conv3x3_with, ConvAlgo, WINOGRAD_MIN_CHANNELS};
pub use pool::max_pool2;
pub use upsample::upsample2;

use candle_core::{CpuStorage, Error, Layout, Result, Storage, Tensor, WithDType};
use std::mem::MaybeUninit;

fn err(msg: impl Into<String>) -> Error {
    Error::Msg(msg.into())
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

fn write_zeros<T: WithDType>(dst: &mut [MaybeUninit<T>]) {
    for e in dst {
        e.write(T::zero());
    }
}
