//! The Slurm client of the engine's Slurm executor: resource settings, batch scripts, `sbatch`
//! submission, batched state polling, cancellation and finding jobs of earlier runs.
//!
//! This module knows Slurm's command-line tools and nothing about studies, targets or recipes (it
//! never imports a study's recipes). The engine uses it like this, one job per ready target:
//!
//! 1. [`write_job_script`] writes a `#!/bin/sh` script that `exec`s the worker
//!    (`/abs/studymake __worker /abs/SPEC.json`);
//! 2. [`Slurm::submit`] runs `sbatch --parsable` on it with the target's [`SlurmConfig`], the job
//!    name `studymake:<study-id>:<target>` and a log path, and returns the [`JobId`];
//! 3. [`Slurm::poll`] asks for the states of all outstanding jobs in one `squeue` call;
//! 4. [`Slurm::cancel`] cancels jobs (one `scancel` call) on failure or interrupt;
//! 5. [`Slurm::find_running`] lets a rerun find a job of an earlier run that is still queued or
//!    running for the same target, instead of submitting it twice.
//!
//! Conventions:
//! * The commands are looked up on `PATH` (or in [`Slurm::with_program_dir`]); the cluster is the
//!   one the environment names (`SLURM_CONF` or the site's default). Every command runs with stdin
//!   closed and its stdout/stderr captured; a failure becomes [`Error::Slurm`] naming the command
//!   line and quoting its stderr.
//! * The job's environment is deliberate: `--export=PATH` (plus the names in
//!   [`SlurmConfig::export`]). Every build parameter travels in the job-spec file, never in the
//!   environment. With an explicit variable list Slurm also loads the user's login environment
//!   on the node (as `--get-user-env` does), so `HOME`, `USER` and site modules are as on a login.
//! * Accounting (`sacct`) is optional: polling uses `squeue -t all`, which sees finished jobs for
//!   the cluster's `MinJobAge` seconds (300 by default), and falls back to `scontrol show job` and
//!   then `sacct` for jobs squeue has forgotten. A job no tool knows any more is reported as
//!   [`JobState::Vanished`]; the engine then judges the build by the worker's report file.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

// ------------------------------------------------------------------------------------------------
// Resources

/// Slurm resources of one job, as written in the Studyfile under `[executor.slurm]` (the
/// defaults) or `[executor.slurm.<kind>]` (overrides for one recipe kind, see [`SlurmSettings`]).
///
/// Every key is optional; a missing key is not passed to `sbatch`, so the site's default applies,
/// except `cpus`, which defaults to 1 because the engine gives the worker that many threads.
///
/// ```toml
/// [executor.slurm]
/// partition = "cpu"
/// time = "01:00:00"
/// mem = "4G"
///
/// [executor.slurm.fit]
/// partition = "gpu"
/// gpus = 1
/// cpus = 8
/// mem = "32G"
/// time = "12:00:00"
/// extra_args = ["--account=lab", "--constraint=a100"]
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmConfig {
    /// CPUs for the single task (`--cpus-per-task`); the worker's thread count. Default 1.
    pub cpus: Option<u32>,
    /// Memory per node (`--mem`): an integer with an optional unit K, M, G or T (Slurm's default
    /// unit is megabytes), e.g. `"4G"`, `"500M"`, `"4096"`.
    pub mem: Option<String>,
    /// Wall-clock limit (`--time`) in one of Slurm's forms: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`,
    /// `D-HH:MM`, `D-HH:MM:SS`, e.g. `"01:00:00"` or `"2-00:00:00"`.
    pub time: Option<String>,
    /// GPUs for the job (`--gres=gpu:N`, which works with every select plugin).
    pub gpus: Option<u32>,
    /// Partition (`--partition`).
    pub partition: Option<String>,
    /// Environment variable names exported to the job besides `PATH` (`--export=PATH,...`),
    /// e.g. `["LD_LIBRARY_PATH", "CUDA_HOME"]` for an external command recipe. `"ALL"` exports
    /// the whole submitting environment (Slurm's own default, `--export=ALL,PATH,...`); without
    /// it Slurm builds the rest of the job's environment from the user's login on the node.
    pub export: Option<Vec<String>>,
    /// Further `sbatch` options, passed verbatim after the ones above (so they win where Slurm
    /// lets a later option override an earlier one), e.g. `["--account=abc", "--qos=long"]`.
    /// Options studymake sets itself (`--job-name`, `--output`, `--error`, `--chdir`,
    /// `--export`, `--parsable`, `--wrap`) are rejected.
    pub extra_args: Option<Vec<String>>,
}

/// Options [`SlurmConfig::extra_args`] may not contain: studymake sets them deliberately.
const RESERVED_OPTIONS: &[&str] = &[
    "-J",
    "--job-name",
    "-o",
    "--output",
    "-e",
    "--error",
    "-D",
    "--chdir",
    "--export",
    "--parsable",
    "--wrap",
];

impl SlurmConfig {
    /// CPUs per task, default 1.
    pub fn cpus(&self) -> u32 {
        self.cpus.unwrap_or(1)
    }

    /// These settings with every key `over` sets replacing ours (`export` and `extra_args` are
    /// appended to ours instead, so a kind adds to the defaults).
    pub fn merged(&self, over: &SlurmConfig) -> SlurmConfig {
        let concat = |a: &Option<Vec<String>>, b: &Option<Vec<String>>| match (a, b) {
            (None, None) => None,
            (a, b) => Some(
                a.iter()
                    .flatten()
                    .chain(b.iter().flatten())
                    .cloned()
                    .collect(),
            ),
        };
        SlurmConfig {
            cpus: over.cpus.or(self.cpus),
            mem: over.mem.clone().or_else(|| self.mem.clone()),
            time: over.time.clone().or_else(|| self.time.clone()),
            gpus: over.gpus.or(self.gpus),
            partition: over.partition.clone().or_else(|| self.partition.clone()),
            export: concat(&self.export, &over.export),
            extra_args: concat(&self.extra_args, &over.extra_args),
        }
    }

    /// Check every value's form; the message names the key and shows what is accepted.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Usage(m));
        if self.cpus == Some(0) {
            return bad("executor.slurm: `cpus` must be at least 1.".into());
        }
        if let Some(mem) = &self.mem {
            if !valid_mem(mem) {
                return bad(format!(
                    "executor.slurm: `mem = \"{mem}\"` is not a memory size; write an integer \
                     with an optional unit K, M, G or T, e.g. \"4G\"."
                ));
            }
        }
        if let Some(time) = &self.time {
            if !valid_time(time) {
                return bad(format!(
                    "executor.slurm: `time = \"{time}\"` is not a Slurm time limit; write \
                     MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS, e.g. \"01:00:00\"."
                ));
            }
        }
        if let Some(p) = &self.partition {
            if p.is_empty() || p.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return bad(format!(
                    "executor.slurm: `partition = {p:?}` is not a partition name."
                ));
            }
        }
        for name in self.export.iter().flatten() {
            let ok = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return bad(format!(
                    "executor.slurm: `export` entry {name:?} is not an environment variable name."
                ));
            }
        }
        for arg in self.extra_args.iter().flatten() {
            if !arg.starts_with('-') {
                return bad(format!(
                    "executor.slurm: `extra_args` entry {arg:?} is not an sbatch option; write \
                     each option with its value in one entry, e.g. \"--account=abc\"."
                ));
            }
            let opt = arg.split('=').next().unwrap_or(arg);
            let short_glued = RESERVED_OPTIONS.iter().any(|r| {
                r.len() == 2 && opt.len() > 2 && !opt.starts_with("--") && opt.starts_with(r)
            });
            if RESERVED_OPTIONS.contains(&opt) || short_glued {
                return bad(format!(
                    "executor.slurm: `extra_args` may not set {opt}: studymake sets the job \
                     name, log, working directory and environment itself."
                ));
            }
        }
        Ok(())
    }
}

