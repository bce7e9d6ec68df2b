//! `studymake [TARGET...]`: build. Take the study's lock; end at once when the no-op stamp
//! proves nothing changed; else expand the graph (while the state log is replayed on another
//! core), build with the chosen executor, and write a new stamp when every target is fresh.

use super::{cores, executor_kind, load_studyfile, Settings, SLURM_DEFAULT_JOBS};
use crate::build::{self as scheduler, Options};
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::executor::slurm::{self as slurm_executor, SlurmExecutor};
use crate::executor::{Executor, LocalExecutor};
use crate::freshness::Planner;
use crate::graph::Graph;
use crate::lock::StudyLock;
use crate::progress::Reporter;
use crate::store::Store;
use std::path::{Path, PathBuf};

/// `studymake [TARGET...]`: take the study's lock, end at once when the no-op stamp proves
/// nothing changed, else expand the graph and build.
pub fn build(g: &Settings, catalog: &dyn Catalog, targets: &[String]) -> Result<i32> {
    let t0 = std::time::Instant::now();
    let sf = load_studyfile(g, catalog)?;
    let out_dir = Graph::out_dir_of(&sf)?;
    std::fs::create_dir_all(&out_dir).map_err(|e| Error::io(&out_dir, e))?;
    let state_dir = out_dir.join(".studymake");
    let lock = StudyLock::acquire(&state_dir, g.wait)?;
    let studyfile = std::path::absolute(&sf.path).map_err(|e| Error::io(&sf.path, e))?;
    let context = crate::stamp::context(
        catalog,
        &studyfile,
        sf.source.as_bytes(),
        g.profile.as_deref(),
        targets,
    );
    if let Some(n) = crate::stamp::check(&state_dir, &context) {
        tracing::debug!(
            "stamp: nothing changed, checked in {:.1} ms",
            t0.elapsed().as_secs_f64() * 1e3
        );
        println!("studymake: nothing to do: all {n} targets are fresh");
        return Ok(0);
    }
    // Replay the state log on another core while the graph is expanded.
    let (graph, store) = std::thread::scope(|scope| {
        let store = scope.spawn(|| Store::open(&out_dir));
        let graph = Graph::from_studyfile(&sf, g.profile.as_deref(), catalog);
        tracing::debug!(
            "graph: expanded in {:.1} ms",
            t0.elapsed().as_secs_f64() * 1e3
        );
        let store = store
            .join()
            .unwrap_or_else(|_| Err(Error::Other("internal: the state reader panicked".into())));
        tracing::debug!(
            "state: opened at {:.1} ms",
            t0.elapsed().as_secs_f64() * 1e3
        );
        (graph, store)
    });
    let graph = graph?;
    let result = run(&graph, catalog, g, targets, lock, store?, &context);
    // Freeing thousands of targets one by one is work the process exit does for free.
    std::mem::forget(graph);
    result
}

