//! The physics-informed neural network (reference section 7): training without labels and
//! prediction of object patches.

use crate::error::{Error, Result};
use crate::science::dataset::Dataset;
use ndarray::{Array2, Array3};
use num_complex::Complex32;
use std::path::Path;

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

/// Predict the object patch of every group of `data` with the model saved in `model_dir`.
/// A model and a dataset of different gridsize is an error naming both values.
pub fn predict(model_dir: &Path, data: &Dataset) -> Result<Prediction> {
    let _ = data;
    Err(Error::data(model_dir, "prediction is not implemented yet"))
}
