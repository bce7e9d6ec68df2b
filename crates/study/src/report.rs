//! The `report` recipe: the study's summary across conditions (reference section 9), written to
//! the directory `job.output`.
//!
//! Inputs: `metrics.<condition>` (evaluation directories), `model.<condition>` (model
//! directories; per-epoch `train_loss`/`val_loss` arrays are looked for anywhere in their
//! `model.json`), `probe.<name>` (complex `.npy`); a condition with replicates has
//! `metrics.<condition>/<replicate>` and `model.<condition>/<replicate>` instead. Params:
//! `gridsize.<condition>` (Int) and `probe.<condition>` (Str, the probe's name) for every
//! condition.
//!
//! The network's numbers of a condition are the mean over its replicates, with their standard
//! deviation beside them; the criteria are decided with their uncertainty ([`crate::verdict`]).
//! The ePIE baseline does not depend on the model's seed: its numbers are the first
//! replicate's; so are those of other engines' reconstructions (declared targets of kind
//! `reconstruction`, in `metrics.json`'s `reconstructions`), each a row of every table beside the
//! network and ePIE, a curve of the FRC figures and a column of `reconstructions.png`.
//!
//! Outputs: `summary.md`, `summary.csv` (a row per replicate), `reconstructions.png` (the
//! first replicate of each condition), `probes.png`, `losses.png` (the first replicate),
//! `frc_amplitude.png`, `frc_phase.png` (the first replicate). All deterministic (conditions
//! and replicates in sorted order).

use crate::error::{Error, Result};
use crate::facts::GRIDSIZE;
use crate::verdict::{mean_sd, Estimate, Verdict};
use ndarray::Array2;
use num_complex::{Complex32, Complex64};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use studymake_engine::job::JobSpec;
use studymake_engine::params::{Params, Value};
use studymake_science::evaluation::figure::{
    complex_grid, complex_grid_masked, line_chart, ChartSpec, LegendPosition, MaskedColumn, Series,
};
use studymake_science::evaluation::metrics_file::{ImageRecord, MetricsFile, PrimaryRecord};
use studymake_science::evaluation::{f6, BASELINE, NETWORK, PSNR_NOTE};
use studymake_science::io::npy::{read_complex2_npy_f64, NpzFile};

/// The numbers of one model in one condition, as read from `metrics.json`.
#[derive(Clone, Debug, Default)]
pub struct ModelNumbers {
    /// `[amplitude, phase]` for each metric.
    pub psnr_range: [f64; 2],
    pub psnr_255: [f64; 2],
    pub ssim: [f64; 2],
    pub ms_ssim: [f64; 2],
    pub frc50: [f64; 2],
    /// Primary scores (on the covered region): PSNR with the truth's range there as peak, and
    /// the Pearson correlation with the truth.
    pub primary_psnr: [f64; 2],
    pub pearson: [f64; 2],
    /// Fraction of the scored area outside the covered region.
    pub uncovered: f64,
}

impl ModelNumbers {
    fn to_vec(&self) -> Vec<f64> {
        let mut v = Vec::with_capacity(15);
        for pair in [
            self.psnr_range,
            self.psnr_255,
            self.ssim,
            self.ms_ssim,
            self.frc50,
            self.primary_psnr,
            self.pearson,
        ] {
            v.extend(pair);
        }
        v.push(self.uncovered);
        v
    }

    fn from_vec(v: &[f64]) -> ModelNumbers {
        let pair = |k: usize| [v[2 * k], v[2 * k + 1]];
        ModelNumbers {
            psnr_range: pair(0),
            psnr_255: pair(1),
            ssim: pair(2),
            ms_ssim: pair(3),
            frc50: pair(4),
            primary_psnr: pair(5),
            pearson: pair(6),
            uncovered: v[14],
        }
    }

    /// The mean over replicates and, for two or more, the sample standard deviation, number
    /// by number.
    pub fn mean_sd(runs: &[ModelNumbers]) -> (ModelNumbers, Option<ModelNumbers>) {
        let cols: Vec<Vec<f64>> = runs.iter().map(ModelNumbers::to_vec).collect();
        let (mut mean, mut sd) = (Vec::new(), Vec::new());
        for k in 0..cols[0].len() {
            let xs: Vec<f64> = cols.iter().map(|c| c[k]).collect();
            let (m, s) = mean_sd(&xs);
            mean.push(m);
            sd.push(s.unwrap_or(f64::NAN));
        }
        (
            ModelNumbers::from_vec(&mean),
            (runs.len() > 1).then(|| ModelNumbers::from_vec(&sd)),
        )
    }
}

/// One replicate of a condition (its model's seed): the network's numbers.
#[derive(Clone, Debug)]
pub struct Run {
    /// The replicate's label (`s42`), empty for a condition without replicates.
    pub label: String,
    pub network: ModelNumbers,
    pub twin_fraction: f64,
    pub losses: Option<(Vec<f64>, Vec<f64>)>,
}

/// One condition as the report sees it.
#[derive(Clone, Debug)]
pub struct Condition {
    pub name: String,
    pub gridsize: i64,
    pub probe: String,
    /// The network's numbers: the mean over the replicates.
    pub network: ModelNumbers,
    /// Their standard deviation over the replicates, when there are two or more.
    pub network_sd: Option<ModelNumbers>,
    /// Every replicate, in label order.
    pub runs: Vec<Run>,
    pub baseline: ModelNumbers,
    /// Other engines' reconstructions, by name (the first replicate's evaluation).
    pub others: Vec<(String, ModelNumbers)>,
    /// `(model, bin, amplitude, phase)` rows of the first replicate's `frc_curves.csv`.
    pub frc: Vec<(String, usize, f64, f64)>,
    /// The first replicate's evaluation directory (for the figures).
    pub metrics_dir: PathBuf,
    /// The fraction of the network's patches closer to their twin image than to the truth:
    /// the mean over the replicates.
    pub twin_fraction: f64,
    /// The method that aligned the first replicate's reconstruction (`correlation`,
    /// `geometric fallback`).
    pub network_alignment: String,
}

