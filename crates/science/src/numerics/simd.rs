//! The vector instruction sets this CPU has, and running numeric code compiled for the widest.
//!
//! The project builds for baseline x86-64 (SSE2), so loops only use AVX2 or AVX-512 when they
//! are inlined into a function compiled for them (`#[target_feature]`, chosen at run time from
//! [`Simd::detect`]). Rust never reorders or fuses floating-point operations, so the same code
//! gives the same bits on every instruction set; only its speed changes.

/// An instruction set level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Simd {
    /// Baseline x86-64 (SSE2) or any other target.
    Baseline,
    /// AVX2 and FMA.
    Avx2,
    /// AVX-512 (F, DQ, VL) with AVX2 and FMA.
    Avx512,
}

impl Simd {
    /// The widest instruction set this CPU has.
    pub fn detect() -> Simd {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Simd::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Simd::Avx2;
            }
        }
        Simd::Baseline
    }

    /// Every instruction set this CPU can run, narrowest first.
    pub fn available() -> Vec<Simd> {
        let best = Simd::detect();
        [Simd::Baseline, Simd::Avx2, Simd::Avx512]
            .into_iter()
            .filter(|s| *s <= best)
            .collect()
    }

    /// `self`, or the widest level this CPU has when `self` is wider.
    pub fn usable(self) -> Simd {
        self.min(Simd::detect())
    }
}
