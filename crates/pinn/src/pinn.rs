//! The PINN as one object (reference section 7): network, trainable log intensity scale, physics
//! constants, the Poisson loss, and training (Adam on a cosine learning-rate schedule, seeded
//! shuffling and validation split, a learning curve of held-out image quality).

use super::adam::{keras_params, FusedAdamW};
use super::groups::Groups;
use super::network::{ce, stream_seed, NetShape, Network};
use super::physics::{BatchOps, Physics};
use super::quality::{self, Quality};
use candle_core::{DType, Device, Tensor, Var};
use ndarray::Array2;
use num_complex::Complex32;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use studymake_science::error::{Error, Result};
use studymake_science::io::dataset::Dataset;

/// Guard inside the Poisson log: `ln(lambda + 1e-7)` (lambda in counts; Keras' epsilon).
pub const LOG_EPS: f64 = 1e-7;

/// The intensity scale of section 7.2: `sqrt(nphotons) / (N / 2)`.
pub fn intensity_scale(nphotons: f64, n: usize) -> f64 {
    nphotons.sqrt() / (n as f64 / 2.0)
}

/// A network plus physics: everything needed to compute the loss or a reconstruction.
pub struct Pinn {
    pub net: Network,
    /// `(1,)` trainable `ln s`.
    pub log_scale: Var,
    pub physics: Physics,
    /// The (unnormalised) probe the model was built for.
    pub probe: Array2<Complex32>,
    /// The constant input scale `s = sqrt(nphotons) / (N/2)`.
    pub intensity_scale: f64,
    pub gridsize: usize,
}

impl Pinn {
    /// A fresh model for `probe` (`N x N`) and `gridsize`, weights seeded by `seed`.
    pub fn new(
        probe: &Array2<Complex32>,
        gridsize: usize,
        n_filters_scale: usize,
        nphotons: f64,
        seed: u64,
    ) -> Result<Pinn> {
        if gridsize == 0 {
            return Err(Error::Invalid("gridsize must be at least 1".into()));
        }
        if !(nphotons > 0.0 && nphotons.is_finite()) {
            return Err(Error::Invalid(format!(
                "nphotons must be positive and finite, got {nphotons}"
            )));
        }
        let n = probe.nrows();
        let shape = NetShape { n, n_filters_scale };
        let net = Network::new(shape, seed, DType::F32)?;
        let s = intensity_scale(nphotons, n);
        let log_scale = Var::from_vec(vec![s.ln() as f32], 1, &Device::Cpu).map_err(ce)?;
        Ok(Pinn {
            net,
            log_scale,
            physics: Physics::new(probe, gridsize, DType::F32)?,
            probe: probe.clone(),
            intensity_scale: s,
            gridsize,
        })
    }

    /// Trainable tensors: every kernel and bias, then `log_scale`.
    pub fn vars(&self) -> Vec<Var> {
        let mut v = self.net.vars();
        v.push(self.log_scale.clone());
        v
    }

    pub(crate) fn decode(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        // Model input X s, divided by exp(log_scale) (the IntensityScaler).
        let inp = (x * self.intensity_scale)?.broadcast_mul(&self.log_scale.neg()?.exp()?)?;
        self.net.forward(&inp)
    }

    /// Mean Poisson NLL `mean(lambda - y ln(lambda + 1e-7))` over `B C N N` of a batch.
    /// `x`: `(B, N, N, C)` normalised amplitude; `y = (X s)^2`; `lambda` the predicted intensity
    /// in counts, `|fftshift(F(P obj))|^2 / N^2 * exp(2 log_scale)`.
    pub fn loss(&self, x: &Tensor, ops: &BatchOps) -> candle_core::Result<Tensor> {
        let (amp, phase) = self.decode(x)?;
        let it = self.physics.intensity_t(&amp, &phase, ops)?;
        let lam = it.broadcast_mul(&(self.log_scale.as_tensor() * 2.0)?.exp()?)?;
        let y = (x.permute((0, 3, 2, 1))? * self.intensity_scale)?.sqr()?;
        (&lam - (y * (&lam + LOG_EPS)?.log()?)?)?.mean_all()
    }

    /// The reconstruction (`trimmed_obj`): `(re, im)`, each `(B, N, N)`, centred on the group
    /// centroid.
    pub fn reconstruct(&self, x: &Tensor, ops: &BatchOps) -> candle_core::Result<(Tensor, Tensor)> {
        let (amp, phase) = self.decode(x)?;
        let obj = Physics::object(&amp, &phase)?;
        let canvas = self.physics.reassemble(&obj, ops)?;
        self.physics.trimmed(&canvas)
    }

