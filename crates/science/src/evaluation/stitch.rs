//! Patch geometry of the evaluation: bilinear patch extraction (reference section 4.4),
//! stitching of patches into one image (`reassemble_position`, section 8 step 3) and the
//! coordinate alignment of that image with the ground truth (`align_for_evaluation`, step 4).
//!
//! Coordinates: `x` is the column and `y` the row, in object pixels. Patch pixel `(N/2, N/2)`
//! sits at the scan position. Bilinear sampling treats every corner outside the image as 0.

use crate::error::{Error, Result};
use ndarray::{s, Array2, Array3, ArrayView2};
use num_complex::Complex64;

/// Bilinear sample of `img` at fractional `(row, col)`, corners outside the image counting 0.
pub fn bilinear(img: &ArrayView2<Complex64>, row: f64, col: f64) -> Complex64 {
    let (h, w) = img.dim();
    let r0 = row.floor();
    let c0 = col.floor();
    let (fr, fc) = (row - r0, col - c0);
    let (r0, c0) = (r0 as i64, c0 as i64);
    let mut acc = Complex64::new(0.0, 0.0);
    for (dr, wr) in [(0i64, 1.0 - fr), (1, fr)] {
        for (dc, wc) in [(0i64, 1.0 - fc), (1, fc)] {
            let (r, c) = (r0 + dr, c0 + dc);
            let wgt = wr * wc;
            if wgt != 0.0 && r >= 0 && c >= 0 && (r as usize) < h && (c as usize) < w {
                acc += img[[r as usize, c as usize]] * wgt;
            }
        }
    }
    acc
}

/// The `n x n` patch centred on `(x, y)`: `patch[i, j] = O(y - n/2 + i, x - n/2 + j)`, bilinear,
/// zero outside the object (reference section 4.4).
pub fn extract_patch(object: &Array2<Complex64>, x: f64, y: f64, n: usize) -> Array2<Complex64> {
    let v = object.view();
    let h = (n / 2) as f64;
    Array2::from_shape_fn((n, n), |(i, j)| {
        bilinear(&v, y - h + i as f64, x - h + j as f64)
    })
}

/// A stitched image and where it sits.
#[derive(Clone, Debug)]
pub struct Stitched {
    /// The coverage-normalised complex image; uncovered pixels are 0.
    pub image: Array2<Complex64>,
    /// How many patches touch each pixel, weighted bilinearly (the normalisation denominator).
    pub coverage: Array2<f64>,
    /// The canvas pixel `(pad + M/2, pad + M/2)` corresponds to this mean position `(x, y)`.
    pub mean_position: (f64, f64),
}

/// Stitch patches (`(B, N, N)`) placed at `positions` (`(B, 2)`, `(x, y)`), keeping the central
/// `crop x crop` of each (`[N/2 - crop/2, N/2 + crop/2)`), as PtychoPINN's `reassemble_position`:
/// offsets are the positions minus their mean; `pad = ceil(max |offset|)` rounded up to even;
/// each crop, zero-padded by `pad`, is translated bilinearly by its offset and summed; the sum is
/// divided by the same sum of all-ones crops plus 1e-9.
pub fn stitch(
    patches: &Array3<Complex64>,
    positions: &Array2<f64>,
    crop: usize,
) -> Result<Stitched> {
    let (b, n, n2) = patches.dim();
    if n != n2 {
        return Err(Error::Invalid(format!(
            "stitch: patches are {n}x{n2}, not square"
        )));
    }
    if positions.dim() != (b, 2) {
        return Err(Error::Invalid(format!(
            "stitch: {b} patches but positions of shape {:?} (want ({b}, 2))",
            positions.dim()
        )));
    }
    if b == 0 {
        return Err(Error::Invalid("stitch: no patches".into()));
    }
    if crop == 0 || crop > n {
        return Err(Error::Invalid(format!(
            "stitch: crop {crop} must be between 1 and the patch size {n}"
        )));
    }
    let mx = positions.column(0).sum() / b as f64;
    let my = positions.column(1).sum() / b as f64;
    let maxoff = positions.rows().into_iter().fold(0.0f64, |m, p| {
        m.max((p[0] - mx).abs()).max((p[1] - my).abs())
    });
    let mut pad = maxoff.ceil() as usize;
    if pad % 2 == 1 {
        pad += 1;
    }
    let side = crop + 2 * pad;
    let mut sum = Array2::<Complex64>::zeros((side, side));
    let mut cov = Array2::<f64>::zeros((side, side));
    let c0 = n / 2 - crop / 2;
    let ones = Array2::<Complex64>::from_elem((crop, crop), Complex64::new(1.0, 0.0));
    for k in 0..b {
        let (dx, dy) = (positions[[k, 0]] - mx, positions[[k, 1]] - my);
        let cropped = patches.slice(s![k, c0..c0 + crop, c0..c0 + crop]);
        // out(r, c) = crop_bilinear(r - dy - pad, c - dx - pad).
        let oy = dy + pad as f64;
        let ox = dx + pad as f64;
        let r_lo = ((oy - 1.0).floor().max(0.0)) as usize;
        let r_hi = (((oy + crop as f64).ceil() + 1.0) as usize).min(side);
        let c_lo = ((ox - 1.0).floor().max(0.0)) as usize;
        let c_hi = (((ox + crop as f64).ceil() + 1.0) as usize).min(side);
        for r in r_lo..r_hi {
            for c in c_lo..c_hi {
                let (sr, sc) = (r as f64 - oy, c as f64 - ox);
                sum[[r, c]] += bilinear(&cropped, sr, sc);
                cov[[r, c]] += bilinear(&ones.view(), sr, sc).re;
            }
        }
    }
    let image = Array2::from_shape_fn((side, side), |ij| sum[ij] / (cov[ij] + 1e-9));
    Ok(Stitched {
        image,
        coverage: cov,
        mean_position: (mx, my),
    })
}

