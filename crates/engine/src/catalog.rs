//! The engine's view of a study: the shape of its targets (shared artifacts, the condition
//! matrix, the kinds every condition has, the study-wide summary), which parameters are
//! structural, the built-in recipes, and how structural facts are read back from an artifact.
//!
//! The study layer implements [`Catalog`] and the binary hands it to the engine as a trait
//! object, so the engine never imports, nor names, the science: every kind, section, axis and
//! parameter name below comes from the catalog.

use crate::error::Result;
use crate::job::JobSpec;
use crate::params::{Params, Value};
use std::collections::BTreeMap;
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
    /// Input roles; `"*"` accepts any roles (the summary takes every condition's results), and
    /// `"PREFIX.*"` any number of roles `PREFIX.NAME` (a class of declared targets).
    pub inputs: Vec<&'static str>,
    pub output: OutputKind,
    pub doc: &'static str,
}

/// A table of shared artifacts declared one by one in the Studyfile (`[TABLE.NAME]`).
#[derive(Clone, Debug)]
pub struct Section {
    /// The Studyfile table, also the first part of its targets' names (`TABLE/NAME`).
    pub table: &'static str,
    /// The kind of its targets; their outputs are `NAME_KIND.EXT` in the study directory.
    pub kind: &'static str,
    /// The output of a command recipe that does not declare one.
    pub default_output: OutputKind,
}

