//! Micro-benchmark of the PINN's building blocks (conv, pool, upsample, physics), forward and
//! backward, to see where training time goes. `cargo bench --bench train_ops`.

mod common;
use candle_core::{DType, Device, Tensor, Var};
use common::cpu_seconds;
use std::time::Instant;
use studymake::science::model::kernels::{conv3x3_with, ConvAlgo};
use studymake::science::model::network::{conv3x3, max_pool2, upsample2};

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

fn main() {
    // As the training worker does (freed buffers stay in the heap: no fresh pages per layer).
    studymake::science::model::tune_allocator();
    // `-- algos [NAME]`: only the algorithms whose name contains NAME.
    let args: Vec<String> = std::env::args().collect();
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
