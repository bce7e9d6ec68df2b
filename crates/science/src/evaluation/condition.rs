//! The per-condition evaluation (reference section 8): stitch the network's patches, run the
//! ePIE baseline on the same test data, align both with the ground truth, register, measure, and
//! write the `evaluation/` directory.
//!
//! Every file written is a deterministic function of the inputs (no timestamps, no timings, fixed
//! iteration orders, npz members stored with the zip epoch date, PNGs encoded without time
//! chunks), so a rebuild is byte-identical. Timings go to the log (stderr) only.

use crate::error::{Error, Result};
use crate::evaluation::baseline::{epie, EpieOptions};
use crate::evaluation::metrics::{image_metrics, ImageMetrics};
use crate::evaluation::metrics_file::{
    BaselineRecord, CoverageRecord, DatasetRecord, ImageRecord, MetricsFile, ModelRecord, Models,
    Offset, PrimaryModels, PrimaryRecord, ReconstructionRecord, RegistrationRecord, Shift,
    TwinRecord, Uncovered, UnregisteredModels,
};
use crate::evaluation::primary::{
    covered_mask, primary_metrics, shift_and_crop_mask, PrimaryMetrics, COVERAGE_MARGIN,
};
use crate::evaluation::registration::{cross_correlation, fourier_shift, Normalization, Precision};
use crate::evaluation::stitch::{align_for_evaluation, extract_patch, stitch};
use crate::evaluation::twin::{twin_scores, TwinScores};
use crate::io::dataset::Dataset;
use crate::io::npy::NpzOut;
use crate::physics::grouping::Gridsize;
use ndarray::{s, Array0, Array2, Array3};
use num_complex::{Complex32, Complex64};
use std::path::Path;

/// What a trained model predicts for a dataset: the input of the evaluation.
#[derive(Clone, Debug)]
pub struct Prediction {
    /// (M, N, N) reconstructed object patch per group, centred on the group centroid.
    pub patches: Array3<Complex32>,
    /// (M, 2) group centroids `(x, y)` in object pixels.
    pub centroids: Array2<f64>,
    /// The gridsize of the model (and, checked, of the dataset).
    pub gridsize: i64,
}

/// Registration precision: 1/50 pixel (PtychoPINN's `upsample_factor`).
pub const UPSAMPLE_FACTOR: usize = 50;
/// Pixels cropped from every border of both images after registration.
pub const REGISTRATION_BORDER: usize = 2;
/// Name of the network in every output (PtychoPINN's).
pub const NETWORK: &str = "PtychoPINN";
/// Name of the classical baseline in every output.
pub const BASELINE: &str = "ePIE";

/// Two images after registration (section 8 step 5).
#[derive(Clone, Debug)]
pub struct Aligned {
    pub recon: Array2<Complex64>,
    pub gt: Array2<Complex64>,
    /// `(dy, dx)` applied to the reconstruction; `None` when registration was skipped.
    pub offset: Option<(f64, f64)>,
    /// What the correlation found, when it was overruled by the geometric expectation.
    pub rejected: Option<(f64, f64)>,
}

impl Aligned {
    /// Which method aligned the reconstruction: `correlation`, `geometric fallback` (the
    /// correlation was rejected), or `none` (registration skipped).
    pub fn method(&self) -> &'static str {
        match (self.offset, self.rejected) {
            (None, _) => "none",
            (Some(_), None) => "correlation",
            (Some(_), Some(_)) => "geometric fallback",
        }
    }
}

/// Phase correlation may lock onto a wrong peak (periodic objects, large uncovered areas). When
/// the geometry of the stitching predicts the shift, a result further than this (pixels, either
/// axis) from the prediction is rejected and the predicted shift applied instead.
pub const REGISTRATION_TOLERANCE: f64 = 2.0;

/// Register `recon` to `gt` (same shape) by cross-correlation of the amplitudes (reference
/// `|gt|`, moving `|recon|`, 1/50 px, `normalization`, the phase normalisation's epsilon from the
/// images' storage precision), apply the shift to the complex reconstruction by Fourier shift,
/// then crop [`REGISTRATION_BORDER`] px from every border of both (as PtychoPINN's
/// `compare_models.py` after registration). With `register = false` the images are returned
/// uncropped: PtychoPINN's unregistered score crops only once, in the metrics' trim. With
/// `expected = Some(shift)` a result more than [`REGISTRATION_TOLERANCE`] px away from it is
/// rejected (recorded in [`Aligned::rejected`]; [`Aligned::method`] says `geometric fallback`)
/// and `shift` is applied instead.
pub fn register_and_crop(
    recon: &Array2<Complex64>,
    gt: &Array2<Complex64>,
    register: bool,
    normalization: Normalization,
    expected: Option<(f64, f64)>,
) -> Result<Aligned> {
    if recon.dim() != gt.dim() {
        return Err(Error::Invalid(format!(
            "registration: reconstruction {:?} and ground truth {:?} differ in shape",
            recon.dim(),
            gt.dim()
        )));
    }
    let (h, w) = gt.dim();
    let b = REGISTRATION_BORDER;
    if h <= 2 * b || w <= 2 * b {
        return Err(Error::Invalid(format!(
            "registration: images of {h}x{w} are too small"
        )));
    }
    if !register {
        return Ok(Aligned {
            recon: recon.clone(),
            gt: gt.clone(),
            offset: None,
            rejected: None,
        });
    }
    let mut rejected = None;
    let (shifted, offset) = {
        let (mut dy, mut dx) = cross_correlation(
            &gt.mapv(|z| z.norm()),
            &recon.mapv(|z| z.norm()),
            UPSAMPLE_FACTOR,
            normalization,
            Precision::of(&[recon, gt]),
        )?;
        if let Some((ey, ex)) = expected {
            if (dy - ey).abs() > REGISTRATION_TOLERANCE || (dx - ex).abs() > REGISTRATION_TOLERANCE
            {
                tracing::warn!(
                    "registration found ({dy:.2}, {dx:.2}) px, the geometry expects \
                     ({ey:.2}, {ex:.2}); using the geometric shift"
                );
                rejected = Some((dy, dx));
                (dy, dx) = (ey, ex);
            }
        }
        (fourier_shift(recon, dy, dx), Some((dy, dx)))
    };
    Ok(Aligned {
        recon: shifted.slice(s![b..h - b, b..w - b]).to_owned(),
        gt: gt.slice(s![b..h - b, b..w - b]).to_owned(),
        offset,
        rejected,
    })
}

