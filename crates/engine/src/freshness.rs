//! Freshness: a target's key material (recipe, output form, its own parameters, the content
//! digests of its inputs), and whether the target is fresh, restorable from the cache or to be
//! built, with the reasons. Dry runs, `status`, `explain`, `verify` and the build share it.
//!
//! Fresh means: the recorded key equals the current key *and* the outputs are the recorded
//! bytes (checked by size, mtime and inode, and rehashed when those change).

use crate::error::{Error, Result};
use crate::graph::{Graph, InputSource, Target};
use crate::key::{digest_file, Digest, KeyMaterial};
use crate::params::Value;
use crate::recipe::Recipe;
use crate::store::{OutputProblem, Record, Store};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

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
    ManifestMissing,
    ManifestUnreadable(String),
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
            Reason::ManifestMissing => {
                write!(f, "manifest missing (the next build rewrites it)")
            }
            Reason::ManifestUnreadable(e) => {
                write!(f, "manifest unreadable: {e} (the next build rewrites it)")
            }
        }
    }
}

/// What to do with a target.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Fresh,
    /// Fresh, but its manifest is missing or unreadable: rewrite it, build nothing.
    RepairManifest,
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
        // What is there, named for what it is: the key reads a regular file's bytes only.
        let problem = match std::fs::metadata(path) {
            Ok(m) if m.is_file() => None,
            Ok(m) => Some(format!(
                "is {}; a `{{ path = ... }}` input must be a regular file",
                crate::filetype::describe(m.file_type())
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("does not exist".into()),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Some(
                "cannot be resolved: it is a symbolic link loop (too many levels of symbolic \
                 links)"
                    .into(),
            ),
            Err(e) => Some(format!("cannot be read: {e}")),
        };
        if let Some(problem) = problem {
            return Err(Error::Build {
                target: target.name.clone(),
                message: format!(
                    "input `{role}` file {} {problem} (declared in {})",
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
        Ok(Ok(key_material(self.graph, i, inputs)))
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
                        // Fresh bytes; the manifest that describes them must be there too.
                        let manifest = match self.store.manifest(&t.name) {
                            Ok(Some(m)) if m.target == t.name && m.key == key => None,
                            Ok(Some(_)) => Some(Reason::ManifestUnreadable(
                                "it describes another target or key".into(),
                            )),
                            Ok(None) => Some(Reason::ManifestMissing),
                            Err(e) => Some(Reason::ManifestUnreadable(e.to_string())),
                        };
                        reasons.extend(manifest);
                        return Ok(Assessment {
                            action: if reasons.is_empty() {
                                Action::Fresh
                            } else {
                                Action::RepairManifest
                            },
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
                        let partial = key_material(self.graph, i, rec.material.inputs.clone());
                        // Only real differences: the key is not known yet, so an empty
                        // difference means no more than "unchanged so far".
                        let mut d = changes(&rec.material, &partial);
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

/// The key material of target `i` of `graph` given its inputs' digests: the one constructor, so
/// the build, the plan and `verify` cannot assemble it differently.
pub fn key_material(graph: &Graph, i: usize, inputs: BTreeMap<String, Digest>) -> KeyMaterial {
    let t = &graph.targets[i];
    KeyMaterial {
        recipe: t.recipe.clone(),
        output: output_form(t),
        params: t.params.clone(),
        inputs,
        bindings: graph.bindings(i),
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

/// Why a recorded key and the current one differ, as reasons: the differences of their key
/// material, or, where the material is the same, a change of the key schema.
pub fn diff(old: &KeyMaterial, new: &KeyMaterial) -> Vec<Reason> {
    let mut out = changes(old, new);
    if out.is_empty() {
        // Same material but a different key: the key schema changed.
        out.push(Reason::RecipeChanged {
            old: "an older key schema".into(),
            new: format!("key schema {}", crate::key::KEY_SCHEMA),
        });
    }
    out
}

/// The differences between recorded and current key material, as reasons (none if equal).
fn changes(old: &KeyMaterial, new: &KeyMaterial) -> Vec<Reason> {
    let mut out = Vec::new();
    if old.recipe != new.recipe || old.output != new.output {
        // A command whose argv and output stayed: only its declared version changed.
        let version_only = match (&old.recipe, &new.recipe) {
            (
                Recipe::Command {
                    argv: a,
                    version: va,
                },
                Recipe::Command {
                    argv: b,
                    version: vb,
                },
            ) if a == b && old.output == new.output => {
                let show =
                    |v: &Option<String>| v.as_ref().map_or("none".into(), |v| format!("{v:?}"));
                Some((format!("command version {}", show(va)), show(vb)))
            }
            _ => None,
        };
        let (o, n) =
            version_only.unwrap_or_else(|| (old.recipe.to_string(), new.recipe.to_string()));
        out.push(Reason::RecipeChanged { old: o, new: n });
    }
    if old.bindings != new.bindings {
        let show = |b: &BTreeMap<String, String>| {
            if b.is_empty() {
                return "no names or paths".to_string();
            }
            let parts: Vec<String> = b.iter().map(|(k, v)| format!("{{{k}}}={v}")).collect();
            parts.join(", ")
        };
        out.push(Reason::RecipeChanged {
            old: format!("the command given {}", show(&old.bindings)),
            new: show(&new.bindings),
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
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(version: &str) -> KeyMaterial {
        KeyMaterial {
            recipe: Recipe::Command {
                argv: vec!["train".into(), "{output}".into()],
                version: Some(version.into()),
            },
            output: "dir".into(),
            params: Default::default(),
            inputs: Default::default(),
            bindings: Default::default(),
        }
    }

    #[test]
    fn a_command_whose_version_alone_changed_says_only_that() {
        let why: Vec<String> = diff(&command("a-2"), &command("a-3"))
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(why, [r#"recipe changed: command version "a-2" -> "a-3""#]);
        let mut other = command("a-3");
        other.recipe = Recipe::Command {
            argv: vec!["fit".into(), "{output}".into()],
            version: Some("a-3".into()),
        };
        let why = diff(&command("a-2"), &other)[0].to_string();
        assert!(
            why.contains(r#"["train", "{output}"] version "a-2" -> ["fit""#),
            "{why}"
        );
    }
}