/// `4096`, `4G`, `500M`, `1T`, `64K` (Slurm's `--mem` forms).
fn valid_mem(s: &str) -> bool {
    let digits = s.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    let unit_len = s.len() - digits.len();
    unit_len <= 1 && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Slurm's time forms: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`, or
/// `UNLIMITED`/`INFINITE`.
fn valid_time(s: &str) -> bool {
    let num = |p: &str| !p.is_empty() && p.len() <= 6 && p.bytes().all(|b| b.is_ascii_digit());
    if s.eq_ignore_ascii_case("unlimited") || s.eq_ignore_ascii_case("infinite") {
        return true;
    }
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (Some(d), r),
        None => (None, s),
    };
    if let Some(d) = days {
        if !num(d) {
            return false;
        }
    }
    let parts: Vec<&str> = rest.split(':').collect();
    if !parts.iter().all(|p| num(p)) {
        return false;
    }
    // with days: D-HH, D-HH:MM, D-HH:MM:SS; without: MM, MM:SS, HH:MM:SS
    (1..=3).contains(&parts.len())
}

/// The whole `[executor.slurm]` table: default resources, and per-recipe-kind overrides as
/// sub-tables (`[executor.slurm.fit]`). A key of the table is a resource key of
/// [`SlurmConfig`] when it names one and a recipe kind when its value is a table.
/// (Deserialize only: it is read from the Studyfile, never written.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlurmSettings {
    /// Resources of every job.
    pub defaults: SlurmConfig,
    /// Target kind (`fit`, `prepared`, ...) -> what it overrides.
    pub kinds: BTreeMap<String, SlurmConfig>,
}

impl SlurmSettings {
    /// The resources of a job of recipe kind `kind`: the defaults merged with the kind's table.
    pub fn for_kind(&self, kind: &str) -> SlurmConfig {
        match self.kinds.get(kind) {
            Some(over) => self.defaults.merged(over),
            None => self.defaults.clone(),
        }
    }

    /// Kinds that have overrides but are not in `known` (a typo such as `[executor.slurm.modle]`).
    pub fn unknown_kinds<'a>(&'a self, known: &[&str]) -> Vec<&'a str> {
        self.kinds
            .keys()
            .map(String::as_str)
            .filter(|k| !known.contains(k))
            .collect()
    }
}

const RESOURCE_KEYS: &[&str] = &[
    "cpus",
    "mem",
    "time",
    "gpus",
    "partition",
    "export",
    "extra_args",
];

impl<'de> Deserialize<'de> for SlurmSettings {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let table = toml::Table::deserialize(d)?;
        let mut resources = toml::Table::new();
        let mut kinds = BTreeMap::new();
        for (key, value) in table {
            if RESOURCE_KEYS.contains(&key.as_str()) {
                resources.insert(key, value);
            } else if let toml::Value::Table(t) = value {
                let cfg = SlurmConfig::deserialize(toml::Value::Table(t))
                    .map_err(|e| D::Error::custom(format!("in [executor.slurm.{key}]: {e}")))?;
                cfg.validate()
                    .map_err(|e| D::Error::custom(e.to_string()))?;
                kinds.insert(key, cfg);
            } else {
                return Err(D::Error::custom(format!(
                    "unknown Slurm resource `{key}`: expected one of {} or a table of \
                     overrides for a target kind, e.g. [executor.slurm.fit]",
                    RESOURCE_KEYS.join(", ")
                )));
            }
        }
        let defaults = SlurmConfig::deserialize(toml::Value::Table(resources))
            .map_err(|e| D::Error::custom(e.to_string()))?;
        defaults
            .validate()
            .map_err(|e| D::Error::custom(e.to_string()))?;
        Ok(SlurmSettings { defaults, kinds })
    }
}

// ------------------------------------------------------------------------------------------------
// Jobs and their states

/// A Slurm job id (the number `sbatch --parsable` prints).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for JobId {
    type Err = Error;
    /// Parses `123`, and `123;cluster` as `sbatch --parsable` prints on multi-cluster sites.
    fn from_str(s: &str) -> Result<JobId> {
        let id = s.trim().split(';').next().unwrap_or("");
        id.parse::<u64>()
            .map(JobId)
            .map_err(|_| Error::Other(format!("`{s}` is not a Slurm job id.")))
    }
}

/// A job's state as Slurm names it (`squeue %T`, `scontrol JobState=`, `sacct State`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Queued, waiting for resources, a dependency or a limit (see [`JobStatus::reason`]).
    Pending,
    /// Allocated, nodes booting or being set up.
    Configuring,
    Running,
    /// Suspended or stopped by an administrator or gang scheduling; resumes later.
    Suspended,
    /// The batch script has exited; Slurm is cleaning up its processes.
    Completing,
    /// Requeued (`REQUEUED`, `REQUEUE_HOLD`, `REQUEUE_FED`): will be pending again.
    Requeued,
    /// Other transitional states (`RESIZING`, `SIGNALING`, `STAGE_OUT`, `RESV_DEL_HOLD`).
    Transitional(String),
    /// Exited with code 0.
    Completed,
    /// Non-zero exit code or killed by a signal (see [`JobStatus::exit`]).
    Failed,
    /// Cancelled by a user, an administrator, or because a dependency can never be met.
    Cancelled,
    /// Ran past its time limit.
    Timeout,
    /// A node it ran on failed.
    NodeFail,
    /// A node failed to boot.
    BootFail,
    /// Missed its `--deadline`.
    Deadline,
    /// Killed for using more memory than it asked for.
    OutOfMemory,
    /// Preempted by a higher-priority job and not requeued.
    Preempted,
    /// Removed from this cluster by a federation sibling.
    Revoked,
    /// Ended with the site's special exit code and is held.
    SpecialExit,
    /// No tool knows the job any more: purged from slurmctld's memory (`MinJobAge`) and not in
    /// accounting, or never existed. It is certainly not running.
    Vanished,
    /// A state this client does not know (a newer Slurm); treated as not terminal.
    Other(String),
}

impl JobState {
    /// Parse a state word: `RUNNING`, `CANCELLED by 1000` (sacct), `CANCELLED+` (sacct,
    /// truncated), `PD`/`R`/`CD`... (squeue's short forms) are all understood.
    pub fn parse(s: &str) -> JobState {
        let word = s.split_whitespace().next().unwrap_or("");
        let word = word.trim_end_matches('+').to_ascii_uppercase();
        match word.as_str() {
            "PENDING" | "PD" => JobState::Pending,
            "CONFIGURING" | "CF" => JobState::Configuring,
            "RUNNING" | "R" => JobState::Running,
            "SUSPENDED" | "S" | "STOPPED" | "ST" => JobState::Suspended,
            "COMPLETING" | "CG" => JobState::Completing,
            "REQUEUED" | "RQ" | "REQUEUE_HOLD" | "RH" | "REQUEUE_FED" | "RF" => JobState::Requeued,
            "RESIZING" | "RS" | "SIGNALING" | "SI" | "STAGE_OUT" | "SO" | "RESV_DEL_HOLD"
            | "RD" => JobState::Transitional(word),
            "COMPLETED" | "CD" => JobState::Completed,
            "FAILED" | "F" => JobState::Failed,
            "CANCELLED" | "CA" => JobState::Cancelled,
            "TIMEOUT" | "TO" => JobState::Timeout,
            "NODE_FAIL" | "NF" => JobState::NodeFail,
            "BOOT_FAIL" | "BF" => JobState::BootFail,
            "DEADLINE" | "DL" => JobState::Deadline,
            "OUT_OF_MEMORY" | "OOM" => JobState::OutOfMemory,
            "PREEMPTED" | "PR" => JobState::Preempted,
            "REVOKED" | "RV" => JobState::Revoked,
            "SPECIAL_EXIT" | "SE" => JobState::SpecialExit,
            _ => JobState::Other(word),
        }
    }

