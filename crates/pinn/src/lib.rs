//! The physics-informed neural network (reference section 7): training without labels and
//! prediction of object patches.
//!
//! * [`network`]: encoder and decoders.
//! * [`kernels`]: convolution, pooling and upsampling as candle custom ops with their local
//!   backward passes, over [`gemm`] (the matrix products in fixed blocks).
//! * [`winograd`]: the Winograd F(4x4, 3x3) convolution the kernels use for layers with 16 or
//!   more channels in and out (forward, input gradient and kernel gradient).
//! * [`direct`]: direct summation, the convolution of the heads (few output channels).
//! * [`physics`]: reassembly, probe, centred far field (differentiable, constant operators).
//! * [`groups`]: the grouped, normalised view of a dataset.
//! * [`pinn`]: the model, the Poisson loss and training.
//! * [`quality`]: the learning curve, held-out patches against the truth after every epoch.
//! * [`adam`]: candle-nn's AdamW stepped on parameter groups in parallel.
//! * [`artifact`]: the saved model directory.
//! * `raw`: the crate's only `unsafe` code, with its invariants (the crate root denies
//!   `unsafe_code` everywhere else).
//!
//! What limits the image, measured on held-out data (a validation dataset of seed 44, never the
//! study's test seed 43; per-patch scores of [`quality`] and stitched amplitude SSIM; 1024
//! training patterns of the lines object; bench/README.md, "Learning curves"):
//!
//! * **The schedule, not the network, ended training.** PtychoPINN's ReduceLROnPlateau halves
//!   the rate once the validation loss creeps by less than 1e-4 for two epochs, which on these
//!   losses (about -3.5e6) happens while the image is still sharpening, and its early stop then
//!   ends at a blur. A cosine decay from 1e-3 to 0 over a fixed budget keeps improving the
//!   held-out image to the end (gs1, hybrid probe, 100 epochs: stitched SSIM 0.57 at epoch 20,
//!   0.76 at 50, 0.81 at 100). Training and held-out scores stay equal: the network underfits.
//! * **Batch size.** At a fixed number of epochs, smaller batches (more steps) gave sharper images:
//!   gs1 hybrid, 20 epochs, cosine: 0.53 (16), 0.60 (8), 0.74 (4, with He initialisation).
//! * **Initialisation** (open): He-uniform kernels in the ReLU layers raised the gs1 hybrid
//!   held-out patch SSIM from 0.60 to 0.74 at 20 epochs, batch 4. Re-decided with two seeds on
//!   the validation set (bench/README.md, "Initialisation"): He keeps the activations' scale
//!   through the ten ReLU layers, so the heads' inputs are far larger than under Glorot, and the
//!   phase head's `pi tanh` saturates (seed 1: a constant phase for all 20 epochs; the amplitude
//!   head saturated likewise on the 32 x 32 unit-test data). Stitched amplitude SSIM 0.68-0.70
//!   with He against 0.62-0.63 with Glorot, but the phase dead or unreliable; a phase head
//!   scaled to 0.03x keeps the phase (0.52-0.72) and only +0.03 of the amplitude gain, a zero
//!   head is unstable. So Keras' Glorot stays, with the phase head at 0.3x, until the heads
//!   cannot saturate (a bounded output not flat at its bounds, or a data-dependent head scale).
//! * **The twin image.** At gridsize 1 with the idealized probe (real and centrosymmetric) a
//!   pattern cannot tell a patch from `conj(O(-r))`: the plateau-schedule network correlated
//!   equally with both (patch amplitude Pearson 0.21 and 0.20), the average of the two. The
//!   hybrid probe's phase breaks the symmetry (twin fraction 0); so does gridsize 2 (the twin
//!   fraction falls from 0.5 to near 0 within 10 epochs).
//! * **The phase gauge at gridsize 1.** Each pattern's global phase is unobservable alone; the
//!   true phase varies by only 0.06 rad inside a patch, so the stitched gs1 phase correlates
//!   erratically (-0.3 to 0.9) with the truth while the amplitude is good.
//! * **The gridsize-2 physics** was not the simulator's: PtychoPINN's reassembly translates each
//!   patch into the canvas and back out by fractional offsets, two bilinear interpolations, so
//!   even the true object misses the patterns (mean squared amplitude residual 5.4 against the
//!   Poisson floor of 0.25 at gridsize 1; cubic interpolation 2.3). The canvas now lies on the
//!   object's pixel grid ([`physics`]) and the truth reproduces the patterns exactly (tested),
//!   at the price that a channel's patch is the object around the rounded scan position, a
//!   sub-pixel shift the network cannot see; held-out gridsize-2 quality at 20 epochs was the
//!   same either way (patch amplitude SSIM 0.42), so the gridsize-2 limit is elsewhere (open).
//! * **The gridsize-2 limit was the shared network**, so it is gone (recipe version 9): the four
//!   patterns of a group used to enter one encoder as input channels and one decoder emitted the
//!   four patches. Now each pattern goes through the same one-channel network alone and only the
//!   reassembly and the loss join them. On validation data (full profile, 40 epochs) gs2
//!   stitched amplitude SSIM rose from 0.52 to 0.56 (hybrid) and from 0.48 to 0.62 (idealized),
//!   phase Pearson 0.92-0.94, at four times the cost per epoch (an epoch is still one pass over
//!   the groups). At the old compute (a quarter of the epochs) the idealized twin is not broken
//!   (0.38), so the cost buys the gain (bench/README.md, "One network per pattern"). The
//!   half-pixel placement of a channel's patch is not the limit: the truth blurred that way
//!   keeps amplitude SSIM 0.994.
//! * **The budget, at the same schedule shape.** Stretching the cosine over 100 epochs instead
//!   of 40 (the `reference` profile of `Studyfile.example`) gives a better image at every epoch
//!   than the 40-epoch run reaches at its end (gs1 hybrid, model seed 42, held-out patch SSIM at
//!   epoch 40: 0.86 against 0.76; 0.93 at epoch 100), because the rate stays high longer. A
//!   constant rate with a linear decay over the last 20% of a 40-epoch budget, tried on the
//!   validation set (test seed 44) with one seed, gained less than the seed's own spread at
//!   gridsize 1 (stitched 0.741 against 0.712, patch 0.818 against 0.758), so the cosine stays
//!   (bench/README.md, "Reference profile").
//! * No gain: log or square-root input, more full-resolution decoder layers, a fully-connected
//!   bottleneck, a relative-amplitude loss, a higher learning rate (2e-3), cubic interpolation,
//!   probe-weighted reassembly, a per-pattern encoder feeding one joint C-channel decoder at
//!   gridsize 2, a gridsize-1 warm-up for gridsize 2.
//!
//! Simplifications (reference 7.6), stated once: `probe_big` False (the decoders emit the
//! central `N/2 x N/2` of each patch; the canvas border stays zero), one network per pattern
//! (not PtychoPINN's C input channels, see above), each decoder head is one 3x3 conv on all `32f`
//! channels of the last decoder block, max pooling sends the gradient to the first maximum of
//! each window.
//!
//! Cost (measured with `bench/train.sh`, N = 64, batch 16, 2 threads, on a 2-core machine
//! whose speed drifts by 30-40%; see bench/README.md): one training step (forward, backward,
//! Adam) costs about 0.24-0.26 CPU-seconds per batch at gridsize 1 with `n_filters_scale` 1 and
//! 0.59-0.65 at 2 (111-121 and 46-51 groups/s). A gridsize-2 group is four one-pattern passes:
//! 48-52 groups/s at scale 1 and 21-22 at scale 2 (`bench/vs_tf.sh`, 2026-12-06, batch 16);
//! peak RSS 0.15-0.76 GiB. About 55% of it is gemm (the Winograd products,
//! AVX-512 where the CPU has it), a sixth the Winograd transforms; the thread that drives
//! candle's autodiff is busy alone for about 3% of it (see [`adam`] and vendor/README.md for
//! how that was brought down).
//!
//! Profiles of `Studyfile.example` (at `n_filters_scale` 1, batches of 4): quick (512 patterns,
//! 5 epochs), default (1024 patterns, 40 epochs) and reference (1024 patterns, 100 epochs); see
//! bench/README.md for measured times per model. PtychoPINN's own reference size (5000 images,
//! 50 epochs, `n_filters_scale` 2) is about 300 batches x 0.33 s x 50 = 1.4 hours per model on
//! 2 cores; this is GPU work. The code runs on candle's CPU device only (no
//! `cuda` feature is declared: the tensors are created on `Device::Cpu` throughout).
//!
//! Reproducibility: weights, shuffling and the validation split follow the seed only, so two
//! trainings with the same seed on the same machine and thread count give identical weights
//! (tested). The convolutions split their work by shape only (their results do not depend on
//! the thread count), but candle's own matrix products in the physics layer use gemm's
//! threading, whose blocking depends on the thread count and the CPU: across those, weights
//! agree only to rounding.

