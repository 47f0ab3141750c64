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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::testing::forward_backward;
    use crate::nn::build_layer;
    use crate::rng::Rng;
    use crate::spec::LayerSpec;

    fn block_spec(connect: &str, shortcut: bool) -> LayerSpec {
        // Smooth layers only (no neurons), so finite differences are valid; `g`'s formulas are
        // polynomials and hold off {0, 1} too.
        let sc = if shortcut {
            r#","shortcut":[{"type":"conv2d","inChannels":3,"outChannels":4,"kernelSize":[1,1],"stride":[2,2],"bias":false},
                          {"type":"batchNorm2d","numFeatures":4}]"#
        } else {
            ""
        };
        let (c_out, stride) = if shortcut { (4, 2) } else { (3, 1) };
        let json = format!(
            r#"{{"type":"sewBlock","connect":"{connect}","branch":[
                {{"type":"conv2d","inChannels":3,"outChannels":{c_out},"kernelSize":[3,3],"padding":[1,1],"stride":[{stride},{stride}]}},
                {{"type":"batchNorm2d","numFeatures":{c_out}}}]{sc}}}"#
        );
        serde_json::from_str(&json).unwrap()
    }

    fn loss(spec: &LayerSpec, x: &Tensor, g: &Tensor) -> f64 {
        let mut block = build_layer("block", spec, &mut Rng::new(3)).unwrap();
        let mut y = Tensor::default();
        block.forward(x, &mut y, true).unwrap();
        y.data().iter().zip(g.data()).map(|(&a, &b)| a as f64 * b as f64).sum()
    }

    #[test]
    fn gradients_match_finite_differences_for_every_connect_function_and_shortcut() {
        for connect in ["add", "and", "iand", "or", "xor"] {
            for shortcut in [false, true] {
                let spec = block_spec(connect, shortcut);
                let mut rng = Rng::new(11);
                let x =
                    Tensor::from_vec(&[2, 2, 3, 4, 4], (0..192).map(|_| rng.uniform()).collect())
                        .unwrap();
                let mut block = build_layer("block", &spec, &mut Rng::new(3)).unwrap();
                let (_, g, gx) = forward_backward(block.as_mut(), &x, &mut rng);
                let eps = 1e-2f32;
                for i in (0..x.numel()).step_by(7) {
                    let (mut xp, mut xm) = (x.clone(), x.clone());
                    xp.data_mut()[i] += eps;
                    xm.data_mut()[i] -= eps;
                    let numeric =
                        (loss(&spec, &xp, &g) - loss(&spec, &xm, &g)) / (2.0 * eps as f64);
                    let analytic = gx.data()[i] as f64;
                    assert!(
                        (numeric - analytic).abs() <= 2e-3 + 2e-2 * numeric.abs(),
                        "{connect} shortcut={shortcut} input {i}: analytic {analytic}, numeric {numeric}"
                    );
                }
            }
        }
    }

    #[test]
    fn identity_shortcut_with_silent_branch_passes_spikes_through() {
        // Zero-init of the branch's last BN makes S = 0, so ADD, IAND, OR and XOR give O = X.
        let json = r#"{"type":"sewBlock","connect":"iand","branch":[
            {"type":"conv2d","inChannels":2,"outChannels":2,"kernelSize":[3,3],"padding":[1,1]},
            {"type":"batchNorm2d","numFeatures":2,"initWeight":0},
            {"type":"if"}]}"#;
        let mut spec: LayerSpec = serde_json::from_str(json).unwrap();
        let mut rng = Rng::new(5);
        let x = Tensor::from_vec(&[3, 2, 2, 4, 4], rng.spikes(192, 0.3)).unwrap();
        for connect in [Connect::Add, Connect::Iand, Connect::Or, Connect::Xor] {
            if let LayerSpec::SewBlock(s) = &mut spec {
                s.connect = connect;
            }
            let mut block = build_layer("block", &spec, &mut Rng::new(1)).unwrap();
            let mut y = Tensor::default();
            block.forward(&x, &mut y, true).unwrap();
            assert_eq!(y.data(), x.data(), "{connect:?}");
        }
    }

    #[test]
    fn mismatched_branch_and_shortcut_is_a_spec_error_naming_the_block() {
        let json = r#"{"type":"sewBlock","connect":"add","branch":[
            {"type":"conv2d","inChannels":2,"outChannels":4,"kernelSize":[3,3],"padding":[1,1]}]}"#;
        let spec: LayerSpec = serde_json::from_str(json).unwrap();
        let block = build_layer("layers.4", &spec, &mut Rng::new(1)).unwrap();
        let err = block.output_shape(&[4, 1, 2, 8, 8]).unwrap_err();
        assert!(
            err.to_string().contains("layers.4") && err.to_string().contains("shortcut"),
            "{err}"
        );
    }
}
