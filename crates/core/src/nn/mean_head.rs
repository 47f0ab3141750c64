//! The synapses of a linear layer that reads a mean over positions (`tokenMean`, or
//! `globalAvgPool` over H x W), audited and counted on the mean's input.
//!
//! The mean and the FC are both linear: `W (1/P sum_p s_p) = sum_p (W / P) s_p`. With the
//! 1/P folded into the weights, every spike `s_p` of the mean's input adds one column of W to
//! the output: the pair is AC-only exactly when the mean's input is binary, however
//! fractional the mean itself is. So the pair is judged on the mean's input, as the
//! dual-stream trunk judges its spike head. When that input is not binary the cheapest
//! realisation is the FC of the mean, counted as MACs on the mean's output.
use crate::energy::{is_spikes, Counter, SynapseCounter};
use crate::layer::{AuditProbe, Visitor, VisitorMut};
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct MeanHead {
    /// The linear's path, as its own counter would be named.
    path: String,
    label: String,
    out_features: usize,
    bias: bool,
    probe: AuditProbe,
    ops: SynapseCounter,
}

impl MeanHead {
    /// `mean` is the mean layer's label, `linear_path` the path of the linear reading it.
    pub fn new(mean: &str, linear_path: &str, out_features: usize, bias: bool) -> Self {
        MeanHead {
            path: linear_path.to_string(),
            label: format!("{linear_path} (linear, on the input of the mean {mean})"),
            out_features,
            bias,
            probe: AuditProbe::default(),
            ops: SynapseCounter::default(),
        }
    }

    /// One forward of the mean: `input` `[T, N, positions x channels]`, `output` `[T, N, C]`.
    pub fn observe(&mut self, input: &Tensor, output: &Tensor) {
        self.probe.observe(input.data());
        if !self.ops.is_on() {
            return;
        }
        let bias_ops = if self.bias { self.out_features as u64 } else { 0 };
        let per_step = |t: &Tensor| (t.numel() / (t.shape()[0] * t.shape()[1]).max(1)) as u64;
        if is_spikes(input.data()) {
            // Per spike: out_features accumulations of a column of W / P.
            let w = per_step(input) * self.out_features as u64;
            self.ops.observe(input, w, bias_ops);
        } else {
            let w = per_step(output) * self.out_features as u64;
            self.ops.observe(output, w, bias_ops);
        }
    }

    pub fn visit(&self, visitor: &mut dyn Visitor) {
        visitor.audit(&self.label, &self.probe);
    }

    pub fn visit_mut<'a>(&'a mut self, visitor: &mut dyn VisitorMut<'a>) {
        let name = self.path.clone();
        visitor.counter(Counter::Synapse { name, kind: "linear", counter: &mut self.ops });
        visitor.audit_probe(&mut self.probe);
    }
}
