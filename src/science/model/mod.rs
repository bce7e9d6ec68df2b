//! The physics-informed neural network (reference section 7): training without labels and
//! prediction of object patches.
//!
//! * [`network`]: encoder and decoders (convolutions as im2col + matmul on candle).
//! * [`physics`]: reassembly, probe, centred far field (differentiable, constant operators).
//! * [`groups`]: the grouped, normalised view of a dataset.
//! * [`pinn`]: the model, the Poisson loss and training.
//! * [`artifact`]: the saved model directory.
//!
//! Reproducibility: weights, shuffling and the validation split follow the seed only, so two
//! trainings with the same seed on the same machine and thread count give identical weights
//! (tested). Across thread counts or CPUs the matrix products may sum in another order (gemm's
//! blocking depends on both), so weights agree only to rounding.

pub mod artifact;
pub mod groups;
pub mod network;
pub mod physics;
pub mod pinn;
#[cfg(test)]
pub(crate) mod testdata;

use crate::error::{Error, Result};
use crate::science::dataset::Dataset;
use ndarray::{Array2, Array3};
use num_complex::Complex32;
use std::path::Path;

pub use pinn::{train, EpochRecord, History, Pinn, TrainConfig};

/// What a trained model predicts for a dataset.
#[derive(Clone, Debug)]
pub struct Prediction {
    /// (M, N, N) reconstructed object patch per group, centred on the group centroid.
    pub patches: Array3<Complex32>,
    /// (M, 2) group centroids `(x, y)` in object pixels.
    pub centroids: Array2<f64>,
    /// The gridsize of the model (and, checked, of the dataset).
    pub gridsize: i64,
}

/// Groups per forward pass when predicting.
const PREDICT_BATCH: usize = 32;

/// Predict with a model in memory.
pub fn predict_with(model: &Pinn, data: &Dataset) -> Result<Prediction> {
    let (_, c) = data.group_index.dim();
    if c != model.gridsize * model.gridsize || data.gridsize != model.gridsize as i64 {
        return Err(Error::Invalid(format!(
            "the model has gridsize {} but the dataset has gridsize {} (group_index width {c})",
            model.gridsize, data.gridsize
        )));
    }
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