    /// Inputs and operators of some groups as tensors.
    pub fn batch(&self, groups: &Groups, ids: &[usize]) -> Result<(Tensor, BatchOps)> {
        let (x, shifts) = groups.batch(ids);
        let n = groups.n;
        let x =
            Tensor::from_vec(x, (ids.len(), n, n, groups.channels), &Device::Cpu).map_err(ce)?;
        let ops = self.physics.geom.batch_ops(&shifts, DType::F32)?;
        Ok((x, ops))
    }
}

/// Training configuration (the recipe's parameters).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainConfig {
    pub gridsize: usize,
    pub seed: u64,
    pub epochs: usize,
    pub batch_size: usize,
    pub n_filters_scale: usize,
    pub learning_rate: f64,
    pub nphotons: f64,
}

/// One epoch of training.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochRecord {
    pub epoch: usize,
    /// Sample-weighted mean training loss over the epoch's batches.
    pub loss: f64,
    /// Validation loss after the epoch (absent without validation groups).
    pub val_loss: Option<f64>,
    /// Learning rate at the epoch's first step.
    pub learning_rate: f64,
    /// Held-out image quality after the epoch (absent without validation groups).
    pub quality: Option<Quality>,
    /// Wall-clock time of the epoch. Not saved: artifacts must be byte-identical for a key.
    #[serde(skip)]
    pub seconds: f64,
}

/// What training produced besides the weights.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct History {
    pub epochs: Vec<EpochRecord>,
    pub train_groups: usize,
    pub val_groups: usize,
    /// Why training ended: `epochs` (the schedule has no early stop).
    pub stopped: String,
    /// Loss of the untrained model on the validation (or training) groups.
    pub initial_loss: f64,
}

fn check_config(cfg: &TrainConfig) -> Result<()> {
    if cfg.batch_size == 0 || cfg.epochs == 0 || cfg.n_filters_scale == 0 || cfg.gridsize == 0 {
        return Err(Error::Invalid(format!(
            "gridsize, epochs, batch_size and n_filters_scale must be at least 1, got {}, {}, {}, {}",
            cfg.gridsize, cfg.epochs, cfg.batch_size, cfg.n_filters_scale
        )));
    }
    if !(cfg.learning_rate > 0.0 && cfg.learning_rate.is_finite()) {
        return Err(Error::Invalid(format!(
            "learning_rate must be positive, got {}",
            cfg.learning_rate
        )));
    }
    Ok(())
}

/// Training and validation group counts for `m` groups: Keras' `validation_split = 0.05`
/// (`floor(0.95 m)` training groups, at least one; the rest, the last ones, validate).
pub fn split_sizes(m: usize) -> (usize, usize) {
    let n_train = (((m as f64) * 0.95).floor() as usize).max(1).min(m);
    (n_train, m - n_train)
}

/// Mean loss over some groups, in batches, weighted by batch size.
pub fn mean_loss(model: &Pinn, groups: &Groups, ids: &[usize], batch: usize) -> Result<f64> {
    let mut acc = 0.0;
    for chunk in ids.chunks(batch.max(1)) {
        let (x, ops) = model.batch(groups, chunk)?;
        let l = model
            .loss(&x.detach(), &ops)
            .and_then(|l| l.to_scalar::<f32>())
            .map_err(ce)?;
        acc += l as f64 * chunk.len() as f64;
    }
    Ok(acc / ids.len().max(1) as f64)
}

/// The learning rate of step `step` of `total`: cosine decay from `peak` to 0,
/// `peak (1 + cos(pi step / total)) / 2`.
pub fn cosine_rate(peak: f64, step: usize, total: usize) -> f64 {
    peak * 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / total.max(1) as f64).cos())
}

