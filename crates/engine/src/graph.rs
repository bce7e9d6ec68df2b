//! The target graph: a Studyfile expanded into targets (probes, objects, per-condition datasets,
//! models and metrics, the report), each with its recipe, fully resolved parameters, inputs and
//! output path, in a checked topological order.
//!
//! Parameter resolution, most specific last: the recipe's declared default, `[params]`, the
//! selected profile, then the condition's overrides (or a probe/object's own `params`). Each
//! target kind maps a few generic recipe parameters onto study parameters: a `train_data` or
//! `model` target's `seed` is `train_seed` and its `n_images` is `n_train`; a `test_data` or
//! `metrics` target's are `test_seed` and `n_test`. `gridsize` always comes from the condition and
//! can be set nowhere else. A target's key contains only the parameters its recipe reads.

use crate::catalog::{Catalog, OutputKind};
use crate::error::{Error, Result};
use crate::params::{Params, Value};
use crate::studyfile::{did_you_mean, ParamTable, RawArtifact, RecipeDecl, Studyfile};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use toml::Spanned;

/// The kinds of target every condition has, in build order.
pub const CONDITION_KINDS: [&str; 4] = ["train_data", "test_data", "model", "metrics"];

/// How a target is built.
#[derive(Clone, Debug, PartialEq)]
pub enum Recipe {
    Builtin {
        name: String,
        version: u32,
    },
    /// An argv template with `{placeholders}` (substituted only at job time).
    Command {
        argv: Vec<String>,
        version: Option<String>,
    },
}

impl Recipe {
    /// A short description for messages: `pinn v1` or `command ptycho_train`.
    pub fn describe(&self) -> String {
        match self {
            Recipe::Builtin { name, version } => format!("{name} v{version}"),
            Recipe::Command { argv, version } => match version {
                Some(v) => format!("command {} ({v})", argv[0]),
                None => format!("command {}", argv[0]),
            },
        }
    }
}

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
    /// `probes/idealized`, `gs2_hybrid/model`, `report`.
    pub name: String,
    /// `probe`, `object`, `train_data`, `test_data`, `model`, `metrics`, `report`.
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

/// One cell of the condition matrix.
#[derive(Clone, Debug)]
pub struct Condition {
    pub name: String,
    pub gridsize: i64,
    pub probe: String,
    pub object: String,
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
}

/// The study parameter a kind reads for a generic recipe parameter.
fn alias(kind: &str, param: &str) -> String {
    match (kind, param) {
        ("train_data" | "model", "seed") => "train_seed".into(),
        ("test_data" | "metrics", "seed") => "test_seed".into(),
        ("train_data" | "model", "n_images") => "n_train".into(),
        ("test_data" | "metrics", "n_images") => "n_test".into(),
        _ => param.into(),
    }
}

/// Check well-known parameters' ranges, so bad values fail at load time, not mid-build.
fn check_param(name: &str, v: &Value) -> std::result::Result<(), String> {
    let positive_int = |v: &Value| match v.as_i64() {
        Some(i) if i > 0 => Ok(()),
        _ => Err(format!("`{name}` must be a positive integer, found {v}")),
    };
    match name {
        "gridsize" => match v.as_i64() {
            Some(g) if (1..=8).contains(&g) => Ok(()),
            _ => Err(format!(
                "`gridsize` must be an integer from 1 to 8, found {v}"
            )),
        },
        "n_train" | "n_test" | "n_images" | "epochs" | "batch_size" | "lines" | "object_size" => {
            positive_int(v)
        }
        "train_seed" | "test_seed" | "seed" => match v.as_i64() {
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

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        && !s.starts_with('.')
}

/// A parameter layer with positions, for resolution and "unused parameter" errors.
struct Layer<'a> {
    table: &'a ParamTable,
    what: String,
}

struct Builder<'a> {
    sf: &'a Studyfile,
    catalog: &'a dyn Catalog,
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
}

impl Graph {
    /// Load a Studyfile and expand it with the given profile.
    pub fn load(path: &Path, profile: Option<&str>, catalog: &dyn Catalog) -> Result<Graph> {
        let sf = Studyfile::load(path)?;
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
        let out_dir = dir.join(out_path);

        Ok(out_dir)
    }

