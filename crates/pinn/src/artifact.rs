//! The saved model: `model.safetensors` (weights, probe, and a metadata header with the
//! structure and a digest of every tensor byte) and `model.json` (configuration and history).
//!
//! Tensors: `<layer>.weight` `(3, 3, Cin, Cout)` (Keras' HWIO), `<layer>.bias` `(Cout,)`,
//! `log_scale` `(1,)`, `probe` `(2, N, N)` (real, imaginary), all f32 little-endian. The network
//! reads one pattern at a time (its first layer has one input channel at every gridsize), so the
//! gridsize lives in the metadata, from which the loader builds the physics that reassembles a
//! group's patches: it is the gridsize the model computes with, and it is covered by the digest.
//!
//! Metadata (all strings): `format = studymake-pinn`, `format_version` (2: one network per
//! pattern; version 1 files, whose first layer read `gridsize^2` channels, are refused with a
//! request to rebuild), `gridsize`, `channels` (the group width `gridsize^2`), `N`,
//! `encoder_filters`, `decoder_filters`, `n_filters_scale`, `intensity_scale`, `nphotons`,
//! `probe_blake3` (blake3 of the probe's complex64 bytes, row-major), `seed`, and
//! `weights_blake3` (blake3 over the gridsize, then every tensor's name, shape and bytes in name
//! order), which detects any altered byte in the data section or an altered gridsize.

use super::network::{ce, Conv, ConvAlgo, NetShape, Network};
use super::physics::Physics;
use super::pinn::{History, Pinn, TrainConfig};
use candle_core::{DType, Device, Tensor, Var};
use ndarray::Array2;
use num_complex::Complex32;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use studymake_science::error::{Error, Result};
use studymake_science::physics::grouping::Gridsize;

/// File names inside a model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const CONFIG_FILE: &str = "model.json";
pub const LOG_FILE: &str = "training.log";
const FORMAT: &str = "studymake-pinn";
const FORMAT_VERSION: &str = "2";

/// blake3 of a probe's complex64 bytes (re, im little-endian, row-major).
pub fn probe_digest(probe: &Array2<Complex32>) -> String {
    let mut h = blake3::Hasher::new();
    for z in probe.iter() {
        h.update(&z.re.to_le_bytes());
        h.update(&z.im.to_le_bytes());
    }
    h.finalize().to_hex().to_string()
}

/// `model.json`: the whole configuration and the training history.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelJson {
    pub format: String,
    pub config: TrainConfig,
    pub n: usize,
    /// Patterns per group, `gridsize^2` (the network itself reads one at a time).
    pub channels: usize,
    pub encoder_filters: Vec<usize>,
    pub decoder_filters: Vec<usize>,
    pub canvas: usize,
    pub intensity_scale: f64,
    pub trained_log_scale: f64,
    pub probe_blake3: String,
    pub history: History,
    /// Fixed choices, stated for readers.
    pub notes: Vec<String>,
}

fn weights_digest(gridsize: &str, tensors: &BTreeMap<String, (Vec<usize>, Vec<u8>)>) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"gridsize\0");
    h.update(gridsize.as_bytes());
    h.update(&[0]);
    for (name, (shape, bytes)) in tensors {
        h.update(name.as_bytes());
        h.update(&[0]);
        for d in shape {
            h.update(&(*d as u64).to_le_bytes());
        }
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    h.finalize().to_hex().to_string()
}

fn f32_bytes(t: &Tensor) -> Result<Vec<u8>> {
    let v: Vec<f32> = t
        .to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .map_err(ce)?;
    Ok(v.iter().flat_map(|x| x.to_le_bytes()).collect())
}

