//! Exact Poisson sampling, one diffraction pattern at a time: inversion below lambda 20,
//! Hörmann's PTRS transformed rejection above, in branch-free passes compiled for AVX-512, AVX2
//! or baseline x86-64 (chosen at run time), with its own `exp` and `ln`.
//!
//! Exactness: every draw follows the exact algorithm (not a normal approximation), up to float64
//! rounding. Inversion sums the pmf term by term from `exp(-lambda)`; PTRS (numpy's algorithm)
//! accepts a try by comparing logarithms of the density ratio. Its acceptance test here uses two
//! logarithms instead of numpy's three and avoids the cancellation of two `lambda ln lambda`
//! terms (so it is more accurate than numpy's form, not less).
//!
//! Portability: the sampler uses only IEEE-754 `+ - * /`, `sqrt` and bit operations (its own
//! [`exp`] and [`ln`], below one ulp of error as fdlibm's, instead of the platform's libm), and
//! Rust never fuses or reorders floating-point operations, so every instruction set and every
//! platform draws the same bits from the same uniforms. The vector passes compute each pixel
//! (lane) exactly as the scalar code does; `tests::every_instruction_set_draws_the_same_bits`
//! checks it on this machine.

// Lane loops index several fixed-size arrays in step (the form the compiler vectorises); the
// fdlibm constants are written as fdlibm gives them.
#![allow(
    clippy::needless_range_loop,
    clippy::assign_op_pattern,
    clippy::excessive_precision
)]

use crate::numerics::simd::Simd;
use rand::{Rng, RngCore};
use std::ops::{Add, BitAnd, BitOr, Div, Mul, Neg, Not, Sub};

/// `L` doubles, one per pixel ("lane"). Every operation is one loop over the lanes doing the
/// scalar IEEE operation, which the compiler turns into vector instructions when the
/// surrounding function is compiled for them; with `L = 1` it is the scalar code.
#[derive(Clone, Copy, Debug)]
struct F<const L: usize>([f64; L]);

/// `L` u64 lanes (bit patterns of [`F`]).
#[derive(Clone, Copy, Debug)]
struct U<const L: usize>([u64; L]);

/// `L` booleans (a lane mask).
#[derive(Clone, Copy, Debug)]
struct M<const L: usize>([bool; L]);

impl<const L: usize> F<L> {
    #[inline(always)]
    fn splat(x: f64) -> Self {
        F([x; L])
    }
    #[inline(always)]
    fn map(self, f: impl Fn(f64) -> f64) -> Self {
        F(self.0.map(f))
    }
    #[inline(always)]
    fn cmp(self, o: Self, f: impl Fn(f64, f64) -> bool) -> M<L> {
        let mut r = [false; L];
        for l in 0..L {
            r[l] = f(self.0[l], o.0[l]);
        }
        M(r)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        self.map(f64::sqrt)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        self.map(f64::abs)
    }
    #[inline(always)]
    fn lt(self, o: impl Into<Self>) -> M<L> {
        self.cmp(o.into(), |a, b| a < b)
    }
    #[inline(always)]
    fn le(self, o: impl Into<Self>) -> M<L> {
        self.cmp(o.into(), |a, b| a <= b)
    }
    #[inline(always)]
    fn gt(self, o: impl Into<Self>) -> M<L> {
        self.cmp(o.into(), |a, b| a > b)
    }
    #[inline(always)]
    fn ge(self, o: impl Into<Self>) -> M<L> {
        self.cmp(o.into(), |a, b| a >= b)
    }
    #[inline(always)]
    fn eq(self, o: impl Into<Self>) -> M<L> {
        self.cmp(o.into(), |a, b| a == b)
    }
    #[inline(always)]
    fn bits(self) -> U<L> {
        let mut r = [0; L];
        for l in 0..L {
            r[l] = self.0[l].to_bits();
        }
        U(r)
    }
    #[inline(always)]
    fn from_bits(u: U<L>) -> Self {
        let mut r = [0.0; L];
        for l in 0..L {
            r[l] = f64::from_bits(u.0[l]);
        }
        F(r)
    }
    /// Uniforms in [0, 1) from u64 lanes ([`unif`]).
    #[inline(always)]
    fn unif(b: &[u64; L]) -> Self {
        let mut r = [0.0; L];
        for l in 0..L {
            r[l] = unif(b[l]);
        }
        F(r)
    }
}

impl<const L: usize> From<f64> for F<L> {
    #[inline(always)]
    fn from(x: f64) -> Self {
        F::splat(x)
    }
}

/// `if m { a } else { b }`, lane by lane.
#[inline(always)]
fn select<const L: usize>(m: M<L>, a: impl Into<F<L>>, b: impl Into<F<L>>) -> F<L> {
    let (a, b) = (a.into(), b.into());
    let mut r = [0.0; L];
    for l in 0..L {
        r[l] = if m.0[l] { a.0[l] } else { b.0[l] };
    }
    F(r)
}

/// `impl $tr for $T`: the operator lane by lane.
macro_rules! lane_op {
    ($T:ident, $tr:ident, $f:ident, $op:tt) => {
        impl<const L: usize> $tr for $T<L> {
            type Output = $T<L>;
            #[inline(always)]
            fn $f(self, o: $T<L>) -> $T<L> {
                let mut r = self.0;
                for l in 0..L {
                    r[l] = r[l] $op o.0[l];
                }
                $T(r)
            }
        }
    };
}

/// A float operator lane by lane, also with a scalar on either side.
macro_rules! float_op {
    ($tr:ident, $f:ident, $op:tt) => {
        lane_op!(F, $tr, $f, $op);
        impl<const L: usize> $tr<f64> for F<L> {
            type Output = F<L>;
            #[inline(always)]
            fn $f(self, o: f64) -> F<L> {
                self $op F::splat(o)
            }
        }
        impl<const L: usize> $tr<F<L>> for f64 {
            type Output = F<L>;
            #[inline(always)]
            fn $f(self, o: F<L>) -> F<L> {
                F::splat(self) $op o
            }
        }
    };
}
float_op!(Add, add, +);
float_op!(Sub, sub, -);
float_op!(Mul, mul, *);
float_op!(Div, div, /);

impl<const L: usize> Neg for F<L> {
    type Output = F<L>;
    #[inline(always)]
    fn neg(self) -> F<L> {
        self.map(|x| -x)
    }
}

