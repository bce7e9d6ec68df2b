//! The commands of studymake, as the binary's command line asks for them: each takes the
//! resolved [`Settings`] and the study's catalog, prints what the user reads, and returns the
//! exit code (or an error, whose [`Error::exit_code`] the binary uses).
//!
//! * [`build`]: build targets (the default command), with the no-op stamp;
//! * [`plan`]: what would run (`-n`), every target's state (`status`), why (`explain`), the graph
//!   in DOT, the built-in recipes;
//! * [`clean`]: remove outputs;
//! * [`verify`] and [`worker`] below: the audit's report, and one job in a worker process.

mod build;
mod clean;
mod plan;

pub use build::build;
pub use clean::clean;
pub use plan::{dry_run, explain, graph, recipes, status};

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::freshness::Planner;
use crate::graph::Graph;
use crate::job::JobSpec;
use crate::recipe::Recipe;
use crate::store::Store;
use crate::studyfile::Studyfile;
use std::path::{Path, PathBuf};

/// The options every command reads, resolved from the command line.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// The Studyfile.
    pub file: PathBuf,
    /// Jobs at once (`-j`); default: the number of cores (64 on Slurm).
    pub jobs: Option<usize>,
    /// Keep building independent targets after a failure (`-k`).
    pub keep_going: bool,
    /// The profile (`--profile`).
    pub profile: Option<String>,
    /// Diagnostics (`-v`).
    pub verbose: bool,
    /// Wait for another build of the same study instead of failing (`--wait`).
    pub wait: bool,
    /// Where workers run (`--executor`): `local` or `slurm`.
    pub executor: Option<String>,
}

/// The Studyfile named by `-f`, parsed.
fn load_studyfile(g: &Settings, catalog: &dyn Catalog) -> Result<Studyfile> {
    if !g.file.exists() {
        return Err(Error::Usage(format!(
            "{}: no such Studyfile (give one with -f FILE; Studyfile.example shows the format)",
            g.file.display()
        )));
    }
    Studyfile::load(&g.file, catalog.shape())
}

fn load(g: &Settings, catalog: &dyn Catalog, profile: Option<String>) -> Result<Graph> {
    Graph::from_studyfile(&load_studyfile(g, catalog)?, profile.as_deref(), catalog)
}

/// `--profile`, or the profile of the last build of this study (said on stderr).
fn remembered_profile(g: &Settings, catalog: &dyn Catalog) -> Result<Option<String>> {
    if g.profile.is_some() {
        return Ok(g.profile.clone());
    }
    let Ok(sf) = Studyfile::load(&g.file, catalog.shape()) else {
        return Ok(None);
    };
    let Ok(out) = Graph::out_dir_of(&sf) else {
        return Ok(None);
    };
    let p = out.join(".studymake").join("profile");
    match std::fs::read_to_string(&p) {
        Ok(s) if !s.trim().is_empty() => {
            eprintln!(
                "studymake: using profile `{}` of the last build (pass --profile to choose)",
                s.trim()
            );
            Ok(Some(s.trim().to_string()))
        }
        _ => Ok(None),
    }
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Jobs in flight at once on Slurm when `-j` is not given.
const SLURM_DEFAULT_JOBS: usize = 64;

/// `--executor`, else the Studyfile's `[executor] kind`, else `local`.
fn executor_kind(graph: &Graph, g: &Settings) -> Result<String> {
    let from_file = crate::executor::slurm::kind_from(graph.executor.as_ref())?;
    Ok(g.executor
        .clone()
        .or(from_file)
        .unwrap_or_else(|| "local".into()))
}

fn planner_for(graph: &Graph) -> Result<Planner<'_>> {
    let store = match Store::open_existing(&graph.out_dir)? {
        Some(s) => s,
        None => Store::in_memory(&graph.out_dir),
    };
    Ok(Planner::new(graph, store, false))
}

/// `studymake verify`: audit the selected targets and print the table (or JSON).
pub fn verify(
    g: &Settings,
    catalog: &dyn Catalog,
    targets: &[String],
    fast: bool,
    json: bool,
) -> Result<i32> {
    let graph = load(g, catalog, remembered_profile(g, catalog)?)?;
    let selected = graph.select(targets)?;
    let t0 = std::time::Instant::now();
    let audit = crate::verify::verify(&graph, catalog, &selected, fast)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&audit).unwrap_or_default()
        );
    } else {
        print!("{}", audit.to_table());
        eprintln!("studymake: verify took {:.2} s", t0.elapsed().as_secs_f64());
    }
    if audit.passed() {
        Ok(0)
    } else {
        Err(Error::AuditFailed {
            problems: audit.findings.len() + audit.missing.len(),
        })
    }
}

/// The hidden worker: build one target from its spec.
pub fn worker(spec_path: &Path, catalog: &dyn Catalog) -> Result<i32> {
    let spec = JobSpec::load(spec_path)?;
    print!("{}", crate::executor::log_header(&spec));
    match &spec.recipe {
        Recipe::Builtin { .. } => catalog.run(&spec)?,
        Recipe::Command { .. } => crate::executor::run_command(&spec)?,
    }
    Ok(0)
}
