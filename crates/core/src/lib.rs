//! dualstream-core: the spiking neural network engine behind the `dualstream` npm package.
//! A plain Rust library (no Node dependency): tensors, kernels, neurons, layers, blocks,
//! backpropagation through time, losses and optimizers.

pub mod energy;
pub mod error;
pub mod fold;
pub mod kernels;
pub mod loss;
pub mod model;
pub mod neuron;
pub mod nn;
pub mod profile;
pub mod optim;
pub mod rng;
pub mod spec;
pub mod tensor;

pub use error::{Error, Result};
pub use tensor::Tensor;
