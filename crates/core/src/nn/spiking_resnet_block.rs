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
