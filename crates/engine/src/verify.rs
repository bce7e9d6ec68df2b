//! `studymake verify`: an audit of the study as it is on disk now. For every target it checks
//! integrity (the outputs are the recorded bytes), freshness (the recorded key is the key of the
//! current Studyfile and the current bytes of the inputs), the declared parameters (gridsize and
//! seeds of the condition), the structural gridsize read from the artifacts' content, and lineage
//! (each artifact's recorded inputs are the current outputs of the targets it claims to come from).

use crate::catalog::Catalog;
use crate::error::Result;
use crate::graph::{Graph, InputSource};
use crate::key::{Digest, KeyMaterial};
use crate::params::Value;
use crate::scheduler::diff;
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
    /// The condition, or `study` for probes, objects and the report.
    pub row: String,
    pub check: Check,
    pub message: String,
}

impl Finding {
    fn new(target: &str, check: Check, message: String) -> Finding {
        Finding {
            target: target.to_string(),
            row: row_of_name(target),
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
                let missing = self.missing.iter().any(|t| row_of_name(t) == *row);
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

fn row_of_name(target: &str) -> String {
    match target.split_once('/') {
        Some((c, _)) if c != "probes" && c != "objects" => c.to_string(),
        _ => "study".into(),
    }
}

/// Audit the selected targets. `fast` trusts unchanged stat fields instead of rehashing.
pub fn verify(
    graph: &Graph,
    catalog: &dyn Catalog,
    selected: &[usize],
    fast: bool,
) -> Result<Audit> {
    let store = Store::open_existing(&graph.out_dir)?;
    let mut findings = Vec::new();
    let mut missing = Vec::new();
    let mut rows: Vec<String> = graph.conditions.iter().map(|c| c.name.clone()).collect();
    rows.push("study".into());
    rows.retain(|r| {
        selected
            .iter()
            .any(|&i| row_of_name(&graph.targets[i].name) == *r)
    });

    // Current digests of every selected output, and the manifests.
    let mut current: HashMap<usize, Digest> = HashMap::new();
    let mut manifests: HashMap<usize, Manifest> = HashMap::new();
    for &i in selected {
        let t = &graph.targets[i];
        let mut add = |check, message| findings.push(Finding::new(&t.name, check, message));
        let Some(store) = &store else {
            missing.push(t.name.clone());
            continue;
        };
        let Some(m) = store.manifest(&t.name)? else {
            if std::fs::symlink_metadata(graph.output_path(i)).is_ok() {
                add(
                    Check::Integrity,
                    format!(
                        "{} exists but studymake never published it (no manifest): placed by hand?",
                        t.output.display()
                    ),
                );
            } else {
                missing.push(t.name.clone());
            }
            continue;
        };
        let path = graph.output_path(i);
        if std::fs::symlink_metadata(&path).is_err() {
            missing.push(t.name.clone());
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
        let mut add = |check, message| findings.push(Finding::new(&t.name, check, message));

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
            let material = KeyMaterial {
                recipe: m.material.recipe.clone(),
                output: m.material.output.clone(),
                params: t.params.clone(),
                inputs,
            };
            let material = KeyMaterial {
                recipe: crate::scheduler::recipe_material(&t.recipe),
                output: crate::scheduler::output_form(t),
                ..material
            };
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

        // Declared parameters.
        if let Some(cname) = &t.condition {
            let c = graph.conditions.iter().find(|c| &c.name == cname);
            if let Some(c) = c {
                let g = Value::Int(c.gridsize);
                for (source, params) in [
                    ("recorded", &m.material.params),
                    ("reported by the worker", &m.reported),
                ] {
                    if let Some(v) = params.get("gridsize") {
                        if !v.same_as(&g) {
                            add(
                                Check::Params,
                                format!(
                                    "{source} gridsize is {v}, condition declares gridsize {}",
                                    c.gridsize
                                ),
                            );
                        }
                    }
                }
                if !m.material.params.contains_key("gridsize") {
                    add(
                        Check::Params,
                        "no gridsize is recorded for this condition target".into(),
                    );
                }
                if let (Some(rec), Some(decl)) =
                    (m.material.params.get("seed"), t.params.get("seed"))
                {
                    if !rec.same_as(decl) {
                        let which = if matches!(t.kind.as_str(), "train_data" | "model") {
                            "train_seed"
                        } else {
                            "test_seed"
                        };
                        add(
                            Check::Params,
                            format!(
                                "recorded seed is {rec}, the condition declares {which} {decl}"
                            ),
                        );
                    }
                }
                if let Some(v) = m.reported.get("seed") {
                    if let Some(decl) = t.params.get("seed") {
                        if !v.same_as(decl) {
                            add(
                                Check::Params,
                                format!("the worker reported seed {v}, declared {decl}"),
                            );
                        }
                    }
                }
            }
        }

        // Structure: gridsize read from the artifact's content, now.
        if current.contains_key(&i) {
            let facts = catalog
                .inspect(&t.kind, &graph.output_path(i))
                .unwrap_or_default();
            for (k, v) in &facts {
                if let Some(cname) = &t.condition {
                    if k == "gridsize" || k.ends_with(".gridsize") {
                        if let Some(c) = graph.conditions.iter().find(|c| &c.name == cname) {
                            if !v.same_as(&Value::Int(c.gridsize)) {
                                add(
                                    Check::Structure,
                                    format!("{} {v} (read from the artifact), the condition declares gridsize {}", describe_fact(k), c.gridsize),
                                );
                            }
                        }
                    }
                } else if let Some((cname, "gridsize")) = k.rsplit_once('.') {
                    if let Some(c) = graph.conditions.iter().find(|c| c.name == cname) {
                        if !v.same_as(&Value::Int(c.gridsize)) {
                            add(
                                Check::Structure,
                                format!("its row for {cname} says gridsize {v}, the condition declares {}", c.gridsize),
                            );
                        }
                    }
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

    // Train and test seeds of each condition must differ.
    for c in &graph.conditions {
        let seed = |kind: &str| {
            graph
                .find(&format!("{}/{kind}", c.name))
                .and_then(|i| graph.targets[i].params.get("seed").cloned())
        };
        if let (Some(a), Some(b)) = (seed("train_data"), seed("test_data")) {
            if a == b
                && selected
                    .iter()
                    .any(|&i| graph.targets[i].condition.as_deref() == Some(&c.name))
            {
                findings.push(Finding {
                    target: format!("{}/test_data", c.name),
                    row: c.name.clone(),
                    check: Check::Params,
                    message: format!("train and test sets share seed {a}: the test set would repeat the training patterns"),
                });
            }
        }
    }

    Ok(Audit {
        targets: selected.len(),
        missing,
        findings,
        rows,
    })
}

fn describe_fact(k: &str) -> String {
    match k {
        "first_layer.gridsize" => {
            "the model's first layer (its input channels) says gridsize".into()
        }
        "group_index.gridsize" => "the dataset's group_index width says gridsize".into(),
        "training_log.gridsize" => "the training log declares gridsize".into(),
        "safetensors.gridsize" => "the model's metadata says gridsize".into(),
        "model.gridsize" => "the evaluated model has gridsize".into(),
        "dataset.gridsize" => "the evaluated dataset has gridsize".into(),
        other => format!("{other} is"),
    }
}
