//! The `object` recipe(s): glue from a job spec to the science. Not implemented yet.

use crate::error::Result;
use crate::job::JobSpec;
use crate::params::Params;

/// Build `job.output`; returns the parameters actually used.
pub fn lines_object(job: &JobSpec) -> Result<Params> {
    Err(super::not_built_yet(job))
}
