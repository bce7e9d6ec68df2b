//! The physics of the study's data: probes ([`probe`]), the lines object ([`object`]), the
//! simulation of a diffraction dataset ([`simulate`]) and the grouping of its patterns
//! ([`grouping`]).

pub mod grouping;
pub mod object;
pub mod probe;
pub mod simulate;
