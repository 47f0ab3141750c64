//! Spiking neurons (IF, LIF, PLIF) and surrogate gradients, multi-step.
//!
//! One layer type, [`NeuronLayer`], runs the paper's neuron model
//! (docs/dual-stream-training.md) on a time-major `[T, N, ...]` input: the state starts at
//! `V_0 = V_reset` (0 under soft reset) on every forward call,
//! spikes come out as 0/1 floats of the input's shape, and backward is BPTT with the
//! surrogate derivative, matching what autograd gives for SpikingJelly's forward.
//! Backward recomputes the membrane potentials from the input (see `kernel`), so a layer
//! keeps no activation buffer: `backward` must receive the same `input` as the last
//! training-mode `forward`.
pub(crate) mod kernel;
pub mod surrogate;

#[cfg(test)]
mod bn_fused_tests;
#[cfg(test)]
mod conv_fused_tests;
#[cfg(test)]
mod tests;

pub use surrogate::Surrogate;

use crate::energy::{Counter, RateMonitor};
use crate::error::{Error, Result};
use crate::kernels::batch_norm::ChannelAffine;
use crate::kernels::conv::ConvGeom;
use crate::kernels::spike_conv::EventBudget;
use crate::nn::layer::{BackwardReads, Layer, Param};
use crate::spec::Connect;
use crate::spec::NeuronSpec;
use crate::tensor::Tensor;
use kernel::{Charge, Dynamics};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeuronKind {
    /// Integrate-and-fire: no leak.
    If,
    /// Leaky integrate-and-fire with a fixed `tau`.
    Lif,
    /// Parametric LIF: `1/tau = sigmoid(w)` with `w` learnt (one scalar per layer).
    Plif,
}

impl NeuronKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NeuronKind::If => "if",
            NeuronKind::Lif => "lif",
            NeuronKind::Plif => "plif",
        }
    }
}

/// A layer of IF, LIF or PLIF neurons, one per element of a sample.
/// What [`NeuronLayer::forward_after_conv`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum AfterConv {
    /// The input proved unfit for the event kernel: nothing was written or recorded.
    Unfit,
    /// The output holds the spikes.
    Spikes,
    /// The output holds the residual join; the sum of the output.
    Joined(f64),
}

pub struct NeuronLayer {
    /// Error location, e.g. `layers.3 (plif)`.
    label: String,
    kind: NeuronKind,
    tau: f32,
    decay_input: bool,
    v_threshold: f32,
    v_reset: Option<f32>,
    detach_reset: bool,
    surrogate: Surrogate,
    /// PLIF only: `{name}.w`, shape `[1]`.
    w: Option<Param>,
    /// What the last training forward ran with, so backward uses the same `w` even if an
    /// optimizer stepped in between, and can check the shapes it is given.
    saved: Option<Saved>,
    firing_rate: Option<f32>,
    rates: RateMonitor,
}

struct Saved {
    shape: Vec<usize>,
    dynamics: Dynamics,
}

impl NeuronLayer {
    /// `name` is the layer's path in the model (e.g. `layers.3`); the PLIF parameter is
    /// `{name}.w` and errors say `{name} (if|lif|plif)`.
    pub fn new(name: &str, kind: NeuronKind, spec: &NeuronSpec) -> Result<Self> {
        let label = format!("{name} ({})", kind.as_str());
        if !spec.v_threshold.is_finite() {
            return Err(Error::spec(
                &label,
                format!("vThreshold must be finite, got {}", spec.v_threshold),
            ));
        }
        if let Some(v) = spec.v_reset {
            if !v.is_finite() {
                return Err(Error::spec(&label, format!("vReset must be finite or null, got {v}")));
            }
        }
        // SpikingJelly asserts tau > 1 for LIF and PLIF; PLIF also needs it for w = -ln(tau - 1).
        if kind != NeuronKind::If && !(spec.tau.is_finite() && spec.tau > 1.0) {
            return Err(Error::spec(
                &label,
                format!("tau must be finite and > 1, got {}", spec.tau),
            ));
        }
        let surrogate = Surrogate::from_spec(&label, &spec.surrogate)?;
        let w = match kind {
            NeuronKind::Plif => {
                let w0 = -((spec.tau as f64) - 1.0).ln();
                Some(Param::new(format!("{name}.w"), Tensor::full(&[1], w0 as f32), false))
            }
            _ => None,
        };
        Ok(NeuronLayer {
            label,
            kind,
            tau: spec.tau,
            decay_input: spec.decay_input,
            v_threshold: spec.v_threshold,
            v_reset: spec.v_reset,
            detach_reset: spec.detach_reset,
            surrogate,
            w,
            saved: None,
            firing_rate: None,
            rates: RateMonitor::default(),
        })
    }

