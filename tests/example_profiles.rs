//! The profiles of `Studyfile.example` as README.md and bench/README.md describe them: the full
//! study trains three seeds per condition, `quick` one small model, and `reference` one model per
//! condition trained longer on exactly the full study's datasets (so it reuses them).

use std::collections::BTreeMap;
use std::path::Path;
use studymake_engine::catalog::Catalog;
use studymake_engine::graph::Graph;
use studymake_engine::params::Value;
use studymake_engine::studyfile::Studyfile;
use studymake_study::Builtins;

/// Target name -> (its `epochs` parameter if any, its parameters as text) under `profile`.
fn expand(profile: Option<&str>) -> BTreeMap<String, (Option<i64>, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("Studyfile.example");
    let text = std::fs::read_to_string(&path).unwrap();
    let catalog = Builtins::new();
    let sf = Studyfile::parse(&path, text, catalog.shape()).unwrap();
    let g = Graph::from_studyfile(&sf, profile, &catalog).unwrap();
    g.targets
        .iter()
        .map(|t| {
            let epochs = t.params.get("epochs").and_then(Value::as_i64);
            (t.name.clone(), (epochs, format!("{:?}", t.params)))
        })
        .collect()
}

fn models(g: &BTreeMap<String, (Option<i64>, String)>) -> Vec<(&str, Option<i64>)> {
    g.iter()
        .filter(|(n, _)| n.ends_with("/model"))
        .map(|(n, (e, _))| (n.as_str(), *e))
        .collect()
}

#[test]
fn the_example_profiles_train_what_the_docs_say() {
    let full = expand(None);
    let quick = expand(Some("quick"));
    let reference = expand(Some("reference"));

    let m = models(&full);
    assert_eq!(m.len(), 12, "three seeds of four conditions: {m:?}");
    assert!(m.iter().all(|(_, e)| *e == Some(40)), "{m:?}");
    assert!(full.contains_key("gs2_hybrid/s1/model"));

    for (g, epochs) in [(&quick, 5), (&reference, 100)] {
        let m = models(g);
        assert_eq!(
            m.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            [
                "gs1_hybrid/model",
                "gs1_idealized/model",
                "gs2_hybrid/model",
                "gs2_idealized/model"
            ]
        );
        assert!(m.iter().all(|(_, e)| *e == Some(epochs)), "{m:?}");
    }

    // The reference profile changes training only: every dataset, probe and object has the full
    // profile's parameters, hence its keys.
    for (name, (_, params)) in &reference {
        if name.ends_with("_data") || name.starts_with("probes/") || name.starts_with("objects/") {
            assert_eq!(Some(params), full.get(name).map(|(_, p)| p), "{name}");
        }
    }
    assert!(reference.contains_key("gs2_hybrid/test_data"));
}