/// Serialise a model to safetensors bytes with its metadata header.
pub fn to_safetensors(model: &Pinn, seed: u64, nphotons: f64) -> Result<Vec<u8>> {
    let mut tensors: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for c in &model.net.convs {
        tensors.insert(
            format!("{}.weight", c.name),
            (vec![3, 3, c.cin, c.cout], f32_bytes(c.weight.as_tensor())?),
        );
        tensors.insert(
            format!("{}.bias", c.name),
            (vec![c.cout], f32_bytes(c.bias.as_tensor())?),
        );
    }
    tensors.insert(
        "log_scale".into(),
        (vec![1], f32_bytes(model.log_scale.as_tensor())?),
    );
    let n = model.probe.nrows();
    let mut pb = Vec::with_capacity(2 * n * n * 4);
    for z in model.probe.iter() {
        pb.extend_from_slice(&z.re.to_le_bytes());
    }
    for z in model.probe.iter() {
        pb.extend_from_slice(&z.im.to_le_bytes());
    }
    tensors.insert("probe".into(), (vec![2, n, n], pb));
    let s = &model.net.shape;
    let channels = model.gridsize * model.gridsize;
    let join = |v: &[usize]| {
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let meta: HashMap<String, String> = [
        ("format", FORMAT.to_string()),
        ("format_version", FORMAT_VERSION.to_string()),
        ("gridsize", model.gridsize.to_string()),
        ("channels", channels.to_string()),
        ("N", s.n.to_string()),
        ("encoder_filters", join(&s.encoder_filters())),
        ("decoder_filters", join(&s.decoder_filters())),
        ("n_filters_scale", s.n_filters_scale.to_string()),
        ("intensity_scale", format!("{:e}", model.intensity_scale)),
        ("nphotons", format!("{nphotons:e}")),
        ("probe_blake3", probe_digest(&model.probe)),
        ("seed", seed.to_string()),
        (
            "weights_blake3",
            weights_digest(&model.gridsize.to_string(), &tensors),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(k, (shape, bytes))| {
            TensorView::new(Dtype::F32, shape.clone(), bytes).map(|v| (k.clone(), v))
        })
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Invalid(format!("cannot lay out the model tensors: {e}")))?;
    let bytes = safetensors::tensor::serialize(views, Some(meta))
        .map_err(|e| Error::Invalid(format!("cannot serialise the model: {e}")))?;
    canonical_header(bytes)
}

/// Rewrite a safetensors header with its keys sorted. safetensors keeps the metadata in a
/// `HashMap`, whose order changes from run to run; the artifact must be byte-identical for a key
/// (early cutoff, `verify`). The data section and its offsets are untouched.
fn canonical_header(bytes: Vec<u8>) -> Result<Vec<u8>> {
    let bad = || Error::Invalid("safetensors produced an unreadable header".into());
    let n = u64::from_le_bytes(
        bytes
            .get(..8)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    ) as usize;
    let header = bytes.get(8..8 + n).ok_or_else(bad)?;
    let value: serde_json::Value = serde_json::from_slice(header).map_err(|_| bad())?;
    let top = value.as_object().ok_or_else(bad)?;
    let mut sorted: BTreeMap<&str, serde_json::Value> = BTreeMap::new();
    for (k, v) in top {
        let v = match v.as_object() {
            Some(inner) => {
                let inner: BTreeMap<&String, &serde_json::Value> = inner.iter().collect();
                serde_json::to_value(inner).map_err(|_| bad())?
            }
            None => v.clone(),
        };
        sorted.insert(k.as_str(), v);
    }
    let mut text = serde_json::to_string(&sorted)
        .map_err(|_| bad())?
        .into_bytes();
    let len = if text.len() <= n {
        n
    } else {
        text.len().div_ceil(8) * 8
    };
    text.resize(len, b' ');
    let mut out = Vec::with_capacity(8 + len + bytes.len() - 8 - n);
    out.extend_from_slice(&(len as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    Ok(out)
}

/// The metadata header of a model file (checked to be ours).
pub fn read_metadata(path: &Path, bytes: &[u8]) -> Result<HashMap<String, String>> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| {
        Error::data(
            path,
            format!("not a readable safetensors model file ({e}); it may be truncated or altered"),
        )
    })?;
    let md = meta.metadata().clone().ok_or_else(|| {
        Error::data(
            path,
            "the safetensors file has no metadata header; not a studymake model",
        )
    })?;
    if md.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(Error::data(
            path,
            format!("the metadata does not say format = {FORMAT}; not a studymake PINN model"),
        ));
    }
    let version = md
        .get("format_version")
        .map(String::as_str)
        .unwrap_or("none");
    if version != FORMAT_VERSION {
        return Err(Error::data(
            path,
            format!(
                "model format_version {version}, but this studymake reads version \
                 {FORMAT_VERSION} (one network per pattern); rebuild the model with this studymake"
            ),
        ));
    }
    Ok(md)
}

