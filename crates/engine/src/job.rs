//! The job spec a worker process is given and the report it returns: the whole contract between
//! the engine and a recipe.
//!
//! A worker (the studymake binary re-executed as `studymake __worker SPEC.json`, locally or in a
//! Slurm job) reads a [`JobSpec`], builds exactly one target into `output` (a file or a directory
//! that does not exist yet), and writes a [`WorkerReport`] to `report` listing the parameters it
//! *actually used*, read back from what it built where possible (the catalog's facts: what an
//! artifact shows of itself). The engine compares those with the declared parameters before it
//! publishes anything. Nothing else passes between them: no environment, no global state.

use crate::error::{Error, Result};
use crate::params::{Params, Value};
use crate::recipe::Recipe;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Version of the job-spec format; bumped on any incompatible change (2: the recipe is written
/// as in manifests).
pub const JOB_SCHEMA: u32 = 2;

/// Everything a worker needs to build one target.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobSpec {
    pub schema: u32,
    /// Target name, e.g. `l2_a/fit`.
    pub target: String,
    /// Target kind, e.g. `fit`, `prepared`, `source`.
    pub kind: String,
    /// What builds it; a command's argv has its placeholders substituted.
    pub recipe: Recipe,
    /// Every parameter the recipe may read, fully resolved (profile, condition, defaults).
    pub params: Params,
    /// Input role -> absolute path of the (published) input file or directory.
    pub inputs: BTreeMap<String, PathBuf>,
    /// Where to write the output: a file or directory path that does not exist yet.
    pub output: PathBuf,
    /// Where to write the [`WorkerReport`] as JSON.
    pub report: PathBuf,
    /// Threads the recipe may use. Outputs must not depend on it.
    pub threads: usize,
}

/// What a worker says it did.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct WorkerReport {
    /// The parameters the worker actually used, as read back from its output where possible.
    #[serde(default)]
    pub params: Params,
}

impl JobSpec {
    /// A declared parameter, or an error naming the target and the parameter.
    pub fn param(&self, name: &str) -> Result<&Value> {
        self.params.get(name).ok_or_else(|| Error::Build {
            target: self.target.clone(),
            message: format!("the job spec has no parameter `{name}`"),
        })
    }

    /// A parameter that must be an integer.
    pub fn param_i64(&self, name: &str) -> Result<i64> {
        let v = self.param(name)?;
        v.as_i64()
            .ok_or_else(|| self.wrong_type(name, "an integer", v))
    }

    /// A parameter that must be a non-negative integer.
    pub fn param_usize(&self, name: &str) -> Result<usize> {
        let v = self.param_i64(name)?;
        usize::try_from(v).map_err(|_| Error::Build {
            target: self.target.clone(),
            message: format!("parameter `{name}` must be non-negative, got {v}"),
        })
    }

    /// A parameter that must be a number (integers widen).
    pub fn param_f64(&self, name: &str) -> Result<f64> {
        let v = self.param(name)?;
        v.as_f64()
            .ok_or_else(|| self.wrong_type(name, "a number", v))
    }

    /// A parameter that must be a string.
    pub fn param_str(&self, name: &str) -> Result<&str> {
        let v = self.param(name)?;
        v.as_str()
            .ok_or_else(|| self.wrong_type(name, "a string", v))
    }

    /// A parameter that must be a boolean.
    pub fn param_bool(&self, name: &str) -> Result<bool> {
        let v = self.param(name)?;
        v.as_bool()
            .ok_or_else(|| self.wrong_type(name, "a boolean", v))
    }

    /// The path of an input by role.
    pub fn input(&self, role: &str) -> Result<&Path> {
        self.inputs
            .get(role)
            .map(PathBuf::as_path)
            .ok_or_else(|| Error::Build {
                target: self.target.clone(),
                message: format!("the job spec has no input `{role}`"),
            })
    }

    fn wrong_type(&self, name: &str, want: &str, got: &Value) -> Error {
        Error::Build {
            target: self.target.clone(),
            message: format!(
                "parameter `{name}` must be {want}, got {} ({got})",
                got.type_name()
            ),
        }
    }

    /// Read a spec from a JSON file.
    pub fn load(path: &Path) -> Result<JobSpec> {
        let text = fs_err::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let spec: JobSpec = serde_json::from_str(&text)
            .map_err(|e| Error::data(path, format!("not a studymake job spec: {e}")))?;
        if spec.schema != JOB_SCHEMA {
            return Err(Error::data(
                path,
                format!(
                    "job spec schema {} but this studymake speaks {JOB_SCHEMA}",
                    spec.schema
                ),
            ));
        }
        Ok(spec)
    }
}

impl WorkerReport {
    /// Write the report as JSON (the worker side).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("a report always serialises");
        fs_err::write(path, text).map_err(|e| Error::io(path, e))
    }

    /// Read a report (the engine side). A missing file is `Ok(None)`.
    pub fn load(path: &Path) -> Result<Option<WorkerReport>> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| Error::data(path, format!("not a worker report: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }
}
