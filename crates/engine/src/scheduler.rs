//! The scheduler: decides which targets are fresh, stale (and why) or restorable from the cache,
//! and builds the stale ones in dependency order, in parallel, each in its own worker process,
//! publishing an output only after checking the parameters its worker reports.

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::executor::{
    command_env, log_header, substitute, tail, DirectCommand, Executor, Job, Outcome,
};
use crate::graph::{Graph, InputSource, Recipe, Target};
use crate::job::{JobSpec, RecipeRef, WorkerReport, JOB_SCHEMA};
use crate::key::{digest_file, Digest, KeyMaterial, RecipeMaterial};
use crate::params::{Params, Value};
use crate::progress::Reporter;
use crate::store::{Manifest, OutputProblem, Record, Store, STATE_SCHEMA};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Why a target is not fresh. Dry runs, `explain`, `status` and the build log print these.
#[derive(Clone, Debug, PartialEq)]
pub enum Reason {
    NeverBuilt,
    ParamChanged {
        name: String,
        old: Option<Value>,
        new: Option<Value>,
    },
    InputChanged {
        role: String,
    },
    InputWillRebuild {
        role: String,
        target: String,
    },
    RecipeChanged {
        old: String,
        new: String,
    },
    OutputMissing(PathBuf),
    OutputModified(PathBuf),
    FailedLastTime(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<Value>| {
            v.as_ref()
                .map(|v| v.to_string())
                .unwrap_or("(unset)".into())
        };
        match self {
            Reason::NeverBuilt => write!(f, "never built"),
            Reason::ParamChanged { name, old, new } => {
                write!(
                    f,
                    "parameter `{name}` changed: {} -> {}",
                    show(old),
                    show(new)
                )
            }
            Reason::InputChanged { role } => write!(f, "input `{role}` changed"),
            Reason::InputWillRebuild { role, target } => {
                write!(f, "input `{role}` ({target}) is rebuilt first")
            }
            Reason::RecipeChanged { old, new } => write!(f, "recipe changed: {old} -> {new}"),
            Reason::OutputMissing(p) => write!(f, "output missing: {}", p.display()),
            Reason::OutputModified(p) => write!(f, "output modified: {}", p.display()),
            Reason::FailedLastTime(m) => write!(f, "failed last time: {m}"),
        }
    }
}

/// What to do with a target.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Fresh,
    /// Its output for the current key is in the cache.
    Restore,
    Build,
}

/// A target's assessment.
#[derive(Clone, Debug)]
pub struct Assessment {
    pub action: Action,
    pub reasons: Vec<Reason>,
    /// The current key, when all inputs are known.
    pub key: Option<Digest>,
    /// The output digest if known without building (fresh or cached).
    pub output: Option<Digest>,
}

/// Options of a build.
#[derive(Clone, Debug)]
pub struct Options {
    pub jobs: usize,
    pub keep_going: bool,
    pub threads: usize,
    /// Check outputs by rehashing every file instead of trusting unchanged stat fields.
    pub full_check: bool,
}

/// Set by SIGINT/SIGTERM.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Route SIGINT and SIGTERM to [`INTERRUPTED`] so a build can cancel its jobs cleanly.
pub fn install_signal_handlers() {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Key material and freshness of targets against a store.
pub struct Planner<'a> {
    pub graph: &'a Graph,
    pub store: Store,
    pub full_check: bool,
    source_digests: HashMap<PathBuf, Digest>,
}

impl<'a> Planner<'a> {
    pub fn new(graph: &'a Graph, store: Store, full_check: bool) -> Self {
        Planner {
            graph,
            store,
            full_check,
            source_digests: HashMap::new(),
        }
    }

    /// The source files whose digests keys were computed from, with those digests.
    pub fn sources(&self) -> impl Iterator<Item = (&PathBuf, &Digest)> {
        self.source_digests.iter()
    }

