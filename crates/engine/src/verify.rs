//! `studymake verify`: an audit of the study as it is on disk now. For every target it checks
//! integrity (the outputs are the recorded bytes), freshness (the recorded key is the key of the
//! current Studyfile and the current bytes of the inputs), the declared parameters (the
//! condition's structural and condition parameters, as recorded and as reported, and the
//! study's own rules from its catalog), the structural facts read from the artifacts' content
//! now, and lineage (each artifact's recorded inputs are the current outputs of the targets it
//! claims to come from).

use crate::catalog::{Catalog, ConditionParams, Fact, Shape};
use crate::error::Result;
use crate::freshness::{diff, key_material};
use crate::graph::{Graph, InputSource, Target};
use crate::key::Digest;
use crate::store::{Manifest, Store};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// The five checks, in table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    Integrity,
    Freshness,
    Params,
    Structure,
    Lineage,
}

impl Check {
    pub const ALL: [Check; 5] = [
        Check::Integrity,
        Check::Freshness,
        Check::Params,
        Check::Structure,
        Check::Lineage,
    ];

    fn title(self) -> &'static str {
        match self {
            Check::Integrity => "integrity",
            Check::Freshness => "freshness",
            Check::Params => "params",
            Check::Structure => "structure",
            Check::Lineage => "lineage",
        }
    }
}

/// One problem found.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub target: String,
    /// The condition, or `study` for the shared artifacts and the summary.
    pub row: String,
    pub check: Check,
    pub message: String,
}

impl Finding {
    fn new(t: &Target, check: Check, message: String) -> Finding {
        Finding {
            target: t.name.clone(),
            row: row_of(t),
            check,
            message,
        }
    }
}

/// The audit's result.
#[derive(Debug, Serialize)]
pub struct Audit {
    pub targets: usize,
    pub missing: Vec<String>,
    /// The row of each missing target.
    #[serde(skip)]
    missing_rows: Vec<String>,
    pub findings: Vec<Finding>,
    pub rows: Vec<String>,
}

impl Audit {
    /// Whether everything holds.
    pub fn passed(&self) -> bool {
        self.missing.is_empty() && self.findings.is_empty()
    }

    /// The table and one line per failure.
    pub fn to_table(&self) -> String {
        let w = self.rows.iter().map(String::len).max().unwrap_or(5).max(9);
        let mut s = format!("{:w$}", "condition");
        for c in Check::ALL {
            s.push_str(&format!("  {:9}", c.title()));
        }
        s.push('\n');
        for row in &self.rows {
            s.push_str(&format!("{row:w$}"));
            for c in Check::ALL {
                let bad = self.findings.iter().any(|f| &f.row == row && f.check == c);
                let missing = self.missing_rows.contains(row);
                let mark = if bad {
                    "FAIL"
                } else if missing {
                    "missing"
                } else {
                    "ok"
                };
                s.push_str(&format!("  {mark:9}"));
            }
            s.push('\n');
        }
        for t in &self.missing {
            s.push_str(&format!(
                "{t}: missing (never built, or its output or manifest is gone)\n"
            ));
        }
        for f in &self.findings {
            s.push_str(&format!("{}: {}\n", f.target, f.message));
        }
        if self.passed() {
            s.push_str(&format!("verify: all {} targets hold\n", self.targets));
        }
        s
    }
}

/// A condition parameter (a seed; a replicate's own) read from a target's artifact must be the
/// one the target declares: one message per disagreement.
fn condition_param_findings(shape: &Shape, t: &Target, facts: &[Fact]) -> Vec<String> {
    facts
        .iter()
        .filter(|f| f.condition.is_none() && shape.condition_params.contains(&f.param.as_str()))
        .filter_map(|f| {
            let declared = t.params.get(&f.param)?;
            (!f.value.same_as(declared)).then(|| {
                format!(
                    "{} says {} {} (read from the artifact), the target declares {} {declared}",
                    f.source,
                    f.param,
                    f.value,
                    shape.study_name(&t.kind, &f.param)
                )
            })
        })
        .collect()
}

