//! Layers and blocks built from kernels and neurons, and the factory that builds them from a spec.
pub mod batch_norm;
pub mod conv2d;
pub mod dropout;
pub mod dual_stream;
pub mod dual_stream_block;
pub mod flatten;

pub mod linear;
pub mod mean_head;
pub mod pool;
pub mod relu;
pub mod residual;
pub mod sequential;
pub mod sew_block;
#[doc(hidden)]
pub mod sew_chunks;
pub mod shape_layer;
pub mod spiking_resnet_block;
pub mod transformer;

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
use crate::spec::{LayerSpec, LinearSpec};

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
        LayerSpec::BatchNorm1d(s) => Box::new(transformer::BatchNorm1d::new(name, s)?),
        LayerSpec::Tokens => Box::new(transformer::Tokens::new(name)),
        LayerSpec::TokenMean => Box::new(transformer::TokenMean::new(name)),
        LayerSpec::SpikingAttention(s) => Box::new(transformer::SpikingAttention::new(name, s)?),
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

/// The index of the linear that reads the mean at `i` (`tokenMean` or `globalAvgPool`),
/// directly or through a `flatten`.
fn linear_after_mean(specs: &[LayerSpec], i: usize) -> Option<(usize, &LinearSpec)> {
    if !matches!(specs[i], LayerSpec::TokenMean | LayerSpec::GlobalAvgPool) {
        return None;
    }
    let j = match specs.get(i + 1) {
        Some(LayerSpec::Flatten) => i + 2,
        _ => i + 1,
    };
    match specs.get(j) {
        Some(LayerSpec::Linear(l)) => Some((j, l)),
        _ => None,
    }
}

/// Builds layers named `{prefix}.0`, `{prefix}.1`, ... A linear reading a mean over
/// positions is audited and counted on the mean's input (see `mean_head`).
pub fn build_sequential(prefix: &str, specs: &[LayerSpec], rng: &mut Rng) -> Result<Sequential> {
    let mut layers = Vec::with_capacity(specs.len());
    let mut reads_mean = None;
    for (i, spec) in specs.iter().enumerate() {
        let name = format!("{prefix}.{i}");
        if let Some((j, l)) = linear_after_mean(specs, i) {
            let _ = rng.fork(0);
            let linear = format!("{prefix}.{j}");
            let (out, bias) = (l.out_features, l.bias);
            layers.push(match spec {
                LayerSpec::TokenMean => {
                    Box::new(transformer::TokenMean::new(&name).feeding(&linear, out, bias))
                        as Box<dyn Layer>
                }
                _ => Box::new(GlobalAvgPool::new(&name).feeding(&linear, out, bias)),
            });
            reads_mean = Some(j);
        } else if let (true, LayerSpec::Linear(l)) = (reads_mean == Some(i), spec) {
            layers.push(Box::new(Linear::new(&name, l, &mut rng.fork(0))?.reading_mean()));
        } else {
            layers.push(build_layer(&name, spec, rng)?);
        }
    }
    Sequential::new(prefix, layers)
}
