//! Publishing a built target: its output must exist in the form declared, be readable as its
//! kind (for a built-in recipe), and agree with the declaration in every parameter its worker
//! reports and every fact read back from it; then it is hashed, its manifest written and the
//! output published into the study ([`crate::store::Store::publish`]).

use crate::catalog::{Catalog, Fact};
use crate::error::{Error, Result};
use crate::freshness::Planner;
use crate::graph::{Graph, InputSource, Target};
use crate::job::WorkerReport;
use crate::key::Digest;
use crate::params::{Params, Value};
use crate::recipe::Recipe;
use crate::store::{Identity, Manifest, Store, STATE_SCHEMA};
use std::path::Path;

use super::Running;

/// Check a finished worker's output and report against the declaration, then publish.
pub(super) fn finish(
    planner: &mut Planner,
    catalog: &dyn Catalog,
    i: usize,
    run: &Running,
) -> Result<Digest> {
    let graph = planner.graph;
    let t = &graph.targets[i];
    let out = &run.spec.output;
    let meta = std::fs::symlink_metadata(out).map_err(|_| Error::Build {
        target: t.name.clone(),
        message: format!(
            "the recipe finished but wrote no output at {}",
            out.display()
        ),
    })?;
    let wrote_expected = if t.output_is_dir {
        meta.is_dir()
    } else {
        meta.is_file()
    };
    if !wrote_expected {
        return Err(Error::Build {
            target: t.name.clone(),
            message: format!(
                "the recipe wrote {} at {}; its output must be {}",
                crate::filetype::describe(meta.file_type()),
                out.display(),
                if t.output_is_dir {
                    "a directory"
                } else {
                    "a regular file"
                }
            ),
        });
    }
    let report = WorkerReport::load(&run.spec.report)?.unwrap_or_default();
    // A built-in recipe's output must be readable as what it claims to be; an external
    // command's output may be in a format studymake does not know, and then only its report
    // speaks for it.
    let facts = match (catalog.inspect(graph.inspected_as(i), out), &t.recipe) {
        (Ok(facts), _) => facts,
        (Err(e), Recipe::Builtin { .. }) => {
            return Err(Error::Build {
                target: t.name.clone(),
                message: format!("its output could not be read back: {e}"),
            })
        }
        (Err(e), Recipe::Command { .. }) => {
            tracing::debug!(
                "{}: output not inspectable ({e}); relying on its report",
                t.name
            );
            Vec::new()
        }
    };
    let structural: Vec<&str> = catalog.shape().structural().collect();
    check_reported(t, &structural, &report.params, &facts)?;
    let inspected: Params = facts.into_iter().map(|f| (f.label, f.value)).collect();
    let (digest, files) = Store::hash_output(out)?;
    let id = identity(graph, i);
    let manifest = Manifest {
        schema: STATE_SCHEMA,
        studymake: env!("CARGO_PKG_VERSION").into(),
        target: id.target,
        kind: id.kind,
        condition: id.condition,
        key: run.key,
        material: run.material.clone(),
        input_sources: id.input_sources,
        reported: report.params,
        inspected,
        output_path: id.output_path,
        output_digest: digest,
        files: crate::store::file_entries(&files),
        started_unix: run.started_unix,
        seconds: run.started.elapsed().as_secs_f64(),
    };
    let rec = planner
        .store
        .publish(out, &graph.output_path(i), &manifest)?;
    let _ = &run.log;
    Ok(rec.output)
}

/// Target `i`'s identity in its manifest: its name, kind, condition, where each input comes
/// from, its output path. A restore writes the restoring target's own (see [`Identity`]).
pub(super) fn identity(graph: &Graph, i: usize) -> Identity {
    let t = &graph.targets[i];
    Identity {
        target: t.name.clone(),
        kind: t.kind.clone(),
        condition: t.condition.clone(),
        input_sources: t
            .inputs
            .iter()
            .map(|inp| {
                let s = match &inp.source {
                    InputSource::Target(j) => graph.targets[*j].name.clone(),
                    InputSource::File(p) => p.display().to_string(),
                };
                (inp.role.clone(), s)
            })
            .collect(),
        output_path: t.output.to_string_lossy().into_owned(),
    }
}

/// Compare what a worker reports, and the facts read back from its output, with the declared
/// parameters: a fact about one condition of a study-wide target speaks for the parameter
/// `PARAM.CONDITION`. A target that reads a structural parameter must confirm it, by its report
/// or by a fact.
pub fn check_reported(
    t: &Target,
    structural: &[&str],
    reported: &Params,
    facts: &[Fact],
) -> Result<()> {
    let mismatch = |param: &str, declared: &Value, built: &Value, source: &str| Error::Mismatch {
        target: t.name.clone(),
        param: param.to_string(),
        declared: declared.to_string(),
        built: format!("{built} ({source})"),
    };
    let mut confirmed: Vec<&str> = Vec::new();
    for (k, v) in reported {
        if let Some(d) = t.params.get(k) {
            if !d.same_as(v) {
                return Err(mismatch(k, d, v, "reported by the recipe"));
            }
            confirmed.push(k);
        }
    }
    for f in facts {
        let param = match &f.condition {
            Some(c) => format!("{}.{c}", f.param),
            None => f.param.clone(),
        };
        if let Some(d) = t.params.get(&param) {
            if !d.same_as(&f.value) {
                let source = format!("read from the output: {}", f.label);
                return Err(mismatch(&param, d, &f.value, &source));
            }
            if f.condition.is_none() {
                confirmed.push(&f.param);
            }
        }
    }
    for s in structural {
        if t.params.contains_key(*s) && !confirmed.contains(s) {
            return Err(Error::Build {
                target: t.name.clone(),
                message: format!(
                    "the recipe did not report the {s} it used, and it could not be read from \
                     its output; write {{\"params\": {{\"{s}\": N}}}} to the file named by \
                     {{report}} or $STUDYMAKE_REPORT"
                ),
            });
        }
    }
    Ok(())
}

/// The error a worker printed last, without its prefix, if any.
pub(super) fn worker_error(log: &Path, target: &str) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with("studymake: error: "))?;
    let msg = line.trim_start_matches("studymake: error: ");
    // The worker names its target too; keep one.
    let msg = msg.strip_prefix(&format!("{target}: ")).unwrap_or(msg);
    Some(msg.to_string())
}
