//! Fuzz target: Studyfile text -> parse -> graph expansion (with and without a profile).
//! Any input must give a `Graph` or an `Error`; a panic, an abort or a hang is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use studymake_engine::catalog::Catalog;
use studymake_engine::graph::Graph;
use studymake_engine::studyfile::Studyfile;
use studymake_study::Builtins;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let catalog = Builtins::new();
    let Ok(sf) = Studyfile::parse(
        Path::new("/nonexistent/fuzz/Studyfile"),
        text.to_string(),
        catalog.shape(),
    ) else {
        return;
    };
    for profile in [None, Some("quick")] {
        if let Ok(g) = Graph::from_studyfile(&sf, profile, &catalog) {
            // Touch what the engine derives from a graph: every output path and its key material.
            for i in 0..g.targets.len() {
                let _ = g.output_path(i);
            }
        }
    }
});
