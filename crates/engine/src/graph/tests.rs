//! The expansion on the made-up study of [`crate::testing`]: Studyfiles written inline.

use super::*;
use crate::testing::{graph, studyfile_text};

const MATRIX: &str = "[matrix]\nlevel = [1, 2]\nsource = [\"a\", \"b\"]\n";

fn err(text: &str) -> String {
    graph(text).unwrap_err().to_string()
}

#[test]
fn the_matrix_expands_every_combination_with_its_kinds_and_a_summary() {
    let g = graph(&studyfile_text(MATRIX)).unwrap();
    let names: Vec<&str> = g.conditions.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["l1_a", "l1_b", "l2_a", "l2_b"]);
    let c = &g.conditions[2];
    assert_eq!(c.value("level"), Some(&Value::Int(2)));
    assert_eq!(c.value("source"), Some(&Value::Str("a".into())));
    let t = &g.targets[g.find("l2_a/fit").unwrap()];
    assert_eq!(t.kind, "fit");
    assert_eq!(t.condition.as_deref(), Some("l2_a"));
    assert_eq!(t.output, PathBuf::from("l2_a/fitted"));
    assert!(t.output_is_dir);
    // The structural value from the condition, `seed` read as `fit_seed`, `steps` from [params].
    let want: Params = [
        ("level", Value::Int(2)),
        ("seed", Value::Int(3)),
        ("size", Value::Int(8)),
        ("steps", Value::Int(10)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(t.params, want);
    let prep = g.find("l2_a/prepared").unwrap();
    assert_eq!(
        t.inputs[0].source,
        InputSource::Target(prep),
        "a fit reads its condition's prepared data"
    );
    let src = g.find("sources/a").unwrap();
    assert_eq!(g.targets[prep].inputs[0].source, InputSource::Target(src));
    assert_eq!(g.targets[src].output, PathBuf::from("a_source.txt"));
    // Every target comes after its inputs.
    let pos = |i: usize| g.order.iter().position(|&j| j == i).unwrap();
    for (i, t) in g.targets.iter().enumerate() {
        for inp in &t.inputs {
            if let InputSource::Target(j) = inp.source {
                assert!(pos(j) < pos(i), "{} before {}", g.targets[j].name, t.name);
            }
        }
    }
}

#[test]
fn the_summary_reads_every_condition_and_section_and_gets_the_axis_values() {
    let g = graph(&studyfile_text(MATRIX)).unwrap();
    let s = &g.targets[g.find("summary").unwrap()];
    let roles: Vec<&str> = s.inputs.iter().map(|i| i.role.as_str()).collect();
    assert_eq!(
        roles,
        ["fit.l1_a", "fit.l1_b", "fit.l2_a", "fit.l2_b", "source.a", "source.b"]
    );
    assert_eq!(s.params.get("level.l2_b"), Some(&Value::Int(2)));
    assert_eq!(s.params.len(), 4);
    let off = graph(&studyfile_text(&format!(
        "{MATRIX}\n[recipes]\nsummary = false\n"
    )))
    .unwrap();
    assert!(off.find("summary").is_none());
}

#[test]
fn a_structural_parameter_is_set_by_the_matrix_only() {
    let e = err(&studyfile_text(MATRIX).replace("steps = 10", "steps = 10\nlevel = 2"));
    assert!(
        e.contains("[params]: `level` is set by [matrix] or a condition, not here"),
        "{e}"
    );
    let e = err(&studyfile_text(&format!(
        "{MATRIX}\n[conditions.l1_a]\nlevel = 3\n"
    )));
    assert!(
        e.contains("`level` of a matrix condition is set by [matrix]"),
        "{e}"
    );
    let e = err(&studyfile_text(
        "[matrix]\nlevel = [1, 9]\nsource = [\"a\"]\n",
    ));
    assert!(
        e.contains("[matrix]: `level` must be an integer from 1 to 4, found 9"),
        "{e}"
    );
    assert!(
        e.starts_with("Studyfile:16:13:"),
        "the value's own position: {e}"
    );
}

#[test]
fn conditions_outside_the_matrix_set_every_axis() {
    // A condition's own value of a parameter every kind reads (`size`, which the matrix
    // conditions read from [params]).
    let text = studyfile_text(&format!(
        "{MATRIX}[conditions.extra]\nlevel = 4\nsource = \"b\"\nsize = 2\n"
    ))
    .replace("steps = 10", "steps = 10\nsize = 8");
    let g = graph(&text).unwrap();
    assert_eq!(g.conditions.len(), 5);
    let t = &g.targets[g.find("extra/fit").unwrap()];
    assert_eq!(t.params.get("size"), Some(&Value::Int(2)));
    assert_eq!(t.params.get("level"), Some(&Value::Int(4)));
    let e = err(&studyfile_text("[conditions.extra]\nlevel = 4\n"));
    assert!(
        e.contains(
            "[conditions.extra] is not a matrix condition, so it must set `level` and `source`"
        ),
        "{e}"
    );
    let e = err(&studyfile_text(
        "[conditions.extra]\nlevel = 4\nsource = \"c\"\n",
    ));
    assert!(
        e.contains("unknown source `c` (did you mean `a`?); declared: a, b"),
        "{e}"
    );
}

#[test]
fn unused_and_misspelt_parameters_are_refused() {
    let e = err(&studyfile_text(MATRIX).replace("steps = 10", "steps = 10\nstepz = 1"));
    assert!(
        e.contains("[params]: no recipe reads parameter `stepz` (did you mean `steps`?)"),
        "{e}"
    );
    let e = err(&studyfile_text(MATRIX).replace("steps = 10", "steps = 0"));
    assert!(
        e.contains("`steps` must be a positive integer, found 0"),
        "{e}"
    );
    let e = err(&studyfile_text(MATRIX).replace("fit_seed = 3\n", ""));
    assert!(
        e.contains("l1_a/fit needs parameter `fit_seed` (its `seed`), which is not set"),
        "{e}"
    );
}

#[test]
fn command_recipes_read_their_placeholders_and_the_condition_parameters() {
    let cmd = "[recipes.fit]\ncommand = [\"fit\", \"{level}\", \"{param.steps}\", \"{input.prepared}\", \"{output}\"]\n";
    let g = graph(&studyfile_text(&format!("{MATRIX}{cmd}"))).unwrap();
    let t = &g.targets[g.find("l1_b/fit").unwrap()];
    let keys: Vec<&str> = t.params.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["level", "seed", "steps"],
        "{{seed}} is read by every condition command"
    );
    assert!(matches!(t.recipe, Recipe::Command { .. }));
    assert!(t.output_is_dir, "the kind's default output");
    let roles = |t: &Target| -> Vec<String> { t.inputs.iter().map(|i| i.role.clone()).collect() };
    assert_eq!(roles(t), ["prepared"], "an optional input it does not name");
    // A command naming the kind's optional input gets it (and so has it in its key); the
    // built-in recipe never does.
    let g = graph(&studyfile_text(&format!(
        "{MATRIX}{}",
        cmd.replace("{output}", "{input.source}\", \"{output}")
    )))
    .unwrap();
    let t = &g.targets[g.find("l1_b/fit").unwrap()];
    assert_eq!(roles(t), ["prepared", "source"]);
    assert_eq!(
        t.inputs[1].source,
        InputSource::Target(g.find("sources/b").unwrap())
    );
    let plain = graph(&studyfile_text(MATRIX)).unwrap();
    assert_eq!(
        roles(&plain.targets[plain.find("l1_b/fit").unwrap()]),
        ["prepared"]
    );
    let e = err(&studyfile_text(&format!(
        "{MATRIX}{}",
        cmd.replace("{param.steps}", "{lvl}")
    )));
    assert!(
        e.contains("unknown placeholder `{lvl}`; use {level}, {seed}, {param.NAME}"),
        "{e}"
    );
    let e = err(&studyfile_text(MATRIX).replace(
        "[sources.a]\nrecipe = \"constant\"",
        "[sources.a]\ncommand = [\"make\", \"{level}\", \"{output}\"]",
    ));
    assert!(
        e.contains("`{level}` is only available to condition targets"),
        "{e}"
    );
}

