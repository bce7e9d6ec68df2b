//! The build: every selected target whose inputs are settled is assessed ([`crate::freshness`]);
//! fresh ones are kept, cached ones restored, stale ones queued and started in dependency order,
//! up to `-j` at once, each in its own worker process ([`prepare`]); a finished worker's output is
//! checked against the declaration and published ([`publish`]). A failure skips what depends on
//! it and, without `-k`, stops the build; Ctrl-C cancels the running jobs.

mod inputs;
mod prepare;
mod publish;

pub use publish::check_reported;

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::executor::{Executor, Outcome};
use crate::freshness::{Action, Planner, Reason};
use crate::graph::{Graph, InputSource, Target};
use crate::job::JobSpec;
use crate::key::{Digest, KeyMaterial};
use crate::progress::Reporter;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Options of a build.
#[derive(Clone, Debug)]
pub struct Options {
    pub jobs: usize,
    pub keep_going: bool,
    pub threads: usize,
    /// Check outputs by rehashing every file instead of trusting unchanged stat fields.
    pub full_check: bool,
}

/// Counts for the closing line.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub built: usize,
    pub restored: usize,
    pub fresh: usize,
    pub failed: usize,
    pub skipped: usize,
}

#[derive(Clone, Debug, PartialEq)]
enum State {
    Waiting,
    Queued,
    Running,
    Done(Digest),
    Failed,
    Skipped,
}

struct Running {
    scratch: PathBuf,
    spec: JobSpec,
    started: Instant,
    started_unix: u64,
    key: Digest,
    material: KeyMaterial,
    log: PathBuf,
    previous: Option<Digest>,
    /// The inputs as its key names them, checked again when the job has ended.
    inputs: Vec<inputs::Snapshot>,
}

/// Path of a target's log file: a condition's target logs beside its output, in the
/// condition's `logs/` (a replicate's in its own, `CONDITION/s42/logs/`), so no two targets
/// share a log.
pub fn log_path(graph: &Graph, t: &Target) -> PathBuf {
    match &t.condition {
        Some(c) => graph
            .out_dir
            .join(t.output.parent().unwrap_or_else(|| Path::new(c)))
            .join("logs")
            .join(format!("{}.log", t.kind)),
        None => graph
            .out_dir
            .join("logs")
            .join(format!("{}.log", t.name.replace('/', "_"))),
    }
}

/// A queued target: its key material, key, and why it is built.
type Queued = (usize, KeyMaterial, Digest, Vec<Reason>);

/// One build in progress: what each selected target's state is and what is known of outputs.
struct Run<'p, 'g, 'e, 'r> {
    planner: &'p mut Planner<'g>,
    catalog: &'p dyn Catalog,
    executor: &'e mut dyn Executor,
    reporter: &'r mut Reporter,
    selected: &'p [usize],
    opts: &'p Options,
    /// The Studyfile's directory, where workers run.
    cwd: PathBuf,
    state: HashMap<usize, State>,
    /// Output digests of settled targets (and of inputs outside the selection).
    known: HashMap<usize, Digest>,
    queue: Vec<Queued>,
    running: HashMap<usize, Running>,
    summary: Summary,
    /// No new job starts: a failure without `-k`, or an interrupt.
    stop: bool,
}

/// Build the selected targets. Returns the summary; failures are reported as they happen.
pub fn build(
    planner: &mut Planner,
    catalog: &dyn Catalog,
    executor: &mut dyn Executor,
    selected: &[usize],
    opts: &Options,
    reporter: &mut Reporter,
) -> Result<Summary> {
    let cwd = planner.graph.studyfile_dir()?;
    reporter.start(selected.len());
    let mut run = Run {
        planner,
        catalog,
        executor,
        reporter,
        selected,
        opts,
        cwd,
        state: selected.iter().map(|&i| (i, State::Waiting)).collect(),
        known: HashMap::new(),
        queue: Vec::new(),
        running: HashMap::new(),
        summary: Summary::default(),
        stop: false,
    };
    let t_plan = Instant::now();
    let mut planned = false;
    loop {
        run.assess_ready()?;
        if crate::sys::interrupted() && !run.stop {
            run.stop = true;
            run.reporter
                .line("studymake: interrupted; stopping running jobs");
            run.executor.cancel_all();
        }
        if !planned {
            planned = true;
            tracing::debug!(
                "scheduler: first assessment pass in {:.1} ms",
                t_plan.elapsed().as_secs_f64() * 1e3
            );
        }
        run.start_queued();
        if run.running.is_empty() {
            if run.stop || run.queue.is_empty() {
                break;
            }
            continue;
        }
        run.collect_one()?;
    }
    // Whatever never started because of a stop counts as skipped.
    for &i in selected {
        if matches!(run.state[&i], State::Waiting | State::Queued) {
            run.summary.skipped += 1;
        }
    }
    run.planner.store.finish()?;
    run.reporter.finish();
    Ok(run.summary)
}

