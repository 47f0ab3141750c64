//! Spiking ResNet block: `O = SN_res(branch(X) + shortcut(X))`, the residual neuron an IF with
//! V_th 1, V_reset 0, so that a silent branch passes spikes through unchanged (identity mapping).
use crate::energy::{Counter, RateMonitor};
use crate::error::Result;
use crate::layer::{Layer, Visitor, VisitorMut};
use crate::neuron::NeuronLayer;
use crate::nn::residual::ResidualPaths;
use crate::nn::sequential::Sequential;
use crate::tensor::Tensor;

pub struct SpikingResnetBlock {
    name: String,
    paths: ResidualPaths,
    neuron: NeuronLayer,
    /// `branch(X) + shortcut(X)`, the residual neuron's input.
    charge: Tensor,
    grad_charge: Tensor,
    /// The block output's monitor (`<block>.out`), so every block reports one like SEW's.
    out_monitor: RateMonitor,
}

impl SpikingResnetBlock {
    /// `shortcut: None` is the identity shortcut.
    pub fn new(
        name: &str,
        branch: Sequential,
        shortcut: Option<Sequential>,
        neuron: NeuronLayer,
    ) -> Self {
        SpikingResnetBlock {
            name: name.to_string(),
            paths: ResidualPaths::new(branch, shortcut),
            neuron,
            charge: Tensor::default(),
            grad_charge: Tensor::default(),
            out_monitor: RateMonitor::default(),
        }
    }
}

impl Layer for SpikingResnetBlock {
    fn emits_spikes(&self, _input_spikes: bool) -> bool {
        true
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.paths.output_shape(&self.name, input)
    }

    fn forward(&mut self, input: &Tensor, output: &mut Tensor, training: bool) -> Result<()> {
        self.paths.forward(&self.name, input, training)?;
        let o = self.paths.shortcut_out(input);
        self.charge.resize_for_overwrite(o.shape());
        for ((c, &b), &s) in
            self.charge.data_mut().iter_mut().zip(self.paths.branch_out.data()).zip(o.data())
        {
            *c = b + s;
        }
        self.neuron.forward(&self.charge, output, training)?;
        self.out_monitor.observe(output);
        Ok(())
    }

    fn backward(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        grad_input: &mut Tensor,
    ) -> Result<()> {
        self.neuron.backward(&self.charge, output, grad_output, &mut self.grad_charge)?;
        // d charge / d branch = d charge / d shortcut = 1.
        self.paths.backward(input, &self.grad_charge, &self.grad_charge, grad_input)
    }

    fn is_segment(&self) -> bool {
        true
    }

    fn set_memory_lean(&mut self, on: bool) {
        self.paths.set_memory_lean(on);
    }

    fn release_stored(&mut self) {
        self.paths.release_stored();
        self.charge = Tensor::default();
        self.grad_charge = Tensor::default();
    }

    /// The paths' layers, the residual neuron's input `charge` (its backward reads it), then
    /// the residual neuron.
    fn visit(&self, visitor: &mut dyn Visitor) {
        self.paths.visit(visitor);
        visitor.stored_bytes(self.charge.numel() * 4);
        self.neuron.visit(visitor);
    }

    /// The paths' layers, the residual neuron, then the block output `<block>.out`.
    fn visit_mut<'a>(&'a mut self, visitor: &mut dyn VisitorMut<'a>) {
        self.paths.visit_mut(visitor);
        self.neuron.visit_mut(visitor);
        visitor.counter(Counter::block_rate(format!("{}.out", self.name), &mut self.out_monitor));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::Walk;
    use crate::nn::build_layer;
    use crate::rng::Rng;
    use crate::spec::LayerSpec;

    fn spec(json: &str) -> LayerSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn silent_branch_gives_identity_mapping_and_a_charge_of_two_fires_once() {
        // Zero-init last BN: the branch outputs exactly 0, the IF residual neuron sees the input.
        let s = spec(
            r#"{"type":"spikingResnetBlock","branch":[
                {"type":"conv2d","inChannels":2,"outChannels":2,"kernelSize":[3,3],"padding":[1,1],"bias":false},
                {"type":"batchNorm2d","numFeatures":2,"initWeight":0}]}"#,
        );
        let mut block = build_layer("layers.1", &s, &mut Rng::new(2)).unwrap();
        let mut rng = Rng::new(8);
        let x = Tensor::from_vec(&[4, 2, 2, 3, 3], rng.spikes(144, 0.4)).unwrap();
        let mut y = Tensor::default();
        block.forward(&x, &mut y, true).unwrap();
        assert_eq!(y.data(), x.data());
    }

    #[test]
    fn residual_neuron_integrates_branch_plus_shortcut_by_hand() {
        // Branch: a 1x1 conv with weight 0.5 and no bias on a single channel; identity shortcut.
        // Input over T = 3 for one element: 1, 0, 1. Charges: 1.5, 0, 1.5.
        // IF: H1 = 1.5 -> spike, V = 0; H2 = 0 -> none; H3 = 1.5 -> spike.
        // A second element with input 0, 1, 0: charges 0, 1.5, 0 -> 0, 1, 0.
        let s = spec(
            r#"{"type":"spikingResnetBlock","branch":[
            {"type":"conv2d","inChannels":1,"outChannels":1,"kernelSize":[1,1],"bias":false}]}"#,
        );
        let mut block = build_layer("b", &s, &mut Rng::new(1)).unwrap();
        let mut ps = Vec::new();
        block.params(&mut ps);
        ps[0].value.data_mut()[0] = 0.5;
        let x = Tensor::from_vec(&[3, 1, 1, 1, 2], vec![1.0, 0.0, 0.0, 1.0, 1.0, 0.0]).unwrap();
        let mut y = Tensor::default();
        block.forward(&x, &mut y, false).unwrap();
        assert_eq!(y.data(), &[1.0, 0.0, 0.0, 1.0, 1.0, 0.0]);
        // Weight -0.25 with input 1 at every step: charge 0.75 each step -> 0.75, 1.5 (fire), 0.75.
        let mut ps = Vec::new();
        block.params(&mut ps);
        ps[0].value.data_mut()[0] = -0.25;
        let x = Tensor::from_vec(&[3, 1, 1, 1, 1], vec![1.0, 1.0, 1.0]).unwrap();
        block.forward(&x, &mut y, false).unwrap();
        assert_eq!(y.data(), &[0.0, 1.0, 0.0]);
    }

    #[test]
    fn mismatched_branch_and_shortcut_is_a_spec_error() {
        let s = spec(
            r#"{"type":"spikingResnetBlock","branch":[
            {"type":"conv2d","inChannels":2,"outChannels":4,"kernelSize":[1,1]}]}"#,
        );
        let block = build_layer("layers.2", &s, &mut Rng::new(1)).unwrap();
        let err = block.output_shape(&[2, 1, 2, 4, 4]).unwrap_err();
        assert!(
            err.to_string().contains("layers.2") && err.to_string().contains("shortcut"),
            "{err}"
        );
    }
}
