//! Parameter resolution: the layers a target's parameters come from (most specific last: the
//! recipe's default, `[params]`, the selected profile, the condition's or artifact's own table),
//! the study's range checks on every value, and the "no recipe reads it" check.

use super::{Builder, Layer};
use crate::catalog::OutputKind;
use crate::error::{Error, Result};
use crate::params::{Params, Value};
use crate::recipe::{Recipe, RecipeDecl};
use crate::studyfile::{did_you_mean, toml_type, ParamTable};
use std::collections::BTreeSet;
use std::ops::Range;
use toml::Spanned;

/// What [`Builder::recipe_and_params`] knows of the target it resolves.
pub(super) struct TargetSite<'t> {
    /// The target's kind.
    pub kind: &'t str,
    /// The condition's structural values, for a condition's target.
    pub structural: Option<&'t Params>,
    /// The most specific parameter layer (the condition's or the artifact's own table).
    pub own: Option<&'t ParamTable>,
    /// The input roles the target gets.
    pub provided: &'t [String],
    /// The target's name, for messages.
    pub what: &'t str,
    pub span: Range<usize>,
    /// The output of a command recipe that does not declare one.
    pub default_output: OutputKind,
    /// The value of the shape's replicate parameter for this replicate, when the condition
    /// lists several (see [`Builder::replicates_of`]).
    pub replicate: Option<&'t Value>,
}

