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

use super::config::SlurmConfig;
use super::parse::{
    is_invalid_job_id, join_ids, parse_sacct, parse_scontrol_job, parse_squeue_names,
    parse_squeue_status,
};
use super::script::display_command;
use super::state::{FoundJob, JobId, JobState, JobStatus, NameMatch};
use crate::error::{Error, Result};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

#[cfg(test)]
mod tests {
    use super::*;

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
