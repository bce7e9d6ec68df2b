//! Helpers shared by the training benchmarks: the process's CPU time and numeric arguments.

// Each bench crate includes this module and uses only part of it.
#![allow(dead_code)]

/// CPU seconds (user + system) used by this process so far, all threads.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 * 1e-6;
        t(u.ru_utime) + t(u.ru_stime)
    }
}

/// The command-line arguments that parse as numbers, in order (cargo's `--bench` and other
/// flags are skipped).
pub fn numeric_args() -> Vec<usize> {
    std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect()
}
