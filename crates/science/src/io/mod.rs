//! Files: NumPy `.npy`/`.npz` read safely and written deterministically ([`npy`]), and the
//! simulated dataset's data contract ([`dataset`]).

pub mod dataset;
pub mod npy;