    /// Expand a parsed Studyfile.
    pub fn from_studyfile(
        sf: &Studyfile,
        profile: Option<&str>,
        catalog: &dyn Catalog,
    ) -> Result<Graph> {
        let raw = &sf.raw;
        let name = raw.study.name.get_ref().clone();
        if !valid_name(&name) {
            return Err(sf.error(
                raw.study.name.span(),
                format!("`study.name` {name:?} must be letters, digits, `_`, `-` or `.`"),
            ));
        }
        let out_dir = Self::out_dir_of(sf)?;

        let mut layers = vec![Layer {
            table: &raw.params,
            what: "[params]".into(),
        }];
        if let Some(p) = profile {
            let Some(t) = raw.profiles.get(p) else {
                let names: Vec<&str> = raw.profiles.keys().map(String::as_str).collect();
                return Err(Error::Usage(format!(
                    "{}: no profile `{p}`{}; profiles: {}",
                    sf.path.display(),
                    did_you_mean(p, names.iter().copied()),
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )));
            };
            layers.push(Layer {
                table: t.get_ref(),
                what: format!("[profiles.{p}]"),
            });
        }
        for layer in &layers {
            if let Some(v) = layer.table.get("gridsize") {
                return Err(sf.error(
                    v.span(),
                    format!(
                        "{}: `gridsize` is set by [matrix] or a condition, not here",
                        layer.what
                    ),
                ));
            }
            for (k, v) in layer.table {
                let val = sf.value(v, k)?;
                check_param(k, &val)
                    .map_err(|m| sf.error(v.span(), format!("{}: {m}", layer.what)))?;
            }
        }
        for t in raw.profiles.values() {
            for (k, v) in t.get_ref() {
                if k == "gridsize" {
                    return Err(sf.error(
                        v.span(),
                        "`gridsize` is set by [matrix] or a condition, not a profile",
                    ));
                }
            }
        }

        let mut b = Builder {
            sf,
            catalog,
            layers,
            consumed: BTreeSet::new(),
            targets: Vec::new(),
            index: HashMap::new(),
            spans: Vec::new(),
            kind_decls: HashMap::new(),
            command_params: HashMap::new(),
        };

        // Probes and objects, in an order where referenced probes come first.
        b.add_artifacts("probes", "probe", &raw.probes)?;
        b.add_artifacts("objects", "object", &raw.objects)?;

        let conditions = b.conditions()?;
        for c in &conditions {
            b.add_condition(c)?;
        }
        if !conditions.is_empty() {
            b.add_report(&conditions)?;
        }
        b.check_unused_params()?;

        let order = b.topo_order()?;
        Ok(Graph {
            name,
            studyfile: sf.path.clone(),
            out_dir,
            profile: profile.map(str::to_string),
            conditions,
            targets: b.targets,
            order,
            executor: raw.executor.as_ref().map(|e| e.get_ref().clone()),
        })
    }

