//! Target keys and content digests: what makes a target fresh, written down.
//!
//! # The key design
//!
//! A target's **key** is `blake3(encode(material))`, where the material is:
//!
//! 1. the **key schema version** ([`KEY_SCHEMA`]), so a change of this design invalidates every
//!    key at once instead of silently comparing unlike things;
//! 2. the **recipe**: a built-in recipe's name and version (bumped whenever its output for the
//!    same inputs may change), or an external command's *argv template* (placeholders not yet
//!    substituted) and its optional declared `version` string;
//! 3. the **output form**: a directory, or a file and its extension;
//! 4. the target's **own parameters**: exactly the ones its recipe reads, fully resolved
//!    (recipe default, `[params]`, profile, condition). A condition's structural parameters and
//!    its condition parameters (its seed) are always among them for a condition's targets, so
//!    two conditions can never share an output by accident;
//! 5. the **content digests of its inputs**, by role: the blake3 of an input file's bytes, or of a
//!    directory's canonical listing (below). Never a path or a timestamp;
//! 6. the **bindings**: every other value an external command's argv is given, by placeholder:
//!    `{target}` and `{condition}` (names), and `{input.ROLE}` as the input's path *relative to
//!    the study directory*. What reaches the command line is in the key, by construction (key
//!    schema 2): two targets whose commands differ only in a name they are told can never share
//!    a key, so the cache never hands one target's bytes to another.
//!
//! **Kept out**, on purpose: absolute paths (moving or renaming the study keeps it fresh; input
//! paths are bound study-relative), the target's name and kind *unless the command line is given
//! them* (identical work of built-in recipes shares a cache entry), `{output}` and `{report}`
//! (scratch paths, new on every run: a recipe whose bytes depend on them is non-deterministic,
//! which the determinism rule below already excludes), mtimes (touching a file changes
//! nothing; containers zero nanoseconds), thread counts, hostnames, user names, the studymake
//! version (recipes carry their own versions), the profile's *name* (only the values it sets
//! matter, so `--profile quick` and an equal `[params]` give equal keys).
//!
//! **Canonical encoding**: the material is a struct of tagged enums, strings and `BTreeMap`s
//! (sorted), encoded with bincode 2.0.1 (pinned) in its standard configuration with big-endian,
//! fixed-width integers. Integers and floats are distinct tags (`2` is not `2.0`); floats are
//! their IEEE-754 bits; NaN and infinities are refused when the Studyfile is read. A test pins
//! one known key of made-up material, and the study layer pins one of its own real keys; any change
//! to the material or its encoding must update this essay, those tests and [`KEY_SCHEMA`]. (Key
//! schema 2 added the bindings, item 6: every key changed once, and a state log of schema 1 is
//! read and upgraded, each target explained as "an older key schema".)
//!
//! **Digests**: a file's digest is blake3 of its bytes. A directory's digest is blake3 over the
//! sorted list of its regular files, each as (relative path with `/`, length-prefixed; the file's
//! digest); empty directories do not count and symbolic links are refused.
//!
//! **Early cutoff** follows from (5): when an input is rebuilt to identical bytes its digest is
//! unchanged, so its dependents' keys are unchanged and they stay fresh.
//!
//! **Determinism**: recipes must write identical bytes for identical keys (fixed seeds, fixed
//! reduction orders, no timestamps in files); otherwise early cutoff stops working for them and
//! `verify` cannot compare a rebuild with the record. Fresh means: the recorded key equals the
//! current key *and* the outputs are the recorded bytes.

use crate::error::{Error, Result};
use crate::params::{Params, Value};
use crate::recipe::Recipe;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// Version of the key material and its encoding.
pub const KEY_SCHEMA: u32 = 2;

/// A 32-byte blake3 digest (of content, or of key material). Hex in JSON, bytes in binary.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.hex())
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            Digest::from_hex(&s).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
        } else {
            Ok(Digest(<[u8; 32]>::deserialize(d)?))
        }
    }
}

impl Digest {
    /// Lowercase hex, 64 characters.
    pub fn hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// The first 12 hex characters, for messages.
    pub fn short(&self) -> String {
        self.hex()[..12].to_string()
    }

    /// Parse 64 hex characters.
    pub fn from_hex(s: &str) -> Option<Digest> {
        blake3::Hash::from_hex(s)
            .ok()
            .map(|h| Digest(*h.as_bytes()))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.short())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.hex())
    }
}

