//! BatchNorm1d over the channels of tokens `[T, N, ..., C]` (channels last): statistics per
//! channel over every other axis, as SpikingJelly's BatchNorm1d does on the merged
//! `[T*N, C, L]` view of a token sequence.
use crate::error::{Error, Result};
use crate::layer::{check_grad_output, BackwardReads, Buffer, Layer, Param, VisitorMut};
use crate::nn::batch_norm::check_spec;
use crate::spec::BatchNormSpec;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// Rows per parallel task: a fixed size, so sums do not depend on the thread count.
const ROWS: usize = 256;

#[derive(Clone, Debug)]
pub struct BatchNorm1d {
    label: String,
    spec: BatchNormSpec,
    weight: Param,
    bias: Param,
    running_mean: Tensor,
    running_var: Tensor,
    /// Statistics the last forward normalised with (batch or running), for backward.
    mean: Vec<f32>,
    invstd: Vec<f32>,
    /// Whether the last forward used batch statistics.
    batch_stats: bool,
}

/// Per-channel sums of `f(row values)` over all rows, in a fixed order.
fn channel_sums(x: &[f32], c: usize, f: impl Fn(usize, &[f32], &mut [f64]) + Sync) -> Vec<f64> {
    let partial: Vec<Vec<f64>> = x
        .par_chunks(ROWS * c)
        .enumerate()
        .map(|(blk, rows)| {
            let mut acc = vec![0.0f64; c];
            for (r, row) in rows.chunks_exact(c).enumerate() {
                f(blk * ROWS + r, row, &mut acc);
            }
            acc
        })
        .collect();
    let mut total = vec![0.0f64; c];
    for p in partial {
        for (t, v) in total.iter_mut().zip(p) {
            *t += v;
        }
    }
    total
}

impl BatchNorm1d {
    pub fn new(name: &str, spec: &BatchNormSpec) -> Result<Self> {
        let label = format!("{name} (batchNorm1d)");
        let c = spec.num_features;
        check_spec(&label, spec)?;
        if !spec.affine {
            return Err(Error::spec(
                &label,
                "affine: false is supported by batchNorm2d only; batchNorm1d keeps its weight and bias",
            ));
        }
        Ok(BatchNorm1d {
            label,
            spec: spec.clone(),
            weight: Param::new(
                format!("{name}.weight"),
                Tensor::full(&[c], spec.init_weight),
                false,
            ),
            bias: Param::new(format!("{name}.bias"), Tensor::zeros(&[c]), false),
            running_mean: Tensor::zeros(&[c]),
            running_var: Tensor::full(&[c], 1.0),
            mean: vec![0.0; c],
            invstd: vec![0.0; c],
            batch_stats: false,
        })
    }

    fn check_input(&self, input: &[usize]) -> Result<()> {
        let c = self.spec.num_features;
        if input.len() < 3 || input[input.len() - 1] != c {
            return Err(Error::shape(
                &self.label,
                format!("[T, N, ..., {c}] (channels last)"),
                input,
            ));
        }
        Ok(())
    }
}

impl Layer for BatchNorm1d {
    fn name(&self) -> &str {
        &self.label
    }

    fn backward_reads(&self) -> BackwardReads {
        BackwardReads { input: true, output: false }
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.check_input(input)?;
        Ok(input.to_vec())
    }