    pub fn kind(&self) -> NeuronKind {
        self.kind
    }

    pub fn surrogate(&self) -> Surrogate {
        self.surrogate
    }

    /// The current time constant: the spec's for LIF, `1 / sigmoid(w)` for PLIF, None for IF.
    pub fn tau(&self) -> Option<f32> {
        match self.kind {
            NeuronKind::If => None,
            NeuronKind::Lif => Some(self.tau),
            NeuronKind::Plif => Some(1.0 / self.plif_k()),
        }
    }

    /// The membrane potential after charging and before reset, `H_t`, for every step of
    /// `input` (same shape), with the current parameters. For inspection; training does not
    /// need it.
    pub fn charge_trace(&self, input: &Tensor) -> Result<Tensor> {
        self.check_input(input.shape())?;
        let mut h = Tensor::zeros(input.shape());
        kernel::charge_trace(&self.dynamics(), input.data(), input.shape()[0], h.data_mut());
        Ok(h)
    }

    fn plif_k(&self) -> f32 {
        let w = self.w.as_ref().map_or(0.0, |p| p.value.data()[0]) as f64;
        (1.0 / (1.0 + (-w).exp())) as f32
    }

    /// The equations as they stand now (PLIF reads the current `w`).
    pub(crate) fn dynamics(&self) -> Dynamics {
        // SpikingJelly switches to the shorter forms when V_reset is 0 or soft; they round
        // differently from the general ones, so the choice matters for exact spike agreement.
        let vr = self.v_reset.filter(|&v| v != 0.0);
        let tau = self.tau;
        let charge = match (self.kind, self.decay_input, vr) {
            (NeuronKind::If, _, _) => Charge::If,
            (NeuronKind::Lif, true, None) => Charge::LifDecay0 { tau },
            (NeuronKind::Lif, true, Some(v_reset)) => Charge::LifDecay { tau, v_reset },
            (NeuronKind::Lif, false, None) => {
                // SpikingJelly computes 1 - 1/tau in double before the f32 multiply.
                let keep = (1.0 - 1.0 / tau as f64) as f32;
                Charge::LifNoDecay0 { tau, keep }
            }
            (NeuronKind::Lif, false, Some(v_reset)) => Charge::LifNoDecay { tau, v_reset },
            (NeuronKind::Plif, true, None) => Charge::PlifDecay0 { k: self.plif_k() },
            (NeuronKind::Plif, true, Some(v_reset)) => {
                Charge::PlifDecay { k: self.plif_k(), v_reset }
            }
            (NeuronKind::Plif, false, None) => Charge::PlifNoDecay0 { k: self.plif_k() },
            (NeuronKind::Plif, false, Some(v_reset)) => {
                Charge::PlifNoDecay { k: self.plif_k(), v_reset }
            }
        };
        Dynamics {
            charge,
            v_threshold: self.v_threshold,
            v_reset: self.v_reset,
            detach_reset: self.detach_reset,
        }
    }

    /// Training forward on a BN's output computed on the fly from the BN's `input` with `bn`
    /// (the fused BN + neuron pass of `Sequential`): spikes bit-identical to the BN's forward
    /// followed by this layer's, without writing the BN output. Backward is [`Self::backward_bn`].
    pub(crate) fn forward_bn(
        &mut self,
        input: &Tensor,
        bn: ChannelAffine,
        output: &mut Tensor,
    ) -> Result<()> {
        self.forward_with(input, Some(bn), output, true)
    }