    /// The job will not run (again): its outcome is final.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobState::Completed
                | JobState::Failed
                | JobState::Cancelled
                | JobState::Timeout
                | JobState::NodeFail
                | JobState::BootFail
                | JobState::Deadline
                | JobState::OutOfMemory
                | JobState::Preempted
                | JobState::Revoked
                | JobState::SpecialExit
                | JobState::Vanished
        )
    }

    /// The job finished and its batch script exited 0 (`COMPLETED`). The engine still checks
    /// the worker's report and output before publishing.
    pub fn is_success(&self) -> bool {
        *self == JobState::Completed
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            JobState::Pending => "PENDING",
            JobState::Configuring => "CONFIGURING",
            JobState::Running => "RUNNING",
            JobState::Suspended => "SUSPENDED",
            JobState::Completing => "COMPLETING",
            JobState::Requeued => "REQUEUED",
            JobState::Transitional(s) | JobState::Other(s) => s,
            JobState::Completed => "COMPLETED",
            JobState::Failed => "FAILED",
            JobState::Cancelled => "CANCELLED",
            JobState::Timeout => "TIMEOUT",
            JobState::NodeFail => "NODE_FAIL",
            JobState::BootFail => "BOOT_FAIL",
            JobState::Deadline => "DEADLINE",
            JobState::OutOfMemory => "OUT_OF_MEMORY",
            JobState::Preempted => "PREEMPTED",
            JobState::Revoked => "REVOKED",
            JobState::SpecialExit => "SPECIAL_EXIT",
            JobState::Vanished => "VANISHED (no longer known to Slurm)",
        };
        f.write_str(s)
    }
}

/// How a job's batch script ended: Slurm's `ExitCode=code:signal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct JobExit {
    /// Exit code of the script (0 when it was killed by a signal).
    pub code: u32,
    /// Signal that killed it, 0 if none (e.g. 9 for `kill -9`, 15 for scancel or a timeout).
    pub signal: u32,
}

impl JobExit {
    /// Parse `3:0` (scontrol, sacct) or a raw wait status such as `768` (what `squeue -O
    /// exit_code` prints: code in bits 8-15, signal in bits 0-6).
    pub fn parse(s: &str) -> Option<JobExit> {
        let s = s.trim();
        if let Some((c, sig)) = s.split_once(':') {
            return Some(JobExit {
                code: c.parse().ok()?,
                signal: sig.parse().ok()?,
            });
        }
        let raw: u32 = s.parse().ok()?;
        Some(JobExit {
            code: (raw >> 8) & 0xff,
            signal: raw & 0x7f,
        })
    }
}

impl fmt::Display for JobExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.code, self.signal)
    }
}

/// What [`Slurm::poll`] knows of one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobStatus {
    pub state: JobState,
    /// Exit code and signal, where Slurm reports them (0:0 while pending or running).
    pub exit: Option<JobExit>,
    /// Slurm's reason for the state (`Dependency`, `Resources`, `NonZeroExitCode`,
    /// `PartitionConfig`, ...), if any other than `None`.
    pub reason: Option<String>,
}

/// Pending reasons that never resolve by themselves (the request cannot be met as submitted).
const PENDING_FOREVER: &[&str] = &[
    "PartitionConfig",
    "PartitionNodeLimit",
    "PartitionTimeLimit",
    "DependencyNeverSatisfied",
    "BadConstraints",
    "InvalidAccount",
    "InvalidQOS",
    "QOSMaxWallDurationPerJobLimit",
    "QOSMaxCpuPerJobLimit",
    "QOSMaxGRESPerJob",
    "QOSMaxMemoryPerJob",
    "AssocMaxWallDurationPerJobLimit",
    "AssocMaxCpuPerJobLimit",
    "AssocMaxGRESPerJob",
    "AssocMaxMemoryPerJob",
];

impl JobStatus {
    /// `Some(reason)` when the job is pending for a reason that will not go away by waiting, e.g.
    /// `PartitionConfig` (more CPUs than any node of the partition has: Slurm accepts such a job
    /// and leaves it pending forever). The engine should cancel it and report the reason.
    pub fn stuck_reason(&self) -> Option<&str> {
        match (&self.state, &self.reason) {
            (JobState::Pending, Some(r)) if PENDING_FOREVER.contains(&r.as_str()) => Some(r),
            _ => None,
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.state)?;
        if let Some(e) = self.exit {
            if self.state.is_terminal() {
                write!(f, ", exit code {}", e.code)?;
                if e.signal != 0 {
                    write!(f, ", signal {}", e.signal)?;
                }
            }
        }
        if let Some(r) = &self.reason {
            write!(f, " ({r})")?;
        }
        Ok(())
    }
}

/// A job found by [`Slurm::find_running`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundJob {
    pub id: JobId,
    pub name: String,
    pub state: JobState,
}

/// Which job names [`Slurm::find_running`] looks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameMatch {
    /// Exactly this name, e.g. `studymake:<study-id>:l2_a/fit`.
    Exact(String),
    /// Every name starting with this, e.g. `studymake:<study-id>:` for all of a study's jobs.
    Prefix(String),
}

impl NameMatch {
    fn matches(&self, name: &str) -> bool {
        match self {
            NameMatch::Exact(n) => name == n,
            NameMatch::Prefix(p) => name.starts_with(p.as_str()),
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Batch scripts

/// Quote one word for a POSIX shell: unchanged if it is made only of safe characters, otherwise
/// in single quotes with each `'` written as `'\''`.
pub fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./:=,+@%".contains(&b));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// An argv as one line a shell would run as the same argv (for `studymake -n` and messages).
pub fn display_command(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Write the batch script of one job to `path` (mode 0755): a `#!/bin/sh` script that prints
/// one line naming the job and host to the log, then `exec`s `worker_argv` (each argument
/// single-quoted, so spaces, quotes, `$` and newlines reach the worker unchanged). The worker's
/// exit code is the job's. `worker_argv[0]` should be an absolute path visible on every node.
pub fn write_job_script(path: &Path, worker_argv: &[impl AsRef<OsStr>]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    if worker_argv.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: a job script needs a command to run (the worker argv is empty).",
            path.display()
        )));
    }
    let mut text: Vec<u8> = b"#!/bin/sh\n\
        # Slurm batch script written by studymake: runs one worker; every parameter is in the\n\
        # job spec file it names. Slurm options are on the sbatch command line.\n\
        echo \"studymake: Slurm job ${SLURM_JOB_ID:-?} on $(uname -n) at $(date -u '+%Y-%m-%dT%H:%M:%SZ')\" >&2\n\
        exec"
        .to_vec();
    for arg in worker_argv {
        let bytes = arg.as_ref().as_bytes();
        if bytes.contains(&0) {
            return Err(Error::Invalid(format!(
                "{}: a worker argument contains a NUL byte.",
                path.display()
            )));
        }
        text.push(b' ');
        let safe = !bytes.is_empty()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"_-./:=,+@%".contains(b));
        if safe {
            text.extend_from_slice(bytes);
        } else {
            text.push(b'\'');
            for &b in bytes {
                if b == b'\'' {
                    text.extend_from_slice(br"'\''");
                } else {
                    text.push(b);
                }
            }
            text.push(b'\'');
        }
    }
    text.push(b'\n');
    let mut f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(&text).map_err(|e| Error::io(path, e))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