impl Condition {
    /// Every reconstruction's numbers by name: the network (its mean), the ePIE baseline, then
    /// the others.
    pub fn models(&self) -> Vec<(&str, &ModelNumbers)> {
        let mut out = vec![(NETWORK, &self.network), (BASELINE, &self.baseline)];
        out.extend(self.others.iter().map(|(n, m)| (n.as_str(), m)));
        out
    }

    /// The estimate of one of the network's numbers over the replicates.
    pub fn estimate(&self, pick: impl Fn(&ModelNumbers) -> f64) -> Estimate {
        let xs: Vec<f64> = self.runs.iter().map(|r| pick(&r.network)).collect();
        Estimate::of(&xs)
    }

    /// `label` for a replicate's rows and titles: ` s42`, or nothing.
    fn replicate_suffix(&self) -> String {
        match self.runs.first() {
            Some(r) if !r.label.is_empty() => format!(" {}", r.label),
            _ => String::new(),
        }
    }
}

fn model_numbers(m: &ImageRecord, primary: &PrimaryRecord) -> ModelNumbers {
    let (a, p) = (&m.amplitude, &m.phase);
    let (pa, pp) = (&primary.amplitude, &primary.phase);
    ModelNumbers {
        primary_psnr: [pa.psnr.0, pp.psnr.0],
        pearson: [pa.pearson.0, pp.pearson.0],
        uncovered: primary.uncovered_fraction,
        psnr_range: [a.psnr_range.0, p.psnr_range.0],
        psnr_255: [a.psnr_255.0, p.psnr_255.0],
        ssim: [a.ssim.0, p.ssim.0],
        ms_ssim: [a.ms_ssim.0, p.ms_ssim.0],
        frc50: [a.frc50.0, p.frc50.0],
    }
}

fn read_frc(dir: &Path) -> Result<Vec<(String, usize, f64, f64)>> {
    let p = dir.join("frc_curves.csv");
    let text = fs_err::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 4 {
            return Err(Error::data(
                &p,
                format!("line {}: expected 4 fields", i + 1),
            ));
        }
        let bin = f[1]
            .parse()
            .map_err(|_| Error::data(&p, format!("line {}: bad bin `{}`", i + 1, f[1])))?;
        let num = |s: &str| s.parse::<f64>().unwrap_or(f64::NAN);
        out.push((f[0].to_string(), bin, num(f[2]), num(f[3])));
    }
    Ok(out)
}

/// Find the first numeric array under `key` anywhere in a JSON value (depth first, keys sorted).
fn find_array(v: &serde_json::Value, key: &str) -> Option<Vec<f64>> {
    match v {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Array(a)) = map.get(key) {
                let xs: Option<Vec<f64>> = a.iter().map(|x| x.as_f64()).collect();
                if let Some(xs) = xs {
                    return Some(xs);
                }
            }
            map.values().find_map(|x| find_array(x, key))
        }
        serde_json::Value::Array(a) => a.iter().find_map(|x| find_array(x, key)),
        _ => None,
    }
}

/// The loss curves of a model directory, or a note saying why there are none.
pub fn read_losses(model_dir: &Path) -> std::result::Result<(Vec<f64>, Vec<f64>), String> {
    let p = model_dir.join("model.json");
    let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", p.display()))?;
    match (find_array(&v, "train_loss"), find_array(&v, "val_loss")) {
        (Some(t), Some(val)) => Ok((t, val)),
        (Some(t), None) => Ok((t, Vec::new())),
        _ => {
            // The pinn recipe's form: history.epochs = [{loss, val_loss, ...}, ...].
            let epochs = v
                .get("history")
                .and_then(|h| h.get("epochs"))
                .and_then(|e| e.as_array())
                .ok_or_else(|| {
                    format!(
                        "{} has no `train_loss` array or `history.epochs`",
                        p.display()
                    )
                })?;
            let train: Vec<f64> = epochs
                .iter()
                .filter_map(|e| e.get("loss")?.as_f64())
                .collect();
            let val: Vec<f64> = epochs
                .iter()
                .filter_map(|e| e.get("val_loss")?.as_f64())
                .collect();
            if train.is_empty() {
                return Err(format!("{} records no epochs", p.display()));
            }
            Ok((train, val))
        }
    }
}

fn read_aligned(dir: &Path, key: &str) -> Result<Array2<Complex64>> {
    let p = dir.join("reconstructions_aligned.npz");
    let a: Array2<Complex32> = NpzFile::open(&p)?.read(key)?;
    Ok(a.mapv(|z| Complex64::new(z.re as f64, z.im as f64)))
}

/// `idealized`, `hybrid`, or `None` from a probe name.
pub fn probe_kind(name: &str) -> Option<&'static str> {
    let n = name.to_ascii_lowercase();
    if n.contains("hybrid") {
        Some("hybrid")
    } else if n.contains("ideal") || n.contains("default") {
        Some("idealized")
    } else {
        None
    }
}

/// One `metrics.*` input read: its condition, replicate label and records.
struct Read {
    condition: String,
    label: String,
    run: Run,
    baseline: ModelNumbers,
    others: Vec<(String, ModelNumbers)>,
    gridsize: i64,
    dir: PathBuf,
    alignment: String,
    holes: f64,
}

