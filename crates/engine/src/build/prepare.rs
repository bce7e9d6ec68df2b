//! Preparing a job: a private scratch directory, the job spec a worker reads (every parameter,
//! the inputs' paths, where to write), and for an external command its argv with placeholders
//! substituted.

use crate::error::{Error, Result};
use crate::executor::{command_env, log_header, substitute, DirectCommand, Job};
use crate::freshness::Planner;
use crate::graph::InputSource;
use crate::job::{JobSpec, JOB_SCHEMA};
use crate::params::Value;
use crate::recipe::Recipe;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::{log_path, Options};

/// Write the job spec of target `i` into a fresh scratch directory.
pub(super) fn prepare(
    planner: &mut Planner,
    i: usize,
    opts: &Options,
    cwd: &Path,
    direct_commands: bool,
) -> Result<(JobSpec, PathBuf, Job)> {
    let graph = planner.graph;
    let t = &graph.targets[i];
    let scratch = planner.store.scratch(&t.name)?;
    let output = match t.output.file_name() {
        Some(n) => scratch.join(n),
        None => scratch.join("out"),
    };
    let report = scratch.join("report.json");
    let mut inputs = BTreeMap::new();
    for inp in &t.inputs {
        let p = match &inp.source {
            InputSource::Target(j) => graph.output_path(*j),
            InputSource::File(p) => p.clone(),
        };
        inputs.insert(inp.role.clone(), p);
    }
    let recipe = match &t.recipe {
        Recipe::Builtin { .. } => t.recipe.clone(),
        Recipe::Command { argv, version } => {
            // Every parameter as `{param.NAME}` and by its bare name: the graph allowed bare
            // names only for the condition's structural and condition parameters.
            let mut values: HashMap<String, String> = HashMap::new();
            for (k, v) in &t.params {
                let s = match v {
                    Value::Str(s) => s.clone(),
                    other => other.to_string(),
                };
                values.insert(format!("param.{k}"), s.clone());
                values.insert(k.clone(), s);
            }
            for (role, p) in &inputs {
                values.insert(format!("input.{role}"), p.to_string_lossy().into_owned());
            }
            values.insert("output".into(), output.to_string_lossy().into_owned());
            values.insert("report".into(), report.to_string_lossy().into_owned());
            values.insert("target".into(), t.name.clone());
            values.insert("condition".into(), t.condition.clone().unwrap_or_default());
            Recipe::Command {
                argv: substitute(argv, &values).map_err(|e| Error::Build {
                    target: t.name.clone(),
                    message: e.to_string(),
                })?,
                version: version.clone(),
            }
        }
    };
    let spec = JobSpec {
        schema: JOB_SCHEMA,
        target: t.name.clone(),
        kind: t.kind.clone(),
        recipe,
        params: t.params.clone(),
        inputs,
        output,
        report,
        threads: opts.threads,
    };
    // The spec lives in the job's private scratch, which a crash throws away: no fsync needed.
    let spec_path = scratch.join("job.json");
    if let Err(e) = std::fs::write(
        &spec_path,
        serde_json::to_string_pretty(&spec).expect("job specs serialise"),
    ) {
        // Disk full or read-only: leave no scratch behind for this target.
        let _ = crate::store::remove_path(&scratch);
        return Err(Error::io(&spec_path, e));
    }
    let direct = match (&spec.recipe, direct_commands) {
        (Recipe::Command { argv, .. }, true) => Some(DirectCommand {
            argv: argv.clone(),
            env: command_env(&spec),
            header: log_header(&spec),
        }),
        _ => None,
    };
    let job = Job {
        index: i,
        target: t.name.clone(),
        kind: t.kind.clone(),
        spec_path,
        log_path: log_path(graph, t),
        cwd: cwd.to_path_buf(),
        threads: opts.threads,
        direct,
    };
    Ok((spec, scratch, job))
}
