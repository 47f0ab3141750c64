//! A trunk's stage: a dual-stream block, or one pooling per stream.
use crate::error::Result;
use crate::layer::Layer;
use crate::nn::dual_stream_block::DualStreamBlock;
use crate::tensor::Tensor;

// A trunk holds a handful of stages, built once: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[doc(hidden)]
pub enum Stage {
    Block(DualStreamBlock),
    /// The same pooling, once per stream (each keeps its own argmax for backward).
    Pool {
        spike: Box<dyn Layer>,
        acc: Box<dyn Layer>,
    },
}

/// Stage `i` on `(o_in, a_in)`: a block's forward (Some(sum of its O) where it took it on the
/// way), or the pooling of both streams.
pub(super) fn run_stage(
    stage: &mut Stage,
    (o_in, a_in): (&Tensor, &Tensor),
    (o_out, a_out): (&mut Tensor, &mut Tensor),
    aap: bool,
    training: bool,
) -> Result<Option<f64>> {
    match stage {
        Stage::Block(b) => b.forward(o_in, o_out, aap.then_some((a_in, a_out)), training),
        Stage::Pool { spike, acc } => {
            spike.forward(o_in, o_out, training)?;
            if aap {
                acc.forward(a_in, a_out, training)?;
            }
            Ok(None)
        }
    }
}

pub(super) fn release(stage: &mut Stage) {
    match stage {
        Stage::Block(b) => b.release_stored(),
        Stage::Pool { spike, acc } => {
            spike.release_stored();
            acc.release_stored();
        }
    }
}
