//! The Slurm executor: each job's worker becomes one Slurm batch job, submitted when the target
//! is ready (studymake keeps the graph, so a job whose input failed is simply never submitted and
//! nothing pends forever). States are polled for all running jobs in one batch call. Only the
//! submitting studymake publishes outputs, exactly as with the local executor.

pub mod client;
pub mod config;
pub mod parse;
pub mod script;
pub mod state;

pub use client::{Slurm, DEFAULT_COMMAND_TIMEOUT};
pub use config::{SlurmConfig, SlurmSettings};
pub use script::{display_command, shell_quote, write_job_script};
pub use state::{FoundJob, JobExit, JobId, JobState, JobStatus, NameMatch};

use super::{worker_argv, worker_env, Executor, Job, Outcome};
use crate::error::{Error, Result};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often running jobs are polled.
const POLL_EVERY: Duration = Duration::from_millis(500);

/// Runs workers as Slurm jobs.
pub struct SlurmExecutor {
    client: Slurm,
    settings: SlurmSettings,
    prefix: String,
    jobs: HashMap<usize, (JobId, PathBuf)>,
    done: VecDeque<(usize, Outcome)>,
    last_poll: Option<Instant>,
}

/// `studymake:<study name>-<hash of the study directory>:`: the prefix of this study's job names.
pub fn job_prefix(study: &str, out_dir: &Path) -> String {
    let h = blake3::hash(out_dir.to_string_lossy().as_bytes()).to_hex();
    format!("studymake:{study}-{}:", &h[..8])
}

/// The `[executor.slurm]` settings of a Studyfile's `[executor]` table; `kinds` are the study's
/// target kinds, the only sub-tables allowed.
pub fn settings_from(executor: Option<&toml::Value>, kinds: &[&str]) -> Result<SlurmSettings> {
    let Some(toml::Value::Table(t)) = executor else {
        return Ok(SlurmSettings::default());
    };
    match t.get("slurm") {
        None => Ok(SlurmSettings::default()),
        Some(v) => {
            let s: SlurmSettings = v.clone().try_into().map_err(|e: toml::de::Error| {
                Error::Usage(format!("[executor.slurm]: {}", e.message()))
            })?;
            let unknown = s.unknown_kinds(kinds);
            if let Some(k) = unknown.first() {
                return Err(Error::Usage(format!(
                    "[executor.slurm.{k}]: `{k}` is not a target kind ({})",
                    kinds.join(", ")
                )));
            }
            Ok(s)
        }
    }
}

/// Which executor the Studyfile's `[executor]` table asks for (`kind = "local"` or `"slurm"`).
pub fn kind_from(executor: Option<&toml::Value>) -> Result<Option<String>> {
    let Some(v) = executor else { return Ok(None) };
    let toml::Value::Table(t) = v else {
        return Err(Error::Usage("[executor] must be a table".into()));
    };
    for k in t.keys() {
        if k != "kind" && k != "slurm" {
            return Err(Error::Usage(format!(
                "[executor]: unknown key `{k}`; expected `kind` or `slurm`"
            )));
        }
    }
    match t.get("kind") {
        None => Ok(None),
        Some(toml::Value::String(s)) if s == "local" || s == "slurm" => Ok(Some(s.clone())),
        Some(other) => Err(Error::Usage(format!(
            "[executor]: `kind` must be \"local\" or \"slurm\", found {other}"
        ))),
    }
}

