//! Per-channel batch-norm kernels on `[B, C, HW]`. Reductions run one channel per task in f64
//! (so they are deterministic and accurate on large batches); element-wise passes run one
//! sample per task.
use super::geometry::PoolGeom;
use super::pool::with_plane;
use super::pool_argmax::{maxpool_plane_packed, unpool_plane_packed};
use super::simd::multiversion;
use rayon::prelude::*;

#[doc(hidden)]
pub fn channel<'a, T>(
    x: &'a [T],
    c: usize,
    channels: usize,
    hw: usize,
) -> impl Iterator<Item = &'a [T]> + 'a {
    x.chunks_exact(channels * hw).map(move |s| &s[c * hw..(c + 1) * hw])
}

/// f64 accumulator lanes of the channel reductions: independent partial sums that the compiler
/// keeps in vector registers (a single f64 sum is one long dependency chain),
/// added up in a fixed order at the end, so results do not depend on the thread count.
#[doc(hidden)]
pub const LANES: usize = 8;

/// Per channel, over paired rows `(x, y)` of two tensors with `t = x - k`: `(sum t, sum t^2)`
/// (`GRAD` false; `y` unused) or `(sum y, sum y t)` (`GRAD` true), in `LANES` f64 lanes each
/// (element `i` of a row goes to lane `i % LANES`), added up in lane order at the end.
#[inline(always)]
fn lane_sums<'a, const GRAD: bool>(
    rows: impl Iterator<Item = (&'a [f32], &'a [f32])>,
    k: f64,
) -> (f64, f64) {
    let (mut acc0, mut acc1) = ([0.0f64; LANES], [0.0f64; LANES]);
    for (a, b) in rows {
        lane_sums_row::<GRAD>(a, b, k, &mut acc0, &mut acc1);
    }
    (acc0.iter().sum(), acc1.iter().sum())
}

/// One row pair of [`lane_sums`], added to its lanes.
#[inline(always)]
fn lane_sums_row<const GRAD: bool>(
    a: &[f32],
    b: &[f32],
    k: f64,
    acc0: &mut [f64; LANES],
    acc1: &mut [f64; LANES],
) {
    let pair = |x: f64, y: f64| {
        let t = x - k;
        if GRAD {
            (y, y * t)
        } else {
            (t, t * t)
        }
    };
    let whole = a.len() - a.len() % LANES;
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::simd::has(crate::kernels::simd::Feature::Avx2) {
        // SAFETY: AVX2 is present; the slices are LANES-multiples up to `whole`.
        unsafe { lanes_avx2::<GRAD>(&a[..whole], &b[..whole], k, acc0, acc1) };
    } else {
        lanes_plain(&a[..whole], &b[..whole], &pair, acc0, acc1);
    }
    #[cfg(not(target_arch = "x86_64"))]
    lanes_plain(&a[..whole], &b[..whole], &pair, acc0, acc1);
    for (l, (&x, &y)) in a[whole..].iter().zip(&b[whole..]).enumerate() {
        let (u, v) = pair(x as f64, y as f64);
        acc0[l] += u;
        acc1[l] += v;
    }
}

#[inline(always)]
#[doc(hidden)]
pub fn lanes_plain(
    a: &[f32],
    b: &[f32],
    pair: &impl Fn(f64, f64) -> (f64, f64),
    acc0: &mut [f64; LANES],
    acc1: &mut [f64; LANES],
) {
    for (ca, cb) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for l in 0..LANES {
            let (u, v) = pair(ca[l] as f64, cb[l] as f64);
            acc0[l] += u;
            acc1[l] += v;
        }
    }
}

