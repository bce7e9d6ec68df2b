//! Executors: where a job's worker process runs. The local executor ([`local`]) spawns
//! `studymake __worker SPEC` with a cleared environment, or an external command directly; the
//! Slurm executor ([`slurm`]) submits the same command as a batch job. Both only *run* workers:
//! the engine alone checks and publishes. [`command`] runs an external command as a recipe.

pub mod command;
pub mod local;
pub mod slurm;
pub mod supervise;

pub use command::{command_env, log_header, run_command, substitute};
pub use local::LocalExecutor;

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Environment variables a worker keeps; everything else is cleared.
pub const ENV_ALLOWLIST: [&str; 7] = ["PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ", "USER"];

/// One job handed to an executor.
#[derive(Clone, Debug)]
pub struct Job {
    /// Index of the target in the graph (echoed back on completion).
    pub index: usize,
    pub target: String,
    /// Target kind, for per-kind resources.
    pub kind: String,
    pub spec_path: PathBuf,
    pub log_path: PathBuf,
    /// Working directory (the Studyfile's directory).
    pub cwd: PathBuf,
    /// Threads the worker may use.
    pub threads: usize,
    /// For an external command run on this host: the command itself, spawned directly by the
    /// engine (no worker process in between). `None`: run `studymake __worker SPEC`.
    pub direct: Option<DirectCommand>,
}

/// An external command the local executor runs itself: its substituted argv, the extra
/// environment it gets on top of the cleared one, and the header written into its log.
#[derive(Clone, Debug)]
pub struct DirectCommand {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub header: String,
}

/// How a worker process ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Success,
    /// Failed, with a one-line description (exit status, Slurm state).
    Failed(String),
}

/// Runs workers.
pub trait Executor {
    /// Start a job's worker.
    fn start(&mut self, job: Job) -> Result<()>;
    /// Wait up to `timeout` for any started job to end.
    fn wait(&mut self, timeout: Duration) -> Result<Option<(usize, Outcome)>>;
    /// Jobs started and not yet reported ended.
    fn running(&self) -> usize;
    /// Stop every running job (Ctrl-C).
    fn cancel_all(&mut self);
    /// What starting this job would run, for `-n`.
    fn describe(&self, job: &Job) -> String;
    /// Whether this executor spawns external commands itself ([`Job::direct`]) instead of
    /// through a worker process.
    fn runs_commands_directly(&self) -> bool {
        false
    }
}

/// The worker command line for a job (run on this host). `/proc/self/exe` still runs this very
/// binary when a rebuild has replaced the file on disk mid-build.
pub fn local_worker_argv(job: &Job) -> Result<Vec<String>> {
    let mut argv = worker_argv(job)?;
    if Path::new("/proc/self/exe").exists() {
        argv[0] = "/proc/self/exe".into();
    }
    Ok(argv)
}

/// The worker command line for a job, naming the binary by its absolute path (for other hosts).
pub fn worker_argv(job: &Job) -> Result<Vec<String>> {
    let exe = std::env::current_exe().map_err(|e| Error::io("/proc/self/exe", e))?;
    Ok(vec![
        exe.to_string_lossy().into_owned(),
        "__worker".into(),
        job.spec_path.to_string_lossy().into_owned(),
    ])
}

/// The cleared environment a worker gets.
pub fn worker_env(threads: usize) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = ENV_ALLOWLIST
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect();
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()));
    }
    env.push(("RAYON_NUM_THREADS".into(), threads.to_string()));
    env
}

/// "exit status 3" or "killed by signal 9".
pub fn describe_status(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "ended abnormally".into(),
    }
}

/// The last `n` lines of a log, for failure messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