#![deny(unsafe_code)]

pub mod adam;
pub mod artifact;
pub mod direct;
pub mod gemm;
pub mod groups;
pub mod kernels;
pub mod network;
pub mod physics;
pub mod pinn;
pub mod quality;
#[allow(unsafe_code)]
mod raw;
pub mod winograd;

use ndarray::Array3;
use num_complex::Complex32;
use std::path::Path;
use studymake_science::error::{Error, Result};
pub use studymake_science::evaluation::Prediction;
use studymake_science::io::dataset::Dataset;

pub use pinn::{train, EpochRecord, History, Pinn, TrainConfig};

/// Keep freed tensor memory in the allocator instead of returning it to the kernel (glibc only).
///
/// Training allocates and frees tens of megabytes per operation; with glibc's defaults every
/// large buffer is a fresh `mmap`, and page faults took about a quarter of the training time.
/// This raises the mmap and trim thresholds and keeps one arena for the whole process (a worker
/// process trains one model, so nothing else is affected); elsewhere it does nothing. Call it
/// before the threads start allocating.
pub fn tune_allocator() {
    raw::keep_freed_memory();
}

/// Flush subnormal floats to zero on this thread: the FTZ and DAZ bits of the x86-64 MXCSR
/// register (elsewhere nothing).
///
/// Why: as training goes on, some gradients and Adam moments decay into the subnormal range,
/// where every operation on them takes a microcode assist, about a hundred times a normal one:
/// at `n_filters_scale` 2 the training steps after the sixth of the benchmark took several
/// times longer (15 groups/s over ten batches against 47 over six). TensorFlow sets the same
/// bits on its compute threads. Results change only where a value would have been subnormal
/// (below 1.2e-38 in f32), and stay deterministic.
pub fn flush_subnormals() {
    raw::set_flush_to_zero();
}

