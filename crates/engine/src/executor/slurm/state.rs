//! Slurm jobs and their states: job ids, the state words of `squeue`, `scontrol` and `sacct`,
//! exit codes, what a poll knows of a job, and how earlier jobs are found by name.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

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
    pub(super) fn matches(&self, name: &str) -> bool {
        match self {
            NameMatch::Exact(n) => name == n,
            NameMatch::Prefix(p) => name.starts_with(p.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::slurm::parse::join_ids;

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
}
