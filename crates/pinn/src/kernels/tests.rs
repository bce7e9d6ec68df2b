//! The kernels against candle's autodiff of the same ops, finite differences, a direct
//! reference in f64, and themselves across thread counts.

use super::conv::*;
use super::pool::*;
use super::*;
use candle_core::{DType, Device, Var};
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
            // keep_where_positive wrote every element.
            let d = crate::raw::assume_written(std::slice::from_ref(d))[0];
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