impl<const L: usize> U<L> {
    #[inline(always)]
    fn map(self, f: impl Fn(u64) -> u64) -> Self {
        U(self.0.map(f))
    }
    #[inline(always)]
    fn add(self, o: U<L>) -> Self {
        let mut r = self.0;
        for l in 0..L {
            r[l] = r[l].wrapping_add(o.0[l]);
        }
        U(r)
    }
    #[inline(always)]
    fn gt(self, c: u64) -> M<L> {
        let mut r = [false; L];
        for l in 0..L {
            r[l] = self.0[l] > c;
        }
        M(r)
    }
}

impl<const L: usize> M<L> {
    #[inline(always)]
    fn any(self) -> bool {
        let mut a = false;
        for l in 0..L {
            a |= self.0[l];
        }
        a
    }
    /// 1 where set, 0 elsewhere.
    #[inline(always)]
    fn ones(self) -> U<L> {
        let mut r = [0; L];
        for l in 0..L {
            r[l] = self.0[l] as u64;
        }
        U(r)
    }
}

lane_op!(M, BitAnd, bitand, &);
lane_op!(M, BitOr, bitor, |);

impl<const L: usize> Not for M<L> {
    type Output = M<L>;
    #[inline(always)]
    fn not(self) -> M<L> {
        let mut r = self.0;
        for x in &mut r {
            *x = !*x;
        }
        M(r)
    }
}

/// The single lane of a one-lane result.
#[inline(always)]
fn one(x: F<1>) -> f64 {
    x.0[0]
}

/// Inversion below this lambda, PTRS (valid from 10) from it: inversion's ~lambda steps are
/// cheaper than PTRS just above 10, where most tries need its logarithmic acceptance test.
pub const INVERSION_BELOW: f64 = 20.0;

/// Lambdas from here on (and infinity) go to the scalar sampler: the vector passes' floor needs
/// `|x| < 2^51`.
const HUGE_LAMBDA: f64 = 1.125899906842624e15; // 2^50

/// PTRS tries whose candidate `k` reaches 2^51 are rejected in the vector passes (their
/// acceptance probability is below 1e-300 for every lambda below [`HUGE_LAMBDA`]).
const K_LIMIT: f64 = 2251799813685248.0; // 2^51

/// A uniform double in [0, 1) on the grid `j 2^-52` from the top 52 bits of `bits`
/// (exponent-insertion: `1.mantissa - 1`, exact and branch-free).
#[inline(always)]
pub fn unif(bits: u64) -> f64 {
    f64::from_bits(0x3FF0_0000_0000_0000 | (bits >> 12)) - 1.0
}

/// 1.5 * 2^52: adding and subtracting it rounds a double with |x| < 2^51 to an integer.
const SHIFT: f64 = 6755399441055744.0;

/// `floor(x)` for |x| < 2^51 by rounding with the 1.5 * 2^52 shift (exact under the default
/// round-to-nearest mode; vectorises, unlike a float-to-int conversion on baseline x86-64). It
/// returns infinities unchanged.
#[inline(always)]
fn floor_fast<const L: usize>(x: F<L>) -> F<L> {
    let t = (x + SHIFT) - SHIFT;
    select(t.gt(x), t - 1.0, t)
}

/// `x.floor()` without a libm call (the default x86-64 target has no rounding instruction);
/// exact for |x| < 2^63, and passes infinities and NaN to `f64::floor`.
fn floor(x: f64) -> f64 {
    if x.abs() < 9.0e18 {
        let t = x as i64 as f64;
        if t > x {
            t - 1.0
        } else {
            t
        }
    } else {
        x.floor()
    }
}

/// Exact `floor(x)` for any x: [`floor_fast`] below 2^51, [`floor`] beyond.
fn floor_any(x: f64) -> f64 {
    if x.abs() < 2.0e15 {
        one(floor_fast(F([x])))
    } else {
        floor(x)
    }
}

const LN2_HI: f64 = 6.931_471_803_691_238_164_9e-1;
const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;

/// `e^x` for -708 <= x <= 709 (fdlibm's algorithm, error below one ulp): `x = n ln 2 + r`,
/// `|r| <= ln(2)/2`, a rational approximation of `e^r`, scaled by `2^n` through the exponent
/// bits. Branch-free; outside the range the result is meaningless.
pub fn exp(x: f64) -> f64 {
    one(exp_v(F([x])))
}

#[inline(always)]
fn exp_v<const L: usize>(x: F<L>) -> F<L> {
    const INV_LN2: f64 = std::f64::consts::LOG2_E;
    const P1: f64 = 1.666_666_666_666_660_190_37e-1;
    const P2: f64 = -2.777_777_777_701_559_338_42e-3;
    const P3: f64 = 6.613_756_321_437_934_361_17e-5;
    const P4: f64 = -1.653_390_220_546_525_153_9e-6;
    const P5: f64 = 4.138_136_797_057_238_460_39e-8;
    // n = round(x / ln 2), as an integer-valued double and in the low bits of `t`.
    let t = x * INV_LN2 + SHIFT;
    let n = t - SHIFT;
    let hi = x - n * LN2_HI; // exact: LN2_HI ends in zero bits and |n| < 2^11
    let lo = n * LN2_LO;
    let r = hi - lo;
    let rr = r * r;
    let c = r - rr * (P1 + rr * (P2 + rr * (P3 + rr * (P4 + rr * P5))));
    let y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi);
    // 2^n from n's two's-complement bits: (n + 1023) << 52.
    let e = t
        .bits()
        .map(|b| b.wrapping_sub(SHIFT.to_bits()).wrapping_add(1023) << 52);
    y * F::from_bits(e)
}

/// `ln(y)` for y = 0 (giving -infinity) or a positive normal finite double (fdlibm's algorithm,
/// error below one ulp): `y = 2^e m` with `m` in [sqrt(2)/2, sqrt(2)), `f = m - 1`,
/// `s = f / (2 + f)` and a polynomial in `s^2`. Branch-free; subnormal, negative, infinite or NaN
/// arguments give meaningless results.
pub fn ln(y: f64) -> f64 {
    one(ln_v(F([y])))
}