#[test]
fn cycles_and_unknown_kinds_are_named() {
    let e = err(&studyfile_text(MATRIX).replace(
        "[sources.a]\nrecipe = \"constant\"",
        "[sources.a]\ncommand = [\"cp\", \"{input.x}\", \"{output}\"]\ninputs = { x = \"a\" }",
    ));
    assert!(
        e.contains("dependency cycle: sources/a -> sources/a"),
        "{e}"
    );
    let e = err(&studyfile_text(&format!(
        "{MATRIX}[recipes]\nfitt = \"fit\"\n"
    )));
    assert!(
        e.contains("[recipes]: unknown target kind `fitt` (did you mean `fit`?); kinds: prepared, fit, summary"),
        "{e}"
    );
}

#[test]
fn selection_closes_over_inputs() {
    let g = graph(&studyfile_text(MATRIX)).unwrap();
    let names = |sel: &[&str]| -> Vec<String> {
        let sel: Vec<String> = sel.iter().map(|s| s.to_string()).collect();
        g.select(&sel)
            .unwrap()
            .into_iter()
            .map(|i| g.targets[i].name.clone())
            .collect()
    };
    assert_eq!(
        names(&["l1_b/fit"]),
        ["sources/b", "l1_b/prepared", "l1_b/fit"]
    );
    assert_eq!(names(&["fit"]).len(), 2 + 4 + 4);
    assert_eq!(names(&["sources"]), ["sources/a", "sources/b"]);
    let e = g.select(&["l1_c".to_string()]).unwrap_err().to_string();
    assert!(e.contains("(did you mean `l1_a`?)"), "{e}");
}

