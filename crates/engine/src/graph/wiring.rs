//! The targets and how they connect: each section's artifacts (`SECTION/NAME`, inputs naming
//! another artifact of the section or a source file), each condition's kinds (inputs from the
//! artifacts its axes name or its own targets of other kinds, as the shape says; one per
//! replicate for the replicated kinds, `CONDITION/LABEL/KIND`), and the study-wide summary
//! (every condition's results, every replicate's, and every artifact of its sections).

use super::resolve::TargetSite;
use super::{check_name, placeholders, Builder, Condition, Input, InputSource, Target};
use crate::catalog::{AxisValues, InputFrom, OutputKind, Section};
use crate::error::{Error, Result};
use crate::params::{Params, Value};
use crate::recipe::RecipeDecl;
use crate::studyfile::{did_you_mean, toml_type, MAX_TARGETS};
use std::ops::Range;
use std::path::PathBuf;

impl Builder<'_> {
    /// The artifacts of one section, in an order where referenced ones come first.
    pub(super) fn add_section(&mut self, section: &Section) -> Result<()> {
        let Some(table) = self.sf.raw.section(section.table) else {
            return Ok(());
        };
        let (table_name, kind) = (section.table, section.kind);
        // (target index, input position, referenced target name), resolved once all are pushed.
        let mut pending: Vec<(usize, usize, String)> = Vec::new();
        for (name, art) in table {
            let what = format!("{table_name}.{name}");
            if let Err(why) = check_name(name) {
                return Err(self
                    .sf
                    .error(art.span(), format!("`{what}`: `{name}` {why}")));
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
                        pending.push((self.targets.len(), inputs.len(), format!("{table_name}/{r}")));
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
                                toml_type(other)
                            ),
                        ))
                    }
                };
                inputs.push(Input {
                    role: role.clone(),
                    source,
                });
            }
            let site = TargetSite {
                kind,
                structural: None,
                own: Some(&art.get_ref().params),
                provided: &roles,
                what: &what,
                span: art.span(),
                default_output: section.default_output,
                replicate: None,
            };
            let (recipe, params, ext) = self.recipe_and_params(&decl, &site)?;
            let output = match &ext {
                Some(e) => PathBuf::from(format!("{name}_{kind}.{e}")),
                None => PathBuf::from(format!("{name}_{kind}")),
            };
            self.push(
                Target {
                    name: format!("{table_name}/{name}"),
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

    /// The recipe declaration of a kind, parsed once per kind (not once per condition).
    fn kind_recipe(&mut self, kind: &str, default: &str) -> Result<(RecipeDecl, Range<usize>)> {
        if let Some(d) = self.kind_decls.get(kind) {
            return Ok(d.clone());
        }
        let d = match self.sf.raw.recipes.get(kind) {
            Some(v) => (
                self.sf.recipe_decl(v, &format!("recipes.{kind}"))?,
                v.span(),
            ),
            None => (RecipeDecl::Builtin(default.into()), 0..0),
        };
        self.kind_decls.insert(kind.to_string(), d.clone());
        Ok(d)
    }

    /// Every key of `[recipes]` must be a condition kind or the summary; a declared kind's
    /// recipe is given where it is declared.
    fn check_recipe_kinds(&self) -> Result<()> {
        let mut kinds: Vec<&str> = self
            .shape
            .kinds
            .iter()
            .map(|k| k.name)
            .filter(|k| !self.declared.contains_key(*k))
            .collect();
        kinds.extend(self.shape.summary.iter().map(|s| s.name));
        for (k, v) in &self.sf.raw.recipes {
            if self.declared.contains_key(k) {
                return Err(self.sf.error(
                    v.span(),
                    format!("[recipes]: `{k}` is declared in [targets.{k}]; give its recipe there"),
                ));
            }
            if !kinds.contains(&k.as_str()) {
                return Err(self.sf.error(
                    v.span(),
                    format!(
                        "[recipes]: unknown target kind `{k}`{}; kinds: {}",
                        did_you_mean(k, kinds.iter().copied()),
                        kinds.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A condition's targets, one per kind of the shape, and one per replicate of each
    /// replicated kind when the condition lists replicates.
    pub(super) fn add_condition(&mut self, c: &Condition) -> Result<()> {
        self.check_recipe_kinds()?;
        let shape = self.shape;
        let own = self.sf.raw.conditions.get(&c.name).map(|t| {
            let mut t = t.get_ref().clone();
            for a in &shape.axes {
                t.remove(a.name);
            }
            t
        });
        let own_ref = own.as_ref();
        if let Some(own) = own_ref {
            for (k, v) in own {
                if self.is_replicate_param(k) {
                    continue;
                }
                let val = self.sf.value(v, k)?;
                self.catalog.check_param(k, &val).map_err(|m| {
                    self.sf
                        .error(v.span(), format!("[conditions.{}]: {m}", c.name))
                })?;
            }
        }
        let structural: Params = shape
            .structural()
            .filter_map(|s| Some((s.to_string(), c.value(s)?.clone())))
            .collect();
        let replicates = self.replicates_of(&c.name, own_ref)?;
        let prefix = shape.replicates.as_ref().map_or("", |r| r.prefix);
        let mut labels: Vec<Option<String>> = Vec::new();
        for kind in &shape.kinds {
            let runs: Vec<Option<&Value>> = match &replicates {
                Some(values) if shape.is_replicated(kind.name) => values.iter().map(Some).collect(),
                _ => vec![None],
            };
            for value in runs {
                // The replicate's directory inside the condition's: `s42`.
                let label = value.map(|v| format!("{prefix}{v}"));
                let dir = match &label {
                    Some(l) => PathBuf::from(&c.name).join(l),
                    None => PathBuf::from(&c.name),
                };
                let (decl, span) = self.kind_recipe(kind.name, kind.default_recipe)?;
                // A command recipe also gets each of the kind's optional inputs it names.
                let named = |role: &str| match &decl {
                    RecipeDecl::Command { argv, .. } => {
                        let want = format!("input.{role}");
                        argv.iter().any(|a| placeholders(a).contains(&want))
                    }
                    RecipeDecl::Builtin(_) => false,
                };
                let optional = kind.command_inputs.iter().filter(|(role, _)| named(role));
                let inputs: Vec<Input> = kind
                    .inputs
                    .iter()
                    .chain(optional)
                    .map(|(role, from)| {
                        let target = match from {
                            InputFrom::Axis(axis) => {
                                let section = shape
                                    .axis(axis)
                                    .and_then(|a| match a.values {
                                        AxisValues::Names { section }
                                        | AxisValues::Name { section } => Some(section),
                                        AxisValues::Structural => None,
                                    })
                                    .unwrap_or_default();
                                format!("{section}/{}", c.artifact(axis))
                            }
                            // The same replicate's target of a replicated kind.
                            InputFrom::Kind(k) => match &label {
                                Some(l) if shape.is_replicated(k) => {
                                    format!("{}/{l}/{k}", c.name)
                                }
                                _ => format!("{}/{k}", c.name),
                            },
                        };
                        Input {
                            role: role.to_string(),
                            source: InputSource::Target(self.index[&target]),
                        }
                    })
                    .collect();
                let roles: Vec<String> = inputs.iter().map(|i| i.role.clone()).collect();
                let what = format!("{}/{}", dir.display(), kind.name);
                // A declared kind's own parameters are its most specific layer.
                let declared_own = self.declared.get(kind.name).map(|d| {
                    let mut t = own.clone().unwrap_or_default();
                    t.extend(d.params.iter().map(|(k, v)| (k.clone(), v.clone())));
                    t
                });
                let site = TargetSite {
                    kind: kind.name,
                    structural: Some(&structural),
                    own: declared_own.as_ref().or(own_ref),
                    provided: &roles,
                    what: &what,
                    span: span.clone(),
                    default_output: kind.default_output,
                    replicate: value,
                };
                let (recipe, params, ext) = self.recipe_and_params(&decl, &site)?;
                self.check_declared_params(kind.name, &params)?;
                let base = kind.output_name;
                let output = match &ext {
                    Some(e) => dir.join(format!("{base}.{e}")),
                    None => dir.join(base),
                };
                let span = self
                    .sf
                    .raw
                    .conditions
                    .get(&c.name)
                    .map(|t| t.span())
                    .unwrap_or(span);
                if self.targets.len() >= MAX_TARGETS {
                    return Err(self.sf.error(
                        span,
                        format!(
                            "the study declares more than {MAX_TARGETS} targets with its \
                             replicates; the limit is {MAX_TARGETS} targets"
                        ),
                    ));
                }
                self.push(
                    Target {
                        name: what,
                        kind: kind.name.to_string(),
                        condition: Some(c.name.clone()),
                        recipe,
                        params,
                        inputs,
                        output,
                        output_is_dir: ext.is_none(),
                    },
                    span,
                )?;
                if shape.is_replicated(kind.name) && !labels.contains(&label) {
                    labels.push(label);
                }
            }
        }
        self.replicate_labels.insert(c.name.clone(), labels);
        Ok(())
    }

    /// Every parameter in a declared kind's own `params` must be one its recipe reads.
    fn check_declared_params(&self, kind: &str, params: &Params) -> Result<()> {
        let Some(d) = self.declared.get(kind) else {
            return Ok(());
        };
        for (k, v) in d.params {
            let read = params
                .keys()
                .any(|p| p == k || self.shape.study_name(kind, p) == k);
            if !read {
                let names: Vec<&str> = params.keys().map(String::as_str).collect();
                return Err(self.sf.error(
                    v.span(),
                    format!(
                        "[targets.{kind}]: its recipe reads no parameter `{k}`{}; it reads: {}",
                        did_you_mean(k, names.iter().copied()),
                        names.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The study-wide summary over every condition, unless `[recipes] NAME = false`.
    pub(super) fn add_summary(&mut self, conditions: &[Condition]) -> Result<()> {
        let Some(summary) = self.shape.summary.as_ref() else {
            return Ok(());
        };
        if let Some(v) = self.sf.raw.recipes.get(summary.name) {
            if v.get_ref().as_bool() == Some(false) {
                return Ok(());
            }
        }
        let (decl, span) = self.kind_recipe(summary.name, summary.default_recipe)?;
        let mut inputs = Vec::new();
        for c in conditions {
            for kind in &summary.per_condition {
                let labels = match self.replicate_labels.get(&c.name) {
                    Some(l) if self.shape.is_replicated(kind) => l.clone(),
                    _ => vec![None],
                };
                for label in labels {
                    let at = match &label {
                        Some(l) => format!("{}/{l}", c.name),
                        None => c.name.clone(),
                    };
                    inputs.push(Input {
                        role: format!("{kind}.{at}"),
                        source: InputSource::Target(self.index[&format!("{at}/{kind}")]),
                    });
                }
            }
        }
        for table in &summary.sections {
            let kind = self.section_kind(table);
            let names: Vec<String> = self
                .sf
                .raw
                .section(table)
                .map(|t| t.keys().cloned().collect())
                .unwrap_or_default();
            for name in names {
                inputs.push(Input {
                    role: format!("{kind}.{name}"),
                    source: InputSource::Target(self.index[&format!("{table}/{name}")]),
                });
            }
        }
        let roles: Vec<String> = inputs.iter().map(|i| i.role.clone()).collect();
        let site = TargetSite {
            kind: summary.name,
            structural: None,
            own: None,
            provided: &roles,
            what: summary.name,
            span: span.clone(),
            default_output: OutputKind::Dir,
            replicate: None,
        };
        let (recipe, mut params, ext) = self.recipe_and_params(&decl, &site)?;
        for c in conditions {
            for axis in &summary.axis_params {
                if let Some(v) = c.value(axis) {
                    params.insert(format!("{axis}.{}", c.name), v.clone());
                }
            }
        }
        let name = summary.name;
        let output = match &ext {
            Some(e) => PathBuf::from(format!("{name}.{e}")),
            None => PathBuf::from(name),
        };
        self.push(
            Target {
                name: name.into(),
                kind: name.into(),
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
}
