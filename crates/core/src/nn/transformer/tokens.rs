//! `[T, N, C, H, W] -> [T, N, H*W, C]`: each position of a feature map becomes a token of C
//! channels, in row-major order (the token of `(h, w)` is `h * W + w`).
use crate::error::{Error, Result};
use crate::kernels::transpose::{cells_to_planes, planes_to_cells};
use crate::layer::{check_grad_output, expect_sample_rank, BackwardReads, Layer};
use crate::tensor::Tensor;
use rayon::prelude::*;

#[derive(Clone, Debug)]
pub struct Tokens {
    label: String,
}

impl Tokens {
    pub fn new(name: &str) -> Self {
        Tokens { label: format!("{name} (tokens)") }
    }
}

impl Layer for Tokens {
    /// A transposition: backward needs the shapes alone.
    fn backward_reads(&self) -> BackwardReads {
        BackwardReads { input: false, output: false }
    }

    fn emits_spikes(&self, input_spikes: bool) -> bool {
        input_spikes
    }

    fn name(&self) -> &str {
        &self.label
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        expect_sample_rank(&self.label, input, 3, "[T, N, C, H, W]")?;
        Ok(vec![input[0], input[1], input[3] * input[4], input[2]])
    }

    fn forward(&mut self, input: &Tensor, output: &mut Tensor, _training: bool) -> Result<()> {
        let shape = self.output_shape(input.shape())?;
        output.resize_for_overwrite(&shape);
        let (l, c) = (shape[2], shape[3]);
        if l * c == 0 {
            return Ok(());
        }
        output
            .data_mut()
            .par_chunks_mut(l * c)
            .zip(input.data().par_chunks(l * c))
            .for_each(|(cells, planes)| planes_to_cells(planes, l, l, c, cells, c));
        Ok(())
    }

    fn backward(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        grad_input: &mut Tensor,
    ) -> Result<()> {
        let shape = self.output_shape(input.shape())?;
        check_grad_output(&self.label, output.shape(), grad_output.shape())?;
        if shape != grad_output.shape() {
            return Err(Error::shape(&self.label, format!("{shape:?}"), grad_output.shape()));
        }
        grad_input.resize_for_overwrite(input.shape());
        let (l, c) = (shape[2], shape[3]);
        if l * c == 0 {
            return Ok(());
        }
        grad_input
            .data_mut()
            .par_chunks_mut(l * c)
            .zip(grad_output.data().par_chunks(l * c))
            .for_each(|(planes, cells)| cells_to_planes(cells, c, l, c, None, planes, l));
        Ok(())
    }
}