/// Gather the conditions of a report job (sorted by name, replicates by label), checking every
/// replicate's gridsize (model and dataset in `metrics.json`) against the declared
/// `gridsize.<condition>`.
pub fn gather(job: &JobSpec) -> Result<(Vec<Condition>, Vec<String>)> {
    let mut notes = Vec::new();
    let mut reads: Vec<Read> = Vec::new();
    for (role, dir) in &job.inputs {
        let Some(at) = role.strip_prefix("metrics.") else {
            continue;
        };
        let (name, label) = at.split_once('/').unwrap_or((at, ""));
        let j = MetricsFile::read(dir)?;
        let (mg, dg) = (j.model.gridsize, j.dataset.gridsize);
        let declared = job.param_i64(&format!("{GRIDSIZE}.{name}"))?;
        if mg != dg || mg != declared {
            return Err(Error::Build {
                target: job.target.clone(),
                message: format!(
                    "condition {at}: metrics.json records model gridsize {mg} and dataset \
                     gridsize {dg}, but the report declares {GRIDSIZE}.{name} = {declared}"
                ),
            });
        }
        let losses = match job.inputs.get(&format!("model.{at}")) {
            Some(md) => match read_losses(md) {
                Ok(l) => Some(l),
                Err(why) => {
                    notes.push(format!("No loss curves for {at}: {why}."));
                    None
                }
            },
            None => {
                notes.push(format!("No loss curves for {at}: no `model.{at}` input."));
                None
            }
        };
        reads.push(Read {
            condition: name.to_string(),
            label: label.to_string(),
            run: Run {
                label: label.to_string(),
                network: model_numbers(&j.metrics.network, &j.primary.network),
                twin_fraction: j.twin.fraction_closer_to_twin,
                losses,
            },
            baseline: model_numbers(&j.metrics.baseline, &j.primary.baseline),
            others: j
                .reconstructions
                .iter()
                .map(|(n, r)| (n.clone(), model_numbers(&r.metrics, &r.primary)))
                .collect(),
            gridsize: mg,
            dir: dir.clone(),
            alignment: j
                .registration
                .network
                .as_ref()
                .map_or_else(|| "none".to_string(), |o| o.method.clone()),
            holes: j.coverage.network.uncovered_fraction,
        });
    }
    if reads.is_empty() {
        return Err(Error::Build {
            target: job.target.clone(),
            message: "the report has no `metrics.<condition>` inputs".into(),
        });
    }
    // Replicates in numeric order of their seeds where the labels end in one (s2 before s10).
    let order = |l: &str| {
        let digits = l.trim_start_matches(|c: char| !c.is_ascii_digit());
        (digits.parse::<u64>().unwrap_or(u64::MAX), l.to_string())
    };
    reads.sort_by(|a, b| (&a.condition, order(&a.label)).cmp(&(&b.condition, order(&b.label))));
    let mut conds: Vec<Condition> = Vec::new();
    let mut k = 0;
    while k < reads.len() {
        let name = reads[k].condition.clone();
        let end = k + reads[k..]
            .iter()
            .take_while(|r| r.condition == name)
            .count();
        let group = &reads[k..end];
        let first = &group[0];
        let holes = first.holes;
        if holes > 0.01 {
            notes.push(format!(
                "{name}: {:.1}% of the evaluated area is covered by no stitched crop (zeros, \
                 counted in the PtychoPINN-compatible metrics as in PtychoPINN, which caps their \
                 SSIM and PSNR for the network and the baseline alike; the primary scores leave \
                 them out); more test patterns or a larger stitch_crop would remove it.",
                100.0 * holes
            ));
        }
        let runs: Vec<Run> = group.iter().map(|r| r.run.clone()).collect();
        let nets: Vec<ModelNumbers> = runs.iter().map(|r| r.network.clone()).collect();
        let (network, network_sd) = ModelNumbers::mean_sd(&nets);
        let twins: Vec<f64> = runs.iter().map(|r| r.twin_fraction).collect();
        conds.push(Condition {
            name: name.clone(),
            gridsize: first.gridsize,
            probe: job.param_str(&format!("probe.{name}"))?.to_string(),
            network,
            network_sd,
            runs,
            baseline: first.baseline.clone(),
            others: first.others.clone(),
            frc: read_frc(&first.dir)?,
            metrics_dir: first.dir.clone(),
            twin_fraction: mean_sd(&twins).0,
            network_alignment: first.alignment.clone(),
        });
        k = end;
    }
    Ok((conds, notes))
}

const CSV_HEADER: &str =
    "condition,gridsize,probe,replicate,model,psnr_range_amp,psnr_range_phase,\
psnr_255_amp,psnr_255_phase,ssim_amp,ssim_phase,ms_ssim_amp,ms_ssim_phase,frc50_amp,frc50_phase,\
primary_psnr_amp,primary_psnr_phase,pearson_amp,pearson_phase,uncovered_fraction";

/// `summary.csv`: one row per replicate of the network and one of the baseline and of each
/// other reconstruction per condition (their `replicate` is empty: they do not depend on the
/// model's seed).
pub fn summary_csv(conds: &[Condition]) -> String {
    let mut s = format!("{CSV_HEADER}\n");
    for c in conds {
        let mut rows: Vec<(&str, &str, &ModelNumbers)> = c
            .runs
            .iter()
            .map(|r| (r.label.as_str(), NETWORK, &r.network))
            .collect();
        rows.push(("", BASELINE, &c.baseline));
        rows.extend(c.others.iter().map(|(n, m)| ("", n.as_str(), m)));
        for (replicate, model, m) in rows {
            let numbers: Vec<String> = m.to_vec().into_iter().map(f6).collect();
            s.push_str(&format!(
                "{},{},{},{replicate},{model},{}\n",
                c.name,
                c.gridsize,
                c.probe,
                numbers.join(",")
            ));
        }
    }
    s
}

/// The idealized and the hybrid condition of each gridsize that has both.
fn probe_pairs(conds: &[Condition]) -> Vec<(i64, &Condition, &Condition)> {
    let gs: std::collections::BTreeSet<i64> = conds.iter().map(|c| c.gridsize).collect();
    gs.into_iter()
        .filter_map(|g| {
            let find = |kind: &str| {
                conds
                    .iter()
                    .find(|c| c.gridsize == g && probe_kind(&c.probe) == Some(kind))
            };
            Some((g, find("idealized")?, find("hybrid")?))
        })
        .collect()
}

