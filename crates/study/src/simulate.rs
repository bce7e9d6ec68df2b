//! The `simulate` recipe: glue from a job spec to [`studymake_science::simulate`], and `inspect` of a
//! dataset file.
//!
//! Inputs: `probe` (a complex `.npy`, or an `.npz` with `probeGuess`) and `object` (an `.npz`
//! with `objectGuess`). Params: `gridsize`, `seed`, `n_images`, `nphotons`. Every position is
//! simulated independently; gridsize only decides `group_index` (variant B of reference
//! section 6 with every pattern as a seed), so the gridsize-1 and gridsize-2 datasets of one probe
//! and seed hold identical patterns.

use crate::error::{Error, Result};
use std::path::Path;
use studymake_engine::job::JobSpec;
use studymake_engine::params::{Params, Value};
use studymake_science::dataset::DatasetSummary;
use studymake_science::simulate::SimParams;
use studymake_science::{object, probe, simulate as sim};

/// Build `job.output`; returns `gridsize` (sqrt of the written group width, checked against the
/// written scalar), `seed`, `n_images` (patterns written) and `nphotons`, all read back.
pub fn simulate(job: &JobSpec) -> Result<Params> {
    let gridsize = job.param_usize("gridsize")?;
    let n_images = job.param_usize("n_images")?;
    let nphotons = job.param_f64("nphotons")?;
    let seed = super::object::seed_param(job)?;
    let (pp, op) = (job.input("probe")?, job.input("object")?);
    let pr = probe::load_probe(pp)?;
    let obj = object::load_object(op)?;
    let prm = SimParams::new(n_images, nphotons, seed, gridsize);
    // At most `job.threads` threads; the result does not depend on the count.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(job.threads)
        .build()
        .map_err(|e| Error::Build {
            target: job.target.clone(),
            message: format!("cannot start {} worker threads: {e}", job.threads),
        })?;
    let d = pool
        .install(|| sim::simulate(&obj, &pr, &prm))
        .map_err(|e| match e {
            studymake_science::Error::Invalid(m) => Error::Build {
                target: job.target.clone(),
                message: format!("{m} (probe {}, object {})", pp.display(), op.display()),
            },
            other => Error::Science(other),
        })?;
    d.save(&job.output)?;
    drop(d);
    let s = DatasetSummary::read(&job.output)?;
    let g = group_gridsize(s.group_shape.1);
    if g.as_i64() != Some(s.gridsize) {
        return Err(Error::data(
            &job.output,
            format!(
                "wrote gridsize {} but group_index has width {}",
                s.gridsize, s.group_shape.1
            ),
        ));
    }
    let mut out = Params::new();
    out.insert("gridsize".into(), g);
    out.insert("seed".into(), Value::Int(s.seed));
    out.insert("n_images".into(), Value::Int(s.n_images as i64));
    out.insert("nphotons".into(), Value::Float(s.nphotons));
    Ok(out)
}

/// The gridsize implied by a group width: `Int(sqrt(width))` for a perfect square, otherwise
/// `Float(sqrt(width))`, a non-integer that cannot equal any declared gridsize.
fn group_gridsize(width: usize) -> Value {
    let r = (width as f64).sqrt().round() as usize;
    if r * r == width && r > 0 {
        Value::Int(r as i64)
    } else {
        Value::Float((width as f64).sqrt())
    }
}

/// Structural facts of a dataset file (see `Catalog::inspect`), from headers and scalars only:
/// `gridsize` (the scalar), `group_index.gridsize` (from the group width), `seed`, `n_images`
/// (patterns in the file) and `nphotons`.
pub fn inspect(output: &Path) -> Result<Params> {
    let s = DatasetSummary::read(output)?;
    let mut out = Params::new();
    out.insert("gridsize".into(), Value::Int(s.gridsize));
    out.insert(
        "group_index.gridsize".into(),
        group_gridsize(s.group_shape.1),
    );
    out.insert("seed".into(), Value::Int(s.seed));
    out.insert("n_images".into(), Value::Int(s.n_images as i64));
    out.insert("nphotons".into(), Value::Float(s.nphotons));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::tests::job;
    use studymake_science::dataset::Dataset;

    #[test]
    fn simulate_recipe_reports_what_it_wrote_and_inspect_agrees() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let pj = job(
            "default_probe",
            &[("N", Value::Int(16))],
            &[],
            d.join("p.npy"),
        );
        crate::probe::default_probe(&pj).unwrap();
        let oj = job(
            "lines_object",
            &[
                ("object_size", Value::Int(48)),
                ("lines", Value::Int(40)),
                ("phase_scale", Value::Float(0.1)),
                ("seed", Value::Int(1)),
            ],
            &[],
            d.join("o.npz"),
        );
        crate::object::lines_object(&oj).unwrap();
        let mut files = Vec::new();
        for gs in [1i64, 2] {
            let out = d.join(format!("gs{gs}.npz"));
            let j = job(
                "simulate",
                &[
                    ("gridsize", Value::Int(gs)),
                    ("seed", Value::Int(42)),
                    ("n_images", Value::Int(30)),
                    ("nphotons", Value::Float(1e8)),
                ],
                &[("probe", &d.join("p.npy")), ("object", &d.join("o.npz"))],
                out.clone(),
            );
            let got = simulate(&j).unwrap();
            assert_eq!(got.get("gridsize"), Some(&Value::Int(gs)));
            assert_eq!(got.get("n_images"), Some(&Value::Int(30)));
            assert_eq!(got.get("seed"), Some(&Value::Int(42)));
            assert_eq!(got.get("nphotons"), Some(&Value::Float(1e8)));
            let ins = inspect(&out).unwrap();
            assert_eq!(ins.get("gridsize"), Some(&Value::Int(gs)));
            assert_eq!(ins.get("group_index.gridsize"), Some(&Value::Int(gs)));
            files.push(Dataset::load(&out).unwrap());
        }
        assert_eq!(files[0].diffraction, files[1].diffraction);
        assert_ne!(files[0].group_index, files[1].group_index);

        // A probe larger than the object names both files.
        let big = job(
            "default_probe",
            &[("N", Value::Int(64))],
            &[],
            d.join("big.npy"),
        );
        crate::probe::default_probe(&big).unwrap();
        let j = job(
            "simulate",
            &[
                ("gridsize", Value::Int(1)),
                ("seed", Value::Int(1)),
                ("n_images", Value::Int(3)),
                ("nphotons", Value::Float(1e8)),
            ],
            &[("probe", &d.join("big.npy")), ("object", &d.join("o.npz"))],
            d.join("never.npz"),
        );
        let e = simulate(&j).unwrap_err().to_string();
        assert!(
            e.contains("big.npy") && e.contains("o.npz") && e.contains("smaller"),
            "{e}"
        );
    }

    #[test]
    fn non_square_group_width_cannot_equal_a_gridsize() {
        assert_eq!(group_gridsize(4), Value::Int(2));
        assert_eq!(group_gridsize(1), Value::Int(1));
        for w in [2usize, 3, 5, 8] {
            let v = group_gridsize(w);
            assert!((1..10).all(|g| !v.same_as(&Value::Int(g))), "{w}");
        }
    }
}
