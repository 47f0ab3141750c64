//! The memory-lean training mode of a sequence: a layer that is a segment
//! ([`Layer::is_segment`], a residual block) frees what it stored right after its forward, and
//! its forward runs again, from the boundary the sequence keeps anyway, just before its
//! backward. The buffers a forward changes (BN running statistics, dropout streams) are set
//! back to their values before the first forward for that second run and restored after it,
//! so the second run computes the same numbers bit for bit and the running statistics move
//! once per step.
//!
//! Inside a sequence the mode also recomputes per layer: a conv whose output only the fused
//! BN + neuron pair after it reads (the stem, and each conv of a block's branch) frees that
//! output once the pair ran, and runs again from its kept input (the sequence input or a
//! bit-packed spike map) just before the pair's backward, which frees it again. A conv
//! computes the same bits from the same input, so the gradients stay those of the default mode,
//! and only one such output at a time is live.
use super::{grad_pair, kept_boundary, BackwardIo, Sequential, Stored};
use crate::error::Result;
use crate::kernels::scratch::{lend_tensor, reclaim_tensor};
use crate::layer::{downcast_ref, timed, Layer, Walk};
use crate::nn::Conv2d;
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

    /// The backward of segment `i` (in the memory-lean mode after its second forward). A
    /// segment's backward reads only the shape of its output gradient, never its output
    /// (`SewBlock`): where no other layer reads that output either (`Stored::Unread`), its
    /// shared buffer goes to the work-buffer pool for the segment's own backward, which
    /// borrows it, and an empty tensor stands for it.
    pub(super) fn backward_segment(&mut self, i: usize, io: &mut BackwardIo) -> Result<()> {
        let input = io.input;
        let n = self.layers.len();
        let lend = i < n - 1
            && self.stored[i] == Stored::Unread
            && !self.layers[i].backward_reads().output;
        if !lend {
            return self.backward_layer(i, io);
        }
        lend_tensor(std::mem::take(&mut self.shared[i % 2]));
        self.shared_holds[i % 2] = None;
        if i > 0 {
            self.unpack(i - 1, input);
        }
        let x = if i == 0 {
            input
        } else {
            kept_boundary(&self.activations, &self.shared, &self.stored, i - 1)
        };
        let (from, g_in) = grad_pair(&mut self.grad_buffers, i, io.grad_input);
        let run =
            timed(&mut *self.layers[i], true, |l| l.backward(x, &Tensor::default(), from, g_in));
        self.shared[i % 2] = reclaim_tensor();
        run
    }
}

impl Sequential {
    /// After the fused pair whose BN is layer `k + 1` ran forward: frees conv `k`'s output if
    /// the pair was its only reader and the conv's input stays available for the backward.
    pub(super) fn drop_conv_output(&mut self, k: usize) {
        let input_kept = k == 0 || matches!(self.stored[k - 1], Stored::Dense | Stored::Packed);
        let repeated_stem = k == 0 && self.one_step.is_some();
        if self.lean_ran
            && input_kept
            && !repeated_stem
            && self.stored[k] == Stored::Dense
            && downcast_ref::<Conv2d>(self.layers[k].as_ref()).is_some()
        {
            self.activations[k] = Tensor::default();
            self.conv_dropped[k] = true;
        }
    }

    /// Before the backward of the fused pair whose BN is layer `bn`: conv `bn - 1`'s output
    /// again, if [`Sequential::drop_conv_output`] freed it.
    pub(super) fn regain_conv_output(&mut self, bn: usize, input: &Tensor) -> Result<()> {
        let k = bn.wrapping_sub(1);
        if bn == 0 || !self.conv_dropped[k] {
            return Ok(());
        }
        if k > 0 {
            self.unpack(k - 1, input);
        }
        let (before, rest) = self.activations.split_at_mut(k);
        let x = if k == 0 {
            input
        } else if self.stored[k - 1] == Stored::Dense {
            &before[k - 1]
        } else {
            &self.shared[(k - 1) % 2]
        };
        self.layers[k].forward(x, &mut rest[0], true)
    }

    /// After that pair's backward: frees the recomputed conv output again.
    pub(super) fn release_conv_output(&mut self, bn: usize) {
        if bn > 0 && self.conv_dropped[bn - 1] {
            self.activations[bn - 1] = Tensor::default();
        }
    }
}
