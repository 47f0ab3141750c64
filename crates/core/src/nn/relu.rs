//! `max(0, x)`, element-wise. The dual-stream projection `P(A) = ReLU(BN(conv(A)))` needs it.
use rayon::prelude::*;

use crate::error::Result;
use crate::layer::check_grad_output;
use crate::layer::Layer;
use crate::tensor::Tensor;

#[doc(hidden)]
pub const CHUNK: usize = 1 << 14;

#[derive(Clone, Debug)]
pub struct Relu {
    label: String,
}

impl Relu {
    pub fn new(name: &str) -> Self {
        Relu { label: format!("{name} (relu)") }
    }
}

impl Layer for Relu {
    fn name(&self) -> &str {
        &self.label
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(input.to_vec())
    }

    fn forward(&mut self, input: &Tensor, output: &mut Tensor, _training: bool) -> Result<()> {
        output.resize_for_overwrite(input.shape());
        output.data_mut().par_chunks_mut(CHUNK).zip(input.data().par_chunks(CHUNK)).for_each(
            |(y, x)| {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = x.max(0.0);
                }
            },
        );
        Ok(())
    }

    fn backward(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        grad_input: &mut Tensor,
    ) -> Result<()> {
        check_grad_output(&self.label, output.shape(), grad_output.shape())?;
        grad_input.resize_for_overwrite(input.shape());
        // PyTorch's convention: the gradient at exactly 0 is 0.
        grad_input
            .data_mut()
            .par_chunks_mut(CHUNK)
            .zip(input.data().par_chunks(CHUNK))
            .zip(grad_output.data().par_chunks(CHUNK))
            .for_each(|((gi, x), go)| {
                for ((gi, &x), &go) in gi.iter_mut().zip(x).zip(go) {
                    *gi = if x > 0.0 { go } else { 0.0 };
                }
            });
        Ok(())
    }
}
