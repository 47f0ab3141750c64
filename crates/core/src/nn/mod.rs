//! Layers and blocks built from kernels and neurons.
pub mod layer;

pub use layer::{Buffer, Layer, Param};
pub mod batch_norm;
pub mod conv2d;
pub mod dropout;
pub mod flatten;
pub mod linear;
pub mod pool;
#[cfg(test)]
mod gradcheck;
