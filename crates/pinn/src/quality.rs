//! Learning curves: the quality of the network's held-out patches against the true patches,
//! measured after every epoch, so that training is judged by image quality and not by loss.
//!
//! The held-out set is training's own validation split (the last 5% of the groups, never
//! trained on). For every pattern of every held-out group, the network's patch (the central
//! `N/2 x N/2` it emits, before reassembly) is compared with the true patch (at gridsize 1 the
//! dataset's `Y`; at gridsize 2 and above the object on its pixel grid around the rounded scan
//! position, which is what the network's patches are there: see the physics module) on the
//! well-illuminated core: the central square of side `2 floor(N/6)` (20 px at N = 64), centred on
//! the patch centre so that it maps onto itself under a 180-degree rotation. Per patch:
//!
//! * `amp_ssim`: SSIM (scikit-image's defaults, data range of the true amplitude) of the
//!   amplitude, after the single factor that matches the means (the overall amplitude scale is
//!   traded against the learned intensity scale and is not observable);
//! * `amp_pearson`: Pearson correlation of the amplitudes;
//! * `phase_pearson`: Pearson correlation of the phases (a constant offset, the per-pattern phase
//!   gauge, does not count);
//! * `twin`: whether the amplitude correlates better with the twin image, the true patch rotated
//!   by 180 degrees about its centre (`conj(O(-r))` has the amplitude of `O(-r)`). With a real,
//!   centrosymmetric probe a single pattern cannot tell a patch from its twin; a network that
//!   has not broken the ambiguity scores near 0.5 here or, averaging the two, correlates equally
//!   with both.
//!
//! The means over patches are recorded per epoch in `training.log` and `model.json`.

use super::groups::Groups;
use super::network::ce;
use super::pinn::Pinn;
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use studymake_science::error::Result;
use studymake_science::evaluation::metrics::ssim;
use studymake_science::io::dataset::Dataset;

/// Held-out patch quality after one epoch (means over the held-out patches).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Quality {
    pub amp_ssim: f64,
    pub amp_pearson: f64,
    pub phase_pearson: f64,
    /// Fraction of patches whose amplitude correlates better with the twin image.
    pub twin_fraction: f64,
    /// Patches scored.
    pub patches: usize,
}

/// Side of the scored core for patch size `n`: `2 floor(n / 6)`, at least 8.
pub fn core_side(n: usize) -> usize {
    (2 * (n / 6)).max(8).min(n / 2)
}

/// Pearson correlation; 0 when either side is constant.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        cov += (x - ma) * (y - mb);
        va += (x - ma) * (x - ma);
        vb += (y - mb) * (y - mb);
    }
    if va <= 0.0 || vb <= 0.0 {
        0.0
    } else {
        cov / (va * vb).sqrt()
    }
}

/// The scores of one patch: `pred_amp`, `pred_phase` and the true patch `truth` (complex, as
/// `(re, im)` pairs), all `s x s` cores in row-major order.
fn score_patch(pred_amp: &[f64], pred_phase: &[f64], truth: &[(f64, f64)], s: usize) -> [f64; 4] {
    let t_amp: Vec<f64> = truth.iter().map(|&(r, i)| r.hypot(i)).collect();
    let t_phase: Vec<f64> = truth.iter().map(|&(r, i)| i.atan2(r)).collect();
    let twin: Vec<f64> = (0..s * s).map(|k| t_amp[s * s - 1 - k]).collect();
    let r = pearson(pred_amp, &t_amp);
    let r_twin = pearson(pred_amp, &twin);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let k = if mean(pred_amp) > 0.0 {
        mean(&t_amp) / mean(pred_amp)
    } else {
        1.0
    };
    let t = Array2::from_shape_vec((s, s), t_amp.clone()).expect("s x s");
    let p = Array2::from_shape_fn((s, s), |(i, j)| pred_amp[i * s + j] * k);
    let lo = t_amp.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = t_amp.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let range = if hi > lo { hi - lo } else { 1.0 };
    let ss = ssim(&t, &p, range).unwrap_or(0.0);
    let ph = pearson(pred_phase, &t_phase);
    [ss, r, ph, if r_twin > r { 1.0 } else { 0.0 }]
}

