//! The evaluation of a reconstruction against ground truth (reference section 8): patch
//! geometry and stitching ([`stitch`]), registration ([`registration`]), the metrics
//! ([`metrics`]), the primary scores on the covered region ([`primary`]), the ePIE baseline ([`baseline`]), the per-condition pipeline and its outputs
//! ([`condition`], re-exported here), `metrics.json` typed ([`metrics_file`]), `compare` for any
//! two images ([`compare`]), the figures ([`figure`]), the twin-image
//! check ([`twin`]), an external model's `prediction.npz` ([`prediction_file`]) and another
//! engine's `reconstruction.npz` ([`reconstruction_file`]).

pub mod baseline;
pub mod compare;
pub mod condition;
pub mod figure;
pub mod metrics;
pub mod metrics_file;
pub mod prediction_file;
pub mod primary;
pub mod reconstruction_file;
pub mod registration;
pub mod stitch;
pub mod twin;

pub use condition::*;
