//! External commands as recipes: the parameters a command reads (its placeholders and its
//! declared `params`), checked against what its target has.
//!
//! Placeholders: `{param.NAME}`, `{input.ROLE}`, `{output}`, `{report}`, `{target}`,
//! `{condition}`, and for a condition's targets each structural parameter and each of the
//! shape's condition parameters by its bare name (`{seed}`). A condition's command always reads
//! the structural and condition parameters, so two conditions never share an output by accident.

use super::resolve::TargetSite;
use super::Builder;
use crate::error::Result;
use std::collections::BTreeSet;

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

impl Builder<'_> {
    /// The parameters a command reads; checked once per condition kind (the same for every
    /// condition), once per artifact otherwise.
    pub(super) fn command_reads(
        &mut self,
        argv: &[String],
        extra: &[String],
        site: &TargetSite,
    ) -> Result<BTreeSet<String>> {
        let per_kind = site.structural.is_some();
        if per_kind {
            if let Some(n) = self.command_params.get(site.kind) {
                return Ok(n.clone());
            }
        }
        let names = self.command_names(argv, extra, site)?;
        if per_kind {
            self.command_params
                .insert(site.kind.to_string(), names.clone());
        }
        Ok(names)
    }

    /// The parameters an external command reads, checking every placeholder against what the
    /// target has.
    fn command_names(
        &self,
        argv: &[String],
        extra: &[String],
        site: &TargetSite,
    ) -> Result<BTreeSet<String>> {
        let (what, span) = (site.what, site.span.clone());
        let in_condition = site.structural.is_some();
        let bare: Vec<&str> = self
            .shape
            .structural()
            .chain(self.shape.condition_params.iter().copied())
            .collect();
        let mut names: BTreeSet<String> = extra.iter().cloned().collect();
        for arg in argv {
            for ph in placeholders(arg) {
                match ph.as_str() {
                    "output" | "report" | "target" | "condition" => {}
                    p if self.shape.is_structural(p) && !in_condition => {
                        return Err(self.sf.error(
                            span,
                            format!("{what}: `{{{p}}}` is only available to condition targets"),
                        ))
                    }
                    p if bare.contains(&p) => {
                        names.insert(ph.clone());
                    }
                    p if p.starts_with("param.") => {
                        names.insert(p["param.".len()..].to_string());
                    }
                    p if p.starts_with("input.") => {
                        let role = &p["input.".len()..];
                        if !site.provided.iter().any(|r| r == role) {
                            return Err(self.sf.error(
                                span,
                                format!(
                                    "{what}: `{{{p}}}` names no input; this target's inputs are: {}",
                                    site.provided.join(", ")
                                ),
                            ));
                        }
                    }
                    other => {
                        let shorthands: String =
                            bare.iter().map(|b| format!("{{{b}}}, ")).collect();
                        return Err(self.sf.error(
                            span,
                            format!(
                                "{what}: unknown placeholder `{{{other}}}`; use {shorthands}\
                                 {{param.NAME}}, {{input.ROLE}}, {{output}}, {{report}}, {{target}}, {{condition}}"
                            ),
                        ));
                    }
                }
            }
        }
        if in_condition {
            names.extend(bare.iter().map(|b| b.to_string()));
        }
        Ok(names)
    }
}