/// Idealized minus hybrid PSNR (`[amplitude, phase]`, the one `psnr` picks) of a model per
/// gridsize.
pub fn degradation(
    conds: &[Condition],
    pick: fn(&Condition) -> &ModelNumbers,
    psnr: fn(&ModelNumbers) -> [f64; 2],
) -> BTreeMap<i64, [f64; 2]> {
    probe_pairs(conds)
        .into_iter()
        .map(|(g, i, h)| {
            let (a, b) = (psnr(pick(i)), psnr(pick(h)));
            (g, [a[0] - b[0], a[1] - b[1]])
        })
        .collect()
}

/// The plan's success criteria, decided on the network's primary PSNR with the uncertainty of
/// its replicates ([`crate::verdict`]).
pub fn criteria(conds: &[Condition]) -> String {
    let mut s = String::from("\n## Success criteria of the original plan\n\n");
    s.push_str("Decided on the network's (PtychoPINN's) primary scores: PSNR on the covered region with the ground truth's data range there as peak. The plan's numbers were PSNR with peak 255, under which criterion 1 is trivially met (shown for comparison); the PtychoPINN-compatible scores are in the tables above.\n\n");
    let fewest = conds.iter().map(|c| c.runs.len()).min().unwrap_or(0);
    if fewest > 1 {
        s.push_str(&format!(
            "Each number is the mean over a condition's replicates, given as mean [interval]: the interval is the mean +- {} standard errors (differences of conditions add their errors in quadrature). A criterion is met when the whole interval is on its side of the threshold, not met when the whole interval is on the other side, and **inconclusive** when the interval straddles the threshold: more replicates would decide it.\n\n",
            crate::verdict::K
        ));
    } else {
        s.push_str("Some condition has a single replicate, so no spread is known: the verdicts below are decided on single values and cannot say whether another seed would change them. List several seeds (`model_seed = [42, 1, 2]`) to decide them with their uncertainty.\n\n");
    }
    const PARTS: [&str; 2] = ["amplitude", "phase"];
    // 1. Every PSNR > 20 dB.
    let mut verdicts = Vec::new();
    let mut failing = Vec::new();
    let mut low255 = Vec::new();
    for c in conds {
        for (k, part) in PARTS.iter().enumerate() {
            let e = c.estimate(|m| m.primary_psnr[k]);
            let v = e.above(20.0);
            if v != Verdict::Met {
                failing.push(format!("{} {part} {} dB", c.name, e.describe()));
            }
            verdicts.push(v);
            let p255 = c.network.psnr_255[k];
            if p255.is_nan() || p255 <= 20.0 {
                low255.push(format!("{} {part}", c.name));
            }
        }
    }
    let lowest = conds
        .iter()
        .flat_map(|c| c.network.primary_psnr)
        .fold(f64::INFINITY, f64::min);
    s.push_str(&format!(
        "1. Every PSNR > 20 dB: {} (lowest mean primary PSNR {lowest:.2} dB{}). With peak 255: {}.\n",
        Verdict::all(verdicts.iter().copied()).mark(),
        if failing.is_empty() {
            String::new()
        } else {
            format!("; not above 20 dB throughout: {}", failing.join(", "))
        },
        if low255.is_empty() { "met" } else { "not met" }
    ));
    // 2. Hybrid degradation < 3 dB, and 3. smaller at gridsize 2.
    let deg = degradation_estimates(conds);
    if deg.is_empty() {
        s.push_str(
            "2. Hybrid degradation < 3 dB: **not evaluable** (no gridsize has both probes).\n",
        );
    } else {
        let verdict = Verdict::all(deg.values().flat_map(|d| d.iter().map(|e| e.below(3.0))));
        let detail: Vec<String> = deg
            .iter()
            .map(|(g, d)| {
                format!(
                    "gridsize {g}: amplitude {} dB, phase {} dB",
                    d[0].describe(),
                    d[1].describe()
                )
            })
            .collect();
        s.push_str(&format!(
            "2. Hybrid degradation < 3 dB (amplitude and phase): {} ({}).\n",
            verdict.mark(),
            detail.join("; ")
        ));
    }
    match (deg.get(&1), deg.get(&2)) {
        (Some(d1), Some(d2)) => {
            // d1 - d2 > 0 in both parts.
            let gain = [d1[0].minus(&d2[0]), d1[1].minus(&d2[1])];
            let verdict = Verdict::all(gain.iter().map(|e| e.above(0.0)));
            s.push_str(&format!(
                "3. Smaller degradation at gridsize 2 (amplitude and phase): {} (gridsize 1: {} / {} dB; gridsize 2: {} / {} dB; gridsize 1 minus 2: {} / {} dB).\n",
                verdict.mark(),
                d1[0].describe(),
                d1[1].describe(),
                d2[0].describe(),
                d2[1].describe(),
                gain[0].describe(),
                gain[1].describe()
            ));
        }
        _ => s.push_str("3. Smaller degradation at gridsize 2: **not evaluable** (needs both probes at gridsize 1 and 2).\n"),
    }
    s
}

/// Idealized minus hybrid primary PSNR of the network per gridsize (`[amplitude, phase]`),
/// each with the uncertainty of the replicates on both sides.
pub fn degradation_estimates(conds: &[Condition]) -> BTreeMap<i64, [Estimate; 2]> {
    probe_pairs(conds)
        .into_iter()
        .map(|(g, i, h)| {
            let d = |k: usize| {
                i.estimate(|m| m.primary_psnr[k])
                    .minus(&h.estimate(|m| m.primary_psnr[k]))
            };
            (g, [d(0), d(1)])
        })
        .collect()
}

