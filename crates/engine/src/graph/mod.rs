//! The target graph: a Studyfile expanded, with the study's [`Shape`], into targets (shared
//! artifacts, every condition's targets, the study-wide summary), each with its recipe, fully
//! resolved parameters, inputs and output path, in a checked topological order.
//!
//! The expansion, one concept per module:
//!
//! * [`resolve`]: parameter layers and resolution (the recipe's default, `[params]`, the
//!   profile, then the condition's or artifact's own), range checks and unused parameters;
//! * [`command`]: what an external command reads (its placeholders) and its checks;
//! * [`matrix`]: the conditions, from `[matrix]` and `[conditions.NAME]`;
//! * [`declared`]: the kinds the Studyfile declares (`[targets.NAME]`), added to the shape;
//! * [`wiring`]: the targets of sections, conditions and the summary, with their inputs;
//! * [`order`]: the topological order and its cycle error;
//! * [`dot`]: the graph in DOT.
//!
//! A condition's kinds may read a recipe parameter under another study parameter's name (its
//! aliases, from the shape). A structural parameter comes from the condition and can be set
//! nowhere else. A target's key contains only the parameters its recipe reads.

mod command;
mod declared;
mod dot;
mod matrix;
mod order;
mod resolve;
mod wiring;

pub use command::placeholders;

use crate::catalog::{Catalog, Shape};
use crate::error::{Error, Result};
use crate::params::{Params, Value};
use crate::recipe::{Recipe, RecipeDecl};
use crate::studyfile::{did_you_mean, ParamTable, Studyfile};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

/// Where an input comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum InputSource {
    /// Another target's output (index into [`Graph::targets`]).
    Target(usize),
    /// A source file outside the study (absolute path).
    File(PathBuf),
}

/// One input of a target, by role.
#[derive(Clone, Debug)]
pub struct Input {
    pub role: String,
    pub source: InputSource,
}

/// One artifact to build.
#[derive(Clone, Debug)]
pub struct Target {
    /// `SECTION/NAME`, `CONDITION/KIND`, `CONDITION/REPLICATE/KIND`, or the summary's name.
    pub name: String,
    /// The kind of a section's artifacts, a condition kind, or the summary's.
    pub kind: String,
    pub condition: Option<String>,
    pub recipe: Recipe,
    /// Exactly the parameters the recipe reads, resolved.
    pub params: Params,
    pub inputs: Vec<Input>,
    /// Output path relative to the study directory.
    pub output: PathBuf,
    pub output_is_dir: bool,
}

/// One cell of the condition matrix: its name and the value of every axis (an integer for a
/// structural axis, an artifact's name otherwise).
#[derive(Clone, Debug)]
pub struct Condition {
    pub name: String,
    pub axes: BTreeMap<String, Value>,
}

impl Condition {
    /// The condition's value of an axis.
    pub fn value(&self, axis: &str) -> Option<&Value> {
        self.axes.get(axis)
    }

    /// The artifact name an axis names.
    fn artifact(&self, axis: &str) -> &str {
        self.axes.get(axis).and_then(Value::as_str).unwrap_or("")
    }
}

/// The expanded study.
#[derive(Debug)]
pub struct Graph {
    pub name: String,
    pub studyfile: PathBuf,
    /// Absolute study (output) directory.
    pub out_dir: PathBuf,
    pub profile: Option<String>,
    pub conditions: Vec<Condition>,
    pub targets: Vec<Target>,
    /// Target indices in dependency order.
    pub order: Vec<usize>,
    /// The `[executor]` table, interpreted by the executor.
    pub executor: Option<toml::Value>,
    /// The study's shape with the kinds the Studyfile declares (`[targets.NAME]`) added: what
    /// the build, `verify` and the executors consult, rather than the catalog's own.
    pub shape: Shape,
}

/// The longest study, artifact or condition name.
pub const MAX_NAME: usize = 100;

/// Whether a name may be a study, artifact or condition name; if not, what is wrong with it, as
/// the end of a sentence naming it ("`x` is empty").
fn check_name(s: &str) -> std::result::Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    let n = s.chars().count();
    if n > MAX_NAME {
        return Err(format!(
            "is {n} characters; names are at most {MAX_NAME} characters"
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "contains {c:?}; names must be letters, digits, `_`, `-` or `.`"
        ));
    }
    if s.starts_with('.') {
        return Err("starts with `.`; names must not".into());
    }
    Ok(())
}

/// Selectors and files of every study that a condition may not be named after (besides the
/// shape's sections, kinds and summary, see [`Builder::reserved`]): a condition's outputs live
/// in a directory of its name beside them, and its name is a selector.
pub const RESERVED_NAMES: [&str; 3] = ["all", "logs", "study"];

/// A parameter layer with positions, for resolution and "unused parameter" errors.
struct Layer<'a> {
    table: &'a ParamTable,
    what: String,
}

