//! The probe recipes: `default_probe`, `aberrated_probe`, `npz_probe` and `hybrid_probe` (glue
//! from a job spec to [`studymake_science::probe`]). Each writes a complex64 `N x N` `.npy` and
//! returns the parameters it used, with `N` read back from the file it wrote.

use crate::error::{Error, Result};
use ndarray::Array2;
use num_complex::Complex32;
use studymake_engine::job::JobSpec;
use studymake_engine::params::{Params, Value};
use studymake_science::io::npy;
use studymake_science::physics::probe::{self, AberrationParams};

/// Save the probe and read its side back from the written header.
fn save_and_read_n(job: &JobSpec, p: &Array2<Complex32>) -> Result<i64> {
    probe::save_probe(&job.output, p)?;
    let h = npy::npy_header(&job.output)?;
    if h.descr != "<c8" || h.shape.len() != 2 || h.shape[0] != h.shape[1] {
        return Err(Error::data(
            &job.output,
            format!("wrote a probe of dtype {} and shape {:?}", h.descr, h.shape),
        ));
    }
    Ok(h.shape[0] as i64)
}

fn positive_n(job: &JobSpec) -> Result<usize> {
    let n = job.param_usize("N")?;
    if n == 0 {
        return Err(Error::Build {
            target: job.target.clone(),
            message: "parameter `N` must be positive".into(),
        });
    }
    Ok(n)
}

/// The idealized probe (reference section 1). Params: `N`. Returns `N` read from the file.
pub fn default_probe(job: &JobSpec) -> Result<Params> {
    let n = positive_n(job)?;
    let p = probe::default_probe(n);
    let mut out = Params::new();
    out.insert("N".into(), Value::Int(save_and_read_n(job, &p)?));
    Ok(out)
}

/// The aberrated probe (formula in [`studymake_science::probe`]). Params: `N`, `aperture`,
/// `defocus`, `astigmatism`, `coma`.
pub fn aberrated_probe(job: &JobSpec) -> Result<Params> {
    let prm = AberrationParams {
        n: positive_n(job)?,
        aperture: job.param_f64("aperture")?,
        defocus: job.param_f64("defocus")?,
        astigmatism: job.param_f64("astigmatism")?,
        coma: job.param_f64("coma")?,
    };
    let p = probe::aberrated_probe(&prm).map_err(|e| Error::in_target(&job.target, e))?;
    let mut out = Params::new();
    out.insert("N".into(), Value::Int(save_and_read_n(job, &p)?));
    out.insert("aperture".into(), Value::Float(prm.aperture));
    out.insert("defocus".into(), Value::Float(prm.defocus));
    out.insert("astigmatism".into(), Value::Float(prm.astigmatism));
    out.insert("coma".into(), Value::Float(prm.coma));
    Ok(out)
}

/// A measured probe: `probeGuess` of the `file` input (.npz) or its array (.npy), as complex64.
pub fn npz_probe(job: &JobSpec) -> Result<Params> {
    let p = probe::load_probe(job.input("file")?)?;
    save_and_read_n(job, &p)?;
    Ok(Params::new())
}

/// The hybrid probe `|amplitude| exp(i arg(phase))` of the `amplitude` and `phase` inputs
/// (each a `.npy` or an `.npz` with `probeGuess`).
pub fn hybrid_probe(job: &JobSpec) -> Result<Params> {
    let (ap, pp) = (job.input("amplitude")?, job.input("phase")?);
    let a = probe::load_probe(ap)?;
    let p = probe::load_probe(pp)?;
    let h = probe::hybrid(&a, &p).map_err(|e| Error::Build {
        target: job.target.clone(),
        message: format!(
            "{e} (amplitude source {}, phase source {})",
            ap.display(),
            pp.display()
        ),
    })?;
    save_and_read_n(job, &h)?;
    Ok(Params::new())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use studymake_engine::job::JOB_SCHEMA;
    use studymake_engine::recipe::Recipe;

    /// A job spec for tests.
    pub(crate) fn job(
        name: &str,
        params: &[(&str, Value)],
        inputs: &[(&str, &Path)],
        output: PathBuf,
    ) -> JobSpec {
        JobSpec {
            schema: JOB_SCHEMA,
            target: format!("test/{name}"),
            kind: name.into(),
            recipe: Recipe::Builtin {
                name: name.into(),
                version: 1,
            },
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            inputs: inputs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_path_buf()))
                .collect::<BTreeMap<_, _>>(),
            report: output.with_extension("report.json"),
            output,
            threads: 1,
        }
    }

    #[test]
    fn probe_recipes_write_complex64_and_report_n() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let j = job(
            "default_probe",
            &[("N", Value::Int(64))],
            &[],
            d.join("ideal.npy"),
        );
        let got = default_probe(&j).unwrap();
        assert_eq!(got.get("N"), Some(&Value::Int(64)));
        let ideal = probe::load_probe(&d.join("ideal.npy")).unwrap();
        assert_eq!(ideal, probe::default_probe(64));

        let params = [
            ("N", Value::Int(64)),
            ("aperture", Value::Float(11.0)),
            ("defocus", Value::Float(2.0)),
            ("astigmatism", Value::Float(0.5)),
            ("coma", Value::Float(0.3)),
        ];
        let j = job("aberrated_probe", &params, &[], d.join("ab.npy"));
        let got = aberrated_probe(&j).unwrap();
        assert_eq!(got.get("N"), Some(&Value::Int(64)));
        assert_eq!(got.get("coma"), Some(&Value::Float(0.3)));

        let j = job(
            "hybrid_probe",
            &[],
            &[
                ("amplitude", &d.join("ideal.npy")),
                ("phase", &d.join("ab.npy")),
            ],
            d.join("hyb.npy"),
        );
        hybrid_probe(&j).unwrap();
        let h = probe::load_probe(&d.join("hyb.npy")).unwrap();
        assert!((h[[31, 31]].norm() - ideal[[31, 31]].norm()).abs() < 1e-6);

        // npz_probe from an .npz with probeGuess.
        let npz = d.join("exp.npz");
        let mut w = npy::NpzOut::create(&npz, false).unwrap();
        w.add("probeGuess", &h).unwrap();
        w.finish().unwrap();
        let j = job("npz_probe", &[], &[("file", &npz)], d.join("exp.npy"));
        npz_probe(&j).unwrap();
        assert_eq!(probe::load_probe(&d.join("exp.npy")).unwrap(), h);

        // Shape mismatch names both shapes and both files.
        let j = job(
            "default_probe",
            &[("N", Value::Int(32))],
            &[],
            d.join("small.npy"),
        );
        default_probe(&j).unwrap();
        let j = job(
            "hybrid_probe",
            &[],
            &[
                ("amplitude", &d.join("ideal.npy")),
                ("phase", &d.join("small.npy")),
            ],
            d.join("bad.npy"),
        );
        let e = hybrid_probe(&j).unwrap_err().to_string();
        assert!(
            e.contains("[64, 64]") && e.contains("[32, 32]") && e.contains("small.npy"),
            "{e}"
        );
    }
}