/// What a model file's header says, without loading the network.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// The gridsize the model computes with (its physics is built from it on loading).
    pub gridsize: usize,
    /// The training seed in the metadata.
    pub seed: i64,
}

impl Header {
    /// Read the header of a model file, checked to be ours, of this format version, with its
    /// digest holding (so the gridsize is the one the weights were written with) and a valid
    /// gridsize.
    pub fn read(path: &Path) -> Result<Header> {
        let bytes = fs_err::read(path).map_err(|e| Error::io(path, e))?;
        let md = read_metadata(path, &bytes)?;
        verified_tensors(path, &bytes, &md)?;
        let gridsize = meta_gridsize(path, &md)?;
        let seed = md
            .get("seed")
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| Error::data(path, "metadata `seed` is not an integer"))?;
        Ok(Header { gridsize, seed })
    }
}

fn meta_usize(path: &Path, md: &HashMap<String, String>, key: &str) -> Result<usize> {
    md.get(key).and_then(|v| v.parse().ok()).ok_or_else(|| {
        Error::data(
            path,
            format!("metadata `{key}` is missing or not an integer"),
        )
    })
}

/// The metadata's gridsize, checked to be a valid gridsize whose group width is the recorded
/// `channels`: the one reading of it that [`Header::read`] and [`load_safetensors`] share.
fn meta_gridsize(path: &Path, md: &HashMap<String, String>) -> Result<usize> {
    let gridsize = meta_usize(path, md, "gridsize")?;
    let channels = meta_usize(path, md, "channels")?;
    if !Gridsize::new(gridsize as i64).is_some_and(|g| g.fits_width(channels)) {
        return Err(Error::data(
            path,
            format!("metadata says gridsize {gridsize} but {channels} channels"),
        ));
    }
    Ok(gridsize)
}

fn meta_f64(path: &Path, md: &HashMap<String, String>, key: &str) -> Result<f64> {
    md.get(key)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::data(path, format!("metadata `{key}` is missing or not a number")))
}

/// Every tensor of a model file by name: its shape and bytes.
type Tensors = BTreeMap<String, (Vec<usize>, Vec<u8>)>;

/// Every tensor of a model file, checked against the digest in its metadata (which also covers
/// the gridsize): an altered byte or an altered gridsize is refused.
fn verified_tensors(path: &Path, bytes: &[u8], md: &HashMap<String, String>) -> Result<Tensors> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| {
        Error::data(
            path,
            format!("not a readable safetensors model file ({e}); it may be truncated or altered"),
        )
    })?;
    let mut tensors: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(Error::data(
                path,
                format!("tensor `{name}` is {:?}, expected F32", view.dtype()),
            ));
        }
        tensors.insert(name, (view.shape().to_vec(), view.data().to_vec()));
    }
    let want = md.get("weights_blake3").cloned().unwrap_or_default();
    let recorded_gridsize = md.get("gridsize").cloned().unwrap_or_default();
    if weights_digest(&recorded_gridsize, &tensors) != want {
        return Err(Error::data(
            path,
            "the tensor data or the gridsize does not match the digest recorded in the file's \
             metadata; the model file was altered or corrupted",
        ));
    }
    Ok(tensors)
}

/// A loaded model and its recorded seed.
pub struct Loaded {
    pub model: Pinn,
    pub seed: u64,
    pub nphotons: f64,
}

