//! The science of the ptychography study: numeric libraries for probes, objects, simulation and
//! evaluation. Each is usable on its own (no engine, no files unless asked) and deterministic
//! for its seed; none knows about targets or builds. Four parts:
//!
//! * [`io`]: npy/npz files read with every size checked before allocating and written with
//!   deterministic bytes, and the dataset's data contract;
//! * [`numerics`]: 2-D FFTs, scipy-compatible Gaussian filtering, the Poisson sampler and the
//!   vector code it runs on;
//! * [`physics`]: probes, the lines object, the simulation of a dataset and the grouping of its
//!   patterns ([`physics::grouping::Gridsize`], the study's structural fact);
//! * [`evaluation`]: stitching, registration, metrics, the ePIE baseline, the per-condition
//!   evaluation, its `metrics.json`, `compare` and the figures.
//!
//! One error type, [`Error`]: a file that is not what it should be, or numbers a routine cannot
//! accept.

pub mod error;
pub mod evaluation;
pub mod io;
pub mod numerics;
pub mod physics;
#[cfg(any(test, feature = "testdata"))]
pub mod testdata;

pub use error::{Error, Result};