impl SlurmExecutor {
    /// A Slurm executor for a study. Jobs of an earlier, interrupted run of the same study are
    /// cancelled first: their submitter is gone, so their outputs could never be published, and
    /// a target must never have two jobs at once.
    pub fn new(workdir: &Path, settings: SlurmSettings, prefix: String) -> Result<SlurmExecutor> {
        let client = Slurm::new(workdir);
        if !client.available() {
            return Err(Error::Usage(
                "--executor slurm: no Slurm cluster answers (sbatch/squeue on PATH and \
                 `scontrol ping` UP are needed; see README, \"Running on a Slurm cluster\")"
                    .into(),
            ));
        }
        let stale = client.find_running(&NameMatch::Prefix(prefix.clone()))?;
        let live: Vec<JobId> = stale
            .iter()
            .filter(|j| !j.state.is_terminal())
            .map(|j| j.id)
            .collect();
        if !live.is_empty() {
            println!(
                "studymake: cancelling {} job{} of an interrupted earlier run of this study ({})",
                live.len(),
                if live.len() == 1 { "" } else { "s" },
                stale
                    .iter()
                    .map(|j| j.name.trim_start_matches(&prefix).to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            client.cancel(&live)?;
        }
        Ok(SlurmExecutor {
            client,
            settings,
            prefix,
            jobs: HashMap::new(),
            done: VecDeque::new(),
            last_poll: None,
        })
    }

    fn script_and_argv(job: &Job) -> Result<(PathBuf, Vec<String>)> {
        let script = job
            .spec_path
            .parent()
            .unwrap_or(Path::new("."))
            .join("job.sh");
        // The same cleared environment as a local worker: `env -i` with the allowlist.
        let mut argv = vec!["/usr/bin/env".to_string(), "-i".to_string()];
        for (k, v) in worker_env(job.threads) {
            argv.push(format!("{k}={v}"));
        }
        argv.extend(worker_argv(job)?);
        Ok((script, argv))
    }

    /// The sbatch line a job would be submitted with (for `-n`); needs no cluster.
    pub fn sbatch_line(
        workdir: &Path,
        settings: &SlurmSettings,
        prefix: &str,
        job: &Job,
    ) -> Result<String> {
        let (script, _) = Self::script_and_argv(job)?;
        let cfg = settings.for_kind(&job.kind);
        let argv = Slurm::new(workdir).sbatch_command(
            &format!("{prefix}{}", job.target),
            &script,
            &job.log_path,
            &cfg,
        )?;
        Ok(display_command(&argv))
    }

    fn poll(&mut self) -> Result<()> {
        let ids: Vec<JobId> = self.jobs.values().map(|(id, _)| *id).collect();
        if ids.is_empty() {
            return Ok(());
        }
        let states = self.client.poll(&ids)?;
        let mut ended = Vec::new();
        for (&index, (id, log)) in &self.jobs {
            let Some(st) = states.get(id) else { continue };
            if let Some(reason) = st.stuck_reason() {
                ended.push((
                    index,
                    Outcome::Failed(format!(
                        "Slurm job {id} can never start ({reason}); cancelled. Log: {}",
                        log.display()
                    )),
                    true,
                ));
                continue;
            }
            if !st.state.is_terminal() {
                continue;
            }
            let outcome = if st.state.is_success() {
                Outcome::Success
            } else {
                let exit = st.exit.map(|e| format!(", exit {e}")).unwrap_or_default();
                let how = if st.state == JobState::Vanished {
                    "vanished from Slurm before its end state was seen".to_string()
                } else {
                    format!("ended {}{exit}", st.state)
                };
                Outcome::Failed(format!("Slurm job {id} {how}; log: {}", log.display()))
            };
            ended.push((index, outcome, false));
        }
        for (index, outcome, cancel) in ended {
            if let Some((id, _)) = self.jobs.remove(&index) {
                if cancel {
                    let _ = self.client.cancel(&[id]);
                }
            }
            self.done.push_back((index, outcome));
        }
        Ok(())
    }
}

impl Executor for SlurmExecutor {
    fn start(&mut self, job: Job) -> Result<()> {
        let (script, argv) = Self::script_and_argv(&job)?;
        write_job_script(&script, &argv)?;
        if let Some(dir) = job.log_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let cfg = self.settings.for_kind(&job.kind);
        let id = self.client.submit(
            &format!("{}{}", self.prefix, job.target),
            &script,
            &job.log_path,
            &cfg,
        )?;
        tracing::debug!("submitted {} as Slurm job {id}", job.target);
        self.jobs.insert(job.index, (id, job.log_path.clone()));
        Ok(())
    }

    fn wait(&mut self, timeout: Duration) -> Result<Option<(usize, Outcome)>> {
        if let Some(d) = self.done.pop_front() {
            return Ok(Some(d));
        }
        let due = self
            .last_poll
            .map(|t| t.elapsed() >= POLL_EVERY)
            .unwrap_or(true);
        if due {
            self.last_poll = Some(Instant::now());
            self.poll()?;
        } else {
            std::thread::sleep(timeout.min(POLL_EVERY));
        }
        Ok(self.done.pop_front())
    }

    fn running(&self) -> usize {
        self.jobs.len() + self.done.len()
    }

    fn cancel_all(&mut self) {
        let ids: Vec<JobId> = self.jobs.values().map(|(id, _)| *id).collect();
        if !ids.is_empty() {
            if let Err(e) = self.client.cancel(&ids) {
                eprintln!("studymake: could not cancel the Slurm jobs: {e}");
            }
        }
    }

    fn describe(&self, job: &Job) -> String {
        Self::sbatch_line(self.client.workdir(), &self.settings, &self.prefix, job)
            .unwrap_or_else(|e| e.to_string())
    }
}