// ------------------------------------------------------------------------------------------------
// The client

/// A handle on the Slurm cluster the environment names. Cheap to create; holds no connection.
#[derive(Clone, Debug)]
pub struct Slurm {
    /// The jobs' working directory (`--chdir`): the study directory, visible on every node.
    workdir: PathBuf,
    /// Where `sbatch`, `squeue`, `scontrol`, `scancel`, `sacct` are; `None` = on `PATH`.
    program_dir: Option<PathBuf>,
    /// How long one command may take before it is killed and reported as failed.
    timeout: Duration,
}

/// Default limit for one Slurm command: generous, since a busy controller can be slow, but
/// finite, since a misconfigured client retries for about a minute before it fails.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Limit for the commands of [`Slurm::available`].
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// What one finished command printed.
struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Slurm {
    /// A client whose jobs run in `workdir` (give an absolute path visible on every node).
    pub fn new(workdir: impl Into<PathBuf>) -> Slurm {
        Slurm {
            workdir: workdir.into(),
            program_dir: None,
            timeout: DEFAULT_COMMAND_TIMEOUT,
        }
    }

    /// The jobs' working directory.
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    /// Kill a Slurm command that runs longer than `limit` and report it as failed (default
    /// [`DEFAULT_COMMAND_TIMEOUT`]).
    pub fn with_timeout(mut self, limit: Duration) -> Slurm {
        self.timeout = limit;
        self
    }

    /// Use the Slurm commands in `dir` instead of those on `PATH`.
    pub fn with_program_dir(mut self, dir: impl Into<PathBuf>) -> Slurm {
        self.program_dir = Some(dir.into());
        self
    }

    fn program(&self, name: &str) -> String {
        match &self.program_dir {
            Some(d) => d.join(name).to_string_lossy().into_owned(),
            None => name.to_string(),
        }
    }

    /// Run `argv` for at most `self.timeout`; `Err` when it cannot be started or runs too long.
    fn run(&self, argv: &[String]) -> Result<Output> {
        self.run_for(argv, self.timeout)
    }

    fn run_for(&self, argv: &[String], limit: Duration) -> Result<Output> {
        use std::io::Read;
        let fail = |message: String| Error::Slurm {
            command: display_command(argv),
            message,
        };
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("could not run `{}`: {e}", argv[0])))?;
        // read both pipes on threads so a large output cannot block the child
        let reader = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf);
                }
                buf
            })
        };
        let out_t = reader(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let err_t = reader(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let t0 = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if t0.elapsed() < limit => std::thread::sleep(Duration::from_millis(5)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(fail(format!(
                        "it did not finish within {} s and was killed (is the controller \
                         reachable and SLURM_CONF right?)",
                        limit.as_secs_f64()
                    )));
                }
                Err(e) => return Err(fail(format!("could not wait for it: {e}"))),
            }
        };
        let stdout = out_t.join().unwrap_or_default();
        let stderr = err_t.join().unwrap_or_default();
        Ok(Output {
            ok: status.success(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).trim().to_string(),
        })
    }

    fn failed(argv: &[String], out: &Output) -> Error {
        Error::Slurm {
            command: display_command(argv),
            message: if out.stderr.is_empty() {
                "it failed and printed nothing on stderr".into()
            } else {
                out.stderr.clone()
            },
        }
    }

    /// True when `sbatch` and `squeue` can be run and `scontrol ping` says the controller is UP.
    /// Takes at most about 10 s (a client with a wrong `SLURM_CONF` would retry for a minute).
    pub fn available(&self) -> bool {
        let runs = |name: &str| {
            self.run_for(&[self.program(name), "--version".into()], PING_TIMEOUT)
                .map(|o| o.ok)
                .unwrap_or(false)
        };
        if !runs("sbatch") || !runs("squeue") {
            return false;
        }
        match self.run_for(&[self.program("scontrol"), "ping".into()], PING_TIMEOUT) {
            Ok(out) => out.ok && out.stdout.contains("is UP"),
            Err(_) => false,
        }
    }

    /// The `sbatch` argv that [`Slurm::submit`] runs for one job (`script`, `log` and the
    /// working directory must be absolute paths): `--parsable`, the job name,
    /// `--output=log` (stderr goes there too), `--chdir=workdir`, `--export=PATH[,...]`, one node
    /// and one task, then the resources of `cfg`, its `extra_args`, and the script.
    pub fn sbatch_command(
        &self,
        job_name: &str,
        script: &Path,
        log: &Path,
        cfg: &SlurmConfig,
    ) -> Result<Vec<String>> {
        cfg.validate()?;
        if job_name.is_empty() || job_name.chars().any(|c| c.is_control()) {
            return Err(Error::Invalid(format!(
                "{job_name:?} cannot be a Slurm job name (empty or has control characters)."
            )));
        }
        let utf8 = |p: &Path, what: &str| {
            if !p.is_absolute() {
                // sbatch resolves a relative script against its own cwd but a relative
                // --output against --chdir: only absolute paths mean the same everywhere
                return Err(Error::Invalid(format!(
                    "{}: the {what} path must be absolute for sbatch.",
                    p.display()
                )));
            }
            p.to_str().map(str::to_string).ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: the {what} path is not valid UTF-8, which sbatch cannot be given.",
                    p.display()
                ))
            })
        };
        // "ALL" is only meaningful first: --export=ALL,PATH,...
        let names = cfg.export.iter().flatten();
        let all = names.clone().any(|n| n == "ALL");
        let mut export = String::from(if all { "ALL,PATH" } else { "PATH" });
        for name in names.filter(|n| *n != "ALL" && *n != "PATH") {
            export.push(',');
            export.push_str(name);
        }
        let mut argv = vec![
            self.program("sbatch"),
            "--parsable".into(),
            format!("--job-name={job_name}"),
            format!("--output={}", utf8(log, "log")?),
            format!("--chdir={}", utf8(&self.workdir, "working directory")?),
            format!("--export={export}"),
            "--nodes=1".into(),
            "--ntasks=1".into(),
            format!("--cpus-per-task={}", cfg.cpus()),
        ];
        if let Some(m) = &cfg.mem {
            argv.push(format!("--mem={m}"));
        }
        if let Some(t) = &cfg.time {
            argv.push(format!("--time={t}"));
        }
        if let Some(g) = cfg.gpus.filter(|&g| g > 0) {
            argv.push(format!("--gres=gpu:{g}"));
        }
        if let Some(p) = &cfg.partition {
            argv.push(format!("--partition={p}"));
        }
        argv.extend(cfg.extra_args.iter().flatten().cloned());
        argv.push(utf8(script, "job script")?);
        Ok(argv)
    }

    /// Submit one job (see [`Slurm::sbatch_command`]) and return its id. The log's directory
    /// must exist; Slurm creates or truncates the log itself.
    pub fn submit(
        &self,
        job_name: &str,
        script: &Path,
        log: &Path,
        cfg: &SlurmConfig,
    ) -> Result<JobId> {
        let argv = self.sbatch_command(job_name, script, log, cfg)?;
        let out = self.run(&argv)?;
        if !out.ok {
            return Err(Self::failed(&argv, &out));
        }
        // --parsable prints "id" or "id;cluster"; warnings may precede it on other lines
        let line = out
            .stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        line.parse().map_err(|_| Error::Slurm {
            command: display_command(&argv),
            message: format!(
                "sbatch succeeded but printed {:?} instead of a job id",
                out.stdout.trim()
            ),
        })
    }

    /// The states of `ids`, every one of them in the map. One `squeue -t all` call answers for
    /// every job slurmctld still holds (pending, running, and finished within `MinJobAge`); for
    /// the rare ids it has forgotten, `scontrol show job` is asked for each, then one `sacct`
    /// call (if accounting is enabled), and ids none of them knows are [`JobState::Vanished`].
    pub fn poll(&self, ids: &[JobId]) -> Result<HashMap<JobId, JobStatus>> {
        let wanted: HashSet<JobId> = ids.iter().copied().collect();
        let mut found = HashMap::new();
        if wanted.is_empty() {
            return Ok(found);
        }
        let list = join_ids(&wanted);
        let argv = vec![
            self.program("squeue"),
            "--noheader".into(),
            "--states=all".into(),
            format!("--jobs={list}"),
            "--Format=JobID:|,State:|,exit_code:|,Reason:|".into(),
        ];
        let out = self.run(&argv)?;
        if out.ok {
            found.extend(
                parse_squeue_status(&out.stdout)
                    .map_err(|m| Error::Slurm {
                        command: display_command(&argv),
                        message: m,
                    })?
                    .into_iter()
                    .filter(|(id, _)| wanted.contains(id)),
            );
        } else if !is_invalid_job_id(&out.stderr) {
            // "Invalid job id specified" = none of them is known; anything else is an error
            return Err(Self::failed(&argv, &out));
        }

        let mut missing: Vec<JobId> = wanted
            .iter()
            .filter(|id| !found.contains_key(id))
            .copied()
            .collect();
        missing.sort();
        for &id in &missing {
            let argv = vec![
                self.program("scontrol"),
                "show".into(),
                "job".into(),
                "--oneliner".into(),
                id.to_string(),
            ];
            let out = self.run(&argv)?;
            if out.ok {
                if let Some((jid, st)) = parse_scontrol_job(&out.stdout) {
                    if jid == id {
                        found.insert(id, st);
                    }
                }
            } else if !is_invalid_job_id(&out.stderr) {
                return Err(Self::failed(&argv, &out));
            }
        }

        missing.retain(|id| !found.contains_key(id));
        if !missing.is_empty() {
            let argv = vec![
                self.program("sacct"),
                "--allocations".into(),
                "--noheader".into(),
                "--parsable2".into(),
                format!("--jobs={}", join_ids(&missing)),
                "--format=JobIDRaw,State,ExitCode".into(),
            ];
            // sacct fails when accounting is disabled: then these jobs are simply gone
            if let Ok(out) = self.run(&argv) {
                if out.ok {
                    for (id, st) in parse_sacct(&out.stdout) {
                        if missing.contains(&id) {
                            found.insert(id, st);
                        }
                    }
                }
            }
        }
        for id in wanted {
            found.entry(id).or_insert(JobStatus {
                state: JobState::Vanished,
                exit: None,
                reason: None,
            });
        }
        Ok(found)
    }

    /// Cancel `ids` with one `scancel` call. Ids that have already finished or are unknown are
    /// not an error (scancel ignores them); the jobs reach `CANCELLED` a moment later.
    pub fn cancel(&self, ids: &[JobId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut argv = vec![self.program("scancel")];
        argv.extend(ids.iter().map(JobId::to_string));
        let out = self.run(&argv)?;
        if out.ok || is_invalid_job_id(&out.stderr) || out.stderr.contains("already completing") {
            Ok(())
        } else {
            Err(Self::failed(&argv, &out))
        }
    }

    /// This user's jobs that are still queued or running (`squeue --me`, which shows pending,
    /// running, suspended, configuring and completing jobs) and whose name matches `names`.
    pub fn find_running(&self, names: &NameMatch) -> Result<Vec<FoundJob>> {
        let argv = vec![
            self.program("squeue"),
            "--noheader".into(),
            "--me".into(),
            // the name goes last: it may itself contain '|'
            "--format=%i|%T|%j".into(),
        ];
        let out = self.run(&argv)?;
        if !out.ok {
            return Err(Self::failed(&argv, &out));
        }
        let jobs = parse_squeue_names(&out.stdout).map_err(|m| Error::Slurm {
            command: display_command(&argv),
            message: m,
        })?;
        Ok(jobs
            .into_iter()
            .filter(|j| names.matches(&j.name))
            .collect())
    }
}

