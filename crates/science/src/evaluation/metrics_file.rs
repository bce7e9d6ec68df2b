//! `metrics.json`, typed: what the evaluation writes for one condition and the report reads
//! back, in one struct both use.
//!
//! The file is deterministic: its keys are written in sorted order (the fields below are
//! declared in that order: upper case before lower case, as bytes sort), it holds no timings,
//! and a number JSON cannot hold (an infinite PSNR) is written as a string (`"inf"`).

use crate::error::{Error, Result};
use crate::evaluation::metrics::{ChannelMetrics, ImageMetrics};
use crate::evaluation::primary::{PrimaryChannel, PrimaryMetrics};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::path::Path;

/// A metric value: a JSON number, or for a value JSON has no number for (an infinite PSNR, a
/// NaN) a string of its six-decimal form; read back from either.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Metric(pub f64);

impl Serialize for Metric {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if self.0.is_finite() {
            s.serialize_f64(self.0)
        } else {
            s.serialize_str(&crate::evaluation::f6(self.0))
        }
    }
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
            Null(()),
        }
        Ok(Metric(match Raw::deserialize(d)? {
            Raw::Number(v) => v,
            Raw::Text(s) => s.parse().unwrap_or(f64::NAN),
            Raw::Null(()) => f64::NAN,
        }))
    }
}

/// A number written as JSON writes a float (NaN as `null`), read back with `null` as NaN.
fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// The metrics of one channel (amplitude or phase).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelRecord {
    pub frc1over7: Metric,
    pub frc50: Metric,
    pub mae: Metric,
    pub ms_ssim: Metric,
    pub mse: Metric,
    /// The primary Pearson correlation (on the covered region), where one was computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pearson: Option<Metric>,
    pub psnr_255: Metric,
    pub psnr_range: Metric,
    pub ssim: Metric,
}

impl From<&ChannelMetrics> for ChannelRecord {
    fn from(c: &ChannelMetrics) -> Self {
        ChannelRecord {
            frc1over7: Metric(c.frc1over7),
            frc50: Metric(c.frc50),
            mae: Metric(c.mae),
            ms_ssim: Metric(c.ms_ssim),
            mse: Metric(c.mse),
            pearson: None,
            psnr_255: Metric(c.psnr_255),
            psnr_range: Metric(c.psnr_range),
            ssim: Metric(c.ssim),
        }
    }
}

/// The metrics of one reconstruction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub amplitude: ChannelRecord,
    pub phase: ChannelRecord,
}

impl From<&ImageMetrics> for ImageRecord {
    fn from(m: &ImageMetrics) -> Self {
        ImageRecord {
            amplitude: (&m.amplitude).into(),
            phase: (&m.phase).into(),
        }
    }
}

impl ImageRecord {
    /// The metrics with the primary Pearson correlation of each part beside them.
    pub fn with_primary(m: &ImageMetrics, p: &PrimaryMetrics) -> Self {
        let mut r = ImageRecord::from(m);
        r.amplitude.pearson = Some(Metric(p.amplitude.pearson));
        r.phase.pearson = Some(Metric(p.phase.pearson));
        r
    }
}

/// The primary scores of one channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrimaryChannelRecord {
    pub mae: Metric,
    pub mse: Metric,
    pub pearson: Metric,
    pub psnr: Metric,
}

impl From<&PrimaryChannel> for PrimaryChannelRecord {
    fn from(c: &PrimaryChannel) -> Self {
        PrimaryChannelRecord {
            mae: Metric(c.mae),
            mse: Metric(c.mse),
            pearson: Metric(c.pearson),
            psnr: Metric(c.psnr),
        }
    }
}

/// The primary scores of one reconstruction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrimaryRecord {
    pub amplitude: PrimaryChannelRecord,
    pub phase: PrimaryChannelRecord,
    #[serde(deserialize_with = "nan_if_null")]
    pub uncovered_fraction: f64,
}

impl From<&PrimaryMetrics> for PrimaryRecord {
    fn from(p: &PrimaryMetrics) -> Self {
        PrimaryRecord {
            amplitude: (&p.amplitude).into(),
            phase: (&p.phase).into(),
            uncovered_fraction: p.uncovered_fraction,
        }
    }
}

/// The primary scores of both reconstructions, with what they are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrimaryModels {
    #[serde(rename = "PtychoPINN")]
    pub network: PrimaryRecord,
    pub coverage_margin: usize,
    #[serde(rename = "ePIE")]
    pub baseline: PrimaryRecord,
    pub note: String,
}

/// The network's and the baseline's metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Models {
    #[serde(rename = "PtychoPINN")]
    pub network: ImageRecord,
    #[serde(rename = "ePIE")]
    pub baseline: ImageRecord,
}

