//! The `lines_object` recipe: glue from a job spec to [`studymake_science::object`]. Writes an
//! `.npz` with `objectGuess` (complex64) and a 0-d `seed`; returns `object_size` and `seed` read
//! back from that file.

use crate::error::{Error, Result};
use studymake_engine::job::JobSpec;
use studymake_engine::params::{Params, Value};
use studymake_science::io::npy::NpzFile;
use studymake_science::physics::object;

/// A parameter that must be a non-negative integer seed.
pub(crate) fn seed_param(job: &JobSpec) -> Result<u64> {
    let s = job.param_i64("seed")?;
    u64::try_from(s).map_err(|_| Error::Build {
        target: job.target.clone(),
        message: format!("parameter `seed` must be non-negative, got {s}"),
    })
}

/// Build the synthetic lines object. Params: `object_size`, `lines`, `phase_scale`, `seed`.
pub fn lines_object(job: &JobSpec) -> Result<Params> {
    let size = job.param_usize("object_size")?;
    let lines = job.param_usize("lines")?;
    let phase_scale = job.param_f64("phase_scale")?;
    let seed = seed_param(job)?;
    let o = object::lines_object(size, lines, phase_scale, seed)
        .map_err(|e| Error::in_target(&job.target, e))?;
    object::save_object(&job.output, &o, seed as i64)?;
    let mut f = NpzFile::open(&job.output)?;
    let h = f.header("objectGuess")?;
    if h.shape.len() != 2 || h.shape[0] != h.shape[1] {
        return Err(Error::data(
            &job.output,
            format!("wrote objectGuess of shape {:?}", h.shape),
        ));
    }
    let mut out = Params::new();
    out.insert("object_size".into(), Value::Int(h.shape[0] as i64));
    out.insert("lines".into(), Value::Int(lines as i64));
    out.insert("phase_scale".into(), Value::Float(phase_scale));
    out.insert("seed".into(), Value::Int(f.scalar::<i64>("seed")?));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::tests::job;

    #[test]
    fn lines_object_recipe_reports_what_it_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let params = [
            ("object_size", Value::Int(48)),
            ("lines", Value::Int(30)),
            ("phase_scale", Value::Float(0.1)),
            ("seed", Value::Int(7)),
        ];
        let j = job("lines_object", &params, &[], dir.path().join("o.npz"));
        let got = lines_object(&j).unwrap();
        assert_eq!(got.get("object_size"), Some(&Value::Int(48)));
        assert_eq!(got.get("seed"), Some(&Value::Int(7)));
        let o = object::load_object(&dir.path().join("o.npz")).unwrap();
        assert_eq!(o, object::lines_object(48, 30, 0.1, 7).unwrap());
        let mut bad = params.to_vec();
        bad[3] = ("seed", Value::Int(-1));
        let j = job("lines_object", &bad, &[], dir.path().join("p.npz"));
        assert!(lines_object(&j).unwrap_err().to_string().contains("seed"));
    }
}