    fn forward(&mut self, input: &Tensor, output: &mut Tensor, training: bool) -> Result<()> {
        self.check_input(input.shape())?;
        let c = self.spec.num_features;
        let rows = input.numel() / c;
        let x = input.data();
        if training && rows > 0 {
            let sum = channel_sums(x, c, |_, row, acc| {
                for (a, &v) in acc.iter_mut().zip(row) {
                    *a += v as f64;
                }
            });
            let mean: Vec<f64> = sum.iter().map(|s| s / rows as f64).collect();
            let sq = channel_sums(x, c, |_, row, acc| {
                for ((a, &v), m) in acc.iter_mut().zip(row).zip(&mean) {
                    let d = v as f64 - m;
                    *a += d * d;
                }
            });
            let m = self.spec.momentum as f64;
            let unbiased = if rows > 1 { rows as f64 / (rows - 1) as f64 } else { 1.0 };
            for ch in 0..c {
                let var = sq[ch] / rows as f64;
                self.mean[ch] = mean[ch] as f32;
                self.invstd[ch] = (1.0 / (var + self.spec.eps as f64).sqrt()) as f32;
                let rm = &mut self.running_mean.data_mut()[ch];
                *rm = ((1.0 - m) * *rm as f64 + m * mean[ch]) as f32;
                let rv = &mut self.running_var.data_mut()[ch];
                *rv = ((1.0 - m) * *rv as f64 + m * var * unbiased) as f32;
            }
            self.batch_stats = true;
        } else {
            for ch in 0..c {
                self.mean[ch] = self.running_mean.data()[ch];
                self.invstd[ch] = 1.0 / (self.running_var.data()[ch] + self.spec.eps).sqrt();
            }
            self.batch_stats = false;
        }
        output.resize_for_overwrite(input.shape());
        let (g, b) = (self.weight.value.data(), self.bias.value.data());
        let scale: Vec<f32> = (0..c).map(|ch| g[ch] * self.invstd[ch]).collect();
        let shift: Vec<f32> = (0..c).map(|ch| b[ch] - self.mean[ch] * scale[ch]).collect();
        if c > 0 {
            output.data_mut().par_chunks_mut(ROWS * c).zip(x.par_chunks(ROWS * c)).for_each(
                |(y, x)| {
                    for (yr, xr) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
                        for ch in 0..c {
                            yr[ch] = xr[ch] * scale[ch] + shift[ch];
                        }
                    }
                },
            );
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
        self.check_input(input.shape())?;
        check_grad_output(&self.label, output.shape(), grad_output.shape())?;
        check_grad_output(&self.label, input.shape(), grad_output.shape())?;
        let c = self.spec.num_features;
        let rows = input.numel() / c;
        grad_input.resize_for_overwrite(input.shape());
        if rows == 0 {
            return Ok(());
        }
        let (x, dy) = (input.data(), grad_output.data());
        let (mean, invstd) = (&self.mean, &self.invstd);
        // sum(dy) and sum(dy * xhat) per channel.
        let sums = channel_sums(dy, c, |_, dyr, acc| {
            for (a, &v) in acc.iter_mut().zip(dyr) {
                *a += v as f64;
            }
        });
        let sums_xhat = channel_sums(dy, c, |r, dyr, acc| {
            let xr = &x[r * c..(r + 1) * c];
            for ch in 0..c {
                acc[ch] += dyr[ch] as f64 * ((xr[ch] - mean[ch]) * invstd[ch]) as f64;
            }
        });
        let g = self.weight.value.data();
        for ch in 0..c {
            self.bias.grad.data_mut()[ch] += sums[ch] as f32;
            self.weight.grad.data_mut()[ch] += sums_xhat[ch] as f32;
        }
        let k: Vec<f32> = (0..c).map(|ch| g[ch] * invstd[ch]).collect();
        let batch = self.batch_stats;
        let m1: Vec<f32> = sums.iter().map(|s| (s / rows as f64) as f32).collect();
        let m2: Vec<f32> = sums_xhat.iter().map(|s| (s / rows as f64) as f32).collect();
        grad_input
            .data_mut()
            .par_chunks_mut(ROWS * c)
            .zip(dy.par_chunks(ROWS * c).zip(x.par_chunks(ROWS * c)))
            .for_each(|(dx, (dy, x))| {
                for ((dxr, dyr), xr) in
                    dx.chunks_exact_mut(c).zip(dy.chunks_exact(c)).zip(x.chunks_exact(c))
                {
                    for ch in 0..c {
                        dxr[ch] = if batch {
                            let xhat = (xr[ch] - mean[ch]) * invstd[ch];
                            k[ch] * (dyr[ch] - m1[ch] - xhat * m2[ch])
                        } else {
                            k[ch] * dyr[ch]
                        };
                    }
                }
            });
        Ok(())
    }

    fn visit_mut<'a>(&'a mut self, visitor: &mut dyn VisitorMut<'a>) {
        let name = self.weight.name.trim_end_matches(".weight").to_string();
        visitor.param(&mut self.weight);
        visitor.param(&mut self.bias);
        visitor
            .buffer(Buffer { name: format!("{name}.running_mean"), value: &mut self.running_mean });
        visitor
            .buffer(Buffer { name: format!("{name}.running_var"), value: &mut self.running_var });
    }
}
