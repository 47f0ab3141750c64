//! Direct depthwise convolution (`groups == C_in == C_out`): forward, backward-data and the
//! weight-gradient leaf, one zero-padded input plane per (sample, channel) read straight into
//! row-wise loops.
//!
//! Why not the grouped im2col + GEMM path: per sample it runs one GEMM per channel with one
//! output row (or one inner term), so packing and tile edges cost far more than the
//! `kh*kw*OH*OW` multiply-adds of the channel.
//!
//! Every value has the bits of that path: each sum runs in its order (taps in `(i, j)` order;
//! output pixels in blocks of matrixmultiply's depth, 256) with fused multiply-adds exactly
//! where its sgemm kernel fuses them (`gemm::gemm_fuses`), padding taps included as zero terms,
//! and block sums stored as its edge-tile code stores them (`c * beta + (sum + 0)`).
use super::conv::wgrad_bias_leaf;
use super::gemm::SGEMM_DEPTH;
use super::geometry::ConvGeom;
use super::scratch::Scratch;
use rayon::prelude::*;

/// Whether the kernels here handle `g`: one channel per group (a one-channel conv stays on
/// the dense kernels), on a CPU whose sgemm order is known.
pub fn applies(g: &ConvGeom) -> bool {
    g.groups > 1 && g.c_in == g.groups && g.c_out == g.groups && cfg!(target_arch = "x86_64")
}

/// Height and width of a plane padded so that every tap of every output lands inside it.
fn padded(g: &ConvGeom) -> (usize, usize) {
    let need = |o: usize, s: usize, k: usize, d: usize| (o - 1) * s + (k - 1) * d + 1;
    let hp = need(g.oh, g.stride[0], g.kh, g.dilation[0]).max(g.h + g.padding[0]);
    let wp = need(g.ow, g.stride[1], g.kw, g.dilation[1]).max(g.w + g.padding[1]);
    (hp, wp)
}

/// Copies plane `x` (`H x W`) into `xp` (`hp x wp`, see [`padded`]) at offset `padding`,
/// zeros around.
fn pad_plane(g: &ConvGeom, x: &[f32], xp: &mut [f32], wp: usize) {
    xp.fill(0.0);
    let [ph, pw] = g.padding;
    for (r, src) in x.chunks_exact(g.w).enumerate() {
        xp[(r + ph) * wp + pw..][..g.w].copy_from_slice(src);
    }
}

