//! Parameter resolution: the layers a target's parameters come from (most specific last: the
//! recipe's default, `[params]`, the selected profile, the condition's or artifact's own table),
//! the study's range checks on every value, and the "no recipe reads it" check.

use super::{Builder, Layer};
use crate::catalog::OutputKind;
use crate::error::{Error, Result};
use crate::params::{Params, Value};
use crate::recipe::{Recipe, RecipeDecl};
use crate::studyfile::{did_you_mean, ParamTable};
use std::collections::BTreeSet;
use std::ops::Range;

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

    /// Resolve one recipe parameter for a target. `own` is the most specific layer.
    fn resolve(
        &mut self,
        site: &TargetSite,
        param: &str,
        default: Option<&Value>,
    ) -> Result<Value> {
        let study_name = self.shape.study_name(site.kind, param).to_string();
        let what = site.what;
        if let Some(own) = site.own {
            if let Some(v) = own.get(&study_name).or_else(|| own.get(param)) {
                let val = self.sf.value(v, param)?;
                self.catalog
                    .check_param(param, &val)
                    .map_err(|m| self.sf.error(v.span(), format!("{what}: {m}")))?;
                return Ok(val);
            }
        }
        for layer in self.layers.iter().rev() {
            if let Some(v) = layer.table.get(&study_name) {
                self.consumed.insert(study_name.clone());
                let val = self.sf.value(v, &study_name)?;
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
            let want: BTreeSet<&str> = info.inputs.iter().copied().collect();
            let got: BTreeSet<&str> = site.provided.iter().map(String::as_str).collect();
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
        if let Some(own) = site.own {
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
