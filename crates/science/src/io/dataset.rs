//! The simulated dataset: one `.npz` per train/test set, in PtychoPINN's data contract (reference
//! section 5) plus the study's provenance (`gridsize`, `seed`, `nphotons`, `intensity_scale`,
//! `group_index`).
//!
//! | key | shape | dtype |
//! |---|---|---|
//! | `diffraction` | (n, N, N) | float32 |
//! | `Y` | (n, N, N) | complex64 |
//! | `objectGuess` | (H, W) | complex64 |
//! | `probeGuess` | (N, N) | complex64 |
//! | `xcoords`, `ycoords`, `xcoords_start`, `ycoords_start` | (n,) | float64 |
//! | `scan_index` | (n,) | int64 |
//! | `gridsize`, `seed` | () | int64 |
//! | `nphotons`, `intensity_scale` | () | float64 |
//! | `group_index` | (M, gridsize^2) | int64 |
//!
//! The file is an uncompressed zip written in this key order with a fixed timestamp, so the same
//! dataset always gives the same bytes (see [`crate::npy`]).

use crate::error::{Error, Result};
use crate::io::npy::{NpzFile, NpzOut};
use crate::physics::grouping::Gridsize;
use ndarray::{arr0, Array1, Array2, Array3, Ix1, Ix2, Ix3};
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

/// The keys of a dataset file, in the order they are written.
pub const KEYS: [&str; 14] = [
    "diffraction",
    "Y",
    "objectGuess",
    "probeGuess",
    "xcoords",
    "ycoords",
    "xcoords_start",
    "ycoords_start",
    "scan_index",
    "gridsize",
    "seed",
    "nphotons",
    "intensity_scale",
    "group_index",
];

impl Dataset {
    /// Number of patterns `n`.
    pub fn len(&self) -> usize {
        self.diffraction.shape()[0]
    }

    /// Whether the dataset holds no patterns.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Patch / probe size `N`.
    pub fn patch_size(&self) -> usize {
        self.probe.nrows()
    }

