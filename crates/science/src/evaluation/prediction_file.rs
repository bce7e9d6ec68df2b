//! A prediction written by an external model (`prediction.npz`, e.g. PtychoPINN's own trainer
//! run as a command recipe): the object patches it reconstructed for the test data's own
//! groups, read and checked so that `evaluate` scores it exactly as it scores the native
//! network's.
//!
//! Members:
//! - `patches`: (M, N, N) complex64 (or complex128), the object patch of each group, centred on
//!   the group's centroid, N the test data's pattern size;
//! - `group_index`: (M, gridsize^2) int64, which must equal the test data's: the prediction is of
//!   exactly the test data's groups, and its width gives the gridsize;
//! - `centroids` (optional): (M, 2) float64 (or float32) `(x, y)` in object pixels, where each patch is
//!   centred; when absent, the mean scan position of each group's patterns.

use super::Prediction;
use crate::error::{Error, Result};
use crate::io::dataset::Dataset;
use crate::io::npy::NpzFile;
use ndarray::{Array2, Array3};
use num_complex::{Complex32, Complex64};
use std::path::Path;

/// The file an external model writes into its output directory.
pub const PREDICTION_FILE: &str = "prediction.npz";

/// Read a prediction of `data`'s groups from `path`, checked against `data`.
pub fn read_prediction(path: &Path, data: &Dataset) -> Result<Prediction> {
    let mut f = NpzFile::open(path)?;
    let patches: Array3<Complex32> = match f.read::<Complex32, _>("patches") {
        Ok(p) => p,
        Err(_) => f
            .read::<Complex64, _>("patches")?
            .mapv(|z| Complex32::new(z.re as f32, z.im as f32)),
    };
    let group_index: Array2<i64> = f.read("group_index")?;
    if group_index != data.group_index {
        return Err(Error::data(
            path,
            format!(
                "`group_index` {:?} is not the test data's {:?}: a prediction must be of the test \
                 data's own groups, in its order",
                group_index.dim(),
                data.group_index.dim()
            ),
        ));
    }
    let (m, c) = group_index.dim();
    let n = data.diffraction.dim().1;
    if patches.dim() != (m, n, n) {
        return Err(Error::data(
            path,
            format!(
                "`patches` is {:?}; expected ({m}, {n}, {n}): one {n} x {n} patch per group",
                patches.dim()
            ),
        ));
    }
    if patches
        .iter()
        .any(|z| !z.re.is_finite() || !z.im.is_finite())
    {
        return Err(Error::data(path, "`patches` holds a NaN or infinite value"));
    }
    let gridsize = (c as f64).sqrt().round() as i64;
    if (gridsize * gridsize) as usize != c {
        return Err(Error::data(
            path,
            format!("`group_index` has {c} columns, not gridsize^2 for any gridsize"),
        ));
    }
    let centroids = if f.has("centroids") {
        let cen: Array2<f64> = match f.read::<f64, _>("centroids") {
            Ok(c) => c,
            Err(_) => f.read::<f32, _>("centroids")?.mapv(f64::from),
        };
        if cen.dim() != (m, 2) || cen.iter().any(|v| !v.is_finite()) {
            return Err(Error::data(
                path,
                format!(
                    "`centroids` must be ({m}, 2) finite (x, y) values, found {:?}",
                    cen.dim()
                ),
            ));
        }
        cen
    } else {
        Array2::from_shape_fn((m, 2), |(g, axis)| {
            let coords = if axis == 0 {
                &data.xcoords
            } else {
                &data.ycoords
            };
            let sum: f64 = (0..c).map(|ch| coords[group_index[[g, ch]] as usize]).sum();
            sum / c as f64
        })
    };
    Ok(Prediction {
        patches,
        centroids,
        gridsize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::npy::NpzOut;
    use crate::testdata::perfect_case;

    fn write(path: &Path, pred: &Prediction, group_index: &Array2<i64>, centroids: bool) {
        let mut out = NpzOut::create(path, false).unwrap();
        out.add("patches", &pred.patches).unwrap();
        out.add("group_index", group_index).unwrap();
        if centroids {
            out.add("centroids", &pred.centroids).unwrap();
        }
        out.finish().unwrap();
    }

    #[test]
    fn a_written_prediction_reads_back_as_the_same_prediction() {
        let d = tempfile::tempdir().unwrap();
        let (data, pred) = perfect_case(false);
        let p = d.path().join(PREDICTION_FILE);
        write(&p, &pred, &data.group_index, true);
        let got = read_prediction(&p, &data).unwrap();
        assert_eq!(got.patches, pred.patches);
        assert_eq!(got.centroids, pred.centroids);
        assert_eq!(got.gridsize, 1);
        // Without centroids: the groups' mean scan positions, here the positions themselves.
        write(&p, &pred, &data.group_index, false);
        let got = read_prediction(&p, &data).unwrap();
        for g in 0..got.centroids.nrows() {
            let i = data.group_index[[g, 0]] as usize;
            assert_eq!(got.centroids[[g, 0]], data.xcoords[i]);
            assert_eq!(got.centroids[[g, 1]], data.ycoords[i]);
        }
    }

    #[test]
    fn a_prediction_of_other_groups_or_sizes_is_refused_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let (data, pred) = perfect_case(false);
        let p = d.path().join(PREDICTION_FILE);
        let mut other = data.group_index.clone();
        other.swap([0, 0], [1, 0]);
        write(&p, &pred, &other, true);
        let e = read_prediction(&p, &data).unwrap_err().to_string();
        assert!(
            e.starts_with(&p.display().to_string()) && e.contains("not the test data's"),
            "{e}"
        );
        let mut small = pred.clone();
        small.patches = pred.patches.slice(ndarray::s![.., ..8, ..8]).to_owned();
        write(&p, &small, &data.group_index, true);
        let e = read_prediction(&p, &data).unwrap_err().to_string();
        assert!(e.contains("`patches` is"), "{e}");
    }
}
