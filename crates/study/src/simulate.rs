//! The `simulate` recipe: glue from a job spec to [`studymake_science::simulate`], and `inspect` of a
//! dataset file.
//!
//! Inputs: `probe` (a complex `.npy`, or an `.npz` with `probeGuess`) and `object` (an `.npz`
//! with `objectGuess`). Params: `gridsize`, `seed`, `n_images`, `nphotons`. Every position is
//! simulated independently; gridsize only decides `group_index` (variant B of reference
//! section 6 with every pattern as a seed), so the gridsize-1 and gridsize-2 datasets of one probe
//! and seed hold identical patterns.

use crate::error::{Error, Result};
use studymake_engine::job::JobSpec;
use studymake_engine::params::Params;
use studymake_science::physics::simulate::SimParams;
use studymake_science::physics::{object, probe, simulate as sim};

/// Build `job.output`; returns `gridsize` (from the written group width; the file's own
/// scalar is checked against it when it is saved), `seed`, `n_images` (patterns written) and
/// `nphotons`, all read back ([`crate::facts::dataset`]).
pub fn simulate(job: &JobSpec) -> Result<Params> {
    let gridsize = crate::facts::declared(job)?.get();
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
    // What was written, read back: the gridsize from the group width, the scalars.
    Ok(crate::facts::dataset(&job.output)?
        .into_iter()
        .map(|f| (f.param, f.value))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::tests::job;
    use studymake_engine::params::Value;
    use studymake_science::io::dataset::Dataset;

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
            let facts = crate::facts::dataset(&out).unwrap();
            assert_eq!(facts[0].label, "group_index.gridsize");
            assert_eq!(facts[0].value, Value::Int(gs));
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
}
