//! The fused entry points: a neuron pass that also does the work of the layer before or after
//! it, reading and writing the activations once, with the bits of the layers run one by one.
//! The sequence's planner chooses them (`nn::sequential`); each has its backward here.
//!
//! | forward | input | backward |
//! |---|---|---|
//! | [`NeuronLayer::forward_bn`] | a BN's input, its affine applied on the fly | [`NeuronLayer::backward_bn`], [`NeuronLayer::backward_bn_in_place`] |
//! | [`NeuronLayer::forward_bn_inference`] | a BN's input, its evaluation affine applied on the fly (inference) | none |
//! | [`NeuronLayer::forward_bn_repeated`] | one step of a BN input, repeated over time | [`NeuronLayer::backward_bn_repeated`] |
//! | [`NeuronLayer::forward_bn_pooled`] | a BN's input; the spikes pooled 2x2 on the way | [`NeuronLayer::backward_bn_pooled`] |
//! | [`NeuronLayer::forward_repeated`] | one step repeated over time (inference) | none |
//! | [`NeuronLayer::forward_after_conv`] | a conv's input, the conv computed sample by sample (inference) | none |
use super::kernel;
use super::{NeuronLayer, Saved};
use crate::error::{Error, Result};
use crate::kernels::batch_norm::ChannelAffine;
use crate::kernels::geometry::{ConvGeom, PoolGeom};
use crate::kernels::spike_conv::EventBudget;
use crate::spec::Connect;
use crate::tensor::Tensor;

/// The 2x2, stride-2 max pool that a fused BN + neuron pass pools its spikes into while they
/// are in cache ([`NeuronLayer::forward_bn_pooled`]); the pool keeps the argmax for its own
/// backward. Implemented by `nn::MaxPool2d`.
pub trait SpikePool {
    /// Sizes `output` for the neuron output shape `input` and hands over the window geometry
    /// and the argmax to fill.
    fn fused_forward(
        &mut self,
        input: &[usize],
        output: &mut Tensor,
    ) -> Result<(PoolGeom, &mut [u8])>;

    /// Checks that the last fused forward was on `input` and that `grad_output` fits, and
    /// hands over the window geometry and the argmax it filled.
    fn fused_backward(&self, input: &[usize], grad_output: &[usize]) -> Result<(PoolGeom, &[u8])>;
}

/// What [`NeuronLayer::forward_after_conv`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
#[doc(hidden)]
pub enum AfterConv {
    /// The input proved unfit for the event kernel: nothing was written or recorded.
    Unfit,
    /// The output holds the spikes.
    Spikes,
    /// The output holds the residual join; the sum of the output.
    Joined(f64),
}

impl NeuronLayer {
    /// Training forward on a BN's output computed on the fly from the BN's `input` with `bn`
    /// (the fused BN + neuron pass of `Sequential`): spikes bit-identical to the BN's forward
    /// followed by this layer's, without writing the BN output. Backward is [`Self::backward_bn`].
    #[doc(hidden)]
    pub fn forward_bn(
        &mut self,
        input: &Tensor,
        bn: ChannelAffine,
        output: &mut Tensor,
    ) -> Result<()> {
        self.forward_with(input, Some(bn), output, true)
    }

    /// Inference on a BN's output computed on the fly from the BN's `input` with `bn` (the
    /// BN's evaluation-mode affine): the spikes of the BN's forward followed by this layer's,
    /// bit for bit, without writing the BN output. Nothing is kept for a backward.
    pub(crate) fn forward_bn_inference(
        &mut self,
        input: &Tensor,
        bn: ChannelAffine,
        output: &mut Tensor,
    ) -> Result<()> {
        self.forward_with(input, Some(bn), output, false)
    }

    /// Backward of [`Self::forward_bn`]: `input` is the BN's input; writes `dL/dy` (the BN output's
    /// gradient) into `grad_bn_output` and the BN's per-channel sums into `bn`.
    #[doc(hidden)]
    pub fn backward_bn(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        bn: kernel::BnGrad,
        grad_bn_output: &mut Tensor,
    ) -> Result<()> {
        let saved = self.saved_for(&[input, output, grad_output])?;
        grad_bn_output.resize_for_overwrite(&saved.shape);
        let dw = kernel::backward_bn(
            &saved.dynamics,
            self.surrogate,
            input.data(),
            bn,
            grad_output.data(),
            saved.shape[0],
            grad_bn_output.data_mut(),
        );
        self.add_w_grad(dw);
        Ok(())
    }

