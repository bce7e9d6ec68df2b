//! The `probe` recipe(s): glue from a job spec to the science. Not implemented yet.

use crate::error::Result;
use crate::job::JobSpec;
use crate::params::Params;

/// Build `job.output`; returns the parameters actually used.
pub fn default_probe(job: &JobSpec) -> Result<Params> {
    Err(super::not_built_yet(job))
}

/// Build `job.output`; returns the parameters actually used.
pub fn aberrated_probe(job: &JobSpec) -> Result<Params> {
    Err(super::not_built_yet(job))
}

/// Build `job.output`; returns the parameters actually used.
pub fn npz_probe(job: &JobSpec) -> Result<Params> {
    Err(super::not_built_yet(job))
}

/// Build `job.output`; returns the parameters actually used.
pub fn hybrid_probe(job: &JobSpec) -> Result<Params> {
    Err(super::not_built_yet(job))
}