/// `summary.md`.
pub fn summary_md(conds: &[Condition], notes: &[String]) -> String {
    let mut s = String::from("# Probe parameterization study: summary\n\n");
    s.push_str(&format!("PSNR in dB. {PSNR_NOTE}.\n\n"));
    s.push_str("## Conditions\n\n");
    s.push_str("| condition | gridsize | probe | model | PSNR range amp | PSNR range phase | PSNR 255 amp | PSNR 255 phase | SSIM amp | SSIM phase | MS-SSIM amp | MS-SSIM phase | FRC50 amp | FRC50 phase |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for c in conds {
        for (model, m) in c.models() {
            s.push_str(&format!(
                "| {} | {} | {} | {model} | {:.2} | {:.2} | {:.2} | {:.2} | {:.4} | {:.4} | {:.4} | {:.4} | {:.2} | {:.2} |\n",
                c.name, c.gridsize, c.probe, m.psnr_range[0], m.psnr_range[1], m.psnr_255[0],
                m.psnr_255[1], m.ssim[0], m.ssim[1], m.ms_ssim[0], m.ms_ssim[1], m.frc50[0], m.frc50[1]
            ));
        }
    }
    s.push_str("\nFRC50 is in Fourier-ring units (interpolated first crossing of 0.5). These are the PtychoPINN-compatible scores: the whole image, uncovered pixels included.\n\n");
    s.push_str("## Primary scores (covered region)\n\n");
    s.push_str("On the pixels at least one stitched crop covers (eroded by a margin), after registration: PSNR with the truth's data range over that region as peak, and the Pearson correlation with the truth of the amplitude and of the plane-removed phase (1 perfect, 0 unrelated, -1 inverted).\n\n");
    s.push_str("| condition | model | uncovered | PSNR amp | PSNR phase | Pearson amp | Pearson phase |\n|---|---|---|---|---|---|---|\n");
    for c in conds {
        for (model, m) in c.models() {
            s.push_str(&format!(
                "| {} | {model} | {:.1}% | {:.2} | {:.2} | {:.4} | {:.4} |\n",
                c.name,
                100.0 * m.uncovered,
                m.primary_psnr[0],
                m.primary_psnr[1],
                m.pearson[0],
                m.pearson[1]
            ));
        }
    }
    s.push('\n');
    s.push_str("## Degradation idealized -> hybrid probe\n\n");
    s.push_str("PSNR(idealized) - PSNR(hybrid) at the same gridsize; positive means the hybrid probe is worse. Primary PSNR (covered region) first, then the PtychoPINN-compatible ones.\n\n");
    s.push_str("| gridsize | model | primary PSNR amp | primary PSNR phase | PSNR range amp | PSNR range phase | PSNR 255 amp | PSNR 255 phase |\n|---|---|---|---|---|---|---|---|\n");
    let net_p = degradation(conds, |c| &c.network, |m| m.primary_psnr);
    let base_p = degradation(conds, |c| &c.baseline, |m| m.primary_psnr);
    let net_r = degradation(conds, |c| &c.network, |m| m.psnr_range);
    let net_2 = degradation(conds, |c| &c.network, |m| m.psnr_255);
    let base_r = degradation(conds, |c| &c.baseline, |m| m.psnr_range);
    let base_2 = degradation(conds, |c| &c.baseline, |m| m.psnr_255);
    let nan2 = [f64::NAN; 2];
    for (g, d) in &net_r {
        let d2 = net_2.get(g).copied().unwrap_or(nan2);
        let dp = net_p.get(g).copied().unwrap_or(nan2);
        s.push_str(&format!(
            "| {g} | {NETWORK} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
            dp[0], dp[1], d[0], d[1], d2[0], d2[1]
        ));
        if let (Some(b), Some(b2)) = (base_r.get(g), base_2.get(g)) {
            let bp = base_p.get(g).copied().unwrap_or(nan2);
            s.push_str(&format!(
                "| {g} | {BASELINE} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
                bp[0], bp[1], b[0], b[1], b2[0], b2[1]
            ));
        }
    }
    let mut other_names: Vec<&str> = conds
        .iter()
        .flat_map(|c| c.others.iter().map(|(n, _)| n.as_str()))
        .collect();
    other_names.sort_unstable();
    other_names.dedup();
    for name in other_names {
        for (g, i, h) in probe_pairs(conds) {
            let find = |c: &Condition| {
                c.others
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, m)| m.clone())
            };
            let (Some(a), Some(b)) = (find(i), find(h)) else {
                continue;
            };
            let d = |f: fn(&ModelNumbers) -> [f64; 2]| {
                let (x, y) = (f(&a), f(&b));
                [x[0] - y[0], x[1] - y[1]]
            };
            let (dp, dr, d2) = (
                d(|m| m.primary_psnr),
                d(|m| m.psnr_range),
                d(|m| m.psnr_255),
            );
            s.push_str(&format!(
                "| {g} | {name} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
                dp[0], dp[1], dr[0], dr[1], d2[0], d2[1]
            ));
        }
    }
    if net_r.is_empty() {
        s.push_str(
            "| - | - | no gridsize has both an idealized and a hybrid condition | | | | | |\n",
        );
    }
    if conds.iter().any(|c| c.runs.len() > 1) {
        s.push_str("\n## Replicates\n\n");
        s.push_str("The network's numbers above are means over each condition's replicates (models trained with different `model_seed` on the same data). Here: mean +- standard deviation, and every replicate.\n\n");
        s.push_str("| condition | replicates | SSIM amp | Pearson amp | Pearson phase | primary PSNR amp | primary PSNR phase | FRC50 amp |\n|---|---|---|---|---|---|---|---|\n");
        for c in conds {
            let pm = |pick: fn(&ModelNumbers) -> f64, digits: usize| {
                let xs: Vec<f64> = c.runs.iter().map(|r| pick(&r.network)).collect();
                match mean_sd(&xs) {
                    (m, Some(sd)) => format!("{m:.digits$} +- {sd:.digits$}"),
                    (m, None) => format!("{m:.digits$}"),
                }
            };
            let labels: Vec<&str> = c.runs.iter().map(|r| r.label.as_str()).collect();
            s.push_str(&format!(
                "| {} | {} ({}) | {} | {} | {} | {} | {} | {} |\n",
                c.name,
                c.runs.len(),
                labels.join(", "),
                pm(|m| m.ssim[0], 4),
                pm(|m| m.pearson[0], 4),
                pm(|m| m.pearson[1], 4),
                pm(|m| m.primary_psnr[0], 2),
                pm(|m| m.primary_psnr[1], 2),
                pm(|m| m.frc50[0], 2),
            ));
        }
    }
    s.push_str("\n## Twin image\n\n");
    s.push_str("Fraction of the network's predicted patches whose amplitude (central disk of radius N/4) correlates better with the twin conj(O rotated 180 degrees) than with the true patch: near 0 the network resolves the ambiguity, near 0.5 it guesses, above 0.5 it prefers the twin. The mean over the replicates.\n\n| condition | closer to twin |\n|---|---|\n");
    for c in conds {
        s.push_str(&format!("| {} | {:.3} |\n", c.name, c.twin_fraction));
    }
    s.push_str(&criteria(conds));
    s.push_str("\n## Figures\n\n");
    s.push_str("- `reconstructions.png`: the network's registered reconstruction of every condition (its first replicate) beside the ground truth (amplitude and phase), and every other engine's reconstruction.\n");
    s.push_str("- `probes.png`: the probes (amplitude and phase).\n");
    s.push_str("- `losses.png`: training (solid) and validation (dashed) loss per epoch (first replicate).\n");
    s.push_str("- `frc_amplitude.png`, `frc_phase.png`: FRC curves, network (solid, first replicate), the ePIE baseline and any other engine (dashed).\n");
    if !notes.is_empty() {
        s.push_str("\n## Notes\n\n");
        for n in notes {
            s.push_str(&format!("- {n}\n"));
        }
    }
    s
}

