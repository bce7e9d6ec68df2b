//! The Studyfile: a strict TOML declaration of a study, parsed into checked, positioned parts.
//!
//! Parsing is strict: an unknown key, a wrong type or a bad reference is an error of the form
//! `Studyfile:LINE:COL: message`, naming the key and, when a known name is close, saying
//! "did you mean". The top level has the engine's tables (`study`, `params`, `profiles`,
//! `matrix`, `conditions`, `recipes`, `targets`, `executor`) and the study's sections of shared artifacts
//! (from its [`Shape`]). This module only reads the file; [`crate::graph`] expands it into
//! targets.

use crate::catalog::Shape;
use crate::error::{Error, Result};
use crate::params::{Params, Value};
use crate::recipe::RecipeDecl;
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// A parsed Studyfile, with the source kept for positions.
#[derive(Debug)]
pub struct Studyfile {
    /// The file as given (for messages).
    pub path: PathBuf,
    /// Directory of the Studyfile; relative paths are resolved against it.
    pub dir: PathBuf,
    pub source: String,
    pub raw: RawStudyfile,
}

/// The artifacts of one section, by name.
pub type ArtifactTable = BTreeMap<String, Spanned<RawArtifact>>;

/// The top level of a Studyfile.
#[derive(Debug)]
pub struct RawStudyfile {
    pub study: RawStudy,
    pub params: ParamTable,
    pub profiles: BTreeMap<String, Spanned<ParamTable>>,
    /// The study's sections of shared artifacts present in the file, by table name.
    pub sections: BTreeMap<String, ArtifactTable>,
    /// `[matrix]`: the axes' values and the condition `name` pattern.
    pub matrix: Option<Spanned<BTreeMap<String, Spanned<MatrixValue>>>>,
    pub conditions: BTreeMap<String, Spanned<ParamTable>>,
    pub recipes: BTreeMap<String, Spanned<toml::Value>>,
    /// `[targets.NAME]`: kinds of target every condition gets beside the study's own.
    pub targets: BTreeMap<String, Spanned<RawTarget>>,
    pub executor: Option<Spanned<toml::Value>>,
}

impl RawStudyfile {
    /// The artifacts of a section, if the file declares any.
    pub fn section(&self, table: &str) -> Option<&ArtifactTable> {
        self.sections.get(table)
    }
}

/// The engine's top-level tables; the study's sections come between `profiles` and `matrix`.
/// The largest Studyfile read: 16 MiB (the largest benchmarked study's is under 1 MiB). A larger
/// file, or a device, is refused before it is read.
pub const MAX_STUDYFILE_BYTES: u64 = 16 << 20;

/// The most targets a study may expand to (the largest benchmarked study has 4,005; each
/// target costs a few KB of memory). Counted before the conditions' targets are expanded.
pub const MAX_TARGETS: usize = 250_000;

const ENGINE_TABLES: [&str; 8] = [
    "study",
    "params",
    "profiles",
    "matrix",
    "conditions",
    "recipes",
    "targets",
    "executor",
];

/// Reads the top level, knowing the study's section names.
struct TopLevel<'a> {
    sections: &'a [&'static str],
}

impl TopLevel<'_> {
    /// Every top-level key, in the order messages list them.
    fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = ENGINE_TABLES[..3].to_vec();
        keys.extend(self.sections.iter().copied());
        keys.extend(ENGINE_TABLES[3..].iter().copied());
        keys
    }
}

/// A top-level key, checked against the known ones (as serde's `deny_unknown_fields` would).
struct TopKey<'a>(&'a TopLevel<'a>);

