//! The engine's view of the recipes: names, versions, the parameters and inputs each declares, and
//! how to read structural facts back out of an artifact. Implemented by `recipes`, handed to the
//! engine as a trait object so the engine never imports the science.

use crate::error::Result;
use crate::params::{Params, Value};
use std::path::Path;

/// Whether a recipe writes one file or a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// A single file with this extension (without the dot), e.g. `npz`.
    File(&'static str),
    /// A directory.
    Dir,
}

/// A parameter a recipe reads, with its default when the Studyfile does not set it.
#[derive(Clone, Debug)]
pub struct ParamDecl {
    pub name: &'static str,
    pub default: Option<Value>,
    pub doc: &'static str,
}

/// Everything the engine needs to know about a built-in recipe.
#[derive(Clone, Debug)]
pub struct RecipeInfo {
    pub name: &'static str,
    /// Bumped whenever the recipe's output for the same inputs and parameters may change.
    pub version: u32,
    pub params: Vec<ParamDecl>,
    /// Input roles; `"*"` accepts any roles (the report takes every condition's results).
    pub inputs: Vec<&'static str>,
    pub output: OutputKind,
    pub doc: &'static str,
}

/// The recipe catalog, as the engine sees it.
pub trait Catalog: Send + Sync {
    /// A built-in recipe by name.
    fn recipe(&self, name: &str) -> Option<&RecipeInfo>;
    /// Every built-in recipe, for `--help`, "did you mean" and `studymake recipes`.
    fn recipes(&self) -> Vec<&RecipeInfo>;
    /// Structural facts read from an artifact's content, not from any configuration: e.g.
    /// `gridsize` of a dataset from the width of its `group_index`, of a model from its first
    /// layer's input channels. `kind` is the target kind (`train_data`, `model`, ...). Returns an
    /// empty map for kinds or formats it does not know.
    fn inspect(&self, kind: &str, output: &Path) -> Result<Params>;
}