/// [`flush_subnormals`] on the calling thread and on every thread of rayon's global pool (the
/// training's compute threads; candle's own matrix products run there too).
pub fn flush_subnormals_everywhere() {
    flush_subnormals();
    rayon::broadcast(|_| flush_subnormals());
}

/// Groups per forward pass when predicting.
const PREDICT_BATCH: usize = 32;

/// Predict with a model in memory.
pub fn predict_with(model: &Pinn, data: &Dataset) -> Result<Prediction> {
    // Groups::new refuses a dataset of another gridsize, naming both.
    let groups = groups::Groups::new(data, model.gridsize)?;
    let n = groups.n;
    if n != model.net.shape.n {
        return Err(Error::Invalid(format!(
            "the model was trained on {0} x {0} patterns but the dataset has {n} x {n}",
            model.net.shape.n
        )));
    }
    let m = groups.len();
    let mut patches = Array3::<Complex32>::zeros((m, n, n));
    let ids: Vec<usize> = (0..m).collect();
    for chunk in ids.chunks(PREDICT_BATCH) {
        let (x, ops) = model.batch(&groups, chunk)?;
        let (re, im) = model.reconstruct(&x, &ops).map_err(network::ce)?;
        let re: Vec<f32> = re
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .map_err(network::ce)?;
        let im: Vec<f32> = im
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .map_err(network::ce)?;
        for (k, &g) in chunk.iter().enumerate() {
            for i in 0..n {
                for j in 0..n {
                    let o = (k * n + i) * n + j;
                    patches[[g, i, j]] = Complex32::new(re[o], im[o]);
                }
            }
        }
    }
    Ok(Prediction {
        patches,
        centroids: groups.centroids,
        gridsize: model.gridsize as i64,
    })
}