#[test]
fn a_listed_replicate_parameter_gives_one_target_per_value_sharing_the_rest() {
    let text = studyfile_text(MATRIX).replace("fit_seed = 3", "fit_seed = [3, 11]");
    let g = graph(&text).unwrap();
    // Two fits per condition, one prepared; each fit reads its own seed and the shared data.
    assert!(g.find("l1_a/fit").is_none());
    let prep = g.find("l1_a/prepared").unwrap();
    for seed in [3, 11] {
        let t = &g.targets[g.find(&format!("l1_a/s{seed}/fit")).unwrap()];
        assert_eq!(t.params.get("seed"), Some(&Value::Int(seed)));
        assert_eq!(t.output, PathBuf::from(format!("l1_a/s{seed}/fitted")));
        assert_eq!(t.condition.as_deref(), Some("l1_a"));
        assert_eq!(t.inputs[0].source, InputSource::Target(prep));
    }
    assert_eq!(g.targets.len(), 2 + 4 * (1 + 2) + 1);
    // The summary reads every replicate.
    let s = &g.targets[g.find("summary").unwrap()];
    let roles: Vec<&str> = s.inputs.iter().map(|i| i.role.as_str()).collect();
    assert_eq!(&roles[..3], ["fit.l1_a/s3", "fit.l1_a/s11", "fit.l1_b/s3"]);
    // Selectors: a condition's kind over its replicates, one replicate, one target.
    let names = |sel: &str| -> Vec<String> {
        g.matches(&[sel.to_string()])
            .unwrap()
            .into_iter()
            .map(|i| g.targets[i].name.clone())
            .collect()
    };
    assert_eq!(names("l2_b/fit"), ["l2_b/s3/fit", "l2_b/s11/fit"]);
    assert_eq!(names("l2_b/s11"), ["l2_b/s11/fit"]);
    assert_eq!(names("l2_b/s11/fit"), ["l2_b/s11/fit"]);
    // A single value keeps the plain names; a condition may ask for its own replicates.
    let one = graph(&format!(
        "{}[conditions.l1_a]\nfit_seed = [5, 6]\n",
        studyfile_text(MATRIX)
    ))
    .unwrap();
    assert!(one.find("l1_b/fit").is_some());
    assert!(one.find("l1_a/s5/fit").is_some() && one.find("l1_a/s6/fit").is_some());
    assert!(one.find("l1_a/fit").is_none());
}

#[test]
fn replicate_lists_must_be_distinct_integers() {
    let with =
        |v: &str| err(&studyfile_text(MATRIX).replace("fit_seed = 3", &format!("fit_seed = {v}")));
    let e = with("[3, 3]");
    assert!(
        e.contains("[params]: `fit_seed` lists 3 twice; replicates must differ"),
        "{e}"
    );
    let e = with("[]");
    assert!(e.contains("[params]: `fit_seed` lists no value"), "{e}");
    let e = with("[3, \"x\"]");
    assert!(
        e.contains("`fit_seed` must be an integer or a list of integers (one replicate each), found a list holding a string"),
        "{e}"
    );
}

