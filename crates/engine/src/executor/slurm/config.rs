//! Slurm resources: `[executor.slurm]` (the defaults) and `[executor.slurm.<kind>]` (per-kind
//! overrides), checked before anything is submitted.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Slurm resources of one job, as written in the Studyfile under `[executor.slurm]` (the
/// defaults) or `[executor.slurm.<kind>]` (overrides for one recipe kind, see [`SlurmSettings`]).
///
/// Every key is optional; a missing key is not passed to `sbatch`, so the site's default applies,
/// except `cpus`, which defaults to 1 because the engine gives the worker that many threads.
///
/// ```toml
/// [executor.slurm]
/// partition = "cpu"
/// time = "01:00:00"
/// mem = "4G"
///
/// [executor.slurm.fit]
/// partition = "gpu"
/// gpus = 1
/// cpus = 8
/// mem = "32G"
/// time = "12:00:00"
/// extra_args = ["--account=lab", "--constraint=a100"]
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmConfig {
    /// CPUs for the single task (`--cpus-per-task`); the worker's thread count. Default 1.
    pub cpus: Option<u32>,
    /// Memory per node (`--mem`): an integer with an optional unit K, M, G or T (Slurm's default
    /// unit is megabytes), e.g. `"4G"`, `"500M"`, `"4096"`.
    pub mem: Option<String>,
    /// Wall-clock limit (`--time`) in one of Slurm's forms: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`,
    /// `D-HH:MM`, `D-HH:MM:SS`, e.g. `"01:00:00"` or `"2-00:00:00"`.
    pub time: Option<String>,
    /// GPUs for the job (`--gres=gpu:N`, which works with every select plugin).
    pub gpus: Option<u32>,
    /// Partition (`--partition`).
    pub partition: Option<String>,
    /// Environment variable names exported to the job besides `PATH` (`--export=PATH,...`),
    /// e.g. `["LD_LIBRARY_PATH", "CUDA_HOME"]` for an external command recipe. `"ALL"` exports
    /// the whole submitting environment (Slurm's own default, `--export=ALL,PATH,...`); without
    /// it Slurm builds the rest of the job's environment from the user's login on the node.
    pub export: Option<Vec<String>>,
    /// Further `sbatch` options, passed verbatim after the ones above (so they win where Slurm
    /// lets a later option override an earlier one), e.g. `["--account=abc", "--qos=long"]`.
    /// Options studymake sets itself (`--job-name`, `--output`, `--error`, `--chdir`,
    /// `--export`, `--parsable`, `--wrap`) are rejected.
    pub extra_args: Option<Vec<String>>,
}

/// Options [`SlurmConfig::extra_args`] may not contain: studymake sets them deliberately.
const RESERVED_OPTIONS: &[&str] = &[
    "-J",
    "--job-name",
    "-o",
    "--output",
    "-e",
    "--error",
    "-D",
    "--chdir",
    "--export",
    "--parsable",
    "--wrap",
];

impl SlurmConfig {
    /// CPUs per task, default 1.
    pub fn cpus(&self) -> u32 {
        self.cpus.unwrap_or(1)
    }

    /// These settings with every key `over` sets replacing ours (`export` and `extra_args` are
    /// appended to ours instead, so a kind adds to the defaults).
    pub fn merged(&self, over: &SlurmConfig) -> SlurmConfig {
        let concat = |a: &Option<Vec<String>>, b: &Option<Vec<String>>| match (a, b) {
            (None, None) => None,
            (a, b) => Some(
                a.iter()
                    .flatten()
                    .chain(b.iter().flatten())
                    .cloned()
                    .collect(),
            ),
        };
        SlurmConfig {
            cpus: over.cpus.or(self.cpus),
            mem: over.mem.clone().or_else(|| self.mem.clone()),
            time: over.time.clone().or_else(|| self.time.clone()),
            gpus: over.gpus.or(self.gpus),
            partition: over.partition.clone().or_else(|| self.partition.clone()),
            export: concat(&self.export, &over.export),
            extra_args: concat(&self.extra_args, &over.extra_args),
        }
    }

