//! Kinds of target declared in the Studyfile (`[targets.NAME]`): checked, ordered, and added to
//! the study's shape, so that every condition gets one target of each and the rest of the
//! expansion (parameters, keys, replicates, selectors, the executors, `verify`) treats them as it
//! treats the study's own kinds.
//!
//! ```toml
//! [targets.ptychi]
//! command = ["python", "ptychi.py", "--test-data", "{input.test_data}", "--output", "{output}"]
//! version = "lsqml-1"
//! inputs = ["test_data"]        # roles of the same condition: kinds, axes, declared targets
//! params = { epochs = 200 }     # its own parameters, the most specific layer
//! kind = "reconstruction"       # a class the study knows (optional)
//! ```
//!
//! A declared kind:
//! - reads the roles it lists: a kind of its condition (the study's or another declared one), or
//!   an axis that names an artifact (`probe`); a declared kind comes after everything it reads,
//!   and a cycle among declared kinds is refused;
//! - with a class (`kind = "CLASS"`), is read by the kind the class names (`metrics`) as the
//!   input `CLASS.NAME`, and so comes before it; its output is read back as the class
//!   ([`crate::catalog::Catalog::inspect`]);
//! - reads its condition's parameters (its seed) as the first kind it reads does (`test_seed`
//!   for a target reading `test_data`), and is replicated when it reads a replicated kind;
//! - has the parameters its recipe reads, resolved as any condition target's, with its own
//!   `params` table as the most specific layer; a structural or replicate parameter there is
//!   refused, and so is a parameter its recipe does not read.
//!
//! The shape's names are `&'static str` (the study layer declares them once); a declared kind's
//! names come from the Studyfile, and are leaked once per expansion: a process reads a few
//! Studyfiles at most, each declaring a few kinds.

use super::{check_name, RESERVED_NAMES};
use crate::catalog::{AxisValues, Catalog, InputFrom, Kind, OutputKind, Shape};
use crate::error::Result;
use crate::recipe::RecipeDecl;
use crate::studyfile::{did_you_mean, ParamTable, Studyfile};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

/// A declared kind's recipe, its own parameters and where it was declared.
pub(super) struct Declared<'a> {
    pub decl: RecipeDecl,
    pub params: &'a ParamTable,
    pub span: Range<usize>,
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

