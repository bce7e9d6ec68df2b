//! The command line: clap's arguments, resolved into the engine's [`Settings`], dispatched to
//! the engine's commands with the study's catalog (this is the one place that sees both), and
//! errors mapped to the documented exit codes.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use studymake_engine::commands::{self, Settings};
use studymake_engine::error::{Error, Result};
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
        /// Register with phase cross-correlation (1/50 px) before scoring (then crop 2 px).
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
    let catalog = Builtins::new();
    if let Some(Cmd::Worker { spec }) = &cli.command {
        return commands::worker(spec, &catalog);
    }
    let g = &cli.global;
    if let Some(dir) = &g.directory {
        std::env::set_current_dir(dir).map_err(|e| Error::io(dir, e))?;
    }
    let s = Settings {
        file: g.file.clone(),
        jobs: g.jobs,
        keep_going: g.keep_going,
        profile: g.profile.clone(),
        verbose: g.verbose,
        wait: g.wait,
        executor: g.executor.clone(),
    };
    match &cli.command {
        None if cli.dry_run => commands::dry_run(&s, &catalog, &cli.targets),
        None => commands::build(&s, &catalog, &cli.targets),
        Some(Cmd::Status) => commands::status(&s, &catalog),
        Some(Cmd::Explain { target }) => commands::explain(&s, &catalog, target),
        Some(Cmd::Graph) => commands::graph(&s, &catalog),
        Some(Cmd::Clean { targets, cache }) => commands::clean(&s, &catalog, targets, *cache),
        Some(Cmd::Verify {
            targets,
            fast,
            json,
        }) => commands::verify(&s, &catalog, targets, *fast, *json),
        Some(Cmd::Compare {
            reconstruction,
            ground_truth,
            key,
            register,
            json,
        }) => {
            let text = studymake_study::compare::compare(
                reconstruction,
                ground_truth,
                key.as_deref(),
                *register,
                *json,
            )?;
            print!("{text}");
            Ok(0)
        }
        Some(Cmd::Recipes) => commands::recipes(&catalog),
        Some(Cmd::Worker { .. }) => unreachable!("handled above"),
    }
}
