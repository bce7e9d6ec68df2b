//! External commands as recipes, worker side: the environment a command gets (where its
//! report and output go), the lines its log opens with, `{placeholder}` substitution, and running
//! it with the worker's cleared environment.

use super::describe_status;
use crate::error::{Error, Result};
use crate::job::JobSpec;
use crate::recipe::Recipe;
use std::collections::HashMap;
use std::process::{Command, Stdio};

/// The extra environment of an external command: where its report and output go.
pub fn command_env(spec: &JobSpec) -> Vec<(String, String)> {
    vec![
        (
            "STUDYMAKE_REPORT".into(),
            spec.report.to_string_lossy().into_owned(),
        ),
        (
            "STUDYMAKE_OUTPUT".into(),
            spec.output.to_string_lossy().into_owned(),
        ),
        ("STUDYMAKE_TARGET".into(), spec.target.clone()),
    ]
}

/// The lines a build's log opens with: what is built, with which parameters.
pub fn log_header(spec: &JobSpec) -> String {
    let mut h = format!(
        "studymake worker: building {} ({})\nparameters: {}\n",
        spec.target,
        spec.recipe.describe(),
        serde_json::to_string(&spec.params).unwrap_or_default()
    );
    if let Recipe::Command { argv, .. } = &spec.recipe {
        h.push_str(&format!(
            "studymake worker: {} runs {:?}\n",
            spec.target, argv
        ));
    }
    h
}

/// Worker side: run an external command job. The environment is already the cleared one the
/// engine gave this worker; the command also gets `STUDYMAKE_REPORT` and `STUDYMAKE_OUTPUT`.
pub fn run_command(spec: &JobSpec) -> Result<()> {
    let Recipe::Command { argv, .. } = &spec.recipe else {
        return Err(Error::Other(format!(
            "{}: not an external-command job",
            spec.target
        )));
    };
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .envs(command_env(spec))
        .stdin(Stdio::null());
    // The command dies with its worker, as the worker dies with studymake.
    crate::sys::die_with_parent(&mut cmd);
    let status = cmd.status().map_err(|e| Error::Build {
        target: spec.target.clone(),
        message: format!("could not start `{}`: {e}", argv[0]),
    })?;
    if !status.success() {
        return Err(Error::Build {
            target: spec.target.clone(),
            message: format!("`{}` ended with {}", argv[0], describe_status(status)),
        });
    }
    Ok(())
}

/// Substitute `{placeholders}` in an argv template.
pub fn substitute(template: &[String], values: &HashMap<String, String>) -> Result<Vec<String>> {
    template
        .iter()
        .map(|arg| {
            let mut out = String::new();
            let mut rest = arg.as_str();
            while let Some(i) = rest.find('{') {
                out.push_str(&rest[..i]);
                let after = &rest[i + 1..];
                let Some(j) = after.find('}') else {
                    out.push_str(&rest[i..]);
                    rest = "";
                    break;
                };
                let name = &after[..j];
                let v = values.get(name).ok_or_else(|| {
                    Error::Other(format!("no value for placeholder `{{{name}}}`"))
                })?;
                out.push_str(v);
                rest = &after[j + 1..];
            }
            out.push_str(rest);
            Ok(out)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_substituted() {
        let mut v = HashMap::new();
        v.insert("level".to_string(), "2".to_string());
        v.insert("input.prepared".to_string(), "/s/t.npz".to_string());
        let t = vec![
            "--level={level}".to_string(),
            "{input.prepared}".to_string(),
        ];
        assert_eq!(substitute(&t, &v).unwrap(), vec!["--level=2", "/s/t.npz"]);
        assert!(substitute(&["{nope}".to_string()], &v).is_err());
    }
}
