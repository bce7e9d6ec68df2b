//! Benchmark of the simulation (run with `bench/simulate.sh`): 5000 patterns, N = 64, a 224 x 224
//! lines object, against the same count of 64 x 64 complex FFTs alone (rustfft through
//! `science::fft::Fft2`), on the same rayon pool. Also times saving the dataset.
//!
//! Usage: `cargo bench --bench simulate -- [N_PATTERNS] [OUT_DIR]`. Prints one `key value` line per
//! figure so that `bench/simulate.sh` can collect them.

use ndarray::{Array3, ArrayViewMut2, Axis};
use num_complex::Complex32;
use rand::RngCore;
use rayon::prelude::*;
use std::time::Instant;
use studymake_science::numerics::fft::Fft2;
use studymake_science::numerics::poisson::{
    poisson, poisson_fill, poisson_fill_with, PoissonScratch,
};
use studymake_science::numerics::simd::Simd;
use studymake_science::physics::simulate::{pattern_rng, simulate, SimParams};
use studymake_science::physics::{object, probe};

/// Seconds of `clock` (`clock_gettime`).
fn clock_seconds(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// CPU seconds used by this process so far (all threads): robust on a shared, loaded machine.
fn cpu_seconds() -> f64 {
    clock_seconds(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// CPU seconds used by the calling thread so far.
fn thread_cpu_seconds() -> f64 {
    clock_seconds(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// Best wall time and best CPU time over `reps` runs, and the last result.
fn best_of<T>(reps: usize, mut f: impl FnMut() -> T) -> (f64, f64, T) {
    let (mut wall, mut cpu) = (f64::INFINITY, f64::INFINITY);
    let mut last = None;
    for _ in 0..reps {
        let (t, c) = (Instant::now(), cpu_seconds());
        let v = f();
        wall = wall.min(t.elapsed().as_secs_f64());
        cpu = cpu.min(cpu_seconds() - c);
        last = Some(v);
    }
    (wall, cpu, last.expect("reps >= 1"))
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let n: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(5000);
    let out_dir = args
        .get(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let reps: usize = std::env::var("BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let threads = rayon::current_num_threads();
    println!("patterns {n}");
    println!("threads {threads}");

    let obj = object::lines_object(224, 400, 0.1, 1).expect("object");
    let pr = probe::default_probe(64);
    if std::env::var("BENCH_ONLY").as_deref() == Ok("classes") {
        // ns per pixel of poisson_fill for patterns of one lambda, per lambda.
        let mut scratch = PoissonScratch::default();
        let list = std::env::var("BENCH_LAMBDAS").unwrap_or_default();
        let mut lams: Vec<f64> = list.split(',').filter_map(|x| x.parse().ok()).collect();
        if lams.is_empty() {
            lams = vec![0.0, 0.05, 0.5, 3.0, 9.0, 11.0, 30.0, 1000.0, 1e6];
        }
        for lam in lams {
            let mut v = vec![lam; 64 * 64];
            let (_, c, _) = best_of(3, || {
                for k in 0..200 {
                    v.fill(lam);
                    poisson_fill(&mut pattern_rng(1, k), &mut v, &mut scratch);
                }
            });
            println!(
                "lambda {lam} ns_per_pixel {:.2}",
                c * 1e9 / (200.0 * 4096.0)
            );
        }
        return;
    }
    if std::env::var("BENCH_ONLY").as_deref() == Ok("simulate") {
        // The simulation alone, for profiling.
        let (t, c, d) = best_of(reps, || simulate(&obj, &pr, &SimParams::new(n, 1e9, 42, 1)));
        let d = d.expect("simulate");
        println!(
            "simulate_s {t:.4}\nsimulate_cpu_s {c:.4}\nsum {}",
            d.diffraction.sum()
        );
        return;
    }
    if std::env::var("BENCH_ONLY").as_deref() == Ok("mix") {
        // ns per pixel of poisson_fill on the real lambdas of the first 500 patterns, on one
        // thread (its own CPU clock), for every instruction set this CPU has.
        let mut quiet = SimParams::new(n.min(500), 1e9, 42, 1);
        quiet.noise = false;
        let d = simulate(&obj, &pr, &quiet).expect("simulate");
        let s = d.intensity_scale;
        let lams: Vec<f64> = d
            .diffraction
            .iter()
            .map(|a| (*a as f64 * s).powi(2))
            .collect();
        let mut work = lams.clone();
        let mut scratch = PoissonScratch::default();
        let only = std::env::var("BENCH_SIMD").unwrap_or_default();
        for simd in Simd::available() {
            if !only.is_empty() && format!("{simd:?}") != only {
                continue;
            }
            let mut best = f64::INFINITY;
            for _ in 0..reps.max(5) {
                work.copy_from_slice(&lams);
                let c = thread_cpu_seconds();
                for (k, pat) in work.chunks_mut(64 * 64).enumerate() {
                    poisson_fill_with(simd, &mut pattern_rng(42, k), pat, &mut scratch);
                }
                best = best.min(thread_cpu_seconds() - c);
            }
            println!(
                "poisson_{simd:?}_ns_per_pixel {:.2}",
                best * 1e9 / lams.len() as f64
            );
        }
        return;
    }
    if std::env::var("BENCH_ONLY").as_deref() == Ok("poisson") {
        // Only the noise of n patterns, once (for callgrind: instruction and branch-miss counts
        // per pixel do not depend on the machine's load).
        let mut quiet = SimParams::new(n, 1e9, 42, 1);
        quiet.noise = false;
        let d = simulate(&obj, &pr, &quiet).expect("simulate");
        let s = d.intensity_scale;
        let mut lams: Vec<f64> = d
            .diffraction
            .iter()
            .map(|a| (*a as f64 * s).powi(2))
            .collect();
        let mut scratch = PoissonScratch::default();
        for (k, pat) in lams.chunks_mut(64 * 64).enumerate() {
            poisson_fill(&mut pattern_rng(42, k), pat, &mut scratch);
        }
        println!("poisson_check {:.6e}", lams.iter().sum::<f64>());
        return;
    }
    // The inputs, for bench/simulate_numpy.py to use the same object and probe.
    object::save_object(&out_dir.join("bench_object.npz"), &obj, 1).expect("save object");
    probe::save_probe(&out_dir.join("bench_probe.npy"), &pr).expect("save probe");

    // (a) FFTs alone: the same count of 64x64 complex forward transforms, in parallel.
    let plan = Fft2::<f32>::new(64, 64);
    let mut data = Array3::<Complex32>::from_shape_fn((n, 64, 64), |(k, i, j)| {
        Complex32::new(((k + i * 7 + j) % 13) as f32, (i as f32) * 0.01)
    });
    let (t_fft, c_fft, _) = best_of(reps, || {
        data.axis_iter_mut(Axis(0))
            .into_par_iter()
            .for_each_init(Vec::new, |scratch, mut a| {
                let v: ArrayViewMut2<Complex32> = a.view_mut();
                plan.forward_with_scratch(v, scratch);
            });
    });
    println!("fft_only_s {t_fft:.4}");
    println!("fft_only_cpu_s {c_fft:.4}");
    println!("fft_only_patterns_per_s {:.0}", n as f64 / t_fft);
    // (a') The same transforms as the simulation does them: rows batched, one transpose, columns
    // batched, spectrum left transposed (Fft2::forward_transposed): the tighter floor.
    let flat = data.as_slice_mut().expect("standard layout");
    let (t_fft_t, c_fft_t, _) = best_of(reps, || {
        flat.par_chunks_mut(64 * 64).for_each_init(
            || (vec![Complex32::new(0.0, 0.0); 64 * 64], Vec::new()),
            |(out, scratch), a| {
                plan.forward_transposed(a, out, scratch).expect("shape");
            },
        );
    });
    println!("fft_transposed_only_s {t_fft_t:.4}");
    println!("fft_transposed_only_cpu_s {c_fft_t:.4}");

    // Simulation with and without noise.
    let prm = SimParams::new(n, 1e9, 42, 1);
    let (t_sim, c_sim, d) = best_of(reps, || simulate(&obj, &pr, &prm).expect("simulate"));
    println!("simulate_s {t_sim:.4}");
    println!("simulate_cpu_s {c_sim:.4}");
    println!("simulate_over_fft_cpu {:.2}", c_sim / c_fft);
    println!("simulate_patterns_per_s {:.0}", n as f64 / t_sim);
    println!("simulate_over_fft {:.2}", t_sim / t_fft);
    println!("simulate_over_fft_transposed {:.2}", t_sim / t_fft_t);
    println!("simulate_over_fft_transposed_cpu {:.2}", c_sim / c_fft_t);
    let mut quiet = prm.clone();
    quiet.noise = false;
    let (t_quiet, c_quiet, dq) = best_of(reps, || simulate(&obj, &pr, &quiet).expect("simulate"));
    println!("simulate_noise_free_s {t_quiet:.4}");
    println!("simulate_noise_free_over_fft {:.2}", t_quiet / t_fft);
    println!("simulate_noise_free_over_fft_cpu {:.2}", c_quiet / c_fft);
    println!(
        "simulate_noise_free_over_fft_transposed_cpu {:.2}",
        c_quiet / c_fft_t
    );

    // The noise alone: one thread drawing Poisson(lambda) for the first patterns' real lambdas
    // (lambda = (s * noise-free amplitude)^2), and the ChaCha8 stream alone for scale.
    let s = dq.intensity_scale;
    let m = n.min(500);
    let lams: Vec<f64> = dq
        .diffraction
        .iter()
        .take(m * 64 * 64)
        .map(|a| (*a as f64 * s).powi(2))
        .collect();
    let mut work = lams.clone();
    let mut scratch = PoissonScratch::default();
    let (_, c_pois, total) = best_of(reps, || {
        work.copy_from_slice(&lams);
        for (k, pat) in work.chunks_mut(64 * 64).enumerate() {
            poisson_fill(&mut pattern_rng(42, k), pat, &mut scratch);
        }
        work.iter().sum::<f64>()
    });
    let (_, c_scalar, _) = best_of(reps, || {
        let mut t = 0.0;
        for (k, pat) in lams.chunks(64 * 64).enumerate() {
            let mut rng = pattern_rng(42, k);
            for l in pat {
                t += poisson(&mut rng, *l);
            }
        }
        t
    });
    println!(
        "poisson_scalar_ns_per_pixel {:.2}",
        c_scalar * 1e9 / lams.len() as f64
    );
    let small = lams.iter().filter(|l| **l < 10.0).count() as f64 / lams.len() as f64;
    println!("poisson_lambda_below_10_fraction {small:.3}");
    println!(
        "poisson_ns_per_pixel {:.2}",
        c_pois * 1e9 / lams.len() as f64
    );
    println!("poisson_check {total:.6e}");
    let (_, c_rng, _) = best_of(reps, || {
        let mut rng = pattern_rng(42, 0);
        let mut x = 0u64;
        for _ in 0..lams.len() {
            x ^= rng.next_u64();
        }
        x
    });
    println!("chacha8_ns_per_u64 {:.2}", c_rng * 1e9 / lams.len() as f64);

    // Including saving the dataset.
    let path = out_dir.join("bench_simulate.npz");
    let (t_save, _, _) = best_of(reps, || d.save(&path).expect("save"));
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&path);
    println!("save_s {t_save:.4}");
    println!("simulate_plus_save_s {:.4}", t_sim + t_save);
    println!("dataset_bytes {bytes}");
    // A checksum so the work is not optimised away and runs can be compared.
    let sum: f64 = d.diffraction.iter().map(|v| *v as f64).sum();
    println!("checksum {sum:.6e}");
}