/// Score the network's patches of groups `ids` against `data.y`, in batches of `batch`.
pub fn held_out(
    model: &Pinn,
    groups: &Groups,
    data: &Dataset,
    ids: &[usize],
    batch: usize,
) -> Result<Option<Quality>> {
    if ids.is_empty() {
        return Ok(None);
    }
    let (n, c) = (groups.n, groups.channels);
    let h = n / 2;
    let s = core_side(n);
    // Core offset inside the emitted N/2 patch and inside the full N patch.
    let (oh, on) = ((h - s) / 2, (n - s) / 2);
    let mut acc = [0.0f64; 4];
    let mut count = 0usize;
    for chunk in ids.chunks(batch.max(1)) {
        let (x, _) = model.batch(groups, chunk)?;
        let (amp, phase) = model.decode(&x.detach()).map_err(ce)?;
        // (B, h, h, C) each.
        let amp: Vec<f32> = amp.flatten_all().and_then(|t| t.to_vec1()).map_err(ce)?;
        let phase: Vec<f32> = phase.flatten_all().and_then(|t| t.to_vec1()).map_err(ce)?;
        for (k, &g) in chunk.iter().enumerate() {
            for ch in 0..c {
                let pi = data.group_index[[g, ch]] as usize;
                let (mut pa, mut pp, mut tr) = (vec![], vec![], vec![]);
                for i in 0..s {
                    for j in 0..s {
                        let o = ((k * h + oh + i) * h + oh + j) * c + ch;
                        pa.push(amp[o] as f64);
                        pp.push(phase[o] as f64);
                        let z = if c == 1 {
                            data.y[[pi, on + i, on + j]]
                        } else {
                            // On the object's pixel grid around round(p_c) (physics module).
                            // Core pixel i is emitted pixel N/4 + (N/2 - s)/2 + i = on + i of
                            // the N x N patch whose pixel N/2 is round(p_c).
                            let o = (n / 2) as i64 - on as i64;
                            let r = data.ycoords[pi].round() as i64 - o + i as i64;
                            let col = data.xcoords[pi].round() as i64 - o + j as i64;
                            let (hh, ww) = data.object.dim();
                            if r >= 0 && col >= 0 && (r as usize) < hh && (col as usize) < ww {
                                data.object[[r as usize, col as usize]]
                            } else {
                                Default::default()
                            }
                        };
                        tr.push((z.re as f64, z.im as f64));
                    }
                }
                let sc = score_patch(&pa, &pp, &tr, s);
                for (a, v) in acc.iter_mut().zip(sc) {
                    *a += v;
                }
                count += 1;
            }
        }
    }
    let m = count as f64;
    Ok(Some(Quality {
        amp_ssim: acc[0] / m,
        amp_pearson: acc[1] / m,
        phase_pearson: acc[2] / m,
        twin_fraction: acc[3] / m,
        patches: count,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth(s: usize) -> Vec<(f64, f64)> {
        (0..s * s)
            .map(|k| {
                let (i, j) = ((k / s) as f64, (k % s) as f64);
                let a = 1.0 + 0.3 * (0.7 * i).sin() * (0.2 * j + 0.3 * i * i / s as f64).cos();
                let p = 0.2 * (0.5 * j).sin() + 0.01 * i;
                (a * p.cos(), a * p.sin())
            })
            .collect()
    }

    #[test]
    fn the_truth_scores_one_its_twin_counts_as_twin_and_a_flat_patch_scores_zero() {
        let s = 10;
        let t = truth(s);
        let amp: Vec<f64> = t.iter().map(|&(r, i)| r.hypot(i)).collect();
        let ph: Vec<f64> = t.iter().map(|&(r, i)| i.atan2(r)).collect();
        let sc = score_patch(&amp, &ph, &t, s);
        assert!(
            (sc[0] - 1.0).abs() < 1e-12 && (sc[1] - 1.0).abs() < 1e-12,
            "{sc:?}"
        );
        assert!((sc[2] - 1.0).abs() < 1e-12 && sc[3] == 0.0, "{sc:?}");
        // Twice the amplitude and a phase offset: the same scores (scale and gauge are free).
        let amp2: Vec<f64> = amp.iter().map(|v| 2.0 * v).collect();
        let ph2: Vec<f64> = ph.iter().map(|v| v + 0.7).collect();
        let sc2 = score_patch(&amp2, &ph2, &t, s);
        assert!((sc2[0] - 1.0).abs() < 1e-9 && (sc2[2] - 1.0).abs() < 1e-12);
        // The twin: amplitude rotated by 180 degrees.
        let twin: Vec<f64> = (0..s * s).map(|k| amp[s * s - 1 - k]).collect();
        assert_eq!(score_patch(&twin, &ph, &t, s)[3], 1.0);
        // A flat prediction has no correlation and a low SSIM.
        let flat = vec![1.0; s * s];
        let sc3 = score_patch(&flat, &flat, &t, s);
        assert_eq!((sc3[1], sc3[2]), (0.0, 0.0));
        assert!(sc3[0] < 0.5, "{sc3:?}");
    }

    #[test]
    fn the_core_is_centred_and_at_least_8() {
        assert_eq!(core_side(64), 20);
        assert_eq!(core_side(128), 42);
        assert_eq!(core_side(16), 8);
        for n in [16, 32, 64, 128] {
            assert_eq!((n - core_side(n)) % 2, 0);
        }
    }
}
