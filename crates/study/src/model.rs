//! The `pinn` recipe: train the physics-informed network on one dataset and write the model
//! directory (`model.safetensors`, `model.json`, `training.log`). What it built is read back by
//! [`crate::facts::model`].

use crate::error::{Error, Result};
use std::io::Write;
use studymake_engine::job::JobSpec;
use studymake_engine::params::{Params, Value};
use studymake_pinn::artifact;
use studymake_pinn::network::NetShape;
use studymake_pinn::pinn::{intensity_scale, split_sizes};
use studymake_pinn::{self as pinn_model, TrainConfig};
use studymake_science::io::dataset::Dataset;

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
    let gridsize = crate::facts::declared(job)?;
    let cfg = TrainConfig {
        gridsize: gridsize.get(),
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
    if !gridsize.fits_width(width) {
        return Err(build(format!(
            "the training data {} has groups of {width} patterns (group_index width {width}) but \
             the model is declared with gridsize {gridsize} (needs width {})",
            data_path.display(),
            gridsize.width().unwrap_or(0)
        )));
    }
    let dir = &job.output;
    fs_err::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let log_path = dir.join(artifact::LOG_FILE);
    let mut log = fs_err::File::create(&log_path).map_err(|e| Error::io(&log_path, e))?;
    let n = data.diffraction.dim().1;
    let shape = NetShape {
        n,
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

    // Read back what was built: the gridsize and the seed from the saved model.
    let mut used: Params = crate::facts::model(dir)?
        .into_iter()
        .map(|f| (f.param, f.value))
        .collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use studymake_pinn::artifact::save;
    use studymake_science::testdata::{replace_once, simulate};

    #[test]
    fn the_model_file_states_its_gridsize_under_its_digest() {
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
        let f = crate::facts::model(dir.path()).unwrap();
        assert_eq!(f[0].label, "model.gridsize");
        assert_eq!(f[0].value, Value::Int(2));
        assert_eq!(
            (f[1].param.as_str(), &f[1].value),
            ("seed", &Value::Int(11))
        );
        // What a log says is not a fact: the model file is.
        fs_err::write(dir.path().join(artifact::LOG_FILE), "gridsize: 1\n").unwrap();
        assert_eq!(crate::facts::model(dir.path()).unwrap(), f);
        // A gridsize edited into the file no longer matches its digest: the model is refused.
        let path = dir.path().join(artifact::WEIGHTS_FILE);
        let bytes = fs_err::read(&path).unwrap();
        let edited = replace_once(&bytes, b"\"gridsize\":\"2\"", b"\"gridsize\":\"1\"");
        fs_err::write(&path, &edited).unwrap();
        let err = artifact::load_safetensors(&path).err().expect("refused");
        assert!(err.to_string().contains("digest"), "{err}");
    }
}
