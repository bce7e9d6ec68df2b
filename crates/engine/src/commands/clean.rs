//! `studymake clean [TARGET...]`: remove outputs (all, or the named targets and nothing else)
//! and forget their records; the cache keeps them unless `--cache`.

use super::{load, Settings};
use crate::build::log_path;
use crate::catalog::Catalog;
use crate::error::Result;
use crate::lock::StudyLock;
use crate::store::Store;
use std::path::Path;

/// Whether every component of `path` below `root` is a real directory (no symlink escapes).
fn inside_study(root: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(root) else {
        return false;
    };
    let mut cur = root.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for (k, c) in comps.iter().enumerate() {
        if !matches!(c, std::path::Component::Normal(_)) {
            return false;
        }
        cur.push(c);
        if k + 1 < comps.len() {
            match std::fs::symlink_metadata(&cur) {
                Ok(m) if m.file_type().is_symlink() => return false,
                _ => {}
            }
        }
    }
    true
}

/// `studymake clean`.
pub fn clean(g: &Settings, catalog: &dyn Catalog, targets: &[String], cache: bool) -> Result<i32> {
    let graph = &load(g, catalog, g.profile.clone())?;
    if !graph.out_dir.exists() {
        println!("studymake: nothing to clean");
        return Ok(0);
    }
    let _lock = StudyLock::acquire(&graph.out_dir.join(".studymake"), g.wait)?;
    let mut store = Store::open(&graph.out_dir)?;
    let chosen: Vec<usize> = if targets.is_empty() {
        graph.order.clone()
    } else {
        // The named targets only, not what they depend on.
        let mut v = Vec::new();
        for name in targets {
            let sel = graph.select(std::slice::from_ref(name))?;
            let closure_root: Vec<usize> = sel
                .into_iter()
                .filter(|i| {
                    let t = &graph.targets[*i];
                    name == "all"
                        || t.name == *name
                        || t.condition.as_deref() == Some(name.as_str())
                        || t.kind == *name
                })
                .collect();
            v.extend(closure_root);
        }
        v
    };
    let mut removed = 0;
    for i in chosen {
        let t = &graph.targets[i];
        let p = graph.output_path(i);
        if !inside_study(&graph.out_dir, &p) {
            eprintln!(
                "studymake: not removing {} (it is not inside the study directory)",
                p.display()
            );
            continue;
        }
        if std::fs::symlink_metadata(&p).is_ok() {
            crate::store::remove_path(&p)?;
            removed += 1;
        }
        let log = log_path(graph, t);
        if inside_study(&graph.out_dir, &log) {
            crate::store::remove_path(&log)?;
        }
        store.forget(&t.name)?;
    }
    store.compact()?;
    if cache {
        store.clear_cache()?;
    }
    println!(
        "studymake: removed {removed} output{}{}",
        if removed == 1 { "" } else { "s" },
        if cache {
            " and the cache"
        } else {
            " (the cache keeps them: a rebuild restores them; --cache drops it)"
        }
    );
    Ok(0)
}
