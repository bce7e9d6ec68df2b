//! The `simulate` recipe(s): glue from a job spec to the science. Not implemented yet.

use crate::error::Result;
use crate::job::JobSpec;
use crate::params::Params;
use std::path::Path;

/// Build `job.output`; returns the parameters actually used.
pub fn simulate(job: &JobSpec) -> Result<Params> {
    Err(super::not_built_yet(job))
}

/// Structural facts read back from a built artifact (see `Catalog::inspect`).
pub fn inspect(_output: &Path) -> Result<Params> {
    Ok(Params::new())
}
