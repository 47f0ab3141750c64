//! `[T, N, C, H, W] -> [T, N, H*W, C]`: each position of a feature map becomes a token of C
//! channels, in row-major order (the token of `(h, w)` is `h * W + w`).
use crate::error::Result;
use crate::kernels::transpose::{cells_to_planes, planes_to_cells};
use crate::layer::expect_sample_rank;
use crate::nn::shape_layer::{ShapeLayer, ShapeMap};
use crate::tensor::Tensor;
use rayon::prelude::*;

/// The rule of [`Tokens`].
pub struct Tokenizing;

impl ShapeMap for Tokenizing {
    const KIND: &'static str = "tokens";
    const KEEPS_SPIKES: bool = true;

    fn output_shape(label: &str, input: &[usize]) -> Result<Vec<usize>> {
        expect_sample_rank(label, input, 3, "[T, N, C, H, W]")?;
        Ok(vec![input[0], input[1], input[3] * input[4], input[2]])
    }

    fn forward(input: &Tensor, output: &mut [f32]) {
        let s = input.shape();
        let (l, c) = (s[3] * s[4], s[2]);
        if l * c == 0 {
            return;
        }
        output
            .par_chunks_mut(l * c)
            .zip(input.data().par_chunks(l * c))
            .for_each(|(cells, planes)| planes_to_cells(planes, l, l, c, cells, c));
    }

    fn backward(input_shape: &[usize], grad_output: &[f32], grad_input: &mut [f32]) {
        let (l, c) = (input_shape[3] * input_shape[4], input_shape[2]);
        if l * c == 0 {
            return;
        }
        grad_input
            .par_chunks_mut(l * c)
            .zip(grad_output.par_chunks(l * c))
            .for_each(|(planes, cells)| cells_to_planes(cells, c, l, c, None, planes, l));
    }
}

pub type Tokens = ShapeLayer<Tokenizing>;
