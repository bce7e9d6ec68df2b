//! Neighbour grouping of scan positions for gridsize > 1 (reference section 6, variant B with
//! every pattern as a seed point).
//!
//! For `C = gridsize^2`, group `m` (one per pattern, `M = n`) is pattern `m` followed by its
//! `C - 1` nearest other patterns in increasing Euclidean distance of `(x, y)`, ties broken by the
//! smaller pattern index. The result depends only on the coordinates: no randomness, and the same
//! for any number of threads. For gridsize 1 it is `[[0], [1], ..., [n-1]]`.
//!
//! Because grouping happens after simulation, the gridsize-1 and gridsize-2 datasets of one probe
//! and seed hold identical patterns and differ only in `group_index`.
//!
//! The search is exhaustive, O(n^2) distance evaluations in parallel over seeds (about 25 million
//! for the study's 5000 patterns, a few tens of milliseconds).

use crate::error::{Error, Result};
use ndarray::Array2;
use rayon::prelude::*;
use std::fmt;

/// Patterns per group side: a group holds `gridsize^2` patterns (PtychoPINN's `C`), the
/// network sees them as `gridsize^2` channels. The one place where a width and a gridsize are
/// converted: every "width = gridsize^2" check is [`Gridsize::width`] or
/// [`Gridsize::from_width`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gridsize(usize);

impl Gridsize {
    /// The largest gridsize a study may declare (64 patterns per group).
    pub const STUDY_MAX: Gridsize = Gridsize(8);

    /// A gridsize of at least 1.
    pub fn new(g: i64) -> Option<Gridsize> {
        usize::try_from(g).ok().filter(|&g| g >= 1).map(Gridsize)
    }

    /// The number of patterns per group side.
    pub fn get(self) -> usize {
        self.0
    }

    /// As the integer a file or a parameter holds.
    pub fn as_i64(self) -> i64 {
        self.0 as i64
    }

    /// Patterns per group: `gridsize^2` (`None` on overflow).
    pub fn width(self) -> Option<usize> {
        self.0.checked_mul(self.0)
    }

    /// The gridsize whose groups are `width` patterns wide, if `width` is a positive square.
    pub fn from_width(width: usize) -> Option<Gridsize> {
        let r = (width as f64).sqrt().round() as usize;
        (r > 0 && r.checked_mul(r) == Some(width)).then_some(Gridsize(r))
    }

    /// Whether groups of `width` patterns are groups of this gridsize.
    pub fn fits_width(self, width: usize) -> bool {
        self.width() == Some(width)
    }
}

