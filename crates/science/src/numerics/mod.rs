//! Numerics the physics and the evaluation build on: 2-D FFTs ([`fft`]), scipy-compatible
//! Gaussian filtering ([`gaussian`]), the exact seeded Poisson sampler ([`poisson`]) and the
//! vector code it runs on ([`simd`]).

pub mod fft;
pub mod gaussian;
pub mod poisson;
pub mod simd;
