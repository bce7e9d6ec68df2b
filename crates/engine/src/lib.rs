//! studymake's engine: build a computational study the way make builds a program.
//!
//! The engine knows targets, keys, manifests and processes, and no science: what a study is made
//! of (its artifact kinds, which parameters are structural, how a structural fact is read back
//! from an artifact) comes from a [`catalog::Catalog`] the study layer implements and the binary
//! hands in. Recipes never touch the store; the engine never imports a recipe.

pub mod build;
pub mod catalog;
pub mod commands;
pub mod error;
pub mod executor;
pub mod freshness;
pub mod graph;
pub mod job;
pub mod key;
pub mod lock;
pub mod params;
pub mod progress;
pub mod recipe;
pub mod stamp;
pub mod store;
pub mod studyfile;
pub mod sys;
#[cfg(test)]
mod testing;
pub mod verify;

pub use error::{Error, Result};
