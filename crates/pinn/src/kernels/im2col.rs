//! im2col and col2im of a 3x3 'same' convolution: the first layer's input as a matrix whose
//! product with the kernel is the convolution, and the adjoint that scatters a column gradient
//! back onto the input.

use super::write_zeros;
use crate::raw;
use candle_core::WithDType;
use std::mem::MaybeUninit;

/// im2col of a 3x3 'same' convolution: `(B H W, 9 Cin)`, row `(b, y, x)`, column
/// `(ky * 3 + kx) * Cin + ci` = `x[b, y + ky - 1, x + kx - 1, ci]` (zero outside the image).
pub(super) fn im2col<T: WithDType>(x: &[T], d: (usize, usize, usize, usize)) -> Vec<T> {
    let (b, h, w, cin) = d;
    let row = 9 * cin;
    raw::filled(b * h * w * row, w * row, |by, dst| {
        im2col_pixels(x, d, by * w..(by + 1) * w, dst)
    })
}

/// The im2col rows of pixels `pixels` (numbered `(b * H + y) * W + x`) into `dst`.
pub(super) fn im2col_pixels<T: WithDType>(
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
                raw::write_from(d, &src_row[(xo - 1) * cin..][..3 * cin]);
                continue;
            }
            for kx in 0..3 {
                let dk = &mut d[kx * cin..][..cin];
                let xx = xo + kx;
                if (1..=w).contains(&xx) {
                    raw::write_from(dk, &src_row[(xx - 1) * cin..][..cin]);
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
pub(super) fn col2im<T: WithDType>(
    col: &[T],
    (b, h, w, cin): (usize, usize, usize, usize),
) -> Vec<T> {
    let row = 9 * cin;
    raw::filled(b * h * w * cin, w * cin, |by, dst| {
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
            raw::write_from(&mut dst[xx * cin..][..cin], &acc);
        }
    })
}
