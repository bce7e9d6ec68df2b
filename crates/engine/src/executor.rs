//! Executors: where a job's worker process runs. The local executor spawns
//! `studymake __worker SPEC` with a cleared environment; the Slurm executor submits the same
//! command as a batch job. Both only *run* workers: the engine alone checks and publishes.
//!
//! Also here: the worker-side runner for external commands, which executes the user's argv with
//! the same cleared environment and tells it where to write its report.

use crate::error::{Error, Result};
use crate::job::JobSpec;
use crate::recipe::Recipe;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
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

/// The extra environment of an external command: where its report and output go.
pub fn command_env(spec: &JobSpec) -> Vec<(String, String)> {
    vec![
        (
            "STUDYMAKE_REPORT".into(),
            spec.report.to_string_lossy().into_owned(),
        ),
        (
            "STUDYMAKE_OUTPUT".into(),
            spec.output.to_string_lossy().into_owned(),
        ),
        ("STUDYMAKE_TARGET".into(), spec.target.clone()),
    ]
}

/// The lines a build's log opens with: what is built, with which parameters.
pub fn log_header(spec: &JobSpec) -> String {
    let mut h = format!(
        "studymake worker: building {} ({})\nparameters: {}\n",
        spec.target,
        spec.recipe.describe(),
        serde_json::to_string(&spec.params).unwrap_or_default()
    );
    if let Recipe::Command { argv, .. } = &spec.recipe {
        h.push_str(&format!(
            "studymake worker: {} runs {:?}\n",
            spec.target, argv
        ));
    }
    h
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

/// Runs workers as child processes of this studymake.
pub struct LocalExecutor {
    tx: Sender<(usize, Outcome)>,
    rx: Receiver<(usize, Outcome)>,
    pids: HashMap<usize, u32>,
}

impl LocalExecutor {
    pub fn new() -> Self {
        let (tx, rx) = channel();
        LocalExecutor {
            tx,
            rx,
            pids: HashMap::new(),
        }
    }
}

impl Default for LocalExecutor {
    fn default() -> Self {
        Self::new()
    }
}

impl Executor for LocalExecutor {
    fn runs_commands_directly(&self) -> bool {
        true
    }

    fn start(&mut self, job: Job) -> Result<()> {
        let argv = match &job.direct {
            Some(d) => d.argv.clone(),
            None => local_worker_argv(&job)?,
        };
        if let Some(dir) = job.log_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut log =
            std::fs::File::create(&job.log_path).map_err(|e| Error::io(&job.log_path, e))?;
        if let Some(d) = &job.direct {
            use std::io::Write;
            log.write_all(d.header.as_bytes())
                .map_err(|e| Error::io(&job.log_path, e))?;
        }
        let log2 = log.try_clone().map_err(|e| Error::io(&job.log_path, e))?;
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(&job.cwd)
            .env_clear()
            .envs(worker_env(job.threads))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        if let Some(d) = &job.direct {
            cmd.envs(d.env.iter().map(|(k, v)| (k, v)));
        }
        crate::sys::isolate(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| match &job.direct {
            Some(_) => Error::Build {
                target: job.target.clone(),
                message: format!("could not start `{}`: {e}", argv[0]),
            },
            None => Error::io(&argv[0], e),
        })?;
        self.pids.insert(job.index, child.id());
        let tx = self.tx.clone();
        let index = job.index;
        let program = job.direct.as_ref().map(|_| argv[0].clone());
        std::thread::spawn(move || {
            let outcome = match child.wait() {
                Ok(s) if s.success() => Outcome::Success,
                Ok(s) => match &program {
                    Some(p) => Outcome::Failed(format!("`{p}` ended with {}", describe_status(s))),
                    None => Outcome::Failed(describe_status(s)),
                },
                Err(e) => Outcome::Failed(format!("could not wait for the worker: {e}")),
            };
            let _ = tx.send((index, outcome));
        });
        Ok(())
    }

    fn wait(&mut self, timeout: Duration) -> Result<Option<(usize, Outcome)>> {
        match self.rx.recv_timeout(timeout) {
            Ok((i, o)) => {
                self.pids.remove(&i);
                Ok(Some((i, o)))
            }
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Ok(None),
        }
    }

    fn running(&self) -> usize {
        self.pids.len()
    }

    fn cancel_all(&mut self) {
        for pid in self.pids.values() {
            crate::sys::terminate_group(*pid);
        }
    }

    fn describe(&self, job: &Job) -> String {
        match &job.direct {
            Some(d) => d.argv.join(" "),
            None => worker_argv(job)
                .map(|a| a.join(" "))
                .unwrap_or_else(|e| e.to_string()),
        }
    }
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

/// Worker side: run an external command job. The environment is already the cleared one the
/// engine gave this worker; the command also gets `STUDYMAKE_REPORT` and `STUDYMAKE_OUTPUT`.
pub fn run_command(spec: &JobSpec) -> Result<()> {
    let Recipe::Command { argv, .. } = &spec.recipe else {
        return Err(Error::Other(format!(
            "{}: not an external-command job",
            spec.target
        )));
    };
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .envs(command_env(spec))
        .stdin(Stdio::null());
    // The command dies with its worker, as the worker dies with studymake.
    crate::sys::die_with_parent(&mut cmd);
    let status = cmd.status().map_err(|e| Error::Build {
        target: spec.target.clone(),
        message: format!("could not start `{}`: {e}", argv[0]),
    })?;
    if !status.success() {
        return Err(Error::Build {
            target: spec.target.clone(),
            message: format!("`{}` ended with {}", argv[0], describe_status(status)),
        });
    }
    Ok(())
}

/// Substitute `{placeholders}` in an argv template.
pub fn substitute(template: &[String], values: &HashMap<String, String>) -> Result<Vec<String>> {
    template
        .iter()
        .map(|arg| {
            let mut out = String::new();
            let mut rest = arg.as_str();
            while let Some(i) = rest.find('{') {
                out.push_str(&rest[..i]);
                let after = &rest[i + 1..];
                let Some(j) = after.find('}') else {
                    out.push_str(&rest[i..]);
                    rest = "";
                    break;
                };
                let name = &after[..j];
                let v = values.get(name).ok_or_else(|| {
                    Error::Other(format!("no value for placeholder `{{{name}}}`"))
                })?;
                out.push_str(v);
                rest = &after[j + 1..];
            }
            out.push_str(rest);
            Ok(out)
        })
        .collect()
}

/// The last `n` lines of a log, for failure messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_substituted() {
        let mut v = HashMap::new();
        v.insert("level".to_string(), "2".to_string());
        v.insert("input.prepared".to_string(), "/s/t.npz".to_string());
        let t = vec![
            "--level={level}".to_string(),
            "{input.prepared}".to_string(),
        ];
        assert_eq!(substitute(&t, &v).unwrap(), vec!["--level=2", "/s/t.npz"]);
        assert!(substitute(&["{nope}".to_string()], &v).is_err());
    }
}