#[inline(always)]
fn ln_v<const L: usize>(y: F<L>) -> F<L> {
    const LG1: f64 = 6.666_666_666_666_735_130e-1;
    const LG2: f64 = 3.999_999_999_940_941_908e-1;
    const LG3: f64 = 2.857_142_874_366_239_149e-1;
    const LG4: f64 = 2.222_219_843_214_978_396e-1;
    const LG5: f64 = 1.818_357_216_161_805_012e-1;
    const LG6: f64 = 1.531_383_769_920_937_332e-1;
    const LG7: f64 = 1.479_819_860_511_658_591e-1;
    const SQRT2_BITS: u64 = 0x3FF6_A09E_667F_3BCD;
    let bits = y.bits();
    let m = bits.map(|b| (b & 0x000F_FFFF_FFFF_FFFF) | 0x3FF0_0000_0000_0000); // [1, 2)
    let big = m.gt(SQRT2_BITS).ones();
    let m = m.add(big.map(|b| (b << 52).wrapping_neg())); // halved when above sqrt(2)
                                                          // e = (biased exponent + big) - 1023 as a double, exactly, without an integer conversion.
    let e = F::from_bits(
        bits.map(|b| b >> 52)
            .add(big)
            .map(|b| 0x4330_0000_0000_0000 | b),
    ) - 4_503_599_627_371_519.0;
    let f = F::from_bits(m) - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * (LG2 + w * (LG4 + w * LG6));
    let t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)));
    let r = t2 + t1;
    let hfsq = 0.5 * f * f;
    let v = e * LN2_HI - ((hfsq - (s * (hfsq + r) + e * LN2_LO)) - f);
    select(y.eq(0.0), f64::NEG_INFINITY, v)
}

/// `ln(1 + t)` for t > -1 with 1 + t normal (Kahan's form `ln(u) (t / (u - 1))`, `u = 1 + t`,
/// accurate to a few ulps relative to the result even for tiny t).
pub fn ln_1p(t: f64) -> f64 {
    one(ln_1p_v(F([t])))
}

#[inline(always)]
fn ln_1p_v<const L: usize>(t: F<L>) -> F<L> {
    let u = 1.0 + t;
    let d = u - 1.0;
    select(d.eq(0.0), t, ln_v(u) * (t / d))
}

/// `ln(2 pi) / 2`.
const HALF_LN_2PI: f64 = 0.5 * 1.837_877_066_409_345_3;

/// The coefficients of numpy's `random_loggam` Stirling series.
const LOGGAM_A: [f64; 10] = [
    8.333333333333333e-02,
    -2.777777777777778e-03,
    7.936507936507937e-04,
    -5.952380952380952e-04,
    8.417508417508418e-04,
    -1.917526917526918e-03,
    6.41025641025641e-03,
    -2.955065359477124e-02,
    1.796443723688307e-01,
    -1.39243221690590e+00,
];

/// `S(x) = sum_j A_j x^-(2j+1)` with numpy's ten coefficients, in Horner form in `1/x^2`.
#[inline(always)]
fn stirling_v<const L: usize>(x0: F<L>) -> F<L> {
    let r = 1.0 / x0;
    let x2 = r * r;
    let mut gl0 = F::splat(LOGGAM_A[9]);
    for k in (0..9).rev() {
        gl0 = gl0 * x2 + LOGGAM_A[k];
    }
    gl0 * r
}

/// ln Gamma(x) for x >= 1 as numpy's `random_loggam` (Stirling series, shifted up to 7), with
/// this module's [`ln`].
pub fn loggam(x: f64) -> f64 {
    if x == 1.0 || x == 2.0 {
        return 0.0;
    }
    let n = if x < 7.0 { (7.0 - x) as i64 } else { 0 };
    let mut x0 = x + n as f64;
    let mut gl = one(stirling_v(F([x0]))) + HALF_LN_2PI + (x0 - 0.5) * ln(x0) - x0;
    for _ in 0..n {
        gl -= ln(x0 - 1.0);
        x0 -= 1.0;
    }
    gl
}

/// PTRS constants `(b, a, v_r)` of lambda (numpy's `random_poisson_ptrs`).
#[inline(always)]
fn ptrs_consts<const L: usize>(lam: F<L>) -> (F<L>, F<L>, F<L>) {
    let b = 0.931 + 2.53 * lam.sqrt();
    let a = -0.059 + 0.02483 * b;
    (b, a, 0.9277 - 3.6224 / (b - 2.0))
}

/// Sentinels of the lane passes: a rejected try, and a try whose test needs the scalar form.
const REJECT: f64 = -1.0;
const DEFER: f64 = -2.0;

/// A PTRS try's `us = 0.5 - |u0 - 1/2|` and candidate `k` (numpy's names).
#[inline(always)]
fn ptrs_candidate<const L: usize>(lam: F<L>, a: F<L>, b: F<L>, u0: F<L>) -> (F<L>, F<L>) {
    let u = u0 - 0.5;
    let us = 0.5 - u.abs();
    (us, floor_fast((2.0 * a / us + b) * u + lam + 0.43))
}

/// PTRS's squeeze for one try (`u0`, `v` uniforms in [0, 1)) at 20 <= lambda < 2^50: the
/// accepted k, or [`REJECT`] when the try is outside the squeeze (about one in four) and needs
/// [`ptrs_test`].
#[inline(always)]
fn ptrs_squeeze<const L: usize>(lam: F<L>, u0: F<L>, v: F<L>) -> F<L> {
    let (b, a, vr) = ptrs_consts(lam);
    let (us, k) = ptrs_candidate(lam, a, b, u0);
    select(us.ge(0.07) & v.le(vr), k, REJECT)
}

/// The rest of a PTRS try that [`ptrs_squeeze`] did not accept (lambda < 2^50): its k, or
/// [`REJECT`], or [`DEFER`] when `k + 1 < 7` (then [`ptrs_test_small`] decides).
///
/// For `x = k + 1 >= 7` the exact test, numpy's
/// `ln(V invalpha / (a/us^2 + b)) <= -lam + k ln(lam) - loggam(k + 1)` with `loggam` the
/// Stirling series `(x - 1/2) ln x - x + ln(2 pi)/2 + S(x)`, is evaluated in the equivalent form
/// `ln(V invalpha sqrt(x) / (a/us^2 + b)) + k ln1p((x - lam)/lam) <= (x - lam) - ln(2 pi)/2 - S(x)`.
#[inline(always)]
fn ptrs_test<const L: usize>(lam: F<L>, u0: F<L>, v: F<L>) -> F<L> {
    let (b, a, _) = ptrs_consts(lam);
    let (us, k) = ptrs_candidate(lam, a, b, u0);
    let invalpha = 1.1239 + 1.1328 / (b - 3.4);
    let x = k + 1.0;
    let y = v * invalpha * x.sqrt() / (a / (us * us) + b);
    let lhs = ln_v(y) + k * ln_1p_v((x - lam) / lam);
    let rhs = (x - lam) - HALF_LN_2PI - stirling_v(x);
    let reject = !(k.ge(0.0) & k.lt(K_LIMIT)) | (us.lt(0.013) & v.gt(us));
    let r = select(x.lt(7.0), DEFER, select(lhs.le(rhs), k, REJECT));
    select(reject, REJECT, r)
}