/// The values an axis of the condition matrix takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AxisValues {
    /// A structural parameter: `[matrix]` lists integers, a new condition sets one. Every target
    /// of the condition that reads the parameter gets the condition's value, nothing else may set
    /// it, and a built target must confirm it: reported by its recipe or read back from its
    /// output ([`Catalog::inspect`]); a disagreement is refused before anything is published.
    Structural,
    /// Names of artifacts of a section, listed in `[matrix]` (one condition per name).
    Names { section: &'static str },
    /// The name of one artifact of a section, the same for every matrix condition; it may be
    /// left out when the section declares exactly one artifact.
    Name { section: &'static str },
}

/// One axis of the condition matrix: a key of `[matrix]` and of `[conditions.NAME]`.
#[derive(Clone, Debug)]
pub struct Axis {
    pub name: &'static str,
    pub values: AxisValues,
}

/// Where an input of a condition's target comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputFrom {
    /// The artifact the condition's axis names (a `Names` or `Name` axis).
    Axis(&'static str),
    /// The same condition's target of another kind.
    Kind(&'static str),
}

/// A kind of target every condition has.
#[derive(Clone, Debug)]
pub struct Kind {
    pub name: &'static str,
    /// The built-in recipe when `[recipes]` does not name one.
    pub default_recipe: &'static str,
    /// Its input roles, in order, and where each comes from.
    pub inputs: Vec<(&'static str, InputFrom)>,
    /// Inputs an external command of this kind may also read: each is given to a command whose
    /// argv names it (`{input.ROLE}`), and so is in its key; built-in recipes never get them.
    pub command_inputs: Vec<(&'static str, InputFrom)>,
    /// The output's name in the condition's directory, before any extension.
    pub output_name: &'static str,
    /// The output of a command recipe that does not declare one.
    pub default_output: OutputKind,
    /// Recipe parameters this kind reads under another study parameter's name:
    /// `(recipe parameter, study parameter)`.
    pub aliases: Vec<(&'static str, &'static str)>,
    /// The class of a kind declared in the Studyfile (`[targets.NAME] kind = "CLASS"`), which
    /// says how its output is read back ([`Catalog::inspect`]) and which kind reads it;
    /// `None` for the study's own kinds and a declared kind without a class.
    pub class: Option<&'static str>,
}

impl Kind {
    /// What [`Catalog::inspect`] reads a target of this kind as: its class, else its name.
    pub fn inspected_as(&self) -> &'static str {
        self.class.unwrap_or(self.name)
    }
}

impl Kind {
    /// The study parameter this kind reads for a recipe parameter.
    pub fn study_name<'a>(&self, param: &'a str) -> &'a str {
        match self.aliases.iter().find(|(p, _)| *p == param) {
            Some((_, s)) => s,
            None => param,
        }
    }
}

/// A class of target a Studyfile may declare for every condition (`[targets.NAME]` with
/// `kind = "CLASS"`): the study knows how to read its output ([`Catalog::inspect`] of the class)
/// and which of the condition's kinds reads every target of the class, under the input role
/// `CLASS.NAME` (its built-in recipe accepts the roles `CLASS.*`).
#[derive(Clone, Debug)]
pub struct Class {
    pub name: &'static str,
    /// The condition kind that reads every declared target of the class.
    pub read_by: &'static str,
    /// What a target of the class must write, for messages and `studymake recipes`.
    pub doc: &'static str,
}

/// The study-wide target that reads every condition (it may be switched off with
/// `[recipes] NAME = false`).
#[derive(Clone, Debug)]
pub struct Summary {
    /// Its target name, kind and output name.
    pub name: &'static str,
    /// The built-in recipe when `[recipes]` does not name one.
    pub default_recipe: &'static str,
    /// Kinds of every condition it reads, as input roles `KIND.CONDITION`.
    pub per_condition: Vec<&'static str>,
    /// Sections whose every artifact it reads, as input roles `KIND.NAME`.
    pub sections: Vec<&'static str>,
    /// Axes whose values it gets as parameters `AXIS.CONDITION`.
    pub axis_params: Vec<&'static str>,
}

/// Replicates: a parameter of some condition kinds that may list several values (a seed), each
/// giving its own target of every replicated kind, so a condition's result can be measured with
/// its spread while the targets that do not read it (its datasets) are built once.
///
/// `PARAM = [42, 1, 2]` (in `[params]`, a profile or a condition's table) gives each replicated
/// kind one target per value, `CONDITION/PREFIX<value>/KIND` (`gs1_idealized/s42/model`), whose
/// inputs of replicated kinds are the same replicate's; a single value (`PARAM = 42`) gives the
/// plain `CONDITION/KIND`. The summary reads each replicate as `KIND.CONDITION/PREFIX<value>`.
#[derive(Clone, Debug)]
pub struct Replicates {
    /// The study parameter that may list values.
    pub param: &'static str,
    /// The study parameter read in its place when it is set nowhere (always one replicate).
    pub fallback: Option<&'static str>,
    /// The kinds replicated: those that read `param` and those that read their outputs.
    pub kinds: Vec<&'static str>,
    /// The replicate's directory is this prefix and the value (`s` + `42`).
    pub prefix: &'static str,
}

/// How a study's targets are laid out, declared by the study layer.
#[derive(Clone, Debug)]
pub struct Shape {
    /// Tables of shared artifacts, in the order they are expanded.
    pub sections: Vec<Section>,
    /// The condition matrix's axes, outermost first: a matrix condition exists for every
    /// combination of the listed values.
    pub axes: Vec<Axis>,
    /// A matrix condition's name when `[matrix] name` is not given, with `{AXIS}` placeholders.
    pub condition_name: &'static str,
    /// The kinds every condition has, in build order.
    pub kinds: Vec<Kind>,
    /// The study-wide target over every condition, if the study has one.
    pub summary: Option<Summary>,
    /// Parameters that identify a condition's data beside its structural axes (its seeds): every
    /// command recipe of a condition reads them (each may be a bare placeholder such as
    /// `{seed}`), and `verify` checks their recorded and reported values against the declaration.
    pub condition_params: Vec<&'static str>,
    /// The kinds that may be built several times per condition, one per value of a parameter.
    pub replicates: Option<Replicates>,
    /// The classes a kind declared in the Studyfile may have.
    pub classes: Vec<Class>,
}

impl Shape {
    /// A condition kind by name.
    pub fn kind(&self, name: &str) -> Option<&Kind> {
        self.kinds.iter().find(|k| k.name == name)
    }

    /// A class of declared targets by name.
    pub fn class(&self, name: &str) -> Option<&Class> {
        self.classes.iter().find(|c| c.name == name)
    }

    /// What [`Catalog::inspect`] reads a target of `kind` as (see [`Kind::inspected_as`]).
    pub fn inspected_as<'a>(&self, kind: &'a str) -> &'a str {
        match self.kind(kind) {
            Some(k) => k.inspected_as(),
            None => kind,
        }
    }

    /// An axis by name.
    pub fn axis(&self, name: &str) -> Option<&Axis> {
        self.axes.iter().find(|a| a.name == name)
    }

    /// Whether `name` is a structural parameter (an axis whose values are numbers).
    pub fn is_structural(&self, name: &str) -> bool {
        self.axis(name)
            .is_some_and(|a| a.values == AxisValues::Structural)
    }

    /// The structural parameters, in axis order.
    pub fn structural(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.axes
            .iter()
            .filter(|a| a.values == AxisValues::Structural)
            .map(|a| a.name)
    }

    /// Every target kind: the sections', the conditions', the summary's.
    pub fn all_kinds(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = self.sections.iter().map(|s| s.kind).collect();
        out.extend(self.kinds.iter().map(|k| k.name));
        out.extend(self.summary.iter().map(|s| s.name));
        out
    }

    /// Whether targets of `kind` are replicated.
    pub fn is_replicated(&self, kind: &str) -> bool {
        self.replicates
            .as_ref()
            .is_some_and(|r| r.kinds.contains(&kind))
    }

    /// The study parameter a target of `kind` reads for a recipe parameter.
    pub fn study_name<'a>(&self, kind: &str, param: &'a str) -> &'a str {
        match self.kind(kind) {
            Some(k) => k.study_name(param),
            None => param,
        }
    }
}