/// Centre-crop to `(th, tw)`: `start = (size - target) / 2` per axis.
pub fn center_crop(a: &Array2<Complex64>, th: usize, tw: usize) -> Array2<Complex64> {
    crate::evaluation::metrics::center_crop(a, th, tw)
}

/// The result of [`align_for_evaluation`].
#[derive(Clone, Debug)]
pub struct AlignedCrops {
    pub recon: Array2<Complex64>,
    pub gt: Array2<Complex64>,
    /// The shift `(dy, dx)` that the geometry says registration should find for a
    /// reconstruction stitched by [`stitch`] from the same positions and crop: the difference
    /// between the object coordinates of the two crops' pixel (0, 0).
    pub expected_offset: (f64, f64),
}

/// PtychoPINN's `align_for_evaluation` with `r = crop / 2`: crop the ground-truth object to rows
/// `[max(0, int(min y) - r), min(H, int(max y) + r))` and the same for columns with `x`, then
/// centre-crop both images to their common size. `recon` is a canvas made by [`stitch`] from
/// the same `positions` and `crop` (its centre pixel `(pad + crop/2)` is the mean position).
pub fn align_for_evaluation(
    recon: &Array2<Complex64>,
    object: &Array2<Complex64>,
    positions: &Array2<f64>,
    crop: usize,
) -> Result<AlignedCrops> {
    if positions.nrows() == 0 || positions.ncols() != 2 {
        return Err(Error::Invalid(format!(
            "align: positions must be (B, 2) with B > 0, got {:?}",
            positions.dim()
        )));
    }
    let (h, w) = object.dim();
    let r = (crop / 2) as i64;
    let fold = |col: usize| {
        positions
            .column(col)
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            })
    };
    let (xmin, xmax) = fold(0);
    let (ymin, ymax) = fold(1);
    let clamp = |v: i64, n: usize| v.clamp(0, n as i64) as usize;
    let r0 = clamp(ymin.trunc() as i64 - r, h);
    let r1 = clamp(ymax.trunc() as i64 + r, h);
    let c0 = clamp(xmin.trunc() as i64 - r, w);
    let c1 = clamp(xmax.trunc() as i64 + r, w);
    if r1 <= r0 || c1 <= c0 {
        return Err(Error::Invalid(format!(
            "align: the scanned region rows [{r0}, {r1}) x cols [{c0}, {c1}) is empty in a \
             {h}x{w} object"
        )));
    }
    let gt = object.slice(s![r0..r1, c0..c1]).to_owned();
    let th = gt.nrows().min(recon.nrows());
    let tw = gt.ncols().min(recon.ncols());
    // Object coordinate of pixel (0, 0) of each crop.
    let b = positions.nrows() as f64;
    let mx = positions.column(0).sum() / b;
    let my = positions.column(1).sum() / b;
    let pad_r = (recon.nrows().saturating_sub(crop) / 2) as f64;
    let pad_c = (recon.ncols().saturating_sub(crop) / 2) as f64;
    let half = (crop / 2) as f64;
    let rec_r = my + ((recon.nrows() - th) / 2) as f64 - pad_r - half;
    let rec_c = mx + ((recon.ncols() - tw) / 2) as f64 - pad_c - half;
    let gt_r = (r0 + (gt.nrows() - th) / 2) as f64;
    let gt_c = (c0 + (gt.ncols() - tw) / 2) as f64;
    Ok(AlignedCrops {
        recon: center_crop(recon, th, tw),
        gt: center_crop(&gt, th, tw),
        expected_offset: (rec_r - gt_r, rec_c - gt_c),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(h: usize, w: usize) -> Array2<Complex64> {
        Array2::from_shape_fn((h, w), |(r, c)| {
            let (r, c) = (r as f64, c as f64);
            Complex64::from_polar(1.0 + 0.3 * (0.2 * c).sin(), 0.4 * (0.15 * r).cos())
        })
    }

    #[test]
    fn extraction_follows_the_patch_convention() {
        let o = object(40, 50);
        let p = extract_patch(&o, 20.0, 15.0, 8);
        assert_eq!(p[[4, 4]], o[[15, 20]]);
        assert_eq!(p[[0, 0]], o[[11, 16]]);
        // Half a pixel to the right averages two columns.
        let q = extract_patch(&o, 20.5, 15.0, 8);
        assert!((q[[4, 4]] - (o[[15, 20]] + o[[15, 21]]) * 0.5).norm() < 1e-12);
        // Outside the object is zero; half outside halves.
        let e = extract_patch(&o, 1.0, 1.0, 8);
        assert_eq!(e[[0, 0]], Complex64::new(0.0, 0.0));
    }

    #[test]
    fn stitching_true_patches_reproduces_the_object_where_covered() {
        let o = object(60, 60);
        let pos: Vec<(f64, f64)> = (0..25)
            .map(|k| {
                (
                    18.0 + 6.0 * (k % 5) as f64 + 0.3,
                    17.0 + 6.0 * (k / 5) as f64 + 0.7,
                )
            })
            .collect();
        let patches = Array3::from_shape_fn((25, 16, 16), |(k, i, j)| {
            extract_patch(&o, pos[k].0, pos[k].1, 16)[[i, j]]
        });
        let positions =
            Array2::from_shape_fn((25, 2), |(k, a)| if a == 0 { pos[k].0 } else { pos[k].1 });
        let st = stitch(&patches, &positions, 8).unwrap();
        // Canvas pixel (pad + 4, pad + 4) is the mean position (30.3, 29.7); pad = 12 or 14
        // (12 up to rounding of the offsets, then made even).
        let side = st.image.nrows();
        let pad = (side - 8) / 2;
        assert!(pad == 12 || pad == 14, "pad {pad}");
        let centre = (pad + 4) as f64;
        // Compare inside the fully covered region with the bilinearly sampled object. Bilinear
        // placement of bilinear samples smooths a little; the object is smooth so it is close.
        let (mx, my) = st.mean_position;
        let mut worst = 0.0f64;
        for r in pad - 4..side - pad + 4 {
            for c in pad - 4..side - pad + 4 {
                let want = bilinear(
                    &o.view(),
                    my + (r as f64 - centre),
                    mx + (c as f64 - centre),
                );
                worst = worst.max((st.image[[r, c]] - want).norm());
            }
        }
        assert!(worst < 0.02, "worst {worst}");
        assert!(st.coverage.iter().all(|v| *v >= 0.0));
    }

    #[test]
    fn alignment_crops_to_the_scanned_box() {
        let o = object(100, 100);
        let positions = ndarray::arr2(&[[30.7, 20.2], [60.2, 70.9]]);
        let recon = Array2::<Complex64>::zeros((80, 45));
        let al = align_for_evaluation(&recon, &o, &positions, 20).unwrap();
        let (r, g) = (al.recon, al.gt);
        // rows [20-10, 70+10) = 70 rows, cols [30-10, 60+10) = 50 cols; common 70 x 45.
        assert_eq!(r.dim(), (70, 45));
        assert_eq!(g.dim(), (70, 45));
        assert_eq!(g[[0, 0]], o[[10, 22]]);
    }
}
