//! A reconstruction written by another engine (`reconstruction.npz`, e.g. pty-chi run as a
//! declared target of kind `reconstruction`): one complex object on the ground truth's pixel
//! grid, read and checked so that `evaluate` scores it exactly as it scores its own ePIE
//! baseline (the object cut into patches at the network's centroids, stitched, registered,
//! measured).
//!
//! Members:
//! - `object`: (H, W) complex64 (or complex128), the reconstructed object on exactly the test
//!   data's `objectGuess` grid: pixel `(r, c)` of `object` is pixel `(r, c)` of the truth. Pixels
//!   no scan position reaches may hold any finite value; the scores never see them.
//! - `gridsize` (optional): int64 scalar, the gridsize of the test data the engine read (the
//!   square root of its `group_index` width). When present it is a structural fact that
//!   `verify` compares with the condition's.
//!
//! A target's output may be this file itself (`output = "npz"`) or a directory holding it
//! (`output = "dir"`).

use crate::error::{Error, Result};
use crate::io::npy::NpzFile;
use ndarray::{Array0, Array2};
use num_complex::{Complex32, Complex64};
use std::path::{Path, PathBuf};

/// The file a reconstruction target writes into its output directory.
pub const RECONSTRUCTION_FILE: &str = "reconstruction.npz";

/// The reconstruction file of a target's output: the output itself when it is a file, its
/// `reconstruction.npz` when it is a directory.
pub fn reconstruction_path(output: &Path) -> PathBuf {
    if output.is_dir() {
        output.join(RECONSTRUCTION_FILE)
    } else {
        output.to_path_buf()
    }
}

/// Read the object of the reconstruction at `path`, checked to lie on a `(h, w)` grid (the
/// ground truth's) and to be finite.
pub fn read_reconstruction(path: &Path, (h, w): (usize, usize)) -> Result<Array2<Complex32>> {
    let mut f = NpzFile::open(path)?;
    if !f.has("object") {
        return Err(Error::data(
            path,
            "no member `object`: a reconstruction holds the (H, W) complex object on the ground \
             truth's pixel grid",
        ));
    }
    let object: Array2<Complex32> = match f.read::<Complex32, _>("object") {
        Ok(o) => o,
        Err(_) => f
            .read::<Complex64, _>("object")
            .map_err(|e| Error::data(path, format!("`object` must be a 2-D complex array: {e}")))?
            .mapv(|z| Complex32::new(z.re as f32, z.im as f32)),
    };
    if object.dim() != (h, w) {
        return Err(Error::data(
            path,
            format!(
                "`object` is {:?}; expected ({h}, {w}), the ground truth's grid (objectGuess of \
                 the test data), with the same origin",
                object.dim()
            ),
        ));
    }
    if object
        .iter()
        .any(|z| !z.re.is_finite() || !z.im.is_finite())
    {
        return Err(Error::data(path, "`object` holds a NaN or infinite value"));
    }
    Ok(object)
}

/// The gridsize a reconstruction records, if it records one.
pub fn read_gridsize(path: &Path) -> Result<Option<i64>> {
    let mut f = NpzFile::open(path)?;
    if !f.has("gridsize") {
        return Ok(None);
    }
    let g: Array0<i64> = f
        .read("gridsize")
        .map_err(|e| Error::data(path, format!("`gridsize` must be an int64 scalar: {e}")))?;
    Ok(Some(g.into_scalar()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::npy::NpzOut;

    fn write(path: &Path, object: &Array2<Complex32>, gridsize: Option<i64>) {
        let mut out = NpzOut::create(path, false).unwrap();
        out.add("object", object).unwrap();
        if let Some(g) = gridsize {
            out.add("gridsize", &Array0::from_elem((), g)).unwrap();
        }
        out.finish().unwrap();
    }

    #[test]
    fn a_reconstruction_reads_back_and_a_wrong_grid_is_refused_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(RECONSTRUCTION_FILE);
        let o = Array2::from_shape_fn((6, 5), |(r, c)| Complex32::new(r as f32, c as f32));
        write(&p, &o, Some(2));
        assert_eq!(read_reconstruction(&p, (6, 5)).unwrap(), o);
        assert_eq!(read_gridsize(&p).unwrap(), Some(2));
        assert_eq!(reconstruction_path(d.path()), p);
        assert_eq!(reconstruction_path(&p), p);
        let e = read_reconstruction(&p, (6, 6)).unwrap_err().to_string();
        assert!(
            e.starts_with(&p.display().to_string()) && e.contains("expected (6, 6)"),
            "{e}"
        );
        let mut bad = o.clone();
        bad[[1, 1]] = Complex32::new(f32::NAN, 0.0);
        write(&p, &bad, None);
        let e = read_reconstruction(&p, (6, 5)).unwrap_err().to_string();
        assert!(e.contains("NaN"), "{e}");
        assert_eq!(read_gridsize(&p).unwrap(), None);
        let mut out = NpzOut::create(&p, false).unwrap();
        out.add("patches", &o).unwrap();
        out.finish().unwrap();
        let e = read_reconstruction(&p, (6, 5)).unwrap_err().to_string();
        assert!(e.contains("no member `object`"), "{e}");
    }
}