/// A target's row in the table: its condition, or `study`.
fn row_of(t: &Target) -> String {
    t.condition.clone().unwrap_or_else(|| "study".into())
}

/// Audit the selected targets. `fast` trusts unchanged stat fields instead of rehashing.
pub fn verify(
    graph: &Graph,
    catalog: &dyn Catalog,
    selected: &[usize],
    fast: bool,
) -> Result<Audit> {
    let store = Store::open_existing(&graph.out_dir)?;
    let shape = &graph.shape;
    let mut findings = Vec::new();
    let mut missing = Vec::new();
    let mut rows: Vec<String> = graph.conditions.iter().map(|c| c.name.clone()).collect();
    rows.push("study".into());
    rows.retain(|r| selected.iter().any(|&i| row_of(&graph.targets[i]) == *r));
    let mut missing_rows = Vec::new();

    // Current digests of every selected output, and the manifests.
    let mut current: HashMap<usize, Digest> = HashMap::new();
    let mut manifests: HashMap<usize, Manifest> = HashMap::new();
    for &i in selected {
        let t = &graph.targets[i];
        let mut add = |check, message| findings.push(Finding::new(t, check, message));
        let Some(store) = &store else {
            missing.push(t.name.clone());
            missing_rows.push(row_of(t));
            continue;
        };
        // A damaged manifest is this target's finding; the audit goes on.
        let m = match store.manifest(&t.name) {
            Ok(m) => m,
            Err(e) => {
                add(
                    Check::Integrity,
                    format!("manifest unreadable ({e}); the next build rewrites it"),
                );
                continue;
            }
        };
        let Some(m) = m else {
            if store.record(&t.name).is_some() {
                add(
                    Check::Integrity,
                    format!(
                        "manifest {} missing; the next build rewrites it",
                        store.manifest_path(&t.name).display()
                    ),
                );
            } else if std::fs::symlink_metadata(graph.output_path(i)).is_ok() {
                add(
                    Check::Integrity,
                    format!(
                        "{} exists but studymake never published it (no manifest): placed by hand?",
                        t.output.display()
                    ),
                );
            } else {
                missing.push(t.name.clone());
                missing_rows.push(row_of(t));
                missing_rows.push(row_of(t));
            }
            continue;
        };
        let path = graph.output_path(i);
        if std::fs::symlink_metadata(&path).is_err() {
            missing.push(t.name.clone());
            missing_rows.push(row_of(t));
            manifests.insert(i, m);
            continue;
        }
        let digest = if fast {
            match store.record(&t.name) {
                Some(r) if r.key == m.key => {
                    let mut r = r.clone();
                    match Store::check_output(&path, &mut r, false)? {
                        None => Some(r.output),
                        Some(_) => Store::hash_output(&path).ok().map(|(d, _)| d),
                    }
                }
                _ => Store::hash_output(&path).ok().map(|(d, _)| d),
            }
        } else {
            match Store::hash_output(&path) {
                Ok((d, files)) => {
                    if d != m.output_digest {
                        let recorded: BTreeMap<&str, &Digest> = m
                            .files
                            .iter()
                            .map(|(k, v)| (k.as_str(), &v.digest))
                            .collect();
                        let changed: Vec<String> = files
                            .iter()
                            .filter(|f| recorded.get(f.rel.as_str()) != Some(&&f.digest))
                            .map(|f| {
                                if f.rel.is_empty() {
                                    m.output_path.clone()
                                } else {
                                    format!("{}/{}", m.output_path, f.rel)
                                }
                            })
                            .collect();
                        let gone: Vec<String> = m
                            .files
                            .keys()
                            .filter(|k| !files.iter().any(|f| &f.rel == *k))
                            .map(|k| format!("{}/{k}", m.output_path))
                            .collect();
                        let mut what = changed;
                        what.extend(gone.into_iter().map(|g| format!("{g} (missing)")));
                        add(
                            Check::Integrity,
                            format!(
                                "output is not the recorded bytes: {}",
                                if what.is_empty() {
                                    m.output_path.clone()
                                } else {
                                    what.join(", ")
                                }
                            ),
                        );
                    }
                    Some(d)
                }
                Err(e) => {
                    add(Check::Integrity, format!("output cannot be read: {e}"));
                    None
                }
            }
        };
        if fast {
            if let Some(d) = digest {
                if d != m.output_digest {
                    add(
                        Check::Integrity,
                        format!("output {} is not the recorded bytes", m.output_path),
                    );
                }
            }
        }
        if let Some(d) = digest {
            current.insert(i, d);
        }
        manifests.insert(i, m);
    }

    // Targets found stale, so their dependents are stale too (`selected` is in build order).
    let mut stale: std::collections::HashSet<usize> = std::collections::HashSet::new();
    for &i in selected {
        let t = &graph.targets[i];
        let Some(m) = manifests.get(&i) else {
            stale.insert(i);
            continue;
        };
        let before = findings.len();
        let mut add = |check, message| findings.push(Finding::new(t, check, message));

        // Lineage: recorded inputs are the current outputs of the declared sources.
        let mut inputs = BTreeMap::new();
        let mut inputs_known = true;
        for inp in &t.inputs {
            let (expected_source, now) = match &inp.source {
                InputSource::Target(j) => (graph.targets[*j].name.clone(), current.get(j).copied()),
                InputSource::File(p) => (p.display().to_string(), crate::key::digest_file(p).ok()),
            };
            match m.input_sources.get(&inp.role) {
                Some(s) if *s == expected_source => {}
                Some(s) => add(
                    Check::Lineage,
                    format!(
                        "input `{}` was {s}, but the Studyfile says {expected_source}",
                        inp.role
                    ),
                ),
                None => add(
                    Check::Lineage,
                    format!("input `{}` is not recorded", inp.role),
                ),
            }
            match (now, m.material.inputs.get(&inp.role)) {
                (Some(now), Some(rec)) if now != *rec => add(
                    Check::Lineage,
                    format!(
                        "built from {expected_source} with digest {}, which is now {}",
                        rec.short(),
                        now.short()
                    ),
                ),
                _ => {}
            }
            match now {
                Some(d) => {
                    inputs.insert(inp.role.clone(), d);
                }
                None => inputs_known = false,
            }
        }

        // Freshness: the key of the current Studyfile and current input bytes.
        if inputs_known {
            let material = key_material(graph, i, inputs);
            if material.key() != m.key {
                let reasons: Vec<String> = diff(&m.material, &material)
                    .iter()
                    .map(|r| r.to_string())
                    .collect();
                add(Check::Freshness, format!("stale: {}", reasons.join("; ")));
            }
        } else {
            add(
                Check::Freshness,
                "an input is missing, so the key cannot be recomputed".into(),
            );
        }
        for inp in &t.inputs {
            if let InputSource::Target(j) = inp.source {
                if stale.contains(&j) {
                    add(
                        Check::Freshness,
                        format!(
                            "stale: input `{}` ({}) is stale",
                            inp.role, graph.targets[j].name
                        ),
                    );
                }
            }
        }

        // Declared parameters: the condition's structural ones, as recorded and as reported
        // by the worker; its condition parameters (the seeds), the same.
        if let Some(c) = graph.condition_of(t) {
            for p in shape.structural() {
                let Some(declared) = c.value(p) else { continue };
                for (source, params) in [
                    ("recorded", &m.material.params),
                    ("reported by the worker", &m.reported),
                ] {
                    if let Some(v) = params.get(p) {
                        if !v.same_as(declared) {
                            add(
                                Check::Params,
                                format!("{source} {p} is {v}, condition declares {p} {declared}"),
                            );
                        }
                    }
                }
                if t.params.contains_key(p) && !m.material.params.contains_key(p) {
                    add(
                        Check::Params,
                        format!("no {p} is recorded for this condition target"),
                    );
                }
            }
            for p in &shape.condition_params {
                let Some(decl) = t.params.get(*p) else {
                    continue;
                };
                if let Some(rec) = m.material.params.get(*p) {
                    if !rec.same_as(decl) {
                        let which = shape.study_name(&t.kind, p);
                        add(
                            Check::Params,
                            format!("recorded {p} is {rec}, the condition declares {which} {decl}"),
                        );
                    }
                }
                if let Some(v) = m.reported.get(*p) {
                    if !v.same_as(decl) {
                        add(
                            Check::Params,
                            format!("the worker reported {p} {v}, declared {decl}"),
                        );
                    }
                }
            }
        }

        // Structure: the structural facts read from the artifact's content, now.
        if current.contains_key(&i) {
            let facts = catalog
                .inspect(graph.inspected_as(i), &graph.output_path(i))
                .unwrap_or_default();
            for message in condition_param_findings(shape, t, &facts) {
                add(Check::Structure, message);
            }
            for f in facts.iter().filter(|f| shape.is_structural(&f.param)) {
                let (condition, own) = match &f.condition {
                    Some(c) => (graph.conditions.iter().find(|x| &x.name == c), false),
                    None => (graph.condition_of(t), true),
                };
                let Some(declared) = condition.and_then(|c| c.value(&f.param)) else {
                    continue;
                };
                if !f.value.same_as(declared) {
                    let (p, v) = (&f.param, &f.value);
                    add(
                        Check::Structure,
                        if own {
                            format!(
                                "{} says {p} {v} (read from the artifact), the condition declares {p} {declared}",
                                f.source
                            )
                        } else {
                            format!(
                                "{} for {} says {p} {v}, the condition declares {declared}",
                                f.source,
                                f.condition.as_deref().unwrap_or_default()
                            )
                        },
                    );
                }
            }
        }
        if findings[before..]
            .iter()
            .any(|f| matches!(f.check, Check::Freshness | Check::Integrity))
        {
            stale.insert(i);
        }
    }

    // The study's own rules over each condition's declared parameters.
    for c in &graph.conditions {
        if !selected
            .iter()
            .any(|&i| graph.targets[i].condition.as_deref() == Some(&c.name))
        {
            continue;
        }
        let params: ConditionParams = graph
            .targets
            .iter()
            .filter(|t| t.condition.as_deref() == Some(&c.name))
            .map(|t| (t.kind.as_str(), &t.params))
            .collect();
        for (kind, message) in catalog.audit(&params) {
            findings.push(Finding {
                target: format!("{}/{kind}", c.name),
                row: c.name.clone(),
                check: Check::Params,
                message,
            });
        }
    }

    Ok(Audit {
        targets: selected.len(),
        missing,
        missing_rows,
        findings,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Value;
    use crate::testing::{catalog, graph, studyfile_text};

    #[test]
    fn a_replicate_whose_artifact_holds_another_seed_is_named() {
        let text = "[matrix]\nlevel = [1]\nsource = [\"a\"]\n";
        let g = graph(&studyfile_text(text).replace("fit_seed = 3", "fit_seed = [3, 4]")).unwrap();
        let cat = catalog();
        let t = &g.targets[g.find("l1_a/s4/fit").unwrap()];
        let fact = |seed: i64| Fact {
            param: "seed".into(),
            condition: None,
            value: Value::Int(seed),
            source: "the fit's header".into(),
            label: "seed".into(),
        };
        assert!(condition_param_findings(cat.shape(), t, &[fact(4)]).is_empty());
        assert_eq!(
            condition_param_findings(cat.shape(), t, &[fact(3)]),
            ["the fit's header says seed 3 (read from the artifact), the target declares fit_seed 4"]
        );
    }
}
