//! The PtychoPINN 2x2 probe study, as a layer between the engine and the science: the study's
//! shape ([`shape`]: its kinds, aliases and parameter ranges), its structural fact and how each
//! artifact shows it ([`facts`]), and the built-in recipes, which turn a [`JobSpec`] into an
//! artifact with the science and return the parameters they actually used, read back from what
//! they built. [`Builtins`] is the catalog the binary hands the engine.

pub mod compare;
pub mod error;
pub mod evaluate;
pub mod facts;
pub mod model;
pub mod object;
pub mod probe;
pub mod report;
pub mod shape;
pub mod simulate;
pub mod verdict;

use crate::error::Result;
use crate::facts::GRIDSIZE;
use std::path::Path;
use studymake_engine::catalog::{
    Catalog, ConditionParams, Fact, OutputKind, ParamDecl, RecipeInfo, Shape,
};
use studymake_engine::job::{JobSpec, WorkerReport};
use studymake_engine::params::{Params, Value};
use studymake_engine::recipe::Recipe;

/// A recipe's entry point: build `job.output`, return the parameters actually used.
pub type RecipeFn = fn(&JobSpec) -> Result<Params>;

fn p(name: &'static str, default: Option<Value>, doc: &'static str) -> ParamDecl {
    ParamDecl { name, default, doc }
}

/// The study's catalog: its shape and the built-in recipes with their entry points.
pub struct Builtins {
    shape: Shape,
    entries: Vec<(RecipeInfo, RecipeFn)>,
}

impl Builtins {
    /// Every built-in recipe.
    pub fn new() -> Self {
        use OutputKind::*;
        let entries: Vec<(RecipeInfo, RecipeFn)> = vec![
            (
                RecipeInfo {
                    name: "default_probe",
                    version: 1,
                    params: vec![p("N", Some(Value::Int(64)), "probe size in pixels")],
                    inputs: vec![],
                    output: File("npy"),
                    doc: "PtychoPINN's idealized probe: a blurred disk (reference section 1)",
                },
                probe::default_probe,
            ),
            (
                RecipeInfo {
                    name: "aberrated_probe",
                    version: 1,
                    params: vec![
                        p("N", Some(Value::Int(64)), "probe size in pixels"),
                        p("aperture", Some(Value::Float(11.0)), "aperture radius in pixels"),
                        p("defocus", Some(Value::Float(2.0)), "Zernike defocus amplitude (rad)"),
                        p("astigmatism", Some(Value::Float(0.5)), "Zernike astigmatism amplitude (rad)"),
                        p("coma", Some(Value::Float(0.3)), "Zernike coma amplitude (rad)"),
                    ],
                    inputs: vec![],
                    output: File("npy"),
                    doc: "an experimental-like probe: soft aperture with Zernike phase aberrations",
                },
                probe::aberrated_probe,
            ),
            (
                RecipeInfo {
                    name: "npz_probe",
                    version: 1,
                    params: vec![],
                    inputs: vec!["file"],
                    output: File("npy"),
                    doc: "a measured probe: `probeGuess` from an .npz, or a 2-D complex .npy",
                },
                probe::npz_probe,
            ),
            (
                RecipeInfo {
                    name: "hybrid_probe",
                    version: 1,
                    params: vec![],
                    inputs: vec!["amplitude", "phase"],
                    output: File("npy"),
                    doc: "|amplitude source| * exp(i arg(phase source)) (reference section 2)",
                },
                probe::hybrid_probe,
            ),
            (
                RecipeInfo {
                    name: "lines_object",
                    version: 1,
                    params: vec![
                        p("object_size", Some(Value::Int(224)), "object side S in pixels"),
                        p("lines", Some(Value::Int(400)), "number of random lines"),
                        p("phase_scale", Some(Value::Float(0.1)), "O = A exp(i phase_scale A)"),
                        p("seed", None, "seed of the line positions"),
                    ],
                    inputs: vec![],
                    output: File("npz"),
                    doc: "the synthetic lines object (reference section 3)",
                },
                object::lines_object,
            ),
            (
                RecipeInfo {
                    name: "simulate",
                    // v3: the vectorised Poisson sampler (science::poisson) draws other bits.
                    version: 3,
                    params: vec![
                        p(GRIDSIZE, None, "patterns per group side (C = gridsize^2)"),
                        p("seed", None, "scan positions, noise and grouping seed"),
                        p("n_images", None, "number of diffraction patterns"),
                        p("nphotons", Some(Value::Float(1e9)), "photons per pattern"),
                    ],
                    inputs: vec!["probe", "object"],
                    output: File("npz"),
                    doc: "simulated diffraction dataset (reference sections 4-6)",
                },
                simulate::simulate,
            ),
            (
                RecipeInfo {
                    name: "pinn",
                    // v4: the phase head's initial kernel is 0.3x Glorot (a quiet initial phase).
                    // v5: the im2col layers' products run in fixed row blocks and their kernel
                    // gradients in fixed slices of the pixels (other rounding, any thread count).
                    // v6: the heads are direct convolutions (other rounding in the heads).
                    // v7: the Winograd F(4x4, 3x3) transforms are factored by hand (other
                    // rounding in every Winograd layer).
                    // v8: cosine learning-rate decay without early stop, batches of 4, the
                    // gridsize-2 canvas on the object's pixel grid (exact physics), held-out
                    // quality per epoch in the log and model.json (the learning curve).
                    // v9: one network per pattern (a group's patterns run through the same
                    // one-channel network; an epoch at gridsize 2 costs 4x gridsize 1's).
                    version: 9,
                    params: vec![
                        p(GRIDSIZE, None, "patterns per group side (C = gridsize^2)"),
                        p("seed", None, "weights, shuffling and validation split seed"),
                        p("epochs", None, "training epochs"),
                        p("batch_size", Some(Value::Int(4)), "groups per batch"),
                        p("n_filters_scale", Some(Value::Int(1)), "filter count multiplier"),
                        p("learning_rate", Some(Value::Float(1e-3)), "Adam peak learning rate (cosine decay to 0)"),
                        p("nphotons", Some(Value::Float(1e9)), "photons per pattern"),
                    ],
                    inputs: vec!["train_data"],
                    output: Dir,
                    doc: "the physics-informed network, trained without labels (reference section 7)",
                },
                model::train,
            ),
            (
                RecipeInfo {
                    name: "evaluate",
                    // v2: ssim_unregistered rows and metrics_unregistered in metrics.json.
                    // v3: unnormalised registration and its method recorded, no second crop
                    // without registration, primary scores, twin check, masked figure.
                    version: 3,
                    params: vec![
                        p(GRIDSIZE, None, "patterns per group side"),
                        p("seed", None, "baseline initialisation seed"),
                        p("baseline_iterations", Some(Value::Int(50)), "ePIE iterations"),
                        p("stitch_crop", Some(Value::Int(20)), "central crop of each patch when stitching"),
                    ],
                    inputs: vec!["model", "test_data", "reconstruction.*"],
                    output: Dir,
                    doc: "metrics against ground truth, with a classical baseline (reference section 8)",
                },
                evaluate::evaluate,
            ),
            (
                RecipeInfo {
                    name: "report",
                    // v2: criteria on the primary scores, primary and twin tables.
                    // v3: replicates (means, spreads, a `replicate` column in summary.csv) and
                    // criteria decided with their uncertainty.
                    version: 3,
                    params: vec![],
                    inputs: vec!["*"],
                    output: Dir,
                    doc: "the study report: summary tables and figures (reference section 9)",
                },
                report::report,
            ),
        ];
        Builtins {
            shape: shape::shape(),
            entries,
        }
    }

