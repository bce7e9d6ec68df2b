//! `studymake clean [TARGET...]`: remove outputs (all, or the named targets and nothing else)
//! and forget their records; the cache keeps them unless `--cache`.

use super::{load, Settings};
use crate::build::log_path;
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::lock::StudyLock;
use crate::store::{confined, Store};
use std::path::{Path, PathBuf};

/// Remove exactly the files a target's record lists from its output `p` (`""` for a file
/// output), then the directories that became empty; anything else is kept and added to `kept`.
/// Whether anything was removed.
fn remove_recorded(p: &Path, files: &[String], kept: &mut Vec<PathBuf>) -> Result<bool> {
    let meta = std::fs::symlink_metadata(p).map_err(|e| Error::io(p, e))?;
    if !meta.is_dir() {
        if files.iter().any(|f| f.is_empty()) {
            crate::store::remove_path(p)?;
            return Ok(true);
        }
        kept.push(p.to_path_buf());
        return Ok(false);
    }
    let mut any = false;
    for rel in files.iter().filter(|f| !f.is_empty()) {
        let f = p.join(rel);
        match std::fs::remove_file(&f) {
            Ok(()) => any = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&f, e)),
        }
    }
    // Deepest first: a directory left empty goes, one with a file studymake did not write stays.
    fn prune(dir: &Path, kept: &mut Vec<PathBuf>) -> Result<()> {
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        for e in entries {
            let e = e.map_err(|e| Error::io(dir, e))?;
            let path = e.path();
            match e.file_type() {
                Ok(ft) if ft.is_dir() => prune(&path, kept)?,
                _ => kept.push(path),
            }
        }
        match std::fs::remove_dir(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => Ok(()),
            Err(e) => Err(Error::io(dir, e)),
        }
    }
    prune(p, kept)?;
    Ok(any || !p.exists())
}

/// `studymake clean`.
pub fn clean(g: &Settings, catalog: &dyn Catalog, targets: &[String], cache: bool) -> Result<i32> {
    let graph = &load(g, catalog, g.profile.clone())?;
    if !graph.out_dir.exists() {
        println!("studymake: nothing to clean");
        return Ok(0);
    }
    let _lock = StudyLock::acquire(&graph.out_dir.join(".studymake"), g.wait)?;
    let mut store = match Store::open(&graph.out_dir) {
        Ok(s) => s,
        // Dropping the cache needs no old state: an unreadable log is set aside, not obeyed.
        Err(Error::State { path, message }) if cache && path.ends_with("state.log") => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let aside = path.with_file_name(format!("state.log.unreadable-{now}"));
            std::fs::rename(&path, &aside).map_err(|e| Error::io(&path, e))?;
            eprintln!(
                "studymake: {} was unreadable ({message}); set aside as {}",
                path.display(),
                aside.display()
            );
            Store::open(&graph.out_dir)?
        }
        Err(e) => return Err(e),
    };
    let chosen: Vec<usize> = if targets.is_empty() {
        graph.order.clone()
    } else {
        // The named targets only, not what they depend on.
        let wanted = graph.matches(targets)?;
        graph
            .order
            .iter()
            .copied()
            .filter(|i| wanted.contains(i))
            .collect()
    };
    let mut removed = 0;
    let mut kept: Vec<PathBuf> = Vec::new();
    let mut kept_outputs = 0;
    for i in chosen {
        let t = &graph.targets[i];
        let p = graph.output_path(i);
        if let Err(why) = confined(&graph.out_dir, &p) {
            eprintln!("studymake: not removing {}: {why}", p.display());
            continue;
        }
        if std::fs::symlink_metadata(&p).is_ok() {
            match store.record(&t.name) {
                Some(rec) => {
                    let files: Vec<String> = rec.files.iter().map(|f| f.rel.clone()).collect();
                    if remove_recorded(&p, &files, &mut kept)? {
                        removed += 1;
                    }
                }
                None => {
                    eprintln!("studymake: kept {} (no record of building it)", p.display());
                    kept_outputs += 1;
                }
            }
        }
        let log = log_path(graph, t);
        if confined(&graph.out_dir, &log).is_ok() {
            crate::store::remove_path(&log)?;
        }
        store.forget(&t.name)?;
    }
    store.compact()?;
    if cache {
        store.clear_cache()?;
    }
    for k in &kept {
        eprintln!(
            "studymake: kept {} (studymake did not write it)",
            k.display()
        );
    }
    let n = kept.len() + kept_outputs;
    println!(
        "studymake: removed {removed} output{}{}{}",
        if removed == 1 { "" } else { "s" },
        if cache {
            " and the cache"
        } else {
            " (the cache keeps them: a rebuild restores them; --cache drops it)"
        },
        match n {
            0 => String::new(),
            1 => "; kept 1 file studymake did not write".to_string(),
            n => format!("; kept {n} files studymake did not write"),
        }
    );
    Ok(0)
}