/// Build `job.output`; returns the parameters actually used (`gridsize.<condition>` read back
/// from the `summary.csv` just written, and `probe.<condition>`).
pub fn report(job: &JobSpec) -> Result<Params> {
    let (conds, mut notes) = gather(job)?;
    let out = &job.output;
    fs_err::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    // Figures first, so their notes reach the summary.
    let gt = read_aligned(&conds[0].metrics_dir, "ground_truth_complex")?;
    let mut recons = Vec::new();
    for c in &conds {
        let p = c.metrics_dir.join("reconstructions_aligned.npz");
        let covered: Array2<u8> = NpzFile::open(&p)?.read("ptychopinn_covered")?;
        recons.push((
            format!(
                "{}{} [{}]",
                c.name,
                c.replicate_suffix(),
                c.network_alignment
            ),
            read_aligned(&c.metrics_dir, "ptychopinn_complex")?,
            covered.mapv(|v| v != 0),
        ));
        for (name, _) in &c.others {
            let covered: Array2<u8> = NpzFile::open(&p)?.read(&format!("{name}_covered"))?;
            recons.push((
                format!("{} {name}", c.name),
                read_aligned(&c.metrics_dir, &format!("{name}_complex"))?,
                covered.mapv(|v| v != 0),
            ));
        }
    }
    let mut cols: Vec<MaskedColumn> = vec![("ground truth", &gt, None)];
    cols.extend(recons.iter().map(|(n, a, m)| (n.as_str(), a, Some(m))));
    complex_grid_masked(
        &out.join("reconstructions.png"),
        "PtychoPINN reconstructions (registered) beside the ground truth",
        &cols,
    )?;
    let mut probes = Vec::new();
    for (role, path) in &job.inputs {
        if let Some(name) = role.strip_prefix("probe.") {
            probes.push((name.to_string(), read_complex2_npy_f64(path)?));
        }
    }
    if probes.is_empty() {
        notes.push("No probe inputs: probes.png was not drawn.".into());
    } else {
        let cols: Vec<(&str, &Array2<Complex64>)> =
            probes.iter().map(|(n, a)| (n.as_str(), a)).collect();
        complex_grid(&out.join("probes.png"), "Probes", &cols)?;
    }
    let mut series = Vec::new();
    let mut colours = Vec::new();
    for (k, c) in conds.iter().enumerate() {
        if let Some((t, v)) = &c.runs[0].losses {
            let pts = |xs: &Vec<f64>| {
                xs.iter()
                    .enumerate()
                    .map(|(e, y)| ((e + 1) as f64, *y))
                    .collect()
            };
            series.push(Series {
                label: format!("{}{} train", c.name, c.replicate_suffix()),
                points: pts(t),
                dashed: false,
            });
            colours.push(k);
            if !v.is_empty() {
                series.push(Series {
                    label: format!("{}{} validation", c.name, c.replicate_suffix()),
                    points: pts(v),
                    dashed: true,
                });
                colours.push(k);
            }
        }
    }
    if series.is_empty() {
        notes.push("No model recorded loss curves: losses.png was not drawn.".into());
    } else {
        let positive = series.iter().all(|s| s.points.iter().all(|p| p.1 > 0.0));
        line_chart(
            &out.join("losses.png"),
            &ChartSpec {
                title: "Training and validation loss",
                xlabel: "epoch",
                ylabel: "loss",
                legend: LegendPosition::UpperRight,
                log_y: positive,
            },
            &series,
            &colours,
        )?;
    }
    for (col, file, what) in [
        (0usize, "frc_amplitude.png", "amplitude"),
        (1, "frc_phase.png", "phase"),
    ] {
        let mut series = Vec::new();
        let mut colours = Vec::new();
        for (k, c) in conds.iter().enumerate() {
            let mut models = vec![(NETWORK, false), (BASELINE, true)];
            models.extend(c.others.iter().map(|(n, _)| (n.as_str(), true)));
            for (model, dashed) in models {
                let pts: Vec<(f64, f64)> = c
                    .frc
                    .iter()
                    .filter(|r| r.0 == model)
                    .map(|r| (r.1 as f64, if col == 0 { r.2 } else { r.3 }))
                    .collect();
                series.push(Series {
                    label: format!("{} {model}", c.name),
                    points: pts,
                    dashed,
                });
                colours.push(k);
            }
        }
        line_chart(
            &out.join(file),
            &ChartSpec {
                title: &format!("Fourier ring correlation, {what}"),
                xlabel: "ring (frequency bin)",
                ylabel: "FRC",
                legend: LegendPosition::LowerLeft,
                log_y: false,
            },
            &series,
            &colours,
        )?;
    }
    let csv = summary_csv(&conds);
    let csv_path = out.join("summary.csv");
    fs_err::write(&csv_path, &csv).map_err(|e| Error::io(&csv_path, e))?;
    let md_path = out.join("summary.md");
    fs_err::write(&md_path, summary_md(&conds, &notes)).map_err(|e| Error::io(&md_path, e))?;
    // Read back what was written: each condition's gridsize from its rows of summary.csv.
    let mut used = Params::new();
    for (name, g) in read_summary_gridsizes(out)? {
        used.insert(format!("{GRIDSIZE}.{name}"), Value::Int(g));
    }
    for c in &conds {
        used.insert(format!("probe.{}", c.name), Value::Str(c.probe.clone()));
    }
    Ok(used)
}

