//! `[T, N, L, C] -> [T, N, C]`: the mean over the tokens, before a transformer's head.
use crate::error::{Error, Result};
use crate::layer::{
    check_grad_output, expect_sample_rank, BackwardReads, Layer, Visitor, VisitorMut,
};
use crate::nn::mean_head::MeanHead;
use crate::tensor::Tensor;
use rayon::prelude::*;

#[derive(Clone, Debug)]
pub struct TokenMean {
    label: String,
    head: Option<MeanHead>,
}

impl TokenMean {
    pub fn new(name: &str) -> Self {
        TokenMean { label: format!("{name} (tokenMean)"), head: None }
    }

    /// Audits and counts the synapses of the linear `linear_path` that reads this mean.
    pub fn feeding(mut self, linear_path: &str, out_features: usize, bias: bool) -> Self {
        self.head = Some(MeanHead::new(&self.label, linear_path, out_features, bias));
        self
    }
}

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

impl Layer for TokenMean {
    fn backward_reads(&self) -> BackwardReads {
        BackwardReads { input: false, output: false }
    }

    fn name(&self) -> &str {
        &self.label
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        expect_sample_rank(&self.label, input, 2, "[T, N, L, C] (tokens)")?;
        Ok(vec![input[0], input[1], input[3]])
    }

    fn forward(&mut self, input: &Tensor, output: &mut Tensor, _training: bool) -> Result<()> {
        let shape = self.output_shape(input.shape())?;
        output.resize_for_overwrite(&shape);
        let s = input.shape();
        token_mean_forward(input.data(), s[2], s[3], output.data_mut());
        if let Some(h) = self.head.as_mut() {
            h.observe(input, output);
        }
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
        let s = input.shape();
        token_mean_backward(grad_output.data(), s[2], s[3], grad_input.data_mut());
        Ok(())
    }

    fn visit(&self, visitor: &mut dyn Visitor) {
        if let Some(h) = &self.head {
            h.visit(visitor);
        }
    }

    fn visit_mut<'a>(&'a mut self, visitor: &mut dyn VisitorMut<'a>) {
        if let Some(h) = self.head.as_mut() {
            h.visit_mut(visitor);
        }
    }
}
