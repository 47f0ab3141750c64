//! BatchNorm1d over the channels of tokens `[T, N, ..., C]` (channels last): statistics per
//! channel over every other axis, as SpikingJelly's BatchNorm1d does on the merged
//! `[T*N, C, L]` view of a token sequence.
//!
//! In training, the sequence runs it with the neuron after it as one pass (see
//! `nn::sequential::plan`): [`BatchNorm1d::forward_statistics`] here, the affine applied on the
//! fly by the neuron kernel with the same [`ChannelAffine`] (channels last: `hw` = 1), and
//! [`BatchNorm1d::backward_from_sums`] once the neuron's backward has summed `dL/dy`.
use crate::error::{Error, Result};
use crate::kernels::batch_norm::{
    channels_last_centered_squares, channels_last_sums, scale_shift, ChannelAffine,
};
use crate::layer::{check_grad_output, BackwardReads, Layer, Param, VisitorMut};
use crate::neuron::kernel::BnGrad;
use crate::nn::batch_norm::{check_spec, visit_running_statistics};
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
    /// The affine `y = x * scale + shift` of the last forward (recomputed outputs and the
    /// fused pass apply it).
    scale: Vec<f32>,
    shift: Vec<f32>,
    /// Per-channel sums the fused backward fills, and the input gradient's `a dy + b x + d`.
    sum_dy: Vec<f64>,
    sum_dy_xc: Vec<f64>,
    coef: [Vec<f32>; 3],
    /// Input shape of the last forward and whether it used batch statistics.
    last: Option<(Vec<usize>, bool)>,
}

/// Per-channel sums of `f(row index, row values)` over all rows, in a fixed order: the rows of
/// each block of [`ROWS`] in order, then the blocks in order ([`block_sums`]).
fn channel_sums(x: &[f32], c: usize, f: impl Fn(usize, &[f32], &mut [f64]) + Sync) -> Vec<f64> {
    block_sums(x, c, |blk, rows, acc| {
        for (r, row) in rows.chunks_exact(c).enumerate() {
            f(blk * ROWS + r, row, acc);
        }
    })
}