    /// Index of a target by name.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.targets.iter().position(|t| t.name == name)
    }

    /// Targets to build for the command-line selection (with everything they need), in order.
    /// Accepts `all`, a target name, a condition name, `probes`, `objects`, or a kind
    /// (`model` = every condition's model).
    pub fn select(&self, names: &[String]) -> Result<Vec<usize>> {
        let mut wanted = BTreeSet::new();
        let names: Vec<String> = if names.is_empty() {
            vec!["all".into()]
        } else {
            names.to_vec()
        };
        for n in &names {
            let n = n.trim_end_matches('/');
            let hits: Vec<usize> = if n == "all" {
                (0..self.targets.len()).collect()
            } else if let Some(i) = self.find(n) {
                vec![i]
            } else {
                let by_group: Vec<usize> = self
                    .targets
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| {
                        t.condition.as_deref() == Some(n)
                            || t.kind == n
                            || t.name.split('/').next() == Some(n) && t.name.contains('/')
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

    /// The target graph in DOT.
    pub fn to_dot(&self) -> String {
        let mut s = format!(
            "digraph {:?} {{\n  rankdir=LR;\n  node [shape=box];\n",
            self.name
        );
        for t in &self.targets {
            s.push_str(&format!(
                "  {:?} [label=\"{}\\n{}\"];\n",
                t.name,
                t.name,
                t.recipe.describe()
            ));
        }
        for t in &self.targets {
            for inp in &t.inputs {
                match &inp.source {
                    InputSource::Target(j) => s.push_str(&format!(
                        "  {:?} -> {:?} [label={:?}];\n",
                        self.targets[*j].name, t.name, inp.role
                    )),
                    InputSource::File(p) => s.push_str(&format!(
                        "  {:?} [shape=note];\n  {:?} -> {:?} [label={:?}];\n",
                        p.display().to_string(),
                        p.display().to_string(),
                        t.name,
                        inp.role
                    )),
                }
            }
        }
        s.push_str("}\n");
        s
    }
}

impl<'a> Builder<'a> {
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

    /// Resolve one recipe parameter for a target. `own` is the most specific layer.
    fn resolve(
        &mut self,
        kind: &str,
        param: &str,
        own: Option<&ParamTable>,
        default: Option<&Value>,
        what: &str,
        span: Range<usize>,
    ) -> Result<Value> {
        let study_name = alias(kind, param);
        if let Some(own) = own {
            if let Some(v) = own.get(&study_name).or_else(|| own.get(param)) {
                let val = self.sf.value(v, param)?;
                check_param(param, &val)
                    .map_err(|m| self.sf.error(v.span(), format!("{what}: {m}")))?;
                return Ok(val);
            }
        }
        for layer in self.layers.iter().rev() {
            if let Some(v) = layer.table.get(&study_name) {
                self.consumed.insert(study_name.clone());
                let val = self.sf.value(v, &study_name)?;
                check_param(param, &val)
                    .map_err(|m| self.sf.error(v.span(), format!("{what}: {m}")))?;
                return Ok(val);
            }
        }
        self.consumed.insert(study_name.clone());
        match default {
            Some(d) => Ok(d.clone()),
            None => {
                Err(self.sf.error(
                    span,
                    format!(
                    "{what} needs parameter `{study_name}`{}, which is not set; add it to [params]",
                    if study_name != param { format!(" (its `{param}`)") } else { String::new() }
                ),
                ))
            }
        }
    }

    /// Recipe, params and output kind of a target; `provided` are the input roles it gets.
    #[allow(clippy::too_many_arguments)]
    fn recipe_and_params(
        &mut self,
        decl: &RecipeDecl,
        kind: &str,
        gridsize: Option<i64>,
        own: Option<&ParamTable>,
        provided: &[String],
        what: &str,
        span: Range<usize>,
        default_output: OutputKind,
    ) -> Result<(Recipe, Params, Option<String>)> {
        let mut params = Params::new();
        match decl {
            RecipeDecl::Builtin(name) => {
                let Some(info) = self.catalog.recipe(name) else {
                    let names: Vec<&str> = self.catalog.recipes().iter().map(|r| r.name).collect();
                    return Err(self.sf.error(
                        span,
                        format!(
                            "{what}: unknown recipe `{name}`{}; built-in recipes: {}",
                            did_you_mean(name, names.iter().copied()),
                            names.join(", ")
                        ),
                    ));
                };
                let info = info.clone();
                if !info.inputs.contains(&"*") {
                    let want: BTreeSet<&str> = info.inputs.iter().copied().collect();
                    let got: BTreeSet<&str> = provided.iter().map(String::as_str).collect();
                    if want != got {
                        return Err(self.sf.error(
                            span,
                            format!(
                                "{what}: recipe `{}` takes inputs [{}] but this target provides [{}]",
                                info.name,
                                info.inputs.join(", "),
                                provided.join(", ")
                            ),
                        ));
                    }
                }
                if let Some(own) = own {
                    for (k, v) in own {
                        let known = info
                            .params
                            .iter()
                            .any(|d| d.name == k || alias(kind, d.name) == *k);
                        if !known {
                            let names: Vec<&str> = info.params.iter().map(|d| d.name).collect();
                            return Err(self.sf.error(
                                v.span(),
                                format!(
                                    "{what}: recipe `{}` has no parameter `{k}`{}; it reads: {}",
                                    info.name,
                                    did_you_mean(k, names.iter().copied()),
                                    if names.is_empty() {
                                        "none".into()
                                    } else {
                                        names.join(", ")
                                    }
                                ),
                            ));
                        }
                    }
                }
                for decl in &info.params {
                    let v = if decl.name == "gridsize" {
                        match gridsize {
                            Some(g) => Value::Int(g),
                            None => {
                                return Err(self.sf.error(
                                    span,
                                    format!("{what}: recipe `{}` reads `gridsize`, which only condition targets have", info.name),
                                ))
                            }
                        }
                    } else {
                        self.resolve(
                            kind,
                            decl.name,
                            own,
                            decl.default.as_ref(),
                            what,
                            span.clone(),
                        )?
                    };
                    params.insert(decl.name.to_string(), v);
                }
                let ext = match info.output {
                    OutputKind::Dir => None,
                    OutputKind::File(e) => Some(e.to_string()),
                };
                Ok((
                    Recipe::Builtin {
                        name: info.name.to_string(),
                        version: info.version,
                    },
                    params,
                    ext,
                ))
            }
            RecipeDecl::Command {
                argv,
                version,
                output,
                params: extra,
            } => {
                let cached = match gridsize {
                    Some(_) => self.command_params.get(kind).cloned(),
                    None => None,
                };
                let names = match cached {
                    Some(n) => n,
                    None => {
                        let n = self.command_names(argv, extra, gridsize, provided, what, &span)?;
                        if gridsize.is_some() {
                            self.command_params.insert(kind.to_string(), n.clone());
                        }
                        n
                    }
                };
                for n in &names {
                    let v = if n == "gridsize" {
                        Value::Int(gridsize.unwrap_or_default())
                    } else {
                        self.resolve(kind, n, own, None, what, span.clone())?
                    };
                    params.insert(n.clone(), v);
                }
                let ext = match output.as_deref() {
                    Some("dir") => None,
                    Some(e) if !e.is_empty() && e.chars().all(|c| c.is_ascii_alphanumeric()) => {
                        Some(e.to_string())
                    }
                    Some(e) => {
                        return Err(self.sf.error(
                            span,
                            format!("{what}: `output` must be \"dir\" or a file extension like \"npz\", found {e:?}"),
                        ))
                    }
                    None => match default_output {
                        OutputKind::Dir => None,
                        OutputKind::File(e) => Some(e.to_string()),
                    },
                };
                Ok((
                    Recipe::Command {
                        argv: argv.clone(),
                        version: version.clone(),
                    },
                    params,
                    ext,
                ))
            }
        }
    }

    /// The parameters an external command reads (its placeholders and declared `params`),
    /// checking every placeholder against what the target has.
    fn command_names(
        &self,
        argv: &[String],
        extra: &[String],
        gridsize: Option<i64>,
        provided: &[String],
        what: &str,
        span: &Range<usize>,
    ) -> Result<BTreeSet<String>> {
        let span = span.clone();
        let mut names: BTreeSet<String> = extra.iter().cloned().collect();
        for arg in argv {
            for ph in placeholders(arg) {
                match ph.as_str() {
                            "output" | "report" | "target" | "condition" => {}
                            "gridsize" if gridsize.is_none() => {
                                return Err(self.sf.error(
                                    span,
                                    format!("{what}: `{{gridsize}}` is only available to condition targets"),
                                ))
                            }
                            "gridsize" | "seed" => {
                                names.insert(ph.clone());
                            }
                            p if p.starts_with("param.") => {
                                names.insert(p["param.".len()..].to_string());
                            }
                            p if p.starts_with("input.") => {
                                let role = &p["input.".len()..];
                                if !provided.iter().any(|r| r == role) {
                                    return Err(self.sf.error(
                                        span,
                                        format!(
                                            "{what}: `{{{p}}}` names no input; this target's inputs are: {}",
                                            provided.join(", ")
                                        ),
                                    ));
                                }
                            }
                            other => {
                                return Err(self.sf.error(
                                    span,
                                    format!(
                                        "{what}: unknown placeholder `{{{other}}}`; use {{gridsize}}, {{seed}}, \
                                         {{param.NAME}}, {{input.ROLE}}, {{output}}, {{report}}, {{target}}, {{condition}}"
                                    ),
                                ))
                            }
                        }
            }
        }
        if gridsize.is_some() {
            names.insert("gridsize".into());
            names.insert("seed".into());
        }
        Ok(names)
    }

    fn add_artifacts(
        &mut self,
        section: &str,
        kind: &str,
        table: &'a BTreeMap<String, Spanned<RawArtifact>>,
    ) -> Result<()> {
        // (target index, input position, referenced target name), resolved once all are pushed.
        let mut pending: Vec<(usize, usize, String)> = Vec::new();
        for (name, art) in table {
            let what = format!("{section}.{name}");
            if !valid_name(name) {
                return Err(self.sf.error(
                    art.span(),
                    format!("`{what}`: names must be letters, digits, `_`, `-` or `.`"),
                ));
            }
            let decl = self.sf.artifact_recipe(art, &what)?;
            let mut inputs = Vec::new();
            let mut roles = Vec::new();
            for (role, v) in &art.get_ref().inputs {
                roles.push(role.clone());
                let source = match v.get_ref() {
                    // A reference to another artifact of the same section, resolved below.
                    toml::Value::String(r) => {
                        if !table.contains_key(r) {
                            let names: Vec<&str> = table.keys().map(String::as_str).collect();
                            return Err(self.sf.error(
                                v.span(),
                                format!("{what}: input `{role}` names unknown {kind} `{r}`{}", did_you_mean(r, names.iter().copied())),
                            ));
                        }
                        pending.push((self.targets.len(), inputs.len(), format!("{section}/{r}")));
                        InputSource::Target(usize::MAX)
                    }
                    toml::Value::Table(t) => match t.get("path") {
                        Some(toml::Value::String(p)) if t.len() == 1 => {
                            let path = self.sf.dir.join(p);
                            let path = std::path::absolute(&path).map_err(|e| Error::io(&path, e))?;
                            InputSource::File(path)
                        }
                        _ => {
                            return Err(self.sf.error(
                                v.span(),
                                format!("{what}: input `{role}` must be a {kind} name or {{ path = \"FILE\" }}"),
                            ))
                        }
                    },
                    other => {
                        return Err(self.sf.error(
                            v.span(),
                            format!(
                                "{what}: input `{role}` must be a {kind} name or {{ path = \"FILE\" }}, found {}",
                                crate::studyfile::toml_type(other)
                            ),
                        ))
                    }
                };
                inputs.push(Input {
                    role: role.clone(),
                    source,
                });
            }
            let default_out = if kind == "probe" {
                OutputKind::File("npy")
            } else {
                OutputKind::File("npz")
            };
            let (recipe, params, ext) = self.recipe_and_params(
                &decl,
                kind,
                None,
                Some(&art.get_ref().params),
                &roles,
                &what,
                art.span(),
                default_out,
            )?;
            let output = match &ext {
                Some(e) => PathBuf::from(format!("{name}_{kind}.{e}")),
                None => PathBuf::from(format!("{name}_{kind}")),
            };
            self.push(
                Target {
                    name: format!("{section}/{name}"),
                    kind: kind.to_string(),
                    condition: None,
                    recipe,
                    params,
                    inputs,
                    output,
                    output_is_dir: ext.is_none(),
                },
                art.span(),
            )?;
        }
        for (t, k, name) in pending {
            self.targets[t].inputs[k].source = InputSource::Target(self.index[&name]);
        }
        Ok(())
    }

    fn conditions(&mut self) -> Result<Vec<Condition>> {
        let raw = &self.sf.raw;
        let mut out: Vec<Condition> = Vec::new();
        // Name -> index in `out` (a study may have thousands of conditions).
        let mut by_name: HashMap<String, usize> = HashMap::new();
        if let Some(m) = &raw.matrix {
            let mat = m.get_ref();
            let pattern = mat
                .name
                .as_ref()
                .map(|n| n.get_ref().clone())
                .unwrap_or_else(|| "gs{gridsize}_{probe}".into());
            let object = match &mat.object {
                Some(o) => o.clone(),
                None if raw.objects.len() == 1 => {
                    Spanned::new(m.span(), raw.objects.keys().next().cloned().unwrap_or_default())
                }
                None => {
                    return Err(self.sf.error(m.span(), "[matrix] needs `object = \"NAME\"` when the study declares more than one object (or none)"))
                }
            };
            self.check_ref("objects", &object)?;
            if mat.gridsize.get_ref().is_empty() || mat.probe.get_ref().is_empty() {
                return Err(self.sf.error(
                    m.span(),
                    "[matrix]: `gridsize` and `probe` must each list at least one value",
                ));
            }
            for g in mat.gridsize.get_ref() {
                check_param("gridsize", &Value::Int(*g.get_ref()))
                    .map_err(|e| self.sf.error(g.span(), format!("[matrix]: {e}")))?;
                for p in mat.probe.get_ref() {
                    self.check_ref("probes", p)?;
                    let name = pattern
                        .replace("{gridsize}", &g.get_ref().to_string())
                        .replace("{probe}", p.get_ref())
                        .replace("{object}", object.get_ref());
                    if !valid_name(&name) {
                        return Err(self.sf.error(
                            mat.name.as_ref().map(|n| n.span()).unwrap_or(m.span()),
                            format!("[matrix]: condition name {name:?} must be letters, digits, `_`, `-` or `.`"),
                        ));
                    }
                    if by_name.contains_key(&name) {
                        return Err(self.sf.error(
                            p.span(),
                            format!("[matrix]: duplicate condition name `{name}` (check `name` and the lists)"),
                        ));
                    }
                    by_name.insert(name.clone(), out.len());
                    out.push(Condition {
                        name,
                        gridsize: *g.get_ref(),
                        probe: p.get_ref().clone(),
                        object: object.get_ref().clone(),
                    });
                }
            }
        }
        // Conditions declared or overridden one by one.
        for (name, table) in &raw.conditions {
            let t = table.get_ref();
            if by_name.contains_key(name) {
                for key in ["gridsize", "probe", "object"] {
                    if let Some(v) = t.get(key) {
                        return Err(self.sf.error(
                            v.span(),
                            format!("[conditions.{name}]: `{key}` of a matrix condition is set by [matrix]; declare a new condition to change it"),
                        ));
                    }
                }
                continue;
            }
            if !valid_name(name) {
                return Err(self.sf.error(
                    table.span(),
                    format!("[conditions.{name}]: names must be letters, digits, `_`, `-` or `.`"),
                ));
            }
            let get = |key: &str| -> Result<&Spanned<toml::Value>> {
                t.get(key).ok_or_else(|| {
                    let names: Vec<&str> = out.iter().map(|c| c.name.as_str()).collect();
                    self.sf.error(
                        table.span(),
                        format!(
                            "[conditions.{name}] is not a matrix condition{}, so it must set `gridsize` and `probe`",
                            did_you_mean(name, names.iter().copied())
                        ),
                    )
                })
            };
            let g = get("gridsize")?;
            let gv = self.sf.value(g, "gridsize")?;
            check_param("gridsize", &gv)
                .map_err(|e| self.sf.error(g.span(), format!("[conditions.{name}]: {e}")))?;
            let p = get("probe")?;
            let probe = match p.get_ref() {
                toml::Value::String(s) => Spanned::new(p.span(), s.clone()),
                _ => {
                    return Err(self.sf.error(
                        p.span(),
                        format!("[conditions.{name}]: `probe` must be a probe name"),
                    ))
                }
            };
            self.check_ref("probes", &probe)?;
            let object = match t.get("object") {
                Some(o) => match o.get_ref() {
                    toml::Value::String(s) => Spanned::new(o.span(), s.clone()),
                    _ => {
                        return Err(self.sf.error(
                            o.span(),
                            format!("[conditions.{name}]: `object` must be an object name"),
                        ))
                    }
                },
                None if raw.objects.len() == 1 => Spanned::new(
                    table.span(),
                    raw.objects.keys().next().cloned().unwrap_or_default(),
                ),
                None => {
                    return Err(self
                        .sf
                        .error(table.span(), format!("[conditions.{name}]: set `object`")))
                }
            };
            self.check_ref("objects", &object)?;
            out.push(Condition {
                name: name.clone(),
                gridsize: gv.as_i64().unwrap_or(1),
                probe: probe.into_inner(),
                object: object.into_inner(),
            });
        }
        Ok(out)
    }

    fn check_ref(&self, section: &str, name: &Spanned<String>) -> Result<()> {
        let table = if section == "probes" {
            &self.sf.raw.probes
        } else {
            &self.sf.raw.objects
        };
        if table.contains_key(name.get_ref()) {
            return Ok(());
        }
        let names: Vec<&str> = table.keys().map(String::as_str).collect();
        Err(self.sf.error(
            name.span(),
            format!(
                "unknown {} `{}`{}; declared: {}",
                section.trim_end_matches('s'),
                name.get_ref(),
                did_you_mean(name.get_ref(), names.iter().copied()),
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            ),
        ))
    }

    /// The recipe declaration of a target kind, parsed once per kind (not once per condition).
    fn kind_recipe(&mut self, kind: &str) -> Result<(RecipeDecl, Range<usize>)> {
        if let Some(d) = self.kind_decls.get(kind) {
            return Ok(d.clone());
        }
        let d = self.parse_kind_recipe(kind)?;
        self.kind_decls.insert(kind.to_string(), d.clone());
        Ok(d)
    }

    fn parse_kind_recipe(&self, kind: &str) -> Result<(RecipeDecl, Range<usize>)> {
        match self.sf.raw.recipes.get(kind) {
            Some(v) => Ok((
                self.sf.recipe_decl(v, &format!("recipes.{kind}"))?,
                v.span(),
            )),
            None => {
                let default = match kind {
                    "train_data" | "test_data" => "simulate",
                    "model" => "pinn",
                    "metrics" => "evaluate",
                    _ => "report",
                };
                Ok((RecipeDecl::Builtin(default.into()), 0..0))
            }
        }
    }

    fn add_condition(&mut self, c: &Condition) -> Result<()> {
        for k in self.sf.raw.recipes.keys() {
            if !CONDITION_KINDS.contains(&k.as_str()) && k != "report" {
                let v = &self.sf.raw.recipes[k];
                return Err(self.sf.error(
                    v.span(),
                    format!(
                        "[recipes]: unknown target kind `{k}`{}; kinds: train_data, test_data, model, metrics, report",
                        did_you_mean(k, CONDITION_KINDS.iter().copied().chain(["report"]))
                    ),
                ));
            }
        }
        let own = self.sf.raw.conditions.get(&c.name).map(|t| {
            let mut t = t.get_ref().clone();
            for k in ["gridsize", "probe", "object"] {
                t.remove(k);
            }
            t
        });
        let own_ref = own.as_ref();
        if let Some(own) = own_ref {
            for (k, v) in own {
                let val = self.sf.value(v, k)?;
                check_param(k, &val).map_err(|m| {
                    self.sf
                        .error(v.span(), format!("[conditions.{}]: {m}", c.name))
                })?;
            }
        }
        let probe = self.index[&format!("probes/{}", c.probe)];
        let object = self.index[&format!("objects/{}", c.object)];
        for kind in CONDITION_KINDS {
            let (decl, span) = self.kind_recipe(kind)?;
            let inputs: Vec<Input> = match kind {
                "train_data" | "test_data" => vec![
                    Input {
                        role: "object".into(),
                        source: InputSource::Target(object),
                    },
                    Input {
                        role: "probe".into(),
                        source: InputSource::Target(probe),
                    },
                ],
                "model" => vec![Input {
                    role: "train_data".into(),
                    source: InputSource::Target(self.index[&format!("{}/train_data", c.name)]),
                }],
                _ => vec![
                    Input {
                        role: "model".into(),
                        source: InputSource::Target(self.index[&format!("{}/model", c.name)]),
                    },
                    Input {
                        role: "test_data".into(),
                        source: InputSource::Target(self.index[&format!("{}/test_data", c.name)]),
                    },
                ],
            };
            let roles: Vec<String> = inputs.iter().map(|i| i.role.clone()).collect();
            let what = format!("{}/{kind}", c.name);
            let default_out = match kind {
                "train_data" | "test_data" => OutputKind::File("npz"),
                _ => OutputKind::Dir,
            };
            let (recipe, params, ext) = self.recipe_and_params(
                &decl,
                kind,
                Some(c.gridsize),
                own_ref,
                &roles,
                &what,
                span.clone(),
                default_out,
            )?;
            let base = match kind {
                "metrics" => "evaluation",
                k => k,
            };
            let output = match &ext {
                Some(e) => PathBuf::from(&c.name).join(format!("{base}.{e}")),
                None => PathBuf::from(&c.name).join(base),
            };
            let span = self
                .sf
                .raw
                .conditions
                .get(&c.name)
                .map(|t| t.span())
                .unwrap_or(span);
            self.push(
                Target {
                    name: what,
                    kind: kind.to_string(),
                    condition: Some(c.name.clone()),
                    recipe,
                    params,
                    inputs,
                    output,
                    output_is_dir: ext.is_none(),
                },
                span,
            )?;
        }
        Ok(())
    }

    fn add_report(&mut self, conditions: &[Condition]) -> Result<()> {
        if let Some(v) = self.sf.raw.recipes.get("report") {
            if v.get_ref().as_bool() == Some(false) {
                return Ok(());
            }
        }
        let (decl, span) = self.kind_recipe("report")?;
        let mut inputs = Vec::new();
        for c in conditions {
            for kind in ["metrics", "model"] {
                inputs.push(Input {
                    role: format!("{kind}.{}", c.name),
                    source: InputSource::Target(self.index[&format!("{}/{kind}", c.name)]),
                });
            }
        }
        for name in self.sf.raw.probes.keys() {
            inputs.push(Input {
                role: format!("probe.{name}"),
                source: InputSource::Target(self.index[&format!("probes/{name}")]),
            });
        }
        let roles: Vec<String> = inputs.iter().map(|i| i.role.clone()).collect();
        let (recipe, mut params, ext) = self.recipe_and_params(
            &decl,
            "report",
            None,
            None,
            &roles,
            "report",
            span.clone(),
            OutputKind::Dir,
        )?;
        for c in conditions {
            params.insert(format!("gridsize.{}", c.name), Value::Int(c.gridsize));
            params.insert(format!("probe.{}", c.name), Value::Str(c.probe.clone()));
        }
        let output = match &ext {
            Some(e) => PathBuf::from(format!("report.{e}")),
            None => PathBuf::from("report"),
        };
        self.push(
            Target {
                name: "report".into(),
                kind: "report".into(),
                condition: None,
                recipe,
                params,
                inputs,
                output,
                output_is_dir: ext.is_none(),
            },
            span,
        )?;
        Ok(())
    }

    fn check_unused_params(&self) -> Result<()> {
        let consumed: Vec<&str> = self.consumed.iter().map(String::as_str).collect();
        let mut tables: Vec<(&ParamTable, String)> =
            vec![(&self.sf.raw.params, "[params]".to_string())];
        for (n, t) in &self.sf.raw.profiles {
            tables.push((t.get_ref(), format!("[profiles.{n}]")));
        }
        for (n, t) in &self.sf.raw.conditions {
            tables.push((t.get_ref(), format!("[conditions.{n}]")));
        }
        for (table, what) in tables {
            for (k, v) in table {
                if what.starts_with("[conditions.")
                    && ["gridsize", "probe", "object"].contains(&k.as_str())
                {
                    continue;
                }
                if !self.consumed.contains(k) {
                    return Err(self.sf.error(
                        v.span(),
                        format!(
                            "{what}: no recipe reads parameter `{k}`{}; parameters in use: {}",
                            did_you_mean(k, consumed.iter().copied()),
                            consumed.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The targets `i` reads, in input order.
    fn deps(&self, i: usize) -> Vec<usize> {
        self.targets[i]
            .inputs
            .iter()
            .filter_map(|inp| match inp.source {
                InputSource::Target(j) => Some(j),
                InputSource::File(_) => None,
            })
            .collect()
    }

    fn topo_order(&self) -> Result<Vec<usize>> {
        // 0 = unvisited, 1 = on stack, 2 = done.
        let n = self.targets.len();
        let mut state = vec![0u8; n];
        let mut order = Vec::with_capacity(n);
        for root in 0..n {
            if state[root] != 0 {
                continue;
            }
            // (node, its target inputs, next input to visit): the inputs are collected once per
            // visit, not once per step (the report has one input per condition and kind).
            let mut stack: Vec<(usize, Vec<usize>, usize)> = vec![(root, self.deps(root), 0)];
            state[root] = 1;
            while let Some((node, deps, next)) = stack.last_mut() {
                let node = *node;
                if *next < deps.len() {
                    let d = deps[*next];
                    *next += 1;
                    match state[d] {
                        0 => {
                            state[d] = 1;
                            stack.push((d, self.deps(d), 0));
                        }
                        1 => {
                            let start = stack.iter().position(|(s, _, _)| *s == d).unwrap_or(0);
                            let mut cycle: Vec<&str> = stack[start..]
                                .iter()
                                .map(|(s, _, _)| self.targets[*s].name.as_str())
                                .collect();
                            cycle.push(&self.targets[d].name);
                            return Err(self.sf.error(
                                self.spans[d].clone(),
                                format!("dependency cycle: {}", cycle.join(" -> ")),
                            ));
                        }
                        _ => {}
                    }
                } else {
                    state[node] = 2;
                    order.push(node);
                    stack.pop();
                }
            }
        }
        Ok(order)
    }
}

/// The `{placeholder}` names in an argv element.
pub fn placeholders(arg: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = arg;
    while let Some(i) = rest.find('{') {
        let after = &rest[i + 1..];
        match after.find('}') {
            Some(j) => {
                out.push(after[..j].to_string());
                rest = &after[j + 1..];
            }
            None => break,
        }
    }
    out
}