/// The metrics without registration, with what they are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnregisteredModels {
    #[serde(rename = "PtychoPINN")]
    pub network: ImageRecord,
    #[serde(rename = "ePIE")]
    pub baseline: ImageRecord,
    pub note: String,
}

/// The classical baseline's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaselineRecord {
    pub algorithm: String,
    pub iterations: usize,
    pub seed: u64,
}

/// The fraction of a reconstruction no stitched crop covers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Uncovered {
    #[serde(deserialize_with = "nan_if_null")]
    pub uncovered_fraction: f64,
}

/// Coverage of both reconstructions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoverageRecord {
    #[serde(rename = "PtychoPINN")]
    pub network: Uncovered,
    #[serde(rename = "ePIE")]
    pub baseline: Uncovered,
    pub note: String,
}

/// The evaluated dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetRecord {
    pub gridsize: i64,
    pub group_index_width: usize,
    pub n_groups: usize,
    pub n_patterns: usize,
}

/// The evaluated model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    pub gridsize: i64,
}

/// A shift in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shift {
    pub dx: f64,
    pub dy: f64,
}

/// The registration shift applied to a reconstruction, the method that found it
/// (`correlation` or `geometric fallback`), and the correlation's result when it was rejected
/// for the geometric shift.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Offset {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_rejected: Option<Shift>,
    pub dx: f64,
    pub dy: f64,
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The registration of both reconstructions (`None`: not registered).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegistrationRecord {
    #[serde(rename = "PtychoPINN")]
    pub network: Option<Offset>,
    pub border_crop: usize,
    #[serde(rename = "ePIE")]
    pub baseline: Option<Offset>,
    pub upsample_factor: usize,
}

/// `metrics.json` of one condition's evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricsFile {
    pub baseline: BaselineRecord,
    pub coverage: CoverageRecord,
    pub dataset: DatasetRecord,
    /// The gridsize the evaluation was declared with (checked against model and dataset).
    pub gridsize: i64,
    pub metrics: Models,
    pub metrics_unregistered: UnregisteredModels,
    pub model: ModelRecord,
    /// The primary scores (on the covered region).
    pub primary: PrimaryModels,
    pub psnr_note: String,
    /// Other engines' reconstructions (declared targets of kind `reconstruction`), by name;
    /// absent when there are none, so a study without them writes the same bytes as before.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reconstructions: BTreeMap<String, ReconstructionRecord>,
    pub registration: RegistrationRecord,
    /// The baseline's seed.
    pub seed: u64,
    pub stitch_crop: usize,
    pub timings: String,
    /// The twin-image check of the network's patches.
    pub twin: TwinRecord,
}

/// Another engine's reconstruction, scored exactly as the ePIE baseline is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReconstructionRecord {
    /// After registration, with the primary Pearson correlations.
    pub metrics: ImageRecord,
    /// Without registration (only the metrics' own trim).
    pub metrics_unregistered: ImageRecord,
    /// On the covered region.
    pub primary: PrimaryRecord,
    /// The registration shift applied (`None`: not registered).
    pub registration: Option<Offset>,
    /// The fraction of the aligned reconstruction no stitched crop covers.
    #[serde(deserialize_with = "nan_if_null")]
    pub uncovered_fraction: f64,
}

/// The twin-image check: how many of the network's patches correlate better with the twin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TwinRecord {
    pub closer_to_twin: usize,
    pub disk_radius: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub fraction_closer_to_twin: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub mean_pearson_true: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub mean_pearson_twin: f64,
    pub n_patches: usize,
    pub note: String,
}

impl MetricsFile {
    /// The file's name in an evaluation directory.
    pub const NAME: &'static str = "metrics.json";

    /// The file's text: pretty JSON and a final newline.
    pub fn to_text(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("metrics always serialise");
        s.push('\n');
        s
    }

    /// Read `metrics.json` of an evaluation directory.
    pub fn read(dir: &Path) -> Result<MetricsFile> {
        let p = dir.join(Self::NAME);
        let text = fs_err::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::data(&p, format!("not a studymake metrics.json: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metric_json_cannot_hold_is_a_string_and_reads_back() {
        let t = serde_json::to_string(&[Metric(1.5), Metric(f64::INFINITY)]).unwrap();
        assert_eq!(t, "[1.5,\"inf\"]");
        let back: Vec<Metric> = serde_json::from_str("[1.5, \"inf\", null]").unwrap();
        assert_eq!(back[..2], [Metric(1.5), Metric(f64::INFINITY)]);
        assert!(back[2].0.is_nan());
    }
}
