//! Fuzz target: bytes as a `.npy` file through every reader the recipes use. Any input must give
//! an array or an `Error::Data`; a panic, an abort, an allocation beyond what the file holds or a
//! hang is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ndarray::{Ix1, Ix2, Ix3, IxDyn};
use num_complex::{Complex32, Complex64};
use studymake_science::io::npy;

fuzz_target!(|data: &[u8]| {
    let path = scratch("fuzz.npy");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let _ = npy::is_zip(&path);
    let _ = npy::npy_header(&path);
    let _ = npy::read_npy::<f32, IxDyn>(&path);
    let _ = npy::read_npy::<f64, Ix1>(&path);
    let _ = npy::read_npy::<i64, Ix2>(&path);
    let _ = npy::read_npy::<i32, IxDyn>(&path);
    let _ = npy::read_npy::<Complex64, Ix3>(&path);
    let _ = npy::read_npy::<Complex32, IxDyn>(&path);
    let _ = npy::read_complex2_npy(&path);
});

/// A per-process file in a RAM-backed directory when there is one.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("studymake-{}-{name}", std::process::id()))
}
