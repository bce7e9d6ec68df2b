//! The simulated dataset: one `.npz` per train/test set, in PtychoPINN's data contract (reference
//! section 5) plus the study's provenance (`gridsize`, `seed`, `nphotons`, `intensity_scale`,
//! `group_index`).

use crate::error::{Error, Result};
use ndarray::{Array1, Array2, Array3};
use num_complex::Complex32;
use std::path::Path;

/// A dataset in memory. Shapes: `n` patterns of `N x N`, `M` groups of `C = gridsize^2`.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// (n, N, N) float32 diffraction amplitude, `sqrt(counts) / s` (reference section 4.5).
    pub diffraction: Array3<f32>,
    /// (n, N, N) complex64 ground-truth object patch of each pattern.
    pub y: Array3<Complex32>,
    /// (H, W) complex64 full ground-truth object.
    pub object: Array2<Complex32>,
    /// (N, N) complex64 probe used for the simulation.
    pub probe: Array2<Complex32>,
    /// (n,) scan positions in object pixels: column (x) and row (y).
    pub xcoords: Array1<f64>,
    pub ycoords: Array1<f64>,
    /// (n,) nominal positions; equal to the above in simulation.
    pub xcoords_start: Array1<f64>,
    pub ycoords_start: Array1<f64>,
    /// (n,) all zeros.
    pub scan_index: Array1<i64>,
    /// (M, C) each row a group of neighbouring pattern indices; for gridsize 1, `[[0],[1],...]`.
    pub group_index: Array2<i64>,
    /// The gridsize this dataset was grouped for.
    pub gridsize: i64,
    /// The seed of positions, noise and grouping.
    pub seed: i64,
    /// Photons per pattern.
    pub nphotons: f64,
    /// The simulation's intensity scale `s` (reference section 4.5).
    pub intensity_scale: f64,
}

impl Dataset {
    /// Load and validate a dataset file; every error names the file.
    pub fn load(path: &Path) -> Result<Dataset> {
        Err(Error::data(path, "dataset loading is not implemented yet"))
    }

    /// Write the dataset atomically-enough for a worker (the engine publishes it).
    pub fn save(&self, path: &Path) -> Result<()> {
        Err(Error::data(path, "dataset saving is not implemented yet"))
    }
}
