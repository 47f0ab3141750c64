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
use super::plan::FusedOp;
use super::{grad_pair, kept_boundary, BackwardIo, Sequential, Stored};
use crate::error::Result;
use crate::kernels::scratch::{
    empty_idle_tensors, lend_tensor, reclaim_smallest_tensor, reclaim_tensor,
};
use crate::layer::{downcast_ref, timed, Layer, SegmentInput, Walk};
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

    /// Before the backward of segment `i`: its forward once more, from the kept input. Its
    /// output goes to `output` (an idle buffer of the output's size), or to a scratch tensor
    /// that is freed.
    fn rerun_segment(&mut self, i: usize, input: &Tensor, into_shared: bool) -> Result<()> {
        if i > 0 {
            self.unpack(i - 1, input);
        }
        let mut scratch = Tensor::default();
        let [even, odd] = &mut self.shared;
        let (shared_in, shared_out) =
            if i.is_multiple_of(2) { (&*odd, even) } else { (&*even, odd) };
        let x = if i == 0 {
            input
        } else if self.stored[i - 1] == Stored::Dense {
            &self.activations[i - 1]
        } else {
            shared_in
        };
        let output = if into_shared { shared_out } else { &mut scratch };
        let before = &self.segment_buffers[i];
        rerun_forward(&mut *self.layers[i], before, |layer| layer.forward(x, output, true))
    }

    /// Whether segment `i`'s output is read by no backward pass (its own included), so that
    /// its buffer is free during the segment's backward (see [`Self::backward_segment`]).
    fn lends_output(&self, i: usize) -> bool {
        i < self.layers.len() - 1
            && self.stored[i] == Stored::Unread
            && !self.layers[i].backward_reads().output
    }

    /// Whether the second forward of segment `i` runs before the backward of layer `i + 1`
    /// (the plan's step after it, `next`): there layer `i + 1` has not yet written the
    /// segment's output gradient, and that buffer goes to the work-buffer pool for the second
    /// forward, which borrows it.
    pub(super) fn reruns_early(&self, i: usize, next: FusedOp) -> bool {
        self.lean_segment(i)
            && !self.in_place_segment(i)
            && self.lends_output(i)
            && next == FusedOp::Layer(i + 1)
    }

    /// Whether lean segment `i` runs its second forward and backward from its kept input
    /// (bit-packed or f32), in place in its output gradient (see [`Layer::runs_in_place`]).
    pub(super) fn in_place_segment(&self, i: usize) -> bool {
        self.lean_segment(i)
            && i > 0
            && i + 1 < self.layers.len()
            && matches!(self.stored[i - 1], Stored::Packed | Stored::Dense)
            && self.layers[i].runs_in_place()
    }

    /// The second forward and the backward of segment `i` in place (see
    /// [`Self::in_place_segment`]). It reads only its kept input and its output gradient, in
    /// the gradient buffer layer `i + 1` wrote: the sequence's other full-size buffers (both
    /// shared ones and the idle gradient buffer) and the idle ones of the work-buffer pool are
    /// freed for its passes, and the layers before it allocate them again. Its input gradient
    /// lands over its output gradient, and the buffers trade places so that layer `i - 1`
    /// finds it where it reads.
    pub(super) fn backward_segment_in_place(&mut self, i: usize) -> Result<()> {
        self.shared = [Tensor::default(), Tensor::default()];
        self.shared_holds = [None, None];
        self.grad_buffers[i % 2] = Tensor::default();
        empty_idle_tensors();
        // The gradient buffer may have grown to a larger resolution's size in an earlier
        // pass: a copy of this one's size lets that allocation go.
        let grad = &mut self.grad_buffers[(i + 1) % 2];
        if grad.capacity() > grad.numel() {
            let mut fit = Tensor::default();
            fit.copy_from(grad);
            *grad = fit;
        }
        let input = match self.stored[i - 1] {
            Stored::Packed => SegmentInput::Packed(&self.packed[i - 1]),
            _ => SegmentInput::Dense(&self.activations[i - 1]),
        };
        let (before, layer) = (&self.segment_buffers[i], &mut *self.layers[i]);
        rerun_forward(layer, before, |l| timed(l, false, |l| l.rerun_in_place(input)))?;
        let grad = &mut self.grad_buffers[(i + 1) % 2];
        timed(&mut *self.layers[i], true, |l| l.backward_in_place(input, grad))?;
        self.grad_buffers.swap(0, 1);
        Ok(())
    }

    /// The second forward of segment `i` before the backward of layer `i + 1` (see
    /// [`Self::reruns_early`]).
    pub(super) fn rerun_segment_early(&mut self, i: usize, input: &Tensor) -> Result<()> {
        // Layer i + 1 writes its input gradient into grad_buffers[(i + 1) % 2].
        let g = (i + 1) % 2;
        lend_tensor(std::mem::take(&mut self.grad_buffers[g]));
        let run = self.rerun_segment(i, input, true);
        self.grad_buffers[g] = reclaim_tensor();
        run
    }

    /// The backward of segment `i`, after its second forward in the memory-lean mode
    /// (`rerun`). A segment's backward reads only the shape of its output gradient, never its
    /// output (`SewBlock`): where no other layer reads that output either (`Stored::Unread`),
    /// its shared buffer takes the second forward's output and then goes to the work-buffer
    /// pool for the segment's own backward, which borrows it, and an empty tensor stands for
    /// it. The input gradient buffer holds nothing the segment reads until it writes it: it
    /// goes to the pool as well for the second forward and the backward, and the segment's
    /// input gradient lands in a buffer of its own (its first layer's idle gradient buffer,
    /// see `Sequential::input_grad_buffer`).
    pub(super) fn backward_segment(
        &mut self,
        i: usize,
        rerun: bool,
        io: &mut BackwardIo,
    ) -> Result<()> {
        let input = io.input;
        if !self.lends_output(i) {
            if rerun {
                self.rerun_segment(i, input, false)?;
            }
            return self.backward_layer(i, io);
        }
        // Layer i writes its input gradient into grad_buffers[i % 2] (see `grad_pair`).
        let lend_grad = i > 0;
        if lend_grad {
            lend_tensor(std::mem::take(&mut self.grad_buffers[i % 2]));
        }
        if rerun {
            self.rerun_segment(i, input, true)?;
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
        if lend_grad {
            // The pool got one tensor more than it gave back: the input gradient buffer
            // stays here, and the smallest (the empty one that stood in for it) leaves.
            drop(reclaim_smallest_tensor());
        }
        run
    }
}

