//! The `pinn` recipe: train the physics-informed network on one dataset and write the model
//! directory (`model.safetensors`, `model.json`, `training.log`); and `inspect`, which reads the
//! structural facts back from those files.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;
use studymake_engine::job::JobSpec;
use studymake_engine::params::{Params, Value};
use studymake_pinn::artifact::{self, header_shape, read_metadata};
use studymake_pinn::network::NetShape;
use studymake_pinn::pinn::{intensity_scale, split_sizes};
use studymake_pinn::{self as pinn_model, TrainConfig};
use studymake_science::dataset::Dataset;

/// The first convolution, whose input channels are `gridsize^2`.
const FIRST_LAYER: &str = "encoder.0.conv0.weight";

/// Build `job.output`; returns the parameters actually used.
pub fn train(job: &JobSpec) -> Result<Params> {
    pinn_model::tune_allocator();
    if job.threads > 0 {
        // candle sizes its matmul thread pool from this variable; the worker process is ours.
        std::env::set_var("RAYON_NUM_THREADS", job.threads.to_string());
    }
    let build = |message: String| Error::Build {
        target: job.target.clone(),
        message,
    };
    let cfg = TrainConfig {
        gridsize: job.param_usize("gridsize")?,
        seed: job.param_usize("seed")? as u64,
        epochs: job.param_usize("epochs")?,
        batch_size: job.param_usize("batch_size")?,
        n_filters_scale: job.param_usize("n_filters_scale")?,
        learning_rate: job.param_f64("learning_rate")?,
        nphotons: job.param_f64("nphotons")?,
    };
    let data_path = job.input("train_data")?;
    let data = Dataset::load(data_path)?;
    let (m, width) = data.group_index.dim();
    if width != cfg.gridsize * cfg.gridsize {
        return Err(build(format!(
            "the training data {} has groups of {width} patterns (group_index width {width}) but \
             the model is declared with gridsize {} (needs width {})",
            data_path.display(),
            cfg.gridsize,
            cfg.gridsize * cfg.gridsize
        )));
    }
    let dir = &job.output;
    fs_err::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let log_path = dir.join(artifact::LOG_FILE);
    let mut log = fs_err::File::create(&log_path).map_err(|e| Error::io(&log_path, e))?;
    let n = data.diffraction.dim().1;
    let shape = NetShape {
        n,
        channels: width,
        n_filters_scale: cfg.n_filters_scale,
    };
    let (n_train, n_val) = split_sizes(m);
    let header = format!(
        "studymake pinn training ({})\n\
         gridsize: {}\n\
         input shape: ({n}, {n}, {width})\n\
         patterns: {}\n\
         groups: {m} ({n_train} training, {n_val} validation)\n\
         configuration: epochs {}, batch_size {}, n_filters_scale {}, learning_rate {:e}, \
         nphotons {:e}, seed {}, threads {}\n\
         filters: encoder {:?}, decoder {:?}\n\
         intensity scale: {:.6}\n",
        job.target,
        cfg.gridsize,
        data.diffraction.dim().0,
        cfg.epochs,
        cfg.batch_size,
        cfg.n_filters_scale,
        cfg.learning_rate,
        cfg.nphotons,
        cfg.seed,
        job.threads,
        shape.encoder_filters(),
        shape.decoder_filters(),
        intensity_scale(cfg.nphotons, n),
    );
    log.write_all(header.as_bytes())
        .map_err(|e| Error::io(&log_path, e))?;
    let mut io_err = None;
    let (model, _, history) = pinn_model::train(&data, &cfg, &mut |line| {
        if let Err(e) = writeln!(log, "{line}").and_then(|_| log.flush()) {
            io_err.get_or_insert(e);
        }
    })
    .map_err(|e| build(format!("training failed: {e}")))?;
    if let Some(e) = io_err {
        return Err(Error::io(&log_path, e));
    }
    writeln!(
        log,
        "finished: {} epochs ({}), final loss {:.6e}",
        history.epochs.len(),
        history.stopped,
        history.epochs.last().map(|e| e.loss).unwrap_or(f64::NAN)
    )
    .map_err(|e| Error::io(&log_path, e))?;
    artifact::save(dir, &model, &cfg, &history)?;

    // Read back what was built.
    let facts = inspect(dir)?;
    let gridsize = facts
        .get("first_layer.gridsize")
        .cloned()
        .ok_or_else(|| build("the saved model has no readable first layer".into()))?;
    let mut used = Params::new();
    used.insert("gridsize".into(), gridsize);
    used.insert("seed".into(), Value::Int(cfg.seed as i64));
    used.insert("epochs".into(), Value::Int(cfg.epochs as i64));
    used.insert("batch_size".into(), Value::Int(cfg.batch_size as i64));
    used.insert(
        "n_filters_scale".into(),
        Value::Int(model.net.shape.n_filters_scale as i64),
    );
    used.insert("learning_rate".into(), Value::Float(cfg.learning_rate));
    used.insert("nphotons".into(), Value::Float(cfg.nphotons));
    Ok(used)
}