/// One reconstruction carried through the pipeline.
#[derive(Clone, Debug)]
pub struct ModelEvaluation {
    /// `PtychoPINN`, `ePIE`, or the name of another engine's reconstruction.
    pub name: String,
    /// The stitched reconstruction after the coordinate alignment (before registration).
    pub recon: Array2<Complex64>,
    /// The ground truth cropped the same way.
    pub gt: Array2<Complex64>,
    /// After registration and border crop.
    pub aligned: Aligned,
    pub metrics: ImageMetrics,
    /// The primary scores: on the covered region of the registered images.
    pub primary: PrimaryMetrics,
    /// The covered region of `aligned` (see [`aligned_mask`]).
    pub covered: Array2<bool>,
    /// The same metrics without registration (only the metrics' trim), the figure PtychoPINN's
    /// `--skip-registration` reports and the quality reference uses.
    pub unregistered: ImageMetrics,
    /// Fraction of `recon`'s pixels that no stitched crop covers (they are 0 and count in the
    /// metrics, as in PtychoPINN): few test positions with a small `stitch_crop` leave holes.
    pub uncovered_fraction: f64,
}

/// Stitch `patches` at `centroids` and carry the result through alignment, registration and
/// metrics against `object`.
pub fn evaluate_patches(
    name: &str,
    patches: &Array3<Complex64>,
    centroids: &Array2<f64>,
    object: &Array2<Complex64>,
    stitch_crop: usize,
) -> Result<ModelEvaluation> {
    let stitched = stitch(patches, centroids, stitch_crop)?;
    let crops = align_for_evaluation(&stitched.image, object, centroids, stitch_crop)?;
    let (recon, gt) = (crops.recon, crops.gt);
    // Unnormalised correlation: the phase-normalised one locks onto the zero-filled borders and
    // holes of stitched images.
    let aligned = register_and_crop(
        &recon,
        &gt,
        true,
        Normalization::None,
        Some(crops.expected_offset),
    )?;
    let metrics = image_metrics(&aligned.recon, &aligned.gt)?;
    let covered = aligned_mask(&recon, &aligned);
    let primary = primary_metrics(&aligned.recon, &aligned.gt, &covered)?;
    let plain = register_and_crop(&recon, &gt, false, Normalization::None, None)?;
    let unregistered = image_metrics(&plain.recon, &plain.gt)?;
    let holes = recon.iter().filter(|z| z.norm_sqr() == 0.0).count();
    Ok(ModelEvaluation {
        name: name.to_string(),
        uncovered_fraction: holes as f64 / recon.len().max(1) as f64,
        recon,
        gt,
        aligned,
        metrics,
        primary,
        covered,
        unregistered,
    })
}

/// The evaluation's settings (the recipe's parameters).
#[derive(Clone, Debug)]
pub struct ConditionSettings {
    /// The gridsize declared for this evaluation; checked against model and dataset.
    pub declared_gridsize: i64,
    /// Seed of the baseline's initial object.
    pub seed: u64,
    /// ePIE iterations.
    pub baseline_iterations: usize,
    /// Central crop of each patch when stitching.
    pub stitch_crop: usize,
}

/// The gridsize facts of one evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct GridsizeFacts {
    /// `Prediction::gridsize` (the model's).
    pub model: i64,
    /// `Dataset::gridsize`.
    pub dataset: i64,
    /// Width of the dataset's `group_index` (`gridsize^2`).
    pub group_width: usize,
}

/// Check that the model's gridsize, the dataset's recorded gridsize, the square root of the
/// dataset's group width and the declared gridsize all agree; the error names every value.
pub fn check_gridsize(declared: i64, facts: &GridsizeFacts) -> Result<i64> {
    let from_width = Gridsize::from_width(facts.group_width).map(Gridsize::as_i64);
    if from_width.is_none()
        || facts.model != facts.dataset
        || Some(facts.dataset) != from_width
        || Some(declared) != from_width
    {
        return Err(Error::Invalid(format!(
            "gridsize disagreement: the model says {}, the dataset records {}, its group_index \
             is {} wide ({}), and the evaluation declares {declared}",
            facts.model,
            facts.dataset,
            facts.group_width,
            match from_width {
                Some(g) => format!("gridsize {g}"),
                None => "not a square".to_string(),
            }
        )));
    }
    Ok(declared)
}

