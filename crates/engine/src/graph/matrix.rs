//! The conditions: one per combination of the listed values of `[matrix]` (named by its `name`
//! pattern, or the shape's), then each `[conditions.NAME]` outside the matrix, which must set
//! every axis (a `Name` axis may be left out when its section has one artifact). A matrix
//! condition's own table overrides parameters only; its axes are the matrix's.

use super::{check_name, Builder, Condition};
use crate::catalog::{Axis, AxisValues};
use crate::error::Result;
use crate::params::Value;
use crate::studyfile::{did_you_mean, MatrixValue, MAX_TARGETS};
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use toml::Spanned;

/// A value with the position it was written at.
type Positioned = (Value, Range<usize>);

impl Builder<'_> {
    /// Refuse a study of more than [`MAX_TARGETS`] targets once it has `conditions` conditions,
    /// before their targets are expanded; `span` is what declares them.
    pub(super) fn check_target_count(&self, conditions: usize, span: Range<usize>) -> Result<()> {
        let total = conditions
            .saturating_mul(self.shape.kinds.len())
            .saturating_add(self.targets.len())
            .saturating_add(usize::from(self.shape.summary.is_some()));
        if total <= MAX_TARGETS {
            return Ok(());
        }
        let grouped = |n: usize| {
            let s = n.to_string();
            let mut out = String::new();
            for (k, c) in s.chars().enumerate() {
                if k > 0 && (s.len() - k).is_multiple_of(3) {
                    out.push(',');
                }
                out.push(c);
            }
            out
        };
        Err(self.sf.error(
            span,
            format!(
                "the study declares {} targets ({} conditions); the limit is {} targets",
                grouped(total),
                grouped(conditions),
                grouped(MAX_TARGETS)
            ),
        ))
    }

    pub(super) fn conditions(&mut self) -> Result<Vec<Condition>> {
        let raw = &self.sf.raw;
        let mut out: Vec<Condition> = Vec::new();
        // Name -> index in `out` (a study may have thousands of conditions).
        let mut by_name: HashMap<String, usize> = HashMap::new();
        if let Some(m) = &raw.matrix {
            self.matrix(m, &mut out, &mut by_name)?;
        }
        let axis_names: Vec<&str> = self.shape.axes.iter().map(|a| a.name).collect();
        // Conditions declared or overridden one by one.
        for (name, table) in &raw.conditions {
            let t = table.get_ref();
            if by_name.contains_key(name) {
                for key in &axis_names {
                    if let Some(v) = t.get(*key) {
                        return Err(self.sf.error(
                            v.span(),
                            format!("[conditions.{name}]: `{key}` of a matrix condition is set by [matrix]; declare a new condition to change it"),
                        ));
                    }
                }
                continue;
            }
            if let Some(why) = check_name(name)
                .err()
                .map(|w| format!("`{name}` {w}"))
                .or_else(|| self.reserved(name))
            {
                return Err(self
                    .sf
                    .error(table.span(), format!("[conditions.{name}]: {why}")));
            }
            let required: Vec<String> = self
                .shape
                .axes
                .iter()
                .filter(|a| !matches!(a.values, AxisValues::Name { .. }))
                .map(|a| format!("`{}`", a.name))
                .collect();
            let mut axes = BTreeMap::new();
            for axis in &self.shape.axes {
                let what = format!("[conditions.{name}]");
                let value = match (t.get(axis.name), axis.values) {
                    (Some(v), _) => self.axis_value(axis, v, &what)?,
                    (None, AxisValues::Name { section }) => self.only_artifact(
                        section,
                        table.span(),
                        &format!("{what}: set `{}`", axis.name),
                    )?,
                    (None, _) => {
                        let names: Vec<&str> = out.iter().map(|c| c.name.as_str()).collect();
                        return Err(self.sf.error(
                            table.span(),
                            format!(
                                "[conditions.{name}] is not a matrix condition{}, so it must set {}",
                                did_you_mean(name, names.iter().copied()),
                                required.join(" and ")
                            ),
                        ));
                    }
                };
                axes.insert(axis.name.to_string(), value);
            }
            self.check_target_count(out.len() + 1, table.span())?;
            out.push(Condition {
                name: name.clone(),
                axes,
            });
        }
        Ok(out)
    }

    /// The matrix conditions, in the order of the axes (the first varies slowest).
    fn matrix(
        &self,
        m: &Spanned<BTreeMap<String, Spanned<MatrixValue>>>,
        out: &mut Vec<Condition>,
        by_name: &mut HashMap<String, usize>,
    ) -> Result<()> {
        let mat = m.get_ref();
        let shape = self.shape;
        let mut keys: Vec<&str> = shape.axes.iter().map(|a| a.name).collect();
        keys.push("name");
        for (k, v) in mat {
            if !keys.contains(&k.as_str()) {
                return Err(self.sf.error(
                    v.span(),
                    format!(
                        "[matrix]: unknown key `{k}`{}, expected one of {}",
                        did_you_mean(k, keys.iter().copied()),
                        keys.iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        let pattern = match mat.get("name") {
            Some(n) => match n.get_ref() {
                MatrixValue::One(toml::Value::String(s)) => s.clone(),
                other => {
                    return Err(self.sf.error(
                        n.span(),
                        format!(
                            "[matrix]: `name` must be a string, found {}",
                            other.type_name()
                        ),
                    ))
                }
            },
            None => shape.condition_name.to_string(),
        };
        let name_span = mat.get("name").map(|n| n.span()).unwrap_or(m.span());
        // Each axis: its values with their spans.
        let mut lists: Vec<(&Axis, Vec<Positioned>)> = Vec::new();
        for axis in &shape.axes {
            let values = match (mat.get(axis.name), axis.values) {
                (Some(v), AxisValues::Name { .. }) => {
                    let one = match v.get_ref() {
                        MatrixValue::One(x) => Spanned::new(v.span(), x.clone()),
                        MatrixValue::List(_) => Spanned::new(v.span(), toml::Value::Array(Vec::new())),
                    };
                    vec![(self.axis_value(axis, &one, "[matrix]")?, v.span())]
                }
                (None, AxisValues::Name { section }) => vec![(
                    self.only_artifact(
                        section,
                        m.span(),
                        &format!(
                            "[matrix] needs `{} = \"NAME\"` when the study declares more than one {} (or none)",
                            axis.name,
                            self.section_kind(section)
                        ),
                    )?,
                    m.span(),
                )],
                (Some(v), _) => {
                    let MatrixValue::List(items) = v.get_ref() else {
                        return Err(self.sf.error(
                            v.span(),
                            format!(
                                "[matrix]: `{}` must be a list, found {}",
                                axis.name,
                                v.get_ref().type_name()
                            ),
                        ));
                    };
                    let mut vals = Vec::new();
                    for item in items {
                        vals.push((self.axis_value(axis, item, "[matrix]")?, item.span()));
                    }
                    vals
                }
                (None, _) => {
                    return Err(self.sf.error(
                        m.span(),
                        format!("missing field `{}`", axis.name),
                    ))
                }
            };
            lists.push((axis, values));
        }
        if lists.iter().any(|(_, v)| v.is_empty()) {
            let listed: Vec<String> = shape
                .axes
                .iter()
                .filter(|a| !matches!(a.values, AxisValues::Name { .. }))
                .map(|a| format!("`{}`", a.name))
                .collect();
            return Err(self.sf.error(
                m.span(),
                format!(
                    "[matrix]: {} must each list at least one value",
                    listed.join(" and ")
                ),
            ));
        }
        let cells = lists
            .iter()
            .fold(1usize, |n, (_, v)| n.saturating_mul(v.len()));
        self.check_target_count(cells, m.span())?;
        // Every combination, the first axis varying slowest.
        let mut cursor = vec![0usize; lists.len()];
        'cells: loop {
            let mut name = pattern.clone();
            let mut axes = BTreeMap::new();
            for (k, (axis, values)) in lists.iter().enumerate() {
                let (v, _) = &values[cursor[k]];
                let shown = match v {
                    Value::Str(s) => s.clone(),
                    other => other.to_string(),
                };
                name = name.replace(&format!("{{{}}}", axis.name), &shown);
                axes.insert(axis.name.to_string(), v.clone());
            }
            // The innermost listed value names the duplicate.
            let last_span = lists
                .iter()
                .enumerate()
                .rev()
                .find(|(_, (a, _))| !matches!(a.values, AxisValues::Name { .. }))
                .map(|(k, (_, v))| v[cursor[k]].1.clone())
                .unwrap_or(m.span());
            if let Some(why) = check_name(&name)
                .err()
                .map(|w| format!("condition name `{name}` {w}"))
                .or_else(|| self.reserved(&name))
            {
                return Err(self.sf.error(name_span, format!("[matrix]: {why}")));
            }
            if by_name.contains_key(&name) {
                return Err(self.sf.error(
                    last_span,
                    format!(
                        "[matrix]: duplicate condition name `{name}` (check `name` and the lists)"
                    ),
                ));
            }
            by_name.insert(name.clone(), out.len());
            out.push(Condition { name, axes });
            // Next combination.
            let mut k = lists.len();
            loop {
                if k == 0 {
                    break 'cells;
                }
                k -= 1;
                cursor[k] += 1;
                if cursor[k] < lists[k].1.len() {
                    break;
                }
                cursor[k] = 0;
            }
        }
        Ok(())
    }

    /// One value of an axis, checked: a structural parameter in its range, or a declared
    /// artifact's name.
    fn axis_value(&self, axis: &Axis, v: &Spanned<toml::Value>, what: &str) -> Result<Value> {
        match axis.values {
            AxisValues::Structural => {
                let val = self.sf.value(v, axis.name)?;
                self.catalog
                    .check_param(axis.name, &val)
                    .map_err(|e| self.sf.error(v.span(), format!("{what}: {e}")))?;
                Ok(val)
            }
            AxisValues::Names { section } | AxisValues::Name { section } => match v.get_ref() {
                toml::Value::String(s) => {
                    self.check_ref(section, &Spanned::new(v.span(), s.clone()))?;
                    Ok(Value::Str(s.clone()))
                }
                _ => Err(self.sf.error(
                    v.span(),
                    format!(
                        "{what}: `{}` must be {} name",
                        axis.name,
                        article(self.section_kind(section))
                    ),
                )),
            },
        }
    }

    /// The one artifact of a section, or `message` as an error at `span`.
    fn only_artifact(&self, section: &str, span: Range<usize>, message: &str) -> Result<Value> {
        let table = self.sf.raw.section(section);
        match table.map(|t| t.len()) {
            Some(1) => Ok(Value::Str(
                table
                    .and_then(|t| t.keys().next().cloned())
                    .unwrap_or_default(),
            )),
            _ => Err(self.sf.error(span, message.to_string())),
        }
    }

    /// The kind of a section's artifacts (`source` for `sources`).
    pub(super) fn section_kind(&self, section: &str) -> &'static str {
        self.shape
            .sections
            .iter()
            .find(|s| s.table == section)
            .map(|s| s.kind)
            .unwrap_or("artifact")
    }

    /// A reference to an artifact of a section must name a declared one.
    pub(super) fn check_ref(&self, section: &str, name: &Spanned<String>) -> Result<()> {
        let table = self.sf.raw.section(section);
        if table.is_some_and(|t| t.contains_key(name.get_ref())) {
            return Ok(());
        }
        let names: Vec<&str> = table
            .map(|t| t.keys().map(String::as_str).collect())
            .unwrap_or_default();
        Err(self.sf.error(
            name.span(),
            format!(
                "unknown {} `{}`{}; declared: {}",
                self.section_kind(section),
                name.get_ref(),
                did_you_mean(name.get_ref(), names.iter().copied()),
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            ),
        ))
    }
}

/// "a source", "an input": a word with its article.
fn article(word: &str) -> String {
    match word.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {word}"),
        _ => format!("a {word}"),
    }
}
