//! The model's view of a dataset (reference section 6): groups of `C = gridsize^2` patterns,
//! their normalised diffraction amplitudes, the per-channel offsets and the group centroids.

use ndarray::Array2;
use studymake_science::error::{Error, Result};
use studymake_science::io::dataset::Dataset;
use studymake_science::physics::grouping::Gridsize;

/// A dataset grouped for the network.
#[derive(Clone, Debug)]
pub struct Groups {
    /// Pattern size `N`.
    pub n: usize,
    /// Channels per group `C`.
    pub channels: usize,
    /// `(M, N, N, C)` row-major: the normalised amplitude
    /// `X = diffraction * sqrt((N/2)^2 / mean_{m,c} sum_pixels diffraction^2)`, pattern
    /// `group_index[m, c]` in channel `c`.
    pub x: Vec<f32>,
    /// Per group, per channel `(dx, dy) = p_c - a` in object pixels, `a` the group's anchor;
    /// zero for gridsize 1.
    pub shifts: Vec<Vec<(f64, f64)>>,
    /// `(M, 2)` group anchors `a = (x, y)` in object pixels, the centre of the group's canvas and
    /// of its reconstruction: the centroid of the group's scan positions, rounded to whole
    /// pixels at gridsize 2 and above (the canvas lies on the object's pixel grid; see the
    /// physics module), the scan position itself at gridsize 1.
    pub centroids: Array2<f64>,
    /// The dataset's normalisation scalar (the square root factor above).
    pub norm_factor: f64,
}

impl Groups {
    /// Group `data` for a model of `gridsize`. Refuses a dataset whose `group_index` width is not
    /// `gridsize^2` (naming both), whose recorded gridsize differs, or whose indices are out of
    /// range.
    pub fn new(data: &Dataset, gridsize: usize) -> Result<Groups> {
        let (m, c) = data.group_index.dim();
        let needs = Gridsize::new(gridsize as i64).and_then(Gridsize::width);
        if needs != Some(c) {
            return Err(Error::Invalid(format!(
                "the dataset's group_index has {c} columns (groups of {c} patterns, gridsize \
                 {:.0}) but the model has gridsize {gridsize} (needs {} columns)",
                (c as f64).sqrt(),
                needs.unwrap_or(0)
            )));
        }
        if data.gridsize != gridsize as i64 {
            return Err(Error::Invalid(format!(
                "the dataset was grouped for gridsize {} but the model has gridsize {gridsize}",
                data.gridsize
            )));
        }
        let (np, n, n2) = data.diffraction.dim();
        if n != n2 || n == 0 {
            return Err(Error::Invalid(format!(
                "diffraction patterns must be square, got {n} x {n2}"
            )));
        }
        if data.xcoords.len() != np || data.ycoords.len() != np {
            return Err(Error::Invalid(format!(
                "the dataset has {np} patterns but {} x and {} y coordinates",
                data.xcoords.len(),
                data.ycoords.len()
            )));
        }
        if m == 0 {
            return Err(Error::Invalid("the dataset has no groups".into()));
        }
        let mut idx = Vec::with_capacity(m * c);
        for &i in data.group_index.iter() {
            if i < 0 || i as usize >= np {
                return Err(Error::Invalid(format!(
                    "group_index refers to pattern {i} but the dataset has {np} patterns"
                )));
            }
            idx.push(i as usize);
        }
        // Normalisation over the grouped patterns, accumulated in f64 in a fixed order.
        let mut energy = 0.0f64;
        for &i in &idx {
            let p = data.diffraction.index_axis(ndarray::Axis(0), i);
            energy += p.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>();
        }
        let mean = energy / idx.len() as f64;
        if !(mean > 0.0 && mean.is_finite()) {
            return Err(Error::Invalid(
                "the grouped diffraction has no energy; cannot normalise it".into(),
            ));
        }
        let norm_factor = ((n as f64 / 2.0).powi(2) / mean).sqrt();
        let mut x = vec![0f32; m * n * n * c];
        for g in 0..m {
            for ch in 0..c {
                let p = data
                    .diffraction
                    .index_axis(ndarray::Axis(0), idx[g * c + ch]);
                for ((i, j), &v) in p.indexed_iter() {
                    x[((g * n + i) * n + j) * c + ch] = (v as f64 * norm_factor) as f32;
                }
            }
        }
        let mut shifts = Vec::with_capacity(m);
        let mut centroids = Array2::zeros((m, 2));
        for g in 0..m {
            let pts: Vec<(f64, f64)> = (0..c)
                .map(|ch| {
                    let i = idx[g * c + ch];
                    (data.xcoords[i], data.ycoords[i])
                })
                .collect();
            let gx = pts.iter().map(|p| p.0).sum::<f64>() / c as f64;
            let gy = pts.iter().map(|p| p.1).sum::<f64>() / c as f64;
            // The anchor: the canvas centre on the object's pixel grid (physics module docs).
            let (gx, gy) = if c == 1 {
                (gx, gy)
            } else {
                (gx.round(), gy.round())
            };
            centroids[[g, 0]] = gx;
            centroids[[g, 1]] = gy;
            shifts.push(pts.iter().map(|p| (p.0 - gx, p.1 - gy)).collect());
        }
        Ok(Groups {
            n,
            channels: c,
            x,
            shifts,
            centroids,
            norm_factor,
        })
    }

    /// Number of groups `M`.
    pub fn len(&self) -> usize {
        self.shifts.len()
    }

    /// Whether there are no groups.
    pub fn is_empty(&self) -> bool {
        self.shifts.is_empty()
    }

    /// The inputs of the listed groups: `(B, N, N, C)` values and their shifts.
    pub fn batch(&self, ids: &[usize]) -> (Vec<f32>, Vec<Vec<(f64, f64)>>) {
        let per = self.n * self.n * self.channels;
        let mut x = Vec::with_capacity(ids.len() * per);
        for &g in ids {
            x.extend_from_slice(&self.x[g * per..(g + 1) * per]);
        }
        (x, ids.iter().map(|&g| self.shifts[g].clone()).collect())
    }
}