/// Load and verify a model file: format, digest of every tensor, every expected tensor present
/// with the expected shape, `channels = gridsize^2`. Every error names the file.
pub fn load_safetensors(path: &Path) -> Result<Loaded> {
    let bytes = fs_err::read(path).map_err(|e| Error::io(path, e))?;
    let md = read_metadata(path, &bytes)?;
    let tensors = verified_tensors(path, &bytes, &md)?;
    let gridsize = meta_gridsize(path, &md)?;
    let n = meta_usize(path, &md, "N")?;
    let f = meta_usize(path, &md, "n_filters_scale")?;
    let seed = meta_usize(path, &md, "seed")? as u64;
    let s = meta_f64(path, &md, "intensity_scale")?;
    let nphotons = meta_f64(path, &md, "nphotons")?;
    let shape = NetShape {
        n,
        n_filters_scale: f,
    };
    shape
        .check()
        .map_err(|e| Error::data(path, format!("impossible network shape: {e}")))?;
    let dev = Device::Cpu;
    let get = |name: &str, want: &[usize]| -> Result<Vec<f32>> {
        let (shape, data) = tensors
            .get(name)
            .ok_or_else(|| Error::data(path, format!("the model has no tensor `{name}`")))?;
        if shape != want {
            return Err(Error::data(
                path,
                format!("tensor `{name}` has shape {shape:?}, expected {want:?}"),
            ));
        }
        Ok(data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    };
    let mut convs = Vec::new();
    for (name, cin, cout) in shape.layers() {
        let w = get(&format!("{name}.weight"), &[3, 3, cin, cout])?;
        let b = get(&format!("{name}.bias"), &[cout])?;
        let wt = Tensor::from_vec(w, (9 * cin, cout), &dev).map_err(ce)?;
        let bt = Tensor::from_vec(b, cout, &dev).map_err(ce)?;
        convs.push(Conv {
            name,
            cin,
            cout,
            weight: Var::from_tensor(&wt).map_err(ce)?,
            bias: Var::from_tensor(&bt).map_err(ce)?,
        });
    }
    let ls = get("log_scale", &[1])?;
    let pv = get("probe", &[2, n, n])?;
    let probe = Array2::from_shape_fn((n, n), |(i, j)| {
        Complex32::new(pv[i * n + j], pv[n * n + i * n + j])
    });
    if md.get("probe_blake3") != Some(&probe_digest(&probe)) {
        return Err(Error::data(
            path,
            "the probe does not match its recorded digest",
        ));
    }
    let physics = Physics::new(&probe, gridsize, DType::F32)
        .map_err(|e| Error::data(path, format!("unusable probe: {e}")))?;
    let model = Pinn {
        net: Network {
            shape,
            convs,
            algo: ConvAlgo::Auto,
        },
        log_scale: Var::from_vec(ls, 1, &dev).map_err(ce)?,
        physics,
        probe,
        intensity_scale: s,
        gridsize,
    };
    Ok(Loaded {
        model,
        seed,
        nphotons,
    })
}

/// Write `model.safetensors` and `model.json` into `dir` (which must exist).
pub fn save(dir: &Path, model: &Pinn, cfg: &TrainConfig, history: &History) -> Result<()> {
    let bytes = to_safetensors(model, cfg.seed, cfg.nphotons)?;
    let wpath = dir.join(WEIGHTS_FILE);
    fs_err::write(&wpath, bytes).map_err(|e| Error::io(&wpath, e))?;
    let s = &model.net.shape;
    let trained_log_scale = model
        .log_scale
        .as_tensor()
        .to_vec1::<f32>()
        .map_err(ce)?
        .first()
        .copied()
        .unwrap_or(f32::NAN) as f64;
    let json = ModelJson {
        format: FORMAT.into(),
        config: cfg.clone(),
        n: s.n,
        channels: model.gridsize * model.gridsize,
        encoder_filters: s.encoder_filters().to_vec(),
        decoder_filters: s.decoder_filters().to_vec(),
        canvas: model.physics.geom.canvas,
        intensity_scale: model.intensity_scale,
        trained_log_scale,
        probe_blake3: probe_digest(&model.probe),
        history: history.clone(),
        notes: vec![
            "probe_big false: decoders emit the central N/2 x N/2 of each patch (reference 7.6)"
                .into(),
            "one network per pattern: a group's C patterns run through the same one-channel \
             network (PtychoPINN reads them as C channels of one network)"
                .into(),
            "decoder heads use all 32f channels of the last block".into(),
            "loss: mean(lambda - y ln(lambda + 1e-7)), y = (X s)^2".into(),
            "validation: last 5% of groups before shuffling; Adam eps 1e-7".into(),
        ],
    };
    let jpath = dir.join(CONFIG_FILE);
    let text = serde_json::to_string_pretty(&json)
        .map_err(|e| Error::Invalid(format!("cannot serialise model.json: {e}")))?;
    fs_err::write(&jpath, text).map_err(|e| Error::io(&jpath, e))
}
