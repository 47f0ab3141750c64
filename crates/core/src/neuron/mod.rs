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
#[doc(hidden)]
pub mod fused;
#[doc(hidden)]
pub mod kernel;
pub mod surrogate;

pub use fused::AfterConv;
pub use fused::SpikePool;
pub use surrogate::Surrogate;

use crate::energy::{Counter, RateMonitor};
use crate::error::{Error, Result};
use crate::kernels::batch_norm::ChannelAffine;
use crate::layer::{BackwardReads, Layer, Param, Visitor, VisitorMut};
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
    #[doc(hidden)]
    pub w: Option<Param>,
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

    /// Mean firing rate of the last forward; None until the first forward.
    pub fn firing_rate(&self) -> Option<f32> {
        self.firing_rate
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
    #[doc(hidden)]
    pub fn dynamics(&self) -> Dynamics {
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

    /// Whether the energy monitor watches this layer's output (it reads the output whole).
    pub(crate) fn monitored(&self) -> bool {
        self.rates.is_on()
    }

    /// The bookkeeping of a training forward over an input of `shape` that ran window by
    /// window of time steps (`nn::sew_chunks`, only while not [`Self::monitored`]) with
    /// `spikes` in all: the firing rate and the saved shape and dynamics, as [`Self::record`]
    /// keeps them.
    pub(crate) fn record_steps(&mut self, spikes: u64, shape: &[usize]) {
        let total: usize = shape.iter().product();
        self.firing_rate =
            Some(if total == 0 { 0.0 } else { (spikes as f64 / total as f64) as f32 });
        self.saved = Some(Saved { shape: shape.to_vec(), dynamics: self.dynamics() });
    }

    /// Adds a backward pass's `dL/dw` to PLIF's parameter gradient (no-op for IF and LIF).
    pub(crate) fn add_w_grad(&mut self, dw: f64) {
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
    fn name(&self) -> &str {
        &self.label
    }

    fn emits_spikes(&self, _input_spikes: bool) -> bool {
        true
    }

    /// Backward recomputes the charge and spikes from the input.
    fn backward_reads(&self) -> BackwardReads {
        BackwardReads { input: true, output: false }
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.check_input(input).map(|()| input.to_vec())
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

    fn visit(&self, visitor: &mut dyn Visitor) {
        if let Some(rate) = self.firing_rate {
            visitor.firing_rate(self.label.clone(), rate);
        }
    }

    fn visit_mut<'a>(&'a mut self, visitor: &mut dyn VisitorMut<'a>) {
        if let Some(w) = &mut self.w {
            visitor.param(w);
        }
        visitor.counter(Counter::Rate {
            name: self.label.clone(),
            kind: "neuron",
            monitor: &mut self.rates,
        });
    }
}