/// A whole PTRS try (squeeze, then test) on `L` lanes; deferred lanes stay [`DEFER`].
#[inline(always)]
fn ptrs_try_v<const L: usize>(lam: F<L>, u0: F<L>, v: F<L>) -> F<L> {
    let k = ptrs_squeeze(lam, u0, v);
    select(k.eq(REJECT), ptrs_test(lam, u0, v), k)
}

/// numpy's acceptance test itself, for the tries [`ptrs_test`] defers (`0 <= k <= 5`).
fn ptrs_test_small(lam: f64, u0: f64, v: f64) -> f64 {
    let (b, a, _) = ptrs_consts(F([lam]));
    let (us, k) = ptrs_candidate(F([lam]), a, b, F([u0]));
    let (b, a, us, k) = (one(b), one(a), one(us), one(k));
    let invalpha = 1.1239 + 1.1328 / (b - 3.4);
    if ln(v * invalpha / (a / (us * us) + b)) <= -lam + k * ln(lam) - loggam(k + 1.0) {
        k
    } else {
        REJECT
    }
}

/// A lane's PTRS result with a deferred try decided by [`ptrs_test_small`].
#[inline(always)]
fn finish(k: f64, lam: f64, u: f64, v: f64) -> f64 {
    if k == DEFER {
        ptrs_test_small(lam, u, v)
    } else {
        k
    }
}

/// One whole PTRS try at 20 <= lambda < 2^50, exactly as the lane passes make it: k or
/// [`REJECT`].
fn ptrs_try(lam: f64, u0: f64, v: f64) -> f64 {
    finish(one(ptrs_try_v(F([lam]), F([u0]), F([v]))), lam, u0, v)
}

/// One PTRS try at lambda >= 2^50 (finite): the same test with an exact floor and no bound on
/// k.
fn ptrs_try_huge(lam: f64, u0: f64, v: f64) -> f64 {
    let (b, a, vr) = ptrs_consts(F([lam]));
    let (b, a, vr) = (one(b), one(a), one(vr));
    let u = u0 - 0.5;
    let us = 0.5 - u.abs();
    let k = floor_any((2.0 * a / us + b) * u + lam + 0.43);
    if us >= 0.07 && v <= vr {
        return k;
    }
    if k < 0.0 || (us < 0.013 && v > us) {
        return REJECT;
    }
    let invalpha = 1.1239 + 1.1328 / (b - 3.4);
    let x = k + 1.0;
    let y = v * invalpha * x.sqrt() / (a / (us * us) + b);
    let rhs = (x - lam) - HALF_LN_2PI - one(stirling_v(F([x])));
    if ln(y) + k * ln_1p((x - lam) / lam) <= rhs {
        k
    } else {
        REJECT
    }
}

/// PTRS with fresh uniforms (two `next_u64` per try, `u` then `v`) until a try is accepted;
/// infinity for an infinite lambda.
fn ptrs_draw<R: RngCore + ?Sized>(rng: &mut R, lam: f64) -> f64 {
    if lam == f64::INFINITY {
        return lam;
    }
    let try_once = if lam < HUGE_LAMBDA {
        ptrs_try
    } else {
        ptrs_try_huge
    };
    loop {
        let u = unif(rng.next_u64());
        let v = unif(rng.next_u64());
        let k = try_once(lam, u, v);
        if k >= 0.0 {
            return k;
        }
    }
}

/// Inversion by sequential search for `L` pixels at once (0 < lambda < 20, uniform `u` each):
/// per lane, 0 when `u <= 1 - lambda` (a lower bound of `exp(-lambda)`), otherwise the least x
/// with `u <= F_x`, the CDF summed term by term (`p_0 = F_0 = exp(-lambda)`,
/// `p_t = p_{t-1} (lambda (1/t))`, `F_t = F_{t-1} + p_t`), stopping early only if `p_t`
/// underflows to 0. Lanes that are not drawing use `lambda = u = 0`.
///
/// Branch-free form: every lane runs the same recurrence, and x counts the steps t >= 1 with
/// `u > F_{t-1}` and `p_{t-1} > 0`; since F never decreases and p stays 0 once it is 0, that
/// count is exactly where the sequential search stops, so a lane's result does not depend on
/// `L`, on its neighbours or on how many steps the group runs beyond its own. The group stops,
/// checked every 4 steps, when no lane counts any more.
#[inline(always)]
fn invert_v<const L: usize>(lam: F<L>, u: F<L>) -> F<L> {
    let mut p = exp_v(-lam);
    let mut f = p;
    let mut x = F::splat(0.0);
    let mut t = 0;
    loop {
        for _ in 0..4 {
            t += 1;
            // 1/t from a table while it lasts (the same double as computing it).
            let r = RECIP.get(t).copied().unwrap_or_else(|| 1.0 / t as f64);
            x = x + select(u.gt(f) & p.gt(0.0), 1.0, 0.0);
            p = p * (lam * r);
            f = f + p;
        }
        if !(u.gt(f) & p.gt(0.0)).any() {
            break;
        }
    }
    select(u.le(1.0 - lam), 0.0, x)
}

/// `1/t` for t < 64 (`RECIP[0]` unused).
const RECIP: [f64; 64] = {
    let mut r = [0.0; 64];
    let mut t = 1;
    while t < 64 {
        r[t] = 1.0 / t as f64;
        t += 1;
    }
    r
};

/// One inversion draw (0 < lambda < 20) with the uniform `u`, as [`poisson_fill`] makes it.
fn invert(lam: f64, u: f64) -> f64 {
    one(invert_v(F([lam]), F([u])))
}

/// One Poisson(lambda) draw (the scalar form of [`poisson_fill`], same algorithms): inversion
/// (one uniform) for lambda < 20, PTRS (two uniforms per try) otherwise; 0 for lambda <= 0 or
/// NaN without drawing; infinity for an infinite lambda. Uniforms are [`unif`] of successive
/// `next_u64` values.
pub fn poisson<R: RngCore + ?Sized>(rng: &mut R, lam: f64) -> f64 {
    if lam.is_nan() || lam <= 0.0 {
        0.0
    } else if lam < INVERSION_BELOW {
        invert(lam, unif(rng.next_u64()))
    } else {
        ptrs_draw(rng, lam)
    }
}

/// Reusable buffers of [`poisson_fill`] (one per thread; no allocation once grown).
#[derive(Default, Debug)]
pub struct PoissonScratch {
    bits: Vec<u64>,
    todo: Vec<usize>,
    spare: Vec<usize>,
    huge: Vec<usize>,
}

