//! Per-channel batch-norm kernels on `[B, C, HW]`. Reductions run one channel per task in f64
//! (so they are deterministic and accurate on large batches); element-wise passes run one
//! sample per task.
use rayon::prelude::*;

fn channel<'a>(
    x: &'a [f32],
    c: usize,
    channels: usize,
    hw: usize,
) -> impl Iterator<Item = &'a [f32]> + 'a {
    x.chunks_exact(channels * hw).map(move |s| &s[c * hw..(c + 1) * hw])
}

/// Mean and biased variance of every channel (two-pass, f64).
pub fn channel_stats(x: &[f32], channels: usize, hw: usize, mean: &mut [f32], var: &mut [f32]) {
    let n = (x.len() / channels.max(1)) as f64;
    mean.par_iter_mut().zip(var.par_iter_mut()).enumerate().for_each(|(c, (m, v))| {
        let mu =
            channel(x, c, channels, hw).flat_map(|r| r.iter()).map(|&a| a as f64).sum::<f64>() / n;
        let var = channel(x, c, channels, hw)
            .flat_map(|r| r.iter())
            .map(|&a| {
                let d = a as f64 - mu;
                d * d
            })
            .sum::<f64>()
            / n;
        *m = mu as f32;
        *v = var as f32;
    });
}

/// `y = x * scale[c] + shift[c]`; overwrites `y`.
pub fn affine(x: &[f32], channels: usize, hw: usize, scale: &[f32], shift: &[f32], y: &mut [f32]) {
    y.par_chunks_mut(channels * hw).zip(x.par_chunks(channels * hw)).for_each(|(ys, xs)| {
        for c in 0..channels {
            let (a, b) = (scale[c], shift[c]);
            for (o, &i) in ys[c * hw..(c + 1) * hw].iter_mut().zip(&xs[c * hw..(c + 1) * hw]) {
                *o = i * a + b;
            }
        }
    });
}

/// Per channel `sum(dy)` and `sum(dy * (x - mean))`, in f64.
pub fn backward_sums(
    x: &[f32],
    dy: &[f32],
    channels: usize,
    hw: usize,
    mean: &[f32],
    sum_dy: &mut [f64],
    sum_dy_xc: &mut [f64],
) {
    sum_dy.par_iter_mut().zip(sum_dy_xc.par_iter_mut()).enumerate().for_each(|(c, (sd, sdx))| {
        let mu = mean[c] as f64;
        let (mut a, mut b) = (0.0f64, 0.0f64);
        for (xr, dr) in channel(x, c, channels, hw).zip(channel(dy, c, channels, hw)) {
            for (&xv, &dv) in xr.iter().zip(dr) {
                a += dv as f64;
                b += dv as f64 * (xv as f64 - mu);
            }
        }
        *sd = a;
        *sdx = b;
    });
}

/// `dx = a[c] * dy + b[c] * x + d[c]`; overwrites `dx`.
#[allow(clippy::too_many_arguments)]
pub fn backward_input(
    x: &[f32],
    dy: &[f32],
    channels: usize,
    hw: usize,
    a: &[f32],
    b: &[f32],
    d: &[f32],
    dx: &mut [f32],
) {
    dx.par_chunks_mut(channels * hw)
        .zip(x.par_chunks(channels * hw).zip(dy.par_chunks(channels * hw)))
        .for_each(|(dxs, (xs, dys))| {
            for c in 0..channels {
                let r = c * hw..(c + 1) * hw;
                for ((o, &xv), &dv) in dxs[r.clone()].iter_mut().zip(&xs[r.clone()]).zip(&dys[r]) {
                    *o = a[c] * dv + b[c] * xv + d[c];
                }
            }
        });
}