impl<'de> DeserializeSeed<'de> for TopKey<'_> {
    type Value = String;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<String, D::Error> {
        let key = String::deserialize(d)?;
        let keys = self.0.keys();
        if keys.contains(&key.as_str()) {
            Ok(key)
        } else {
            Err(de::Error::custom(format!(
                "unknown field `{key}`, expected one of {}",
                keys.iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }
}

impl<'de> DeserializeSeed<'de> for TopLevel<'_> {
    type Value = RawStudyfile;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<RawStudyfile, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = RawStudyfile;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Studyfile")
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<RawStudyfile, A::Error> {
        let mut study = None;
        let mut raw = RawStudyfile {
            study: RawStudy {
                name: Spanned::new(0..0, String::new()),
                output: default_output(),
            },
            params: ParamTable::new(),
            profiles: BTreeMap::new(),
            sections: BTreeMap::new(),
            matrix: None,
            conditions: BTreeMap::new(),
            recipes: BTreeMap::new(),
            targets: BTreeMap::new(),
            executor: None,
        };
        while let Some(key) = map.next_key_seed(TopKey(&self))? {
            match key.as_str() {
                "study" => study = Some(map.next_value()?),
                "params" => raw.params = map.next_value()?,
                "profiles" => raw.profiles = map.next_value()?,
                "matrix" => raw.matrix = Some(map.next_value()?),
                "conditions" => raw.conditions = map.next_value()?,
                "recipes" => raw.recipes = map.next_value()?,
                "targets" => raw.targets = map.next_value()?,
                "executor" => raw.executor = Some(map.next_value()?),
                section => {
                    let table: ArtifactTable = map.next_value()?;
                    raw.sections.insert(section.to_string(), table);
                }
            }
        }
        raw.study = study.ok_or_else(|| de::Error::missing_field("study"))?;
        Ok(raw)
    }
}

/// Parameter name -> value, with positions.
pub type ParamTable = BTreeMap<String, Spanned<toml::Value>>;

/// `[study]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStudy {
    pub name: Spanned<String>,
    #[serde(default = "default_output")]
    pub output: Spanned<String>,
}

fn default_output() -> Spanned<String> {
    Spanned::new(0..0, "study".to_string())
}

/// `[SECTION.NAME]`: one shared artifact.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawArtifact {
    pub recipe: Option<Spanned<String>>,
    pub command: Option<Spanned<toml::Value>>,
    pub version: Option<Spanned<String>>,
    pub output: Option<Spanned<String>>,
    #[serde(default)]
    pub params: ParamTable,
    #[serde(default)]
    pub inputs: BTreeMap<String, Spanned<toml::Value>>,
}

/// `[targets.NAME]`: a kind of target every condition gets, declared by the study's author: its
/// recipe (built-in or a command), its own parameters, the roles it reads from its condition
/// (kinds such as `test_data`, axes such as `probe`, other declared targets), and its class.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub recipe: Option<Spanned<String>>,
    pub command: Option<Spanned<toml::Value>>,
    pub version: Option<Spanned<String>>,
    pub output: Option<Spanned<String>>,
    #[serde(default)]
    pub params: ParamTable,
    #[serde(default)]
    pub inputs: Vec<Spanned<String>>,
    /// A class the study knows (`reconstruction`): how its output is read and which kind
    /// reads it.
    pub kind: Option<Spanned<String>>,
}

/// A value of `[matrix]`: a list (each item with its position) or a single value.
#[derive(Debug)]
pub enum MatrixValue {
    List(Vec<Spanned<toml::Value>>),
    One(toml::Value),
}

impl MatrixValue {
    /// A word for the value's type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            MatrixValue::List(_) => "a list",
            MatrixValue::One(v) => toml_type(v),
        }
    }
}

