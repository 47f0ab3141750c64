//! The forward pass: executes the plan, one step at a time, and records how each boundary is
//! kept for the backward pass.
use super::plan::{plan, Concrete, FusedOp, PlanInputs};
use super::recompute::lean_forward;
use super::{Sequential, Stored, INFERENCE_ONLY};
use crate::error::Result;
use crate::layer::timed;
use crate::spec::Connect;
use crate::tensor::Tensor;

impl Sequential {
    /// The plan a training forward runs (made now if what it depends on changed), for a
    /// caller that runs this sequence's layers itself (`nn::sew_chunks`).
    pub(crate) fn training_plan(&mut self) -> &[FusedOp] {
        self.update_plan(true, false);
        &self.plan
    }

    /// The plan for this forward: made again only when what it depends on changed.
    fn update_plan(&mut self, training: bool, join: bool) {
        let fold = !training && INFERENCE_ONLY.with(|c| c.get());
        let inputs = PlanInputs::new(&self.layers, training, fold, join, self.repeated_input);
        if self.plan.is_empty() || self.plan_inputs != inputs {
            self.plan = plan(&self.layers, &self.fuse, &inputs);
            self.plan_inputs = inputs;
        }
    }

    /// The forward pass proper; `shared` holds the borrowed work buffers.
    /// With `join`, a last conv + neuron pair run fused in inference writes the residual
    /// join `g(spikes, o)` into `output` (see `Conv2d::forward_inference`): then Some(sum of
    /// `output`); None when `output` holds this sequence's own output.
    pub(super) fn forward_in_buffers(
        &mut self,
        input: &Tensor,
        output: &mut Tensor,
        training: bool,
        join: Option<(Connect, &Tensor)>,
    ) -> Result<Option<f64>> {
        self.update_plan(training, join.is_some());
        let n = self.layers.len();
        let mut joined = None;
        self.shared_holds = [None, None];
        self.one_step = None;
        self.lean_ran = training && self.lean;
        self.conv_dropped.iter_mut().for_each(|d| *d = false);
        self.conv_pooled.iter_mut().for_each(|d| *d = false);
        for k in 0..self.plan.len() {
            let op = self.plan[k];
            let i = match op {
                FusedOp::Layer(i)
                | FusedOp::BnNeuron { bn: i, .. }
                | FusedOp::BnNeuronInference { bn: i }
                | FusedOp::BnPool { bn: i } => i,
                FusedOp::ConvInference { conv, .. } => conv,
                FusedOp::OneStepStem => 0,
            };
            let target = op.last();
            if let (FusedOp::Layer(_), Some(&next)) = (op, self.plan.get(k + 1)) {
                self.borrow_conv_output(i, next);
            }
            let in_shared = i > 0 && self.uses_shared(i - 1);
            // A fused step writes straight into the last covered layer's output slot; the
            // layers it covers do not run. When that slot is the shared buffer holding the
            // input, the output goes to the other shared buffer and the two are exchanged
            // (buffers are never reallocated, so no page is touched twice).
            let target_shared = target < n - 1 && self.uses_shared(target);
            // Shared buffers alternate by position: an odd span lands in the input's buffer.
            let exchange = (target - i) % 2 == 1 && target_shared && in_shared;
            let mut pooled_shape = None;
            // The shape of the BN output a fused BN + pool pass did not write.
            let mut unwritten = None;
            {
                let [even, odd] = &mut self.shared;
                let (shared_prev, shared_this) = if i % 2 == 0 { (odd, even) } else { (even, odd) };
                let mut shared_prev = Some(shared_prev);
                let mut shared_this = Some(shared_this);
                let (before, rest) = self.activations.split_at_mut(i.min(n - 1));
                let x: &Tensor = if i == 0 {
                    input
                } else if in_shared {
                    shared_prev.take().expect("input buffer")
                } else {
                    &before[i - 1]
                };
                let y: &mut Tensor = if target == n - 1 {
                    &mut *output
                } else if target_shared && ((target - i).is_multiple_of(2) || exchange) {
                    shared_this.take().expect("output buffer")
                } else if target_shared {
                    shared_prev.take().expect("the input is not in this buffer (else exchange)")
                } else {
                    &mut rest[target - i]
                };
                let (this, next) = self.layers.split_at_mut(i + 1);
                match op {
                    FusedOp::ConvInference { bn, neuron, join: joins, .. } => {
                        let (bn_slot, after_bn) = next.split_at_mut(bn as usize);
                        let affine = bn_slot
                            .first_mut()
                            .and_then(|bn| bn.as_batch_norm())
                            .map(|bn| bn.eval_affine());
                        let neuron = if neuron { after_bn[0].as_neuron() } else { None };
                        let conv = this[i].as_conv().expect("the plan marks a conv");
                        let join = join.filter(|_| joins);
                        joined = timed(conv, false, |c| {
                            c.forward_inference(x, y, affine, neuron, join)
                        })?;
                    }
                    FusedOp::BnNeuron { pool, conv_moments, .. } => {
                        let (before_bn, bn_on) = this.split_at_mut(i);
                        let bn = bn_on[0].as_paired_norm().expect("the plan marks a BN");
                        let moments = before_bn
                            .last_mut()
                            .filter(|_| conv_moments)
                            .and_then(|l| l.as_conv())
                            .and_then(|c| c.output_moments(x.shape()));
                        let repeats = self.one_step.filter(|_| i == 1).unwrap_or(1);
                        timed(&mut *bn, false, |bn| bn.forward_statistics(x, moments, repeats))?;
                        let (neuron_slot, after) = next.split_at_mut(1);
                        let neuron = neuron_slot[0]
                            .as_neuron()
                            .expect("the plan marks a BN before a neuron");
                        let affine = bn.affine(x.shape());
                        if pool {
                            let pool = after[0].as_max_pool().expect("the plan marks a pool");
                            timed(neuron, false, |l| {
                                l.forward_bn_pooled(x, affine, repeats, pool, y)
                            })?;
                            let mut shape = x.shape().to_vec();
                            shape[0] *= repeats;
                            pooled_shape = Some(shape);
                        } else if repeats > 1 {
                            timed(neuron, false, |l| l.forward_bn_repeated(x, affine, repeats, y))?;
                        } else {
                            timed(neuron, false, |l| l.forward_bn(x, affine, y))?;
                        }
                    }
                    FusedOp::BnPool { .. } => {
                        let (before_bn, bn_on) = this.split_at_mut(i);
                        let bn = bn_on[0].as_batch_norm().expect("the plan marks a BN");
                        let moments = before_bn
                            .last_mut()
                            .and_then(|l| l.as_conv())
                            .and_then(|c| c.output_moments(x.shape()));
                        timed(&mut *bn, false, |bn| bn.forward_statistics(x, moments, 1))?;
                        let pool = next[0].as_max_pool().expect("the plan marks a pool");
                        let affine = bn.affine(x.shape());
                        timed(pool, false, |p| p.forward_affine(x, affine, y))?;
                        unwritten = Some(x.shape().to_vec());
                    }
                    FusedOp::BnNeuronInference { .. } => {
                        let bn = this[i].as_paired_norm().expect("the plan marks a BN");
                        timed(&mut *bn, false, |bn| bn.eval_statistics(x.shape()))?;
                        let neuron =
                            next[0].as_neuron().expect("the plan marks a BN before a neuron");
                        let affine = bn.affine(x.shape());
                        timed(neuron, false, |l| l.forward_bn_inference(x, affine, y))?;
                    }
                    FusedOp::OneStepStem => {
                        // One step of a repeated input is enough for the fused pair after it.
                        let conv = this[0].as_conv().expect("the plan marks a conv");
                        if timed(conv, false, |c| c.forward_one_step(x, y))? {
                            self.one_step = Some(x.shape()[0]);
                        }
                    }
                    FusedOp::Layer(_) if training && self.lean && this[i].is_segment() => {
                        let before = &mut self.segment_buffers[i];
                        lean_forward(&mut *this[i], before, |layer| {
                            timed(layer, false, |l| l.forward_released(x, y))
                        })?;
                    }
                    FusedOp::Layer(_) => {
                        timed(&mut *this[i], false, |l| l.forward(x, y, training))?;
                    }
                }
            }
            self.note_boundary(i, training);
            if exchange {
                self.shared.swap(0, 1);
            }
            for k in i + 1..=target {
                self.note_boundary(k, training);
            }
            if let FusedOp::BnNeuron { bn, .. } = op {
                self.drop_conv_output(bn);
            }
            if let Some(shape) = unwritten {
                // Read by no backward: the fused backward routes the gradient in cache.
                self.stored[i] = Stored::Unread;
                self.unread_shapes[i] = shape;
            }
            if let Some(shape) = pooled_shape {
                // The neuron's output was never written: its shape stands for it.
                assert_eq!(
                    self.stored[i + 1],
                    Stored::Unread,
                    "a pooled neuron's output is read by no backward"
                );
                self.unread_shapes[i + 1] = shape;
            }
        }
        Ok(joined)
    }