/// Everything the per-condition evaluation computed.
#[derive(Clone, Debug)]
pub struct ConditionEvaluation {
    pub gridsize: GridsizeFacts,
    pub settings: ConditionSettings,
    pub n_patterns: usize,
    pub n_groups: usize,
    pub network: ModelEvaluation,
    pub baseline: ModelEvaluation,
    /// Other engines' reconstructions (declared targets of kind `reconstruction`), by name, each
    /// scored as the baseline is.
    pub others: Vec<ModelEvaluation>,
    /// The network's patches against their true patches and twins.
    pub twin: TwinScores,
}

fn c64(a: &Array2<Complex32>) -> Array2<Complex64> {
    a.mapv(|z| Complex64::new(z.re as f64, z.im as f64))
}

/// Score a whole-object reconstruction on the truth's grid as the baseline is scored: cut into
/// the network's patches at its centroids, then through the identical stitching, registration
/// and metrics.
fn evaluate_object(
    name: &str,
    rec: &Array2<Complex64>,
    centroids: &Array2<f64>,
    n: usize,
    object: &Array2<Complex64>,
    stitch_crop: usize,
) -> Result<ModelEvaluation> {
    let m = centroids.nrows();
    let mut patches = Array3::<Complex64>::zeros((m, n, n));
    for k in 0..m {
        let p = extract_patch(rec, centroids[[k, 0]], centroids[[k, 1]], n);
        patches.slice_mut(s![k, .., ..]).assign(&p);
    }
    evaluate_patches(name, &patches, centroids, object, stitch_crop)
}