impl<'de> Deserialize<'de> for MatrixValue {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MatrixValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list or a value")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<MatrixValue, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(MatrixValue::List(items))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<MatrixValue, E> {
                Ok(MatrixValue::One(toml::Value::String(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<MatrixValue, E> {
                Ok(MatrixValue::One(toml::Value::Integer(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<MatrixValue, E> {
                Ok(MatrixValue::One(toml::Value::Float(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<MatrixValue, E> {
                Ok(MatrixValue::One(toml::Value::Boolean(v)))
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<MatrixValue, A::Error> {
                let v = toml::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(MatrixValue::One(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl Studyfile {
    /// Read and parse a Studyfile of a study of this shape.
    pub fn load(path: &Path, shape: &Shape) -> Result<Studyfile> {
        use std::io::Read;
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let meta = f.metadata().map_err(|e| Error::io(path, e))?;
        let ft = meta.file_type();
        // A pipe is read (bounded); a device or a directory is not a Studyfile.
        if !ft.is_file() && !std::os::unix::fs::FileTypeExt::is_fifo(&ft) {
            return Err(Error::Usage(format!(
                "{}: not a regular file ({}); a Studyfile is a TOML file",
                path.display(),
                crate::filetype::describe(ft)
            )));
        }
        let too_big = |size: String| {
            Error::Usage(format!(
                "{}: {size}; a Studyfile may be at most {} MiB (the limit on its size)",
                path.display(),
                MAX_STUDYFILE_BYTES >> 20
            ))
        };
        if meta.len() > MAX_STUDYFILE_BYTES {
            return Err(too_big(format!("{:.1} MiB", meta.len() as f64 / 1048576.0)));
        }
        let mut bytes = Vec::new();
        f.take(MAX_STUDYFILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(path, e))?;
        if bytes.len() as u64 > MAX_STUDYFILE_BYTES {
            return Err(too_big("more than that".into()));
        }
        let source = String::from_utf8(bytes).map_err(|_| {
            Error::Usage(format!(
                "{}: not UTF-8 text; a Studyfile is a TOML file",
                path.display()
            ))
        })?;
        Self::parse(path, source, shape)
    }

    /// Parse Studyfile text; `path` is used for messages and relative paths.
    pub fn parse(path: &Path, source: String, shape: &Shape) -> Result<Studyfile> {
        let sections: Vec<&'static str> = shape.sections.iter().map(|s| s.table).collect();
        let top = TopLevel {
            sections: &sections,
        };
        let raw: RawStudyfile = match top.deserialize(toml::Deserializer::new(&source)) {
            Ok(raw) => raw,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                let message = improve_toml_message(e.message());
                return Err(error_at(path, &source, span, message));
            }
        };
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(Studyfile {
            path: path.to_path_buf(),
            dir,
            source,
            raw,
        })
    }

    /// An error at a span of this file.
    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> Error {
        error_at(&self.path, &self.source, span, message.into())
    }

    /// Interpret a recipe declaration: a built-in name, or a table with `command`.
    pub fn recipe_decl(&self, value: &Spanned<toml::Value>, what: &str) -> Result<RecipeDecl> {
        match value.get_ref() {
            toml::Value::String(s) => Ok(RecipeDecl::Builtin(s.clone())),
            toml::Value::Table(t) => {
                let mut argv = None;
                let mut version = None;
                let mut output = None;
                let mut params = Vec::new();
                for (k, v) in t {
                    match k.as_str() {
                        "command" => argv = Some(self.argv(v, value.span(), what)?),
                        "version" => version = Some(self.string(v, value.span(), what, k)?),
                        "output" => output = Some(self.string(v, value.span(), what, k)?),
                        "recipe" => {
                            let name = self.string(v, value.span(), what, k)?;
                            return Ok(RecipeDecl::Builtin(name));
                        }
                        "params" => {
                            let toml::Value::Array(items) = v else {
                                return Err(self.error(
                                    value.span(),
                                    format!("{what}: `params` must be a list of parameter names"),
                                ));
                            };
                            for item in items {
                                params.push(self.string(item, value.span(), what, "params")?);
                            }
                        }
                        other => {
                            return Err(self.error(
                                value.span(),
                                format!(
                                    "{what}: unknown key `{other}`{}; expected one of `command`, \
                                     `version`, `output`, `params`",
                                    did_you_mean(other, ["command", "version", "output", "params"])
                                ),
                            ))
                        }
                    }
                }
                let argv = argv.ok_or_else(|| {
                    self.error(
                        value.span(),
                        format!(
                            "{what}: a recipe table needs `command = [\"program\", \"arg\", ...]`"
                        ),
                    )
                })?;
                Ok(RecipeDecl::Command {
                    argv,
                    version,
                    output,
                    params,
                })
            }
            other => Err(self.error(
                value.span(),
                format!(
                    "{what}: expected a recipe name (a string) or a table with `command`, found {}",
                    toml_type(other)
                ),
            )),
        }
    }

    /// The recipe of a shared artifact's table.
    pub fn artifact_recipe(&self, art: &Spanned<RawArtifact>, what: &str) -> Result<RecipeDecl> {
        let a = art.get_ref();
        self.declared_recipe(
            &a.recipe,
            &a.command,
            &a.version,
            &a.output,
            art.span(),
            what,
        )
    }

    /// The recipe of a declared target (`[targets.NAME]`).
    pub fn target_recipe(&self, t: &Spanned<RawTarget>, what: &str) -> Result<RecipeDecl> {
        let r = t.get_ref();
        self.declared_recipe(&r.recipe, &r.command, &r.version, &r.output, t.span(), what)
    }

    /// `recipe = "NAME"`, or `command = [...]` with its `version` and `output`, of a table
    /// that declares one target (at `span`).
    fn declared_recipe(
        &self,
        recipe: &Option<Spanned<String>>,
        command: &Option<Spanned<toml::Value>>,
        version: &Option<Spanned<String>>,
        output: &Option<Spanned<String>>,
        span: Range<usize>,
        what: &str,
    ) -> Result<RecipeDecl> {
        match (recipe, command) {
            (Some(_), Some(c)) => Err(self.error(
                c.span(),
                format!("{what}: give either `recipe` or `command`, not both"),
            )),
            (Some(r), None) => {
                if version.is_some() || output.is_some() {
                    return Err(self.error(
                        r.span(),
                        format!("{what}: `version` and `output` belong to a `command`, not a built-in recipe"),
                    ));
                }
                Ok(RecipeDecl::Builtin(r.get_ref().clone()))
            }
            (None, Some(c)) => Ok(RecipeDecl::Command {
                argv: self.argv(c.get_ref(), c.span(), what)?,
                version: version.as_ref().map(|v| v.get_ref().clone()),
                output: output.as_ref().map(|v| v.get_ref().clone()),
                params: Vec::new(),
            }),
            (None, None) => Err(self.error(
                span,
                format!("{what}: needs `recipe = \"NAME\"` or `command = [...]`"),
            )),
        }
    }

    fn argv(&self, v: &toml::Value, span: Range<usize>, what: &str) -> Result<Vec<String>> {
        match v {
            toml::Value::Array(items) if !items.is_empty() => items
                .iter()
                .map(|i| match i {
                    toml::Value::String(s) => Ok(s.clone()),
                    other => Err(self.error(
                        span.clone(),
                        format!(
                            "{what}: every element of `command` must be a string, found {}",
                            toml_type(other)
                        ),
                    )),
                })
                .collect(),
            toml::Value::String(s) => Err(self.error(
                span,
                format!(
                    "{what}: `command` must be an argv list, not a shell string; write \
                     {:?} as [{}]",
                    s,
                    s.split_whitespace()
                        .map(|w| format!("{w:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
            _ => Err(self.error(
                span,
                format!("{what}: `command` must be a non-empty list of strings"),
            )),
        }
    }

    fn string(&self, v: &toml::Value, span: Range<usize>, what: &str, key: &str) -> Result<String> {
        match v {
            toml::Value::String(s) => Ok(s.clone()),
            other => Err(self.error(
                span,
                format!(
                    "{what}: `{key}` must be a string, found {}",
                    toml_type(other)
                ),
            )),
        }
    }

    /// Convert a parameter table to typed values, rejecting arrays, tables and non-finite floats.
    pub fn params(&self, table: &ParamTable, what: &str) -> Result<Params> {
        let mut out = Params::new();
        for (name, v) in table {
            out.insert(name.clone(), self.value(v, &format!("{what}.{name}"))?);
        }
        Ok(out)
    }

    /// One parameter value.
    pub fn value(&self, v: &Spanned<toml::Value>, what: &str) -> Result<Value> {
        match v.get_ref() {
            toml::Value::Integer(i) => Ok(Value::Int(*i)),
            toml::Value::Float(f) if f.is_finite() => Ok(Value::Float(*f)),
            toml::Value::Float(f) => Err(self.error(
                v.span(),
                format!("`{what}` must be a finite number, found {f}"),
            )),
            toml::Value::String(s) => Ok(Value::Str(s.clone())),
            toml::Value::Boolean(b) => Ok(Value::Bool(*b)),
            other => Err(self.error(
                v.span(),
                format!(
                    "`{what}` must be a number, string or boolean, found {}",
                    toml_type(other)
                ),
            )),
        }
    }
}

/// Build a positioned error from a byte span of `source`.
pub fn error_at(path: &Path, source: &str, span: Range<usize>, message: String) -> Error {
    let (line, col) = line_col(source, span.start);
    Error::Studyfile {
        path: path.to_path_buf(),
        line,
        col,
        message,
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map(|i| offset - i).unwrap_or(offset + 1);
    (line, col)
}

/// A word for a TOML value's type.
pub fn toml_type(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "a list",
        toml::Value::Table(_) => "a table",
    }
}

/// `, did you mean `x`?` when a candidate is within a small edit distance, else empty.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let best = candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min();
    match best {
        Some((_, c)) => format!(" (did you mean `{c}`?)"),
        None => String::new(),
    }
}

/// Edit distance counting insertions, deletions, substitutions and adjacent transpositions
/// (optimal string alignment), so `sede` is one edit from `seed`.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// Add "did you mean" to serde's "unknown field `x`, expected one of `a`, `b`" messages.
fn improve_toml_message(message: &str) -> String {
    let message = message.trim_end().to_string();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((field, tail)) = rest.split_once('`') {
            let expected: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
            let hint = did_you_mean(field, expected);
            return format!("unknown key `{field}`{hint}{tail}");
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn parse(text: &str) -> Result<Studyfile> {
        Studyfile::parse(
            Path::new("Studyfile"),
            text.to_string(),
            crate::testing::catalog().shape(),
        )
    }

    #[test]
    fn unknown_key_names_line_and_suggests() {
        let e = parse("[study]\nname = \"x\"\nouptut = \"o\"\n").unwrap_err();
        let m = e.to_string();
        assert!(m.starts_with("Studyfile:3:1: unknown key `ouptut`"), "{m}");
        assert!(m.contains("did you mean `output`"), "{m}");
    }

    #[test]
    fn wrong_type_names_line() {
        let e = parse("[study]\nname = 3\n").unwrap_err().to_string();
        assert!(e.starts_with("Studyfile:2:"), "{e}");
    }

    #[test]
    fn shell_string_command_is_refused() {
        let sf =
            parse("[study]\nname = \"x\"\n[recipes]\nfit = { command = \"python train.py\" }\n")
                .unwrap();
        let v = &sf.raw.recipes["fit"];
        let e = sf.recipe_decl(v, "recipes.fit").unwrap_err().to_string();
        assert!(e.contains("argv list, not a shell string"), "{e}");
        assert!(e.contains("[\"python\", \"train.py\"]"), "{e}");
    }

    #[test]
    fn line_col_and_distance() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab", 0), (1, 1));
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(
            did_you_mean("iteration", ["iterations", "epochs"]),
            " (did you mean `iterations`?)"
        );
        assert_eq!(did_you_mean("zzz", ["iterations"]), "");
    }
}