/// Per-channel sums of `f(block index, block, acc)` over the blocks of [`ROWS`] rows: each
/// block into its own accumulator, then the blocks added in order, so the result does not
/// depend on the thread count.
fn block_sums(x: &[f32], c: usize, f: impl Fn(usize, &[f32], &mut [f64]) + Sync) -> Vec<f64> {
    let partial: Vec<Vec<f64>> = x
        .par_chunks(ROWS * c)
        .enumerate()
        .map(|(blk, rows)| {
            let mut acc = vec![0.0f64; c];
            f(blk, rows, &mut acc);
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

/// One row's input gradient `dx = a dy + b x + d`, channel by channel (zipped, so the loop
/// vectorises without bounds checks).
#[inline(always)]
fn input_grad_row(dx: &mut [f32], dy: &[f32], x: &[f32], a: &[f32], b: &[f32], d: &[f32]) {
    for (((((o, &g), &v), &a), &b), &d) in dx.iter_mut().zip(dy).zip(x).zip(a).zip(b).zip(d) {
        *o = a * g + b * v + d;
    }
}

/// [`input_grad_row`] with `dy` in `dx` on entry.
#[inline(always)]
fn input_grad_row_in_place(dx: &mut [f32], x: &[f32], a: &[f32], b: &[f32], d: &[f32]) {
    for ((((o, &v), &a), &b), &d) in dx.iter_mut().zip(x).zip(a).zip(b).zip(d) {
        *o = a * *o + b * v + d;
    }
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
            scale: vec![0.0; c],
            shift: vec![0.0; c],
            sum_dy: vec![0.0; c],
            sum_dy_xc: vec![0.0; c],
            coef: [vec![0.0; c], vec![0.0; c], vec![0.0; c]],
            last: None,
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

    /// `scale = gamma * invstd`, `shift = beta - mean * scale` from the current statistics.
    fn set_scale_shift(&mut self) {
        let (g, b) = (self.weight.value.data(), self.bias.value.data());
        scale_shift(g, b, &self.mean, &self.invstd, &mut self.scale, &mut self.shift);
    }

    /// Training-mode statistics of `input` (the running statistics move) and the scale and
    /// shift they give: `forward` in training up to the affine pass, which the fused BN +
    /// neuron pass applies itself (see [`BatchNorm1d::affine`]). `_moments` is for the
    /// planner's common interface: no producer of tokens hands over moments, they are
    /// computed here. `repeats` > 1: `input` is one time step standing for `repeats` identical
    /// ones; only the running variance's unbiasing counts every step.
    #[doc(hidden)]
    pub fn forward_statistics(
        &mut self,
        input: &Tensor,
        _moments: Option<&[f64]>,
        repeats: usize,
    ) -> Result<()> {
        self.check_input(input.shape())?;
        let c = self.spec.num_features;
        let rows = input.numel() / c;
        let all_rows = rows * repeats.max(1);
        let x = input.data();
        let sum = block_sums(x, c, |_, rows, acc| channels_last_sums(rows, c, acc));
        let mean: Vec<f64> = sum.iter().map(|s| s / rows as f64).collect();
        let sq =
            block_sums(x, c, |_, rows, acc| channels_last_centered_squares(rows, c, &mean, acc));
        let m = self.spec.momentum as f64;
        let unbiased = if all_rows > 1 { all_rows as f64 / (all_rows - 1) as f64 } else { 1.0 };
        for ch in 0..c {
            let var = sq[ch] / rows as f64;
            self.mean[ch] = mean[ch] as f32;
            self.invstd[ch] = (1.0 / (var + self.spec.eps as f64).sqrt()) as f32;
            let rm = &mut self.running_mean.data_mut()[ch];
            *rm = ((1.0 - m) * *rm as f64 + m * mean[ch]) as f32;
            let rv = &mut self.running_var.data_mut()[ch];
            *rv = ((1.0 - m) * *rv as f64 + m * var * unbiased) as f32;
        }
        self.set_scale_shift();
        self.last = Some((input.shape().to_vec(), true));
        Ok(())
    }

    /// Evaluation-mode statistics (the running ones) and the scale and shift they give, for
    /// inputs of `shape`: `forward` out of training up to the affine pass, which the fused
    /// inference pass of BN + neuron applies itself (see [`BatchNorm1d::affine`]).
    pub(crate) fn eval_statistics(&mut self, shape: &[usize]) -> Result<()> {
        self.check_input(shape)?;
        for ch in 0..self.spec.num_features {
            self.mean[ch] = self.running_mean.data()[ch];
            self.invstd[ch] = 1.0 / (self.running_var.data()[ch] + self.spec.eps).sqrt();
        }
        self.set_scale_shift();
        self.last = Some((shape.to_vec(), false));
        Ok(())
    }

    /// The affine the last forward applied (or left to the fused pass): channels last, so
    /// each channel's "plane" is one value.
    #[doc(hidden)]
    pub fn affine(&self, _shape: &[usize]) -> ChannelAffine<'_> {
        ChannelAffine { scale: &self.scale, shift: &self.shift, hw: 1 }
    }

    /// Whether the last forward (which must have been on `shape`) used batch statistics.
    pub(crate) fn last_used_batch_stats(&self, shape: &[usize]) -> Result<bool> {
        match &self.last {
            Some((last, training)) if last == shape => Ok(*training),
            _ => Err(Error::state(
                &self.label,
                "backward needs a forward on the same input shape first",
            )),
        }
    }

    /// For the fused BN + neuron backward: the affine and mean of the last forward, which must
    /// have been a forward on `shape`, and the sum vectors the neuron kernel fills.
    #[doc(hidden)]
    pub fn fused_grad(&mut self, shape: &[usize]) -> Result<BnGrad<'_>> {
        self.last_used_batch_stats(shape)?;
        Ok(BnGrad {
            affine: ChannelAffine { scale: &self.scale, shift: &self.shift, hw: 1 },
            mean: &self.mean,
            sum_dy: &mut self.sum_dy,
            sum_dy_xc: &mut self.sum_dy_xc,
        })
    }

    /// The rest of the backward once `sum_dy` and `sum_dy_xc` hold the sums of `dy` (the
    /// fused BN + neuron backward fills them): parameter gradients and `dx`.
    #[doc(hidden)]
    pub fn backward_from_sums(
        &mut self,
        input: &Tensor,
        dy: &Tensor,
        grad_input: &mut Tensor,
        batch_stats: bool,
    ) {
        self.input_grad_coefficients(input.shape(), batch_stats);
        grad_input.resize_for_overwrite(input.shape());
        let c = self.spec.num_features;
        let [a, b, d] = &self.coef;
        grad_input
            .data_mut()
            .par_chunks_mut(ROWS * c)
            .zip(input.data().par_chunks(ROWS * c).zip(dy.data().par_chunks(ROWS * c)))
            .for_each(|(dx, (x, dy))| {
                for ((dxr, xr), dyr) in
                    dx.chunks_exact_mut(c).zip(x.chunks_exact(c)).zip(dy.chunks_exact(c))
                {
                    input_grad_row(dxr, dyr, xr, a, b, d);
                }
            });
    }

    /// [`Self::backward_from_sums`] with the input gradient written over `dy`.
    pub(crate) fn backward_from_sums_in_place(
        &mut self,
        input: &Tensor,
        dy: &mut Tensor,
        batch_stats: bool,
    ) {
        assert_eq!(input.shape(), dy.shape(), "backward_from_sums_in_place: shapes");
        self.input_grad_coefficients(input.shape(), batch_stats);
        let c = self.spec.num_features;
        let [a, b, d] = &self.coef;
        dy.data_mut().par_chunks_mut(ROWS * c).zip(input.data().par_chunks(ROWS * c)).for_each(
            |(dx, x)| {
                for (dxr, xr) in dx.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
                    input_grad_row_in_place(dxr, xr, a, b, d);
                }
            },
        );
    }

    /// Adds the affine parameters' gradients from the sums and sets `coef` to the input
    /// gradient's per-channel `dx = a dy + b x + d`, the expansion of
    /// `gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat))`.
    fn input_grad_coefficients(&mut self, shape: &[usize], batch_stats: bool) {
        let c = self.spec.num_features;
        let n = (shape.iter().product::<usize>() / c) as f64;
        let gamma = self.weight.value.data();
        let [a, b, d] = &mut self.coef;
        for ch in 0..c {
            let is = self.invstd[ch] as f64;
            let (sd, sdx) = (self.sum_dy[ch], self.sum_dy_xc[ch]);
            self.weight.grad.data_mut()[ch] += (sdx * is) as f32;
            self.bias.grad.data_mut()[ch] += sd as f32;
            let gi = gamma[ch] as f64 * is;
            a[ch] = gi as f32;
            if batch_stats {
                let k = gi * is * is * sdx / n;
                b[ch] = -k as f32;
                d[ch] = (k * self.mean[ch] as f64 - gi * sd / n) as f32;
            } else {
                b[ch] = 0.0;
                d[ch] = 0.0;
            }
        }
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
        if training && input.numel() > 0 {
            self.forward_statistics(input, None, 1)?;
        } else {
            self.eval_statistics(input.shape())?;
        }
        self.recompute_output(input, output);
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
        let batch = self.last_used_batch_stats(input.shape())?;
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

    fn recomputes_output(&self) -> bool {
        true
    }

    /// The forward's own affine pass with the scale and shift it used, so the result is
    /// bit-identical.
    fn recompute_output(&self, input: &Tensor, output: &mut Tensor) {
        let c = self.spec.num_features;
        output.resize_for_overwrite(input.shape());
        let (scale, shift) = (&self.scale, &self.shift);
        if c > 0 {
            output
                .data_mut()
                .par_chunks_mut(ROWS * c)
                .zip(input.data().par_chunks(ROWS * c))
                .for_each(|(y, x)| {
                    for (yr, xr) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
                        for (((y, &x), &s), &b) in yr.iter_mut().zip(xr).zip(scale).zip(shift) {
                            *y = ChannelAffine::apply(x, s, b);
                        }
                    }
                });
        }
    }

    fn visit_mut<'a>(&'a mut self, visitor: &mut dyn VisitorMut<'a>) {
        let name = self.weight.name.trim_end_matches(".weight").to_string();
        visitor.param(&mut self.weight);
        visitor.param(&mut self.bias);
        visit_running_statistics(visitor, &name, &mut self.running_mean, &mut self.running_var);
    }
}
