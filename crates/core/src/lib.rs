//! dualstream-core: the spiking neural network engine behind the `dualstream` npm package.
//! A plain Rust library (no Node dependency): tensors, kernels, neurons, layers, blocks,
//! backpropagation through time, losses and optimizers.

pub mod energy;
pub mod error;
pub mod fold;
pub mod kernels;
pub mod layer;
pub mod limits;
pub mod loss;
pub mod model;
pub mod neuron;
pub mod nn;
pub mod optim;
pub mod profile;
pub mod rng;
pub mod spec;
pub mod tensor;
pub mod training_memory;

pub use error::{Error, Result};
pub use tensor::Tensor;

/// Runs `f` on a thread of rayon's global pool (inline when already on a pool thread), the
/// caller waiting. Every parallel kernel of a training step or an evaluation then starts from
/// a pool thread, which takes its own share of the work at once, instead of being handed to
/// the pool by an outside thread that sleeps until it ends. A panic in `f` reaches the caller.
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}
