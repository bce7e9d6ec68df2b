//! The PtychoPINN 2x2 probe study's shape, as the engine sees it: its sections of shared
//! artifacts (probes, objects), its condition matrix (the structural `gridsize` by probe, one
//! object), the four kinds every condition has and how they connect, the report over all
//! conditions, the seed and image-count aliases of each kind, and the parameter ranges the
//! science relies on.
//!
//! | kind | default recipe | inputs | reads `seed` / `n_images` as |
//! |---|---|---|---|
//! | `train_data` | `simulate` | the condition's object and probe | `train_seed` / `n_train` |
//! | `test_data` | `simulate` | the condition's object and probe | `test_seed` / `n_test` |
//! | `model` | `pinn` | the condition's `train_data` (a command may also read `test_data`) | `model_seed` (else `train_seed`) / `n_train` |
//! | `metrics` | `evaluate` | the condition's `model` and `test_data` | `test_seed` / `n_test` |
//!
//! `model_seed` may list seeds (`model_seed = [42, 1, 2]`): each condition then has one `model`
//! and one `metrics` per seed (`gs1_idealized/s42/model`), sharing its datasets; the report
//! reads them all and gives each number with its spread.
//!
//! A Studyfile may declare more kinds per condition (`[targets.NAME]`); one of class
//! `reconstruction` (another engine's reconstruction of the test data) is read by every
//! `metrics` of its condition as the input `reconstruction.NAME` and scored beside the network
//! and the ePIE baseline.
//!
//! The report reads every condition's `metrics` and `model` and every probe, and gets each
//! condition's `gridsize` and probe name as parameters `gridsize.<condition>` and
//! `probe.<condition>`.

use crate::facts::GRIDSIZE;
use studymake_engine::catalog::{
    Axis, AxisValues, Class, ConditionParams, InputFrom, Kind, OutputKind, Replicates, Section,
    Shape, Summary,
};
use studymake_engine::params::Value;
use studymake_science::physics::grouping::Gridsize;

/// The seed every condition's targets read, under the name of the set it belongs to.
pub const SEED: &str = "seed";

/// The model's seed (weights, shuffling, validation split), apart from its data's: a list of
/// values makes replicates that share their datasets. When unset, `train_seed`.
pub const MODEL_SEED: &str = "model_seed";

/// The class of a declared target (`[targets.NAME] kind = "reconstruction"`) whose output is
/// another engine's reconstruction of the test data, scored by every `metrics` of its condition.
pub const RECONSTRUCTION: &str = "reconstruction";

/// The study's shape.
pub fn shape() -> Shape {
    let train = vec![(SEED, "train_seed"), ("n_images", "n_train")];
    let test = vec![(SEED, "test_seed"), ("n_images", "n_test")];
    let sample = vec![
        ("object", InputFrom::Axis("object")),
        ("probe", InputFrom::Axis("probe")),
    ];
    Shape {
        sections: vec![
            Section {
                table: "probes",
                kind: "probe",
                default_output: OutputKind::File("npy"),
            },
            Section {
                table: "objects",
                kind: "object",
                default_output: OutputKind::File("npz"),
            },
        ],
        axes: vec![
            Axis {
                name: GRIDSIZE,
                values: AxisValues::Structural,
            },
            Axis {
                name: "probe",
                values: AxisValues::Names { section: "probes" },
            },
            Axis {
                name: "object",
                values: AxisValues::Name { section: "objects" },
            },
        ],
        condition_name: "gs{gridsize}_{probe}",
        kinds: vec![
            Kind {
                name: "train_data",
                default_recipe: "simulate",
                inputs: sample.clone(),
                output_name: "train_data",
                command_inputs: vec![],
                default_output: OutputKind::File("npz"),
                aliases: train,
                class: None,
            },
            Kind {
                name: "test_data",
                default_recipe: "simulate",
                inputs: sample,
                output_name: "test_data",
                command_inputs: vec![],
                default_output: OutputKind::File("npz"),
                aliases: test.clone(),
                class: None,
            },
            Kind {
                name: "model",
                default_recipe: "pinn",
                inputs: vec![("train_data", InputFrom::Kind("train_data"))],
                output_name: "model",
                command_inputs: vec![("test_data", InputFrom::Kind("test_data"))],
                default_output: OutputKind::Dir,
                aliases: vec![(SEED, MODEL_SEED), ("n_images", "n_train")],
                class: None,
            },
            Kind {
                name: "metrics",
                default_recipe: "evaluate",
                inputs: vec![
                    ("model", InputFrom::Kind("model")),
                    ("test_data", InputFrom::Kind("test_data")),
                ],
                output_name: "evaluation",
                command_inputs: vec![],
                default_output: OutputKind::Dir,
                aliases: test,
                class: None,
            },
        ],
        summary: Some(Summary {
            name: "report",
            default_recipe: "report",
            per_condition: vec!["metrics", "model"],
            sections: vec!["probes"],
            axis_params: vec![GRIDSIZE, "probe"],
        }),
        condition_params: vec![SEED],
        replicates: Some(Replicates {
            param: MODEL_SEED,
            fallback: Some("train_seed"),
            kinds: vec!["model", "metrics"],
            prefix: "s",
        }),
        classes: vec![Class {
            name: RECONSTRUCTION,
            read_by: "metrics",
            doc: "another engine's reconstruction of the condition's test data: \
                  `reconstruction.npz` (or the output itself, with `output = \"npz\"`) holding \
                  `object`, the complex object on the ground truth's pixel grid, and optionally \
                  `gridsize`; `evaluate` scores it as it scores the ePIE baseline",
        }],
    }
}