/// Replace every lambda in `values` by one Poisson(lambda) draw (exact, as [`poisson`]), for a
/// whole diffraction pattern at a time, with the widest instruction set of this CPU
/// ([`poisson_fill_with`] for the order in which uniforms are used).
pub fn poisson_fill<R: RngCore + ?Sized>(rng: &mut R, values: &mut [f64], s: &mut PoissonScratch) {
    poisson_fill_with(Simd::detect(), rng, values, s)
}

/// [`poisson_fill`] on a chosen instruction set (16 lanes under AVX-512, 8 under AVX2, 2
/// otherwise; a level this CPU lacks falls back to the widest it has). The RNG consumption is fixed by the values alone, so
/// results are deterministic and the same on every instruction set. For `n` values:
///
/// 1. One block of `2n` u64 is drawn (`Rng::fill`): pixel `i` gets `u_i` (u64 number `i`) and
///    `v_i` (number `n + i`), whatever its lambda.
/// 2. lambda <= 0 or NaN gives 0. Small pixels (0 < lambda < 20): inversion with `u_i`. Large
///    pixels (20 <= lambda < 2^50): one PTRS try with `(u_i, v_i)` (a candidate `k >= 2^51` is
///    rejected).
/// 3. Rounds, while some large pixels' tries were rejected: with `m` such pixels, in index
///    order, one block of `2m` u64 is drawn; the `t`-th pixel tries again with u64 numbers `t`
///    and `m + t`.
/// 4. Huge pixels (lambda >= 2^50, including infinity), in index order, with [`poisson`].
pub fn poisson_fill_with<R: RngCore + ?Sized>(
    simd: Simd,
    rng: &mut R,
    values: &mut [f64],
    s: &mut PoissonScratch,
) {
    let n = values.len();
    s.bits.resize(2 * n, 0);
    rng.fill(&mut s.bits[..]);
    s.todo.clear();
    s.huge.clear();
    lane_pass(simd, true, values, s);
    while !s.todo.is_empty() {
        let m = s.todo.len();
        s.bits.resize(2 * m, 0);
        rng.fill(&mut s.bits[..]);
        lane_pass(simd, false, values, s);
    }
    for &i in &s.huge {
        values[i] = poisson(rng, values[i]);
    }
}

