//! Training throughput of the PINN (forward + backward + Adam step) at N = 64, batch 16.
//! Usage: `cargo bench --bench train -- [gridsize] [n_filters_scale] [batches]`; prints
//! groups/second, a per-stage breakdown and the process's peak resident memory.

mod common;
use candle_core::{DType, Device, Tensor};
use common::{cpu_seconds, numeric_args};
use ndarray::Array2;
use num_complex::Complex32;
use rand::{Rng, SeedableRng};
use std::time::Instant;
use studymake_pinn::adam::{keras_params, FusedAdamW};
use studymake_pinn::network::ConvAlgo;
use studymake_pinn::Pinn;

fn peak_rss_mib() -> f64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn main() {
    let args = numeric_args();
    let gridsize = args.first().copied().unwrap_or(1);
    let f = args.get(1).copied().unwrap_or(1);
    let batches = args.get(2).copied().unwrap_or(10);
    if std::env::var_os("NO_TUNE").is_none() {
        studymake_pinn::tune_allocator();
    }
    // BENCH_SUBNORMALS=keep: IEEE subnormals (as before flush_subnormals), for a comparison.
    if std::env::var("BENCH_SUBNORMALS").as_deref() != Ok("keep") {
        studymake_pinn::flush_subnormals_everywhere();
    }
    let (n, b) = (64usize, 16usize);
    let c = gridsize * gridsize;
    let probe = Array2::from_shape_fn((n, n), |(i, j)| {
        let r = ((i as f64 - 31.5).powi(2) + (j as f64 - 31.5).powi(2)).sqrt();
        Complex32::new((0.5 * (1.0 - (r - 11.0).tanh())) as f32, 0.0)
    });
    let mut model = Pinn::new(&probe, gridsize, f, 1e9, 0).expect("model");
    // BENCH_CONV=im2col: every convolution by im2col + gemm (the algorithm before Winograd),
    // for a same-session comparison.
    if std::env::var("BENCH_CONV").is_ok_and(|v| v == "im2col") {
        model.net.algo = ConvAlgo::Im2col;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let x: Vec<f32> = (0..b * n * n * c)
        .map(|_| rng.random_range(0.0..2.0))
        .collect();
    let x = Tensor::from_vec(x, (b, n, n, c), &Device::Cpu).expect("x");
    let shifts: Vec<Vec<(f64, f64)>> = (0..b)
        .map(|_| {
            (0..c)
                .map(|_| {
                    if gridsize == 1 {
                        (0.0, 0.0)
                    } else {
                        (rng.random_range(-3.0..3.0), rng.random_range(-3.0..3.0))
                    }
                })
                .collect()
        })
        .collect();
    let mut opt = FusedAdamW::new(model.vars(), keras_params(1e-3)).expect("adam");
    let (mut t_ops, mut t_fwd, mut t_bwd, mut t_opt) = (0.0, 0.0, 0.0, 0.0);
    let mut cpu0 = 0.0;
    // one warm-up step
    for it in 0..=batches {
        let t0 = Instant::now();
        let ops = model
            .physics
            .geom
            .batch_ops(&shifts, DType::F32)
            .expect("ops");
        let t1 = Instant::now();
        let loss = model.loss(&x, &ops).expect("loss");
        let _ = loss.to_scalar::<f32>();
        let t2 = Instant::now();
        let grads = loss.backward().expect("backward");
        let t3 = Instant::now();
        opt.step(&grads).expect("step");
        let t4 = Instant::now();
        if it == 0 {
            cpu0 = cpu_seconds();
        } else {
            t_ops += (t1 - t0).as_secs_f64();
            t_fwd += (t2 - t1).as_secs_f64();
            t_bwd += (t3 - t2).as_secs_f64();
            t_opt += (t4 - t3).as_secs_f64();
        }
    }
    let total = t_ops + t_fwd + t_bwd + t_opt;
    let cpu = cpu_seconds() - cpu0;
    println!(
        "gridsize {gridsize} n_filters_scale {f} batch {b} N {n} threads {} conv {:?}: {:.1} groups/s \
         ({:.1} patterns/s); per batch: ops {:.1} ms, forward {:.1} ms, backward {:.1} ms, \
         adam {:.1} ms; CPU time {:.2} s per batch; peak RSS {:.0} MiB",
        candle_core::utils::get_num_threads(),
        model.net.algo,
        (batches * b) as f64 / total,
        (batches * b * c) as f64 / total,
        1e3 * t_ops / batches as f64,
        1e3 * t_fwd / batches as f64,
        1e3 * t_bwd / batches as f64,
        1e3 * t_opt / batches as f64,
        cpu / batches as f64,
        peak_rss_mib()
    );
}
