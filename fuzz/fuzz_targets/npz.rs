//! Fuzz target: bytes as a `.npz` archive through the archive reader, every key's header and
//! payload, the dataset loader and the dataset summary. Any input must give a value or an
//! `Error`; a panic, an abort, an allocation beyond what the archive holds or a hang is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ndarray::{Ix0, IxDyn};
use num_complex::{Complex32, Complex64};
use studymake_science::io::dataset::{Dataset, DatasetSummary};
use studymake_science::io::npy::{self, NpzFile};

fuzz_target!(|data: &[u8]| {
    let path = scratch("fuzz.npz");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(mut f) = NpzFile::open(&path) {
        for key in f.keys() {
            let _ = f.has(&key);
            let _ = f.header(&key);
            let _ = f.read::<f32, IxDyn>(&key);
            let _ = f.read::<f64, IxDyn>(&key);
            let _ = f.read::<i64, IxDyn>(&key);
            let _ = f.read::<i32, Ix0>(&key);
            let _ = f.read::<Complex32, IxDyn>(&key);
            let _ = f.read::<Complex64, IxDyn>(&key);
            let _ = f.scalar::<i64>(&key);
            let _ = npy::read_complex2_npz(&mut f, &key);
        }
        let _ = f.read::<f32, IxDyn>("missing");
    }
    let _ = Dataset::load(&path);
    let _ = DatasetSummary::read(&path);
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