/// [`lanes_plain`] by hand: LLVM converted and added these one element at a time. Same
/// operations in the same lanes (no FMA), so the same bits.
///
/// # Safety
/// The CPU must have AVX2 (see `kernels::simd`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[doc(hidden)]
pub unsafe fn lanes_avx2<const GRAD: bool>(
    a: &[f32],
    b: &[f32],
    k: f64,
    acc0: &mut [f64; LANES],
    acc1: &mut [f64; LANES],
) {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        use std::arch::x86_64::*;
        const { assert!(LANES == 8) };
        assert!(a.len() == b.len() && a.len().is_multiple_of(LANES));
        let kv = _mm256_set1_pd(k);
        let mut s0 = [_mm256_loadu_pd(acc0.as_ptr()), _mm256_loadu_pd(acc0.as_ptr().add(4))];
        let mut s1 = [_mm256_loadu_pd(acc1.as_ptr()), _mm256_loadu_pd(acc1.as_ptr().add(4))];
        for i in (0..a.len()).step_by(LANES) {
            for h in 0..2 {
                // SAFETY: i + 4h + 4 <= len (asserted above).
                let x = _mm256_cvtps_pd(_mm_loadu_ps(a.as_ptr().add(i + 4 * h)));
                let t = _mm256_sub_pd(x, kv);
                if GRAD {
                    let y = _mm256_cvtps_pd(_mm_loadu_ps(b.as_ptr().add(i + 4 * h)));
                    s0[h] = _mm256_add_pd(s0[h], y);
                    s1[h] = _mm256_add_pd(s1[h], _mm256_mul_pd(y, t));
                } else {
                    s0[h] = _mm256_add_pd(s0[h], t);
                    s1[h] = _mm256_add_pd(s1[h], _mm256_mul_pd(t, t));
                }
            }
        }
        _mm256_storeu_pd(acc0.as_mut_ptr(), s0[0]);
        _mm256_storeu_pd(acc0.as_mut_ptr().add(4), s0[1]);
        _mm256_storeu_pd(acc1.as_mut_ptr(), s1[0]);
        _mm256_storeu_pd(acc1.as_mut_ptr().add(4), s1[1]);
    }
}

/// `sum(v)` in f64, in `LANES` lanes (element `i` in lane `i % LANES`) added in lane order:
/// one f64 sum would be one long dependency chain.
#[inline(always)]
pub(crate) fn sum_as_f64(v: &[f32]) -> f64 {
    lane_sums::<true>(std::iter::once((v, v)), 0.0).0
}

/// Mean and biased variance of every channel: the moments of each (sample, channel) plane
/// ([`sample_moments`]), merged over the samples ([`stats_from_moments`]). One sample per task,
/// so the pass reads contiguous memory (one channel per task would stride across samples); a
/// convolution that has just written a sample can take its moments while it is
/// in cache instead ([`moments_of_sample`]), with the same numbers.
pub fn channel_stats(x: &[f32], channels: usize, hw: usize, mean: &mut [f32], var: &mut [f32]) {
    if channels == 0 || hw == 0 || x.is_empty() {
        return;
    }
    let mut moments = vec![0.0; x.len() / hw * 2];
    sample_moments(x, channels, hw, &mut moments);
    stats_from_moments(&moments, channels, hw, mean, var);
}

/// [`moments_of_sample`] for every sample of `[B, C, HW]` data into `out` (`[B, C, 2]`).
pub fn sample_moments(x: &[f32], channels: usize, hw: usize, out: &mut [f64]) {
    assert_eq!(out.len() * hw, x.len() * 2, "sample_moments: output length");
    out.par_chunks_mut(2 * channels)
        .zip(x.par_chunks(channels * hw))
        .for_each(|(o, xs)| moments_of_sample(xs, channels, hw, o));
}

/// Mean and sum of squared deviations of each channel plane of one `[C, HW]` sample, in f64
/// lanes (each plane shifted by its first value, so that a large mean does not cancel the
/// deviations' digits): `out[2c]` and `out[2c + 1]`. (Eight f32 lanes instead were too coarse
/// for the backward sums that use the mean.)
pub fn moments_of_sample(xs: &[f32], channels: usize, hw: usize, out: &mut [f64]) {
    assert!(xs.len() == channels * hw && out.len() == 2 * channels, "moments_of_sample: lengths");
    for (plane, o) in xs.chunks_exact(hw).zip(out.chunks_exact_mut(2)) {
        let k = plane[0] as f64;
        let (s, ss) = lane_sums::<false>(std::iter::once((plane, plane)), k);
        let n = hw as f64;
        o[0] = k + s / n;
        o[1] = (ss - s * s / n).max(0.0);
    }
}

