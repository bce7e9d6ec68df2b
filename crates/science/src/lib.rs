//! The science: numeric libraries for probes, objects, simulation and evaluation. Each is usable
//! on its own (no engine, no files unless asked) and deterministic for its seed.

pub mod baseline;
pub mod compare;
pub mod dataset;
pub mod error;
pub mod evaluation;
pub mod fft;
pub mod figure;
pub mod gaussian;
pub mod grouping;
pub mod metrics;
pub mod metrics_file;
pub mod npy;
pub mod object;
pub mod poisson;
pub mod probe;
pub mod registration;
pub mod simd;
pub mod simulate;
pub mod stitch;
#[cfg(any(test, feature = "testdata"))]
pub mod testdata;
pub use error::{Error, Result};