/// The ranges the science relies on, checked when the Studyfile is read.
pub fn check_param(name: &str, v: &Value) -> Result<(), String> {
    let positive_int = |v: &Value| match v.as_i64() {
        Some(i) if i > 0 => Ok(()),
        _ => Err(format!("`{name}` must be a positive integer, found {v}")),
    };
    match name {
        GRIDSIZE => match v.as_i64().and_then(Gridsize::new) {
            Some(g) if g <= Gridsize::STUDY_MAX => Ok(()),
            _ => Err(format!(
                "`gridsize` must be an integer from 1 to {}, found {v}",
                Gridsize::STUDY_MAX
            )),
        },
        "n_train" | "n_test" | "n_images" | "epochs" | "batch_size" | "lines" | "object_size" => {
            positive_int(v)
        }
        "train_seed" | "test_seed" | MODEL_SEED | SEED => match v.as_i64() {
            Some(i) if i >= 0 => Ok(()),
            _ => Err(format!(
                "`{name}` must be a non-negative integer, found {v}"
            )),
        },
        "nphotons" => match v.as_f64() {
            Some(x) if x > 0.0 => Ok(()),
            _ => Err(format!("`nphotons` must be a positive number, found {v}")),
        },
        "N" => match v.as_i64() {
            Some(64) | Some(128) => Ok(()),
            _ => Err(format!(
                "`N` = {v} is not supported; the probe size must be 64 or 128"
            )),
        },
        _ => Ok(()),
    }
}

/// The study's own rule `verify` checks: a condition's train and test sets must not share a
/// seed (the test set would repeat the training patterns).
pub fn audit(condition: &ConditionParams) -> Vec<(&'static str, String)> {
    let seed = |kind: &str| condition.get(kind).and_then(|p| p.get(SEED));
    match (seed("train_data"), seed("test_data")) {
        (Some(a), Some(b)) if a == b => vec![(
            "test_data",
            format!("train and test sets share seed {a}: the test set would repeat the training patterns"),
        )],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use studymake_engine::key::{Digest, KeyMaterial};
    use studymake_engine::params::Params;
    use studymake_engine::recipe::Recipe;

    /// One real key of this study, pinned: the engine's key design (see its `key` module)
    /// applied to a dataset's material. Key schema 2 (bindings, empty for a built-in recipe)
    /// moved it from `872bc2cc…`, the key of schema 1.
    #[test]
    fn a_dataset_key_is_pinned() {
        let mut params = Params::new();
        params.insert(GRIDSIZE.into(), Value::Int(2));
        params.insert(SEED.into(), Value::Int(42));
        params.insert("nphotons".into(), Value::Float(1e9));
        let mut inputs = BTreeMap::new();
        inputs.insert("probe".into(), Digest(*blake3::hash(b"probe").as_bytes()));
        let m = KeyMaterial {
            recipe: Recipe::Builtin {
                name: "simulate".into(),
                version: 1,
            },
            output: "npz".into(),
            params,
            inputs,
            bindings: BTreeMap::new(),
        };
        assert_eq!(
            m.key().hex(),
            "b58ae46c6bd82b6839979a4fd69eb402bb08f8aa888bab916f75bbf2194331fd"
        );
    }

    #[test]
    fn ranges_and_the_seed_rule() {
        assert!(check_param(GRIDSIZE, &Value::Int(8)).is_ok());
        let e = check_param(GRIDSIZE, &Value::Int(9)).unwrap_err();
        assert_eq!(e, "`gridsize` must be an integer from 1 to 8, found 9");
        assert!(check_param("N", &Value::Int(50)).is_err());
        let mut train = Params::new();
        train.insert(SEED.into(), Value::Int(42));
        let test = train.clone();
        let condition: ConditionParams = [("train_data", &train), ("test_data", &test)]
            .into_iter()
            .collect();
        let found = audit(&condition);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "test_data");
        let s = shape();
        assert!(s.is_structural(GRIDSIZE) && !s.is_structural("probe"));
        assert_eq!(s.study_name("model", SEED), MODEL_SEED);
        assert_eq!(s.study_name("train_data", SEED), "train_seed");
        assert_eq!(s.study_name("metrics", "n_images"), "n_test");
    }
}