#[test]
fn a_condition_sets_a_parameter_only_some_of_its_kinds_read() {
    // `steps` is the fit's alone; `prepared` does not read it and must not refuse it.
    let g = graph(&format!(
        "{}[conditions.l1_a]\nsteps = 20\n",
        studyfile_text(MATRIX)
    ))
    .unwrap();
    let fit = &g.targets[g.find("l1_a/fit").unwrap()];
    assert_eq!(fit.params.get("steps"), Some(&Value::Int(20)));
    let other = &g.targets[g.find("l1_b/fit").unwrap()];
    assert_eq!(other.params.get("steps"), Some(&Value::Int(10)));
    let e = err(&format!(
        "{}[conditions.l1_a]\nstep = 20\n",
        studyfile_text(MATRIX)
    ));
    assert!(
        e.contains("[conditions.l1_a]: no recipe reads parameter `step` (did you mean `steps`?)"),
        "{e}"
    );
}

const CHECK: &str = "\n[targets.check_a]\ncommand = [\"check\", \"{input.prepared}\", \"{param.depth}\", \"{output}\"]\nversion = \"c-1\"\ninputs = [\"prepared\", \"source\"]\nparams = { depth = 3, seed = 5 }\nkind = \"check\"\n";

#[test]
fn a_declared_target_is_a_kind_of_every_condition_read_by_its_class() {
    let g = graph(&studyfile_text(&format!("{MATRIX}{CHECK}"))).unwrap();
    let i = g.find("l2_b/check_a").unwrap();
    let t = &g.targets[i];
    assert_eq!(
        (t.kind.as_str(), t.condition.as_deref()),
        ("check_a", Some("l2_b"))
    );
    assert_eq!(t.output, PathBuf::from("l2_b/check_a"));
    assert!(t.output_is_dir);
    // Its inputs: the condition's prepared data and its source artifact.
    let roles: Vec<(&str, &str)> = t
        .inputs
        .iter()
        .map(|inp| match inp.source {
            InputSource::Target(j) => (inp.role.as_str(), g.targets[j].name.as_str()),
            InputSource::File(_) => (inp.role.as_str(), ""),
        })
        .collect();
    assert_eq!(
        roles,
        [("prepared", "l2_b/prepared"), ("source", "sources/b")]
    );
    // Its own parameters (`seed` under its own name: the prepared data, the first kind it reads,
    // has no alias for it) and the structural one.
    assert_eq!(t.params.get("depth"), Some(&Value::Int(3)));
    assert_eq!(t.params.get("seed"), Some(&Value::Int(5)));
    assert_eq!(t.params.get("level"), Some(&Value::Int(2)));
    // The class's reader reads it as `check.check_a`; the summary does not.
    let fit = &g.targets[g.find("l2_b/fit").unwrap()];
    assert!(fit
        .inputs
        .iter()
        .any(|inp| inp.role == "check.check_a" && inp.source == InputSource::Target(i)));
    // A kind like any other: selectors, the shape the build and verify use, the order.
    assert_eq!(g.matches(&["check_a".into()]).unwrap().len(), 4);
    assert_eq!(g.matches(&["l1_a/check_a".into()]).unwrap().len(), 1);
    assert!(g.shape.all_kinds().contains(&"check_a"));
    assert_eq!(g.inspected_as(i), "check");
    let pos = |i: usize| g.order.iter().position(|&j| j == i).unwrap();
    assert!(pos(i) < pos(g.find("l2_b/fit").unwrap()));
}

#[test]
fn a_declared_target_reading_a_replicated_kind_is_replicated_with_it() {
    let text = studyfile_text(&format!(
        "{MATRIX}\n[targets.after]\ncommand = [\"x\", \"{{input.fit}}\", \"{{output}}\"]\ninputs = [\"fit\"]\n"
    ))
    .replace("fit_seed = 3", "fit_seed = [3, 4]");
    let g = graph(&text).unwrap();
    let t = &g.targets[g.find("l1_a/s4/after").unwrap()];
    assert_eq!(
        t.params.get("seed"),
        Some(&Value::Int(4)),
        "read as the fit reads it"
    );
    let fit = g.find("l1_a/s4/fit").unwrap();
    assert_eq!(t.inputs[0].source, InputSource::Target(fit));
    assert!(g.find("l1_a/after").is_none());
}