/// A parameter value in the key: an externally tagged enum so no two types collide.
#[derive(Serialize)]
enum KeyValue<'a> {
    Bool(bool),
    Int(i64),
    Float(u64),
    Str(&'a str),
}

impl<'a> From<&'a Value> for KeyValue<'a> {
    fn from(v: &'a Value) -> Self {
        match v {
            Value::Bool(b) => KeyValue::Bool(*b),
            Value::Int(i) => KeyValue::Int(*i),
            Value::Float(f) => KeyValue::Float(f.to_bits()),
            Value::Str(s) => KeyValue::Str(s),
        }
    }
}

/// Everything a key is made of, owned, so it can be recorded and compared to explain staleness.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyMaterial {
    pub recipe: Recipe,
    /// `"dir"` or the file extension.
    pub output: String,
    pub params: Params,
    /// Input role -> content digest.
    pub inputs: BTreeMap<String, Digest>,
    /// Placeholder -> the value an external command's argv is given (item 6 of the essay).
    #[serde(default)]
    pub bindings: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Encoded<'a> {
    schema: u32,
    recipe: &'a Recipe,
    output: &'a str,
    params: KeyParams<'a>,
    inputs: &'a BTreeMap<String, Digest>,
    bindings: &'a BTreeMap<String, String>,
}

/// The parameters as a map of [`KeyValue`]s, in the order of their names (a `BTreeMap`'s own).
struct KeyParams<'a>(&'a Params);

impl Serialize for KeyParams<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k.as_str(), KeyValue::from(v))))
    }
}

impl KeyMaterial {
    fn encoded(&self) -> Encoded<'_> {
        Encoded {
            schema: KEY_SCHEMA,
            recipe: &self.recipe,
            output: &self.output,
            params: KeyParams(&self.params),
            inputs: &self.inputs,
            bindings: &self.bindings,
        }
    }

    fn config() -> impl bincode::config::Config {
        bincode::config::standard()
            .with_big_endian()
            .with_fixed_int_encoding()
    }

    /// The canonical bytes hashed into the key.
    pub fn encode(&self) -> Vec<u8> {
        // Most materials encode to a few hundred bytes: one allocation, no regrowth.
        let mut out = Vec::with_capacity(1024);
        bincode::serde::encode_into_std_write(self.encoded(), &mut out, Self::config())
            .expect("key material always encodes");
        out
    }

    /// The key: blake3 of [`KeyMaterial::encode`].
    pub fn key(&self) -> Digest {
        Digest(*blake3::hash(&self.encode()).as_bytes())
    }
}

/// Files at or above this size are hashed memory-mapped on several threads.
const MMAP_THRESHOLD: u64 = 4 << 20;

/// blake3 of a regular file's bytes. The file is opened without blocking and its open descriptor
/// checked, so a FIFO or a device put there is refused, never read (nothing hangs).
pub fn digest_file(path: &Path) -> Result<Digest> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut hasher = blake3::Hasher::new();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::data(
            path,
            format!(
                "is {}; expected a regular file",
                crate::filetype::describe(meta.file_type())
            ),
        ));
    }
    let len = meta.len();
    if len >= MMAP_THRESHOLD {
        hasher
            .update_mmap_rayon(path)
            .map_err(|e| Error::io(path, e))?;
    } else {
        hasher
            .update_reader(&file)
            .map_err(|e| Error::io(path, e))?;
    }
    Ok(Digest(*hasher.finalize().as_bytes()))
}

/// The regular files under `dir`, as sorted `/`-separated relative paths. Symlinks are refused.
pub fn list_tree(dir: &Path) -> Result<Vec<String>> {
    fn walk(root: &Path, rel: &str, out: &mut Vec<String>) -> Result<()> {
        let here = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(rel)
        };
        let entries = std::fs::read_dir(&here).map_err(|e| Error::io(&here, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&here, e))?;
            let name = entry.file_name();
            let name = name
                .to_str()
                .ok_or_else(|| Error::data(entry.path(), "file names in outputs must be UTF-8"))?;
            let child = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            let ft = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
            if ft.is_symlink() {
                return Err(Error::data(
                    entry.path(),
                    "outputs may not contain symbolic links (they could point outside the study)",
                ));
            } else if ft.is_dir() {
                walk(root, &child, out)?;
            } else if ft.is_file() {
                out.push(child);
            } else {
                return Err(Error::data(
                    entry.path(),
                    format!(
                        "is {}; outputs may contain only regular files and directories",
                        crate::filetype::describe(ft)
                    ),
                ));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out)?;
    out.sort();
    Ok(out)
}

