//! Spike-element-wise residual block: `O = g(branch(X), shortcut(X))`.
use crate::energy::{Counter, RateMonitor};
use crate::error::Result;
use crate::kernels::connect::{
    connect_backward, connect_backward_add_o, connect_backward_s, connect_forward,
};
use crate::layer::{BackwardReads, Layer, Visitor, VisitorMut};
use crate::nn::residual::ResidualPaths;
use crate::nn::sequential::Sequential;
use crate::spec::Connect;
use crate::tensor::Tensor;

pub struct SewBlock {
    name: String,
    paths: ResidualPaths,
    connect: Connect,
    grad_branch: Tensor,
    grad_shortcut: Tensor,
    /// Mean of the block output in the last forward (a firing rate unless g is ADD).
    out_rate: Option<f32>,
    out_monitor: RateMonitor,
}

impl SewBlock {
    /// `shortcut: None` is the identity shortcut.
    pub fn new(
        name: &str,
        branch: Sequential,
        shortcut: Option<Sequential>,
        connect: Connect,
    ) -> Self {
        SewBlock {
            name: name.to_string(),
            paths: ResidualPaths::new(branch, shortcut),
            connect,
            grad_branch: Tensor::default(),
            grad_shortcut: Tensor::default(),
            out_rate: None,
            out_monitor: RateMonitor::default(),
        }
    }
}

impl Layer for SewBlock {
    /// The join's gradient needs the branch output and the input, not the block output.
    fn backward_reads(&self) -> BackwardReads {
        BackwardReads { input: true, output: false }
    }

    fn release_stored(&mut self) {
        self.paths.release_stored();
        self.grad_branch = Tensor::default();
        self.grad_shortcut = Tensor::default();
    }

    fn is_segment(&self) -> bool {
        true
    }

    fn set_memory_lean(&mut self, on: bool) {
        self.paths.set_memory_lean(on);
    }

    fn emits_spikes(&self, input_spikes: bool) -> bool {
        self.connect.keeps_spikes() && self.paths.emits_spikes(input_spikes)
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.paths.output_shape(&self.name, input)
    }

    fn forward(&mut self, input: &Tensor, output: &mut Tensor, training: bool) -> Result<()> {
        let joined = if !training && self.paths.shortcut.is_none() {
            self.paths.forward_joined(&self.name, input, output, self.connect)?
        } else {
            self.paths.forward(&self.name, input, training)?;
            None
        };
        let sum = match joined {
            Some(sum) => sum,
            None => {
                let o = self.paths.shortcut_out(input);
                output.resize_for_overwrite(o.shape());
                connect_forward(
                    self.connect,
                    self.paths.branch_out.data(),
                    o.data(),
                    output.data_mut(),
                    None,
                )
            }
        };
        self.out_rate =
            Some(if output.numel() == 0 { 0.0 } else { (sum / output.numel() as f64) as f32 });
        self.out_monitor.observe(output);
        Ok(())
    }

    fn backward(
        &mut self,
        input: &Tensor,
        _output: &Tensor,
        grad_output: &Tensor,
        grad_input: &mut Tensor,
    ) -> Result<()> {
        self.grad_branch.resize_for_overwrite(grad_output.shape());
        if self.paths.shortcut.is_none() {
            // Identity shortcut: its gradient is added straight into the branch's input
            // gradient, so no full-size buffer holds it (the same sum, in the same order).
            let (s, o, g) = (self.paths.branch_out.data(), input.data(), grad_output.data());
            connect_backward_s(self.connect, s, o, g, None, self.grad_branch.data_mut());
            // grad_branch is this block's scratch: the branch may work in place in it.
            self.paths.branch.backward_consuming(
                input,
                &self.paths.branch_out,
                &mut self.grad_branch,
                grad_input,
            )?;
            connect_backward_add_o(
                self.connect,
                self.paths.branch_out.data(),
                o,
                g,
                None,
                grad_input.data_mut(),
            );
            return Ok(());
        }
        self.grad_shortcut.resize_for_overwrite(grad_output.shape());
        let o = self.paths.shortcut_out(input);
        connect_backward(
            self.connect,
            self.paths.branch_out.data(),
            o.data(),
            grad_output.data(),
            self.grad_branch.data_mut(),
            self.grad_shortcut.data_mut(),
        );
        self.paths.backward(input, &self.grad_branch, &self.grad_shortcut, grad_input)
    }

    /// The paths' layers, then the block output `<block>.out`.
    fn visit(&self, visitor: &mut dyn Visitor) {
        self.paths.visit(visitor);
        if let Some(rate) = self.out_rate {
            visitor.firing_rate(format!("{}.out", self.name), rate);
        }
    }

    fn visit_mut<'a>(&'a mut self, visitor: &mut dyn VisitorMut<'a>) {
        self.paths.visit_mut(visitor);
        visitor.counter(Counter::block_rate(format!("{}.out", self.name), &mut self.out_monitor));
    }
}
