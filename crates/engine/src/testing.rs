//! Test helpers: a small made-up study (no science in it) to drive the engine's unit tests, and
//! Studyfile text written inline, as ninja's tests write their manifests.
//!
//! The study: `[sources.NAME]` artifacts (kind `source`); a matrix of a structural `level` (1 to
//! 4) by `source`; every condition has a `prepared` target (reads its source) and a `fit`
//! (reads the prepared data, and every declared target of class `check`); a `summary` reads every
//! fit and every source. `fit` reads `seed` as `fit_seed`, which may list values: one `fit` per
//! value (replicates).

use crate::catalog::{
    Axis, AxisValues, Catalog, Class, Fact, InputFrom, Kind, OutputKind, ParamDecl, RecipeInfo,
    Replicates, Section, Shape, Summary,
};
use crate::error::Result;
use crate::graph::Graph;
use crate::job::JobSpec;
use crate::params::Value;
use crate::studyfile::Studyfile;
use std::path::Path;

/// The made-up study's catalog.
pub struct TestCatalog {
    shape: Shape,
    recipes: Vec<RecipeInfo>,
}

fn p(name: &'static str, default: Option<Value>) -> ParamDecl {
    ParamDecl {
        name,
        default,
        doc: "",
    }
}

/// The made-up study.
pub fn catalog() -> TestCatalog {
    let shape = Shape {
        sections: vec![Section {
            table: "sources",
            kind: "source",
            default_output: OutputKind::File("txt"),
        }],
        axes: vec![
            Axis {
                name: "level",
                values: AxisValues::Structural,
            },
            Axis {
                name: "source",
                values: AxisValues::Names { section: "sources" },
            },
        ],
        condition_name: "l{level}_{source}",
        kinds: vec![
            Kind {
                name: "prepared",
                default_recipe: "prepare",
                inputs: vec![("source", InputFrom::Axis("source"))],
                output_name: "prepared",
                command_inputs: vec![],
                default_output: OutputKind::File("txt"),
                aliases: vec![],
                class: None,
            },
            Kind {
                name: "fit",
                default_recipe: "fit",
                inputs: vec![("prepared", InputFrom::Kind("prepared"))],
                output_name: "fitted",
                command_inputs: vec![("source", InputFrom::Axis("source"))],
                default_output: OutputKind::Dir,
                aliases: vec![("seed", "fit_seed")],
                class: None,
            },
        ],
        summary: Some(Summary {
            name: "summary",
            default_recipe: "summarise",
            per_condition: vec!["fit"],
            sections: vec!["sources"],
            axis_params: vec!["level"],
        }),
        condition_params: vec!["seed"],
        replicates: Some(Replicates {
            param: "fit_seed",
            fallback: None,
            kinds: vec!["fit"],
            prefix: "s",
        }),
        classes: vec![Class {
            name: "check",
            read_by: "fit",
            doc: "a check of the prepared data, read by the fit",
        }],
    };
    let recipes = vec![
        RecipeInfo {
            name: "constant",
            version: 1,
            params: vec![p("value", Some(Value::Int(1)))],
            inputs: vec![],
            output: OutputKind::File("txt"),
            doc: "",
        },
        RecipeInfo {
            name: "prepare",
            version: 2,
            params: vec![p("level", None), p("size", Some(Value::Int(8)))],
            inputs: vec!["source"],
            output: OutputKind::File("txt"),
            doc: "",
        },
        RecipeInfo {
            name: "fit",
            version: 1,
            params: vec![
                p("level", None),
                p("seed", None),
                p("steps", None),
                p("size", Some(Value::Int(8))),
            ],
            inputs: vec!["prepared", "check.*"],
            output: OutputKind::Dir,
            doc: "",
        },
        RecipeInfo {
            name: "summarise",
            version: 1,
            params: vec![],
            inputs: vec!["*"],
            output: OutputKind::Dir,
            doc: "",
        },
    ];
    TestCatalog { shape, recipes }
}

impl Catalog for TestCatalog {
    fn shape(&self) -> &Shape {
        &self.shape
    }
    fn recipe(&self, name: &str) -> Option<&RecipeInfo> {
        self.recipes.iter().find(|r| r.name == name)
    }
    fn recipes(&self) -> Vec<&RecipeInfo> {
        self.recipes.iter().collect()
    }
    fn check_param(&self, name: &str, value: &Value) -> std::result::Result<(), String> {
        match name {
            "level" => match value.as_i64() {
                Some(l) if (1..=4).contains(&l) => Ok(()),
                _ => Err(format!(
                    "`level` must be an integer from 1 to 4, found {value}"
                )),
            },
            "steps" => match value.as_i64() {
                Some(s) if s > 0 => Ok(()),
                _ => Err(format!("`steps` must be a positive integer, found {value}")),
            },
            _ => Ok(()),
        }
    }
    fn inspect(&self, _kind: &str, _output: &Path) -> Result<Vec<Fact>> {
        Ok(Vec::new())
    }
    fn run(&self, _job: &JobSpec) -> Result<()> {
        Ok(())
    }
}

/// A Studyfile of the made-up study: `[study]` and two sources, then `rest`.
pub fn studyfile_text(rest: &str) -> String {
    format!(
        "[study]\nname = \"t\"\n\n[params]\nfit_seed = 3\nsteps = 10\n\n\
         [sources.a]\nrecipe = \"constant\"\n\n[sources.b]\nrecipe = \"constant\"\nparams = {{ value = 2 }}\n\n{rest}"
    )
}

/// Parse Studyfile text of the made-up study.
pub fn parse(text: &str) -> Result<Studyfile> {
    Studyfile::parse(Path::new("Studyfile"), text.to_string(), catalog().shape())
}

/// Expand Studyfile text of the made-up study.
pub fn graph(text: &str) -> Result<Graph> {
    Graph::from_studyfile(&parse(text)?, None, &catalog())
}
