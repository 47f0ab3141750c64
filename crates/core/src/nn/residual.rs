//! The two paths every residual block has: a branch and a shortcut (the identity when absent),
//! both reading the block input. SEW and Spiking ResNet blocks differ only in how they join them.
use crate::error::{Error, Result};
use crate::layer::{Layer, Visitor, VisitorMut};
use crate::nn::sequential::Sequential;
use crate::spec::Connect;
use crate::tensor::Tensor;

pub struct ResidualPaths {
    pub branch: Sequential,
    pub shortcut: Option<Sequential>,
    pub branch_out: Tensor,
    shortcut_out: Tensor,
    grad_scratch: Tensor,
}

impl ResidualPaths {
    pub fn new(mut branch: Sequential, mut shortcut: Option<Sequential>) -> Self {
        // Residual blocks sit between spiking layers: their input is a spike map.
        branch.set_input_spikes(true);
        if let Some(sc) = &mut shortcut {
            sc.set_input_spikes(true);
        }
        ResidualPaths {
            branch,
            shortcut,
            branch_out: Tensor::default(),
            shortcut_out: Tensor::default(),
            grad_scratch: Tensor::default(),
        }
    }

    pub fn output_shape(&self, name: &str, input: &[usize]) -> Result<Vec<usize>> {
        joined_shape(name, &self.branch, self.shortcut.as_ref(), input)
    }

    /// Runs both paths; then `branch_out` and `shortcut_out(input)` hold their outputs.
    pub fn forward(&mut self, name: &str, input: &Tensor, training: bool) -> Result<()> {
        self.branch.forward(input, &mut self.branch_out, training)?;
        if let Some(sc) = &mut self.shortcut {
            sc.forward(input, &mut self.shortcut_out, training)?;
        }
        self.check_shapes(name, input)
    }

    /// Inference of an identity-shortcut block: the branch writes `g(branch(input), input)`
    /// into `output` where its last conv and neuron can (Some(sum of `output`)); otherwise
    /// `branch_out` holds the branch output, as after [`Self::forward`], and None.
    pub fn forward_joined(
        &mut self,
        name: &str,
        input: &Tensor,
        output: &mut Tensor,
        g: Connect,
    ) -> Result<Option<f64>> {
        assert!(self.shortcut.is_none(), "forward_joined: the shortcut must be the identity");
        let joined = self.branch.forward_joined(input, output, false, g, input)?;
        if joined.is_none() {
            std::mem::swap(output, &mut self.branch_out);
            self.check_shapes(name, input)?;
        }
        Ok(joined)
    }

    fn check_shapes(&self, name: &str, input: &Tensor) -> Result<()> {
        let o = self.shortcut_out(input);
        if o.shape() != self.branch_out.shape() {
            return Err(Error::shape(
                name,
                format!("the branch output shape {:?} for the shortcut", self.branch_out.shape()),
                o.shape(),
            ));
        }
        Ok(())
    }

    /// The shortcut's output of the last forward (`input` itself for the identity).
    pub fn shortcut_out<'a>(&'a self, input: &'a Tensor) -> &'a Tensor {
        if self.shortcut.is_some() {
            &self.shortcut_out
        } else {
            input
        }
    }

    /// Back through both paths; `grad_input` gets the sum of their input gradients.
    pub fn backward(
        &mut self,
        input: &Tensor,
        grad_branch: &Tensor,
        grad_shortcut: &Tensor,
        grad_input: &mut Tensor,
    ) -> Result<()> {
        self.branch.backward(input, &self.branch_out, grad_branch, grad_input)?;
        let through_shortcut = match &mut self.shortcut {
            Some(sc) => {
                sc.backward(input, &self.shortcut_out, grad_shortcut, &mut self.grad_scratch)?;
                &self.grad_scratch
            }
            None => grad_shortcut,
        };
        for (g, s) in grad_input.data_mut().iter_mut().zip(through_shortcut.data()) {
            *g += s;
        }
        Ok(())
    }

    pub fn emits_spikes(&self, input_spikes: bool) -> bool {
        let shortcut =
            self.shortcut.as_ref().map_or(input_spikes, |sc| sc.emits_spikes(input_spikes));
        shortcut && self.branch.emits_spikes(input_spikes)
    }

    /// The memory-lean mode inside both paths (their convs recompute their outputs).
    pub fn set_memory_lean(&mut self, on: bool) {
        self.branch.set_memory_lean(on);
        if let Some(sc) = &mut self.shortcut {
            sc.set_memory_lean(on);
        }
    }

    /// Frees the path outputs, the scratch and what the paths' layers stored.
    pub fn release_stored(&mut self) {
        self.branch_out = Tensor::default();
        self.shortcut_out = Tensor::default();
        self.grad_scratch = Tensor::default();
        self.branch.release_stored();
        if let Some(sc) = &mut self.shortcut {
            sc.release_stored();
        }
    }

    /// Walks both paths; adds the path outputs the join's backward reads to the stored bytes.
    pub fn visit(&self, visitor: &mut dyn Visitor) {
        self.branch.visit(visitor);
        visitor.stored_bytes(self.branch_out.numel() * 4);
        if let Some(sc) = &self.shortcut {
            sc.visit(visitor);
            visitor.stored_bytes(self.shortcut_out.numel() * 4);
        }
    }

    pub fn visit_mut<'a>(&'a mut self, visitor: &mut dyn VisitorMut<'a>) {
        self.branch.visit_mut(visitor);
        if let Some(sc) = &mut self.shortcut {
            sc.visit_mut(visitor);
        }
    }
}

/// Shape check shared by all residual blocks: branch and shortcut must agree.
#[doc(hidden)]
pub fn joined_shape(
    name: &str,
    branch: &Sequential,
    shortcut: Option<&Sequential>,
    input: &[usize],
) -> Result<Vec<usize>> {
    let b = branch.output_shape(input)?;
    let s = match shortcut {
        Some(sc) => sc.output_shape(input)?,
        None => input.to_vec(),
    };
    if b != s {
        return Err(Error::spec(
            name,
            format!(
                "the branch gives {b:?} but the shortcut gives {s:?}; add a downsampling shortcut \
                 (conv1x1 with the branch's stride and channels) so both match"
            ),
        ));
    }
    Ok(b)
}