impl Run<'_, '_, '_, '_> {
    /// Record target `i` as failed; the build stops unless `-k`.
    fn fail(&mut self, i: usize, message: &str, log: Option<&Path>) {
        let name = &self.planner.graph.targets[i].name;
        self.reporter.fail(name, message, log);
        self.state.insert(i, State::Failed);
        self.summary.failed += 1;
        self.stop |= !self.opts.keep_going;
    }

    /// Say which published inputs were restored because a job changed them.
    fn report_repaired(&mut self, restored: &[String]) {
        for name in restored {
            self.reporter
                .event("restored", name, "from the cache: a job changed it");
        }
    }

    /// Target `i` is settled with output digest `d`.
    fn done(&mut self, i: usize, d: Digest) {
        self.known.insert(i, d);
        self.state.insert(i, State::Done(d));
    }

    /// Assess every waiting target whose inputs are settled, until none is left to assess: keep
    /// the fresh, restore the cached, queue the rest, skip what a failure blocks.
    fn assess_ready(&mut self) -> Result<()> {
        let graph = self.planner.graph;
        let mut progressed = true;
        while progressed {
            progressed = false;
            for &i in self.selected {
                if self.state[&i] != State::Waiting {
                    continue;
                }
                let t = &graph.targets[i];
                let mut blocked = false;
                let mut dead = None;
                for inp in &t.inputs {
                    if let InputSource::Target(j) = inp.source {
                        match self.state.get(&j) {
                            Some(State::Done(_)) | None => {}
                            Some(State::Failed) | Some(State::Skipped) => {
                                dead = Some(graph.targets[j].name.clone())
                            }
                            _ => blocked = true,
                        }
                    }
                }
                if let Some(dep) = dead {
                    self.state.insert(i, State::Skipped);
                    self.summary.skipped += 1;
                    self.reporter
                        .event("skipped", &t.name, &format!("input {dep} failed"));
                    progressed = true;
                    continue;
                }
                if blocked {
                    continue;
                }
                progressed = true;
                self.assess(i)?;
            }
        }
        Ok(())
    }

    /// Assess target `i`, whose inputs are settled.
    fn assess(&mut self, i: usize) -> Result<()> {
        let graph = self.planner.graph;
        let t = &graph.targets[i];
        // Its output and its log are written, renamed and deleted: only inside the study.
        for p in [graph.output_path(i), log_path(graph, t)] {
            if let Err(why) = crate::store::confined(&graph.out_dir, &p) {
                self.fail(i, &why, None);
                return Ok(());
            }
        }
        // Inputs outside the selection are read from the store (they must be fresh).
        for inp in &t.inputs {
            if let InputSource::Target(j) = inp.source {
                if !self.state.contains_key(&j) && !self.known.contains_key(&j) {
                    if let Some(r) = self.planner.store.record(&graph.targets[j].name) {
                        self.known.insert(j, r.output);
                    }
                }
            }
        }
        let material = match self.planner.material(i, &self.known) {
            Ok(Ok(m)) => m,
            Ok(Err(_)) => {
                return Err(Error::Other(format!(
                    "internal: inputs of {} were not settled",
                    t.name
                )))
            }
            Err(e) => {
                self.fail(i, &e.to_string(), None);
                return Ok(());
            }
        };
        let a = self.planner.assess(i, &material)?;
        let key = match a.key {
            Some(k) => k,
            None => material.key(),
        };
        match a.action {
            Action::Fresh => {
                let d = a.output.expect("fresh targets have an output digest");
                self.done(i, d);
                self.summary.fresh += 1;
                self.reporter.fresh(&t.name);
            }
            Action::RepairManifest => {
                let d = a.output.expect("fresh targets have an output digest");
                let id = publish::identity(graph, i);
                let rewritten = match self.planner.store.record(&t.name) {
                    Some(rec) => self.planner.store.rewrite_manifest(&id, rec),
                    None => Err(Error::Other(format!("internal: {} has no record", t.name))),
                };
                match rewritten {
                    Err(e) => self.fail(i, &e.to_string(), None),
                    Ok(()) => {
                        self.done(i, d);
                        self.summary.fresh += 1;
                        self.reporter
                            .event("repaired", &t.name, &join_reasons(&a.reasons));
                    }
                }
            }
            Action::Restore => {
                let dest = graph.output_path(i);
                let id = publish::identity(graph, i);
                match self.planner.store.restore(&key, &dest, &id) {
                    // A failed write (disk full, read-only) fails this target only; the
                    // previous output stays in place.
                    Err(e) => self.fail(i, &e.to_string(), None),
                    Ok(Some(rec)) => {
                        self.done(i, rec.output);
                        self.summary.restored += 1;
                        self.reporter.event(
                            "restored",
                            &t.name,
                            &format!(
                                "from the cache, nothing executed ({})",
                                join_reasons(&a.reasons)
                            ),
                        );
                    }
                    Ok(None) => {
                        self.state.insert(i, State::Queued);
                        self.queue.push((i, material, key, a.reasons));
                    }
                }
            }
            Action::Build => {
                self.state.insert(i, State::Queued);
                self.queue.push((i, material, key, a.reasons));
            }
        }
        Ok(())
    }

