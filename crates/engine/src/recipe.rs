//! How a target is built: the one [`Recipe`] type the graph, the job spec and the key material
//! share, and [`RecipeDecl`], a recipe as the Studyfile declares it before resolution.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How a target is built: a built-in recipe of the catalog, or an external command.
///
/// Its serialised form is part of every key (see [`crate::key`]): the variant order, names and
/// fields must not change without a new key schema.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Recipe {
    Builtin {
        name: String,
        version: u32,
    },
    /// An argv list: a template with `{placeholders}` in the graph and the key, substituted in a
    /// job spec. `version` is the user's declared version of the program.
    Command {
        argv: Vec<String>,
        version: Option<String>,
    },
}

impl Recipe {
    /// A short description for messages and logs: `fit v3`, `command train (abc123)`.
    pub fn describe(&self) -> String {
        match self {
            Recipe::Builtin { name, version } => format!("{name} v{version}"),
            Recipe::Command { argv, version } => match version {
                Some(v) => format!("command {} ({v})", argv[0]),
                None => format!("command {}", argv[0]),
            },
        }
    }
}

/// In full, for "recipe changed: OLD -> NEW": a built-in recipe's name and version, or a
/// command's whole argv template and declared version.
impl fmt::Display for Recipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recipe::Builtin { name, version } => write!(f, "{name} v{version}"),
            Recipe::Command { argv, version } => {
                write!(f, "{argv:?}")?;
                if let Some(v) = version {
                    write!(f, " version {v:?}")?;
                }
                Ok(())
            }
        }
    }
}

/// A recipe as the Studyfile declares it: a built-in recipe's name (the catalog knows its
/// version), or a command with what only a command declares.
#[derive(Clone, Debug, PartialEq)]
pub enum RecipeDecl {
    /// A built-in recipe by name.
    Builtin(String),
    /// An external command: argv template, optional version, output form (`dir` or an
    /// extension), and the parameters it reads beyond its placeholders.
    Command {
        argv: Vec<String>,
        version: Option<String>,
        output: Option<String>,
        params: Vec<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_full_descriptions() {
        let b = Recipe::Builtin {
            name: "fit".into(),
            version: 3,
        };
        assert_eq!(b.describe(), "fit v3");
        assert_eq!(b.to_string(), "fit v3");
        let c = Recipe::Command {
            argv: vec!["train".into(), "{output}".into()],
            version: Some("abc".into()),
        };
        assert_eq!(c.describe(), "command train (abc)");
        assert_eq!(c.to_string(), "[\"train\", \"{output}\"] version \"abc\"");
    }
}
