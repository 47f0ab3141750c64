//! `[T, N, L, C] -> [T, N, C]`: the mean over the tokens, before a transformer's head.
use crate::error::Result;
use crate::layer::expect_sample_rank;
use crate::nn::shape_layer::{MeanMap, ShapeLayer, ShapeMap};
use crate::tensor::Tensor;
use rayon::prelude::*;

/// `y[c] = mean_l x[l, c]` for each sample-step of `l * c` values.
pub fn token_mean_forward(x: &[f32], l: usize, c: usize, y: &mut [f32]) {
    if l * c == 0 {
        y.fill(0.0);
        return;
    }
    let inv = 1.0 / l as f32;
    y.par_chunks_mut(c).zip(x.par_chunks(l * c)).for_each(|(y, x)| {
        y.fill(0.0);
        for row in x.chunks_exact(c) {
            for (a, &v) in y.iter_mut().zip(row) {
                *a += v;
            }
        }
        y.iter_mut().for_each(|a| *a *= inv);
    });
}

/// `dx[l, c] = dy[c] / L`.
pub fn token_mean_backward(dy: &[f32], l: usize, c: usize, dx: &mut [f32]) {
    if l * c == 0 {
        return;
    }
    let inv = 1.0 / l as f32;
    dx.par_chunks_mut(l * c).zip(dy.par_chunks(c)).for_each(|(dx, dy)| {
        for row in dx.chunks_exact_mut(c) {
            for (d, &g) in row.iter_mut().zip(dy) {
                *d = g * inv;
            }
        }
    });
}

/// The rule of [`TokenMean`].
pub struct MeanOverTokens;

impl ShapeMap for MeanOverTokens {
    const KIND: &'static str = "tokenMean";

    fn output_shape(label: &str, input: &[usize]) -> Result<Vec<usize>> {
        expect_sample_rank(label, input, 2, "[T, N, L, C] (tokens)")?;
        Ok(vec![input[0], input[1], input[3]])
    }

    fn forward(input: &Tensor, output: &mut [f32]) {
        let s = input.shape();
        token_mean_forward(input.data(), s[2], s[3], output);
    }

    fn backward(input_shape: &[usize], grad_output: &[f32], grad_input: &mut [f32]) {
        token_mean_backward(grad_output, input_shape[2], input_shape[3], grad_input);
    }
}

impl MeanMap for MeanOverTokens {}

pub type TokenMean = ShapeLayer<MeanOverTokens>;
