//! The `evaluate` recipe: one condition's network (and the ePIE baseline) against ground truth,
//! written to the directory `job.output` (reference section 8, `science::evaluation`).
//!
//! Inputs: `model` (model directory), `test_data` (dataset `.npz`). Params: `gridsize` (checked,
//! never used as a source), `seed` (baseline start), `baseline_iterations`, `stitch_crop`.
//! The gridsize actually used is read from the model's prediction and the dataset, and is read
//! back from the `metrics.json` just written.

use crate::error::{Error, Result};
use std::path::Path;
use studymake_engine::job::JobSpec;
use studymake_engine::params::{Params, Value};
use studymake_pinn::predict;
use studymake_science::dataset::Dataset;
use studymake_science::evaluation::{evaluate_condition, read_metrics_json, ConditionSettings};

/// Build `job.output`; returns the parameters actually used.
pub fn evaluate(job: &JobSpec) -> Result<Params> {
    let model_dir = job.input("model")?;
    let test_path = job.input("test_data")?;
    let declared = job.param_i64("gridsize")?;
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
    let pred = predict(model_dir, &data)?;
    let t1 = std::time::Instant::now();
    let ev = evaluate_condition(&pred, &data, &settings)
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
    // Read back what was written.
    let facts = inspect(out)?;
    let model_g = facts.get("model.gridsize").and_then(Value::as_i64);
    let data_g = facts.get("dataset.gridsize").and_then(Value::as_i64);
    let gridsize = match (model_g, data_g) {
        (Some(m), Some(d)) if m == d => m,
        _ => {
            return Err(Error::Build {
                target: job.target.clone(),
                message: format!(
                "metrics.json records model gridsize {model_g:?} and dataset gridsize {data_g:?}"
            ),
            })
        }
    };
    let mut used = Params::new();
    used.insert("gridsize".into(), Value::Int(gridsize));
    used.insert(
        "seed".into(),
        facts.get("seed").cloned().unwrap_or(Value::Int(seed)),
    );
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

/// Structural facts read back from an evaluation directory's `metrics.json`:
/// `model.gridsize`, `dataset.gridsize` and `seed`.
pub fn inspect(output: &Path) -> Result<Params> {
    let j = read_metrics_json(output)?;
    let p = output.join("metrics.json");
    let int = |v: &serde_json::Value, what: &str| {
        v.as_i64()
            .ok_or_else(|| Error::data(&p, format!("`{what}` is missing or not an integer")))
    };
    let mut out = Params::new();
    out.insert(
        "model.gridsize".into(),
        Value::Int(int(&j["model"]["gridsize"], "model.gridsize")?),
    );
    out.insert(
        "dataset.gridsize".into(),
        Value::Int(int(&j["dataset"]["gridsize"], "dataset.gridsize")?),
    );
    out.insert("seed".into(), Value::Int(int(&j["seed"], "seed")?));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use studymake_science::testdata::perfect_case;

    #[test]
    fn inspect_reads_the_gridsizes_back() {
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
        )
        .unwrap();
        let d = tempfile::tempdir().unwrap();
        ev.write(d.path()).unwrap();
        let p = inspect(d.path()).unwrap();
        assert_eq!(p["model.gridsize"], Value::Int(1));
        assert_eq!(p["dataset.gridsize"], Value::Int(1));
        assert_eq!(p["seed"], Value::Int(3));
        let e = inspect(&d.path().join("nowhere")).unwrap_err().to_string();
        assert!(e.contains("metrics.json"), "{e}");
    }
}
