//! The backward pass: executes the last training forward's plan in reverse, each fused step
//! by its own fused backward.
use super::plan::{Concrete, FusedOp};
use super::{grad_pair, kept_boundary, BackwardIo, Sequential};
use crate::error::Result;
use crate::layer::timed;

impl Sequential {
    /// The backward pass proper; `shared` and `grad_buffers` hold the borrowed work buffers.
    pub(super) fn backward_in_buffers(&mut self, io: &mut BackwardIo) -> Result<()> {
        let input = io.input;
        let n = self.layers.len();
        self.shared_holds = [None, None];
        let mut rerun_done = None;
        for k in (0..self.plan.len()).rev() {
            if let Some(&FusedOp::Layer(i)) = k.checked_sub(1).and_then(|p| self.plan.get(p)) {
                if self.reruns_early(i, self.plan[k]) {
                    self.rerun_segment_early(i, input)?;
                    rerun_done = Some(i);
                }
            }
            match self.plan[k] {
                FusedOp::BnNeuron { bn, pool: true, .. } if bn + 2 < n - 1 => {
                    // The pool's backward runs inside its pair's: the pool's gradient goes to
                    // the buffer the neuron would read.
                    self.grad_buffers.swap(0, 1);
                    self.regain_conv_output(bn, false, input)?;
                    self.backward_fused(bn, true, io)?;
                    self.release_conv_output(bn, false);
                }
                FusedOp::BnNeuron { bn, pool, .. } => {
                    if pool {
                        // A pool that ends the sequence runs its own backward.
                        self.backward_layer(bn + 2, io)?;
                    }
                    let in_place = self.pair_in_place(bn, false);
                    self.regain_conv_output(bn, in_place, input)?;
                    self.backward_fused(bn, false, io)?;
                    self.release_conv_output(bn, in_place);
                }
                FusedOp::BnPool { bn } => self.backward_bn_pool(bn, io)?,
                FusedOp::Layer(i) if self.in_place_segment(i) => {
                    self.backward_segment_in_place(i)?;
                    self.layers[i].release_stored();
                }
                FusedOp::Layer(i) if self.lean_segment(i) => {
                    self.backward_segment(i, rerun_done != Some(i), io)?;
                    self.layers[i].release_stored();
                }
                FusedOp::Layer(i) if self.layers[i].is_segment() => {
                    self.backward_segment(i, false, io)?;
                }
                FusedOp::Layer(i) => {
                    self.backward_layer(i, io)?;
                }
                FusedOp::OneStepStem => {
                    self.backward_layer(0, io)?;
                }
                op @ (FusedOp::ConvInference { conv: first, .. }
                | FusedOp::BnNeuronInference { bn: first }) => {
                    // No backward follows an inference pass: the layers say so themselves.
                    for i in (first..=op.last()).rev() {
                        self.backward_layer(i, io)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Backward of the fused pair BN `b`, neuron `b + 1` ([`FusedOp::BnNeuron`]): the neuron pass writes
    /// dL/dy into the grad buffer the neuron would have written, the BN reads it and writes dx
    /// where it would have, so the buffers alternate as in the unfused loop. `pooled`: the max
    /// pool `b + 2` ran inside the pair's forward, and its output's gradient is where the
    /// neuron reads; the neuron pass routes it through the pool's argmax itself.
    #[allow(clippy::too_many_arguments)]
    fn backward_fused(&mut self, b: usize, pooled: bool, io: &mut BackwardIo) -> Result<()> {
        let (input, output, grad_output) = (io.input, io.output, io.grad_output);
        let n = self.layers.len();
        let j = b + 1;
        let in_place = self.pair_in_place(b, pooled);
        // The pair in place reads no output (the neuron checks its gradient's shape), so a
        // boundary not kept as f32 gets no buffer for it: in the memory-lean mode that buffer
        // would be one more full-size map beside the gradient and the recomputed conv output.
        let reads = j < n - 1 && self.layers[j].backward_reads().output;
        if j < n - 1 && !pooled && (reads || !in_place) {
            self.provide(j, reads, input);
        }
        if b > 0 {
            self.unpack(b - 1, input);
        }
        let (activations, shared, stored) = (&self.activations, &self.shared, &self.stored);
        let boundary = |k: usize| kept_boundary(activations, shared, stored, k);
        let x = if b == 0 { input } else { boundary(b - 1) };
        let y = if j == n - 1 { output } else { boundary(j) };
        let [even, odd] = &mut self.grad_buffers;
        let (g_next, g_bn) = if j.is_multiple_of(2) { (odd, even) } else { (even, odd) };
        let (bn_layer, neuron_layer) = self.layers.split_at_mut(j);
        let bn = bn_layer[b].as_paired_norm().expect("the plan marks a BN");
        let (neuron_slot, after) = neuron_layer.split_at_mut(1);
        let neuron = neuron_slot[0].as_neuron().expect("the plan marks a BN before a neuron");
        let batch_stats = bn.last_used_batch_stats(x.shape())?;
        // The pair took one step for all (`one_step`): its input gradient is that step's.
        let repeated = b == 1 && self.one_step.is_some();
        if pooled {
            let pool = after[0].as_max_pool().expect("the plan marks a pool");
            let sums = bn.fused_grad(x.shape())?;
            timed(neuron, true, |l| l.backward_bn_pooled(x, g_next, pool, sums, g_bn))?;
        } else if in_place {
            // Both passes in place in the buffer layer j + 1 (or the caller) wrote, where layer
            // b - 1 reads: dL/dS becomes dL/dy (neuron), then dx (BN).
            let sums = bn.fused_grad(x.shape())?;
            timed(neuron, true, |l| l.backward_bn_in_place(x, g_next, sums))?;
            return timed(bn, true, |bn| {
                bn.backward_from_sums_in_place(x, g_next, batch_stats);
                Ok(())
            });
        } else {
            let g_out =
                if j == n - 1 && !self.grad_output_in_buffer { grad_output } else { &*g_next };
            let sums = bn.fused_grad(x.shape())?;
            if repeated {
                timed(neuron, true, |l| l.backward_bn_repeated(x, y, g_out, sums, g_bn))?;
            } else {
                timed(neuron, true, |l| l.backward_bn(x, y, g_out, sums, g_bn))?;
            }
        }
        if b == 0 {
            return timed(bn, true, |bn| {
                bn.backward_from_sums(x, g_bn, io.grad_input, batch_stats);
                Ok(())
            });
        }
        // dx over dL/dy, in place; the buffers then trade places so that layer b - 1 finds it
        // where it reads (the other one held the neuron's incoming gradient, no longer needed).
        timed(bn, true, |bn| {
            bn.backward_from_sums_in_place(x, g_bn, batch_stats);
            Ok(())
        })?;
        self.grad_buffers.swap(0, 1);
        Ok(())
    }

    /// Backward of BatchNorm2d `b` and max pool `b + 1` fused in the forward
    /// ([`FusedOp::BnPool`]): one pass reads the pool's output gradient where the pool would
    /// read it and writes the BN's input gradient where the pool would have written its own;
    /// the buffers then trade places so that layer `b - 1` finds it where the BN would have
    /// written it.
    fn backward_bn_pool(&mut self, b: usize, io: &mut BackwardIo) -> Result<()> {
        let input = io.input;
        let n = self.layers.len();
        let p = b + 1;
        if b > 0 {
            self.provide(b - 1, true, input);
        } else if self.grad_output_in_buffer && io.grad_input.capacity() == 0 {
            // As `input_grad_buffer`, but the pool (layer 1) reads grad_buffers[0]: the
            // input gradient takes the idle grad_buffers[1].
            std::mem::swap(io.grad_input, &mut self.grad_buffers[1]);
        }
        let (activations, shared, stored) = (&self.activations, &self.shared, &self.stored);
        let x = if b == 0 { input } else { kept_boundary(activations, shared, stored, b - 1) };
        // The pool reads the buffer of its parity's pair and would write the other.
        let [even, odd] = &mut self.grad_buffers;
        let (from, to) = if p.is_multiple_of(2) { (&*odd, even) } else { (&*even, odd) };
        let g_out = if p == n - 1 && !self.grad_output_in_buffer { io.grad_output } else { from };
        let g_in = if b == 0 { &mut *io.grad_input } else { to };
        let (bn_layer, pool_layer) = self.layers.split_at_mut(p);
        let bn = bn_layer[b].as_batch_norm().expect("the plan marks a BN");
        let pool = pool_layer[0].as_max_pool().expect("the plan marks a pool");
        let (g, argmax) = pool.unpool_parts(x.shape(), g_out.shape())?;
        timed(bn, true, |bn| bn.backward_unpooled(x, &g, g_out, argmax, g_in))?;
        if b > 0 {
            self.grad_buffers.swap(0, 1);
        }
        Ok(())
    }

    /// Whether the backward of the fused pair BN `b`, neuron `b + 1` runs both passes in
    /// place in one gradient buffer (see [`Self::backward_fused`]): the other one,
    /// `grad_buffers[(b + 1) % 2]`, is idle meanwhile.
    pub(super) fn pair_in_place(&self, b: usize, pooled: bool) -> bool {
        let j = b + 1;
        let repeated = b == 1 && self.one_step.is_some();
        !pooled && (j < self.layers.len() - 1 || self.grad_output_in_buffer) && b > 0 && !repeated
    }

    /// Backward of layer `i` on its own: it reads the gradient layer `i + 1` wrote and writes
    /// into the other buffer.
    pub(super) fn backward_layer(&mut self, i: usize, io: &mut BackwardIo) -> Result<()> {
        let input = io.input;
        let n = self.layers.len();
        let reads = self.layers[i].backward_reads();
        if i < n - 1 {
            self.provide(i, reads.output, input);
        }
        if i > 0 {
            self.provide(i - 1, reads.input, input);
        }
        if i == 0 {
            self.input_grad_buffer(io);
        }
        let (activations, shared, stored) = (&self.activations, &self.shared, &self.stored);
        let boundary = |k: usize| kept_boundary(activations, shared, stored, k);
        let x = if i == 0 { input } else { boundary(i - 1) };
        let (from, g_in) = grad_pair(&mut self.grad_buffers, i, io.grad_input);
        let g_out = if i == n - 1 && !self.grad_output_in_buffer { io.grad_output } else { from };
        // A conv whose output the memory-lean mode freed reads only that output's shape,
        // which its gradient has.
        let y = if i == n - 1 {
            io.output
        } else if self.conv_dropped[i] {
            g_out
        } else {
            boundary(i)
        };
        timed(&mut *self.layers[i], true, |l| l.backward(x, y, g_out, g_in))?;
        Ok(())
    }

    /// Before the first layer writes the input gradient: where the caller handed an empty
    /// tensor for it (a sequence inside a segment whose caller lent its buffer to the pool,
    /// see `backward_segment`), it takes the gradient buffer the first layer does not read
    /// (layer 0 reads `grad_buffers[1]`), which goes back in its place.
    fn input_grad_buffer(&mut self, io: &mut BackwardIo) {
        if self.grad_output_in_buffer && io.grad_input.capacity() == 0 {
            std::mem::swap(io.grad_input, &mut self.grad_buffers[0]);
        }
    }
}