/// Predict the object patch of every group of `data` with the model saved in `model_dir`.
/// A model and a dataset of different gridsize is an error naming both values.
pub fn predict(model_dir: &Path, data: &Dataset) -> Result<Prediction> {
    let path = model_dir.join(artifact::WEIGHTS_FILE);
    let loaded = artifact::load_safetensors(&path)?;
    predict_with(&loaded.model, data).map_err(|e| match e {
        Error::Invalid(m) => Error::data(&path, m),
        e => e,
    })
}

#[cfg(test)]
mod tests {
    /// After flush_subnormals (on a thread of its own) and flush_subnormals_everywhere (in a
    /// pool of its own, so other tests' threads keep IEEE subnormals), a product that would be
    /// subnormal is zero on that thread and on every pool thread, and a subnormal input counts
    /// as zero.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn subnormals_are_flushed_on_the_caller_and_the_pool() {
        use std::hint::black_box;
        let subnormal_product = || black_box(1e-38f32) * black_box(0.5f32);
        let subnormal_input = || black_box(1e-39f32) * black_box(1.0f32);
        std::thread::spawn(move || {
            assert!(subnormal_product() > 0.0, "IEEE subnormals before");
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(3)
                .build()
                .unwrap();
            // Run from inside the pool, "everywhere" covers the pool's threads.
            pool.install(super::flush_subnormals_everywhere);
            assert!(subnormal_product() > 0.0, "this thread is not in the pool");
            super::flush_subnormals();
            assert_eq!(subnormal_product(), 0.0);
            assert_eq!(subnormal_input(), 0.0);
            let flushed = pool.broadcast(|_| (subnormal_product(), subnormal_input()));
            assert_eq!(flushed, vec![(0.0, 0.0); 3]);
        })
        .join()
        .unwrap();
    }

    use super::*;
    use crate::artifact::{load_safetensors, save, to_safetensors};
    use ndarray::Array2;
    use studymake_science::testdata::{replace_once, simulate};

    fn cfg(gridsize: usize, epochs: usize, seed: u64) -> TrainConfig {
        TrainConfig {
            gridsize,
            seed,
            epochs,
            batch_size: 16,
            n_filters_scale: 1,
            learning_rate: 1e-3,
            nphotons: 1e9,
        }
    }

    /// The Poisson loss of the perfect prediction `lambda = y`, averaged like the loss: the floor
    /// every excess is measured from.
    fn optimum(groups: &groups::Groups, s: f64, ids: &[usize]) -> f64 {
        let per = groups.n * groups.n * groups.channels;
        let x: Vec<f32> = ids
            .iter()
            .flat_map(|&g| groups.x[g * per..(g + 1) * per].iter().copied())
            .collect();
        let v: f64 = x
            .iter()
            .map(|&a| {
                let y = (a as f64 * s).powi(2);
                y - y * (y + pinn::LOG_EPS).ln()
            })
            .sum();
        v / x.len() as f64
    }

    fn pearson(a: &[f64], b: &[f64]) -> f64 {
        let n = a.len() as f64;
        let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
        let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
        let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
        cov / (va * vb).sqrt()
    }

    /// The vendored candle-core's backward pass (vendor/README.md): the first gradient reaching
    /// a tensor is stored as it is, later ones are added. A gradient element of -0.0 keeps its
    /// sign only with the patch (`0 + -0.0` is `+0.0`), which shows the patch is in effect.
    #[test]
    fn candle_backward_stores_the_first_gradient_and_sums_fan_in() {
        use candle_core::{Device, Tensor, Var};
        let dev = Device::Cpu;
        let x = Var::new(&[1.5f32, -2.0, 0.25], &dev).unwrap();
        let c = Tensor::new(&[-0.0f32, 3.0, -1.0], &dev).unwrap();
        // One consumer: d(sum(x * c))/dx = c, signs of zero included.
        let g = x.mul(&c).unwrap().sum_all().unwrap().backward().unwrap();
        let gx = g.get(&x).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(gx, vec![0.0, 3.0, -1.0]);
        assert!(
            gx[0].is_sign_negative(),
            "the -0.0 gradient became {:?}",
            gx[0]
        );
        // Fan-in: x used by three ops, d(sum(x*x + 3x + x*c))/dx = 2x + 3 + c.
        let y = ((x.mul(&x).unwrap() + x.affine(3.0, 0.0).unwrap()).unwrap() + x.mul(&c).unwrap())
            .unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        let gx = g.get(&x).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(gx, vec![6.0, 2.0, 2.5]);
    }

    #[test]
    fn short_training_lowers_the_poisson_loss_and_learns_the_amplitude() {
        // 200 groups of 32 x 32 (190 training, 10 validation), 3 epochs. Measured: the excess
        // validation loss over its floor falls from 2.2e5 to 3.1e4 (-86%); correlation 0.44.
        let data = simulate(32, 96, 200, 1, 1);
        let mut lines = Vec::new();
        let (model, groups, hist) =
            train(&data, &cfg(1, 3, 3), &mut |l| lines.push(l.to_string())).unwrap();
        assert_eq!(lines.len(), hist.epochs.len());
        // Gridsize 1: every offset is zero and every centroid is the scan position.
        assert!(groups.shifts.iter().flatten().all(|&d| d == (0.0, 0.0)));
        assert_eq!(groups.centroids.column(0), data.xcoords);
        assert_eq!(groups.centroids.column(1), data.ycoords);
        let ids: Vec<usize> = (0..groups.len()).collect();
        let val = &ids[groups.len() - hist.val_groups..];
        let floor = optimum(&groups, model.intensity_scale, val);
        let before = hist.initial_loss - floor;
        let after = pinn::mean_loss(&model, &groups, val, 16).unwrap() - floor;
        // The Poisson loss is smallest at lambda = y, so both excesses are positive.
        assert!(before > 0.0 && after > 0.0, "{before} {after}");
        eprintln!("excess Poisson loss on validation: {before:.4e} -> {after:.4e} ({lines:?})");
        // Predicted amplitude vs ground truth on the illuminated centre (radius N/4).
        let pred = predict_with(&model, &data).unwrap();
        let (mut p, mut t) = (Vec::new(), Vec::new());
        for g in 0..pred.patches.dim().0 {
            for i in 0..32 {
                for j in 0..32 {
                    if ((i as f64 - 15.5).powi(2) + (j as f64 - 15.5).powi(2)).sqrt() < 7.0 {
                        p.push(pred.patches[[g, i, j]].norm() as f64);
                        t.push(data.y[[g, i, j]].norm() as f64);
                    }
                }
            }
        }
        let r = pearson(&p, &t);
        eprintln!("amplitude correlation with ground truth: {r:.3}");
        assert!(
            after < 0.3 * before,
            "excess loss {before} -> {after}: not lowered by 70%"
        );
        // A constant prediction has no correlation; require a clear positive one.
        assert!(r > 0.3, "predicted amplitude correlates only {r}");
    }

    /// The learning test: a small, fixed-seed training with the recipe's defaults must recover
    /// the amplitude of patches it never trained on, not just lower a loss. Gridsize 1, 400
    /// patterns of 32 x 32 of a smooth object under a disk probe with a coma-like phase (an
    /// asymmetric probe, so no twin image), 8 epochs. Score: Pearson correlation of the
    /// predicted amplitude with the true patch on the illuminated centre (radius N/4) of every
    /// held-out validation pattern, pooled (measured 0.625). At this size the per-patch scores
    /// of the learning curve stay low (the smooth object has little structure inside a 10 x 10
    /// core); the study-size learning curves are in bench/README.md.
    #[test]
    fn a_short_training_resolves_the_amplitude_of_held_out_patches() {
        use studymake_science::physics::simulate::diffract;
        let mut data = simulate(32, 112, 400, 1, 21);
        let probe = data.probe.clone();
        data.probe = Array2::from_shape_fn((32, 32), |(i, j)| {
            let (y, x) = ((i as f32 - 15.5) / 6.0, (j as f32 - 15.5) / 6.0);
            probe[[i, j]] * Complex32::from_polar(1.0, 0.8 * (x * x * x + x * y * y) + 0.5 * y)
        });
        for k in 0..400 {
            let a = diffract(&data.y.index_axis(ndarray::Axis(0), k), &data.probe.view());
            data.diffraction
                .index_axis_mut(ndarray::Axis(0), k)
                .assign(&a);
        }
        let mut c = cfg(1, 8, 5);
        c.batch_size = 4; // the recipe's default
        let (model, groups, hist) = train(&data, &c, &mut |_| {}).unwrap();
        let val: Vec<usize> = (hist.train_groups..groups.len()).collect();
        assert_eq!(val.len(), 20);
        let (mut p, mut t) = (Vec::new(), Vec::new());
        let (x, _) = model.batch(&groups, &val).unwrap();
        let (amp, _) = model.decode(&x).unwrap();
        let amp: Vec<f32> = amp.flatten_all().unwrap().to_vec1().unwrap();
        // (B, 16, 16, 1): the central N/2 of each patch.
        for (k, &g) in val.iter().enumerate() {
            for i in 0..16 {
                for j in 0..16 {
                    let (y, x) = (i as f64 - 7.5, j as f64 - 7.5);
                    if (y * y + x * x).sqrt() < 8.0 {
                        p.push(amp[(k * 16 + i) * 16 + j] as f64);
                        t.push(data.y[[g, i + 8, j + 8]].norm() as f64);
                    }
                }
            }
        }
        let r = pearson(&p, &t);
        eprintln!(
            "held-out amplitude correlation: {r:.3} ({} pixels)",
            p.len()
        );
        assert!(
            r > 0.5,
            "held-out amplitude correlates only {r:.3} with the truth"
        );
        // The learning curve records the held-out quality of every epoch, and it rises
        // (measured: per-patch amplitude correlation on the 10 x 10 core -0.03 -> 0.18).
        assert_eq!(hist.epochs.len(), 8);
        let curve: Vec<f64> = hist
            .epochs
            .iter()
            .map(|e| e.quality.unwrap().amp_pearson)
            .collect();
        eprintln!("learning curve (amp_pearson): {curve:?}");
        assert!(curve[7] > curve[0] + 0.1, "{curve:?}");
    }

    /// The physics couples the C patches of a group the way the simulator made them: the true
    /// object, pushed through the model's reassembly, extraction, probe and far field (no
    /// network), gives the simulated patterns, at gridsize 1 and 2, up to the probe's tail
    /// beyond the emitted N/2 x N/2 (below 1e-6 of the pattern energy here). With PtychoPINN's
    /// two bilinear translations (in by `p_c - g`, out by `g - p_c`) it did not.
    #[test]
    fn the_true_object_through_the_physics_gives_the_simulated_patterns() {
        use candle_core::{Device, Tensor};
        for gridsize in [1usize, 2] {
            let n = 64;
            let data = simulate(n, 176, 24, gridsize, 31);
            let model = Pinn::new(&data.probe, gridsize, 1, 1e9, 1).unwrap();
            let groups = groups::Groups::new(&data, gridsize).unwrap();
            let (c, h, q) = (groups.channels, n / 2, n / 4);
            let ids: Vec<usize> = (0..groups.len()).collect();
            let (x, ops) = model.batch(&groups, &ids).unwrap();
            let b = ids.len();
            let (mut amp, mut ph) = (vec![0f32; b * h * h * c], vec![0f32; b * h * h * c]);
            for &g in &ids {
                for ch in 0..c {
                    let pi = data.group_index[[g, ch]] as usize;
                    for i in 0..h {
                        for j in 0..h {
                            // Emitted pixel k is object pixel round(p) - N/2 + N/4 + k at
                            // gridsize 2; at gridsize 1 the patch Y itself.
                            let z = if gridsize == 1 {
                                data.y[[pi, q + i, q + j]]
                            } else {
                                let r = data.ycoords[pi].round() as usize - n / 2 + q + i;
                                let s = data.xcoords[pi].round() as usize - n / 2 + q + j;
                                data.object[[r, s]]
                            };
                            let o = ((g * h + i) * h + j) * c + ch;
                            amp[o] = z.norm();
                            ph[o] = z.arg();
                        }
                    }
                }
            }
            let at = Tensor::from_vec(amp, (b, h, h, c), &Device::Cpu).unwrap();
            let pt = Tensor::from_vec(ph, (b, h, h, c), &Device::Cpu).unwrap();
            let it: Vec<f32> = model
                .physics
                .intensity_t(&at, &pt, &ops)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let y: Vec<f32> = x
                .permute((0, 3, 2, 1))
                .unwrap()
                .sqr()
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            // One factor between the normalisations (probe, intensity scale), then the residual.
            let (iy, ii): (f64, f64) = it.iter().zip(&y).fold((0.0, 0.0), |(a, b), (&i, &y)| {
                (a + i as f64 * y as f64, b + i as f64 * i as f64)
            });
            let k = iy / ii;
            let res: f64 = it
                .iter()
                .zip(&y)
                .map(|(&i, &y)| (k * i as f64 - y as f64).powi(2))
                .sum();
            let energy: f64 = y.iter().map(|&y| (y as f64).powi(2)).sum();
            let rel = res / energy;
            eprintln!("gridsize {gridsize}: relative residual {rel:.3e}");
            assert!(
                rel < 1e-6,
                "gridsize {gridsize}: relative residual {rel:.3e}"
            );
        }
    }

    #[test]
    fn gridsize_2_trains_and_same_seed_gives_identical_weights() {
        let data = simulate(32, 80, 48, 2, 2);
        let run = || train(&data, &cfg(2, 2, 9), &mut |_| {}).unwrap();
        let (a, _, ha) = run();
        let (b, _, hb) = run();
        assert_eq!(a.net.input_channels(), 1);
        assert_eq!(ha.epochs.len(), 2);
        assert!(ha.epochs[1].loss < ha.initial_loss, "{ha:?}");
        for (va, vb) in a.vars().iter().zip(b.vars().iter()) {
            let x: Vec<f32> = va.flatten_all().unwrap().to_vec1().unwrap();
            let y: Vec<f32> = vb.flatten_all().unwrap().to_vec1().unwrap();
            assert!(x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()));
        }
        assert_eq!(ha, {
            let mut h = hb.clone();
            for (e, f) in h.epochs.iter_mut().zip(&ha.epochs) {
                e.seconds = f.seconds;
            }
            h
        });
        // A different seed gives different weights.
        let (c, _, _) = train(&data, &cfg(2, 1, 10), &mut |_| {}).unwrap();
        let x: Vec<f32> = a.vars()[0].flatten_all().unwrap().to_vec1().unwrap();
        let z: Vec<f32> = c.vars()[0].flatten_all().unwrap().to_vec1().unwrap();
        assert_ne!(x, z);
    }

    #[test]
    fn gridsize_mismatch_is_refused_naming_both() {
        let data = simulate(16, 48, 12, 2, 4);
        let e = match train(&data, &cfg(1, 1, 1), &mut |_| {}) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a gridsize-2 dataset trained a gridsize-1 model"),
        };
        assert!(e.contains("4 columns") && e.contains("gridsize 1"), "{e}");
        let model = Pinn::new(&data.probe, 1, 1, 1e9, 0).unwrap();
        let e = predict_with(&model, &data).unwrap_err().to_string();
        assert!(e.contains("gridsize 1") && e.contains("gridsize 2"), "{e}");
    }

    #[test]
    fn save_load_round_trip_and_altered_files_fail_naming_the_file() {
        let data = simulate(16, 48, 24, 1, 5);
        let (model, _, hist) = train(&data, &cfg(1, 1, 6), &mut |_| {}).unwrap();
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &model, &cfg(1, 1, 6), &hist).unwrap();
        let a = predict_with(&model, &data).unwrap();
        let b = predict(dir.path(), &data).unwrap();
        assert_eq!(a.patches, b.patches);
        assert_eq!(a.centroids, b.centroids);
        let loaded = load_safetensors(&dir.path().join(artifact::WEIGHTS_FILE)).unwrap();
        assert_eq!(loaded.seed, 6);
        // Saving again gives the same bytes (the metadata header is written in sorted order).
        let again = tempfile::tempdir().unwrap();
        save(again.path(), &model, &cfg(1, 1, 6), &hist).unwrap();
        for f in ["model.safetensors", "model.json", "training.log"] {
            let (x, y) = (dir.path().join(f), again.path().join(f));
            if x.exists() {
                assert_eq!(
                    std::fs::read(&x).unwrap(),
                    std::fs::read(&y).unwrap(),
                    "{f} differs"
                );
            }
        }

        let path = dir.path().join(artifact::WEIGHTS_FILE);
        let good = std::fs::read(&path).unwrap();
        let name = path.display().to_string();
        // A flipped byte in the data section.
        let mut bad = good.clone();
        let k = bad.len() - 100;
        bad[k] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        let e = predict(dir.path(), &data).unwrap_err().to_string();
        assert!(e.contains(&name) && e.contains("altered"), "{e}");
        // Truncated.
        std::fs::write(&path, &good[..good.len() / 2]).unwrap();
        let e = predict(dir.path(), &data).unwrap_err().to_string();
        assert!(e.contains(&name) && e.contains("safetensors"), "{e}");
        // A file of format 1 (one network with gridsize^2 input channels): refused, asking for a
        // rebuild rather than being misread.
        let old = replace_once(
            &good,
            b"\"format_version\":\"2\"",
            b"\"format_version\":\"1\"",
        );
        std::fs::write(&path, &old).unwrap();
        let e = predict(dir.path(), &data).unwrap_err().to_string();
        assert!(
            e.contains(&name) && e.contains("format_version 1") && e.contains("rebuild"),
            "{e}"
        );
        // Wrong tensor shapes: tensors of a wider network under metadata of f = 1.
        let mut wide = Pinn::new(&data.probe, 1, 2, 1e9, 0).unwrap();
        wide.net.shape.n_filters_scale = 1;
        std::fs::write(&path, to_safetensors(&wide, 0, 1e9).unwrap()).unwrap();
        let e = predict(dir.path(), &data).unwrap_err().to_string();
        assert!(e.contains(&name) && e.contains("shape"), "{e}");
        // Missing file.
        std::fs::remove_file(&path).unwrap();
        let e = predict(dir.path(), &data).unwrap_err().to_string();
        assert!(e.contains(&name), "{e}");
    }
}