/// Train a fresh model on `data` (section 7.4, with this crate's schedule). `log` receives one
/// line per epoch.
///
/// Validation: the last 5% of the groups (`M - floor(0.95 M)`), taken before shuffling, as
/// Keras' `validation_split`; after every epoch their loss and their image quality against the
/// true patches ([`quality`]) are recorded, the learning curve.
///
/// An epoch is one pass over the training groups, as in PtychoPINN; each epoch shuffles them
/// with a ChaCha8 stream keyed by (`seed`, epoch). The network runs once per pattern, so at
/// gridsize 2 an epoch trains on four times the patterns of gridsize 1 and costs four times as
/// much. Adam (beta 0.9/0.999, eps 1e-7) with the learning rate decaying from `learning_rate`
/// to 0 along a cosine over all the steps of all the epochs, and no early stop: PtychoPINN's
/// ReduceLROnPlateau halves the rate while the network is still improving and its early stop
/// then ends training at a blur (measured on held-out data; see the crate docs).
///
/// Subnormal floats are flushed to zero on the calling thread and on rayon's global pool
/// ([`super::flush_subnormals_everywhere`], which stays in force for the process).
pub fn train(
    data: &Dataset,
    cfg: &TrainConfig,
    log: &mut dyn FnMut(&str),
) -> Result<(Pinn, Groups, History)> {
    check_config(cfg)?;
    super::flush_subnormals_everywhere();
    let groups = Groups::new(data, cfg.gridsize)?;
    let model = Pinn::new(
        &data.probe,
        cfg.gridsize,
        cfg.n_filters_scale,
        cfg.nphotons,
        cfg.seed,
    )?;
    if data.probe.dim() != (groups.n, groups.n) {
        return Err(Error::Invalid(format!(
            "the probe is {:?} but the diffraction patterns are {} x {}",
            data.probe.dim(),
            groups.n,
            groups.n
        )));
    }
    let m = groups.len();
    let (n_train, _) = split_sizes(m);
    let train_ids: Vec<usize> = (0..n_train).collect();
    let val_ids: Vec<usize> = (n_train..m).collect();
    let mut opt = FusedAdamW::new(model.vars(), keras_params(cfg.learning_rate)).map_err(ce)?;
    let monitor_ids = if val_ids.is_empty() {
        &train_ids
    } else {
        &val_ids
    };
    let initial_loss = mean_loss(&model, &groups, monitor_ids, cfg.batch_size)?;
    let steps_per_epoch = n_train.div_ceil(cfg.batch_size);
    let total_steps = cfg.epochs * steps_per_epoch;
    let mut step = 0usize;
    let mut records = Vec::new();
    for epoch in 0..cfg.epochs {
        let t0 = std::time::Instant::now();
        let lr = cosine_rate(cfg.learning_rate, step, total_steps);
        let mut order = train_ids.clone();
        let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(cfg.seed, &format!("shuffle {epoch}")));
        order.shuffle(&mut rng);
        let mut acc = 0.0;
        for chunk in order.chunks(cfg.batch_size) {
            opt.set_learning_rate(cosine_rate(cfg.learning_rate, step, total_steps));
            step += 1;
            let (x, ops) = model.batch(&groups, chunk)?;
            let loss = model.loss(&x, &ops).map_err(ce)?;
            let grads = loss.backward().map_err(ce)?;
            opt.step(&grads).map_err(ce)?;
            let l = loss.to_scalar::<f32>().map_err(ce)? as f64;
            if !l.is_finite() {
                return Err(Error::Invalid(format!(
                    "training diverged: the loss became {l} in epoch {}",
                    epoch + 1
                )));
            }
            acc += l * chunk.len() as f64;
        }
        let loss = acc / n_train as f64;
        let val_loss = if val_ids.is_empty() {
            None
        } else {
            Some(mean_loss(&model, &groups, &val_ids, cfg.batch_size)?)
        };
        let quality = quality::held_out(&model, &groups, data, &val_ids, cfg.batch_size)?;
        let rec = EpochRecord {
            epoch: epoch + 1,
            loss,
            val_loss,
            learning_rate: lr,
            quality,
            seconds: t0.elapsed().as_secs_f64(),
        };
        // The training log is part of the artifact, so it carries no timings; they go to the
        // worker's own log (stdout).
        let q = rec
            .quality
            .map(|q| {
                format!(
                    " | held-out amp_ssim {:.4} amp_r {:.4} phase_r {:.4} twin {:.3}",
                    q.amp_ssim, q.amp_pearson, q.phase_pearson, q.twin_fraction
                )
            })
            .unwrap_or_default();
        log(&format!(
            "epoch {}/{}: loss {:.6e} val_loss {} lr {:.3e}{q}",
            rec.epoch,
            cfg.epochs,
            rec.loss,
            rec.val_loss
                .map(|v| format!("{v:.6e}"))
                .unwrap_or_else(|| "n/a".into()),
            rec.learning_rate,
        ));
        println!(
            "epoch {}/{} took {:.1} s",
            rec.epoch, cfg.epochs, rec.seconds
        );
        records.push(rec);
    }
    let history = History {
        epochs: records,
        train_groups: n_train,
        val_groups: val_ids.len(),
        stopped: "epochs".into(),
        initial_loss,
    };
    Ok((model, groups, history))
}