    fn source_digest(&mut self, path: &Path, target: &Target, role: &str) -> Result<Digest> {
        if let Some(d) = self.source_digests.get(path) {
            return Ok(*d);
        }
        if !path.is_file() {
            return Err(Error::Build {
                target: target.name.clone(),
                message: format!(
                    "input `{role}` file {} does not exist (declared in {})",
                    path.display(),
                    self.graph.studyfile.display()
                ),
            });
        }
        let d = digest_file(path)?;
        self.source_digests.insert(path.to_path_buf(), d);
        Ok(d)
    }

    /// Key material of target `i`, given the output digests of its input targets. Returns the
    /// roles whose digests are not known yet instead, if any.
    pub fn material(
        &mut self,
        i: usize,
        known: &HashMap<usize, Digest>,
    ) -> Result<std::result::Result<KeyMaterial, Vec<(String, usize)>>> {
        let t = &self.graph.targets[i];
        let mut inputs = BTreeMap::new();
        let mut unknown = Vec::new();
        for inp in &t.inputs {
            match &inp.source {
                InputSource::Target(j) => match known.get(j) {
                    Some(d) => {
                        inputs.insert(inp.role.clone(), *d);
                    }
                    None => unknown.push((inp.role.clone(), *j)),
                },
                InputSource::File(p) => {
                    let d = self.source_digest(p, t, &inp.role)?;
                    inputs.insert(inp.role.clone(), d);
                }
            }
        }
        if !unknown.is_empty() {
            return Ok(Err(unknown));
        }
        Ok(Ok(KeyMaterial {
            recipe: recipe_material(&t.recipe),
            output: output_form(t),
            params: t.params.clone(),
            inputs,
        }))
    }

    /// Decide what to do with target `i` given its key material.
    pub fn assess(&mut self, i: usize, material: &KeyMaterial) -> Result<Assessment> {
        let t = &self.graph.targets[i];
        let key = material.key();
        let dest = self.graph.output_path(i);
        let mut reasons = Vec::new();
        if let Some(rec) = self.store.record(&t.name) {
            if rec.key == key {
                // The record is cloned only when its stat fields need refreshing.
                let mut files: Option<Vec<_>> = None;
                let output = rec.output;
                let problem = match std::fs::symlink_metadata(&dest) {
                    Ok(meta) => Store::check_files(
                        &dest,
                        &meta,
                        rec.material.output == "dir",
                        &rec.files,
                        &mut files,
                        self.full_check,
                    )?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        Some(OutputProblem::Missing(dest.clone()))
                    }
                    Err(e) => return Err(Error::io(&dest, e)),
                };
                match problem {
                    None => {
                        if let Some(files) = files {
                            let rec2 = Record {
                                files,
                                ..rec.clone()
                            };
                            self.store.refresh(&t.name, rec2)?;
                        }
                        return Ok(Assessment {
                            action: Action::Fresh,
                            reasons,
                            key: Some(key),
                            output: Some(output),
                        });
                    }
                    Some(OutputProblem::Missing(p)) => reasons.push(Reason::OutputMissing(p)),
                    Some(OutputProblem::Modified(p)) => reasons.push(Reason::OutputModified(p)),
                }
            } else {
                reasons.extend(diff(&rec.material, material));
            }
        } else {
            reasons.push(Reason::NeverBuilt);
        }
        if let Some(f) = self.store.failure(&t.name) {
            if f.key == key {
                reasons.push(Reason::FailedLastTime(f.message.clone()));
            }
        }
        if self.store.cached(&key) {
            // An unreadable cache manifest means no usable entry; `restore` drops it.
            let output = crate::store::read_manifest(
                &self
                    .store
                    .dir
                    .join("cache")
                    .join(key.hex())
                    .join("manifest.json"),
            )
            .ok()
            .flatten()
            .map(|m| m.output_digest);
            return Ok(Assessment {
                action: Action::Restore,
                reasons,
                key: Some(key),
                output,
            });
        }
        Ok(Assessment {
            action: Action::Build,
            reasons,
            key: Some(key),
            output: None,
        })
    }

    /// Assess every selected target without building anything (dry run, status, explain).
    /// Targets downstream of a rebuild get [`Reason::InputWillRebuild`].
    pub fn plan(&mut self, selected: &[usize]) -> Result<Vec<(usize, Assessment)>> {
        let mut known: HashMap<usize, Digest> = HashMap::new();
        let mut out = Vec::new();
        for &i in selected {
            let a = match self.material(i, &known)? {
                Ok(m) => self.assess(i, &m)?,
                Err(unknown) => {
                    let mut reasons: Vec<Reason> = unknown
                        .into_iter()
                        .map(|(role, j)| Reason::InputWillRebuild {
                            role,
                            target: self.graph.targets[j].name.clone(),
                        })
                        .collect();
                    // Parameter and recipe changes are known even before inputs are.
                    if let Some(rec) = self.store.record(&self.graph.targets[i].name) {
                        let t = &self.graph.targets[i];
                        let partial = KeyMaterial {
                            recipe: recipe_material(&t.recipe),
                            output: output_form(t),
                            params: t.params.clone(),
                            inputs: rec.material.inputs.clone(),
                        };
                        let mut d = diff(&rec.material, &partial);
                        d.append(&mut reasons);
                        reasons = d;
                    } else {
                        reasons = vec![Reason::NeverBuilt];
                    }
                    Assessment {
                        action: Action::Build,
                        reasons,
                        key: None,
                        output: None,
                    }
                }
            };
            if let Some(d) = a.output {
                known.insert(i, d);
            }
            out.push((i, a));
        }
        Ok(out)
    }
}