/// Mean and biased variance per channel from `[B, C, 2]` plane moments of planes of `hw`
/// values, merged sample by sample in order (the pairwise update of Chan et al.): the same
/// numbers on any number of threads.
pub fn stats_from_moments(
    moments: &[f64],
    channels: usize,
    hw: usize,
    mean: &mut [f32],
    var: &mut [f32],
) {
    let nb = hw as f64;
    for c in 0..channels {
        let (mut n, mut mu, mut m2) = (0.0f64, 0.0f64, 0.0f64);
        for s in moments.chunks_exact(2 * channels) {
            let (mb, m2b) = (s[2 * c], s[2 * c + 1]);
            let total = n + nb;
            let d = mb - mu;
            mu += d * nb / total;
            m2 += m2b + d * d * n * nb / total;
            n = total;
        }
        if n > 0.0 {
            mean[c] = mu as f32;
            var[c] = (m2 / n).max(0.0) as f32;
        }
    }
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

/// The per-channel affine of a batch norm: `scale = gamma * invstd`,
/// `shift = beta - mean * scale`.
pub fn scale_shift(
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    invstd: &[f32],
    scale: &mut [f32],
    shift: &mut [f32],
) {
    for ch in 0..scale.len() {
        scale[ch] = gamma[ch] * invstd[ch];
        shift[ch] = beta[ch] - mean[ch] * scale[ch];
    }
}

/// `y = x * scale[c] + shift[c]`; overwrites `y`.
pub fn affine(x: &[f32], channels: usize, hw: usize, scale: &[f32], shift: &[f32], y: &mut [f32]) {
    y.par_chunks_mut(channels * hw)
        .zip(x.par_chunks(channels * hw))
        .for_each(|(ys, xs)| affine_sample(xs, hw, scale, shift, ys));
}

multiversion!(fn affine_sample(xs: &[f32], hw: usize, scale: &[f32], shift: &[f32], ys: &mut [f32]) => affine_sample_body);

#[inline(always)]
fn affine_sample_body(xs: &[f32], hw: usize, scale: &[f32], shift: &[f32], ys: &mut [f32]) {
    for ((ys, xs), (&a, &b)) in
        ys.chunks_exact_mut(hw).zip(xs.chunks_exact(hw)).zip(scale.iter().zip(shift))
    {
        for (o, &i) in ys.iter_mut().zip(xs) {
            *o = ChannelAffine::apply(i, a, b);
        }
    }
}

multiversion!(pub fn channels_last_sums(x: &[f32], c: usize, acc: &mut [f64]) => channels_last_sums_body);

/// `acc[ch] += x[r, ch]` over the rows of the channels-last block `x` (`c` channels a row), in
/// row order: each channel's sum runs in the same order whatever the vector width.
#[inline(always)]
fn channels_last_sums_body(x: &[f32], c: usize, acc: &mut [f64]) {
    for row in x.chunks_exact(c) {
        for (a, &v) in acc[..c].iter_mut().zip(row) {
            *a += v as f64;
        }
    }
}

multiversion!(pub fn channels_last_centered_squares(x: &[f32], c: usize, mean: &[f64], acc: &mut [f64]) => channels_last_centered_squares_body);

/// `acc[ch] += (x[r, ch] - mean[ch])^2` over the rows of `x`, in row order, in f64.
#[inline(always)]
fn channels_last_centered_squares_body(x: &[f32], c: usize, mean: &[f64], acc: &mut [f64]) {
    for row in x.chunks_exact(c) {
        for ((a, &v), &m) in acc[..c].iter_mut().zip(row).zip(&mean[..c]) {
            let d = v as f64 - m;
            *a += d * d;
        }
    }
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
    sum_dy
        .par_iter_mut()
        .zip(sum_dy_xc.par_iter_mut())
        .enumerate()
        .for_each(|(c, (sd, sdx))| backward_sums_of(x, dy, c, channels, hw, mean[c], sd, sdx));
}

#[allow(clippy::too_many_arguments)]
fn backward_sums_of(
    x: &[f32],
    dy: &[f32],
    c: usize,
    channels: usize,
    hw: usize,
    mean: f32,
    sd: &mut f64,
    sdx: &mut f64,
) {
    let mu = mean as f64;
    let rows = channel(x, c, channels, hw).zip(channel(dy, c, channels, hw));
    let (a, b) = lane_sums::<true>(rows, mu);
    *sd = a;
    *sdx = b;
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
        .for_each(|(dxs, (xs, dys))| backward_input_sample(xs, Some(dys), hw, a, b, d, dxs));
}

/// [`backward_input`] with `dx` written over `dy`: each line is read and rewritten while in
/// cache, instead of a third stream whose lines are first fetched to be overwritten.
pub fn backward_input_in_place(
    x: &[f32],
    dy_dx: &mut [f32],
    channels: usize,
    hw: usize,
    a: &[f32],
    b: &[f32],
    d: &[f32],
) {
    assert_eq!(x.len(), dy_dx.len(), "backward_input_in_place: lengths");
    dy_dx
        .par_chunks_mut(channels * hw)
        .zip(x.par_chunks(channels * hw))
        .for_each(|(dxs, xs)| backward_input_sample(xs, None, hw, a, b, d, dxs));
}

multiversion!(fn backward_input_sample(xs: &[f32], dys: Option<&[f32]>, hw: usize, a: &[f32], b: &[f32], d: &[f32], dxs: &mut [f32]) => backward_input_body);

/// One sample; `dys` None: dy is `dxs` itself.
#[inline(always)]
fn backward_input_body(
    xs: &[f32],
    dys: Option<&[f32]>,
    hw: usize,
    a: &[f32],
    b: &[f32],
    d: &[f32],
    dxs: &mut [f32],
) {
    for (c, (dxs, xs)) in dxs.chunks_exact_mut(hw).zip(xs.chunks_exact(hw)).enumerate() {
        let (ac, bc, dc) = (a[c], b[c], d[c]);
        match dys {
            Some(dys) => {
                for ((o, &xv), &dv) in dxs.iter_mut().zip(xs).zip(&dys[c * hw..(c + 1) * hw]) {
                    *o = ac * dv + bc * xv + dc;
                }
            }
            None => {
                for (o, &xv) in dxs.iter_mut().zip(xs) {
                    *o = ac * *o + bc * xv + dc;
                }
            }
        }
    }
}

/// [`backward_sums`] of a batch norm whose output only a max pool read, from the pool's
/// output gradient `dpool` and argmax (geometry `g`): each plane of the batch norm's output
/// gradient is routed into `dy` by the pool's own plane code and summed while it is in
/// cache, in the order and lanes of [`backward_sums`], so the sums are its bits and `dy`
/// holds the pool's input gradient (for [`backward_input_in_place`]).
#[allow(clippy::too_many_arguments)]
pub fn backward_sums_unpooled(
    x: &[f32],
    g: &PoolGeom,
    dpool: &[f32],
    argmax: &[u8],
    channels: usize,
    mean: &[f32],
    dy: &mut [f32],
    sum_dy: &mut [f64],
    sum_dy_xc: &mut [f64],
) {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    assert!(x.len() == dy.len() && x.len() * ohw == dpool.len() * hw);
    assert!(dpool.len() == argmax.len());
    if hw == 0 || channels == 0 {
        return;
    }
    // Each channel's planes, in sample order, for its task.
    let mut planes: Vec<Vec<&mut [f32]>> = (0..channels).map(|_| Vec::new()).collect();
    for (p, plane) in dy.chunks_exact_mut(hw).enumerate() {
        planes[p % channels].push(plane);
    }
    planes
        .into_par_iter()
        .zip(sum_dy.par_iter_mut().zip(sum_dy_xc.par_iter_mut()))
        .enumerate()
        .for_each(|(c, (planes, (sd, sdx)))| {
            let mu = mean[c] as f64;
            let (mut acc0, mut acc1) = ([0.0f64; LANES], [0.0f64; LANES]);
            let gradients = channel(dpool, c, channels, ohw).zip(channel(argmax, c, channels, ohw));
            for ((xs, (dys, am)), dy) in channel(x, c, channels, hw).zip(gradients).zip(planes) {
                unpool_plane_packed(g, dys, am, dy);
                lane_sums_row::<true>(xs, dy, mu, &mut acc0, &mut acc1);
            }
            *sd = acc0.iter().sum();
            *sdx = acc1.iter().sum();
        });
}

/// [`maxpool2d_forward_packed`](super::pool_argmax::maxpool2d_forward_packed) of a batch norm's output
/// `x * scale[c] + shift[c]` ([`ChannelAffine`] over `[B, C, H, W]` input `x`), one plane at a
/// time through per-thread scratch: the affine pass's values (the same [`affine_sample`]
/// code) pooled by the same plane kernels, so the values and argmax are the two passes' bit
/// for bit, and the batch norm's output is never written or read.
pub fn maxpool2d_forward_affine(
    g: &PoolGeom,
    x: &[f32],
    affine: ChannelAffine,
    y: &mut [f32],
    argmax: &mut [u8],
) {
    let (hw, ohw, c) = (g.h * g.w, g.oh * g.ow, affine.scale.len());
    assert_eq!(affine.hw, hw, "maxpool2d_forward_affine: plane size");
    y.par_chunks_mut(ohw)
        .zip(argmax.par_chunks_mut(ohw))
        .zip(x.par_chunks(hw))
        .enumerate()
        .for_each(|(p, ((ys, am), xs))| {
            let ch = p % c;
            with_plane(hw, |plane| {
                affine_sample(xs, hw, &affine.scale[ch..=ch], &affine.shift[ch..=ch], plane);
                maxpool_plane_packed(g, plane, ys, am);
            })
        });
}
