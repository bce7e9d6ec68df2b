//! The study's structural fact, declared once: `gridsize`, the number of patterns per group side
//! ([`Gridsize`]; a group holds `gridsize^2` patterns). It is the one matrix axis that is a
//! number: every condition's targets read it, nothing but the condition sets it, and every built
//! target must show it. This module reads it back from each artifact kind, one reading per kind,
//! from what the artifact *is* or computes with rather than from a label beside it:
//!
//! | kind | read from |
//! |---|---|
//! | `train_data`, `test_data` | the width of the dataset's `group_index` |
//! | `model` | the gridsize `model.safetensors` builds its physics from (its metadata, under the weights' digest: one network runs per pattern, so no tensor's shape shows it) |
//! | `metrics` | `metrics.json`: the evaluated model's and dataset's gridsize, which must agree |
//! | `report` | `summary.csv`: each condition's rows, which must agree |
//! | a declared `reconstruction` | its `reconstruction.npz`'s `gridsize`, when it records one |
//!
//! A width that is not a square cannot be any gridsize; it is reported as its (non-integer)
//! square root, which no declaration equals, so the engine refuses it by the one comparison it
//! makes for every structural parameter. The recipes report what they built from these same
//! readings, and `verify` repeats them on the artifacts as they are on disk.

use crate::error::{Error, Result};
use std::path::Path;
use studymake_engine::catalog::Fact;
use studymake_engine::job::JobSpec;
use studymake_engine::params::Value;
use studymake_science::evaluation::metrics_file::MetricsFile;
use studymake_science::evaluation::prediction_file::PREDICTION_FILE;
use studymake_science::evaluation::reconstruction_file::{read_gridsize, reconstruction_path};
use studymake_science::io::dataset::DatasetSummary;
use studymake_science::io::npy::NpzFile;
use studymake_science::physics::grouping::Gridsize;

/// The structural parameter's name.
pub const GRIDSIZE: &str = "gridsize";

/// The gridsize a job is declared with (a condition's target reads it from its condition).
pub fn declared(job: &JobSpec) -> Result<Gridsize> {
    let g = job.param_i64(GRIDSIZE)?;
    Gridsize::new(g).ok_or_else(|| Error::Build {
        target: job.target.clone(),
        message: format!("parameter `{GRIDSIZE}` must be at least 1, got {g}"),
    })
}

/// The gridsize a group width shows, as a parameter value: the integer for a square width,
/// otherwise the square root (not an integer, so it equals no declared gridsize).
pub fn gridsize_of_width(width: usize) -> Value {
    match Gridsize::from_width(width) {
        Some(g) => Value::Int(g.as_i64()),
        None => Value::Float((width as f64).sqrt()),
    }
}

fn gridsize_fact(value: Value, label: &str, source: &str) -> Fact {
    Fact {
        param: GRIDSIZE.into(),
        condition: None,
        value,
        source: source.into(),
        label: label.into(),
    }
}

fn fact(param: &str, value: Value, source: &str) -> Fact {
    Fact {
        param: param.into(),
        condition: None,
        value,
        source: source.into(),
        label: param.into(),
    }
}

/// A dataset file: its gridsize from the width of `group_index`, and its seed, pattern count
/// and photons from its scalars (headers and scalars only; no pattern data is read).
pub fn dataset(path: &Path) -> Result<Vec<Fact>> {
    let s = DatasetSummary::read(path)?;
    Ok(vec![
        gridsize_fact(
            gridsize_of_width(s.group_shape.1),
            "group_index.gridsize",
            "the dataset's group_index width",
        ),
        fact("seed", Value::Int(s.seed), "the dataset's seed"),
        fact(
            "n_images",
            Value::Int(s.n_images as i64),
            "the dataset's pattern count",
        ),
        fact(
            "nphotons",
            Value::Float(s.nphotons),
            "the dataset's photons",
        ),
    ])
}

/// A model directory: its gridsize and seed from the weights file's metadata (the gridsize is
/// the one its physics is rebuilt with, covered by the file's digest); for an external model
/// with only a `prediction.npz`, its gridsize from the width of the prediction's `group_index`.
pub fn model(dir: &Path) -> Result<Vec<Fact>> {
    let path = dir.join(studymake_pinn::artifact::WEIGHTS_FILE);
    let external = dir.join(PREDICTION_FILE);
    if !path.exists() && external.exists() {
        let header = NpzFile::open(&external)?.header("group_index")?;
        let width = header
            .shape
            .get(1)
            .copied()
            .ok_or_else(|| Error::data(&external, "`group_index` is not a 2-D array"))?;
        return Ok(vec![gridsize_fact(
            gridsize_of_width(width),
            "prediction.gridsize",
            "the prediction's group_index width",
        )]);
    }
    let header = studymake_pinn::artifact::Header::read(&path)?;
    Ok(vec![
        gridsize_fact(
            Value::Int(header.gridsize as i64),
            "model.gridsize",
            "the gridsize the model file's physics is built from",
        ),
        fact("seed", Value::Int(header.seed), "the model's metadata"),
    ])
}

/// An evaluation directory: the gridsize of the model and the dataset it evaluated (they must
/// agree), and the baseline's seed, from `metrics.json`.
pub fn metrics(dir: &Path) -> Result<Vec<Fact>> {
    let m = MetricsFile::read(dir)?;
    if m.model.gridsize != m.dataset.gridsize {
        return Err(Error::data(
            dir.join(MetricsFile::NAME),
            format!(
                "records model gridsize {} and dataset gridsize {}",
                m.model.gridsize, m.dataset.gridsize
            ),
        ));
    }
    Ok(vec![
        gridsize_fact(
            Value::Int(m.model.gridsize),
            "metrics.gridsize",
            "the evaluated model and dataset",
        ),
        fact("seed", Value::Int(m.seed as i64), "metrics.json"),
    ])
}

/// Another engine's reconstruction (a file, or a directory holding `reconstruction.npz`): its
/// gridsize when it records one.
pub fn reconstruction(output: &Path) -> Result<Vec<Fact>> {
    let path = reconstruction_path(output);
    Ok(match read_gridsize(&path)? {
        Some(g) => vec![gridsize_fact(
            Value::Int(g),
            "reconstruction.gridsize",
            "the reconstruction's recorded gridsize",
        )],
        None => Vec::new(),
    })
}

/// A report directory: each condition's gridsize from its rows of `summary.csv`.
pub fn report(dir: &Path) -> Result<Vec<Fact>> {
    Ok(crate::report::read_summary_gridsizes(dir)?
        .into_iter()
        .map(|(condition, g)| Fact {
            param: GRIDSIZE.into(),
            label: format!("{GRIDSIZE}.{condition}"),
            condition: Some(condition),
            value: Value::Int(g),
            source: "its row in summary.csv".into(),
        })
        .collect())
}

/// The facts of a target kind's output (none for kinds without a reading).
pub fn read(kind: &str, output: &Path) -> Result<Vec<Fact>> {
    match kind {
        "train_data" | "test_data" => dataset(output),
        "model" => model(output),
        "metrics" => metrics(output),
        "report" => report(output),
        crate::shape::RECONSTRUCTION => reconstruction(output),
        _ => Ok(Vec::new()),
    }
}
