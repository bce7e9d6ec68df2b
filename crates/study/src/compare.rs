//! `studymake compare`: the study's own alignment and metric pipeline on any two complex images
//! (a reconstruction from any program and a ground truth), as the command prints it. Writes
//! nothing.

use crate::error::Result;
use std::path::Path;

/// Score `reconstruction` against `ground_truth` (each `.npy`, or `.npz` with one complex 2-D
/// array or the member `key`), registering first with `register`; the text to print: a table,
/// or JSON with `json`.
pub fn compare(
    reconstruction: &Path,
    ground_truth: &Path,
    key: Option<&str>,
    register: bool,
    json: bool,
) -> Result<String> {
    let report = studymake_science::evaluation::compare::compare(
        reconstruction,
        ground_truth,
        key,
        register,
    )?;
    Ok(if json {
        format!("{}\n", report.to_json())
    } else {
        report.to_table()
    })
}
