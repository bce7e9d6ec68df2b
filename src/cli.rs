//! The command line: parses arguments, wires the recipe catalog into the engine (this is the only
//! module that sees both), runs the command and maps errors to the documented exit codes.

use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use studymake_engine::build::{self, log_path, Options};
use studymake_engine::catalog::Catalog;
use studymake_engine::error::{Error, Result};
use studymake_engine::executor::{Executor, LocalExecutor};
use studymake_engine::freshness::{Action, Planner, Reason};
use studymake_engine::graph::Graph;
use studymake_engine::job::JobSpec;
use studymake_engine::lock::StudyLock;
use studymake_engine::progress::Reporter;
use studymake_engine::recipe::Recipe;
use studymake_engine::slurm_executor::{self, SlurmExecutor};
use studymake_engine::store::Store;
use studymake_study::Builtins;

const AFTER_HELP: &str = "\
Targets: `all` (the default), a target (`gs2_hybrid/model`), a condition (`gs2_hybrid`: all its
targets), a kind (`model`: every condition's model), `probes/NAME`, `objects/NAME`, `report`.
Building a target also builds what it needs.

Exit codes: 0 ok; 1 a build, check or audit failed; 2 usage or input error (a bad Studyfile,
an unknown target, a study locked by another build).";

/// Build a computational study the way make builds a program.
#[derive(Parser, Debug)]
#[command(
    name = "studymake",
    version,
    about,
    after_help = AFTER_HELP
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    /// Targets to build (default: all).
    targets: Vec<String>,
    /// Show what would run, and why, without running anything.
    #[arg(short = 'n', long = "dry-run")]
    dry_run: bool,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Args, Debug, Clone)]
struct Global {
    /// The Studyfile to read.
    #[arg(short = 'f', long = "file", global = true, default_value = "Studyfile")]
    file: PathBuf,
    /// Change to DIR before doing anything.
    #[arg(short = 'C', long = "directory", global = true, value_name = "DIR")]
    directory: Option<PathBuf>,
    /// Run up to N jobs at once (default: the number of cores).
    #[arg(short = 'j', long = "jobs", global = true, value_name = "N")]
    jobs: Option<usize>,
    /// Keep building independent targets after a failure.
    #[arg(short = 'k', long = "keep-going", global = true)]
    keep_going: bool,
    /// Apply a named profile's parameter overrides (e.g. `quick`). `status`, `explain` and
    /// `verify` default to the profile of the last build.
    #[arg(long, global = true, value_name = "NAME")]
    profile: Option<String>,
    /// Print diagnostics (tracing); `RUST_LOG` refines them.
    #[arg(short = 'v', long = "verbose", global = true)]
    verbose: bool,
    /// Wait for another build of the same study instead of failing.
    #[arg(long, global = true)]
    wait: bool,
    /// Where workers run: `local` (default) or `slurm` (one batch job per target; also
    /// settable as `[executor] kind = "slurm"` in the Studyfile).
    #[arg(long, global = true, value_name = "KIND", value_parser = ["local", "slurm"])]
    executor: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Why a target is fresh or stale, cause by cause.
    Explain { target: String },
    /// A table of every target: fresh, stale (why), never built, failed.
    Status,
    /// The target graph in DOT (`studymake graph > study.dot`).
    Graph,
    /// Remove outputs (all, or the named targets and nothing else).
    Clean {
        targets: Vec<String>,
        /// Also drop the cache of earlier outputs.
        #[arg(long)]
        cache: bool,
    },
    /// Audit the study on disk: integrity, freshness, declared and structural gridsize and
    /// seeds, lineage. Exit 0 only when everything holds.
    Verify {
        targets: Vec<String>,
        /// Trust unchanged size/mtime/inode instead of rehashing every output.
        #[arg(long)]
        fast: bool,
        /// Print the audit as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Score any reconstruction against a ground truth with the study's own alignment and
    /// metric pipeline. Prints the metrics; writes nothing.
    Compare {
        /// A complex 2-D image (.npy, or .npz holding one complex array or `--key`).
        reconstruction: PathBuf,
        /// The ground-truth complex 2-D image.
        ground_truth: PathBuf,
        /// The array to read from .npz files.
        #[arg(long)]
        key: Option<String>,
        /// Register with phase cross-correlation (1/50 px) before scoring.
        #[arg(long)]
        register: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The built-in recipes, their versions, parameters and inputs.
    Recipes,
    /// Run one job spec (used by studymake itself).
    #[command(name = "__worker", hide = true)]
    Worker { spec: PathBuf },
}

/// Run studymake with the process arguments; returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    if cli.global.verbose || std::env::var_os("RUST_LOG").is_some() {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("studymake=debug"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("studymake: error: {e}");
            e.exit_code()
        }
    }
}