impl Sequential {
    /// Before conv `k` runs forward, `next` the plan's step after it: if that is a fused
    /// pair whose BN reads the conv output and the memory-lean mode frees that output after
    /// the pair (see [`Sequential::drop_conv_output`]), the conv writes it into a buffer
    /// borrowed from the work-buffer pool, which gets it back then.
    pub(super) fn borrow_conv_output(&mut self, k: usize, next: FusedOp) {
        let pair = matches!(next, FusedOp::BnNeuron { bn, .. } if bn == k + 1);
        let input_kept = k == 0 || !(self.uses_shared(k - 1) && self.recompute[k - 1]);
        self.conv_pooled[k] = self.lean_ran
            && pair
            && input_kept
            && k + 1 < self.layers.len()
            && !self.uses_shared(k)
            && downcast_ref::<Conv2d>(self.layers[k].as_ref()).is_some();
        if self.conv_pooled[k] {
            self.activations[k] = reclaim_tensor();
        }
    }

    /// After the fused pair whose BN is layer `bn` ran forward: frees conv `bn - 1`'s output
    /// if the pair was its only reader and the conv's input stays available for the backward.
    /// A BN that is the sequence's first layer follows no conv.
    pub(super) fn drop_conv_output(&mut self, bn: usize) {
        let Some(k) = bn.checked_sub(1) else { return };
        let input_kept = k == 0 || matches!(self.stored[k - 1], Stored::Dense | Stored::Packed);
        let repeated_stem = k == 0 && self.one_step.is_some();
        if self.lean_ran
            && input_kept
            && !repeated_stem
            && self.stored[k] == Stored::Dense
            && downcast_ref::<Conv2d>(self.layers[k].as_ref()).is_some()
        {
            let output = std::mem::take(&mut self.activations[k]);
            if self.conv_pooled[k] {
                lend_tensor(output);
            }
            self.conv_dropped[k] = true;
        }
    }

    /// Before the backward of the fused pair whose BN is layer `bn`: conv `bn - 1`'s output
    /// again, if [`Sequential::drop_conv_output`] freed it, in a buffer borrowed from the
    /// work-buffer pool. `in_place`: the pair's backward runs in one gradient buffer, and the
    /// conv output goes to the other, idle one for that time instead.
    pub(super) fn regain_conv_output(
        &mut self,
        bn: usize,
        in_place: bool,
        input: &Tensor,
    ) -> Result<()> {
        let Some(k) = bn.checked_sub(1).filter(|&k| self.conv_dropped[k]) else {
            return Ok(());
        };
        if k > 0 {
            self.unpack(k - 1, input);
        }
        self.activations[k] = if in_place {
            std::mem::take(&mut self.grad_buffers[(bn + 1) % 2])
        } else {
            reclaim_tensor()
        };
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

    /// After that pair's backward: hands the recomputed conv output's buffer back to the
    /// gradient buffer or the pool it came from.
    pub(super) fn release_conv_output(&mut self, bn: usize, in_place: bool) {
        if bn > 0 && self.conv_dropped[bn - 1] {
            let buffer = std::mem::take(&mut self.activations[bn - 1]);
            if in_place {
                self.grad_buffers[(bn + 1) % 2] = buffer;
            } else {
                lend_tensor(buffer);
            }
        }
    }
}