    /// [`Self::backward_bn`] with the BN output's gradient written over `grad` (which holds
    /// this layer's output gradient on entry).
    pub(crate) fn backward_bn_in_place(
        &mut self,
        input: &Tensor,
        grad: &mut Tensor,
        bn: kernel::BnGrad,
    ) -> Result<()> {
        let saved = self.saved_for(&[input, grad])?;
        let dw = kernel::backward_bn_in_place(
            &saved.dynamics,
            self.surrogate,
            input.data(),
            bn,
            saved.shape[0],
            grad.data_mut(),
        );
        self.add_w_grad(dw);
        Ok(())
    }

    /// Inference on `conv(input) + bias` through the event-driven kernel (see
    /// `Conv2d::forward_inference`): the pre-activation is consumed sample by sample in cache;
    /// spikes bit-identical to the conv's output fed to [`Layer::forward`]. With `join =
    /// Some((g, o))` the output is a residual block's `g(spikes, o)` instead (bit-identical to
    /// the block's own join), unless this layer's rate monitor needs the spikes themselves or
    /// `o` has another shape: [`AfterConv`] says which. Nothing is recorded if `input` proved
    /// unfit for the event kernel by `budget`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn forward_after_conv(
        &mut self,
        g: &ConvGeom,
        input: &Tensor,
        weight: &[f32],
        bias: Option<&[f32]>,
        output: &mut Tensor,
        budget: &EventBudget,
        join: Option<(Connect, &Tensor)>,
    ) -> Result<AfterConv> {
        let shape = [input.shape()[0], input.shape()[1], g.c_out, g.oh, g.ow];
        self.check_input(&shape)?;
        if let Some(w) = &self.w {
            crate::error::check_finite(&w.name, w.value.data())?;
        }
        let dynamics = self.dynamics();
        output.resize_for_overwrite(&shape);
        let t_len = shape[0];
        let join = join
            .filter(|(_, o)| !self.rates.is_on() && o.shape() == shape)
            .map(|(c, o)| (c, o.data()));
        let Some((spikes, joined)) = kernel::forward_conv_events(
            &dynamics,
            g,
            input.data(),
            weight,
            bias,
            t_len,
            output.data_mut(),
            budget,
            join,
        ) else {
            return Ok(AfterConv::Unfit);
        };
        // A joined output only when the rate monitor is off, so recording observes nothing then.
        self.record(spikes, output, None);
        Ok(joined.map_or(AfterConv::Spikes, AfterConv::Joined))
    }

    /// Inference on an input whose `T` time steps are all `step` (`[1, N, ...]`): the spikes
    /// of [`Layer::forward`] on `step` repeated `t_len` times, without the repeated copy.
    #[doc(hidden)]
    pub fn forward_repeated(
        &mut self,
        step: &Tensor,
        t_len: usize,
        output: &mut Tensor,
    ) -> Result<()> {
        self.forward_repeated_with(step, None, t_len, output, false)
    }

    /// Training forward of the fused BN + neuron pair on a BN input whose `t_len` time steps
    /// are all `step` (`[1, N, C, H, W]`, a stem conv's output on a directly encoded image):
    /// the spikes of [`Self::forward_bn`] on the repeated input. Backward is
    /// [`Self::backward_bn_repeated`].
    pub(crate) fn forward_bn_repeated(
        &mut self,
        step: &Tensor,
        bn: ChannelAffine,
        t_len: usize,
        output: &mut Tensor,
    ) -> Result<()> {
        self.forward_repeated_with(step, Some(bn), t_len, output, true)
    }

    fn forward_repeated_with(
        &mut self,
        step: &Tensor,
        bn: Option<ChannelAffine>,
        t_len: usize,
        output: &mut Tensor,
        training: bool,
    ) -> Result<()> {
        self.check_input(step.shape())?;
        if step.shape()[0] != 1 {
            return Err(Error::shape(
                &self.label,
                "one time step [1, N, ...] to repeat",
                step.shape(),
            ));
        }
        if let Some(w) = &self.w {
            crate::error::check_finite(&w.name, w.value.data())?;
        }
        let mut shape = step.shape().to_vec();
        shape[0] = t_len;
        output.resize_for_overwrite(&shape);
        let dynamics = self.dynamics();
        let spikes = kernel::forward_repeated(&dynamics, step.data(), bn, t_len, output.data_mut());
        self.record(spikes, output, training.then_some(Saved { shape, dynamics }));
        Ok(())
    }

    /// Training forward of the fused BN + neuron pair followed by a 2x2, stride-2 max pool
    /// (`pool`, which keeps its argmax for its own backward): the pool's output goes to
    /// `pooled`; the neuron's spikes are never written out. `repeats` > 1: `input` is the one
    /// step (`[1, N, C, H, W]`) that all `repeats` time steps repeat, as in
    /// [`Self::forward_bn_repeated`]. Backward is [`Self::backward_bn_pooled`], or (a pool that
    /// ends its sequence) the pool's own followed by [`Self::backward_bn`] (or the repeated one).
    pub(crate) fn forward_bn_pooled(
        &mut self,
        input: &Tensor,
        bn: ChannelAffine,
        repeats: usize,
        pool: &mut dyn SpikePool,
        pooled: &mut Tensor,
    ) -> Result<()> {
        let mut shape = input.shape().to_vec();
        if repeats > 1 && shape.first() != Some(&1) {
            return Err(Error::shape(
                &self.label,
                "one time step [1, N, ...] to repeat",
                input.shape(),
            ));
        }
        if repeats > 1 {
            shape[0] = repeats;
        }
        self.check_input(&shape)?;
        if let Some(w) = &self.w {
            crate::error::check_finite(&w.name, w.value.data())?;
        }
        let (geometry, argmax) = pool.fused_forward(&shape, pooled)?;
        let dynamics = self.dynamics();
        let x_step = if repeats > 1 { 0 } else { input.numel() / shape[0].max(1) };
        let spikes = kernel::forward_bn_pooled(
            &dynamics,
            input.data(),
            bn,
            shape[0],
            x_step,
            &geometry,
            pooled.data_mut(),
            argmax,
        );
        let total: usize = shape.iter().product();
        self.firing_rate =
            Some(if total == 0 { 0.0 } else { (spikes as f64 / total as f64) as f32 });
        self.saved = Some(Saved { shape, dynamics });
        Ok(())
    }

    /// Backward of [`Self::forward_bn_pooled`] through the pool as well: `input` is the BN's
    /// input (one step if the forward repeated it), `grad_pooled` the pool output's gradient.
    /// Writes `dL/dy` into `grad_bn_output` (summed over time for a repeated input, as
    /// [`Self::backward_bn_repeated`] does) and the BN's sums into `bn`: the values of the
    /// pool's backward followed by [`Self::backward_bn`] (or the repeated one).
    pub(crate) fn backward_bn_pooled(
        &mut self,
        input: &Tensor,
        grad_pooled: &Tensor,
        pool: &dyn SpikePool,
        bn: kernel::BnGrad,
        grad_bn_output: &mut Tensor,
    ) -> Result<()> {
        let saved = self.saved.as_ref().ok_or_else(|| {
            Error::state(&self.label, "backward needs a training-mode forward first")
        })?;
        let repeated = input.shape().first() == Some(&1) && saved.shape[0] > 1;
        if input.shape()[1..] != saved.shape[1..]
            || (!repeated && input.shape() != saved.shape.as_slice())
        {
            return Err(Error::shape(
                &self.label,
                format!("{:?} or one step of it (the last forward's input)", saved.shape),
                input.shape(),
            ));
        }
        let (geometry, argmax) = pool.fused_backward(&saved.shape, grad_pooled.shape())?;
        grad_bn_output.resize_for_overwrite(input.shape());
        let x_step = if repeated { 0 } else { input.numel() / saved.shape[0] };
        let dw = kernel::backward_bn_pooled(
            &saved.dynamics,
            self.surrogate,
            input.data(),
            bn,
            grad_pooled.data(),
            &geometry,
            argmax,
            saved.shape[0],
            x_step,
            grad_bn_output.data_mut(),
        );
        self.add_w_grad(dw);
        Ok(())
    }

    /// Whether [`Self::forward_bn_pooled`] may run: it does not feed the layer's rate monitor
    /// (on only while an energy report runs).
    pub(crate) fn poolable(&self) -> bool {
        !self.rates.is_on()
    }

    /// Backward of [`Self::forward_bn_repeated`]: `step` is the BN input of every step;
    /// writes `sum_t dL/dy_t` (the gradient of the one BN output step) into `grad_step` and
    /// the BN's sums (over all steps) into `bn`.
    pub(crate) fn backward_bn_repeated(
        &mut self,
        step: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        bn: kernel::BnGrad,
        grad_step: &mut Tensor,
    ) -> Result<()> {
        let saved = self.saved_for(&[output, grad_output])?;
        if step.shape()[0] != 1 || step.shape()[1..] != saved.shape[1..] {
            let want = format!(
                "one step {:?} of the last forward's input",
                [&[1], &saved.shape[1..]].concat()
            );
            return Err(Error::shape(&self.label, want, step.shape()));
        }
        grad_step.resize_for_overwrite(step.shape());
        let dw = kernel::backward_bn_repeated(
            &saved.dynamics,
            self.surrogate,
            step.data(),
            bn,
            grad_output.data(),
            saved.shape[0],
            grad_step.data_mut(),
        );
        self.add_w_grad(dw);
        Ok(())
    }
}
