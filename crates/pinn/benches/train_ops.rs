//! Micro-benchmark of the PINN's building blocks (conv, pool, upsample, physics), forward and
//! backward, to see where training time goes. `cargo bench --bench train_ops`.

mod common;
use candle_core::{DType, Device, Tensor, Var};
use common::cpu_seconds;
use rayon::prelude::*;
use std::time::Instant;
use studymake_pinn::kernels::{conv3x3_with, ConvAlgo};
use studymake_pinn::network::{conv3x3, max_pool2, upsample2};

/// Prints the mean wall, the process CPU time (all threads) per call and the fastest call
/// (the least disturbed by other jobs on a shared machine).
fn time<F: FnMut()>(label: &str, reps: usize, mut f: F) {
    f();
    let (t, c) = (Instant::now(), cpu_seconds());
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t1 = Instant::now();
        f();
        best = best.min(t1.elapsed().as_secs_f64());
    }
    println!(
        "{label}: {:.2} ms (CPU {:.2} ms, fastest {:.2} ms)",
        1e3 * t.elapsed().as_secs_f64() / reps as f64,
        1e3 * (cpu_seconds() - c) / reps as f64,
        1e3 * best
    );
}

/// Forward + backward of the network's main convolution shapes (batch 16, N = 64) by each
/// algorithm. `cargo bench --bench train_ops -- algos`.
fn algos(only: Option<&str>) {
    let dev = Device::Cpu;
    for (hw, c) in [
        (64, 32),
        (32, 64),
        (16, 128),
        (64, 64),
        (32, 128),
        (16, 256),
    ] {
        let x = Var::randn(0f32, 1f32, (16, hw, hw, c), &dev).unwrap();
        let w = Var::randn(0f32, 0.05f32, (9 * c, c), &dev).unwrap();
        let b = Var::zeros(c, DType::F32, &dev).unwrap();
        for algo in [ConvAlgo::Im2col, ConvAlgo::WinogradF2, ConvAlgo::WinogradF4] {
            if only.is_some_and(|o| !format!("{algo:?}").contains(o)) {
                continue;
            }
            time(&format!("{hw}x{hw} {c}->{c} {algo:?} fwd"), 5, || {
                let _ = conv3x3_with(&x, &w, &b, true, algo).unwrap();
            });
            time(&format!("{hw}x{hw} {c}->{c} {algo:?} fwd+bwd"), 5, || {
                let y = conv3x3_with(&x, &w, &b, true, algo).unwrap();
                let _ = y.sum_all().unwrap().backward().unwrap();
            });
        }
    }
}