/// The expansion in progress; its parts live in the submodules.
struct Builder<'a> {
    sf: &'a Studyfile,
    catalog: &'a dyn Catalog,
    shape: &'a Shape,
    layers: Vec<Layer<'a>>,
    /// Study parameter names some target reads.
    consumed: BTreeSet<String>,
    targets: Vec<Target>,
    index: HashMap<String, usize>,
    /// Span of each target's declaration, for messages.
    spans: Vec<Range<usize>>,
    /// Parsed `[recipes]` declarations by target kind.
    kind_decls: HashMap<String, (RecipeDecl, Range<usize>)>,
    /// The parameters a condition kind's external command reads, once checked (the same for
    /// every condition).
    command_params: HashMap<String, BTreeSet<String>>,
    /// Each condition's replicate labels (`s42`), `None` for its one unlabelled replicate.
    replicate_labels: HashMap<String, Vec<Option<String>>>,
    /// The kinds the Studyfile declares, by name.
    declared: BTreeMap<String, declared::Declared<'a>>,
}

impl Graph {
    /// Load a Studyfile and expand it with the given profile.
    pub fn load(path: &Path, profile: Option<&str>, catalog: &dyn Catalog) -> Result<Graph> {
        let sf = Studyfile::load(path, catalog.shape())?;
        Self::from_studyfile(&sf, profile, catalog)
    }