/// Combine per-file digests of a directory into its digest (the listing must be sorted).
pub fn digest_listing<'a>(files: impl IntoIterator<Item = (&'a str, &'a Digest)>) -> Digest {
    let mut h = blake3::Hasher::new();
    h.update(b"studymake-tree-v1\0");
    for (rel, d) in files {
        h.update(&(rel.len() as u64).to_be_bytes());
        h.update(rel.as_bytes());
        h.update(&d.0);
    }
    Digest(*h.finalize().as_bytes())
}

/// Digest of a file or directory; directories also return their per-file digests.
pub fn digest_path(path: &Path) -> Result<(Digest, Vec<(String, Digest)>)> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        let files = list_tree(path)?;
        let digests: Vec<(String, Digest)> = files
            .into_iter()
            .map(|rel| {
                let d = digest_file(&path.join(&rel))?;
                Ok((rel, d))
            })
            .collect::<Result<_>>()?;
        let d = digest_listing(digests.iter().map(|(r, d)| (r.as_str(), d)));
        Ok((d, digests))
    } else if meta.is_file() {
        Ok((digest_file(path)?, Vec::new()))
    } else {
        Err(Error::data(path, "expected a regular file or a directory"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn material() -> KeyMaterial {
        let mut params = Params::new();
        params.insert("level".into(), Value::Int(2));
        params.insert("seed".into(), Value::Int(42));
        params.insert("rate".into(), Value::Float(1e9));
        let mut inputs = BTreeMap::new();
        inputs.insert("source".into(), Digest(*blake3::hash(b"source").as_bytes()));
        KeyMaterial {
            recipe: Recipe::Builtin {
                name: "fit".into(),
                version: 1,
            },
            output: "npz".into(),
            params,
            inputs,
            bindings: BTreeMap::new(),
        }
    }

    /// Pins the key design: if this changes, update the essay above and KEY_SCHEMA.
    #[test]
    fn known_key_is_pinned() {
        assert_eq!(
            material().key().hex(),
            "4e7dd0a3ab861a37856b0a88538d1b8d04dcf955002aca2dddefb19f458e4ce7"
        );
    }

    #[test]
    fn every_part_of_the_material_changes_the_key() {
        let base = material().key();
        let mut m = material();
        m.params.insert("level".into(), Value::Int(1));
        assert_ne!(m.key(), base);
        let mut m = material();
        m.params.insert("seed".into(), Value::Float(42.0));
        assert_ne!(m.key(), base, "an int and an equal float must differ");
        let mut m = material();
        m.recipe = Recipe::Builtin {
            name: "fit".into(),
            version: 2,
        };
        assert_ne!(m.key(), base);
        let mut m = material();
        m.inputs.insert("source".into(), Digest([0; 32]));
        assert_ne!(m.key(), base);
        let mut m = material();
        m.output = "dir".into();
        assert_ne!(m.key(), base);
        let mut m = material();
        m.bindings.insert("condition".into(), "a".into());
        assert_ne!(m.key(), base, "a name the command is given is in the key");
        let mut b = material();
        b.bindings.insert("condition".into(), "b".into());
        assert_ne!(m.key(), b.key());
        assert_eq!(
            material().key(),
            base,
            "the key is a pure function of the material"
        );
    }

    #[test]
    fn tree_digest_depends_on_names_and_bytes_only() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in [a.path(), b.path()] {
            std::fs::create_dir_all(d.join("sub")).unwrap();
            std::fs::write(d.join("x.txt"), b"x").unwrap();
            std::fs::write(d.join("sub/y.txt"), b"y").unwrap();
        }
        let (da, files) = digest_path(a.path()).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].0, "sub/y.txt");
        assert_eq!(da, digest_path(b.path()).unwrap().0);
        std::fs::write(b.path().join("x.txt"), b"z").unwrap();
        assert_ne!(da, digest_path(b.path()).unwrap().0);
        std::os::unix::fs::symlink("/etc", b.path().join("link")).unwrap();
        assert!(digest_path(b.path()).is_err());
    }
}