/// Evaluate a prediction, the ePIE baseline and every other engine's reconstruction (`others`:
/// name and object on the truth's grid) on `data` (section 8). The gridsize is read from the
/// prediction and the dataset only, and must agree with `settings.declared_gridsize`.
pub fn evaluate_condition(
    pred: &Prediction,
    data: &Dataset,
    settings: &ConditionSettings,
    others: &[(String, Array2<Complex32>)],
) -> Result<ConditionEvaluation> {
    let facts = GridsizeFacts {
        model: pred.gridsize,
        dataset: data.gridsize,
        group_width: data.group_index.ncols(),
    };
    check_gridsize(settings.declared_gridsize, &facts)?;
    let (m, n, _) = pred.patches.dim();
    if pred.centroids.dim() != (m, 2) {
        return Err(Error::Invalid(format!(
            "prediction: {m} patches but centroids of shape {:?}",
            pred.centroids.dim()
        )));
    }
    if m != data.group_index.nrows() {
        return Err(Error::Invalid(format!(
            "prediction has {m} patches but the dataset has {} groups",
            data.group_index.nrows()
        )));
    }
    for (name, o) in others {
        if o.dim() != data.object.dim() || name == NETWORK || name == BASELINE {
            return Err(Error::Invalid(format!(
                "reconstruction `{name}`: {:?} on a {:?} ground truth; every reconstruction is \
                 named apart from {NETWORK} and {BASELINE} and lies on the truth's grid",
                o.dim(),
                data.object.dim()
            )));
        }
    }
    let object = c64(&data.object);
    let t0 = std::time::Instant::now();
    let patches = pred
        .patches
        .mapv(|z| Complex64::new(z.re as f64, z.im as f64));
    // The network's and the baseline's paths are independent and each sequential inside, so
    // running them side by side changes no result.
    let run_network = || {
        let t = std::time::Instant::now();
        let r = evaluate_patches(
            NETWORK,
            &patches,
            &pred.centroids,
            &object,
            settings.stitch_crop,
        );
        (r, t.elapsed().as_secs_f64())
    };
    let run_baseline = || -> (Result<ModelEvaluation>, f64, f64) {
        let t = std::time::Instant::now();
        let xs = data.xcoords.to_vec();
        let ys = data.ycoords.to_vec();
        let rec = match epie(
            &data.diffraction,
            &xs,
            &ys,
            &data.probe,
            object.dim(),
            &EpieOptions {
                iterations: settings.baseline_iterations,
                seed: settings.seed,
                alpha: 1.0,
            },
        ) {
            Ok(r) => r,
            Err(e) => return (Err(e), 0.0, 0.0),
        };
        let t_epie = t.elapsed().as_secs_f64();
        let r = evaluate_object(
            BASELINE,
            &rec,
            &pred.centroids,
            n,
            &object,
            settings.stitch_crop,
        );
        (r, t_epie, t.elapsed().as_secs_f64() - t_epie)
    };
    let ((network, t_net), (baseline, t_epie, t_base)) = rayon::join(run_network, run_baseline);
    let (network, baseline) = (network?, baseline?);
    let t = std::time::Instant::now();
    let others = others
        .iter()
        .map(|(name, o)| {
            evaluate_object(
                name,
                &c64(o),
                &pred.centroids,
                n,
                &object,
                settings.stitch_crop,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let t_others = t.elapsed().as_secs_f64();
    let twin = twin_scores(&patches, &pred.centroids, &object)?;
    tracing::info!(
        "evaluation timings: network stitch+metrics {t_net:.3} s, ePIE {t_epie:.3} s, \
         baseline metrics {t_base:.3} s, other reconstructions {t_others:.3} s, total {:.3} s",
        t0.elapsed().as_secs_f64()
    );
    Ok(ConditionEvaluation {
        gridsize: facts,
        settings: settings.clone(),
        n_patterns: data.diffraction.dim().0,
        n_groups: m,
        network,
        baseline,
        others,
        twin,
    })
}

/// Format a number as PtychoPINN's `%.6f` (non-finite values as `inf`, `-inf`, `nan`).
pub fn f6(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else {
        format!("{v:.6}")
    }
}

/// `comparison_metrics.csv` rows for one model: `model,metric,amplitude,phase,value`. The
/// metrics are those after registration, as PtychoPINN's; `ssim_unregistered` is the SSIM
/// without it (`metrics.json` has every unregistered metric); `registration_method` says which
/// method aligned the reconstruction (`correlation`, `geometric fallback`).
pub fn metric_rows(
    name: &str,
    m: &ImageMetrics,
    unregistered: &ImageMetrics,
    aligned: &Aligned,
) -> Vec<String> {
    let offset = aligned.offset;
    let a = &m.amplitude;
    let p = &m.phase;
    let (ua, up) = (&unregistered.amplitude, &unregistered.phase);
    let mut rows = vec![
        format!("{name},mae,{},{},", f6(a.mae), f6(p.mae)),
        format!("{name},mse,{},{},", f6(a.mse), f6(p.mse)),
        format!("{name},psnr_255,{},{},", f6(a.psnr_255), f6(p.psnr_255)),
        format!(
            "{name},psnr_range,{},{},",
            f6(a.psnr_range),
            f6(p.psnr_range)
        ),
        format!("{name},ssim,{},{},", f6(a.ssim), f6(p.ssim)),
        format!("{name},ms_ssim,{},{},", f6(a.ms_ssim), f6(p.ms_ssim)),
        format!("{name},frc50,{},{},", f6(a.frc50), f6(p.frc50)),
        format!("{name},frc1over7,{},{},", f6(a.frc1over7), f6(p.frc1over7)),
        format!("{name},ssim_unregistered,{},{},", f6(ua.ssim), f6(up.ssim)),
    ];
    if let Some((dy, dx)) = offset {
        rows.push(format!("{name},registration_offset_dy,,,{}", f6(dy)));
        rows.push(format!("{name},registration_offset_dx,,,{}", f6(dx)));
        rows.push(format!("{name},registration_method,,,{}", aligned.method()));
    }
    rows
}

/// The metrics of one model as JSON (`amplitude`/`phase` objects, as in `metrics.json`).
pub fn metrics_json(m: &ImageMetrics, primary: &PrimaryMetrics) -> serde_json::Value {
    serde_json::to_value(ImageRecord::with_primary(m, primary)).expect("metrics always serialise")
}

/// Every primary score as JSON (see [`crate::evaluation::primary`]).
pub fn primary_json(p: &PrimaryMetrics) -> serde_json::Value {
    serde_json::to_value(PrimaryRecord::from(p)).expect("metrics always serialise")
}

/// The covered region of the unregistered `recon`, moved and cropped as registration moved and
/// cropped the images.
pub fn aligned_mask(recon: &Array2<Complex64>, aligned: &Aligned) -> Array2<bool> {
    let mask = covered_mask(recon, COVERAGE_MARGIN);
    match aligned.offset {
        Some((dy, dx)) => shift_and_crop_mask(&mask, dy, dx, REGISTRATION_BORDER),
        None => mask,
    }
}

/// What the twin record is.
pub const TWIN_NOTE: &str = "each of the network's predicted patches scored against its true \
patch and against the twin conj(rot180) about the patch centre: Pearson correlation of the \
amplitudes inside the central disk of radius disk_radius px; fraction_closer_to_twin counts the \
patches that correlate better with the twin";

/// What the primary scores are, in every output.
pub const PRIMARY_NOTE: &str = "primary scores: on the pixels covered by at least one stitched \
crop, eroded by coverage_margin px, after the registration and the metrics' trim; amplitude \
mean-ratio normalised and phase plane-removed over that region; psnr peak = the truth's data \
range over it; pearson = correlation with the truth (also in metrics.<part>.pearson)";

/// What PSNR means in every output.
pub const PSNR_NOTE: &str = "psnr_255 uses peak 255 as PtychoPINN (cv2.PSNR default), for \
comparability only; psnr_range uses the ground truth's data range (max - min of the amplitude, \
of the plane-removed phase) as peak and is the meaningful one";

fn write_text(path: &Path, text: &str) -> Result<()> {
    fs_err::write(path, text).map_err(|e| Error::io(path, e))
}

/// Add an image's amplitude, phase and complex values as `PREFIX_amplitude` and so on.
fn add_images(w: &mut NpzOut, prefix: &str, img: &Array2<Complex64>) -> Result<()> {
    let amp = img.mapv(|z| z.norm() as f32);
    let ph = img.mapv(|z| z.arg() as f32);
    let cx = img.mapv(|z| Complex32::new(z.re as f32, z.im as f32));
    w.add(&format!("{prefix}_amplitude"), &amp)?;
    w.add(&format!("{prefix}_phase"), &ph)?;
    w.add(&format!("{prefix}_complex"), &cx)
}

impl ConditionEvaluation {
    /// Every reconstruction scored: the network, the baseline, then the others.
    pub fn all(&self) -> impl Iterator<Item = &ModelEvaluation> {
        [&self.network, &self.baseline]
            .into_iter()
            .chain(self.others.iter())
    }

    /// `comparison_metrics.csv` content.
    pub fn comparison_csv(&self) -> String {
        let mut out = String::from("model,metric,amplitude,phase,value\n");
        let rows =
            |m: &ModelEvaluation| metric_rows(&m.name, &m.metrics, &m.unregistered, &m.aligned);
        for r in self.all().flat_map(rows) {
            out.push_str(&r);
            out.push('\n');
        }
        out
    }

    /// `metrics.json` of this evaluation.
    pub fn metrics_file(&self) -> MetricsFile {
        let off = |a: &Aligned| {
            a.offset.map(|(dy, dx)| Offset {
                dx,
                dy,
                method: a.method().to_string(),
                note: a.rejected.map(|_| {
                    "the cross-correlation was more than 2 px from the geometric shift; the \
                     geometric shift was applied"
                        .to_string()
                }),
                correlation_rejected: a.rejected.map(|(ry, rx)| Shift { dx: rx, dy: ry }),
            })
        };
        MetricsFile {
            baseline: BaselineRecord {
                algorithm: "ePIE (known probe, alpha 1, file order, seeded start)".into(),
                iterations: self.settings.baseline_iterations,
                seed: self.settings.seed,
            },
            coverage: CoverageRecord {
                network: Uncovered {
                    uncovered_fraction: self.network.uncovered_fraction,
                },
                baseline: Uncovered {
                    uncovered_fraction: self.baseline.uncovered_fraction,
                },
                note: "fraction of the aligned reconstruction not covered by any stitched crop \
                       (zeros, counted in the metrics)"
                    .into(),
            },
            dataset: DatasetRecord {
                gridsize: self.gridsize.dataset,
                group_index_width: self.gridsize.group_width,
                n_groups: self.n_groups,
                n_patterns: self.n_patterns,
            },
            gridsize: self.settings.declared_gridsize,
            metrics: Models {
                network: ImageRecord::with_primary(&self.network.metrics, &self.network.primary),
                baseline: ImageRecord::with_primary(&self.baseline.metrics, &self.baseline.primary),
            },
            metrics_unregistered: UnregisteredModels {
                network: (&self.network.unregistered).into(),
                baseline: (&self.baseline.unregistered).into(),
                note: "the same metrics without registration (only the metrics' own trim)".into(),
            },
            model: ModelRecord {
                gridsize: self.gridsize.model,
            },
            primary: PrimaryModels {
                network: (&self.network.primary).into(),
                coverage_margin: COVERAGE_MARGIN,
                baseline: (&self.baseline.primary).into(),
                note: PRIMARY_NOTE.into(),
            },
            psnr_note: PSNR_NOTE.into(),
            reconstructions: self
                .others
                .iter()
                .map(|o| {
                    let record = ReconstructionRecord {
                        metrics: ImageRecord::with_primary(&o.metrics, &o.primary),
                        metrics_unregistered: (&o.unregistered).into(),
                        primary: (&o.primary).into(),
                        registration: off(&o.aligned),
                        uncovered_fraction: o.uncovered_fraction,
                    };
                    (o.name.clone(), record)
                })
                .collect(),
            registration: RegistrationRecord {
                network: off(&self.network.aligned),
                border_crop: REGISTRATION_BORDER,
                baseline: off(&self.baseline.aligned),
                upsample_factor: UPSAMPLE_FACTOR,
            },
            seed: self.settings.seed,
            stitch_crop: self.settings.stitch_crop,
            twin: TwinRecord {
                closer_to_twin: self.twin.closer_to_twin,
                disk_radius: self.twin.disk_radius,
                fraction_closer_to_twin: self.twin.fraction_closer_to_twin(),
                mean_pearson_true: self.twin.mean_pearson_true,
                mean_pearson_twin: self.twin.mean_pearson_twin,
                n_patches: self.twin.n_patches,
                note: TWIN_NOTE.into(),
            },
            timings: "not recorded in files (they would break byte-identical rebuilds); see the \
                      build log"
                .into(),
        }
    }

    /// `frc_curves.csv` content: `model,frequency_bin,amplitude_frc,phase_frc`.
    pub fn frc_csv(&self) -> String {
        let mut out = String::from("model,frequency_bin,amplitude_frc,phase_frc\n");
        for m in self.all() {
            let a = &m.metrics.amplitude.frc;
            let p = &m.metrics.phase.frc;
            for k in 0..a.len().max(p.len()) {
                let g = |c: &Vec<f64>| c.get(k).map(|v| f6(*v)).unwrap_or_default();
                out.push_str(&format!("{},{k},{},{}\n", m.name, g(a), g(p)));
            }
        }
        out
    }

    /// Write the evaluation directory's files into the existing directory `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_text(&dir.join("comparison_metrics.csv"), &self.comparison_csv())?;
        write_text(&dir.join(MetricsFile::NAME), &self.metrics_file().to_text())?;
        write_text(&dir.join("frc_curves.csv"), &self.frc_csv())?;
        let p = dir.join("reconstructions.npz");
        let mut w = NpzOut::compressed(&p)?;
        add_images(&mut w, "ptychopinn", &self.network.recon)?;
        add_images(&mut w, "baseline", &self.baseline.recon)?;
        for o in &self.others {
            add_images(&mut w, &o.name, &o.recon)?;
        }
        add_images(&mut w, "ground_truth", &self.network.gt)?;
        w.finish()?;
        let p = dir.join("reconstructions_aligned.npz");
        let mut w = NpzOut::compressed(&p)?;
        add_images(&mut w, "ptychopinn", &self.network.aligned.recon)?;
        add_images(&mut w, "baseline", &self.baseline.aligned.recon)?;
        for o in &self.others {
            add_images(&mut w, &o.name, &o.aligned.recon)?;
            w.add(&format!("{}_covered", o.name), &o.covered.mapv(|c| c as u8))?;
        }
        add_images(&mut w, "ground_truth", &self.network.aligned.gt)?;
        for (prefix, a) in [
            ("pinn", &self.network.aligned),
            ("baseline", &self.baseline.aligned),
        ] {
            let (dy, dx) = a.offset.unwrap_or((0.0, 0.0));
            w.add(&format!("{prefix}_offset_dy"), &Array0::from_elem((), dy))?;
            w.add(&format!("{prefix}_offset_dx"), &Array0::from_elem((), dx))?;
        }
        for (prefix, m) in [("ptychopinn", &self.network), ("baseline", &self.baseline)] {
            w.add(&format!("{prefix}_covered"), &m.covered.mapv(|c| c as u8))?;
        }
        w.finish()?;
        // Each panel's title names the method that aligned it.
        let labels: Vec<String> = self
            .all()
            .map(|m| format!("{} [{}]", m.name, m.aligned.method()))
            .collect();
        let columns: Vec<_> = self
            .all()
            .zip(&labels)
            .map(|(m, label)| (label.as_str(), &m.aligned.recon, &m.covered))
            .collect();
        crate::evaluation::figure::comparison_figure(
            &dir.join("comparison.png"),
            &self.network.aligned.gt,
            &columns,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::perfect_case;

    fn settings() -> ConditionSettings {
        ConditionSettings {
            declared_gridsize: 1,
            seed: 5,
            baseline_iterations: 30,
            stitch_crop: 8,
        }
    }

    #[test]
    fn another_engines_object_is_scored_as_the_baseline_and_written_beside_it() {
        let (data, pred) = perfect_case(false);
        // The truth itself as another engine's reconstruction, and a flat object.
        let flat = data.object.mapv(|_| Complex32::new(1.0, 0.0));
        let others = vec![
            ("truth".to_string(), data.object.clone()),
            ("flat".to_string(), flat),
        ];
        let ev = evaluate_condition(&pred, &data, &settings(), &others).unwrap();
        let names: Vec<&str> = ev.all().map(|m| m.name.as_str()).collect();
        assert_eq!(names, [NETWORK, BASELINE, "truth", "flat"]);
        let truth = &ev.others[0];
        assert!(
            truth.primary.amplitude.pearson > 0.9999,
            "{:?}",
            truth.primary
        );
        assert!(truth.metrics.amplitude.ssim > 0.9999);
        // The truth through the baseline's path scores as the perfect network does.
        assert!((truth.metrics.amplitude.ssim - ev.network.metrics.amplitude.ssim).abs() < 1e-6);
        assert!(ev.others[1].metrics.amplitude.ssim < 0.5);
        let d = tempfile::tempdir().unwrap();
        ev.write(d.path()).unwrap();
        let j = MetricsFile::read(d.path()).unwrap();
        let keys: Vec<&str> = j.reconstructions.keys().map(String::as_str).collect();
        assert_eq!(keys, ["flat", "truth"]);
        assert_eq!(
            j.reconstructions["truth"].metrics.amplitude.pearson,
            Some(j.reconstructions["truth"].primary.amplitude.pearson)
        );
        let csv = std::fs::read_to_string(d.path().join("comparison_metrics.csv")).unwrap();
        assert!(
            csv.contains("\ntruth,ssim,") && csv.contains("\nflat,frc50,"),
            "{csv}"
        );
        let npz =
            crate::io::npy::NpzFile::open(&d.path().join("reconstructions_aligned.npz")).unwrap();
        assert!(npz.has("truth_complex") && npz.has("flat_covered"));
        // Without others, metrics.json has no `reconstructions` key at all (the same bytes as
        // before declared targets existed).
        let plain = evaluate_condition(&pred, &data, &settings(), &[]).unwrap();
        assert!(!plain.metrics_file().to_text().contains("reconstructions"));
        // A reconstruction on another grid, or named as the network, is refused.
        let small = vec![("x".to_string(), Array2::zeros((4, 4)))];
        let e = evaluate_condition(&pred, &data, &settings(), &small).unwrap_err();
        assert!(e.to_string().contains("reconstruction `x`"), "{e}");
        let named = vec![(NETWORK.to_string(), data.object.clone())];
        assert!(evaluate_condition(&pred, &data, &settings(), &named).is_err());
    }

    #[test]
    fn a_perfect_prediction_gives_near_perfect_metrics_and_deterministic_files() {
        let (data, pred) = perfect_case(false);
        let ev = evaluate_condition(&pred, &data, &settings(), &[]).unwrap();
        let a = &ev.network.metrics.amplitude;
        let p = &ev.network.metrics.phase;
        eprintln!(
            "perfect: amp ssim {:.4} psnr_range {:.2} frc50 {:.2}; phase ssim {:.4}; offset {:?}; \
             ePIE amp ssim {:.4} phase ssim {:.4}",
            a.ssim,
            a.psnr_range,
            a.frc50,
            p.ssim,
            ev.network.aligned.offset,
            ev.baseline.metrics.amplitude.ssim,
            ev.baseline.metrics.phase.ssim
        );
        // Whole-pixel geometry: stitching is exact, only float32 storage remains.
        assert!(a.ssim > 0.9999, "amplitude SSIM {}", a.ssim);
        assert!(p.ssim > 0.9999, "phase SSIM {}", p.ssim);
        assert!(a.mae < 1e-5 && p.mae < 1e-5, "MAE {} {}", a.mae, p.mae);
        assert!(a.psnr_range > 80.0, "amplitude PSNR {}", a.psnr_range);
        assert!(a.ms_ssim > 0.9999 && p.ms_ssim > 0.9999);
        assert_eq!(a.frc50, a.frc.len() as f64, "FRC never drops below 0.5");
        let (dy, dx) = ev.network.aligned.offset.unwrap();
        assert!(dy.abs() < 1e-9 && dx.abs() < 1e-9, "offset {dy} {dx}");
        // A zero shift: the unregistered metrics are the registered ones (up to the Fourier
        // shift's rounding).
        let u = &ev.network.unregistered;
        assert!((u.amplitude.ssim - a.ssim).abs() < 1e-9 && (u.phase.ssim - p.ssim).abs() < 1e-9);
        // The baseline went through the same pipeline and is good on noise-free data.
        assert!(ev.baseline.metrics.amplitude.ssim > 0.9);
        // Files: written twice, byte-identical.
        let d1 = tempfile::tempdir().unwrap();
        let d2 = tempfile::tempdir().unwrap();
        ev.write(d1.path()).unwrap();
        let ev2 = evaluate_condition(&pred, &data, &settings(), &[]).unwrap();
        ev2.write(d2.path()).unwrap();
        for f in [
            "comparison_metrics.csv",
            "metrics.json",
            "frc_curves.csv",
            "reconstructions.npz",
            "reconstructions_aligned.npz",
            "comparison.png",
        ] {
            let a = std::fs::read(d1.path().join(f)).unwrap();
            let b = std::fs::read(d2.path().join(f)).unwrap();
            assert!(!a.is_empty(), "{f} is empty");
            assert!(a == b, "{f} differs between two identical evaluations");
        }
        let csv = std::fs::read_to_string(d1.path().join("comparison_metrics.csv")).unwrap();
        assert!(csv.starts_with("model,metric,amplitude,phase,value\nPtychoPINN,mae,"));
        assert!(csv.contains("\nePIE,psnr_range,"));
        assert!(csv.contains("\nPtychoPINN,registration_offset_dx,,,"));
        assert!(csv.contains("\nPtychoPINN,ssim_unregistered,1.0000"));
        let j = MetricsFile::read(d1.path()).unwrap();
        assert!(j.metrics_unregistered.baseline.phase.ssim.0.is_finite());
        assert_eq!(j.model.gridsize, 1);
        assert_eq!(j.dataset.gridsize, 1);
        // The method that aligned each model, the primary scores, the twin check.
        assert!(
            csv.contains("\nPtychoPINN,registration_method,,,correlation\n"),
            "{csv}"
        );
        let reg = j.registration.network.as_ref().unwrap();
        assert_eq!(reg.method, "correlation");
        let pn = &j.primary.network;
        assert!(pn.phase.pearson.0 > 0.9999 && pn.amplitude.pearson.0 > 0.9999);
        assert_eq!(j.metrics.network.phase.pearson, Some(pn.phase.pearson));
        assert!(pn.uncovered_fraction >= 0.0 && pn.uncovered_fraction < 0.5);
        assert_eq!(j.twin.closer_to_twin, 0);
        assert_eq!(j.twin.n_patches, pred.patches.dim().0);
        // The npz holds the documented keys.
        let npz =
            crate::io::npy::NpzFile::open(&d1.path().join("reconstructions_aligned.npz")).unwrap();
        for k in [
            "ptychopinn_complex",
            "baseline_phase",
            "ground_truth_amplitude",
            "pinn_offset_dy",
        ] {
            assert!(npz.has(k), "{k} in {:?}", npz.keys());
        }
    }

    /// With sub-pixel positions a perfect prediction is blurred twice by bilinear interpolation
    /// (extraction at the position, placement at the offset from the mean): the reference
    /// pipeline's own floor. Registration recovers the sub-pixel centring to within 0.05 px.
    #[test]
    fn subpixel_positions_stay_close_to_perfect() {
        let (data, pred) = perfect_case(true);
        let object = c64(&data.object);
        let patches = pred
            .patches
            .mapv(|z| Complex64::new(z.re as f64, z.im as f64));
        let ev = evaluate_patches(NETWORK, &patches, &pred.centroids, &object, 8).unwrap();
        let st = stitch(&patches, &pred.centroids, 8).unwrap();
        let crops = align_for_evaluation(&st.image, &object, &pred.centroids, 8).unwrap();
        let (ey, ex) = crops.expected_offset;
        let (dy, dx) = ev.aligned.offset.unwrap();
        assert!(ev.aligned.rejected.is_none());
        // Phase correlation of these smooth images is within 0.25 px of the geometric shift (the
        // geometric one gives the lower MSE here; the whitened correlation is noisy).
        assert!(
            (dy - ey).abs() < 0.25 && (dx - ex).abs() < 0.25,
            "{dy} {dx} vs {ey} {ex}"
        );
        let m = &ev.metrics;
        eprintln!(
            "sub-pixel perfect: amp ssim {:.4} phase ssim {:.4} offset {:?}",
            m.amplitude.ssim, m.phase.ssim, ev.aligned.offset
        );
        assert!(
            m.amplitude.ssim > 0.95,
            "amplitude SSIM {}",
            m.amplitude.ssim
        );
        assert!(m.phase.ssim > 0.98, "phase SSIM {}", m.phase.ssim);
    }

    /// Timing of one condition at the quick-test size: 128 patterns, N = 64, 224x224 object,
    /// 50 ePIE iterations, stitch crop 20. Run with
    /// `cargo test --release --lib evaluation_timing -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn evaluation_timing_quick_test_size() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(43);
        let (size, n, count) = (224usize, 64usize, 128usize);
        let object = Array2::from_shape_fn((size, size), |(r, c)| {
            let (r, c) = (r as f64, c as f64);
            let a = 0.6 + 0.3 * ((0.11 * r).sin() * (0.07 * c).cos()).abs();
            Complex64::from_polar(a, 0.1 * a)
        });
        let probe = Array2::from_shape_fn((n, n), |(i, j)| {
            let d = ((i as f64 - 32.0).powi(2) + (j as f64 - 32.0).powi(2)).sqrt();
            Complex32::new((1.0 / (1.0 + ((d - 14.0) / 1.5).exp())) as f32, 0.0)
        });
        let xs: Vec<f64> = (0..count).map(|_| rng.random_range(32.0..192.0)).collect();
        let ys: Vec<f64> = (0..count).map(|_| rng.random_range(32.0..192.0)).collect();
        let plan = crate::numerics::fft::Fft2::<f64>::new(n, n);
        let p64 = probe.mapv(|z| Complex64::new(z.re as f64, z.im as f64));
        let mut diffraction = Array3::<f32>::zeros((count, n, n));
        let mut patches = Array3::<Complex32>::zeros((count, n, n));
        for k in 0..count {
            let patch = extract_patch(&object, xs[k], ys[k], n);
            patches
                .slice_mut(s![k, .., ..])
                .assign(&patch.mapv(|z| Complex32::new(z.re as f32 * 1.01, z.im as f32)));
            let mut psi = &patch * &p64;
            plan.forward(&mut psi);
            let a = crate::numerics::fft::fftshift(&psi.mapv(|z| (z.norm() / n as f64) as f32));
            diffraction.slice_mut(s![k, .., ..]).assign(&a);
        }
        let (data, pred) =
            crate::testdata::gridsize1_case(&object, probe, (xs, ys), diffraction, patches);
        let settings = ConditionSettings {
            declared_gridsize: 1,
            seed: 1,
            baseline_iterations: 50,
            stitch_crop: 20,
        };
        let t = std::time::Instant::now();
        let xs = data.xcoords.to_vec();
        let ys = data.ycoords.to_vec();
        let opts = EpieOptions {
            iterations: 50,
            seed: 1,
            alpha: 1.0,
        };
        epie(&data.diffraction, &xs, &ys, &data.probe, (224, 224), &opts).unwrap();
        let t_epie = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let patches64 = pred
            .patches
            .mapv(|z| Complex64::new(z.re as f64, z.im as f64));
        evaluate_patches(NETWORK, &patches64, &pred.centroids, &object, 20).unwrap();
        let t_one = t.elapsed().as_secs_f64();
        eprintln!("alone: ePIE {t_epie:.2} s, one stitch+align+register+metrics {t_one:.2} s");
        let t = std::time::Instant::now();
        let ev = evaluate_condition(&pred, &data, &settings, &[]).unwrap();
        let t_eval = t.elapsed().as_secs_f64();
        let d = tempfile::tempdir().unwrap();
        let t = std::time::Instant::now();
        ev.write(d.path()).unwrap();
        let t_write = t.elapsed().as_secs_f64();
        eprintln!(
            "quick-test size: evaluate {t_eval:.2} s (incl. 50 ePIE iterations), write {t_write:.2} s; \
             network amp SSIM {:.3}, ePIE amp SSIM {:.3}, image {:?}",
            ev.network.metrics.amplitude.ssim,
            ev.baseline.metrics.amplitude.ssim,
            ev.network.aligned.gt.dim()
        );
        let holes = ev.network.recon.iter().filter(|z| z.norm() < 1e-6).count();
        let st = stitch(
            &pred
                .patches
                .mapv(|z| Complex64::new(z.re as f64, z.im as f64)),
            &pred.centroids,
            20,
        )
        .unwrap();
        let zero_cov = st.coverage.iter().filter(|v| **v == 0.0).count();
        eprintln!(
            "canvas {:?}, zero coverage {zero_cov}, mean position {:?}",
            st.image.dim(),
            st.mean_position
        );
        eprintln!(
            "offsets: network {:?}, ePIE {:?}; uncovered pixels {holes} of {}",
            ev.network.aligned.offset,
            ev.baseline.aligned.offset,
            ev.network.aligned.recon.len()
        );
    }

    #[test]
    fn gridsize_disagreement_is_refused_naming_the_values() {
        let (data, mut pred) = perfect_case(false);
        pred.gridsize = 2;
        let e = evaluate_condition(&pred, &data, &settings(), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("model says 2") && e.contains("records 1"), "{e}");
        let (data, pred) = perfect_case(false);
        let mut s = settings();
        s.declared_gridsize = 2;
        let e = evaluate_condition(&pred, &data, &s, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("declares 2") && e.contains("1 wide"), "{e}");
        let facts = GridsizeFacts {
            model: 2,
            dataset: 2,
            group_width: 3,
        };
        assert!(check_gridsize(2, &facts)
            .unwrap_err()
            .to_string()
            .contains("not a square"));
        let ok = GridsizeFacts {
            model: 2,
            dataset: 2,
            group_width: 4,
        };
        assert_eq!(check_gridsize(2, &ok).unwrap(), 2);
    }
}