/// The Winograd F(4x4, 3x3) parts of one layer's training step, each timed alone: the
/// convolution (the forward pass; the input gradient is the same call on the output gradient)
/// and the kernel gradient. `cargo bench --bench train_ops -- wino`.
fn wino() {
    use studymake_pinn::winograd::F4;
    for (hw, cin, cout) in [
        (64, 64, 64),
        (32, 64, 128),
        (32, 128, 128),
        (16, 128, 256),
        (16, 256, 256),
        (8, 256, 128),
    ] {
        // BENCH_SHAPE=64x64 (say): only the layers whose label starts so (for a profile).
        if std::env::var("BENCH_SHAPE").is_ok_and(|s| !format!("{hw}x{hw} {cin}").starts_with(&s)) {
            continue;
        }
        let b = 16;
        let x: Vec<f32> = (0..b * hw * hw * cin)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let g: Vec<f32> = (0..b * hw * hw * cout)
            .map(|i| ((i * 104729) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let w: Vec<f32> = (0..9 * cin * cout)
            .map(|i| ((i * 31) % 100) as f32 / 1000.0 - 0.05)
            .collect();
        let bias = vec![0f32; cout];
        let u = F4.kernel(&w, cin, cout);
        // Direct-convolution FLOPs of one pass, for an equivalent rate.
        let gflop = 2.0 * (b * hw * hw * 9 * cin * cout) as f64 / 1e9;
        let label = format!("{hw}x{hw} {cin}->{cout}");
        time(&format!("{label} kernel transform"), 5, || {
            let _ = F4.kernel(&w, cin, cout);
        });
        // The forward pass's products alone: per chunk of 32 tiles, 36 single-threaded gemms
        // (32 x Cin) (Cin x Cout), on two threads, all buffers cache-warm.
        {
            let tl = 32;
            let chunks = b * (hw / 4) * (hw / 4) / tl;
            let v = vec![0.5f32; 36 * tl * cin];
            let t = Instant::now();
            (0..chunks).into_par_iter().for_each_init(
                || vec![0f32; 36 * tl * cout],
                |z, _| {
                    for p in 0..36 {
                        unsafe {
                            gemm::gemm(
                                tl,
                                cout,
                                cin,
                                z[p * tl * cout..].as_mut_ptr(),
                                1,
                                cout as isize,
                                false,
                                v[p * tl * cin..].as_ptr(),
                                1,
                                cin as isize,
                                u[p * cin * cout..].as_ptr(),
                                1,
                                cout as isize,
                                0.0,
                                1.0,
                                false,
                                false,
                                false,
                                gemm::Parallelism::None,
                            )
                        }
                    }
                },
            );
            let dt = t.elapsed().as_secs_f64();
            let fl = 2.0 * (chunks * 36 * tl * cin * cout) as f64 / 1e9;
            println!(
                "{label}: products alone {:.2} ms, {:.0} GFLOP/s (2 threads)",
                1e3 * dt,
                fl / dt
            );
        }
        let t = Instant::now();
        let reps: usize = std::env::var("BENCH_REPS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(5);
        for _ in 0..reps {
            let _ = F4.conv(&x, &u, &bias, (b, hw, hw, cin), cout, true);
        }
        let conv = t.elapsed().as_secs_f64() / reps as f64;
        let t = Instant::now();
        for _ in 0..reps {
            let _ = F4.kernel_grad(&x, &g, (b, hw, hw, cin), cout);
        }
        let kg = t.elapsed().as_secs_f64() / reps as f64;
        println!(
            "{label}: conv {:.2} ms ({:.0} GFLOP/s direct-equivalent), kernel grad {:.2} ms ({:.0})",
            1e3 * conv,
            gflop / conv,
            1e3 * kg,
            gflop / kg
        );
    }
}

/// The thin layers (first layer and heads at `n_filters_scale` 2, gridsize 1 and 2), forward +
/// backward, by im2col and by the direct convolution. `cargo bench --bench train_ops -- thin`.
fn thin() {
    let dev = Device::Cpu;
    for (hw, cin, cout) in [
        (64, 1, 64),
        (64, 4, 64),
        (32, 64, 1),
        (32, 64, 4),
        (32, 32, 1),
        (32, 32, 4),
    ] {
        let x = Var::randn(0f32, 1f32, (16, hw, hw, cin), &dev).unwrap();
        let w = Var::randn(0f32, 0.05f32, (9 * cin, cout), &dev).unwrap();
        let b = Var::zeros(cout, DType::F32, &dev).unwrap();
        for algo in [ConvAlgo::Im2col, ConvAlgo::Direct] {
            time(&format!("{hw}x{hw} {cin}->{cout} {algo:?} fwd"), 10, || {
                let _ = conv3x3_with(&x, &w, &b, true, algo).unwrap();
            });
            time(
                &format!("{hw}x{hw} {cin}->{cout} {algo:?} fwd+bwd"),
                10,
                || {
                    let y = conv3x3_with(&x, &w, &b, true, algo).unwrap();
                    let _ = y.sum_all().unwrap().backward().unwrap();
                },
            );
        }
    }
}

fn main() {
    // As the training worker does (freed buffers stay in the heap: no fresh pages per layer).
    studymake_pinn::tune_allocator();
    studymake_pinn::flush_subnormals_everywhere();
    // `-- algos [NAME]`: only the algorithms whose name contains NAME.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "thin") {
        return thin();
    }
    if args.iter().any(|a| a == "wino") {
        return wino();
    }
    if let Some(i) = args.iter().position(|a| a == "algos") {
        return algos(args.get(i + 1).map(|s| s.as_str()));
    }
    let dev = Device::Cpu;
    let x = Var::randn(0f32, 1f32, (16, 64, 64, 32), &dev).unwrap();
    let w = Var::randn(0f32, 0.1f32, (288, 32), &dev).unwrap();
    let b = Var::zeros(32, DType::F32, &dev).unwrap();
    time("matmul 65536x288x32", 5, || {
        let c = Tensor::zeros((65536, 288), DType::F32, &dev).unwrap();
        let _ = c.matmul(w.as_tensor()).unwrap();
    });
    time("conv fwd", 3, || {
        let _ = conv3x3(&x, &w, &b).unwrap();
    });
    time("conv fwd+bwd", 3, || {
        let y = conv3x3(&x, &w, &b).unwrap();
        let _ = y.sum_all().unwrap().backward().unwrap();
    });
    time("relu fwd", 5, || {
        let _ = x.relu().unwrap();
    });
    time("pool fwd", 3, || {
        let _ = max_pool2(&x).unwrap();
    });
    time("pool fwd+bwd", 3, || {
        let _ = max_pool2(&x)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
    });
    let s = Var::randn(0f32, 1f32, (16, 32, 32, 32), &dev).unwrap();
    time("upsample fwd+bwd", 3, || {
        let _ = upsample2(&s)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
    });
    let xn = Var::randn(0f32, 1f32, (16, 32, 64, 64), &dev).unwrap();
    let k = Var::randn(0f32, 0.1f32, (32, 32, 3, 3), &dev).unwrap();
    time("candle conv2d fwd+bwd (NCHW)", 2, || {
        let _ = xn
            .conv2d(&k, 1, 1, 1, 1)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
    });
}
