//! Losses on the multi-step output `[T, N, K]`.
//!
//! Both losses read the network's answer as the mean over the T steps (the firing rate when
//! the last layer spikes, the mean potential/logit otherwise), as SpikingJelly's examples do.
//! Each writes d loss / d output for all T steps, i.e. the gradient of the time mean spread
//! evenly (1/T) over the steps, ready for backpropagation through time.
//!
//! Reductions run in f64: per-sample terms of similar size are summed over the whole batch, and
//! the result is a single number that training curves and fixtures compare.
use serde::{Deserialize, Serialize};

use crate::error::{check_finite, Error, Result};
use crate::tensor::Tensor;

/// What one loss evaluation reports besides its gradient.
#[derive(Clone, Debug, PartialEq)]
pub struct LossStats {
    /// The (weighted) batch-mean loss.
    pub loss: f32,
    /// Samples whose prediction (argmax of the time mean) equals the label; with two heads,
    /// the spike head's (the full-spike network's).
    pub correct: usize,
    /// Samples in the batch (N).
    pub count: usize,
    /// Per head (spike head first), unweighted; empty for a single-head model.
    pub heads: Vec<HeadStats>,
}

/// One head's unweighted loss and correct count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HeadStats {
    pub loss: f32,
    pub correct: usize,
}

/// JSON description of the loss, e.g. `{"type": "crossEntropy"}`. The variants are empty
/// structs rather than unit variants because serde ignores `deny_unknown_fields` on unit
/// variants of a tagged enum, and a misspelt option should not pass silently.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum LossSpec {
    /// `F.cross_entropy(out.mean(0), labels, label_smoothing=eps)`.
    CrossEntropy {
        #[serde(default, rename = "headWeights", skip_serializing_if = "Option::is_none")]
        head_weights: Option<[f32; 2]>,
        /// Target `(1 - eps)` on the label plus `eps / K` on every class (default 0).
        #[serde(default, rename = "labelSmoothing", skip_serializing_if = "Option::is_none")]
        label_smoothing: Option<f32>,
    },
    /// `F.mse_loss(out.mean(0), F.one_hot(labels, K))`, SpikingJelly's usual firing-rate loss.
    MseFiringRate {
        #[serde(default, rename = "headWeights", skip_serializing_if = "Option::is_none")]
        head_weights: Option<[f32; 2]>,
    },
}

impl Default for LossSpec {
    fn default() -> Self {
        LossSpec::CrossEntropy { head_weights: None, label_smoothing: None }
    }
}

impl LossSpec {
    /// Evaluates this loss; `weight` scales both the loss and the gradient (e.g. the weight of
    /// one head among several).
    pub fn compute(
        &self,
        output: &Tensor,
        labels: &[u32],
        weight: f32,
        grad: &mut Tensor,
    ) -> Result<LossStats> {
        match self {
            LossSpec::CrossEntropy { label_smoothing, .. } => cross_entropy_time_mean_smoothed(
                output,
                labels,
                label_smoothing.unwrap_or(0.0),
                weight,
                grad,
            ),
            LossSpec::MseFiringRate { .. } => {
                mse_firing_rate_weighted(output, labels, weight, grad)
            }
        }
    }

    /// `(w_s, w_a)`, the weights of the spike and accumulation heads (default 1, 1).
    pub fn head_weights(&self) -> [f32; 2] {
        match self {
            LossSpec::CrossEntropy { head_weights, .. }
            | LossSpec::MseFiringRate { head_weights } => head_weights.unwrap_or([1.0, 1.0]),
        }
    }