fn run(
    graph: &Graph,
    catalog: &dyn Catalog,
    g: &Settings,
    targets: &[String],
    _lock: StudyLock,
    store: Store,
    context: &crate::key::Digest,
) -> Result<i32> {
    let selected = graph.select(targets)?;
    let reclaimed = store.reclaim_scratch()?;
    if reclaimed > 0 {
        println!(
            "studymake: reclaimed {reclaimed} scratch director{} of an interrupted run",
            if reclaimed == 1 { "y" } else { "ies" }
        );
    }
    // Remembered for status/explain/verify; rewritten (and fsynced) only when it changes.
    let profile_path = store.dir.join("profile");
    let profile = graph.profile.clone().unwrap_or_default();
    if std::fs::read_to_string(&profile_path).ok().as_deref() != Some(profile.as_str()) {
        crate::store::write_atomic(&profile_path, profile.as_bytes())?;
    }
    crate::sys::install_signal_handlers();
    let slurm = executor_kind(graph, g)? == "slurm";
    let mut executor: Box<dyn Executor> = if slurm {
        Box::new(SlurmExecutor::new(
            &graph.studyfile_dir()?,
            slurm_executor::settings_from(graph.executor.as_ref(), &graph.shape.all_kinds())?,
            slurm_executor::job_prefix(&graph.name, &graph.out_dir),
        )?)
    } else {
        Box::new(LocalExecutor::new())
    };
    let opts = Options {
        jobs: g
            .jobs
            .unwrap_or_else(|| if slurm { SLURM_DEFAULT_JOBS } else { cores() })
            .max(1),
        keep_going: g.keep_going,
        threads: cores(),
        full_check: false,
    };
    let mut planner = Planner::new(graph, store, false);
    let mut reporter = Reporter::new(g.verbose);
    let s = scheduler::build(
        &mut planner,
        catalog,
        executor.as_mut(),
        &selected,
        &opts,
        &mut reporter,
    )?;
    if crate::sys::interrupted() {
        return Err(Error::Other(
            "interrupted; rerun to finish the build".into(),
        ));
    }
    let total = selected.len();
    if s.failed == 0 {
        // The stamp is a shortcut for the next run: a build that did its work does not fail
        // over it.
        if let Err(e) = write_stamp(&planner, &selected, context) {
            eprintln!("studymake: warning: {e}; the next run does the full check");
        }
    }
    // As for the graph: the process exit frees the replayed state at no cost.
    std::mem::forget(planner);
    if s.failed > 0 {
        return Err(Error::BuildFailed {
            failed: s.failed,
            skipped: s.skipped,
        });
    }
    if s.built == 0 && s.restored == 0 {
        println!("studymake: nothing to do: all {total} targets are fresh");
    } else {
        println!(
            "studymake: {total} targets: {} built, {} restored from cache, {} fresh",
            s.built, s.restored, s.fresh
        );
    }
    Ok(0)
}

/// After a build that left every selected target fresh: the stamp that lets the next no-op run
/// end without the full check (see `stamp.rs`). It vouches with the records' stats, the ones the
/// full check compares, and for source files with stats taken before re-reading them.
fn write_stamp(planner: &Planner, selected: &[usize], context: &crate::key::Digest) -> Result<()> {
    let graph = planner.graph;
    let state_dir = planner.store.dir.clone();
    let mut paths = Vec::new();
    for &i in selected {
        let t = &graph.targets[i];
        let Some(rec) = planner.store.record(&t.name) else {
            return crate::stamp::remove(&state_dir);
        };
        // The manifest too: a deleted or rewritten one is repaired by the full check.
        let manifest = planner.store.manifest_path(&t.name);
        match crate::store::stat(&manifest) {
            Ok(st) => paths.push((manifest, st)),
            Err(_) => return crate::stamp::remove(&state_dir),
        }
        let dest = graph.output_path(i);
        let mut dirs = std::collections::BTreeSet::new();
        for f in &rec.files {
            let p = if f.rel.is_empty() {
                dest.clone()
            } else {
                dest.join(&f.rel)
            };
            paths.push((p, (f.size, f.mtime_ns, f.ino)));
            // Every directory of a directory output: its mtime moves when entries come or go.
            let mut rel = Path::new(&f.rel).parent();
            while let Some(r) = rel {
                if !dirs.insert(r.to_path_buf()) {
                    break;
                }
                rel = r.parent();
            }
        }
        if t.output_is_dir {
            dirs.insert(PathBuf::new());
        }
        for d in dirs {
            let p = dest.join(&d);
            match crate::store::stat(&p) {
                Ok(st) => paths.push((p, st)),
                Err(_) => return crate::stamp::remove(&state_dir),
            }
        }
    }
    for (p, d) in planner.sources() {
        let st = crate::store::stat(p);
        match (st, crate::key::digest_file(p)) {
            (Ok(st), Ok(now)) if now == *d => paths.push((p.clone(), st)),
            _ => return crate::stamp::remove(&state_dir),
        }
    }
    crate::stamp::write(&state_dir, context, selected.len(), paths)
}