#[inline(always)]
fn madd<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FUSED {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Defines `fn $name` running `$body::<true>` under AVX2+FMA where sgemm fuses its
/// multiply-adds, `$body::<false>` (multiply, then add) where it does not.
macro_rules! fused_dispatch {
    ($(#[$m:meta])* fn $name:ident => $body:ident($($p:ident: $t:ty),*)) => {
        $(#[$m])*
        fn $name($($p: $t),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn fused($($p: $t),*) {
                    $body::<true>($($p),*)
                }
                if crate::kernels::gemm::gemm_fuses() {
                    // SAFETY: the CPU has AVX2 and FMA.
                    return unsafe { fused($($p),*) };
                }
            }
            $body::<false>($($p),*)
        }
    };
}

fused_dispatch!(fn forward_plane => forward_plane_with(g: &ConvGeom, w: &[f32], xp: &[f32], y: &mut [f32]));
fused_dispatch!(fn wgrad_plane => wgrad_plane_with(g: &ConvGeom, dy: &[f32], xp: &[f32], gw: &mut [f32], first: bool));

/// `y[b] = conv(x[b], weight) + bias`; overwrites `y`. Panics unless [`applies`] holds.
pub fn forward(g: &ConvGeom, x: &[f32], weight: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    assert!(applies(g), "depthwise::forward: geometry {g:?}");
    let (hp, wp) = padded(g);
    let kk = g.kh * g.kw;
    y.par_chunks_mut(g.out_size()).zip(x.par_chunks(g.in_size())).for_each_init(
        || Scratch::take(hp * wp),
        |xp, (ys, xs)| {
            for c in 0..g.c_in {
                pad_plane(g, &xs[c * g.h * g.w..][..g.h * g.w], xp, wp);
                let yc = &mut ys[c * g.ohw()..][..g.ohw()];
                forward_plane(g, &weight[c * kk..][..kk], xp, yc);
                if let Some(b) = bias {
                    yc.iter_mut().for_each(|v| *v = b[c] + *v);
                }
            }
        },
    );
}

/// One channel: `y = sum over taps of w * x` from +0 in tap order, then `+ 0` (sgemm's store).
#[inline(always)]
fn forward_plane_with<const FUSED: bool>(g: &ConvGeom, w: &[f32], xp: &[f32], y: &mut [f32]) {
    let wp = padded(g).1;
    let [sh, sw] = g.stride;
    let [dh, dw] = g.dilation;
    for (oy, row) in y.chunks_exact_mut(g.ow).enumerate() {
        row.fill(0.0);
        for i in 0..g.kh {
            let src = &xp[(oy * sh + i * dh) * wp..][..wp];
            for j in 0..g.kw {
                let wv = w[i * g.kw + j];
                let src = &src[j * dw..];
                if sw == 1 {
                    for (a, &xv) in row.iter_mut().zip(src) {
                        *a = madd::<FUSED>(wv, xv, *a);
                    }
                } else {
                    for (a, xv) in row.iter_mut().zip(src.iter().step_by(sw)) {
                        *a = madd::<FUSED>(wv, *xv, *a);
                    }
                }
            }
        }
        row.iter_mut().for_each(|v| *v += 0.0);
    }
}

/// Gradient with respect to the input; overwrites `dx`. Each input pixel sums its taps' rounded
/// products `w * dy` from +0 in tap order, as the GEMM + col2im path does.
pub fn backward_data(g: &ConvGeom, dy: &[f32], weight: &[f32], dx: &mut [f32]) {
    assert!(applies(g), "depthwise::backward_data: geometry {g:?}");
    let (hp, wp) = padded(g);
    let kk = g.kh * g.kw;
    let [sh, sw] = g.stride;
    let [dh, dw] = g.dilation;
    let [ph, pw] = g.padding;
    dx.par_chunks_mut(g.in_size()).zip(dy.par_chunks(g.out_size())).for_each_init(
        || Scratch::take(hp * wp),
        |acc, (dxs, dys)| {
            for c in 0..g.c_in {
                acc.fill(0.0);
                let w = &weight[c * kk..][..kk];
                for i in 0..g.kh {
                    for j in 0..g.kw {
                        let wv = w[i * g.kw + j];
                        for (oy, d) in dys[c * g.ohw()..][..g.ohw()].chunks_exact(g.ow).enumerate()
                        {
                            let dst = &mut acc[(oy * sh + i * dh) * wp + j * dw..][..wp - j * dw];
                            for (a, &dv) in dst.iter_mut().step_by(sw).zip(d) {
                                *a += wv * dv;
                            }
                        }
                    }
                }
                let plane = &mut dxs[c * g.h * g.w..][..g.h * g.w];
                for (r, dst) in plane.chunks_exact_mut(g.w).enumerate() {
                    dst.copy_from_slice(&acc[(r + ph) * wp + pw..][..g.w]);
                }
            }
        },
    );
}

/// Weight-gradient leaf: WRITES the weight (and bias) gradient of samples `lo..hi` into `out`,
/// as `conv::wgrad_leaf` does (one sgemm per sample, `beta` 0 for the first, 1 after).
pub(crate) fn wgrad_leaf(
    g: &ConvGeom,
    x: &[f32],
    dy: &[f32],
    with_bias: bool,
    lo: usize,
    hi: usize,
    out: &mut [f32],
) {
    let (hp, wp) = padded(g);
    let kk = g.kh * g.kw;
    let mut xp = Scratch::take(hp * wp);
    let (ow_, ob) = out.split_at_mut(g.weight_len());
    for s in lo..hi {
        let xs = &x[s * g.in_size()..][..g.in_size()];
        let dys = &dy[s * g.out_size()..][..g.out_size()];
        for c in 0..g.c_in {
            pad_plane(g, &xs[c * g.h * g.w..][..g.h * g.w], &mut xp, wp);
            let gw = &mut ow_[c * kk..][..kk];
            let d = &dys[c * g.ohw()..][..g.ohw()];
            wgrad_plane(g, d, &xp, gw, s == lo);
        }
        if with_bias {
            wgrad_bias_leaf(g, dys, ob, s == lo);
        }
    }
}

/// One channel's taps: per block of 256 output pixels, `sum = dy . x_tap` from +0 in pixel
/// order, then `gw = gw + (sum + 0)` (the first block of the `first` sample stores `sum + 0`).
/// Taps run eight at a time so that eight independent sums hide the multiply-add latency.
#[inline(always)]
fn wgrad_plane_with<const FUSED: bool>(
    g: &ConvGeom,
    dy: &[f32],
    xp: &[f32],
    gw: &mut [f32],
    first: bool,
) {
    const U: usize = 8;
    let wp = padded(g).1;
    let [sh, sw] = g.stride;
    let [dh, dw] = g.dilation;
    let kk = g.kh * g.kw;
    for t0 in (0..kk).step_by(U) {
        let nt = U.min(kk - t0);
        let mut off = [0usize; U];
        for (u, o) in off.iter_mut().enumerate().take(nt) {
            let t = t0 + u;
            *o = (t / g.kw) * dh * wp + (t % g.kw) * dw;
        }
        for b0 in (0..g.ohw()).step_by(SGEMM_DEPTH) {
            let b1 = g.ohw().min(b0 + SGEMM_DEPTH);
            let mut acc = [0.0f32; U];
            let (mut oy, mut ox) = (b0 / g.ow, b0 % g.ow);
            for &d in &dy[b0..b1] {
                let base = oy * sh * wp + ox * sw;
                for u in 0..U {
                    // Lanes past `nt` read tap 0's pixel and are dropped.
                    acc[u] = madd::<FUSED>(d, xp[base + off[u]], acc[u]);
                }
                ox += 1;
                if ox == g.ow {
                    (oy, ox) = (oy + 1, 0);
                }
            }
            for (u, a) in acc.iter().enumerate().take(nt) {
                let v = *a + 0.0;
                let prev = &mut gw[t0 + u];
                *prev = if first && b0 == 0 { v } else { *prev + v };
            }
        }
    }
}
