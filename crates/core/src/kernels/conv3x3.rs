//! Direct 3x3 convolution (stride 1, padding 1, no dilation, one group) with AVX2/FMA register
//! tiles: the shape of every conv in the reference workloads, and of their backward-data pass
//! (a 3x3 stride-1 conv of `dY` with the flipped kernel, see `conv::conv2d_backward_data`).
//!
//! Why not im2col + GEMM here: im2col writes 9 copies of the input and the GEMM packs them again
//! (two passes over a `9*C_in x pixels` matrix for `2*C_out` FLOPs per element); the direct
//! kernel reads a zero-padded copy of the input (one pass of `C_in x pixels`) straight into
//! registers. `examples/conv_band` measures both on the workload shapes.
//!
//! Every output element is summed in the same order (input channel, then tap row, then tap
//! column) whatever the thread count, so results are reproducible.
use super::geometry::ConvGeom;
use super::scratch::Scratch;
use rayon::prelude::*;

/// Output channels per register tile.
const MR: usize = 4;
/// Output pixels (of one row) per register tile: two 8-lane vectors.
#[doc(hidden)]
pub const NV: usize = 16;

/// Whether [`conv3x3_forward`] handles `g` on this CPU.
pub fn applies(g: &ConvGeom) -> bool {
    g.kh == 3
        && g.kw == 3
        && g.stride == [1, 1]
        && g.padding == [1, 1]
        && g.dilation == [1, 1]
        && g.groups == 1
        && simd_available()
}

#[doc(hidden)]
pub fn simd_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        crate::kernels::simd::has(crate::kernels::simd::Feature::Avx2)
            && crate::kernels::simd::has(crate::kernels::simd::Feature::Fma)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `y[b] = conv3x3(x[b], weight) + bias` for every sample; overwrites `y`. Panics unless
/// [`applies`] holds.
pub fn conv3x3_forward(
    g: &ConvGeom,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    assert!(applies(g), "conv3x3_forward: geometry {g:?} or CPU not supported");
    let batch = x.len() / g.in_size();
    assert_eq!(x.len(), batch * g.in_size(), "conv3x3_forward: input length");
    assert_eq!(y.len(), batch * g.out_size(), "conv3x3_forward: output length");
    assert_eq!(weight.len(), g.weight_len(), "conv3x3_forward: weight length");
    if let Some(b) = bias {
        assert_eq!(b.len(), g.c_out, "conv3x3_forward: bias length");
    }
    let packed = pack_weights(g, weight);
    let padded_w = g.w.div_ceil(NV) * NV + 2;
    let padded_len = g.c_in * (g.h + 2) * padded_w;
    y.par_chunks_mut(g.out_size()).zip(x.par_chunks(g.in_size())).for_each_init(
        || Scratch::take(padded_len),
        |xp, (ys, xs)| {
            pad_input(g, xs, padded_w, xp);
            #[cfg(target_arch = "x86_64")]
            // SAFETY: applies() checked AVX2 and FMA; the padded buffer has the layout
            // sample_avx2 indexes (C_in planes of (H+2) x padded_w, padded_w >= ceil16(W)+2).
            unsafe {
                sample_avx2(g, xp, padded_w, &packed, bias, ys)
            }
        },
    );
}

/// `[C_out, C_in, 3, 3]` -> `[ceil(C_out/MR), C_in, 9, MR]`, zero rows past `C_out`, so a tile
/// reads its MR weights of one tap from one place.
fn pack_weights(g: &ConvGeom, weight: &[f32]) -> Scratch {
    let blocks = g.c_out.div_ceil(MR);
    let mut p = Scratch::zeroed(blocks * g.c_in * 9 * MR);
    for co in 0..g.c_out {
        let (b, r) = (co / MR, co % MR);
        for c in 0..g.c_in {
            for tap in 0..9 {
                p[((b * g.c_in + c) * 9 + tap) * MR + r] = weight[(co * g.c_in + c) * 9 + tap];
            }
        }
    }
    p
}

/// Copies one sample into `xp` with a zero border: row `iy + 1`, column `ix + 1`.
fn pad_input(g: &ConvGeom, xs: &[f32], padded_w: usize, xp: &mut [f32]) {
    let plane = (g.h + 2) * padded_w;
    for (c, dst) in xp.chunks_exact_mut(plane).enumerate() {
        dst[..padded_w].fill(0.0);
        dst[(g.h + 1) * padded_w..].fill(0.0);
        let src = &xs[c * g.h * g.w..(c + 1) * g.h * g.w];
        for (iy, row) in src.chunks_exact(g.w).enumerate() {
            let d = &mut dst[(iy + 1) * padded_w..(iy + 2) * padded_w];
            d[0] = 0.0;
            d[1..g.w + 1].copy_from_slice(row);
            d[g.w + 1..].fill(0.0);
        }
    }
}

/// # Safety
/// The CPU must have AVX2, FMA (see `kernels::simd`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn sample_avx2(
    g: &ConvGeom,
    xp: &[f32],
    padded_w: usize,
    packed: &[f32],
    bias: Option<&[f32]>,
    ys: &mut [f32],
) {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        use std::arch::x86_64::*;
        let (h, w, c_in, c_out) = (g.h, g.w, g.c_in, g.c_out);
        let plane = (h + 2) * padded_w;
        debug_assert!(xp.len() >= c_in * plane);
        debug_assert!(ys.len() == c_out * h * w);
        let block_len = c_in * 9 * MR;
        for oy in 0..h {
            for b in 0..c_out.div_ceil(MR) {
                let co0 = b * MR;
                let mr = (c_out - co0).min(MR);
                let wb = packed[b * block_len..(b + 1) * block_len].as_ptr();
                for ox0 in (0..w).step_by(NV) {
                    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
                    if let Some(bv) = bias {
                        for (r, a) in acc.iter_mut().enumerate().take(mr) {
                            *a = [_mm256_set1_ps(bv[co0 + r]); 2];
                        }
                    }
                    // SAFETY (all pointer reads below): row oy+i <= h+1 and column
                    // ox0+j+15 <= ceil16(w)+1 < padded_w stay inside channel c's padded plane;
                    // wb + (c*9+tap)*MR + r stays inside this block's packed weights.
                    let xbase = xp.as_ptr().add(oy * padded_w + ox0);
                    let mut wptr = wb;
                    for c in 0..c_in {
                        let xc = xbase.add(c * plane);
                        for i in 0..3 {
                            let row = xc.add(i * padded_w);
                            for j in 0..3 {
                                let v0 = _mm256_loadu_ps(row.add(j));
                                let v1 = _mm256_loadu_ps(row.add(j + 8));
                                for (r, a) in acc.iter_mut().enumerate() {
                                    let wv = _mm256_broadcast_ss(&*wptr.add(r));
                                    a[0] = _mm256_fmadd_ps(wv, v0, a[0]);
                                    a[1] = _mm256_fmadd_ps(wv, v1, a[1]);
                                }
                                wptr = wptr.add(MR);
                            }
                        }
                    }
                    let n = (w - ox0).min(NV);
                    for (r, a) in acc.iter().enumerate().take(mr) {
                        let dst = &mut ys[(co0 + r) * h * w + oy * w + ox0..][..n];
                        // SAFETY: `dst` holds n <= NV floats.
                        super::simd::store_lanes(dst.as_mut_ptr(), &[a[0], a[1]], n);
                    }
                }
            }
        }
    }
}