    /// Check every value's form; the message names the key and shows what is accepted.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Usage(m));
        if self.cpus == Some(0) {
            return bad("executor.slurm: `cpus` must be at least 1.".into());
        }
        if let Some(mem) = &self.mem {
            if !valid_mem(mem) {
                return bad(format!(
                    "executor.slurm: `mem = \"{mem}\"` is not a memory size; write an integer \
                     with an optional unit K, M, G or T, e.g. \"4G\"."
                ));
            }
        }
        if let Some(time) = &self.time {
            if !valid_time(time) {
                return bad(format!(
                    "executor.slurm: `time = \"{time}\"` is not a Slurm time limit; write \
                     MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS, e.g. \"01:00:00\"."
                ));
            }
        }
        if let Some(p) = &self.partition {
            if p.is_empty() || p.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return bad(format!(
                    "executor.slurm: `partition = {p:?}` is not a partition name."
                ));
            }
        }
        for name in self.export.iter().flatten() {
            let ok = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return bad(format!(
                    "executor.slurm: `export` entry {name:?} is not an environment variable name."
                ));
            }
        }
        for arg in self.extra_args.iter().flatten() {
            if !arg.starts_with('-') {
                return bad(format!(
                    "executor.slurm: `extra_args` entry {arg:?} is not an sbatch option; write \
                     each option with its value in one entry, e.g. \"--account=abc\"."
                ));
            }
            let opt = arg.split('=').next().unwrap_or(arg);
            let short_glued = RESERVED_OPTIONS.iter().any(|r| {
                r.len() == 2 && opt.len() > 2 && !opt.starts_with("--") && opt.starts_with(r)
            });
            if RESERVED_OPTIONS.contains(&opt) || short_glued {
                return bad(format!(
                    "executor.slurm: `extra_args` may not set {opt}: studymake sets the job \
                     name, log, working directory and environment itself."
                ));
            }
        }
        Ok(())
    }
}

/// `4096`, `4G`, `500M`, `1T`, `64K` (Slurm's `--mem` forms).
fn valid_mem(s: &str) -> bool {
    let digits = s.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    let unit_len = s.len() - digits.len();
    unit_len <= 1 && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Slurm's time forms: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`, or
/// `UNLIMITED`/`INFINITE`.
fn valid_time(s: &str) -> bool {
    let num = |p: &str| !p.is_empty() && p.len() <= 6 && p.bytes().all(|b| b.is_ascii_digit());
    if s.eq_ignore_ascii_case("unlimited") || s.eq_ignore_ascii_case("infinite") {
        return true;
    }
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (Some(d), r),
        None => (None, s),
    };
    if let Some(d) = days {
        if !num(d) {
            return false;
        }
    }
    let parts: Vec<&str> = rest.split(':').collect();
    if !parts.iter().all(|p| num(p)) {
        return false;
    }
    // with days: D-HH, D-HH:MM, D-HH:MM:SS; without: MM, MM:SS, HH:MM:SS
    (1..=3).contains(&parts.len())
}

/// The whole `[executor.slurm]` table: default resources, and per-recipe-kind overrides as
/// sub-tables (`[executor.slurm.fit]`). A key of the table is a resource key of
/// [`SlurmConfig`] when it names one and a recipe kind when its value is a table.
/// (Deserialize only: it is read from the Studyfile, never written.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlurmSettings {
    /// Resources of every job.
    pub defaults: SlurmConfig,
    /// Target kind (`fit`, `prepared`, ...) -> what it overrides.
    pub kinds: BTreeMap<String, SlurmConfig>,
}

impl SlurmSettings {
    /// The resources of a job of recipe kind `kind`: the defaults merged with the kind's table.
    pub fn for_kind(&self, kind: &str) -> SlurmConfig {
        match self.kinds.get(kind) {
            Some(over) => self.defaults.merged(over),
            None => self.defaults.clone(),
        }
    }

    /// Kinds that have overrides but are not in `known` (a typo such as `[executor.slurm.modle]`).
    pub fn unknown_kinds<'a>(&'a self, known: &[&str]) -> Vec<&'a str> {
        self.kinds
            .keys()
            .map(String::as_str)
            .filter(|k| !known.contains(k))
            .collect()
    }
}

const RESOURCE_KEYS: &[&str] = &[
    "cpus",
    "mem",
    "time",
    "gpus",
    "partition",
    "export",
    "extra_args",
];

