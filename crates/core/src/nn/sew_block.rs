//! Spike-element-wise residual block: `O = g(branch(X), shortcut(X))`.
use crate::error::{Error, Result};
use crate::nn::connect::{connect_backward, connect_forward};
use crate::nn::layer::{Buffer, Layer, Param};
use crate::nn::sequential::Sequential;
use crate::spec::Connect;
use crate::tensor::Tensor;

pub struct SewBlock {
    name: String,
    branch: Sequential,
    /// `None` is the identity shortcut.
    shortcut: Option<Sequential>,
    connect: Connect,
    branch_out: Tensor,
    shortcut_out: Tensor,
    grad_branch: Tensor,
    grad_shortcut: Tensor,
    grad_scratch: Tensor,
}

impl SewBlock {
    pub fn new(name: &str, branch: Sequential, shortcut: Option<Sequential>, connect: Connect) -> Self {
        SewBlock {
            name: name.to_string(),
            branch,
            shortcut,
            connect,
            branch_out: Tensor::default(),
            shortcut_out: Tensor::default(),
            grad_branch: Tensor::default(),
            grad_shortcut: Tensor::default(),
            grad_scratch: Tensor::default(),
        }
    }
}

impl Layer for SewBlock {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let b = self.branch.output_shape(input)?;
        let s = match &self.shortcut {
            Some(sc) => sc.output_shape(input)?,
            None => input.to_vec(),
        };
        if b != s {
            return Err(Error::spec(
                &self.name,
                format!(
                    "the branch gives {b:?} but the shortcut gives {s:?}; add a downsampling shortcut \
                     (conv1x1 with the branch's stride and channels) so both match"
                ),
            ));
        }
        Ok(b)
    }

    fn forward(&mut self, input: &Tensor, output: &mut Tensor, training: bool) -> Result<()> {
        self.branch.forward(input, &mut self.branch_out, training)?;
        let o = match &mut self.shortcut {
            Some(sc) => {
                sc.forward(input, &mut self.shortcut_out, training)?;
                &self.shortcut_out
            }
            None => input,
        };
        if o.shape() != self.branch_out.shape() {
            return Err(Error::shape(
                &self.name,
                format!("the branch output shape {:?} for the shortcut", self.branch_out.shape()),
                o.shape(),
            ));
        }
        output.resize_for_overwrite(o.shape());
        connect_forward(self.connect, self.branch_out.data(), o.data(), output.data_mut());
        Ok(())
    }

    fn backward(
        &mut self,
        input: &Tensor,
        _output: &Tensor,
        grad_output: &Tensor,
        grad_input: &mut Tensor,
    ) -> Result<()> {
        let o = if self.shortcut.is_some() { &self.shortcut_out } else { input };
        self.grad_branch.resize_for_overwrite(grad_output.shape());
        self.grad_shortcut.resize_for_overwrite(grad_output.shape());
        connect_backward(
            self.connect,
            self.branch_out.data(),
            o.data(),
            grad_output.data(),
            self.grad_branch.data_mut(),
            self.grad_shortcut.data_mut(),
        );
        self.branch.backward(input, &self.branch_out, &self.grad_branch, grad_input)?;
        let through_shortcut = match &mut self.shortcut {
            Some(sc) => {
                sc.backward(input, &self.shortcut_out, &self.grad_shortcut, &mut self.grad_scratch)?;
                &self.grad_scratch
            }
            None => &self.grad_shortcut,
        };
        for (g, s) in grad_input.data_mut().iter_mut().zip(through_shortcut.data()) {
            *g += s;
        }
        Ok(())
    }

    fn params<'a>(&'a mut self, out: &mut Vec<&'a mut Param>) {
        self.branch.params(out);
        if let Some(sc) = &mut self.shortcut {
            sc.params(out);
        }
    }

    fn buffers<'a>(&'a mut self, out: &mut Vec<Buffer<'a>>) {
        self.branch.buffers(out);
        if let Some(sc) = &mut self.shortcut {
            sc.buffers(out);
        }
    }

    fn firing_rates(&self, out: &mut Vec<(String, f32)>) {
        self.branch.firing_rates(out);
        if let Some(sc) = &self.shortcut {
            sc.firing_rates(out);
        }
    }
}
