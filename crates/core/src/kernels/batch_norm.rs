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

/// f64 accumulator lanes of the channel reductions: independent partial sums that the compiler
/// keeps in vector registers (a single f64 sum is one long dependency chain, 4-8x slower),
/// added up in a fixed order at the end, so results do not depend on the thread count.
const LANES: usize = 8;

/// Sums `f(a, b)` over paired rows of two channels' values, in `LANES` f64 lanes.
#[inline(always)]
fn lane_sums<'a, const K: usize>(
    rows: impl Iterator<Item = (&'a [f32], &'a [f32])>,
    f: impl Fn(f64, f64) -> [f64; K],
) -> [f64; K] {
    let mut acc = [[0.0f64; LANES]; K];
    for (a, b) in rows {
        let (ac, ar) = (a.chunks_exact(LANES), a.chunks_exact(LANES).remainder());
        let br = b.chunks_exact(LANES).remainder();
        for (ca, cb) in ac.zip(b.chunks_exact(LANES)) {
            for l in 0..LANES {
                let v = f(ca[l] as f64, cb[l] as f64);
                for k in 0..K {
                    acc[k][l] += v[k];
                }
            }
        }
        for (l, (&x, &y)) in ar.iter().zip(br).enumerate() {
            let v = f(x as f64, y as f64);
            for k in 0..K {
                acc[k][l] += v[k];
            }
        }
    }
    acc.map(|lanes| lanes.iter().sum())
}

/// Mean and biased variance of every channel, in one pass over the data (f64 sums of the
/// values and squares, shifted by the channel's first value so that a large mean does not
/// cancel the variance's digits).
pub fn channel_stats(x: &[f32], channels: usize, hw: usize, mean: &mut [f32], var: &mut [f32]) {
    let n = (x.len() / channels.max(1)) as f64;
    mean.par_iter_mut().zip(var.par_iter_mut()).enumerate().for_each(|(c, (m, v))| {
        let Some(&first) = channel(x, c, channels, hw).flat_map(|r| r.iter()).next() else {
            return;
        };
        let shift = first as f64;
        let rows = channel(x, c, channels, hw).map(|r| (r, r));
        let [s, ss] = lane_sums(rows, |a, _| {
            let d = a - shift;
            [d, d * d]
        });
        let mu = s / n;
        *m = (shift + mu) as f32;
        *v = (ss / n - mu * mu).max(0.0) as f32;
    });
}

/// The per-channel affine `y = x * scale[c] + shift[c]` of a BN over `[B, C, HW]` data, as
/// [`affine`] applies it; the fused BN + neuron kernel (`neuron::kernel`) applies it on the fly
/// with the same [`ChannelAffine::apply`], so both give bit-identical outputs.
#[derive(Clone, Copy, Debug)]
pub struct ChannelAffine<'a> {
    pub scale: &'a [f32],
    pub shift: &'a [f32],
    pub hw: usize,
}

impl ChannelAffine<'_> {
    #[inline(always)]
    pub fn apply(x: f32, scale: f32, shift: f32) -> f32 {
        x * scale + shift
    }

    /// The channel of flat element `i` (of `[B, C, HW]`).
    #[inline(always)]
    pub fn channel(&self, i: usize) -> usize {
        (i / self.hw) % self.scale.len()
    }
}

/// `y = x * scale[c] + shift[c]`; overwrites `y`.
pub fn affine(x: &[f32], channels: usize, hw: usize, scale: &[f32], shift: &[f32], y: &mut [f32]) {
    y.par_chunks_mut(channels * hw).zip(x.par_chunks(channels * hw)).for_each(|(ys, xs)| {
        for c in 0..channels {
            let (a, b) = (scale[c], shift[c]);
            for (o, &i) in ys[c * hw..(c + 1) * hw].iter_mut().zip(&xs[c * hw..(c + 1) * hw]) {
                *o = ChannelAffine::apply(i, a, b);
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
        let rows = channel(x, c, channels, hw).zip(channel(dy, c, channels, hw));
        let [a, b] = lane_sums(rows, |xv, dv| [dv, dv * (xv - mu)]);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Two-pass f64 statistics, element by element: the plain reference.
    fn reference(x: &[f32], dy: &[f32], c: usize, hw: usize) -> Vec<[f64; 4]> {
        (0..c)
            .map(|ch| {
                let vals: Vec<(f64, f64)> = channel(x, ch, c, hw)
                    .zip(channel(dy, ch, c, hw))
                    .flat_map(|(a, b)| a.iter().zip(b).map(|(&u, &v)| (u as f64, v as f64)))
                    .collect();
                let n = vals.len() as f64;
                let mu = vals.iter().map(|v| v.0).sum::<f64>() / n;
                let var = vals.iter().map(|v| (v.0 - mu) * (v.0 - mu)).sum::<f64>() / n;
                let mu32 = mu as f32 as f64;
                let sd = vals.iter().map(|v| v.1).sum::<f64>();
                let sdx = vals.iter().map(|v| v.1 * (v.0 - mu32)).sum::<f64>();
                [mu, var, sd, sdx]
            })
            .collect()
    }

    #[test]
    fn one_pass_lane_sums_match_the_two_pass_reference() {
        let mut rng = Rng::new(3);
        for (case, (b, c, hw)) in [(1, 1, 1), (2, 3, 7), (5, 4, 33), (3, 2, 64), (2, 5, 250)].into_iter().enumerate() {
            for kind in 0..4 {
                // spikes at 10 %, spikes at 100 %, normal values, a large mean with small spread
                let x: Vec<f32> = (0..b * c * hw)
                    .map(|_| match kind {
                        0 => (rng.uniform() < 0.1) as u8 as f32,
                        1 => 1.0,
                        2 => rng.normal(),
                        _ => 1000.0 + 0.01 * rng.normal(),
                    })
                    .collect();
                let dy: Vec<f32> = (0..x.len()).map(|_| rng.normal()).collect();
                let (mut mean, mut var) = (vec![0.0; c], vec![0.0; c]);
                channel_stats(&x, c, hw, &mut mean, &mut var);
                let (mut sd, mut sdx) = (vec![0.0; c], vec![0.0; c]);
                backward_sums(&x, &dy, c, hw, &mean, &mut sd, &mut sdx);
                for (ch, want) in reference(&x, &dy, c, hw).iter().enumerate() {
                    let what = format!("case {case} kind {kind} channel {ch}");
                    assert!((mean[ch] as f64 - want[0]).abs() <= 1e-6 * want[0].abs().max(1.0), "{what} mean");
                    assert!((var[ch] as f64 - want[1]).abs() <= 1e-5 * want[1].max(1e-6), "{what} var {} vs {}", var[ch], want[1]);
                    assert!((sd[ch] - want[2]).abs() <= 1e-9 * want[2].abs().max(1.0), "{what} sum dy");
                    assert!((sdx[ch] - want[3]).abs() <= 1e-9 * want[3].abs().max(1.0), "{what} sum dy xc");
                }
            }
        }
    }
}
