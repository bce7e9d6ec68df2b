//! The local executor: each job's worker (or external command) runs under its own supervisor
//! ([`super::supervise`]), a child process of this studymake in its own process group, with a
//! cleared environment and its output in the target's log. A job is done when its supervisor
//! has exited, which is after every process the job started has ended; the supervisor and its
//! whole tree die with studymake.

use super::{describe_status, local_worker_argv, worker_argv, worker_env, Executor, Job, Outcome};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

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
        let exe = std::env::current_exe().map_err(|e| Error::io("/proc/self/exe", e))?;
        let exe = if std::path::Path::new("/proc/self/exe").exists() {
            std::path::PathBuf::from("/proc/self/exe")
        } else {
            exe
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
        let mut cmd = Command::new(&exe);
        cmd.arg(super::supervise::SUBCOMMAND)
            .args(&argv)
            .current_dir(&job.cwd)
            .env_clear()
            .envs(worker_env(job.threads))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        if let Some(d) = &job.direct {
            cmd.envs(d.env.iter().map(|(k, v)| (k, v)));
        }
        crate::sys::supervised(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| match &job.direct {
            Some(_) => Error::Build {
                target: job.target.clone(),
                message: format!("could not start its supervisor (`{}`): {e}", exe.display()),
            },
            None => Error::io(&exe, e),
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