pub fn recipe_material(r: &Recipe) -> RecipeMaterial {
    match r {
        Recipe::Builtin { name, version } => RecipeMaterial::Builtin {
            name: name.clone(),
            version: *version,
        },
        Recipe::Command { argv, version } => RecipeMaterial::Command {
            argv: argv.clone(),
            version: version.clone(),
        },
    }
}

pub fn output_form(t: &Target) -> String {
    if t.output_is_dir {
        "dir".into()
    } else {
        t.output
            .extension()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// The differences between recorded and current key material, as reasons.
pub fn diff(old: &KeyMaterial, new: &KeyMaterial) -> Vec<Reason> {
    let mut out = Vec::new();
    if old.recipe != new.recipe || old.output != new.output {
        out.push(Reason::RecipeChanged {
            old: old.recipe.to_string(),
            new: new.recipe.to_string(),
        });
    }
    let names: std::collections::BTreeSet<&String> =
        old.params.keys().chain(new.params.keys()).collect();
    for n in names {
        let (a, b) = (old.params.get(n), new.params.get(n));
        if a != b {
            out.push(Reason::ParamChanged {
                name: n.clone(),
                old: a.cloned(),
                new: b.cloned(),
            });
        }
    }
    let roles: std::collections::BTreeSet<&String> =
        old.inputs.keys().chain(new.inputs.keys()).collect();
    for r in roles {
        if old.inputs.get(r) != new.inputs.get(r) {
            out.push(Reason::InputChanged { role: r.clone() });
        }
    }
    if out.is_empty() {
        // Same material but a different key: the key schema changed.
        out.push(Reason::RecipeChanged {
            old: "an older key schema".into(),
            new: format!("key schema {}", crate::key::KEY_SCHEMA),
        });
    }
    out
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
}

/// Path of a target's log file.
pub fn log_path(graph: &Graph, t: &Target) -> PathBuf {
    match &t.condition {
        Some(c) => graph
            .out_dir
            .join(c)
            .join("logs")
            .join(format!("{}.log", t.kind)),
        None => graph
            .out_dir
            .join("logs")
            .join(format!("{}.log", t.name.replace('/', "_"))),
    }
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
    let graph = planner.graph;
    let mut state: HashMap<usize, State> = selected.iter().map(|&i| (i, State::Waiting)).collect();
    let mut known: HashMap<usize, Digest> = HashMap::new();
    let mut queue: Vec<(usize, KeyMaterial, Digest, Vec<Reason>)> = Vec::new();
    let mut running: HashMap<usize, Running> = HashMap::new();
    let mut summary = Summary::default();
    let mut stop = false;
    let t_plan = Instant::now();
    let mut planned = false;
    reporter.start(selected.len());
    let cwd = graph
        .studyfile
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let cwd = std::path::absolute(&cwd).map_err(|e| Error::io(&cwd, e))?;

    loop {
        // Assess every waiting target whose inputs are settled.
        let mut progressed = true;
        while progressed {
            progressed = false;
            for &i in selected {
                if state[&i] != State::Waiting {
                    continue;
                }
                let t = &graph.targets[i];
                let mut blocked = false;
                let mut dead = None;
                for inp in &t.inputs {
                    if let InputSource::Target(j) = inp.source {
                        match state.get(&j) {
                            Some(State::Done(_)) | None => {}
                            Some(State::Failed) | Some(State::Skipped) => {
                                dead = Some(graph.targets[j].name.clone())
                            }
                            _ => blocked = true,
                        }
                    }
                }
                if let Some(dep) = dead {
                    state.insert(i, State::Skipped);
                    summary.skipped += 1;
                    reporter.event("skipped", &t.name, &format!("input {dep} failed"));
                    progressed = true;
                    continue;
                }
                if blocked {
                    continue;
                }
                // Inputs outside the selection are read from the store (they must be fresh).
                for inp in &t.inputs {
                    if let InputSource::Target(j) = inp.source {
                        if !state.contains_key(&j) && !known.contains_key(&j) {
                            if let Some(r) = planner.store.record(&graph.targets[j].name) {
                                known.insert(j, r.output);
                            }
                        }
                    }
                }
                let material = match planner.material(i, &known) {
                    Ok(Ok(m)) => m,
                    Ok(Err(_)) => {
                        return Err(Error::Other(format!(
                            "internal: inputs of {} were not settled",
                            t.name
                        )))
                    }
                    Err(e) => {
                        reporter.fail(&t.name, &e.to_string(), None);
                        stop |= mark_failed(&mut state, &mut summary, opts.keep_going, i);
                        progressed = true;
                        continue;
                    }
                };
                let a = planner.assess(i, &material)?;
                let key = match a.key {
                    Some(k) => k,
                    None => material.key(),
                };
                progressed = true;
                match a.action {
                    Action::Fresh => {
                        let d = a.output.expect("fresh targets have an output digest");
                        known.insert(i, d);
                        state.insert(i, State::Done(d));
                        summary.fresh += 1;
                        reporter.fresh(&t.name);
                    }
                    Action::Restore => {
                        let dest = graph.output_path(i);
                        match planner.store.restore(&key, &dest, &t.name) {
                            // A failed write (disk full, read-only) fails this target only;
                            // the previous output stays in place.
                            Err(e) => {
                                reporter.fail(&t.name, &e.to_string(), None);
                                stop |= mark_failed(&mut state, &mut summary, opts.keep_going, i);
                            }
                            Ok(Some(rec)) => {
                                known.insert(i, rec.output);
                                state.insert(i, State::Done(rec.output));
                                summary.restored += 1;
                                reporter.event(
                                    "restored",
                                    &t.name,
                                    &format!(
                                        "from the cache, nothing executed ({})",
                                        join_reasons(&a.reasons)
                                    ),
                                );
                            }
                            Ok(None) => {
                                state.insert(i, State::Queued);
                                queue.push((i, material, key, a.reasons));
                            }
                        }
                    }
                    Action::Build => {
                        state.insert(i, State::Queued);
                        queue.push((i, material, key, a.reasons));
                    }
                }
            }
        }

        if INTERRUPTED.load(Ordering::SeqCst) && !stop {
            stop = true;
            reporter.line("studymake: interrupted; stopping running jobs");
            executor.cancel_all();
        }

        if !planned {
            planned = true;
            tracing::debug!(
                "scheduler: first assessment pass in {:.1} ms",
                t_plan.elapsed().as_secs_f64() * 1e3
            );
        }
        // Start what we can.
        while !stop && running.len() < opts.jobs.max(1) && !queue.is_empty() {
            let (i, material, key, reasons) = queue.remove(0);
            let t = &graph.targets[i];
            let previous = planner.store.record(&t.name).map(|r| r.output);
            match prepare(
                planner,
                i,
                &material,
                opts,
                &cwd,
                executor.runs_commands_directly(),
            ) {
                Ok((spec, scratch, job)) => {
                    let log = job.log_path.clone();
                    reporter.event("building", &t.name, &join_reasons(&reasons));
                    if let Err(e) = executor.start(job) {
                        reporter.fail(&t.name, &e.to_string(), None);
                        let _ = crate::store::remove_path(&scratch);
                        stop |= mark_failed(&mut state, &mut summary, opts.keep_going, i);
                        continue;
                    }
                    state.insert(i, State::Running);
                    reporter.running(&t.name, true);
                    running.insert(
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
                        },
                    );
                }
                Err(e) => {
                    reporter.fail(&t.name, &e.to_string(), None);
                    stop |= mark_failed(&mut state, &mut summary, opts.keep_going, i);
                }
            }
        }

        if running.is_empty() {
            if stop || queue.is_empty() {
                break;
            }
            continue;
        }

        let Some((i, outcome)) = executor.wait(Duration::from_millis(200))? else {
            continue;
        };
        let Some(run) = running.remove(&i) else {
            continue;
        };
        let t = &graph.targets[i];
        reporter.running(&t.name, false);
        let result = match outcome {
            Outcome::Success => finish(planner, catalog, i, &run),
            Outcome::Failed(why) => Err(Error::Build {
                target: t.name.clone(),
                message: match worker_error(&run.log, &t.name) {
                    Some(e) => format!("{e} (worker {why})"),
                    None => format!("worker failed ({why})"),
                },
            }),
        };
        let _ = crate::store::remove_path(&run.scratch);
        match result {
            Ok(d) => {
                known.insert(i, d);
                state.insert(i, State::Done(d));
                summary.built += 1;
                let secs = run.started.elapsed().as_secs_f64();
                let note = if run.previous == Some(d) {
                    "; output identical to the previous build, dependents stay fresh"
                } else {
                    ""
                };
                reporter.event("built", &t.name, &format!("{secs:.1} s{note}"));
            }
            Err(e) => {
                let msg = e.to_string();
                let _ = planner.store.record_failure(&t.name, run.key, &msg);
                reporter.fail(&t.name, &msg, Some(&run.log));
                stop |= mark_failed(&mut state, &mut summary, opts.keep_going, i);
            }
        }
    }
    // Whatever never started because of a stop counts as skipped.
    for &i in selected {
        if matches!(state[&i], State::Waiting | State::Queued) {
            summary.skipped += 1;
        }
    }
    planner.store.finish()?;
    reporter.finish();
    Ok(summary)
}

/// Record target `i` as failed; whether the build stops (it goes on only with `-k`).
fn mark_failed(
    state: &mut HashMap<usize, State>,
    summary: &mut Summary,
    keep_going: bool,
    i: usize,
) -> bool {
    state.insert(i, State::Failed);
    summary.failed += 1;
    !keep_going
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

/// Write the job spec of target `i` into a fresh scratch directory.
fn prepare(
    planner: &mut Planner,
    i: usize,
    material: &KeyMaterial,
    opts: &Options,
    cwd: &Path,
    direct_commands: bool,
) -> Result<(JobSpec, PathBuf, Job)> {
    let graph = planner.graph;
    let t = &graph.targets[i];
    let scratch = planner.store.scratch(&t.name)?;
    let output = match t.output.file_name() {
        Some(n) => scratch.join(n),
        None => scratch.join("out"),
    };
    let report = scratch.join("report.json");
    let mut inputs = BTreeMap::new();
    for inp in &t.inputs {
        let p = match &inp.source {
            InputSource::Target(j) => graph.output_path(*j),
            InputSource::File(p) => p.clone(),
        };
        inputs.insert(inp.role.clone(), p);
    }
    let recipe = match &t.recipe {
        Recipe::Builtin { name, version } => RecipeRef::Builtin {
            name: name.clone(),
            version: *version,
        },
        Recipe::Command { argv, version } => {
            let mut values: HashMap<String, String> = HashMap::new();
            for (k, v) in &t.params {
                let s = match v {
                    Value::Str(s) => s.clone(),
                    other => other.to_string(),
                };
                values.insert(format!("param.{k}"), s.clone());
                if k == "gridsize" || k == "seed" {
                    values.insert(k.clone(), s);
                }
            }
            for (role, p) in &inputs {
                values.insert(format!("input.{role}"), p.to_string_lossy().into_owned());
            }
            values.insert("output".into(), output.to_string_lossy().into_owned());
            values.insert("report".into(), report.to_string_lossy().into_owned());
            values.insert("target".into(), t.name.clone());
            values.insert("condition".into(), t.condition.clone().unwrap_or_default());
            RecipeRef::Command {
                argv: substitute(argv, &values).map_err(|e| Error::Build {
                    target: t.name.clone(),
                    message: e.to_string(),
                })?,
                version: version.clone(),
            }
        }
    };
    let _ = material;
    let spec = JobSpec {
        schema: JOB_SCHEMA,
        target: t.name.clone(),
        kind: t.kind.clone(),
        recipe,
        params: t.params.clone(),
        inputs,
        output,
        report,
        threads: opts.threads,
    };
    // The spec lives in the job's private scratch, which a crash throws away: no fsync needed.
    let spec_path = scratch.join("job.json");
    if let Err(e) = std::fs::write(
        &spec_path,
        serde_json::to_string_pretty(&spec).expect("job specs serialise"),
    ) {
        // Disk full or read-only: leave no scratch behind for this target.
        let _ = crate::store::remove_path(&scratch);
        return Err(Error::io(&spec_path, e));
    }
    let direct = match (&spec.recipe, direct_commands) {
        (RecipeRef::Command { argv, .. }, true) => Some(DirectCommand {
            argv: argv.clone(),
            env: command_env(&spec),
            header: log_header(&spec),
        }),
        _ => None,
    };
    let job = Job {
        index: i,
        target: t.name.clone(),
        kind: t.kind.clone(),
        spec_path,
        log_path: log_path(graph, t),
        cwd: cwd.to_path_buf(),
        threads: opts.threads,
        direct,
    };
    Ok((spec, scratch, job))
}

/// Check a finished worker's output and report against the declaration, then publish.
fn finish(planner: &mut Planner, catalog: &dyn Catalog, i: usize, run: &Running) -> Result<Digest> {
    let graph = planner.graph;
    let t = &graph.targets[i];
    let out = &run.spec.output;
    let meta = std::fs::symlink_metadata(out).map_err(|_| Error::Build {
        target: t.name.clone(),
        message: format!(
            "the recipe finished but wrote no output at {}",
            out.display()
        ),
    })?;
    if meta.is_dir() != t.output_is_dir || meta.file_type().is_symlink() {
        return Err(Error::Build {
            target: t.name.clone(),
            message: format!(
                "the recipe wrote a {} but a {} was expected at {}",
                if meta.is_dir() { "directory" } else { "file" },
                if t.output_is_dir { "directory" } else { "file" },
                out.display()
            ),
        });
    }
    let report = WorkerReport::load(&run.spec.report)?.unwrap_or_default();
    // A built-in recipe's output must be readable as what it claims to be; an external
    // command's output may be in a format studymake does not know, and then only its report
    // speaks for it.
    let inspected = match (catalog.inspect(&t.kind, out), &t.recipe) {
        (Ok(facts), _) => facts,
        (Err(e), Recipe::Builtin { .. }) => {
            return Err(Error::Build {
                target: t.name.clone(),
                message: format!("its output could not be read back: {e}"),
            })
        }
        (Err(e), Recipe::Command { .. }) => {
            tracing::debug!(
                "{}: output not inspectable ({e}); relying on its report",
                t.name
            );
            Params::new()
        }
    };
    check_reported(t, &report.params, &inspected)?;
    let (digest, files) = Store::hash_output(out)?;
    let manifest = Manifest {
        schema: STATE_SCHEMA,
        studymake: env!("CARGO_PKG_VERSION").into(),
        target: t.name.clone(),
        kind: t.kind.clone(),
        condition: t.condition.clone(),
        key: run.key,
        material: run.material.clone(),
        input_sources: t
            .inputs
            .iter()
            .map(|inp| {
                let s = match &inp.source {
                    InputSource::Target(j) => graph.targets[*j].name.clone(),
                    InputSource::File(p) => p.display().to_string(),
                };
                (inp.role.clone(), s)
            })
            .collect(),
        reported: report.params,
        inspected,
        output_path: t.output.to_string_lossy().into_owned(),
        output_digest: digest,
        files: crate::store::file_entries(&files),
        started_unix: run.started_unix,
        seconds: run.started.elapsed().as_secs_f64(),
    };
    let rec = planner
        .store
        .publish(out, &graph.output_path(i), &manifest)?;
    let _ = &run.log;
    Ok(rec.output)
}

/// Compare what a worker reports (and what its output shows) with the declared parameters.
/// Condition targets must confirm their gridsize one way or the other.
pub fn check_reported(t: &Target, reported: &Params, inspected: &Params) -> Result<()> {
    let mismatch = |param: &str, declared: &Value, built: &Value, source: &str| Error::Mismatch {
        target: t.name.clone(),
        param: param.to_string(),
        declared: declared.to_string(),
        built: if source.is_empty() {
            built.to_string()
        } else {
            format!("{built} ({source})")
        },
    };
    let mut gridsize_confirmed = false;
    for (k, v) in reported {
        if let Some(d) = t.params.get(k) {
            if !d.same_as(v) {
                return Err(mismatch(k, d, v, "reported by the recipe"));
            }
            if k == "gridsize" {
                gridsize_confirmed = true;
            }
        }
    }
    for (k, v) in inspected {
        let p = k.rsplit('.').next().unwrap_or(k);
        if let Some(d) = t.params.get(p) {
            if !d.same_as(v) {
                let source = if k.contains('.') {
                    format!("read from the output: {k}")
                } else {
                    "read from the output".to_string()
                };
                return Err(mismatch(p, d, v, &source));
            }
            if p == "gridsize" {
                gridsize_confirmed = true;
            }
        }
    }
    if t.params.contains_key("gridsize") && !gridsize_confirmed {
        return Err(Error::Build {
            target: t.name.clone(),
            message: "the recipe did not report the gridsize it used, and it could not be read \
                      from its output; write {\"params\": {\"gridsize\": N}} to the file named by \
                      {report} or $STUDYMAKE_REPORT"
                .into(),
        });
    }
    Ok(())
}

/// The error a worker printed last, without its prefix, if any.
fn worker_error(log: &Path, target: &str) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with("studymake: error: "))?;
    let msg = line.trim_start_matches("studymake: error: ");
    // The worker names its target too; keep one.
    let msg = msg.strip_prefix(&format!("{target}: ")).unwrap_or(msg);
    Some(msg.to_string())
}

/// Print a failure's log tail (used by reporters).
pub fn failure_tail(log: &Path) -> String {
    tail(log, 12)
}