    /// The output directory a parsed Studyfile declares (absolute), checked to stay inside the
    /// Studyfile's directory.
    pub fn out_dir_of(sf: &Studyfile) -> Result<PathBuf> {
        let out_rel = sf.raw.study.output.get_ref();
        let out_path = Path::new(out_rel);
        if out_rel.is_empty()
            || out_path.is_absolute()
            || out_path
                .components()
                .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(sf.error(
                sf.raw.study.output.span(),
                format!(
                    "`study.output` {out_rel:?} must be a relative path inside the Studyfile's \
                     directory (no `..`, not absolute)"
                ),
            ));
        }
        let dir = std::path::absolute(&sf.dir).map_err(|e| Error::io(&sf.dir, e))?;
        Ok(dir.join(out_path))
    }

    /// Expand a parsed Studyfile.
    pub fn from_studyfile(
        sf: &Studyfile,
        profile: Option<&str>,
        catalog: &dyn Catalog,
    ) -> Result<Graph> {
        let raw = &sf.raw;
        let name = raw.study.name.get_ref().clone();
        if let Err(why) = check_name(&name) {
            return Err(sf.error(raw.study.name.span(), format!("`study.name` {why}")));
        }
        let out_dir = Self::out_dir_of(sf)?;
        let (shape, declared) = declared::extend(sf, catalog)?;
        let kind_decls = declared
            .iter()
            .map(|(n, d)| (n.clone(), (d.decl.clone(), d.span.clone())))
            .collect();
        let mut b = Builder {
            sf,
            catalog,
            shape: &shape,
            layers: Vec::new(),
            consumed: BTreeSet::new(),
            targets: Vec::new(),
            index: HashMap::new(),
            spans: Vec::new(),
            kind_decls,
            command_params: HashMap::new(),
            replicate_labels: HashMap::new(),
            declared,
        };
        b.layers = b.layers(profile)?;
        for section in &b.shape.sections {
            b.add_section(section)?;
        }
        let conditions = b.conditions()?;
        for c in &conditions {
            b.add_condition(c)?;
        }
        if !conditions.is_empty() {
            b.add_summary(&conditions)?;
        }
        b.check_unused_params()?;
        let order = b.topo_order()?;
        let targets = b.targets;
        Ok(Graph {
            name,
            studyfile: sf.path.clone(),
            out_dir,
            profile: profile.map(str::to_string),
            conditions,
            targets,
            order,
            executor: raw.executor.as_ref().map(|e| e.get_ref().clone()),
            shape,
        })
    }

    /// Index of a target by name.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.targets.iter().position(|t| t.name == name)
    }

    /// Targets to build for the command-line selection (with everything they need), in order.
    /// Accepts `all`, a target name, a condition name, a section's table name (`sources`), a
    /// kind (`fit` = every condition's fit), a replicate (`l1_a/s3`), or a condition's kind
    /// over all its replicates (`l1_a/fit`).
    pub fn select(&self, names: &[String]) -> Result<Vec<usize>> {
        let names: Vec<String> = if names.is_empty() {
            vec!["all".into()]
        } else {
            names.to_vec()
        };
        let mut wanted = self.matches(&names)?;
        // Close over inputs.
        let mut stack: Vec<usize> = wanted.iter().copied().collect();
        while let Some(i) = stack.pop() {
            for inp in &self.targets[i].inputs {
                if let InputSource::Target(j) = inp.source {
                    if wanted.insert(j) {
                        stack.push(j);
                    }
                }
            }
        }
        Ok(self
            .order
            .iter()
            .copied()
            .filter(|i| wanted.contains(i))
            .collect())
    }

    /// The targets the selectors `names` denote, without their inputs: the one parser of
    /// selectors (`all`, a target, a condition, a kind, a group such as `probes`, any of them
    /// with a trailing `/`), shared by the build and `clean`.
    pub fn matches(&self, names: &[String]) -> Result<BTreeSet<usize>> {
        let mut wanted = BTreeSet::new();
        for n in names {
            let n = n.trim_end_matches('/');
            let hits: Vec<usize> = if n == "all" {
                (0..self.targets.len()).collect()
            } else if let Some(i) = self.find(n) {
                vec![i]
            } else {
                // A condition, a kind, a group (`probes`, a replicate `gs1/s42`), or a
                // condition's kind over all its replicates (`gs1/model`).
                let group = format!("{n}/");
                let kind_of = n.split_once('/');
                let by_group: Vec<usize> = self
                    .targets
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| {
                        t.condition.as_deref() == Some(n)
                            || t.kind == n
                            || t.name.starts_with(&group)
                            || kind_of.is_some_and(|(c, k)| {
                                t.condition.as_deref() == Some(c) && t.kind == k
                            })
                    })
                    .map(|(i, _)| i)
                    .collect();
                if by_group.is_empty() {
                    let mut candidates: Vec<&str> =
                        self.targets.iter().map(|t| t.name.as_str()).collect();
                    candidates.extend(self.conditions.iter().map(|c| c.name.as_str()));
                    return Err(Error::Usage(format!(
                        "no target or condition `{n}` in {}{}; `studymake status` lists the targets",
                        self.studyfile.display(),
                        did_you_mean(n, candidates)
                    )));
                }
                by_group
            };
            wanted.extend(hits);
        }
        Ok(wanted)
    }

    /// Indices of the targets that read `i`'s output.
    pub fn dependents(&self, i: usize) -> Vec<usize> {
        self.targets
            .iter()
            .enumerate()
            .filter(|(_, t)| {
                t.inputs
                    .iter()
                    .any(|inp| inp.source == InputSource::Target(i))
            })
            .map(|(j, _)| j)
            .collect()
    }

    /// Absolute output path of a target.
    pub fn output_path(&self, i: usize) -> PathBuf {
        self.out_dir.join(&self.targets[i].output)
    }

    /// The values an external command's argv is given besides its parameters, `{output}` and
    /// `{report}`: `target`, `condition` and `input.ROLE` (a path relative to the study
    /// directory), for each placeholder the argv template uses. They are key material (see the
    /// `key` module's item 6); built-in recipes have none.
    pub fn bindings(&self, i: usize) -> BTreeMap<String, String> {
        let t = &self.targets[i];
        let mut out = BTreeMap::new();
        let Recipe::Command { argv, .. } = &t.recipe else {
            return out;
        };
        for ph in argv.iter().flat_map(|a| placeholders(a)) {
            let value = match ph.as_str() {
                "target" => t.name.clone(),
                "condition" => t.condition.clone().unwrap_or_default(),
                p => match p.strip_prefix("input.") {
                    Some(role) => match t.inputs.iter().find(|inp| inp.role == role) {
                        Some(inp) => match &inp.source {
                            InputSource::Target(j) => {
                                self.targets[*j].output.to_string_lossy().into_owned()
                            }
                            InputSource::File(p) => {
                                let dir = self.studyfile_dir().unwrap_or_default();
                                p.strip_prefix(&dir)
                                    .unwrap_or(p)
                                    .to_string_lossy()
                                    .into_owned()
                            }
                        },
                        None => continue,
                    },
                    None => continue,
                },
            };
            out.insert(ph, value);
        }
        out
    }

    /// The Studyfile's directory, absolute: where workers run and relative paths start.
    pub fn studyfile_dir(&self) -> Result<PathBuf> {
        let d = self
            .studyfile
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        std::path::absolute(&d).map_err(|e| Error::io(&d, e))
    }

    /// What the catalog reads target `i`'s output as ([`Shape::inspected_as`]).
    pub fn inspected_as(&self, i: usize) -> &str {
        self.shape.inspected_as(&self.targets[i].kind)
    }

    /// The condition of a target, if it has one.
    pub fn condition_of(&self, t: &Target) -> Option<&Condition> {
        let name = t.condition.as_deref()?;
        self.conditions.iter().find(|c| c.name == name)
    }
}

impl Builder<'_> {
    /// Why a condition may not be called `name`, if it may not: a name that is also a selector,
    /// a kind or a top-level directory of the study (`report`, `model`, `all`, `logs`, ...).
    fn reserved(&self, name: &str) -> Option<String> {
        let mut names: Vec<&str> = RESERVED_NAMES.to_vec();
        for sec in &self.shape.sections {
            names.extend([sec.table, sec.kind]);
        }
        names.extend(self.shape.kinds.iter().map(|k| k.name));
        names.extend(self.shape.summary.as_ref().map(|s| s.name));
        names.contains(&name).then(|| {
            format!(
                "`{name}` is a reserved name (a selector, a kind or a directory of the study: \
                 {}); choose another",
                names.join(", ")
            )
        })
    }

    fn push(&mut self, t: Target, span: Range<usize>) -> Result<usize> {
        if self.index.contains_key(&t.name) {
            return Err(self
                .sf
                .error(span, format!("target `{}` is declared twice", t.name)));
        }
        let i = self.targets.len();
        self.index.insert(t.name.clone(), i);
        self.targets.push(t);
        self.spans.push(span);
        Ok(i)
    }
}

#[cfg(test)]
mod tests;