// ------------------------------------------------------------------------------------------------
// Parsers of the tools' outputs (pure; tested on captured outputs)

fn join_ids<'a>(ids: impl IntoIterator<Item = &'a JobId>) -> String {
    let mut v: Vec<u64> = ids.into_iter().map(|i| i.0).collect();
    v.sort_unstable();
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

fn is_invalid_job_id(stderr: &str) -> bool {
    stderr.contains("Invalid job id specified")
}

fn reason_of(r: &str) -> Option<String> {
    let r = r.trim();
    (!r.is_empty() && r != "None" && r != "(null)").then(|| r.to_string())
}

/// Lines of `squeue -h -t all -O 'JobID:|,State:|,exit_code:|,Reason:|'`, e.g.
/// `2|FAILED|768|NonZeroExitCode|`. Lines whose id is not a plain number (array or
/// heterogeneous job components) are skipped.
pub fn parse_squeue_status(text: &str) -> std::result::Result<Vec<(JobId, JobStatus)>, String> {
    let mut jobs = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('|').collect();
        if f.len() < 4 {
            return Err(format!(
                "squeue printed {line:?}, not `id|state|exit code|reason|`"
            ));
        }
        let Ok(id) = f[0].trim().parse::<u64>() else {
            continue;
        };
        // a reason with '|' in it (never seen) would be split: join the rest back
        let reason = f[3..].join("|");
        jobs.push((
            JobId(id),
            JobStatus {
                state: JobState::parse(f[1].trim()),
                exit: JobExit::parse(f[2]),
                reason: reason_of(reason.trim_end_matches('|')),
            },
        ));
    }
    Ok(jobs)
}

/// `scontrol show job -o ID`: one line of `Key=Value` pairs; reads `JobId`, `JobState`,
/// `Reason` and `ExitCode`. `None` if there is no `JobId`/`JobState`.
pub fn parse_scontrol_job(text: &str) -> Option<(JobId, JobStatus)> {
    let line = text.lines().find(|l| l.contains("JobId="))?;
    let mut id = None;
    let mut state = None;
    let mut exit = None;
    let mut reason = None;
    for field in line.split_whitespace() {
        let Some((k, v)) = field.split_once('=') else {
            continue;
        };
        match k {
            "JobId" => id = v.parse().ok().map(JobId),
            "JobState" => state = Some(JobState::parse(v)),
            "ExitCode" => exit = JobExit::parse(v),
            "Reason" => reason = reason_of(v),
            _ => {}
        }
    }
    Some((
        id?,
        JobStatus {
            state: state?,
            exit,
            reason,
        },
    ))
}

/// `sacct -X -n -P -j IDS --format=JobIDRaw,State,ExitCode`, e.g. `17|CANCELLED by 0|0:0`.
pub fn parse_sacct(text: &str) -> Vec<(JobId, JobStatus)> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split('|').collect();
            if f.len() < 3 {
                return None;
            }
            let id = f[0].trim().parse::<u64>().ok()?;
            Some((
                JobId(id),
                JobStatus {
                    state: JobState::parse(f[1]),
                    exit: JobExit::parse(f[2]),
                    reason: None,
                },
            ))
        })
        .collect()
}

