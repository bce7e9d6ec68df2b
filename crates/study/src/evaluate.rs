//! The `evaluate` recipe: one condition's network (and the ePIE baseline) against ground truth,
//! written to the directory `job.output` (reference section 8, `science::evaluation`).
//!
//! Inputs: `model` (model directory: the native network's weights, or an external model's
//! `prediction.npz` of the test data's groups), `test_data` (dataset `.npz`), and any number of
//! `reconstruction.NAME` (another engine's `reconstruction.npz`, or a directory holding one: a
//! declared target of kind `reconstruction`), each scored as the ePIE baseline is under the name
//! `NAME`. Params: `gridsize` (checked, never used as a source), `seed` (baseline start),
//! `baseline_iterations`, `stitch_crop`.
//! The gridsize actually used is read from the model's prediction and the dataset, and is read
//! back from the `metrics.json` just written ([`crate::facts::metrics`]).

use crate::error::{Error, Result};
use std::path::Path;
use studymake_engine::job::JobSpec;
use studymake_engine::params::{Params, Value};
use studymake_pinn::artifact::WEIGHTS_FILE;
use studymake_pinn::predict;
use studymake_science::evaluation::prediction_file::{read_prediction, PREDICTION_FILE};
use studymake_science::evaluation::reconstruction_file::{
    read_reconstruction, reconstruction_path,
};
use studymake_science::evaluation::{evaluate_condition, ConditionSettings, Prediction};
use studymake_science::io::dataset::Dataset;

/// The input roles of other engines' reconstructions: `reconstruction.NAME`.
pub const RECONSTRUCTION_ROLE: &str = "reconstruction.";

/// The model's prediction of every group of `data`: the native network's, run on them, when the
/// model directory holds its weights; otherwise an external model's `prediction.npz`
/// ([`read_prediction`]), scored the same way.
fn prediction(model_dir: &Path, data: &Dataset) -> Result<Prediction> {
    let external = model_dir.join(PREDICTION_FILE);
    if model_dir.join(WEIGHTS_FILE).exists() || !external.exists() {
        return Ok(predict(model_dir, data)?);
    }
    Ok(read_prediction(&external, data)?)
}

/// Build `job.output`; returns the parameters actually used.
pub fn evaluate(job: &JobSpec) -> Result<Params> {
    let model_dir = job.input("model")?;
    let test_path = job.input("test_data")?;
    let declared = crate::facts::declared(job)?.as_i64();
    let seed = job.param_i64("seed")?;
    let seed_u = u64::try_from(seed).map_err(|_| Error::Build {
        target: job.target.clone(),
        message: format!("parameter `seed` must be non-negative, got {seed}"),
    })?;
    let settings = ConditionSettings {
        declared_gridsize: declared,
        seed: seed_u,
        baseline_iterations: job.param_usize("baseline_iterations")?,
        stitch_crop: job.param_usize("stitch_crop")?,
    };
    let t0 = std::time::Instant::now();
    let data = Dataset::load(test_path)?;
    let pred = prediction(model_dir, &data)?;
    let mut others = Vec::new();
    for (role, path) in &job.inputs {
        if let Some(name) = role.strip_prefix(RECONSTRUCTION_ROLE) {
            let object = read_reconstruction(&reconstruction_path(path), data.object.dim())?;
            others.push((name.to_string(), object));
        }
    }
    let t1 = std::time::Instant::now();
    let ev = evaluate_condition(&pred, &data, &settings, &others)
        .map_err(|e| Error::in_target(&job.target, e))?;
    let out = &job.output;
    fs_err::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    ev.write(out)?;
    tracing::info!(
        "{}: prediction {:.2} s, evaluation {:.2} s",
        job.target,
        (t1 - t0).as_secs_f64(),
        t1.elapsed().as_secs_f64()
    );
    // Read back what was written: the gridsize (model and dataset agree) and the seed.
    let mut used: Params = crate::facts::metrics(out)?
        .into_iter()
        .map(|f| (f.param, f.value))
        .collect();
    used.insert(
        "baseline_iterations".into(),
        Value::Int(settings.baseline_iterations as i64),
    );
    used.insert(
        "stitch_crop".into(),
        Value::Int(settings.stitch_crop as i64),
    );
    Ok(used)
}

#[cfg(test)]
mod tests {
    use super::*;
    use studymake_science::testdata::perfect_case;

    #[test]
    fn the_evaluation_shows_the_gridsize_it_evaluated() {
        let (data, pred) = perfect_case(false);
        let ev = evaluate_condition(
            &pred,
            &data,
            &ConditionSettings {
                declared_gridsize: 1,
                seed: 3,
                baseline_iterations: 2,
                stitch_crop: 8,
            },
            &[],
        )
        .unwrap();
        let d = tempfile::tempdir().unwrap();
        ev.write(d.path()).unwrap();
        let f = crate::facts::metrics(d.path()).unwrap();
        assert_eq!(
            (f[0].param.as_str(), &f[0].value),
            ("gridsize", &Value::Int(1))
        );
        assert_eq!((f[1].param.as_str(), &f[1].value), ("seed", &Value::Int(3)));
        let e = crate::facts::metrics(&d.path().join("nowhere"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("metrics.json"), "{e}");
    }
}