    /// Bookkeeping after layer `i` ran: how boundary `i - 1` (its input) is kept for backward.
    fn note_boundary(&mut self, i: usize, training: bool) {
        let in_shared = i > 0 && self.uses_shared(i - 1);
        if in_shared && self.recompute[i - 1] {
            self.stored[i - 1] = Stored::Recomputed;
        } else if in_shared {
            // Layer i has consumed boundary i-1: keep it packed for backward (training only)
            // if a backward pass reads it.
            let b = i - 1;
            if !self.read_in_backward(b) {
                self.stored[b] = Stored::Unread;
                let shape = self.shared[b % 2].shape();
                self.unread_shapes[b].clear();
                self.unread_shapes[b].extend_from_slice(shape);
                return;
            }
            self.stored[b] = Stored::Packed;
            if training && !self.packed[b].pack(&self.shared[b % 2]) {
                self.not_binary[b] = true;
                self.stored[b] = Stored::Dense;
                let (src, dst) = (&self.shared[b % 2], &mut self.activations[b]);
                dst.copy_from(src);
            }
        } else if i > 0 {
            self.stored[i - 1] = Stored::Dense;
        }
    }

    /// Whether a backward pass reads the values of boundary `b`: its layer (as output) or the
    /// next (as input).
    fn read_in_backward(&self, b: usize) -> bool {
        self.layers[b].backward_reads().output || self.layers[b + 1].backward_reads().input
    }
}