impl fmt::Display for Gridsize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Groups of `gridsize^2` neighbouring patterns, one per pattern: shape `(n, gridsize^2)`, int64
/// indices into the patterns. Errors if `gridsize == 0`, the lengths differ, a coordinate is not
/// finite, or there are fewer than `gridsize^2` patterns.
pub fn group_neighbours(x: &[f64], y: &[f64], gridsize: usize) -> Result<Array2<i64>> {
    let n = x.len();
    if gridsize == 0 {
        return Err(Error::Invalid(
            "grouping: gridsize must be at least 1".into(),
        ));
    }
    if y.len() != n {
        return Err(Error::Invalid(format!(
            "grouping: {} x coordinates but {} y coordinates",
            n,
            y.len()
        )));
    }
    if x.iter().chain(y).any(|v| !v.is_finite()) {
        return Err(Error::Invalid(
            "grouping: coordinates must be finite".into(),
        ));
    }
    let c = gridsize
        .checked_mul(gridsize)
        .ok_or_else(|| Error::Invalid(format!("grouping: gridsize {gridsize} is too large")))?;
    if n < c {
        return Err(Error::Invalid(format!(
            "grouping: gridsize {gridsize} needs at least {c} patterns, got {n}"
        )));
    }
    if c == 1 {
        return Ok(Array2::from_shape_fn((n, 1), |(i, _)| i as i64));
    }
    let k = c - 1;
    let rows: Vec<Vec<i64>> = (0..n)
        .into_par_iter()
        .map(|i| {
            // Keep the k best (distance, index) pairs, sorted, by insertion.
            let mut best: Vec<(f64, usize)> = Vec::with_capacity(k + 1);
            for j in 0..n {
                if j == i {
                    continue;
                }
                let d = (x[j] - x[i]).powi(2) + (y[j] - y[i]).powi(2);
                if best.len() == k && (d, j) >= best[k - 1] {
                    continue;
                }
                let pos = best.partition_point(|&b| b < (d, j));
                best.insert(pos, (d, j));
                best.truncate(k);
            }
            std::iter::once(i as i64)
                .chain(best.into_iter().map(|(_, j)| j as i64))
                .collect()
        })
        .collect();
    let flat: Vec<i64> = rows.into_iter().flatten().collect();
    Array2::from_shape_vec((n, c), flat)
        .map_err(|e| Error::Invalid(format!("grouping: internal shape error {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gridsize_and_width_convert_only_for_squares() {
        for g in 1..=8 {
            let gs = Gridsize::new(g).unwrap();
            assert_eq!(gs.width(), Some((g * g) as usize));
            assert_eq!(Gridsize::from_width((g * g) as usize), Some(gs));
            assert!(gs.fits_width((g * g) as usize));
        }
        for w in [0, 2, 3, 5, 8] {
            assert_eq!(Gridsize::from_width(w), None, "{w}");
        }
        assert_eq!(Gridsize::new(0), None);
        assert_eq!(Gridsize::new(-1), None);
        assert!(Gridsize::new(9).unwrap() > Gridsize::STUDY_MAX);
    }
    use rand::{Rng, SeedableRng};

    fn points(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let x = (0..n).map(|_| 32.0 + 160.0 * r.random::<f64>()).collect();
        let y = (0..n).map(|_| 32.0 + 160.0 * r.random::<f64>()).collect();
        (x, y)
    }

    #[test]
    fn gridsize_one_is_the_identity() {
        let g = group_neighbours(&[1.0, 2.0, 3.0], &[0.0, 0.0, 0.0], 1).unwrap();
        assert_eq!(g, ndarray::array![[0], [1], [2]]);
    }

    #[test]
    fn groups_are_the_seed_and_its_nearest_distinct_neighbours() {
        let (x, y) = points(300, 7);
        let g = group_neighbours(&x, &y, 2).unwrap();
        assert_eq!(g.dim(), (300, 4));
        for (i, row) in g.outer_iter().enumerate() {
            assert_eq!(row[0], i as i64);
            let mut s: Vec<i64> = row.to_vec();
            s.sort();
            s.dedup();
            assert_eq!(s.len(), 4, "distinct");
            // Brute-force reference: sort all others by (distance, index).
            let mut all: Vec<(f64, usize)> = (0..300)
                .filter(|&j| j != i)
                .map(|j| ((x[j] - x[i]).powi(2) + (y[j] - y[i]).powi(2), j))
                .collect();
            all.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let want: Vec<i64> = all[..3].iter().map(|&(_, j)| j as i64).collect();
            assert_eq!(&row.to_vec()[1..], &want[..]);
            // Mutually near: every member within the 3rd-neighbour radius of the seed, which for
            // 300 points on 160x160 is small.
            assert!(all[2].0.sqrt() < 40.0);
        }
        assert_eq!(g, group_neighbours(&x, &y, 2).unwrap());
        let g3 = group_neighbours(&x, &y, 3).unwrap();
        assert_eq!(g3.dim(), (300, 9));
    }

    #[test]
    fn ties_break_by_index_and_bad_input_is_refused() {
        // A plus shape: 4 equidistant neighbours of the centre (index 2).
        let x = [0.0, -1.0, 0.0, 1.0, 0.0];
        let y = [-1.0, 0.0, 0.0, 0.0, 1.0];
        let g = group_neighbours(&x, &y, 2).unwrap();
        assert_eq!(g.row(2).to_vec(), vec![2, 0, 1, 3]);
        assert!(group_neighbours(&x, &y, 3).is_err());
        assert!(group_neighbours(&x, &y[..4], 2).is_err());
        assert!(group_neighbours(&x, &y, 0).is_err());
        assert!(group_neighbours(&[f64::NAN; 5], &y, 2).is_err());
    }
}