    /// Backward of [`Self::forward_bn`]: `input` is the BN's input; writes `dL/dy` (the BN output's
    /// gradient) into `grad_bn_output` and the BN's per-channel sums into `bn`.
    pub(crate) fn backward_bn(
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
        output: &Tensor,
        grad: &mut Tensor,
        bn: kernel::BnGrad,
    ) -> Result<()> {
        let saved = self.saved_for(&[input, output, grad])?;
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
    pub(crate) fn forward_repeated(
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
        self.record(spikes, output, training.then(|| Saved { shape, dynamics }));
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
        pool: &mut crate::nn::pool::MaxPool2d,
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
        pool: &crate::nn::pool::MaxPool2d,
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

    /// Bookkeeping after a forward: firing rate, the energy monitor, what backward needs.
    fn record(&mut self, spikes: u64, output: &Tensor, saved: Option<Saved>) {
        let total = output.numel();
        self.firing_rate =
            Some(if total == 0 { 0.0 } else { (spikes as f64 / total as f64) as f32 });
        self.rates.observe(output);
        self.saved = saved;
    }

    fn forward_with(
        &mut self,
        input: &Tensor,
        bn: Option<ChannelAffine>,
        output: &mut Tensor,
        training: bool,
    ) -> Result<()> {
        let shape = input.shape();
        self.check_input(shape)?;
        if let Some(w) = &self.w {
            crate::error::check_finite(&w.name, w.value.data())?;
        }
        let dynamics = self.dynamics();
        let t_len = shape[0];
        output.resize_for_overwrite(shape);
        // Nothing is stored for backward, which recomputes the charges from the input.
        let spikes = match bn {
            None => kernel::forward(&dynamics, input.data(), t_len, output.data_mut()),
            Some(bn) => kernel::forward_bn(&dynamics, input.data(), bn, t_len, output.data_mut()),
        };
        self.record(spikes, output, training.then(|| Saved { shape: shape.to_vec(), dynamics }));
        Ok(())
    }

    /// Adds a backward pass's `dL/dw` to PLIF's parameter gradient (no-op for IF and LIF).
    fn add_w_grad(&mut self, dw: f64) {
        if let Some(w) = &mut self.w {
            w.grad.data_mut()[0] += dw as f32;
        }
    }

    /// What the last training forward saved, checking that `tensors` have its shape.
    fn saved_for(&self, tensors: &[&Tensor]) -> Result<&Saved> {
        let saved = self.saved.as_ref().ok_or_else(|| {
            Error::state(&self.label, "backward needs a training-mode forward first")
        })?;
        for t in tensors {
            if t.shape() != saved.shape.as_slice() {
                let want = format!("{:?} (the shape of the last forward)", saved.shape);
                return Err(Error::shape(&self.label, want, t.shape()));
            }
        }
        Ok(saved)
    }

    fn check_input(&self, shape: &[usize]) -> Result<()> {
        if shape.len() < 2 {
            return Err(Error::shape(&self.label, "[T, N, ...]", shape));
        }
        Ok(())
    }
}

impl Layer for NeuronLayer {
    /// Backward recomputes the charge and spikes from the input.
    fn backward_reads(&self) -> BackwardReads {
        BackwardReads { input: true, output: false }
    }

    fn emits_spikes(&self, _input_spikes: bool) -> bool {
        true
    }

    fn name(&self) -> &str {
        &self.label
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.check_input(input)?;
        Ok(input.to_vec())
    }

    fn forward(&mut self, input: &Tensor, output: &mut Tensor, training: bool) -> Result<()> {
        self.forward_with(input, None, output, training)
    }

    fn backward(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        grad_input: &mut Tensor,
    ) -> Result<()> {
        let saved = self.saved_for(&[input, output, grad_output])?;
        grad_input.resize_for_overwrite(&saved.shape);
        let dw = kernel::backward(
            &saved.dynamics,
            self.surrogate,
            input.data(),
            grad_output.data(),
            saved.shape[0],
            grad_input.data_mut(),
        );
        self.add_w_grad(dw);
        Ok(())
    }

    fn params<'a>(&'a mut self, out: &mut Vec<&'a mut Param>) {
        if let Some(w) = &mut self.w {
            out.push(w);
        }
    }

    fn as_neuron(&mut self) -> Option<&mut NeuronLayer> {
        Some(self)
    }

    /// None until the first forward.
    fn firing_rate(&self) -> Option<f32> {
        self.firing_rate
    }

    fn counters<'a>(&'a mut self, out: &mut Vec<Counter<'a>>) {
        out.push(Counter::Rate {
            name: self.label.clone(),
            kind: "neuron",
            monitor: &mut self.rates,
        });
    }
}