/// A fact about an artifact read from its content, never from any configuration: what the
/// artifact *is*, for comparison with what it was declared to be.
#[derive(Clone, Debug, PartialEq)]
pub struct Fact {
    /// The parameter it speaks for.
    pub param: String,
    /// The condition it is about, for an artifact over several conditions (the summary);
    /// `None`: the target's own condition.
    pub condition: Option<String>,
    pub value: Value,
    /// Where it was read, in words, for messages: "the dataset's group_index width".
    pub source: String,
    /// A short stable name for manifests: `group_width.level`.
    pub label: String,
}

/// The declared parameters of one condition's targets, by kind (for [`Catalog::audit`]).
pub type ConditionParams<'a> = BTreeMap<&'a str, &'a Params>;

/// The study, as the engine sees it.
pub trait Catalog: Send + Sync {
    /// How the study's targets are laid out.
    fn shape(&self) -> &Shape;
    /// A built-in recipe by name.
    fn recipe(&self, name: &str) -> Option<&RecipeInfo>;
    /// Every built-in recipe, for `--help`, "did you mean" and `studymake recipes`.
    fn recipes(&self) -> Vec<&RecipeInfo>;
    /// Check a parameter's value against the range the study relies on, so a bad value fails
    /// when the Studyfile is read, not mid-build. The message names the parameter.
    fn check_param(&self, name: &str, value: &Value) -> std::result::Result<(), String>;
    /// Facts read back from the output of a target of `kind` (a kind of the shape, or the class
    /// of a declared one: see [`Shape::inspected_as`]): one reading per artifact kind. Empty for
    /// kinds without any; an error when the output is not readable as its kind.
    fn inspect(&self, kind: &str, output: &Path) -> Result<Vec<Fact>>;
    /// Study rules over one condition's declared parameters that `verify` checks beside the
    /// engine's own: `(kind of the target concerned, message)` for each one broken.
    fn audit(&self, _condition: &ConditionParams) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// Build one job with a built-in recipe and write its worker report (the worker side).
    fn run(&self, job: &JobSpec) -> Result<()>;
}