#[test]
fn declared_targets_are_refused_with_the_reason() {
    let e = err(&studyfile_text(&format!(
        "{MATRIX}{}",
        CHECK.replace("kind = \"check\"", "kind = \"chek\"")
    )));
    assert!(
        e.contains("unknown kind `chek`") && e.contains("did you mean `check`"),
        "{e}"
    );
    let e = err(&studyfile_text(&format!(
        "{MATRIX}{}",
        CHECK.replace("\"prepared\", \"source\"", "\"prepard\"")
    )));
    assert!(
        e.contains("input `prepard` is no kind or artifact") && e.contains("`prepared`"),
        "{e}"
    );
    let e = err(&studyfile_text(&format!(
        "{MATRIX}{}",
        CHECK.replace("\"prepared\", \"source\"", "\"fit\"")
    )));
    assert!(e.contains("would be a cycle"), "{e}");
    let e = err(&studyfile_text(&format!(
        "{MATRIX}{}",
        CHECK.replace("depth = 3", "depth = 3, level = 2")
    )));
    assert!(e.contains("`level` is set by [matrix]"), "{e}");
    let e = err(&studyfile_text(&format!(
        "{MATRIX}{}",
        CHECK.replace("depth = 3", "depth = 3, width = 2")
    )));
    assert!(
        e.contains("[targets.check_a]: its recipe reads no parameter `width`"),
        "{e}"
    );
    let e = err(&studyfile_text(&format!(
        "{MATRIX}{}",
        CHECK.replace("check_a]", "fitted]")
    )));
    assert!(e.contains("`fitted` is already a name of the study"), "{e}");
    let e = err(&studyfile_text(&format!(
        "{MATRIX}{}",
        CHECK.replace("check_a]", "s3]")
    )));
    assert!(e.contains("`s3` is already a name"), "{e}");
    let e = err(&studyfile_text(&format!(
        "{MATRIX}{CHECK}\n[recipes]\ncheck_a = \"fit\"\n"
    )));
    assert!(
        e.contains("`check_a` is declared in [targets.check_a]"),
        "{e}"
    );
    let e = err(&studyfile_text(&format!(
        "{MATRIX}\n[targets.x]\ncommand = [\"x\", \"{{output}}\"]\ninputs = [\"y\"]\n[targets.y]\ncommand = [\"y\", \"{{output}}\"]\ninputs = [\"x\"]\n"
    )));
    assert!(e.contains("`x`, `y` read each other in a cycle"), "{e}");
    let e = err(&studyfile_text(&format!(
        "{MATRIX}\n[targets.x]\nrecipe = \"fit\"\ninputs = [\"prepared\"]\nversion = \"1\"\n"
    )));
    assert!(
        e.contains("`version` and `output` belong to a `command`"),
        "{e}"
    );
}

#[test]
fn a_declared_builtin_reads_its_own_parameters_first_and_another_declared_target() {
    let g = graph(&studyfile_text(&format!(
        "{MATRIX}\n[targets.long_fit]\nrecipe = \"fit\"\ninputs = [\"prepared\"]\nparams = {{ steps = 99, seed = 7 }}\n\n[targets.after]\ncommand = [\"x\", \"{{input.long_fit}}\", \"{{output}}\"]\ninputs = [\"long_fit\"]\nparams = {{ seed = 1 }}\n"
    )))
    .unwrap();
    let t = &g.targets[g.find("l1_b/long_fit").unwrap()];
    assert_eq!(t.params.get("steps"), Some(&Value::Int(99)));
    assert_eq!(t.params.get("seed"), Some(&Value::Int(7)));
    let a = &g.targets[g.find("l1_b/after").unwrap()];
    assert_eq!(
        a.inputs[0].source,
        InputSource::Target(g.find("l1_b/long_fit").unwrap())
    );
    // The ordinary fit keeps [params]'s value.
    let f = &g.targets[g.find("l1_b/fit").unwrap()];
    assert_eq!(f.params.get("steps"), Some(&Value::Int(10)));
}