    /// Check the invariants of the contract; `path` names the file in errors.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |m: String| Error::data(path, m);
        let n = self.diffraction.shape()[0];
        let (pr, pc) = self.probe.dim();
        if pr != pc || pr == 0 {
            return Err(bad(format!(
                "probeGuess has shape {:?}; it must be square and non-empty",
                self.probe.shape()
            )));
        }
        let dshape = self.diffraction.shape();
        if dshape[1] != pr || dshape[2] != pr {
            return Err(bad(format!(
                "diffraction has shape {dshape:?} but probeGuess is {pr} x {pr}"
            )));
        }
        if self.y.shape() != dshape {
            return Err(bad(format!(
                "diffraction has shape {dshape:?} but Y has shape {:?}",
                self.y.shape()
            )));
        }
        for (k, len) in [
            ("xcoords", self.xcoords.len()),
            ("ycoords", self.ycoords.len()),
            ("xcoords_start", self.xcoords_start.len()),
            ("ycoords_start", self.ycoords_start.len()),
            ("scan_index", self.scan_index.len()),
        ] {
            if len != n {
                return Err(bad(format!(
                    "diffraction holds {n} patterns but {k} holds {len} entries"
                )));
            }
        }
        let Some(g) = Gridsize::new(self.gridsize) else {
            return Err(bad(format!(
                "gridsize is {}; it must be at least 1",
                self.gridsize
            )));
        };
        if !g.fits_width(self.group_index.ncols()) {
            return Err(bad(format!(
                "group_index has width {} but gridsize {} needs gridsize^2 = {}",
                self.group_index.ncols(),
                self.gridsize,
                self.gridsize.saturating_mul(self.gridsize)
            )));
        }
        if let Some(v) = self
            .group_index
            .iter()
            .find(|&&v| v < 0 || v as u64 >= n as u64)
        {
            return Err(bad(format!(
                "group_index holds {v}, outside the {n} patterns of diffraction"
            )));
        }
        if !(self.nphotons.is_finite() && self.nphotons > 0.0) {
            return Err(bad(format!(
                "nphotons is {}; it must be positive",
                self.nphotons
            )));
        }
        if !(self.intensity_scale.is_finite() && self.intensity_scale > 0.0) {
            return Err(bad(format!(
                "intensity_scale is {}; it must be positive",
                self.intensity_scale
            )));
        }
        Ok(())
    }

    /// Load and validate a dataset file; every error names the file.
    pub fn load(path: &Path) -> Result<Dataset> {
        let mut f = NpzFile::open(path)?;
        let missing: Vec<&str> = KEYS.iter().copied().filter(|k| !f.has(k)).collect();
        if !missing.is_empty() {
            return Err(Error::data(
                path,
                format!(
                    "not a studymake dataset: missing {}; it holds {}",
                    missing.join(", "),
                    f.keys().join(", ")
                ),
            ));
        }
        let d = Dataset {
            diffraction: f.read::<f32, Ix3>("diffraction")?,
            y: f.read::<Complex32, Ix3>("Y")?,
            object: f.read::<Complex32, Ix2>("objectGuess")?,
            probe: f.read::<Complex32, Ix2>("probeGuess")?,
            xcoords: f.read::<f64, Ix1>("xcoords")?,
            ycoords: f.read::<f64, Ix1>("ycoords")?,
            xcoords_start: f.read::<f64, Ix1>("xcoords_start")?,
            ycoords_start: f.read::<f64, Ix1>("ycoords_start")?,
            scan_index: f.read::<i64, Ix1>("scan_index")?,
            group_index: f.read::<i64, Ix2>("group_index")?,
            gridsize: f.scalar::<i64>("gridsize")?,
            seed: f.scalar::<i64>("seed")?,
            nphotons: f.scalar::<f64>("nphotons")?,
            intensity_scale: f.scalar::<f64>("intensity_scale")?,
        };
        d.validate(path)?;
        Ok(d)
    }

    /// Write the dataset to `path` (deterministic bytes; validated first).
    pub fn save(&self, path: &Path) -> Result<()> {
        self.validate(path)?;
        let large = self.y.len().saturating_mul(8) >= u32::MAX as usize;
        let mut w = NpzOut::create(path, large)?;
        let std3f = self.diffraction.as_standard_layout();
        let std3c = self.y.as_standard_layout();
        w.add("diffraction", &std3f)?;
        w.add("Y", &std3c)?;
        w.add("objectGuess", &self.object.as_standard_layout())?;
        w.add("probeGuess", &self.probe.as_standard_layout())?;
        w.add("xcoords", &self.xcoords)?;
        w.add("ycoords", &self.ycoords)?;
        w.add("xcoords_start", &self.xcoords_start)?;
        w.add("ycoords_start", &self.ycoords_start)?;
        w.add("scan_index", &self.scan_index)?;
        w.add("gridsize", &arr0(self.gridsize))?;
        w.add("seed", &arr0(self.seed))?;
        w.add("nphotons", &arr0(self.nphotons))?;
        w.add("intensity_scale", &arr0(self.intensity_scale))?;
        w.add("group_index", &self.group_index.as_standard_layout())?;
        w.finish()
    }
}

/// The small facts of a dataset file read from headers and scalars only (no pattern data).
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetSummary {
    /// Number of patterns (first axis of `diffraction`).
    pub n_images: usize,
    /// Patch size N.
    pub patch_size: usize,
    /// The `gridsize` scalar.
    pub gridsize: i64,
    /// Shape of `group_index` (M, width).
    pub group_shape: (usize, usize),
    /// The `seed` scalar.
    pub seed: i64,
    /// The `nphotons` scalar.
    pub nphotons: f64,
}

