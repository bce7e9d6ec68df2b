//! studymake: build a computational study the way make builds a program.
//!
//! The crate has two halves that meet only through [`job`] and [`catalog`]:
//!
//! * the **engine** (`studyfile`, `graph`, `key`, `store`, `lock`, `scheduler`, `executor`,
//!   `verify`, `cli`), which knows targets, keys, manifests and processes but no science;
//! * the **science** (`science::*`, numeric libraries usable on their own) and the **recipes**
//!   (`recipes::*`, which turn a [`job::JobSpec`] into artifacts using the science).
//!
//! The engine never imports `science` or `recipes`; recipes never touch the store. The binary's
//! composition root (`cli`) hands the recipe catalog to the engine as a trait object.

pub mod catalog;
pub mod cli;
pub mod error;
pub mod executor;
pub mod graph;
pub mod job;
pub mod key;
pub mod lock;
pub mod params;
pub mod progress;
pub mod recipes;
pub mod scheduler;
pub mod science;
pub mod slurm;
pub mod slurm_executor;
pub mod stamp;
pub mod store;
pub mod studyfile;
pub mod verify;

pub use error::{Error, Result};