/// The catalog's shape with the Studyfile's declared kinds added, and each declared kind's
/// recipe and parameters by name.
pub(super) fn extend<'a>(
    sf: &'a Studyfile,
    catalog: &dyn Catalog,
) -> Result<(Shape, BTreeMap<String, Declared<'a>>)> {
    let mut shape = catalog.shape().clone();
    let targets = &sf.raw.targets;
    let mut declared = BTreeMap::new();
    if targets.is_empty() {
        return Ok((shape, declared));
    }
    // Names a declared kind may not take: they are selectors, kinds, axes, classes, or files and
    // directories beside it in a condition's directory.
    let mut taken: Vec<&str> = RESERVED_NAMES.to_vec();
    for sec in &shape.sections {
        taken.extend([sec.table, sec.kind]);
    }
    for k in &shape.kinds {
        taken.extend([k.name, k.output_name]);
    }
    taken.extend(shape.summary.iter().map(|s| s.name));
    taken.extend(shape.axes.iter().map(|a| a.name));
    taken.extend(shape.classes.iter().map(|c| c.name));
    let replicate_prefix = shape.replicates.as_ref().map(|r| r.prefix);
    for (name, t) in targets {
        let what = format!("[targets.{name}]");
        if let Err(why) = check_name(name) {
            return Err(sf.error(t.span(), format!("{what}: `{name}` {why}")));
        }
        let is_replicate_dir = replicate_prefix.is_some_and(|p| {
            name.strip_prefix(p)
                .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
        });
        if taken.contains(&name.as_str()) || is_replicate_dir {
            return Err(sf.error(
                t.span(),
                format!(
                    "{what}: `{name}` is already a name of the study (a kind, axis, class, \
                     selector, replicate or directory: {}); choose another",
                    taken.join(", ")
                ),
            ));
        }
        let decl = sf.target_recipe(t, &what)?;
        let r = t.get_ref();
        for (k, v) in &r.params {
            if shape.is_structural(k) {
                return Err(sf.error(
                    v.span(),
                    format!("{what}: `{k}` is set by [matrix] or a condition, not here"),
                ));
            }
            if shape.replicates.as_ref().is_some_and(|rep| rep.param == k) {
                return Err(sf.error(
                    v.span(),
                    format!(
                        "{what}: `{k}` lists replicates in [params], a profile or a condition, \
                         not here"
                    ),
                ));
            }
        }
        if let Some(c) = &r.kind {
            if shape.class(c.get_ref()).is_none() {
                let names: Vec<&str> = shape.classes.iter().map(|c| c.name).collect();
                return Err(sf.error(
                    c.span(),
                    format!(
                        "{what}: unknown kind `{}`{}; the study's kinds of declared target: {}",
                        c.get_ref(),
                        did_you_mean(c.get_ref(), names.iter().copied()),
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    ),
                ));
            }
        }
        declared.insert(
            name.clone(),
            Declared {
                decl,
                params: &r.params,
                span: t.span(),
            },
        );
    }
    for name in order(sf)? {
        let t = &targets[&name];
        let r = t.get_ref();
        let what = format!("[targets.{name}]");
        let mut inputs = Vec::new();
        let mut after = 0;
        for role in &r.inputs {
            let role_name = role.get_ref().as_str();
            let from = if let Some(k) = shape.kinds.iter().position(|k| k.name == role_name) {
                after = after.max(k + 1);
                InputFrom::Kind(shape.kinds[k].name)
            } else if let Some(a) = shape
                .axes
                .iter()
                .find(|a| a.name == role_name && !matches!(a.values, AxisValues::Structural))
            {
                InputFrom::Axis(a.name)
            } else {
                let mut roles: Vec<&str> = shape.kinds.iter().map(|k| k.name).collect();
                roles.extend(
                    shape
                        .axes
                        .iter()
                        .filter(|a| !matches!(a.values, AxisValues::Structural))
                        .map(|a| a.name),
                );
                return Err(sf.error(
                    role.span(),
                    format!(
                        "{what}: input `{role_name}` is no kind or artifact of a condition{}; \
                         a declared target reads: {}",
                        did_you_mean(role_name, roles.iter().copied()),
                        roles.join(", ")
                    ),
                ));
            };
            if inputs.iter().any(|(r, _)| *r == role_name) {
                return Err(sf.error(
                    role.span(),
                    format!("{what}: input `{role_name}` is listed twice"),
                ));
            }
            // The role is the kind's or axis's own name.
            let role = match from {
                InputFrom::Kind(k) | InputFrom::Axis(k) => k,
            };
            inputs.push((role, from));
        }
        let class = r.kind.as_ref().map(|c| {
            shape
                .class(c.get_ref())
                .expect("classes are checked above")
                .clone()
        });
        let name_s = leak(&name);
        // Where it goes: after its inputs, before the kind that reads its class.
        if let Some(c) = &class {
            let reader = shape
                .kinds
                .iter()
                .position(|k| k.name == c.read_by)
                .unwrap_or(shape.kinds.len());
            if after > reader {
                return Err(sf.error(
                    t.span(),
                    format!(
                        "{what}: a `{}` is read by `{}`, so it cannot read `{}` or what comes \
                         after it: that would be a cycle",
                        c.name, c.read_by, c.read_by
                    ),
                ));
            }
            if let Some(k) = shape.kinds.get_mut(reader) {
                let role = leak(&format!("{}.{name}", c.name));
                k.inputs.push((role, InputFrom::Kind(name_s)));
            }
        }
        // Its condition's parameters as the first kind it reads reads them.
        let aliases = inputs
            .iter()
            .find_map(|(_, from)| match from {
                InputFrom::Kind(k) => shape.kind(k).map(|k| k.aliases.clone()),
                InputFrom::Axis(_) => None,
            })
            .unwrap_or_default();
        let replicated = inputs.iter().any(|(_, from)| match from {
            InputFrom::Kind(k) => shape.is_replicated(k),
            InputFrom::Axis(_) => false,
        });
        if replicated {
            if let Some(rep) = shape.replicates.as_mut() {
                rep.kinds.push(name_s);
            }
        }
        shape.kinds.insert(
            after,
            Kind {
                name: name_s,
                default_recipe: "",
                inputs,
                command_inputs: vec![],
                output_name: name_s,
                default_output: OutputKind::Dir,
                aliases,
                class: class.map(|c| c.name),
            },
        );
    }
    Ok((shape, declared))
}

/// The declared kinds in an order where each comes after the declared kinds it reads (by name
/// otherwise); a cycle is refused, naming it.
fn order(sf: &Studyfile) -> Result<Vec<String>> {
    let targets = &sf.raw.targets;
    let reads = |name: &str| -> Vec<String> {
        targets[name]
            .get_ref()
            .inputs
            .iter()
            .map(|r| r.get_ref().clone())
            .filter(|r| targets.contains_key(r))
            .collect()
    };
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    while out.len() < targets.len() {
        let ready = targets
            .keys()
            .find(|n| !done.contains(*n) && reads(n).iter().all(|r| done.contains(r)));
        match ready {
            Some(n) => {
                done.insert(n.clone());
                out.push(n.clone());
            }
            None => {
                let left: Vec<&str> = targets
                    .keys()
                    .filter(|n| !done.contains(*n))
                    .map(String::as_str)
                    .collect();
                let first = left[0];
                return Err(sf.error(
                    targets[first].span(),
                    format!(
                        "[targets]: {} read each other in a cycle; a declared target may read \
                         only targets that do not read it",
                        left.iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
    }
    Ok(out)
}
