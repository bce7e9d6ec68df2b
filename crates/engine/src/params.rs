//! Parameter values and parameter maps: the typed, canonical form of every number a target is built with.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// One parameter value. Integers and floats are distinct (`2` is not `2.0`), so a key never
/// changes because a float printed differently; NaN and infinities are refused at parse time.
///
/// In JSON (job specs, manifests) a value is written bare (`2`, `1e9`, `"x"`); in binary formats
/// (the state file) it is tagged, since those cannot guess a type from the bytes.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Bare {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

#[derive(Serialize, Deserialize)]
enum Tagged {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let human = s.is_human_readable();
        match (self, human) {
            (Value::Bool(b), true) => Bare::Bool(*b).serialize(s),
            (Value::Int(i), true) => Bare::Int(*i).serialize(s),
            (Value::Float(f), true) => Bare::Float(*f).serialize(s),
            (Value::Str(x), true) => Bare::Str(x.clone()).serialize(s),
            (Value::Bool(b), false) => Tagged::Bool(*b).serialize(s),
            (Value::Int(i), false) => Tagged::Int(*i).serialize(s),
            (Value::Float(f), false) => Tagged::Float(*f).serialize(s),
            (Value::Str(x), false) => Tagged::Str(x.clone()).serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            Ok(match Bare::deserialize(d)? {
                Bare::Bool(b) => Value::Bool(b),
                Bare::Int(i) => Value::Int(i),
                Bare::Float(f) => Value::Float(f),
                Bare::Str(x) => Value::Str(x),
            })
        } else {
            Ok(match Tagged::deserialize(d)? {
                Tagged::Bool(b) => Value::Bool(b),
                Tagged::Int(i) => Value::Int(i),
                Tagged::Float(f) => Value::Float(f),
                Tagged::Str(x) => Value::Str(x),
            })
        }
    }
}

/// Parameters by name, always in sorted order (a `BTreeMap`), so their encoding is canonical.
pub type Params = BTreeMap<String, Value>;

impl Value {
    /// The value as an integer, if it is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The value as a float; integers widen.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The value as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a bool, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// A word for the type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Str(_) => "a string",
        }
    }

    /// Whether two values mean the same number (an integer equals the same float), for
    /// comparing what a worker reports with what was declared.
    pub fn same_as(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Int(a), Value::Float(b)) | (Value::Float(b), Value::Int(a)) => {
                (*a as f64) == *b
            }
            _ => self == other,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => {
                if x.fract() == 0.0 && x.abs() < 1e15 {
                    write!(f, "{x:.1}")
                } else {
                    write!(f, "{x}")
                }
            }
            Value::Str(s) => write!(f, "{s:?}"),
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_string())
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_and_float_are_distinct_but_comparable() {
        assert_ne!(Value::Int(2), Value::Float(2.0));
        assert!(Value::Int(2).same_as(&Value::Float(2.0)));
        assert!(!Value::Int(2).same_as(&Value::Int(1)));
        assert_eq!(Value::Float(1e9).to_string(), "1000000000.0");
    }

    #[test]
    fn json_is_bare_and_binary_is_tagged() {
        let mut p = Params::new();
        p.insert("a".into(), Value::Int(2));
        p.insert("b".into(), Value::Float(2.0));
        p.insert("c".into(), Value::Str("x".into()));
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"a":2,"b":2.0,"c":"x"}"#
        );
        let back: Params = serde_json::from_str(r#"{"a":2,"b":2.0,"c":"x"}"#).unwrap();
        assert_eq!(back, p);
        let cfg = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&p, cfg).unwrap();
        let (back, _): (Params, _) = bincode::serde::decode_from_slice(&bytes, cfg).unwrap();
        assert_eq!(back, p);
    }
}