impl DatasetSummary {
    /// Read the summary: headers of `diffraction` and `group_index`, and the 0-d scalars.
    pub fn read(path: &Path) -> Result<DatasetSummary> {
        let mut f = NpzFile::open(path)?;
        let d = f.header("diffraction")?;
        if d.shape.len() != 3 {
            return Err(Error::data(
                path,
                format!(
                    "array `diffraction`: shape {:?} where a 3-D array was expected",
                    d.shape
                ),
            ));
        }
        let g = f.header("group_index")?;
        if g.shape.len() != 2 {
            return Err(Error::data(
                path,
                format!(
                    "array `group_index`: shape {:?} where a 2-D array was expected",
                    g.shape
                ),
            ));
        }
        Ok(DatasetSummary {
            n_images: d.shape[0],
            patch_size: d.shape[1],
            gridsize: f.scalar::<i64>("gridsize")?,
            group_shape: (g.shape[0], g.shape[1]),
            seed: f.scalar::<i64>("seed")?,
            nphotons: f.scalar::<f64>("nphotons")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(n: usize, gridsize: i64) -> Dataset {
        let nn = 4;
        let c = (gridsize * gridsize) as usize;
        Dataset {
            diffraction: Array3::from_shape_fn((n, nn, nn), |(i, j, k)| {
                (i * 16 + j * 4 + k) as f32
            }),
            y: Array3::from_shape_fn((n, nn, nn), |(i, j, k)| {
                Complex32::new(i as f32, (j * k) as f32)
            }),
            object: Array2::from_shape_fn((10, 10), |(i, j)| Complex32::new(i as f32, j as f32)),
            probe: Array2::from_elem((nn, nn), Complex32::new(1.0, 0.5)),
            xcoords: Array1::from_shape_fn(n, |i| 3.0 + i as f64 * 0.5),
            ycoords: Array1::from_shape_fn(n, |i| 4.0 + i as f64 * 0.25),
            xcoords_start: Array1::from_shape_fn(n, |i| 3.0 + i as f64 * 0.5),
            ycoords_start: Array1::from_shape_fn(n, |i| 4.0 + i as f64 * 0.25),
            scan_index: Array1::zeros(n),
            group_index: Array2::from_shape_fn((n, c), |(i, j)| ((i + j) % n) as i64),
            gridsize,
            seed: 42,
            nphotons: 1e9,
            intensity_scale: 123.5,
        }
    }

    #[test]
    fn save_load_round_trip_with_identical_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let d = tiny(6, 2);
        let p1 = dir.path().join("a.npz");
        let p2 = dir.path().join("b.npz");
        d.save(&p1).unwrap();
        d.save(&p2).unwrap();
        assert_eq!(std::fs::read(&p1).unwrap(), std::fs::read(&p2).unwrap());
        assert_eq!(Dataset::load(&p1).unwrap(), d);
        let s = DatasetSummary::read(&p1).unwrap();
        assert_eq!(s.n_images, 6);
        assert_eq!(s.group_shape, (6, 4));
        assert_eq!((s.gridsize, s.seed, s.nphotons), (2, 42, 1e9));
    }

    #[test]
    fn load_refuses_inconsistent_files_naming_file_and_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.npz");
        // Lengths disagree: write the arrays by hand, bypassing save's validation.
        let d = tiny(5, 1);
        let mut w = NpzOut::create(&p, false).unwrap();
        w.add("diffraction", &d.diffraction).unwrap();
        w.add("Y", &d.y).unwrap();
        w.add("objectGuess", &d.object).unwrap();
        w.add("probeGuess", &d.probe).unwrap();
        w.add("xcoords", &d.xcoords.slice(ndarray::s![..4]))
            .unwrap();
        for k in ["ycoords", "xcoords_start", "ycoords_start"] {
            w.add(k, &d.ycoords).unwrap();
        }
        w.add("scan_index", &d.scan_index).unwrap();
        w.add("gridsize", &arr0(1i64)).unwrap();
        w.add("seed", &arr0(1i64)).unwrap();
        w.add("nphotons", &arr0(1e9f64)).unwrap();
        w.add("intensity_scale", &arr0(2.0f64)).unwrap();
        w.add("group_index", &d.group_index).unwrap();
        w.finish().unwrap();
        let e = Dataset::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("bad.npz") && e.contains("xcoords") && e.contains("diffraction"),
            "{e}"
        );

        // Wrong dtype for a key.
        let q = dir.path().join("dtype.npz");
        let mut w = NpzOut::create(&q, false).unwrap();
        w.add("diffraction", &d.diffraction.mapv(|v| v as f64))
            .unwrap();
        for k in &KEYS[1..14] {
            w.add(k, &arr0(0i64)).unwrap();
        }
        w.finish().unwrap();
        let e = Dataset::load(&q).unwrap_err().to_string();
        assert!(
            e.contains("dtype.npz") && e.contains("`diffraction`") && e.contains("<f8"),
            "{e}"
        );

        // Missing keys are listed.
        let r = dir.path().join("missing.npz");
        let mut w = NpzOut::create(&r, false).unwrap();
        w.add("diffraction", &d.diffraction).unwrap();
        w.finish().unwrap();
        let e = Dataset::load(&r).unwrap_err().to_string();
        assert!(
            e.contains("missing.npz") && e.contains("group_index") && e.contains("probeGuess"),
            "{e}"
        );

        // group_index out of range / wrong width.
        let mut bad = tiny(5, 2);
        bad.group_index[[0, 0]] = 5;
        let e = bad.save(&dir.path().join("x.npz")).unwrap_err().to_string();
        assert!(e.contains("group_index holds 5"), "{e}");
        let mut bad = tiny(5, 2);
        bad.gridsize = 3;
        let e = bad.validate(Path::new("y.npz")).unwrap_err().to_string();
        assert!(e.contains("width 4") && e.contains("gridsize 3"), "{e}");
    }
}