/// One pass of [`poisson_fill_with`] (`first`: steps 1-2, else one round of step 3) on the
/// chosen instruction set.
fn lane_pass(simd: Simd, first: bool, values: &mut [f64], s: &mut PoissonScratch) {
    match simd.usable() {
        // SAFETY: `usable` checked that the CPU has the features of each function.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 => unsafe { lane_pass_avx512(first, values, s) },
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 => unsafe { lane_pass_avx2(first, values, s) },
        _ => lane_pass_generic::<2>(first, values, s),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2,fma")]
unsafe fn lane_pass_avx512(first: bool, values: &mut [f64], s: &mut PoissonScratch) {
    lane_pass_generic::<16>(first, values, s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn lane_pass_avx2(first: bool, values: &mut [f64], s: &mut PoissonScratch) {
    lane_pass_generic::<8>(first, values, s)
}

#[inline(always)]
fn lane_pass_generic<const L: usize>(first: bool, values: &mut [f64], s: &mut PoissonScratch) {
    if first {
        first_pass::<L>(values, s);
    } else {
        retry_pass::<L>(values, s);
    }
}

/// Steps 1-2: every pixel, `L` neighbours at a time (the last group padded with lambda 0).
/// Small pixels get their draw, large ones their squeeze; the large pixels whose try is outside
/// the squeeze keep their lambda and are listed in `s.todo` (index order), then get the
/// logarithmic test, and those it rejects stay listed for step 3. Huge pixels go to `s.huge`.
#[inline(always)]
fn first_pass<const L: usize>(values: &mut [f64], s: &mut PoissonScratch) {
    let n = values.len();
    let (bu, bv) = s.bits.split_at(n);
    s.todo.resize(n + L, 0);
    let mut nt = 0;
    let full = n - n % L;
    for ((x, (u, v)), start) in values[..full]
        .chunks_exact_mut(L)
        .zip(bu.chunks_exact(L).zip(bv.chunks_exact(L)))
        .zip((0..).step_by(L))
    {
        let (Some(x), Some(u), Some(v)) = (
            x.first_chunk_mut::<L>(),
            u.first_chunk::<L>(),
            v.first_chunk::<L>(),
        ) else {
            continue;
        };
        first_group(x, u, v, start, &mut s.todo, &mut nt, &mut s.huge);
    }
    if full < n {
        let w = n - full;
        let (mut x, mut u, mut v) = ([0.0; L], [0u64; L], [0u64; L]);
        x[..w].copy_from_slice(&values[full..]);
        u[..w].copy_from_slice(&bu[full..]);
        v[..w].copy_from_slice(&bv[full..]);
        first_group(&mut x, &u, &v, full, &mut s.todo, &mut nt, &mut s.huge);
        values[full..].copy_from_slice(&x[..w]);
    }
    s.todo.truncate(nt);
    // The logarithmic test of the tries outside the squeeze.
    std::mem::swap(&mut s.todo, &mut s.spare);
    let list = &s.spare;
    try_listed::<L>(
        values,
        list,
        |t| (bu[list[t]], bv[list[t]]),
        false,
        &mut s.todo,
    );
}

/// Steps 1-2 for the `L` pixels from `start` on (`x` their lambdas, replaced by draws; `ub`,
/// `vb` their u64): large pixels outside the squeeze keep their lambda and are appended to
/// `todo` (`todo[*nt..]`, which has room for `L` more), huge ones to `huge`.
#[inline(always)]
fn first_group<const L: usize>(
    x: &mut [f64; L],
    ub: &[u64; L],
    vb: &[u64; L],
    start: usize,
    todo: &mut [usize],
    nt: &mut usize,
    huge: &mut Vec<usize>,
) {
    let lam = F(*x);
    let u = F::unif(ub);
    let small = lam.gt(0.0) & lam.lt(INVERSION_BELOW);
    let large = lam.ge(INVERSION_BELOW) & lam.lt(HUGE_LAMBDA);
    let huge_lanes = lam.ge(HUGE_LAMBDA);
    let mut out = F::splat(0.0);
    if small.any() {
        let k = invert_v(select(small, lam, 0.0), select(small, u, 0.0));
        out = select(small, k, out);
    }
    if large.any() {
        let k = ptrs_squeeze(select(large, lam, INVERSION_BELOW), u, F::unif(vb));
        let retry = large & k.eq(REJECT);
        out = select(retry, lam, select(large, k, out));
        for (l, &r) in retry.0.iter().enumerate() {
            todo[*nt] = start + l;
            *nt += r as usize;
        }
    }
    if huge_lanes.any() {
        for l in 0..L {
            if huge_lanes.0[l] {
                huge.push(start + l);
            }
        }
        out = select(huge_lanes, lam, out);
    }
    *x = out.0;
}

/// PTRS tries for the listed pixels (`list[t]`, lambda in `values`, u64 pair `bits(t)`), `L`
/// at a time: accepted draws replace the lambdas; the rejected pixels are appended to `kept`
/// in order (their lambda left in place). `whole`: a whole try, else only the test (the
/// squeeze already failed).
#[inline(always)]
fn try_listed<const L: usize>(
    values: &mut [f64],
    list: &[usize],
    bits: impl Fn(usize) -> (u64, u64),
    whole: bool,
    kept: &mut Vec<usize>,
) {
    kept.clear();
    for start in (0..list.len()).step_by(L) {
        let w = L.min(list.len() - start);
        let (mut lam, mut ub, mut vb) = ([INVERSION_BELOW; L], [0u64; L], [0u64; L]);
        for l in 0..w {
            lam[l] = values[list[start + l]];
            (ub[l], vb[l]) = bits(start + l);
        }
        let (lam, u, v) = (F(lam), F::unif(&ub), F::unif(&vb));
        let k = if whole {
            ptrs_try_v(lam, u, v)
        } else {
            ptrs_test(lam, u, v)
        };
        for l in 0..w {
            let i = list[start + l];
            let k = finish(k.0[l], lam.0[l], u.0[l], v.0[l]);
            if k == REJECT {
                kept.push(i);
            } else {
                values[i] = k;
            }
        }
    }
}

/// One round of step 3: each listed pixel (lambda in `values`) tries again with its two u64
/// from `s.bits`; the rejected stay listed, in order.
#[inline(always)]
fn retry_pass<const L: usize>(values: &mut [f64], s: &mut PoissonScratch) {
    let m = s.todo.len();
    std::mem::swap(&mut s.todo, &mut s.spare);
    let (bu, bv) = s.bits.split_at(m);
    try_listed::<L>(values, &s.spare, |t| (bu[t], bv[t]), true, &mut s.todo);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Distance in units in the last place between two finite doubles of the same sign.
    fn ulps(a: f64, b: f64) -> u64 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
    }

    /// The RNG of pattern `k` of seed `seed` (as the simulation derives it).
    fn stream(seed: u64, k: u64) -> ChaCha8Rng {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        r.set_stream(1 + k);
        r
    }

    #[test]
    fn exp_and_ln_are_within_one_ulp_of_libm() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut worst = (0, 0, 0);
        for _ in 0..200_000 {
            let x = -40.0 + 60.0 * unif(rng.next_u64());
            worst.0 = worst.0.max(ulps(exp(x), x.exp()));
            // ln over many binades, from 1e-300 to 1e300, and near 1.
            let y = 10f64.powf(-300.0 + 600.0 * unif(rng.next_u64()));
            worst.1 = worst.1.max(ulps(ln(y), y.ln()));
            let y1 = 1.0 + (unif(rng.next_u64()) - 0.5) * 0.1;
            worst.1 = worst.1.max(ulps(ln(y1), y1.ln()));
            let t = 10f64.powf(-20.0 + 21.0 * unif(rng.next_u64()));
            worst.2 = worst.2.max(ulps(ln_1p(t), t.ln_1p()));
            let tn = -0.9 * t.min(1.0);
            worst.2 = worst.2.max(ulps(ln_1p(tn), tn.ln_1p()));
        }
        // libm is correctly rounded or nearly; ours is within an ulp or two of it.
        assert!(worst.0 <= 2, "exp: {} ulps", worst.0);
        assert!(worst.1 <= 2, "ln: {} ulps", worst.1);
        assert!(worst.2 <= 4, "ln_1p: {} ulps", worst.2);
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(ln(1.0), 0.0);
        assert_eq!(ln(0.0), f64::NEG_INFINITY);
        assert_eq!(ln_1p(1e-30), 1e-30);
        assert!((ln(2.0) - std::f64::consts::LN_2).abs() <= f64::EPSILON);
        assert!((exp(-19.99) - (-19.99f64).exp()).abs() < 1e-24);
    }

    #[test]
    fn inversion_lanes_match_the_plain_sequential_search() {
        // The sequential search as written in textbooks, independently of the lane code.
        fn search(lam: f64, u: f64) -> f64 {
            if u <= 1.0 - lam {
                return 0.0;
            }
            let (mut p, mut x) = (exp(-lam), 0.0);
            let mut f = p;
            while u > f && p > 0.0 {
                x += 1.0;
                p *= lam * (1.0 / x);
                f += p;
            }
            x
        }
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        for _ in 0..2000 {
            let mut lam = [0.0; 8];
            let mut u = [0.0; 8];
            for l in 0..8 {
                lam[l] = 20.0 * unif(rng.next_u64()).powi(2);
                u[l] = unif(rng.next_u64());
            }
            u[3] = 1.0 - f64::EPSILON; // the far tail
            let got = invert_v(F(lam), F(u));
            for l in 0..8 {
                assert_eq!(got.0[l], search(lam[l], u[l]), "lam {} u {}", lam[l], u[l]);
            }
        }
    }

    /// `poisson_fill`'s documented order, pixel by pixel through the one-lane functions.
    fn fill_reference(rng: &mut ChaCha8Rng, lams: &[f64]) -> Vec<f64> {
        let n = lams.len();
        let mut bits = vec![0u64; 2 * n];
        rng.fill(&mut bits[..]);
        let mut out = vec![0.0; n];
        let mut todo = Vec::new();
        for (i, &lam) in lams.iter().enumerate() {
            let (u, v) = (unif(bits[i]), unif(bits[n + i]));
            if lam > 0.0 && lam < INVERSION_BELOW {
                out[i] = invert(lam, u);
            } else if (INVERSION_BELOW..HUGE_LAMBDA).contains(&lam) {
                out[i] = ptrs_try(lam, u, v);
                if out[i] == REJECT {
                    todo.push(i);
                }
            }
        }
        while !todo.is_empty() {
            let m = todo.len();
            let mut bits = vec![0u64; 2 * m];
            rng.fill(&mut bits[..]);
            let mut next = Vec::new();
            for (t, &i) in todo.iter().enumerate() {
                out[i] = ptrs_try(lams[i], unif(bits[t]), unif(bits[m + t]));
                if out[i] == REJECT {
                    next.push(i);
                }
            }
            todo = next;
        }
        for (i, &lam) in lams.iter().enumerate() {
            if lam >= HUGE_LAMBDA {
                out[i] = poisson(rng, lam);
            }
        }
        out
    }

    #[test]
    fn every_instruction_set_draws_the_same_bits_in_the_documented_order() {
        // Patterns with every class: zero, NaN, negative, tiny, small, large, huge, infinite,
        // and lengths that leave a partial group of lanes.
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for len in [4096, 4099, 7, 1] {
            let lams: Vec<f64> = (0..len)
                .map(|i| match i % 13 {
                    0 => 0.0,
                    1 => f64::NAN,
                    2 => -3.0,
                    3 => 1e-9,
                    4 if i % 26 == 4 => 3.0e16,
                    4 => f64::INFINITY,
                    5 => 20.0,
                    _ => 10f64.powf(-2.0 + 9.0 * unif(rng.next_u64())),
                })
                .collect();
            let want = fill_reference(&mut stream(9, len as u64), &lams);
            let simds = Simd::available();
            assert_eq!(simds[0], Simd::Baseline);
            for simd in simds {
                let mut got = lams.clone();
                let mut r = stream(9, len as u64);
                poisson_fill_with(simd, &mut r, &mut got, &mut PoissonScratch::default());
                for i in 0..len {
                    assert_eq!(got[i].to_bits(), want[i].to_bits(), "{simd:?} pixel {i}");
                }
                // The stream is left where the reference leaves it.
                let mut r2 = stream(9, len as u64);
                fill_reference(&mut r2, &lams);
                assert_eq!(r.next_u64(), r2.next_u64());
            }
        }
    }

    #[test]
    fn poisson_mean_and_variance_match() {
        let mut rng = ChaCha8Rng::seed_from_u64(2024);
        let n = 100_000;
        for &lam in &[0.3, 4.0, 9.99, 10.0, 37.5, 1000.0, 2.5e6] {
            let xs: Vec<f64> = (0..n).map(|_| poisson(&mut rng, lam)).collect();
            assert!(xs.iter().all(|x| *x >= 0.0 && x.fract() == 0.0));
            let mean = xs.iter().sum::<f64>() / n as f64;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            // Mean and variance within 5 standard errors.
            let se_mean = (lam / n as f64).sqrt();
            assert!((mean - lam).abs() < 5.0 * se_mean, "lam {lam}: mean {mean}");
            let se_var = ((2.0 * lam * lam + lam) / n as f64).sqrt();
            assert!((var - lam).abs() < 5.0 * se_var, "lam {lam}: var {var}");
        }
        // Small lambda: the frequency of 0 matches exp(-lam).
        let lam = 1.5;
        let zeros = (0..n).filter(|_| poisson(&mut rng, lam) == 0.0).count() as f64 / n as f64;
        assert!((zeros - (-lam).exp()).abs() < 0.005);
        assert_eq!(poisson(&mut rng, 0.0), 0.0);
        for x in [
            -2.5,
            -2.0,
            -0.1,
            0.0,
            0.3,
            1.0,
            7.9999,
            1e17,
            -1e300,
            f64::INFINITY,
        ] {
            assert_eq!(floor(x), x.floor(), "{x}");
        }
        assert!((loggam(10.0) - 362880f64.ln()).abs() < 1e-10);
        assert!((loggam(3.5) - 1.2009736023470743).abs() < 1e-10);
        assert!((loggam(40.0) - 106.63176026064346).abs() < 1e-10);
    }

    /// Chi-square statistic and degrees of freedom of `samples` against the Poisson(lam) pmf, in
    /// bins of consecutive counts with at least 20 expected samples (tails pooled).
    fn chi_square(samples: &[f64], lam: f64) -> (f64, usize) {
        let n = samples.len() as f64;
        let mut observed = std::collections::BTreeMap::<u64, f64>::new();
        for s in samples {
            *observed.entry(*s as u64).or_default() += 1.0;
        }
        let pmf = |k: f64| (-lam + k * lam.ln() - loggam(k + 1.0)).exp();
        let kmax = (lam + 20.0 * lam.sqrt() + 30.0) as u64;
        let (mut bins, mut e, mut o, mut e_done, mut o_done) = (Vec::new(), 0.0, 0.0, 0.0, 0.0);
        for k in 0..=kmax {
            e += n * pmf(k as f64);
            o += observed.get(&k).copied().unwrap_or(0.0);
            if e >= 20.0 {
                bins.push((e, o));
                (e_done, o_done) = (e_done + e, o_done + o);
                (e, o) = (0.0, 0.0);
            }
        }
        // Everything above the last closed bin: the rest of the expected and observed mass.
        let (e_tail, o_tail) = (n - e_done, n - o_done);
        if e_tail >= 20.0 || bins.is_empty() {
            bins.push((e_tail, o_tail));
        } else if let Some(last) = bins.last_mut() {
            *last = (last.0 + e_tail, last.1 + o_tail);
        }
        let stat = bins.iter().map(|(e, o)| (o - e) * (o - e) / e).sum();
        (stat, bins.len() - 1)
    }

    /// The chi-square critical value at p = 1e-4 (Wilson-Hilferty).
    fn chi_square_critical(df: usize) -> f64 {
        let d = df.max(1) as f64;
        let c = 2.0 / (9.0 * d);
        d * (1.0 - c + 3.719 * c.sqrt()).powi(3)
    }

    /// `count` draws at `lam` from `poisson_fill`, in 4096-pixel patterns (one stream each) whose
    /// odd pixels hold other lambdas (zero, NaN, negative, small, large, huge), so that every
    /// class and the retry rounds are exercised; returns the even pixels.
    fn fill_samples(lam: f64, count: usize, seed: u64) -> Vec<f64> {
        let others = [0.0, 0.3, f64::NAN, 55.0, -2.0, 7.5, 3.0e15, 1e4];
        let mut scratch = PoissonScratch::default();
        let mut out = Vec::with_capacity(count);
        let mut k = 0;
        while out.len() < count {
            let mut v: Vec<f64> = (0..4096)
                .map(|i| {
                    if i % 2 == 0 {
                        lam
                    } else {
                        others[(i / 2) % others.len()]
                    }
                })
                .collect();
            poisson_fill(&mut stream(seed, k), &mut v, &mut scratch);
            for (i, x) in v.iter().enumerate() {
                let other = others[(i / 2) % others.len()];
                match i % 2 {
                    0 => out.push(*x),
                    // Zero, NaN and negative lambdas give 0.
                    _ if other.is_nan() || other <= 0.0 => assert_eq!(*x, 0.0),
                    _ => assert!(*x >= 0.0 && x.fract() == 0.0),
                }
            }
            k += 1;
        }
        out.truncate(count);
        out
    }

    #[test]
    fn poisson_samplers_match_the_pmf_mean_and_variance() {
        let n = 120_000;
        let lams = [
            0.01, 0.5, 3.0, 9.99, 10.0, 12.0, 19.99, 20.0, 25.0, 100.0, 1e4, 2.5e6,
        ];
        for &lam in &lams {
            let mut rng = ChaCha8Rng::seed_from_u64(77);
            let scalar: Vec<f64> = (0..n).map(|_| poisson(&mut rng, lam)).collect();
            let batch = fill_samples(lam, n, 78);
            // PTRS itself down to 10, where it is valid (the samplers use it from 20).
            let ptrs: Vec<f64> = if lam >= 10.0 {
                (0..n).map(|_| ptrs_draw(&mut rng, lam)).collect()
            } else {
                scalar.clone()
            };
            for (name, xs) in [
                ("poisson", &scalar),
                ("poisson_fill", &batch),
                ("ptrs", &ptrs),
            ] {
                assert!(xs.iter().all(|x| *x >= 0.0 && x.fract() == 0.0));
                let mean = xs.iter().sum::<f64>() / n as f64;
                let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
                // Mean and variance within 5 standard errors.
                let se_mean = (lam / n as f64).sqrt();
                assert!(
                    (mean - lam).abs() < 5.0 * se_mean,
                    "{name} {lam}: mean {mean}"
                );
                let se_var = ((2.0 * lam * lam + lam) / n as f64).sqrt();
                assert!((var - lam).abs() < 5.0 * se_var, "{name} {lam}: var {var}");
                // The whole distribution: chi-square below its p = 1e-4 critical value.
                let (stat, df) = chi_square(xs, lam);
                let crit = chi_square_critical(df);
                assert!(stat < crit, "{name} {lam}: chi2 {stat} df {df} > {crit}");
            }
            // The test has power: draws at 1.05 lambda are rejected (lambda >= 3, where 5% is
            // many standard errors at this sample size).
            if lam >= 3.0 {
                let off = fill_samples(lam * 1.05, n, 79);
                let (stat, df) = chi_square(&off, lam);
                assert!(stat > chi_square_critical(df), "{lam}: 5% off not detected");
            }
        }
    }

    #[test]
    fn ptrs_acceptance_in_two_logarithms_agrees_with_numpys_form() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (mut decided, mut tested) = (0, 0);
        for _ in 0..400_000 {
            let lam = 10f64.powf(1.31 + 5.7 * unif(rng.next_u64()));
            let (u0, v) = (unif(rng.next_u64()), unif(rng.next_u64()));
            let got = one(ptrs_test(F([lam]), F([u0]), F([v])));
            // numpy's random_poisson_ptrs, with libm; its rounding error grows with
            // lam ln lam (about 1e-8 at lam = 1e7).
            let slam = lam.sqrt();
            let b = 0.931 + 2.53 * slam;
            let a = -0.059 + 0.02483 * b;
            let invalpha = 1.1239 + 1.1328 / (b - 3.4);
            let u = u0 - 0.5;
            let us = 0.5 - u.abs();
            let k = ((2.0 * a / us + b) * u + lam + 0.43).floor();
            if k < 0.0 || (us < 0.013 && v > us) {
                assert_eq!(got, REJECT, "lam {lam} k {k}");
                continue;
            }
            tested += 1;
            if k + 1.0 < 7.0 {
                assert_eq!(got, DEFER);
                continue;
            }
            let d =
                (v * invalpha / (a / (us * us) + b)).ln() - (-lam + k * lam.ln() - loggam(k + 1.0));
            if d.abs() > 1e-6 {
                assert_eq!(got, if d <= 0.0 { k } else { REJECT }, "lam {lam} k {k}");
                decided += 1;
            }
        }
        assert!(tested > 300_000 && decided as f64 > 0.999 * tested as f64);
    }

    #[test]
    fn poisson_fill_is_deterministic_and_handles_every_class() {
        let mut scratch = PoissonScratch::default();
        let lams: Vec<f64> = (0..300).map(|i| (i as f64 * 0.37).exp() % 5e4).collect();
        let mut a = lams.clone();
        let mut b = lams.clone();
        poisson_fill(&mut stream(5, 3), &mut a, &mut scratch);
        poisson_fill(&mut stream(5, 3), &mut b, &mut PoissonScratch::default());
        assert_eq!(a, b);
        let mut c = lams.clone();
        poisson_fill(&mut stream(5, 4), &mut c, &mut scratch);
        assert_ne!(a, c);
        // Zero, negative and NaN lambdas give 0 (and use their two u64 like every pixel).
        let mut rng = stream(5, 0);
        let mut z = vec![0.0, -1.0, f64::NAN, -0.0];
        poisson_fill(&mut rng, &mut z, &mut scratch);
        assert_eq!(z, vec![0.0; 4]);
        let mut skip = stream(5, 0);
        let mut eight = [0u64; 8];
        skip.fill(&mut eight[..]);
        assert_eq!(rng.next_u64(), skip.next_u64());
        // Infinite lambda gives infinity; a huge one an integer within 10 sd.
        let mut h = vec![f64::INFINITY, 3.0e16];
        poisson_fill(&mut rng, &mut h, &mut scratch);
        assert_eq!(h[0], f64::INFINITY);
        assert!((h[1] - 3.0e16).abs() < 10.0 * 3.0e16f64.sqrt() && h[1].fract() == 0.0);
        assert_eq!(poisson(&mut rng, f64::INFINITY), f64::INFINITY);
        // The vector-friendly floor is exact below 2^51 and for the uniforms' extremes.
        for x in [
            -2.5,
            -2.0,
            -0.1,
            0.0,
            0.3,
            1.0,
            7.9999,
            4.5e15 / 3.0,
            -1e15 - 0.5,
        ] {
            assert_eq!(one(floor_fast(F([x]))), x.floor(), "{x}");
            assert_eq!(floor_any(x), x.floor(), "{x}");
        }
        assert_eq!(floor_any(1e300), 1e300);
        assert_eq!(one(floor_fast(F([f64::NEG_INFINITY]))), f64::NEG_INFINITY);
        assert_eq!(unif(0), 0.0);
        assert_eq!(unif(u64::MAX), 1.0 - f64::EPSILON);
    }
}
