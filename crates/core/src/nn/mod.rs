//! Layers and blocks built from kernels and neurons, and the factory that builds them from a spec.
pub mod batch_norm;
pub mod conv2d;
pub mod dropout;
pub mod dual_stream;
pub mod dual_stream_block;
pub mod flatten;
#[cfg(test)]
mod gradcheck;

pub mod linear;
pub mod pool;
pub mod relu;
pub mod residual;
pub mod sequential;
pub mod sew_block;
pub mod spiking_resnet_block;

pub use crate::layer::{AuditEntry, Buffer, Layer, Param};
pub use batch_norm::BatchNorm2d;
pub use conv2d::Conv2d;
pub use dropout::Dropout;
pub use dual_stream::DualStream;
pub use flatten::Flatten;
pub use linear::Linear;
pub use pool::{AvgPool2d, GlobalAvgPool, MaxPool2d};
pub use relu::Relu;
pub use sequential::Sequential;
pub use sew_block::SewBlock;
pub use spiking_resnet_block::SpikingResnetBlock;

use crate::error::Result;
use crate::neuron::{NeuronKind, NeuronLayer};
use crate::rng::Rng;
use crate::spec::LayerSpec;

/// Builds one layer named `name` (its path, e.g. `layers.3`). Each layer draws its initial
/// weights from its own stream forked from `rng`, so adding a layer does not shift the others.
pub fn build_layer(name: &str, spec: &LayerSpec, rng: &mut Rng) -> Result<Box<dyn Layer>> {
    let mut own = rng.fork(0);
    Ok(match spec {
        LayerSpec::Conv2d(s) => Box::new(Conv2d::new(name, s, &mut own)?),
        LayerSpec::Linear(s) => Box::new(Linear::new(name, s, &mut own)?),
        LayerSpec::BatchNorm2d(s) => Box::new(BatchNorm2d::new(name, s)?),
        LayerSpec::MaxPool2d(s) => Box::new(MaxPool2d::new(name, s)?),
        LayerSpec::AvgPool2d(s) => Box::new(AvgPool2d::new(name, s)?),
        LayerSpec::GlobalAvgPool => Box::new(GlobalAvgPool::new(name)),
        LayerSpec::Flatten => Box::new(Flatten::new(name)),
        LayerSpec::Dropout(s) => Box::new(Dropout::new(name, s, own)?),
        LayerSpec::If(s) => Box::new(NeuronLayer::new(name, NeuronKind::If, s)?),
        LayerSpec::Lif(s) => Box::new(NeuronLayer::new(name, NeuronKind::Lif, s)?),
        LayerSpec::Plif(s) => Box::new(NeuronLayer::new(name, NeuronKind::Plif, s)?),
        LayerSpec::SewBlock(s) => {
            let (branch, shortcut) = build_paths(name, &s.branch, &s.shortcut, &mut own)?;
            Box::new(SewBlock::new(name, branch, shortcut, s.connect))
        }
        LayerSpec::SpikingResnetBlock(s) => {
            let (branch, shortcut) = build_paths(name, &s.branch, &s.shortcut, &mut own)?;
            let neuron =
                NeuronLayer::new(&format!("{name}.residual"), NeuronKind::If, &s.residual_neuron)?;
            Box::new(SpikingResnetBlock::new(name, branch, shortcut, neuron))
        }
        LayerSpec::Relu => Box::new(Relu::new(name)),
        LayerSpec::DualStream(s) => Box::new(DualStream::new(name, s, &mut own)?),
    })
}

/// A residual block's branch and optional shortcut, named `{name}.branch.*`, `{name}.shortcut.*`.
fn build_paths(
    name: &str,
    branch: &[LayerSpec],
    shortcut: &Option<Vec<LayerSpec>>,
    rng: &mut Rng,
) -> Result<(Sequential, Option<Sequential>)> {
    let branch = build_sequential(&format!("{name}.branch"), branch, rng)?;
    let shortcut = match shortcut {
        Some(layers) => Some(build_sequential(&format!("{name}.shortcut"), layers, rng)?),
        None => None,
    };
    Ok((branch, shortcut))
}

/// Builds layers named `{prefix}.0`, `{prefix}.1`, ...
pub fn build_sequential(prefix: &str, specs: &[LayerSpec], rng: &mut Rng) -> Result<Sequential> {
    let layers = specs
        .iter()
        .enumerate()
        .map(|(i, s)| build_layer(&format!("{prefix}.{i}"), s, rng))
        .collect::<Result<Vec<_>>>()?;
    Sequential::new(prefix, layers)
}