/// Each condition's gridsize as `summary.csv` in a report directory gives it (the network's
/// and the baseline's rows must agree), in the file's order.
pub fn read_summary_gridsizes(output: &Path) -> Result<Vec<(String, i64)>> {
    let p = output.join("summary.csv");
    let text = fs_err::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    let mut lines = text.lines();
    if lines.next() != Some(CSV_HEADER) {
        return Err(Error::data(
            &p,
            "unexpected header (not a studymake summary.csv)",
        ));
    }
    let mut out: Vec<(String, i64)> = Vec::new();
    for (i, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 4 {
            return Err(Error::data(&p, format!("line {}: too few fields", i + 2)));
        }
        let g: i64 = f[1].parse().map_err(|_| {
            Error::data(
                &p,
                format!("line {}: gridsize `{}` is not an integer", i + 2, f[1]),
            )
        })?;
        match out.iter().find(|(c, _)| c == f[0]) {
            Some((_, prev)) if *prev != g => {
                return Err(Error::data(
                    &p,
                    format!("condition {} has rows with gridsize {prev} and {g}", f[0]),
                ))
            }
            Some(_) => {}
            None => out.push((f[0].to_string(), g)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use studymake_engine::job::JOB_SCHEMA;
    use studymake_engine::recipe::Recipe;
    use studymake_science::evaluation::{evaluate_condition, ConditionSettings};
    use studymake_science::testdata::perfect_case;

    /// An evaluation directory of a perfect case perturbed by `noise` (pattern `k`), recorded
    /// as gridsize `g`, under `dir`.
    fn evaluation(
        data: &studymake_science::io::dataset::Dataset,
        pred: &studymake_science::evaluation::Prediction,
        dir: &Path,
        g: i64,
        k: usize,
        noise: f64,
    ) -> PathBuf {
        let mut p = pred.clone();
        // Deterministic perturbation so the conditions differ.
        for ((m, i, j), z) in p.patches.indexed_iter_mut() {
            let t = ((m * 31 + i * 7 + j * 13 + k) % 17) as f32 / 17.0 - 0.5;
            *z += Complex32::new(noise as f32 * t, 0.0);
        }
        let mut ev = evaluate_condition(
            &p,
            data,
            &ConditionSettings {
                declared_gridsize: 1,
                seed: 1,
                baseline_iterations: 3,
                stitch_crop: 8,
            },
            &[],
        )
        .unwrap();
        // Stand in for a gridsize-2 evaluation's records.
        ev.gridsize.model = g;
        ev.gridsize.dataset = g;
        ev.settings.declared_gridsize = g;
        let md = dir.join("evaluation");
        std::fs::create_dir_all(&md).unwrap();
        ev.write(&md).unwrap();
        md
    }

    fn report_job(d: &Path, inputs: BTreeMap<String, PathBuf>, params: Params) -> JobSpec {
        JobSpec {
            schema: JOB_SCHEMA,
            target: "report".into(),
            kind: "report".into(),
            recipe: Recipe::Builtin {
                name: "report".into(),
                version: 3,
            },
            params,
            inputs,
            output: d.join("report"),
            report: d.join("report.json"),
            threads: 1,
        }
    }

    #[test]
    fn replicates_give_means_spreads_and_verdicts_with_their_uncertainty() {
        let d = tempfile::tempdir().unwrap();
        let (data, pred) = perfect_case(false);
        let mut inputs = BTreeMap::new();
        let mut params = Params::new();
        // Two replicates of each probe at gridsize 1: the hybrid ones noisier.
        for (name, probe, noises) in [
            ("gs1_idealized", "idealized", [0.0, 0.01]),
            ("gs1_hybrid", "hybrid", [0.03, 0.05]),
        ] {
            for (r, noise) in [2, 10].into_iter().zip(noises) {
                let at = format!("{name}/s{r}");
                let md = evaluation(&data, &pred, &d.path().join(&at), 1, r, noise);
                inputs.insert(format!("metrics.{at}"), md);
            }
            params.insert(format!("gridsize.{name}"), Value::Int(1));
            params.insert(format!("probe.{name}"), Value::Str(probe.to_string()));
        }
        let job = report_job(d.path(), inputs, params);
        let (conds, _) = gather(&job).unwrap();
        assert_eq!(conds.len(), 2);
        let ideal = conds.iter().find(|c| c.name == "gs1_idealized").unwrap();
        let labels: Vec<&str> = ideal.runs.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(
            labels,
            ["s2", "s10"],
            "replicates in the numeric order of their seeds"
        );
        let ssims: Vec<f64> = ideal.runs.iter().map(|r| r.network.ssim[0]).collect();
        assert!(ssims[0] != ssims[1]);
        assert!((ideal.network.ssim[0] - (ssims[0] + ssims[1]) / 2.0).abs() < 1e-12);
        let sd = ideal.network_sd.as_ref().unwrap().ssim[0];
        assert!((sd - (ssims[0] - ssims[1]).abs() / 2f64.sqrt()).abs() < 1e-12);
        report(&job).unwrap();
        let out = d.path().join("report");
        let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
        // Header, two network rows and one baseline row per condition.
        assert_eq!(csv.lines().count(), 1 + 2 * 3, "{csv}");
        assert!(
            csv.contains("gs1_idealized,1,idealized,s10,PtychoPINN,"),
            "{csv}"
        );
        assert!(csv.contains("gs1_idealized,1,idealized,,ePIE,"), "{csv}");
        let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
        assert!(md.contains("## Replicates"), "{md}");
        assert!(md.contains("| gs1_idealized | 2 (s2, s10) |"), "{md}");
        assert!(md.contains("mean +- 2 standard errors"), "{md}");
        // The degradation is given with its interval.
        let deg = degradation_estimates(&conds)[&1];
        assert!(deg[0].se.is_some());
        assert!(
            md.contains(&format!("gridsize 1: amplitude {} dB", deg[0].describe())),
            "{md}"
        );
        assert_eq!(crate::facts::report(&out).unwrap().len(), 2);
    }

    #[test]
    fn the_report_builds_from_four_conditions() {
        let d = tempfile::tempdir().unwrap();
        let (data, pred) = perfect_case(false);
        let mut inputs = BTreeMap::new();
        let mut params = Params::new();
        let conds = [
            ("gs1_idealized", 1, "idealized", 0.00),
            ("gs1_hybrid", 1, "hybrid", 0.03),
            ("gs2_idealized", 2, "idealized", 0.01),
            ("gs2_hybrid", 2, "hybrid", 0.02),
        ];
        for (k, (name, g, probe, noise)) in conds.iter().enumerate() {
            let md = evaluation(&data, &pred, &d.path().join(name), *g, k, *noise);
            inputs.insert(format!("metrics.{name}"), md);
            let model = d.path().join(name).join("model");
            std::fs::create_dir_all(&model).unwrap();
            if k != 3 {
                let losses: Vec<f64> = (1..=10).map(|e| 1.0 / (e as f64 + k as f64)).collect();
                let val: Vec<f64> = losses.iter().map(|v| v * 1.1).collect();
                std::fs::write(
                    model.join("model.json"),
                    serde_json::json!({"gridsize": g, "history": {"train_loss": losses, "val_loss": val}}).to_string(),
                )
                .unwrap();
            }
            inputs.insert(format!("model.{name}"), model);
            params.insert(format!("gridsize.{name}"), Value::Int(*g));
            params.insert(format!("probe.{name}"), Value::Str(probe.to_string()));
        }
        for probe in ["idealized", "hybrid"] {
            let p = d.path().join(format!("{probe}.npy"));
            studymake_science::io::npy::write_npy(&p, &data.probe).unwrap();
            inputs.insert(format!("probe.{probe}"), p);
        }
        let out = d.path().join("report");
        let job = report_job(d.path(), inputs, params);
        let used = report(&job).unwrap();
        for (name, g, _, _) in conds {
            assert_eq!(used[&format!("gridsize.{name}")], Value::Int(g));
        }
        let facts = crate::facts::report(&out).unwrap();
        assert_eq!(facts.len(), 4);
        assert!(facts
            .iter()
            .all(|f| f.param == "gridsize" && f.condition.is_some()));
        let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
        for (name, ..) in conds {
            assert!(
                md.contains(&format!("| {name} |")),
                "{name} missing from summary.md"
            );
        }
        assert!(md.contains("Every PSNR > 20 dB"));
        assert!(md.contains("Hybrid degradation < 3 dB"));
        assert!(md.contains("Smaller degradation at gridsize 2"));
        assert!(md.contains("No loss curves for gs2_hybrid"));
        assert!(md.contains("Decided on the network's (PtychoPINN's) primary scores"));
        assert!(md.contains("## Primary scores (covered region)"));
        assert!(
            md.contains("| gs1_idealized | 0.000 |"),
            "twin fraction of a perfect case"
        );
        let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
        assert_eq!(csv.lines().count(), 1 + 8);
        for f in [
            "reconstructions.png",
            "probes.png",
            "losses.png",
            "frc_amplitude.png",
            "frc_phase.png",
        ] {
            assert!(out.join(f).is_file(), "{f}");
        }
        // A declared gridsize that disagrees with the records is refused.
        let mut bad = job.clone();
        bad.output = d.path().join("report2");
        bad.params
            .insert("gridsize.gs2_hybrid".into(), Value::Int(1));
        let e = report(&bad).unwrap_err().to_string();
        assert!(
            e.contains("gs2_hybrid") && e.contains("model gridsize 2"),
            "{e}"
        );
        if std::env::var_os("STUDYMAKE_KEEP_REPORT").is_some() {
            let keep = std::path::PathBuf::from("/tmp/studymake_report_test");
            let _ = std::fs::remove_dir_all(&keep);
            std::fs::create_dir_all(&keep).unwrap();
            for e in std::fs::read_dir(&out).unwrap() {
                let e = e.unwrap();
                std::fs::copy(e.path(), keep.join(e.file_name())).unwrap();
            }
            let ev = d.path().join("gs1_hybrid/evaluation/comparison.png");
            std::fs::copy(ev, keep.join("comparison_gs1_hybrid.png")).unwrap();
        }
    }
}
