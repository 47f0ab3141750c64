//! `[T, N, ...] -> [T, N, prod(...)]`.
use crate::error::{Error, Result};
use crate::nn::shape_layer::{ShapeLayer, ShapeMap};
use crate::tensor::Tensor;

/// The rule of [`Flatten`].
pub struct Flattening;

impl ShapeMap for Flattening {
    const KIND: &'static str = "flatten";
    const KEEPS_SPIKES: bool = true;

    fn output_shape(label: &str, input: &[usize]) -> Result<Vec<usize>> {
        if input.len() < 3 {
            return Err(Error::shape(
                label,
                "[T, N, ...] with at least one feature dimension",
                input,
            ));
        }
        Ok(vec![input[0], input[1], input[2..].iter().product()])
    }

    fn forward(input: &Tensor, output: &mut [f32]) {
        output.copy_from_slice(input.data());
    }

    fn backward(_input_shape: &[usize], grad_output: &[f32], grad_input: &mut [f32]) {
        grad_input.copy_from_slice(grad_output);
    }
}

pub type Flatten = ShapeLayer<Flattening>;
