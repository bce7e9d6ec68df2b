//! Micro-benchmark of the PINN's building blocks (conv, pool, upsample, physics), forward and
//! backward, to see where training time goes. `cargo bench --bench train_ops`.

use candle_core::{DType, Device, Tensor, Var};
use std::time::Instant;
use studymake::science::model::network::{conv3x3, max_pool2, upsample2};

fn time<F: FnMut()>(label: &str, reps: usize, mut f: F) {
    f();
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    println!(
        "{label}: {:.2} ms",
        1e3 * t.elapsed().as_secs_f64() / reps as f64
    );
}

fn main() {
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