/// `squeue -h --me -o '%i|%T|%j'`, e.g. `8|RUNNING|studymake:ab12:l2_a/fit`.
pub fn parse_squeue_names(text: &str) -> std::result::Result<Vec<FoundJob>, String> {
    let mut jobs = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut f = line.splitn(3, '|');
        let (Some(id), Some(state), Some(name)) = (f.next(), f.next(), f.next()) else {
            return Err(format!("squeue printed {line:?}, not `id|state|name`"));
        };
        let Ok(id) = id.trim().parse::<u64>() else {
            continue;
        };
        jobs.push(FoundJob {
            id: JobId(id),
            name: name.to_string(),
            state: JobState::parse(state),
        });
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured on the CI cluster (Slurm 22.05.8): `squeue -h -t all -O
    /// 'JobID:|,State:|,exit_code:|,Reason:|'` after an `exit 3` job, a `kill -9 $$` job, a
    /// cancelled `sleep`, a `-c 3` job on a 2-CPU node and a running job.
    const SQUEUE_STATUS: &str = "7|CANCELLED|15|None|\n\
        1|COMPLETED|0|None|\n\
        2|FAILED|768|NonZeroExitCode|\n\
        6|FAILED|9|JobLaunchFailure|\n\
        5|PENDING|0|PartitionConfig|\n\
        9|PENDING|0|DependencyNeverSatisfied|\n\
        3|RUNNING|0|None|\n";

    #[test]
    fn squeue_status_lines_give_state_exit_code_and_reason() {
        let jobs: HashMap<JobId, JobStatus> = parse_squeue_status(SQUEUE_STATUS)
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(jobs.len(), 7);
        let failed = &jobs[&JobId(2)];
        assert_eq!(failed.state, JobState::Failed);
        assert_eq!(failed.exit, Some(JobExit { code: 3, signal: 0 }));
        assert_eq!(failed.reason.as_deref(), Some("NonZeroExitCode"));
        assert_eq!(jobs[&JobId(6)].exit, Some(JobExit { code: 0, signal: 9 }));
        let cancelled = &jobs[&JobId(7)];
        assert_eq!(cancelled.state, JobState::Cancelled);
        assert_eq!(
            cancelled.exit,
            Some(JobExit {
                code: 0,
                signal: 15
            })
        );
        assert_eq!(cancelled.reason, None);
        assert_eq!(jobs[&JobId(1)].state, JobState::Completed);
        assert_eq!(jobs[&JobId(3)].state, JobState::Running);
        assert_eq!(jobs[&JobId(5)].stuck_reason(), Some("PartitionConfig"));
        assert_eq!(
            jobs[&JobId(9)].stuck_reason(),
            Some("DependencyNeverSatisfied")
        );
        assert_eq!(jobs[&JobId(3)].stuck_reason(), None);
        assert_eq!(failed.to_string(), "FAILED, exit code 3 (NonZeroExitCode)");
    }

    #[test]
    fn squeue_status_rejects_garbage_and_skips_array_ids() {
        assert!(parse_squeue_status("slurm_load_jobs error\n").is_err());
        let v = parse_squeue_status("12_3|RUNNING|0|None|\n\n4|PENDING|0|Resources|\n").unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].0, JobId(4));
        assert_eq!(v[0].1.reason.as_deref(), Some("Resources"));
    }

    #[test]
    fn scontrol_oneliner_gives_state_and_exit_code() {
        // captured: `scontrol show job -o 2` (abridged in the middle)
        let line = "JobId=2 JobName=studymake:s1:l1/source UserId=root(0) GroupId=root(0) \
            MCS_label=N/A Priority=1 Nice=0 Account=(null) QOS=(null) JobState=FAILED \
            Reason=NonZeroExitCode Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 \
            Reboot=0 ExitCode=3:0 RunTime=00:00:00 TimeLimit=UNLIMITED \
            WorkDir=/tmp/sx StdErr=/tmp/sx/a.out StdIn=/dev/null StdOut=/tmp/sx/a.out Power=\n";
        let (id, st) = parse_scontrol_job(line).unwrap();
        assert_eq!(id, JobId(2));
        assert_eq!(st.state, JobState::Failed);
        assert_eq!(st.exit, Some(JobExit { code: 3, signal: 0 }));
        assert_eq!(st.reason.as_deref(), Some("NonZeroExitCode"));
        let (_, c) =
            parse_scontrol_job("JobId=14 JobState=CANCELLED Reason=None ExitCode=0:15").unwrap();
        assert_eq!(c.state, JobState::Cancelled);
        assert_eq!(c.reason, None);
        assert_eq!(
            c.exit,
            Some(JobExit {
                code: 0,
                signal: 15
            })
        );
        assert!(parse_scontrol_job("slurm_load_jobs error: Invalid job id specified").is_none());
    }

    #[test]
    fn sacct_lines_with_cancelled_by_and_truncation() {
        // captured with accounting (reference README): sacct -X -n -P -j 16,17,18
        let v = parse_sacct(
            "16|FAILED|3:0\n17|CANCELLED by 0|0:0\n18|FAILED|0:9\n19|CANCELLED+|0:15\n",
        );
        assert_eq!(v.len(), 4);
        assert_eq!(v[0].1.exit, Some(JobExit { code: 3, signal: 0 }));
        assert_eq!(v[1].1.state, JobState::Cancelled);
        assert_eq!(v[2].1.exit, Some(JobExit { code: 0, signal: 9 }));
        assert_eq!(v[3].1.state, JobState::Cancelled);
        assert!(parse_sacct("Slurm accounting storage is disabled\n").is_empty());
    }

    #[test]
    fn squeue_names_keep_pipes_in_the_name() {
        let v =
            parse_squeue_names("8|RUNNING|studymake:abc:l2_a/fit|x y\n9|PENDING|wrap\n").unwrap();
        assert_eq!(v[0].id, JobId(8));
        assert_eq!(v[0].name, "studymake:abc:l2_a/fit|x y");
        assert_eq!(v[1].state, JobState::Pending);
        assert!(NameMatch::Prefix("studymake:abc:".into()).matches(&v[0].name));
        assert!(!NameMatch::Exact("studymake:abc:l2_a/fit".into()).matches(&v[0].name));
        assert!(parse_squeue_names("8|RUNNING\n").is_err());
    }

    #[test]
    fn every_state_word_parses_and_terminal_states_are_the_final_ones() {
        let terminal = [
            "COMPLETED",
            "FAILED",
            "CANCELLED",
            "TIMEOUT",
            "NODE_FAIL",
            "BOOT_FAIL",
            "DEADLINE",
            "OUT_OF_MEMORY",
            "PREEMPTED",
            "REVOKED",
            "SPECIAL_EXIT",
        ];
        let live = [
            "PENDING",
            "CONFIGURING",
            "RUNNING",
            "SUSPENDED",
            "STOPPED",
            "COMPLETING",
            "REQUEUED",
            "REQUEUE_HOLD",
            "RESIZING",
            "SIGNALING",
            "STAGE_OUT",
        ];
        for w in terminal {
            let s = JobState::parse(w);
            assert!(!matches!(s, JobState::Other(_)), "{w}");
            assert!(s.is_terminal(), "{w}");
            assert_eq!(s.is_success(), w == "COMPLETED", "{w}");
            assert_eq!(JobState::parse(&s.to_string()), s, "{w} round trip");
        }
        for w in live {
            let s = JobState::parse(w);
            assert!(!matches!(s, JobState::Other(_)), "{w}");
            assert!(!s.is_terminal() && !s.is_success(), "{w}");
        }
        assert_eq!(JobState::parse("CD"), JobState::Completed);
        assert_eq!(JobState::parse("OOM"), JobState::OutOfMemory);
        assert_eq!(JobState::parse("CANCELLED by 1000"), JobState::Cancelled);
        assert_eq!(JobState::parse("WEIRD"), JobState::Other("WEIRD".into()));
        assert!(!JobState::parse("WEIRD").is_terminal());
        assert!(JobState::Vanished.is_terminal() && !JobState::Vanished.is_success());
    }

    #[test]
    fn exit_codes_in_both_forms() {
        assert_eq!(JobExit::parse("3:0"), Some(JobExit { code: 3, signal: 0 }));
        assert_eq!(
            JobExit::parse("0:15"),
            Some(JobExit {
                code: 0,
                signal: 15
            })
        );
        assert_eq!(JobExit::parse("768"), Some(JobExit { code: 3, signal: 0 }));
        assert_eq!(JobExit::parse("9"), Some(JobExit { code: 0, signal: 9 }));
        assert_eq!(
            JobExit::parse("65280"),
            Some(JobExit {
                code: 255,
                signal: 0
            })
        );
        assert_eq!(JobExit::parse(""), None);
        assert_eq!(JobExit::parse("x:0"), None);
    }

    #[test]
    fn job_ids_parse_plain_and_multi_cluster() {
        assert_eq!("112\n".parse::<JobId>().unwrap(), JobId(112));
        assert_eq!("112;cluster2".parse::<JobId>().unwrap(), JobId(112));
        assert!("Submitted batch job 5".parse::<JobId>().is_err());
        assert_eq!(join_ids(&[JobId(10), JobId(2), JobId(7)]), "2,7,10");
    }

    #[test]
    fn sbatch_command_sets_name_log_chdir_export_and_resources() {
        let slurm = Slurm::new("/data/study");
        let cfg = SlurmConfig {
            cpus: Some(8),
            mem: Some("32G".into()),
            time: Some("12:00:00".into()),
            gpus: Some(1),
            partition: Some("gpu".into()),
            export: Some(vec!["LD_LIBRARY_PATH".into()]),
            extra_args: Some(vec!["--account=lab".into()]),
        };
        let argv = slurm
            .sbatch_command(
                "studymake:ab12:l2_a/fit",
                Path::new("/data/study/.studymake/slurm/m.sh"),
                Path::new("/data/study/.studymake/slurm/m.out"),
                &cfg,
            )
            .unwrap();
        assert_eq!(
            argv,
            [
                "sbatch",
                "--parsable",
                "--job-name=studymake:ab12:l2_a/fit",
                "--output=/data/study/.studymake/slurm/m.out",
                "--chdir=/data/study",
                "--export=PATH,LD_LIBRARY_PATH",
                "--nodes=1",
                "--ntasks=1",
                "--cpus-per-task=8",
                "--mem=32G",
                "--time=12:00:00",
                "--gres=gpu:1",
                "--partition=gpu",
                "--account=lab",
                "/data/study/.studymake/slurm/m.sh",
            ]
        );
        let default = slurm
            .sbatch_command(
                "j",
                Path::new("/s.sh"),
                Path::new("/l.out"),
                &SlurmConfig::default(),
            )
            .unwrap();
        assert_eq!(default.len(), 10);
        assert_eq!(default[8], "--cpus-per-task=1");
        assert_eq!(default[5], "--export=PATH");
        let all = SlurmConfig {
            export: Some(vec!["CUDA_HOME".into(), "ALL".into(), "PATH".into()]),
            ..Default::default()
        };
        let argv = slurm
            .sbatch_command("j", Path::new("/s.sh"), Path::new("/l.out"), &all)
            .unwrap();
        assert_eq!(argv[5], "--export=ALL,PATH,CUDA_HOME");
        assert_eq!(
            display_command(&["sbatch".into(), "--job-name=a b".into(), "it's".into()]),
            r"sbatch '--job-name=a b' 'it'\''s'"
        );
        let p = Slurm::new("/w").with_program_dir("/opt/slurm/bin");
        let argv = p
            .sbatch_command(
                "j",
                Path::new("/s.sh"),
                Path::new("/l"),
                &SlurmConfig::default(),
            )
            .unwrap();
        assert_eq!(argv[0], "/opt/slurm/bin/sbatch");
        let rel = slurm.sbatch_command(
            "j",
            Path::new("s.sh"),
            Path::new("/l"),
            &SlurmConfig::default(),
        );
        assert!(rel.unwrap_err().to_string().contains("must be absolute"));
    }

    #[test]
    fn config_values_are_checked() {
        let ok = |c: SlurmConfig| c.validate().is_ok();
        let mem = |m: &str| SlurmConfig {
            mem: Some(m.into()),
            ..Default::default()
        };
        let time = |t: &str| SlurmConfig {
            time: Some(t.into()),
            ..Default::default()
        };
        let extra = |a: &str| SlurmConfig {
            extra_args: Some(vec![a.into()]),
            ..Default::default()
        };
        for m in ["4G", "500M", "4096", "1T", "64k"] {
            assert!(ok(mem(m)), "{m}");
        }
        for m in ["", "4GB", "G", "4.5G", "-1"] {
            assert!(!ok(mem(m)), "{m}");
        }
        for t in [
            "30",
            "30:00",
            "01:00:00",
            "2-00",
            "2-12:00",
            "1-00:00:00",
            "UNLIMITED",
        ] {
            assert!(ok(time(t)), "{t}");
        }
        for t in ["", "1h", "1:2:3:4", "1-", "-5", "01:00:"] {
            assert!(!ok(time(t)), "{t}");
        }
        assert!(ok(extra("--account=abc")));
        assert!(ok(extra("--qos=long")));
        for a in [
            "--output=x",
            "-o",
            "-ox.log",
            "--export=ALL",
            "-J",
            "--wrap=true",
            "account",
        ] {
            assert!(!ok(extra(a)), "{a}");
        }
        let e = mem("4GB").validate().unwrap_err().to_string();
        assert!(e.contains("mem") && e.contains("4GB"), "{e}");
        assert!(!ok(SlurmConfig {
            cpus: Some(0),
            ..Default::default()
        }));
        assert!(!ok(SlurmConfig {
            export: Some(vec!["A B".into()]),
            ..Default::default()
        }));
    }

    #[test]
    fn settings_from_toml_with_kind_overrides() {
        #[derive(Deserialize)]
        struct Studyfile {
            executor: Executor,
        }
        #[derive(Deserialize)]
        struct Executor {
            slurm: SlurmSettings,
        }
        let text = r#"
            [executor.slurm]
            partition = "cpu"
            time = "01:00:00"
            mem = "4G"
            extra_args = ["--account=lab"]

            [executor.slurm.fit]
            partition = "gpu"
            gpus = 1
            cpus = 8
            extra_args = ["--constraint=a100"]
        "#;
        let s: Studyfile = toml::from_str(text).unwrap();
        let s = s.executor.slurm;
        let fit = s.for_kind("fit");
        assert_eq!(fit.partition.as_deref(), Some("gpu"));
        assert_eq!(fit.cpus(), 8);
        assert_eq!(fit.gpus, Some(1));
        assert_eq!(fit.mem.as_deref(), Some("4G"));
        assert_eq!(fit.time.as_deref(), Some("01:00:00"));
        assert_eq!(
            fit.extra_args,
            Some(vec!["--account=lab".into(), "--constraint=a100".into()])
        );
        let source = s.for_kind("source");
        assert_eq!(source, s.defaults);
        assert_eq!(source.cpus(), 1);
        assert_eq!(s.unknown_kinds(&["fit", "source"]), Vec::<&str>::new());
        assert_eq!(s.unknown_kinds(&["source"]), vec!["fit"]);

        let err = |t: &str| toml::from_str::<Studyfile>(t).err().unwrap().to_string();
        let e = err("[executor.slurm]\ncpu = 4\n");
        assert!(e.contains("unknown Slurm resource `cpu`"), "{e}");
        let e = err("[executor.slurm.fit]\ngpu = 1\n");
        assert!(e.contains("executor.slurm.fit") && e.contains("gpu"), "{e}");
        let e = err("[executor.slurm]\ntime = \"1h\"\n");
        assert!(e.contains("time"), "{e}");
        let e = err("[executor.slurm]\ncpus = \"four\"\n");
        assert!(e.contains("cpus") || e.contains("integer"), "{e}");
    }

    #[test]
    fn job_script_execs_the_worker_with_every_argument_intact() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("job.sh");
        let args = [
            "plain",
            "two words",
            "it's",
            "$HOME `id` \"q\"",
            "line\nbreak",
            "",
            "*",
        ];
        let mut argv = vec!["/usr/bin/printf", "<%s>\\n"];
        argv.extend(args);
        write_job_script(&script, &argv).unwrap();
        let text = std::fs::read_to_string(&script).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"), "{text}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&script).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        let out = Command::new(&script)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        let expect: String = args.iter().map(|a| format!("<{a}>\n")).collect();
        assert_eq!(String::from_utf8_lossy(&out.stdout), expect);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("studymake: Slurm job ? on "), "{err}");
        // exit code passes through exec
        write_job_script(&script, &["/bin/sh", "-c", "exit 3"]).unwrap();
        let out = Command::new(&script).output().unwrap();
        assert_eq!(out.status.code(), Some(3));
        let empty: [&str; 0] = [];
        assert!(write_job_script(&script, &empty).is_err());
    }

    /// A directory of fake Slurm tools: `(name, shell body)`.
    fn fake_tools(tools: &[(&str, &str)]) -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in tools {
            let p = dir.path().join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        dir
    }

    #[test]
    fn sbatch_errors_carry_the_command_and_stderr() {
        let bin = fake_tools(&[(
            "sbatch",
            "echo 'sbatch: error: Batch job submission failed: Invalid partition name specified' >&2; exit 1",
        )]);
        let slurm = Slurm::new("/w").with_program_dir(bin.path());
        let cfg = SlurmConfig {
            partition: Some("nope".into()),
            ..Default::default()
        };
        let e = slurm
            .submit("j", Path::new("/s.sh"), Path::new("/l.out"), &cfg)
            .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("--partition=nope") && m.contains("Invalid partition name"),
            "{m}"
        );
        assert!(matches!(e, Error::Slurm { .. }));

        let bin = fake_tools(&[("sbatch", "echo 'Submitted batch job 5'")]);
        let slurm = Slurm::new("/w").with_program_dir(bin.path());
        let m = slurm
            .submit("j", Path::new("/s.sh"), Path::new("/l.out"), &cfg)
            .unwrap_err()
            .to_string();
        assert!(m.contains("instead of a job id"), "{m}");

        let bin = fake_tools(&[("sbatch", "echo 'sbatch: warning: x' >&2; echo '77;c2'")]);
        let slurm = Slurm::new("/w").with_program_dir(bin.path());
        let id = slurm
            .submit("j", Path::new("/s.sh"), Path::new("/l.out"), &cfg)
            .unwrap();
        assert_eq!(id, JobId(77));
    }

    #[test]
    fn poll_falls_back_for_forgotten_ids_and_reports_the_rest_vanished() {
        // squeue knows 5; scontrol knows 6; sacct knows 7; nobody knows 8
        let bin = fake_tools(&[
            ("squeue", "echo '5|RUNNING|0|None|'"),
            (
                "scontrol",
                "if [ \"$4\" = 6 ]; then echo 'JobId=6 JobState=TIMEOUT Reason=TimeLimit ExitCode=0:15'; \
                 else echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1; fi",
            ),
            ("sacct", "echo '7|OUT_OF_MEMORY|0:125'"),
        ]);
        let slurm = Slurm::new("/w").with_program_dir(bin.path());
        let ids = [JobId(5), JobId(6), JobId(7), JobId(8)];
        let st = slurm.poll(&ids).unwrap();
        assert_eq!(st[&JobId(5)].state, JobState::Running);
        assert_eq!(st[&JobId(6)].state, JobState::Timeout);
        assert_eq!(st[&JobId(6)].reason.as_deref(), Some("TimeLimit"));
        assert_eq!(st[&JobId(7)].state, JobState::OutOfMemory);
        assert_eq!(st[&JobId(8)].state, JobState::Vanished);
        assert!(slurm.poll(&[]).unwrap().is_empty());

        // all unknown: squeue fails with "Invalid job id specified"; sacct disabled
        let bin = fake_tools(&[
            (
                "squeue",
                "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1",
            ),
            (
                "scontrol",
                "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1",
            ),
            (
                "sacct",
                "echo 'Slurm accounting storage is disabled' >&2; exit 1",
            ),
        ]);
        let slurm = Slurm::new("/w").with_program_dir(bin.path());
        let st = slurm.poll(&[JobId(9)]).unwrap();
        assert_eq!(st[&JobId(9)].state, JobState::Vanished);

        // controller down: an error naming squeue and its message
        let bin = fake_tools(&[(
            "squeue",
            "echo 'slurm_load_jobs error: Unable to contact slurm controller (connect failure)' >&2; exit 1",
        )]);
        let slurm = Slurm::new("/w").with_program_dir(bin.path());
        let m = slurm.poll(&[JobId(9)]).unwrap_err().to_string();
        assert!(
            m.contains("squeue") && m.contains("Unable to contact"),
            "{m}"
        );
    }

    #[test]
    fn a_hanging_command_is_killed_after_the_timeout() {
        let bin = fake_tools(&[
            ("squeue", "[ \"$1\" = --version ] && exit 0; exec sleep 30"),
            ("sbatch", "exit 0"),
        ]);
        let slurm = Slurm::new("/w")
            .with_program_dir(bin.path())
            .with_timeout(Duration::from_millis(300));
        let t0 = Instant::now();
        let m = slurm.poll(&[JobId(1)]).unwrap_err().to_string();
        assert!(t0.elapsed() < Duration::from_secs(5));
        assert!(m.contains("did not finish within 0.3 s"), "{m}");
        // and `available` is false, not an error, when a tool is missing
        assert!(!slurm.available());
    }

    #[test]
    fn cancel_is_one_scancel_call_and_find_running_filters_names() {
        let bin = fake_tools(&[
            ("scancel", "echo \"$@\" >> \"$(dirname \"$0\")/calls\""),
            (
                "squeue",
                "printf '%s\\n' '3|RUNNING|studymake:s1:l1/fit' '4|PENDING|studymake:s1:l1/fit2' \
                 '5|RUNNING|studymake:s2:l1/fit' '6|RUNNING|other'",
            ),
        ]);
        let slurm = Slurm::new("/w").with_program_dir(bin.path());
        slurm.cancel(&[JobId(3), JobId(4)]).unwrap();
        slurm.cancel(&[]).unwrap();
        let calls = std::fs::read_to_string(bin.path().join("calls")).unwrap();
        assert_eq!(calls, "3 4\n");
        let exact = slurm
            .find_running(&NameMatch::Exact("studymake:s1:l1/fit".into()))
            .unwrap();
        assert_eq!(exact.iter().map(|j| j.id).collect::<Vec<_>>(), [JobId(3)]);
        let run = slurm
            .find_running(&NameMatch::Prefix("studymake:s1:".into()))
            .unwrap();
        assert_eq!(
            run.iter().map(|j| j.id).collect::<Vec<_>>(),
            [JobId(3), JobId(4)]
        );
        assert_eq!(run[1].state, JobState::Pending);
    }
}