impl<'de> Deserialize<'de> for SlurmSettings {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let table = toml::Table::deserialize(d)?;
        let mut resources = toml::Table::new();
        let mut kinds = BTreeMap::new();
        for (key, value) in table {
            if RESOURCE_KEYS.contains(&key.as_str()) {
                resources.insert(key, value);
            } else if let toml::Value::Table(t) = value {
                let cfg = SlurmConfig::deserialize(toml::Value::Table(t))
                    .map_err(|e| D::Error::custom(format!("in [executor.slurm.{key}]: {e}")))?;
                cfg.validate()
                    .map_err(|e| D::Error::custom(e.to_string()))?;
                kinds.insert(key, cfg);
            } else {
                return Err(D::Error::custom(format!(
                    "unknown Slurm resource `{key}`: expected one of {} or a table of \
                     overrides for a target kind, e.g. [executor.slurm.fit]",
                    RESOURCE_KEYS.join(", ")
                )));
            }
        }
        let defaults = SlurmConfig::deserialize(toml::Value::Table(resources))
            .map_err(|e| D::Error::custom(e.to_string()))?;
        defaults
            .validate()
            .map_err(|e| D::Error::custom(e.to_string()))?;
        Ok(SlurmSettings { defaults, kinds })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_values_are_checked() {
        let ok = |c: SlurmConfig| c.validate().is_ok();
        let mem = |m: &str| SlurmConfig {
            mem: Some(m.into()),
            ..Default::default()
        };
        let time = |t: &str| SlurmConfig {
            time: Some(t.into()),
            ..Default::default()
        };
        let extra = |a: &str| SlurmConfig {
            extra_args: Some(vec![a.into()]),
            ..Default::default()
        };
        for m in ["4G", "500M", "4096", "1T", "64k"] {
            assert!(ok(mem(m)), "{m}");
        }
        for m in ["", "4GB", "G", "4.5G", "-1"] {
            assert!(!ok(mem(m)), "{m}");
        }
        for t in [
            "30",
            "30:00",
            "01:00:00",
            "2-00",
            "2-12:00",
            "1-00:00:00",
            "UNLIMITED",
        ] {
            assert!(ok(time(t)), "{t}");
        }
        for t in ["", "1h", "1:2:3:4", "1-", "-5", "01:00:"] {
            assert!(!ok(time(t)), "{t}");
        }
        assert!(ok(extra("--account=abc")));
        assert!(ok(extra("--qos=long")));
        for a in [
            "--output=x",
            "-o",
            "-ox.log",
            "--export=ALL",
            "-J",
            "--wrap=true",
            "account",
        ] {
            assert!(!ok(extra(a)), "{a}");
        }
        let e = mem("4GB").validate().unwrap_err().to_string();
        assert!(e.contains("mem") && e.contains("4GB"), "{e}");
        assert!(!ok(SlurmConfig {
            cpus: Some(0),
            ..Default::default()
        }));
        assert!(!ok(SlurmConfig {
            export: Some(vec!["A B".into()]),
            ..Default::default()
        }));
    }

    #[test]
    fn settings_from_toml_with_kind_overrides() {
        #[derive(Deserialize)]
        struct Studyfile {
            executor: Executor,
        }
        #[derive(Deserialize)]
        struct Executor {
            slurm: SlurmSettings,
        }
        let text = r#"
            [executor.slurm]
            partition = "cpu"
            time = "01:00:00"
            mem = "4G"
            extra_args = ["--account=lab"]

            [executor.slurm.fit]
            partition = "gpu"
            gpus = 1
            cpus = 8
            extra_args = ["--constraint=a100"]
        "#;
        let s: Studyfile = toml::from_str(text).unwrap();
        let s = s.executor.slurm;
        let fit = s.for_kind("fit");
        assert_eq!(fit.partition.as_deref(), Some("gpu"));
        assert_eq!(fit.cpus(), 8);
        assert_eq!(fit.gpus, Some(1));
        assert_eq!(fit.mem.as_deref(), Some("4G"));
        assert_eq!(fit.time.as_deref(), Some("01:00:00"));
        assert_eq!(
            fit.extra_args,
            Some(vec!["--account=lab".into(), "--constraint=a100".into()])
        );
        let source = s.for_kind("source");
        assert_eq!(source, s.defaults);
        assert_eq!(source.cpus(), 1);
        assert_eq!(s.unknown_kinds(&["fit", "source"]), Vec::<&str>::new());
        assert_eq!(s.unknown_kinds(&["source"]), vec!["fit"]);

        let err = |t: &str| toml::from_str::<Studyfile>(t).err().unwrap().to_string();
        let e = err("[executor.slurm]\ncpu = 4\n");
        assert!(e.contains("unknown Slurm resource `cpu`"), "{e}");
        let e = err("[executor.slurm.fit]\ngpu = 1\n");
        assert!(e.contains("executor.slurm.fit") && e.contains("gpu"), "{e}");
        let e = err("[executor.slurm]\ntime = \"1h\"\n");
        assert!(e.contains("time"), "{e}");
        let e = err("[executor.slurm]\ncpus = \"four\"\n");
        assert!(e.contains("cpus") || e.contains("integer"), "{e}");
    }
}