fn run(cli: Cli) -> Result<i32> {
    if let Some(Cmd::Worker { spec }) = &cli.command {
        return worker(spec);
    }
    if let Some(dir) = &cli.global.directory {
        std::env::set_current_dir(dir).map_err(|e| Error::io(dir, e))?;
    }
    if let Some(Cmd::Compare {
        reconstruction,
        ground_truth,
        key,
        register,
        json,
    }) = &cli.command
    {
        let text = studymake_study::compare::compare(
            reconstruction,
            ground_truth,
            key.as_deref(),
            *register,
            *json,
        )
        .map_err(Error::from)?;
        print!("{text}");
        return Ok(0);
    }
    let catalog = Builtins::new();
    let g = &cli.global;
    match &cli.command {
        None if cli.dry_run => {
            let graph = load(g, &catalog, g.profile.clone())?;
            dry_run(&graph, g, &cli.targets)
        }
        None => build_command(g, &catalog, &cli.targets),
        Some(Cmd::Status) => {
            let graph = load(g, &catalog, remembered_profile(g)?)?;
            status(&graph)
        }
        Some(Cmd::Explain { target }) => {
            let graph = load(g, &catalog, remembered_profile(g)?)?;
            explain(&graph, target)
        }
        Some(Cmd::Graph) => {
            let graph = load(g, &catalog, g.profile.clone())?;
            print!("{}", graph.to_dot());
            Ok(0)
        }
        Some(Cmd::Clean { targets, cache }) => {
            let graph = load(g, &catalog, g.profile.clone())?;
            clean(&graph, g, targets, *cache)
        }
        Some(Cmd::Verify {
            targets,
            fast,
            json,
        }) => {
            let graph = load(g, &catalog, remembered_profile(g)?)?;
            let selected = graph.select(targets)?;
            let t0 = std::time::Instant::now();
            let audit = studymake_engine::verify::verify(&graph, &catalog, &selected, *fast)?;
            if *json {
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
        Some(Cmd::Recipes) => {
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
            Ok(0)
        }
        Some(Cmd::Worker { .. }) | Some(Cmd::Compare { .. }) => unreachable!("handled above"),
    }
}

/// The Studyfile named by `-f`, parsed.
fn load_studyfile(g: &Global) -> Result<studymake_engine::studyfile::Studyfile> {
    if !g.file.exists() {
        return Err(Error::Usage(format!(
            "{}: no such Studyfile (give one with -f FILE; Studyfile.example shows the format)",
            g.file.display()
        )));
    }
    studymake_engine::studyfile::Studyfile::load(&g.file, Builtins::new().shape())
}

fn load(g: &Global, catalog: &dyn Catalog, profile: Option<String>) -> Result<Graph> {
    Graph::from_studyfile(&load_studyfile(g)?, profile.as_deref(), catalog)
}

/// `--profile`, or the profile of the last build of this study (said on stderr).
fn remembered_profile(g: &Global) -> Result<Option<String>> {
    if g.profile.is_some() {
        return Ok(g.profile.clone());
    }
    let Ok(sf) = studymake_engine::studyfile::Studyfile::load(&g.file, Builtins::new().shape())
    else {
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

/// `studymake [TARGET...]`: take the study's lock, end at once when the no-op stamp proves
/// nothing changed, else expand the graph and build.
fn build_command(g: &Global, catalog: &Builtins, targets: &[String]) -> Result<i32> {
    let t0 = std::time::Instant::now();
    let sf = load_studyfile(g)?;
    let out_dir = Graph::out_dir_of(&sf)?;
    std::fs::create_dir_all(&out_dir).map_err(|e| Error::io(&out_dir, e))?;
    let state_dir = out_dir.join(".studymake");
    let lock = StudyLock::acquire(&state_dir, g.wait)?;
    let studyfile = std::path::absolute(&sf.path).map_err(|e| Error::io(&sf.path, e))?;
    let context = studymake_engine::stamp::context(
        catalog,
        &studyfile,
        sf.source.as_bytes(),
        g.profile.as_deref(),
        targets,
    );
    if let Some(n) = studymake_engine::stamp::check(&state_dir, &context) {
        tracing::debug!(
            "stamp: nothing changed, checked in {:.1} ms",
            t0.elapsed().as_secs_f64() * 1e3
        );
        println!("studymake: nothing to do: all {n} targets are fresh");
        return Ok(0);
    }
    // Replay the state log on another core while the graph is expanded.
    let (graph, store) = std::thread::scope(|scope| {
        let store = scope.spawn(|| Store::open(&out_dir));
        let graph = Graph::from_studyfile(&sf, g.profile.as_deref(), catalog);
        tracing::debug!(
            "graph: expanded in {:.1} ms",
            t0.elapsed().as_secs_f64() * 1e3
        );
        let store = store
            .join()
            .unwrap_or_else(|_| Err(Error::Other("internal: the state reader panicked".into())));
        tracing::debug!(
            "state: opened at {:.1} ms",
            t0.elapsed().as_secs_f64() * 1e3
        );
        (graph, store)
    });
    let graph = graph?;
    let result = build(&graph, catalog, g, targets, lock, store?, &context);
    // Freeing thousands of targets one by one is work the process exit does for free.
    std::mem::forget(graph);
    result
}

fn build(
    graph: &Graph,
    catalog: &Builtins,
    g: &Global,
    targets: &[String],
    _lock: StudyLock,
    store: Store,
    context: &studymake_engine::key::Digest,
) -> Result<i32> {
    let selected = graph.select(targets)?;
    let reclaimed = store.reclaim_scratch()?;
    if reclaimed > 0 {
        println!(
            "studymake: reclaimed {reclaimed} scratch director{} of an interrupted run",
            if reclaimed == 1 { "y" } else { "ies" }
        );
    }
    // Remembered for status/explain/verify; rewritten (and fsynced) only when it changes.
    let profile_path = store.dir.join("profile");
    let profile = graph.profile.clone().unwrap_or_default();
    if std::fs::read_to_string(&profile_path).ok().as_deref() != Some(profile.as_str()) {
        studymake_engine::store::write_atomic(&profile_path, profile.as_bytes())?;
    }
    studymake_engine::sys::install_signal_handlers();
    let slurm = executor_kind(graph, g)? == "slurm";
    let mut executor: Box<dyn Executor> = if slurm {
        Box::new(SlurmExecutor::new(
            &graph.studyfile_dir()?,
            slurm_executor::settings_from(graph.executor.as_ref(), &catalog.shape().all_kinds())?,
            slurm_executor::job_prefix(&graph.name, &graph.out_dir),
        )?)
    } else {
        Box::new(LocalExecutor::new())
    };
    let opts = Options {
        jobs: g
            .jobs
            .unwrap_or_else(|| if slurm { SLURM_DEFAULT_JOBS } else { cores() })
            .max(1),
        keep_going: g.keep_going,
        threads: cores(),
        full_check: false,
    };
    let mut planner = Planner::new(graph, store, false);
    let mut reporter = Reporter::new(g.verbose);
    let s = build::build(
        &mut planner,
        catalog,
        executor.as_mut(),
        &selected,
        &opts,
        &mut reporter,
    )?;
    if studymake_engine::sys::interrupted() {
        return Err(Error::Other(
            "interrupted; rerun to finish the build".into(),
        ));
    }
    let total = selected.len();
    if s.failed == 0 {
        write_stamp(&planner, &selected, context)?;
    }
    // As for the graph: the process exit frees the replayed state at no cost.
    std::mem::forget(planner);
    if s.failed > 0 {
        return Err(Error::BuildFailed {
            failed: s.failed,
            skipped: s.skipped,
        });
    }
    if s.built == 0 && s.restored == 0 {
        println!("studymake: nothing to do: all {total} targets are fresh");
    } else {
        println!(
            "studymake: {total} targets: {} built, {} restored from cache, {} fresh",
            s.built, s.restored, s.fresh
        );
    }
    Ok(0)
}

/// After a build that left every selected target fresh: the stamp that lets the next no-op run
/// end without the full check (see `stamp.rs`). It vouches with the records' stats, the ones the
/// full check compares, and for source files with stats taken before re-reading them.
fn write_stamp(
    planner: &Planner,
    selected: &[usize],
    context: &studymake_engine::key::Digest,
) -> Result<()> {
    let graph = planner.graph;
    let state_dir = planner.store.dir.clone();
    let mut paths = Vec::new();
    for &i in selected {
        let t = &graph.targets[i];
        let Some(rec) = planner.store.record(&t.name) else {
            return studymake_engine::stamp::remove(&state_dir);
        };
        let dest = graph.output_path(i);
        let mut dirs = std::collections::BTreeSet::new();
        for f in &rec.files {
            let p = if f.rel.is_empty() {
                dest.clone()
            } else {
                dest.join(&f.rel)
            };
            paths.push((p, (f.size, f.mtime_ns, f.ino)));
            // Every directory of a directory output: its mtime moves when entries come or go.
            let mut rel = Path::new(&f.rel).parent();
            while let Some(r) = rel {
                if !dirs.insert(r.to_path_buf()) {
                    break;
                }
                rel = r.parent();
            }
        }
        if t.output_is_dir {
            dirs.insert(PathBuf::new());
        }
        for d in dirs {
            let p = dest.join(&d);
            match studymake_engine::store::stat(&p) {
                Ok(st) => paths.push((p, st)),
                Err(_) => return studymake_engine::stamp::remove(&state_dir),
            }
        }
    }
    for (p, d) in planner.sources() {
        let st = studymake_engine::store::stat(p);
        match (st, studymake_engine::key::digest_file(p)) {
            (Ok(st), Ok(now)) if now == *d => paths.push((p.clone(), st)),
            _ => return studymake_engine::stamp::remove(&state_dir),
        }
    }
    studymake_engine::stamp::write(&state_dir, context, selected.len(), paths)
}

/// Jobs in flight at once on Slurm when `-j` is not given.
const SLURM_DEFAULT_JOBS: usize = 64;

/// `--executor`, else the Studyfile's `[executor] kind`, else `local`.
fn executor_kind(graph: &Graph, g: &Global) -> Result<String> {
    let from_file = slurm_executor::kind_from(graph.executor.as_ref())?;
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

fn dry_run(graph: &Graph, g: &Global, targets: &[String]) -> Result<i32> {
    let selected = graph.select(targets)?;
    let slurm = if executor_kind(graph, g)? == "slurm" {
        Some((
            graph.studyfile_dir()?,
            slurm_executor::settings_from(
                graph.executor.as_ref(),
                &Builtins::new().shape().all_kinds(),
            )?,
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
                    let job = studymake_engine::executor::Job {
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

fn status(graph: &Graph) -> Result<i32> {
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

fn explain(graph: &Graph, target: &str) -> Result<i32> {
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
            Action::Build => println!("{} is stale{key}:", t.name),
        }
        for r in &a.reasons {
            println!("  - {r}");
        }
    }
    Ok(0)
}

/// Whether every component of `path` below `root` is a real directory (no symlink escapes).
fn inside_study(root: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(root) else {
        return false;
    };
    let mut cur = root.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for (k, c) in comps.iter().enumerate() {
        if !matches!(c, std::path::Component::Normal(_)) {
            return false;
        }
        cur.push(c);
        if k + 1 < comps.len() {
            match std::fs::symlink_metadata(&cur) {
                Ok(m) if m.file_type().is_symlink() => return false,
                _ => {}
            }
        }
    }
    true
}

fn clean(graph: &Graph, g: &Global, targets: &[String], cache: bool) -> Result<i32> {
    if !graph.out_dir.exists() {
        println!("studymake: nothing to clean");
        return Ok(0);
    }
    let _lock = StudyLock::acquire(&graph.out_dir.join(".studymake"), g.wait)?;
    let mut store = Store::open(&graph.out_dir)?;
    let chosen: Vec<usize> = if targets.is_empty() {
        graph.order.clone()
    } else {
        // The named targets only, not what they depend on.
        let mut v = Vec::new();
        for name in targets {
            let sel = graph.select(std::slice::from_ref(name))?;
            let closure_root: Vec<usize> = sel
                .into_iter()
                .filter(|i| {
                    let t = &graph.targets[*i];
                    name == "all"
                        || t.name == *name
                        || t.condition.as_deref() == Some(name.as_str())
                        || t.kind == *name
                })
                .collect();
            v.extend(closure_root);
        }
        v
    };
    let mut removed = 0;
    for i in chosen {
        let t = &graph.targets[i];
        let p = graph.output_path(i);
        if !inside_study(&graph.out_dir, &p) {
            eprintln!(
                "studymake: not removing {} (it is not inside the study directory)",
                p.display()
            );
            continue;
        }
        if std::fs::symlink_metadata(&p).is_ok() {
            studymake_engine::store::remove_path(&p)?;
            removed += 1;
        }
        let log = log_path(graph, t);
        if inside_study(&graph.out_dir, &log) {
            studymake_engine::store::remove_path(&log)?;
        }
        store.forget(&t.name)?;
    }
    store.compact()?;
    if cache {
        store.clear_cache()?;
    }
    println!(
        "studymake: removed {removed} output{}{}",
        if removed == 1 { "" } else { "s" },
        if cache {
            " and the cache"
        } else {
            " (the cache keeps them: a rebuild restores them; --cache drops it)"
        }
    );
    Ok(0)
}

/// The hidden worker: build one target from its spec.
fn worker(spec_path: &Path) -> Result<i32> {
    let spec = JobSpec::load(spec_path)?;
    print!("{}", studymake_engine::executor::log_header(&spec));
    match &spec.recipe {
        Recipe::Builtin { .. } => Builtins::new().run(&spec)?,
        Recipe::Command { .. } => studymake_engine::executor::run_command(&spec)?,
    }
    Ok(0)
}
