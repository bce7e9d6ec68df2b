//! What the study would do and why, without building: `-n` (what would run, and the sbatch line
//! of each Slurm job), `status` (every target's state), `explain` (why one target and what it
//! needs are fresh or stale, cause by cause), `graph` (DOT) and `recipes`.

use super::{executor_kind, load, planner_for, remembered_profile, Settings};
use crate::build::log_path;
use crate::catalog::Catalog;
use crate::error::Result;
use crate::executor::slurm::{self as slurm_executor, SlurmExecutor};
use crate::freshness::{Action, Reason};
use crate::graph::Graph;

/// `studymake -n [TARGET...]`.
pub fn dry_run(g: &Settings, catalog: &dyn Catalog, targets: &[String]) -> Result<i32> {
    let graph = &load(g, catalog, g.profile.clone())?;
    let selected = graph.select(targets)?;
    let slurm = if executor_kind(graph, g)? == "slurm" {
        Some((
            graph.studyfile_dir()?,
            slurm_executor::settings_from(graph.executor.as_ref(), &graph.shape.all_kinds())?,
            slurm_executor::job_prefix(&graph.name, &graph.out_dir),
        ))
    } else {
        None
    };
    let mut planner = planner_for(graph)?;
    let plan = planner.plan(&selected)?;
    let (mut b, mut r) = (0, 0);
    for (i, a) in &plan {
        let t = &graph.targets[*i];
        let reasons: Vec<String> = a.reasons.iter().map(|r| r.to_string()).collect();
        match a.action {
            Action::Fresh => {}
            Action::RepairManifest => {
                println!("would repair {}: {}", t.name, reasons.join("; "));
            }
            Action::Restore => {
                r += 1;
                println!(
                    "would restore {} from the cache: {}",
                    t.name,
                    reasons.join("; ")
                );
            }
            Action::Build => {
                b += 1;
                println!(
                    "would build {} ({}): {}",
                    t.name,
                    t.recipe.describe(),
                    reasons.join("; ")
                );
                if let Some((dir, settings, prefix)) = &slurm {
                    let tmp = graph
                        .out_dir
                        .join(".studymake")
                        .join("tmp")
                        .join(t.name.replace('/', "~"));
                    let job = crate::executor::Job {
                        index: *i,
                        target: t.name.clone(),
                        kind: t.kind.clone(),
                        spec_path: tmp.join("job.json"),
                        log_path: log_path(graph, t),
                        cwd: dir.clone(),
                        threads: 1,
                        direct: None,
                    };
                    println!(
                        "    {}",
                        SlurmExecutor::sbatch_line(dir, settings, prefix, &job)?
                    );
                }
            }
        }
    }
    let fresh = plan.len() - b - r;
    println!("studymake: dry run: {b} to build, {r} to restore from the cache, {fresh} fresh; nothing executed");
    Ok(0)
}

/// `studymake status`.
pub fn status(g: &Settings, catalog: &dyn Catalog) -> Result<i32> {
    let graph = &load(g, catalog, remembered_profile(g, catalog)?)?;
    let all: Vec<usize> = graph.order.clone();
    let mut planner = planner_for(graph)?;
    let plan = planner.plan(&all)?;
    let width = graph
        .targets
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(6)
        .max(6);
    println!("{:width$}  {:12}  DETAIL", "TARGET", "STATE");
    for (i, a) in &plan {
        let t = &graph.targets[*i];
        let failed = a
            .reasons
            .iter()
            .any(|r| matches!(r, Reason::FailedLastTime(_)));
        let never = a.reasons.first() == Some(&Reason::NeverBuilt);
        let state = match (&a.action, failed, never) {
            (Action::Fresh, _, _) => "fresh",
            (_, true, _) => "failed",
            (Action::Restore, _, _) => "restorable",
            (_, _, true) => "missing",
            _ => "stale",
        };
        let detail: Vec<String> = a.reasons.iter().map(|r| r.to_string()).collect();
        println!("{:width$}  {:12}  {}", t.name, state, detail.join("; "));
    }
    Ok(0)
}

/// `studymake explain TARGET`.
pub fn explain(g: &Settings, catalog: &dyn Catalog, target: &str) -> Result<i32> {
    let graph = &load(g, catalog, remembered_profile(g, catalog)?)?;
    let selected = graph.select(&[target.to_string()])?;
    let mut planner = planner_for(graph)?;
    let plan = planner.plan(&selected)?;
    // The named target first, then what it needs, nearest first.
    for (i, a) in plan.iter().rev() {
        let t = &graph.targets[*i];
        if a.action == Action::Fresh && t.name != target {
            continue;
        }
        let key = a
            .key
            .map(|k| format!(" (key {})", k.short()))
            .unwrap_or_default();
        match a.action {
            Action::Fresh => println!("{} is fresh{key}: its key matches the record and its outputs are the recorded bytes", t.name),
            Action::Restore => println!("{} is stale{key}, and its output for this key is in the cache:", t.name),
            Action::RepairManifest => println!("{} is fresh{key}, but its manifest must be rewritten:", t.name),
            Action::Build => println!("{} is stale{key}:", t.name),
        }
        for r in &a.reasons {
            println!("  - {r}");
        }
    }
    Ok(0)
}

/// `studymake graph`: the target graph in DOT.
pub fn graph(g: &Settings, catalog: &dyn Catalog) -> Result<i32> {
    let graph: Graph = load(g, catalog, g.profile.clone())?;
    print!("{}", graph.to_dot());
    Ok(0)
}

/// `studymake recipes`: the built-in recipes, their versions, parameters and inputs, and the
/// kinds a target declared in `[targets.NAME]` may have.
pub fn recipes(catalog: &dyn Catalog) -> Result<i32> {
    for r in catalog.recipes() {
        println!("{} v{}: {}", r.name, r.version, r.doc);
        let inputs = if r.inputs.is_empty() {
            "none".to_string()
        } else {
            r.inputs.join(", ")
        };
        println!("    inputs: {inputs}");
        for p in &r.params {
            let d = p
                .default
                .as_ref()
                .map(|d| format!(" (default {d})"))
                .unwrap_or_default();
            println!("    {}{d}: {}", p.name, p.doc);
        }
    }
    let classes = &catalog.shape().classes;
    if !classes.is_empty() {
        println!();
        println!("kinds of a declared target ([targets.NAME] kind = \"KIND\"):");
        for c in classes {
            println!(
                "{}: read by every `{}` of its condition as `{}.NAME`; {}",
                c.name, c.read_by, c.name, c.doc
            );
        }
    }
    Ok(0)
}
