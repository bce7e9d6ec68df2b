//! studymake's engine: build a computational study the way make builds a program.
//!
//! The engine knows targets, keys, manifests and processes, and no science: what a study is made
//! of (its artifact kinds, which parameters are structural, how a structural fact is read back
//! from an artifact) comes from a [`catalog::Catalog`] the study layer implements and the binary
//! hands in. Recipes never touch the store; the engine never imports a recipe.
//!
//! * the declaration: [`studyfile`] (the file), [`params`], [`recipe`], [`catalog`] (the
//!   study's shape and facts), [`graph`] (the expanded targets);
//! * what is fresh: [`key`] (the key design, written at its top), [`freshness`], [`stamp`] (the
//!   no-op shortcut);
//! * building: [`build`] (the scheduler, preparing jobs, publishing), [`job`] (the contract with
//!   a worker), [`executor`] (local, external commands, Slurm), [`store`] (state log, manifests,
//!   cache), [`lock`], [`progress`];
//! * [`verify`] (the audit), [`commands`] (what the command line runs), [`error`], [`filetype`]
//!   (file types in words), and [`sys`],
//!   the engine's only unsafe code.

pub mod build;
pub mod catalog;
pub mod commands;
pub mod error;
pub mod executor;
pub mod filetype;
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