    /// Start queued jobs, in order, while there is room.
    fn start_queued(&mut self) {
        while !self.stop && self.running.len() < self.opts.jobs.max(1) && !self.queue.is_empty() {
            let (i, material, key, reasons) = self.queue.remove(0);
            let t = &self.planner.graph.targets[i];
            let previous = self.planner.store.record(&t.name).map(|r| r.output);
            let direct = self.executor.runs_commands_directly();
            let mut restored = Vec::new();
            let checked = inputs::snapshot(self.planner, i, &material).and_then(|snap| {
                inputs::check_before(self.planner, &t.name, &snap, &mut restored).map(|()| snap)
            });
            self.report_repaired(&restored);
            let snapshot = match checked {
                Ok(s) => s,
                Err(e) => {
                    self.fail(i, &e.to_string(), None);
                    continue;
                }
            };
            match prepare::prepare(self.planner, i, self.opts, &self.cwd, direct) {
                Ok((spec, scratch, job)) => {
                    let log = job.log_path.clone();
                    self.reporter
                        .event("building", &t.name, &join_reasons(&reasons));
                    if let Err(e) = self.executor.start(job) {
                        let _ = crate::store::remove_path(&scratch);
                        self.fail(i, &e.to_string(), None);
                        continue;
                    }
                    self.state.insert(i, State::Running);
                    self.reporter.running(&t.name, true);
                    self.running.insert(
                        i,
                        Running {
                            scratch,
                            spec,
                            started: Instant::now(),
                            started_unix: unix_now(),
                            key,
                            material,
                            log,
                            previous,
                            inputs: snapshot,
                        },
                    );
                }
                Err(e) => self.fail(i, &e.to_string(), None),
            }
        }
    }

    /// Wait a little for a job to end; check and publish what it built.
    fn collect_one(&mut self) -> Result<()> {
        let Some((i, outcome)) = self.executor.wait(Duration::from_millis(200))? else {
            return Ok(());
        };
        let Some(job) = self.running.remove(&i) else {
            return Ok(());
        };
        let t = &self.planner.graph.targets[i];
        self.reporter.running(&t.name, false);
        let mut restored = Vec::new();
        let inputs_ok = inputs::check_after(self.planner, &t.name, &job.inputs, &mut restored);
        self.report_repaired(&restored);
        // A changed input fails the job whatever its outcome: nothing computed from it counts.
        let result = match (inputs_ok, outcome) {
            (Err(e), _) => Err(e),
            (Ok(()), Outcome::Success) => publish::finish(self.planner, self.catalog, i, &job),
            (Ok(()), Outcome::Failed(why)) => Err(Error::Build {
                target: t.name.clone(),
                message: match publish::worker_error(&job.log, &t.name) {
                    Some(e) => format!("{e} (worker {why})"),
                    None => format!("worker failed ({why})"),
                },
            }),
        };
        let _ = crate::store::remove_path(&job.scratch);
        match result {
            Ok(d) => {
                self.done(i, d);
                self.summary.built += 1;
                let secs = job.started.elapsed().as_secs_f64();
                let note = if job.previous == Some(d) {
                    "; output identical to the previous build, dependents stay fresh"
                } else {
                    ""
                };
                self.reporter
                    .event("built", &t.name, &format!("{secs:.1} s{note}"));
            }
            Err(e) => {
                let msg = e.to_string();
                let _ = self.planner.store.record_failure(&t.name, job.key, &msg);
                self.fail(i, &msg, Some(&job.log));
            }
        }
        Ok(())
    }
}

fn join_reasons(r: &[Reason]) -> String {
    r.iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
