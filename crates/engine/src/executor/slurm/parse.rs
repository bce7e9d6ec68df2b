//! Parsers of the Slurm tools' outputs: pure functions, tested on captured outputs.

use super::state::{FoundJob, JobExit, JobId, JobState, JobStatus};

pub(super) fn join_ids<'a>(ids: impl IntoIterator<Item = &'a JobId>) -> String {
    let mut v: Vec<u64> = ids.into_iter().map(|i| i.0).collect();
    v.sort_unstable();
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

pub(super) fn is_invalid_job_id(stderr: &str) -> bool {
    stderr.contains("Invalid job id specified")
}

pub(super) fn reason_of(r: &str) -> Option<String> {
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
    use crate::executor::slurm::state::NameMatch;
    use std::collections::HashMap;

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
}