    fn entry(&self, name: &str) -> Option<&(RecipeInfo, RecipeFn)> {
        self.entries.iter().find(|(info, _)| info.name == name)
    }

    /// Run the job's built-in recipe and write its report. Called in the worker process.
    pub fn run_job(&self, job: &JobSpec) -> studymake_engine::Result<()> {
        use studymake_engine::Error;
        let Recipe::Builtin { name, version } = &job.recipe else {
            return Err(Error::Other(format!(
                "{}: the built-in worker was handed an external command",
                job.target
            )));
        };
        let (info, run) = self.entry(name).ok_or_else(|| Error::RecipeMissing {
            recipe: name.clone(),
            target: job.target.clone(),
        })?;
        if info.version != *version {
            return Err(Error::Build {
                target: job.target.clone(),
                message: format!(
                    "job asks for recipe `{name}` version {version}, this studymake has version {}",
                    info.version
                ),
            });
        }
        let params = run(job)?;
        WorkerReport { params }.save(&job.report)
    }
}

impl Default for Builtins {
    fn default() -> Self {
        Self::new()
    }
}

impl Catalog for Builtins {
    fn shape(&self) -> &Shape {
        &self.shape
    }

    fn recipe(&self, name: &str) -> Option<&RecipeInfo> {
        self.entry(name).map(|(info, _)| info)
    }

    fn recipes(&self) -> Vec<&RecipeInfo> {
        self.entries.iter().map(|(info, _)| info).collect()
    }

    fn check_param(&self, name: &str, value: &Value) -> std::result::Result<(), String> {
        shape::check_param(name, value)
    }

    fn inspect(&self, kind: &str, output: &Path) -> studymake_engine::Result<Vec<Fact>> {
        Ok(facts::read(kind, output)?)
    }

    fn audit(&self, condition: &ConditionParams) -> Vec<(&'static str, String)> {
        shape::audit(condition)
    }

    fn run(&self, job: &JobSpec) -> studymake_engine::Result<()> {
        self.run_job(job)
    }
}
