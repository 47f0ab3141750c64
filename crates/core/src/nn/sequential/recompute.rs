//! The memory-lean training mode of a sequence: a layer that is a segment
//! ([`Layer::is_segment`], a residual block) frees what it stored right after its forward, and
//! its forward runs again, from the boundary the sequence keeps anyway, just before its
//! backward. The buffers a forward changes (BN running statistics, dropout streams) are set
//! back to their values before the first forward for that second run and restored after it,
//! so the second run computes the same numbers bit for bit and the running statistics move
//! once per step.
use super::{kept_boundary, Sequential};
use crate::error::Result;
use crate::layer::{Layer, Walk};
use crate::tensor::Tensor;

/// Runs `forward` on segment `layer` for the memory-lean mode: `before` gets the buffers as
/// they were before it, and the layer frees its stores afterwards.
pub(crate) fn lean_forward<R>(
    layer: &mut dyn Layer,
    before: &mut Vec<Tensor>,
    forward: impl FnOnce(&mut dyn Layer) -> Result<R>,
) -> Result<R> {
    *before = layer.buffer_values();
    let run = forward(&mut *layer);
    layer.release_stored();
    run
}

/// Runs the training forward of segment `layer` again on `input` (its output goes to a
/// scratch tensor that is freed: the caller keeps the output boundary), with the buffers set
/// to `before` for the run and restored afterwards.
pub(crate) fn rerun_forward(
    layer: &mut dyn Layer,
    before: &[Tensor],
    forward: impl FnOnce(&mut dyn Layer) -> Result<()>,
) -> Result<()> {
    let after = layer.buffer_values();
    layer.set_buffer_values(before);
    let run = forward(&mut *layer);
    layer.set_buffer_values(&after);
    run
}

impl Sequential {
    /// Whether layer `i` ran as a segment of the memory-lean mode in the last forward.
    pub(super) fn lean_segment(&self, i: usize) -> bool {
        self.lean_ran && self.layers[i].is_segment()
    }

    /// Before the backward of segment `i`: its forward once more, from the kept input.
    pub(super) fn rerun_segment(&mut self, i: usize, input: &Tensor) -> Result<()> {
        if i > 0 {
            self.unpack(i - 1, input);
        }
        let (activations, shared, stored) = (&self.activations, &self.shared, &self.stored);
        let x = if i == 0 { input } else { kept_boundary(activations, shared, stored, i - 1) };
        let before = &self.segment_buffers[i];
        rerun_forward(&mut *self.layers[i], before, |layer| {
            let mut output = Tensor::default();
            layer.forward(x, &mut output, true)
        })
    }
}