    /// The training loss of a model with `heads` heads whose output rows are the heads' outputs
    /// side by side, `[T, N, heads * K]`: `sum_h w_h * loss(y_h)` (Eq. 12 for two heads).
    /// `grad` gets d loss / d output in the same layout.
    pub fn compute_heads(
        &self,
        output: &Tensor,
        labels: &[u32],
        heads: usize,
        grad: &mut Tensor,
    ) -> Result<LossStats> {
        if heads <= 1 {
            return self.compute(output, labels, 1.0, grad);
        }
        let (t, n, width) = dims("loss", output)?;
        if width % heads != 0 {
            return Err(Error::shape(
                "loss",
                format!("[T, N, {heads} * K] ({heads} heads side by side)"),
                output.shape(),
            ));
        }
        let k = width / heads;
        let weights = self.head_weights();
        for (h, &w) in weights.iter().enumerate() {
            check_weight(&format!("loss head {h}"), w)?;
        }
        grad.resize_for_overwrite(output.shape());
        let (mut part, mut part_grad) = (Tensor::default(), Tensor::default());
        let mut total = 0.0f64;
        let mut stats = Vec::with_capacity(heads);
        for h in 0..heads {
            head_slice(output, h, heads, &mut part)?;
            let s = self.compute(&part, labels, 1.0, &mut part_grad)?;
            let w = weights.get(h).copied().unwrap_or(1.0);
            total += w as f64 * s.loss as f64;
            for (row, g) in
                grad.data_mut().chunks_exact_mut(width).zip(part_grad.data().chunks_exact(k))
            {
                for (d, &v) in row[h * k..(h + 1) * k].iter_mut().zip(g) {
                    *d = w * v;
                }
            }
            stats.push(HeadStats { loss: s.loss, correct: s.correct });
        }
        debug_assert_eq!(grad.numel(), t * n * width);
        Ok(LossStats { loss: total as f32, correct: stats[0].correct, count: n, heads: stats })
    }
}

/// Head `h` of an output holding `heads` heads side by side: `[T, N, heads*K]` -> `[T, N, K]`.
pub fn head_slice(output: &Tensor, h: usize, heads: usize, out: &mut Tensor) -> Result<()> {
    let s = output.shape();
    if s.len() != 3 || !s[2].is_multiple_of(heads) || h >= heads {
        return Err(Error::shape("output", format!("[T, N, {heads} * K]"), s));
    }
    let k = s[2] / heads;
    out.resize_for_overwrite(&[s[0], s[1], k]);
    for (dst, row) in out.data_mut().chunks_exact_mut(k).zip(output.data().chunks_exact(s[2])) {
        dst.copy_from_slice(&row[h * k..(h + 1) * k]);
    }
    Ok(())
}

/// Mean-over-batch softmax cross-entropy of the time-mean logits; `grad` gets d loss / d output.
pub fn cross_entropy_time_mean(
    output: &Tensor,
    labels: &[u32],
    grad: &mut Tensor,
) -> Result<LossStats> {
    cross_entropy_time_mean_weighted(output, labels, 1.0, grad)
}

/// `cross_entropy_time_mean` with the loss and gradient scaled by `weight`.
pub fn cross_entropy_time_mean_weighted(
    output: &Tensor,
    labels: &[u32],
    weight: f32,
    grad: &mut Tensor,
) -> Result<LossStats> {
    cross_entropy_time_mean_smoothed(output, labels, 0.0, weight, grad)
}

/// `cross_entropy_time_mean_weighted` against smoothed targets: `1 - eps` on the label plus
/// `eps / K` on every class (PyTorch's `label_smoothing`), so the loss per sample is
/// `lse - (1 - eps) z_y - eps mean(z)`. With `eps = 0` every bit is the unsmoothed loss's.
pub fn cross_entropy_time_mean_smoothed(
    output: &Tensor,
    labels: &[u32],
    eps: f32,
    weight: f32,
    grad: &mut Tensor,
) -> Result<LossStats> {
    let at = "loss (crossEntropy)";
    let (t, n, k) = dims(at, output)?;
    check_labels(labels, n, k)?;
    check_weight(at, weight)?;
    if !(0.0..1.0).contains(&eps) {
        return Err(Error::value(format!("{at} labelSmoothing"), "a number in [0, 1)", eps));
    }
    let mean = time_mean(output, t, n, k);
    let w = weight as f64;
    let (on, each) = (1.0 - eps as f64, eps as f64 / k as f64);
    let mut d = vec![0.0f64; n * k];
    let mut total = 0.0f64;
    let mut correct = 0;
    for (i, (&y, z)) in labels.iter().zip(mean.chunks_exact(k)).enumerate() {
        let y = y as usize;
        let top = argmax(z);
        correct += usize::from(top == y);
        // Shifting by the maximum keeps exp() from overflowing; the log-sum-exp is then exact.
        let m = z[top];
        let lse = m + z.iter().map(|&v| (v - m).exp()).sum::<f64>().ln();
        total += lse - on * z[y] - each * z.iter().sum::<f64>();
        let di = &mut d[i * k..(i + 1) * k];
        for (dj, &v) in di.iter_mut().zip(z) {
            *dj = (v - lse).exp() - each;
        }
        di[y] -= on;
    }
    spread_over_time(grad, &d, t, n, k, w / (n as f64 * t as f64));
    Ok(LossStats { loss: (w * total / n as f64) as f32, correct, count: n, heads: Vec::new() })
}