impl<'a> Builder<'a> {
    /// `[params]` and the profile's table, checked: no structural parameter, every value in
    /// its range.
    pub(super) fn layers(&self, profile: Option<&str>) -> Result<Vec<Layer<'a>>> {
        let sf: &'a crate::studyfile::Studyfile = self.sf;
        let raw = &sf.raw;
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
            for s in self.shape.structural() {
                if let Some(v) = layer.table.get(s) {
                    return Err(sf.error(
                        v.span(),
                        format!(
                            "{}: `{s}` is set by [matrix] or a condition, not here",
                            layer.what
                        ),
                    ));
                }
            }
            for (k, v) in layer.table {
                if self.is_replicate_param(k) {
                    self.replicate_list(v, &layer.what)?;
                    continue;
                }
                let val = sf.value(v, k)?;
                self.catalog
                    .check_param(k, &val)
                    .map_err(|m| sf.error(v.span(), format!("{}: {m}", layer.what)))?;
            }
        }
        for t in raw.profiles.values() {
            for (k, v) in t.get_ref() {
                if self.shape.is_structural(k) {
                    return Err(sf.error(
                        v.span(),
                        format!("`{k}` is set by [matrix] or a condition, not a profile"),
                    ));
                }
            }
        }
        Ok(layers)
    }

    /// Whether `name` is the shape's replicate parameter.
    pub(super) fn is_replicate_param(&self, name: &str) -> bool {
        self.shape
            .replicates
            .as_ref()
            .is_some_and(|r| r.param == name)
    }

    /// The values of the replicate parameter written at `v`: an integer (one replicate) or a
    /// non-empty list of distinct integers, each in the study's range for it.
    pub(super) fn replicate_list(
        &self,
        v: &Spanned<toml::Value>,
        what: &str,
    ) -> Result<Vec<Value>> {
        let Some(rep) = self.shape.replicates.as_ref() else {
            return Ok(Vec::new());
        };
        let param = rep.param;
        let items: Vec<Value> = match v.get_ref() {
            toml::Value::Array(a) => {
                let mut out = Vec::new();
                for x in a {
                    match x {
                        toml::Value::Integer(i) => out.push(Value::Int(*i)),
                        other => {
                            return Err(self.sf.error(
                                v.span(),
                                format!(
                                    "{what}: `{param}` must be an integer or a list of integers \
                                     (one replicate each), found a list holding {}",
                                    toml_type(other)
                                ),
                            ))
                        }
                    }
                }
                if out.is_empty() {
                    return Err(self.sf.error(
                        v.span(),
                        format!("{what}: `{param}` lists no value; give at least one"),
                    ));
                }
                out
            }
            _ => vec![self.sf.value(v, param)?],
        };
        for (k, x) in items.iter().enumerate() {
            self.catalog
                .check_param(param, x)
                .map_err(|m| self.sf.error(v.span(), format!("{what}: {m}")))?;
            if items[..k].contains(x) {
                return Err(self.sf.error(
                    v.span(),
                    format!(
                        "{what}: `{param}` lists {x} twice; replicates must differ \
                         (the same value would build the same target twice)"
                    ),
                ));
            }
        }
        Ok(items)
    }

    /// The replicates a condition asks for: `Some(values)` when the replicate parameter is set
    /// to a list (its own table first, then the profile, then `[params]`); `None` for a single
    /// value or none, when the replicated kinds keep their plain names.
    pub(super) fn replicates_of(
        &mut self,
        condition: &str,
        own: Option<&ParamTable>,
    ) -> Result<Option<Vec<Value>>> {
        let Some(param) = self.shape.replicates.as_ref().map(|r| r.param) else {
            return Ok(None);
        };
        let what = format!("[conditions.{condition}]");
        let found = match own.and_then(|t| t.get(param)) {
            Some(v) => Some((v, what)),
            None => self
                .layers
                .iter()
                .rev()
                .find_map(|l| l.table.get(param).map(|v| (v, l.what.clone()))),
        };
        let Some((v, what)) = found else {
            return Ok(None);
        };
        let values = self.replicate_list(v, &what)?;
        self.consumed.insert(param.to_string());
        Ok(matches!(v.get_ref(), toml::Value::Array(_)).then_some(values))
    }

    /// Resolve one recipe parameter for a target. `own` is the most specific layer. The
    /// replicate parameter, set nowhere, is read under its fallback's name.
    fn resolve(
        &mut self,
        site: &TargetSite,
        param: &str,
        default: Option<&Value>,
    ) -> Result<Value> {
        let study_name = self.shape.study_name(site.kind, param).to_string();
        if self.is_replicate_param(&study_name) {
            if let Some(v) = site.replicate {
                return Ok(v.clone());
            }
        }
        let mut names = vec![study_name.clone()];
        if let Some(fallback) = self
            .shape
            .replicates
            .as_ref()
            .filter(|r| r.param == study_name)
            .and_then(|r| r.fallback)
        {
            names.push(fallback.to_string());
        }
        let what = site.what;
        // Most specific first: the target's own table (where the recipe's own name also
        // counts), then the profile, then `[params]`.
        let layers: Vec<&'a ParamTable> = self.layers.iter().rev().map(|l| l.table).collect();
        let tables = site
            .own
            .map(|t| (t, true))
            .into_iter()
            .chain(layers.into_iter().map(|t| (t, false)));
        let tables: Vec<(&ParamTable, bool)> = tables.collect();
        for name in &names {
            let found = tables.iter().find_map(|(t, own)| {
                t.get(name)
                    .or_else(|| if *own { t.get(param) } else { None })
            });
            if let Some(v) = found {
                self.consumed.insert(name.clone());
                let val = self.sf.value(v, name)?;
                self.catalog
                    .check_param(param, &val)
                    .map_err(|m| self.sf.error(v.span(), format!("{what}: {m}")))?;
                return Ok(val);
            }
        }
        self.consumed.insert(study_name.clone());
        match default {
            Some(d) => Ok(d.clone()),
            None => Err(self.sf.error(
                site.span.clone(),
                format!(
                    "{what} needs parameter `{study_name}`{}, which is not set; add it to [params]",
                    if study_name != param {
                        format!(" (its `{param}`)")
                    } else {
                        String::new()
                    }
                ),
            )),
        }
    }

    /// Recipe, parameters and output extension (`None`: a directory) of a target.
    pub(super) fn recipe_and_params(
        &mut self,
        decl: &RecipeDecl,
        site: &TargetSite,
    ) -> Result<(Recipe, Params, Option<String>)> {
        match decl {
            RecipeDecl::Builtin(name) => self.builtin(name, site),
            RecipeDecl::Command {
                argv,
                version,
                output,
                params: extra,
            } => {
                let names = self.command_reads(argv, extra, site)?;
                let mut params = Params::new();
                for n in &names {
                    let v = match site.structural.and_then(|s| s.get(n)) {
                        Some(v) => v.clone(),
                        None => self.resolve(site, n, None)?,
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
                            site.span.clone(),
                            format!(
                                "{}: `output` must be \"dir\" or a file extension like \"npz\", found {e:?}",
                                site.what
                            ),
                        ))
                    }
                    None => match site.default_output {
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

    /// A built-in recipe's parameters: its inputs and the target's own parameters checked
    /// against its declaration, every parameter it reads resolved.
    fn builtin(
        &mut self,
        name: &str,
        site: &TargetSite,
    ) -> Result<(Recipe, Params, Option<String>)> {
        let what = site.what;
        let Some(info) = self.catalog.recipe(name) else {
            let names: Vec<&str> = self.catalog.recipes().iter().map(|r| r.name).collect();
            return Err(self.sf.error(
                site.span.clone(),
                format!(
                    "{what}: unknown recipe `{name}`{}; built-in recipes: {}",
                    did_you_mean(name, names.iter().copied()),
                    names.join(", ")
                ),
            ));
        };
        let info = info.clone();
        if !info.inputs.contains(&"*") {
            // `PREFIX.*` accepts any number of roles `PREFIX.NAME`.
            let patterns: Vec<&str> = info
                .inputs
                .iter()
                .filter_map(|r| r.strip_suffix('*'))
                .collect();
            let want: BTreeSet<&str> = info
                .inputs
                .iter()
                .copied()
                .filter(|r| !r.ends_with('*'))
                .collect();
            let got: BTreeSet<&str> = site
                .provided
                .iter()
                .map(String::as_str)
                .filter(|r| !patterns.iter().any(|p| r.starts_with(p)))
                .collect();
            if want != got {
                return Err(self.sf.error(
                    site.span.clone(),
                    format!(
                        "{what}: recipe `{}` takes inputs [{}] but this target provides [{}]",
                        info.name,
                        info.inputs.join(", "),
                        site.provided.join(", ")
                    ),
                ));
            }
        }
        // An artifact's own table is for its recipe alone; a condition's is shared by its
        // kinds, and a key no kind reads is refused by `check_unused_params`.
        if let Some(own) = site.own.filter(|_| site.structural.is_none()) {
            for (k, v) in own {
                let known = info
                    .params
                    .iter()
                    .any(|d| d.name == k || self.shape.study_name(site.kind, d.name) == k);
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
        let mut params = Params::new();
        for decl in &info.params {
            let v = if self.shape.is_structural(decl.name) {
                match site.structural.and_then(|s| s.get(decl.name)) {
                    Some(v) => v.clone(),
                    None => {
                        return Err(self.sf.error(
                            site.span.clone(),
                            format!(
                                "{what}: recipe `{}` reads `{}`, which only condition targets have",
                                info.name, decl.name
                            ),
                        ))
                    }
                }
            } else {
                self.resolve(site, decl.name, decl.default.as_ref())?
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

    /// Every parameter set in `[params]`, a profile or a condition must be read by some target.
    pub(super) fn check_unused_params(&self) -> Result<()> {
        let consumed: Vec<&str> = self.consumed.iter().map(String::as_str).collect();
        let raw = &self.sf.raw;
        let mut tables: Vec<(&ParamTable, String, bool)> =
            vec![(&raw.params, "[params]".to_string(), false)];
        for (n, t) in &raw.profiles {
            tables.push((t.get_ref(), format!("[profiles.{n}]"), false));
        }
        for (n, t) in &raw.conditions {
            tables.push((t.get_ref(), format!("[conditions.{n}]"), true));
        }
        for (table, what, condition) in tables {
            for (k, v) in table {
                if condition && self.shape.axis(k).is_some() {
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
}
