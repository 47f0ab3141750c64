//! Spike-element-wise residual block: `O = g(branch(X), shortcut(X))`.
use crate::energy::{Counter, RateMonitor};
use crate::error::{Error, Result};
use crate::kernels::connect::{
    connect_backward, connect_backward_add_o, connect_backward_s, connect_forward,
    connect_forward_in_place,
};
use crate::kernels::scratch::with_tensors;
use crate::layer::{BackwardReads, Layer, SegmentInput, Visitor, VisitorMut};
use crate::nn::residual::ResidualPaths;
use crate::nn::sequential::Sequential;
use crate::nn::sew_chunks::{self, Join};
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
    /// What the branch's forward over chunks of time steps kept for its backward (see
    /// `sew_chunks`), while it holds anything.
    chunked: Option<sew_chunks::Kept>,
    /// Whether the last training forward ran over chunks of time steps.
    ran_chunked: bool,
    /// Whether a training forward keeps what its backward reads (see
    /// [`Layer::forward_released`]).
    keep: bool,
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
            chunked: None,
            ran_chunked: false,
            keep: true,
        }
    }
}

impl SewBlock {
    /// `output = g(branch_out, shortcut_out)` after the paths ran; the sum of `output`.
    fn join(&self, input: &Tensor, output: &mut Tensor) -> f64 {
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

    /// Whether the backward pass reads the branch output's shape only: an identity shortcut
    /// joined by ADD (whose partials are constants) after a last layer that does not read its
    /// output. The training forward then keeps no copy of it (a whole activation at the
    /// block's resolution), and the backward hands the branch its output gradient, of the
    /// same shape, in its place.
    fn branch_out_unread(&self) -> bool {
        self.paths.shortcut.is_none()
            && !self.connect.partials_read_values()
            && self.paths.branch.layers().last().is_some_and(|l| !l.backward_reads().output)
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
        self.chunked = None;
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
        self.ran_chunked = false;
        let sum = if !training && self.paths.shortcut.is_none() {
            match self.paths.forward_joined(&self.name, input, output, self.connect)? {
                Some(sum) => sum,
                None => self.join(input, output),
            }
        } else if training && self.branch_out_unread() {
            // The memory-lean mode runs the branch over chunks of time steps where it fits
            // (see `sew_chunks`); either way the branch writes its output into the block's
            // output buffer, and the join adds the input there in place (the same values and
            // sum as a join into a third buffer).
            self.chunked = None;
            if self.paths.branch.memory_lean() {
                let (branch, connect) = (&mut self.paths.branch, self.connect);
                let x = sew_chunks::Input::Dense(input);
                self.chunked = sew_chunks::forward(branch, connect, x, Some(output), self.keep)?;
            }
            self.ran_chunked = self.chunked.is_some();
            if self.chunked.is_none() {
                std::mem::swap(output, &mut self.paths.branch_out);
                let run = self.paths.forward(&self.name, input, training);
                std::mem::swap(output, &mut self.paths.branch_out);
                run?;
            }
            connect_forward_in_place(self.connect, output.data_mut(), input.data())
        } else {
            self.paths.forward(&self.name, input, training)?;
            self.join(input, output)
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
        if self.paths.shortcut.is_none() {
            let unread = self.branch_out_unread();
            // After a forward over chunks of time steps, the backward over them, in place in
            // the input gradient.
            if let Some(kept) = self.chunked.take() {
                grad_input.copy_from(grad_output);
                let (branch, x) = (&mut self.paths.branch, sew_chunks::Input::Dense(input));
                return sew_chunks::backward(
                    branch,
                    &Join::sew(self.connect),
                    &kept,
                    x,
                    grad_input,
                );
            }
            // The branch's output gradient is a pooled work buffer for the length of this
            // call: blocks at every resolution share one instead of keeping one each.
            return with_tensors::<1, _>(|bufs| {
                let grad_branch = &mut bufs[0];
                grad_branch.resize_for_overwrite(grad_output.shape());
                let branch_out = if unread { grad_output } else { &self.paths.branch_out };
                // Identity shortcut: its gradient is added straight into the branch's input
                // gradient, so no full-size buffer holds it (the same sum, in the same order).
                let (s, o, g) = (branch_out.data(), input.data(), grad_output.data());
                connect_backward_s(self.connect, s, o, g, None, grad_branch.data_mut());
                // grad_branch is scratch: the branch may work in place in it.
                self.paths.branch.backward_consuming(input, branch_out, grad_branch, grad_input)?;
                connect_backward_add_o(self.connect, s, o, g, None, grad_input.data_mut());
                Ok(())
            });
        }
        self.grad_branch.resize_for_overwrite(grad_output.shape());
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

    fn forward_released(&mut self, input: &Tensor, output: &mut Tensor) -> Result<()> {
        self.keep = false;
        let run = self.forward(input, output, true);
        self.keep = true;
        run
    }

    fn runs_in_place(&self) -> bool {
        self.ran_chunked
    }

    fn rerun_in_place(&mut self, input: SegmentInput) -> Result<()> {
        let branch = &mut self.paths.branch;
        self.chunked = sew_chunks::forward(branch, self.connect, input, None, true)?;
        if self.chunked.is_none() {
            return Err(Error::state(&self.name, "the chunked forward no longer fits"));
        }
        Ok(())
    }

    fn backward_in_place(&mut self, input: SegmentInput, grad: &mut Tensor) -> Result<()> {
        let kept = self.chunked.take().ok_or_else(|| {
            Error::state(&self.name, "backward_in_place needs rerun_in_place first")
        })?;
        sew_chunks::backward(&mut self.paths.branch, &Join::sew(self.connect), &kept, input, grad)
    }

    /// The paths' layers, then the block output `<block>.out`.
    fn visit(&self, visitor: &mut dyn Visitor) {
        self.paths.visit(visitor);
        visitor.stored_bytes(self.chunked.as_ref().map_or(0, sew_chunks::Kept::bytes));
        if let Some(rate) = self.out_rate {
            visitor.firing_rate(format!("{}.out", self.name), rate);
        }
    }

    fn visit_mut<'a>(&'a mut self, visitor: &mut dyn VisitorMut<'a>) {
        self.paths.visit_mut(visitor);
        visitor.counter(Counter::block_rate(format!("{}.out", self.name), &mut self.out_monitor));
    }
}