/// `F.mse_loss` (mean over N*K) between the time-mean output and one-hot labels.
pub fn mse_firing_rate(output: &Tensor, labels: &[u32], grad: &mut Tensor) -> Result<LossStats> {
    mse_firing_rate_weighted(output, labels, 1.0, grad)
}

/// `mse_firing_rate` with the loss and gradient scaled by `weight`.
pub fn mse_firing_rate_weighted(
    output: &Tensor,
    labels: &[u32],
    weight: f32,
    grad: &mut Tensor,
) -> Result<LossStats> {
    let at = "loss (mseFiringRate)";
    let (t, n, k) = dims(at, output)?;
    check_labels(labels, n, k)?;
    check_weight(at, weight)?;
    let mut d = time_mean(output, t, n, k);
    let mut total = 0.0f64;
    let mut correct = 0;
    for (&y, r) in labels.iter().zip(d.chunks_exact_mut(k)) {
        let y = y as usize;
        correct += usize::from(argmax(r) == y);
        r[y] -= 1.0;
        total += r.iter().map(|e| e * e).sum::<f64>();
    }
    let nk = (n * k) as f64;
    let w = weight as f64;
    // d/dr of mean((r - y)^2) is 2 (r - y) / (N K); each step carries 1/T of it.
    spread_over_time(grad, &d, t, n, k, 2.0 * w / (nk * t as f64));
    Ok(LossStats { loss: (w * total / nk) as f32, correct, count: n, heads: Vec::new() })
}

/// Predicted class per sample: argmax of the time-mean output (first index on ties, as
/// `torch.argmax`).
pub fn predict(output: &Tensor) -> Result<Vec<u32>> {
    let (t, n, k) = dims("predict", output)?;
    let mean = time_mean(output, t, n, k);
    Ok(mean.chunks_exact(k).map(|z| argmax(z) as u32).collect())
}

/// The time-mean output `[N, K]` (what the heads' logits are).
pub fn time_mean_logits(output: &Tensor) -> Result<Tensor> {
    let (t, n, k) = dims("output", output)?;
    Tensor::from_vec(&[n, k], time_mean(output, t, n, k).into_iter().map(|v| v as f32).collect())
}

fn dims(at: &str, output: &Tensor) -> Result<(usize, usize, usize)> {
    let s = output.shape();
    if s.len() != 3 || s.contains(&0) {
        return Err(Error::shape(at, "[T, N, K] with T, N, K >= 1", s));
    }
    check_finite(at, output.data())?;
    Ok((s[0], s[1], s[2]))
}

fn check_labels(labels: &[u32], n: usize, k: usize) -> Result<()> {
    if labels.len() != n {
        return Err(Error::value(
            "labels",
            format!("one label per sample ({n}, the output's N)"),
            format!("{} labels", labels.len()),
        ));
    }
    if let Some(i) = labels.iter().position(|&y| y as usize >= k) {
        return Err(Error::value(
            format!("labels[{i}]"),
            format!("an integer in [0, {k})"),
            labels[i],
        ));
    }
    Ok(())
}

fn check_weight(at: &str, weight: f32) -> Result<()> {
    if !(weight.is_finite() && weight >= 0.0) {
        return Err(Error::value(format!("{at} weight"), "a finite number >= 0", weight));
    }
    Ok(())
}

/// `[N, K]` mean over the T steps.
fn time_mean(output: &Tensor, t: usize, n: usize, k: usize) -> Vec<f64> {
    let mut mean = vec![0.0f64; n * k];
    for step in output.data().chunks_exact(n * k) {
        for (m, &v) in mean.iter_mut().zip(step) {
            *m += v as f64;
        }
    }
    let inv = 1.0 / t as f64;
    mean.iter_mut().for_each(|m| *m *= inv);
    mean
}

fn argmax(z: &[f64]) -> usize {
    let mut best = 0;
    for (j, &v) in z.iter().enumerate().skip(1) {
        if v > z[best] {
            best = j;
        }
    }
    best
}

/// Writes `scale * d` into every one of the T steps of `grad`.
fn spread_over_time(grad: &mut Tensor, d: &[f64], t: usize, n: usize, k: usize, scale: f64) {
    grad.resize_for_overwrite(&[t, n, k]);
    for step in grad.data_mut().chunks_exact_mut(n * k) {
        for (g, &v) in step.iter_mut().zip(d) {
            *g = (scale * v) as f32;
        }
    }
}