fn int_sqrt(v: usize) -> Option<usize> {
    let r = (v as f64).sqrt().round() as usize;
    (r * r == v).then_some(r)
}

/// Structural facts read back from a model directory: `first_layer.gridsize` (square root of
/// the first convolution's input channels in `model.safetensors`), `safetensors.gridsize` (its
/// metadata), `training_log.gridsize` (the `gridsize:` line of `training.log`) and `seed`
/// (metadata).
pub fn inspect(output: &Path) -> Result<Params> {
    let path = output.join(artifact::WEIGHTS_FILE);
    let bytes = fs_err::read(&path).map_err(|e| Error::io(&path, e))?;
    let md = read_metadata(&path, &bytes)?;
    let shape = header_shape(&path, &bytes, FIRST_LAYER)?;
    let cin = *shape.get(2).ok_or_else(|| {
        Error::data(
            &path,
            format!("`{FIRST_LAYER}` has shape {shape:?}, expected (3, 3, Cin, Cout)"),
        )
    })?;
    let g = int_sqrt(cin).ok_or_else(|| {
        Error::data(
            &path,
            format!("the first layer has {cin} input channels, not a square"),
        )
    })?;
    let mut facts = Params::new();
    facts.insert("first_layer.gridsize".into(), Value::Int(g as i64));
    let meta_int = |key: &str| -> Result<i64> {
        md.get(key)
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| Error::data(&path, format!("metadata `{key}` is not an integer")))
    };
    facts.insert(
        "safetensors.gridsize".into(),
        Value::Int(meta_int("gridsize")?),
    );
    facts.insert("seed".into(), Value::Int(meta_int("seed")?));
    let log_path = output.join(artifact::LOG_FILE);
    let log = fs_err::read_to_string(&log_path).map_err(|e| Error::io(&log_path, e))?;
    let lg = log
        .lines()
        .find_map(|l| l.strip_prefix("gridsize: "))
        .and_then(|v| v.trim().parse::<i64>().ok())
        .ok_or_else(|| Error::data(&log_path, "no `gridsize: <n>` line in the training log"))?;
    facts.insert("training_log.gridsize".into(), Value::Int(lg));
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use studymake_pinn::artifact::save;
    use studymake_science::testdata::simulate;

    #[test]
    fn inspect_reads_gridsize_from_the_layer_the_metadata_and_the_log() {
        let data = simulate(16, 48, 24, 2, 3);
        let cfg = TrainConfig {
            gridsize: 2,
            seed: 11,
            epochs: 1,
            batch_size: 8,
            n_filters_scale: 1,
            learning_rate: 1e-3,
            nphotons: 1e9,
        };
        let (model, _, hist) = pinn_model::train(&data, &cfg, &mut |_| {}).unwrap();
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &model, &cfg, &hist).unwrap();
        fs_err::write(
            dir.path().join(artifact::LOG_FILE),
            "x\ngridsize: 2\ninput shape: (16, 16, 4)\n",
        )
        .unwrap();
        let f = inspect(dir.path()).unwrap();
        assert_eq!(f["first_layer.gridsize"], Value::Int(2));
        assert_eq!(f["safetensors.gridsize"], Value::Int(2));
        assert_eq!(f["training_log.gridsize"], Value::Int(2));
        assert_eq!(f["seed"], Value::Int(11));
        // A log that lies is reported as it is (the engine compares it).
        fs_err::write(dir.path().join(artifact::LOG_FILE), "gridsize: 1\n").unwrap();
        assert_eq!(
            inspect(dir.path()).unwrap()["training_log.gridsize"],
            Value::Int(1)
        );
    }
}
