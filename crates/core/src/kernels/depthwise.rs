//! Direct depthwise convolution (`groups == C_in == C_out`): forward, backward-data and the
//! weight-gradient leaf, on channels-last copies of each sample so that 8 channels go through
//! every tap in one vector.
//!
//! Why not the grouped im2col + GEMM path: per sample it runs one GEMM per channel with one
//! output row (or one inner term), so packing and tile edges cost far more than the
//! `kh*kw*OH*OW` multiply-adds of the channel. Why channels-last: a channel plane's output
//! rows are short (7 floats at 7x7), too short for vectors; channels side by side are not.
//!
//! Every value has the bits of that path: each sum runs in its order (taps in `(i, j)` order;
//! output pixels in blocks of matrixmultiply's depth, 256) with fused multiply-adds exactly
//! where its sgemm kernel fuses them (`gemm::gemm_fuses`), padding taps included as zero
//! terms, and block sums stored as its edge-tile code stores them (`c * beta + (sum + 0)`).
use super::gemm::SGEMM_DEPTH;
use super::geometry::ConvGeom;
use super::scratch::Scratch;
use super::simd::multiversion;
use super::transpose::{cells_to_planes, planes_to_cells};
use rayon::prelude::*;

/// Channels per vector.
const L: usize = 8;

/// Whether the kernels here handle `g`: one channel per group (a one-channel conv stays on
/// the dense kernels), on a CPU whose sgemm order is known.
pub fn applies(g: &ConvGeom) -> bool {
    g.groups > 1 && g.c_in == g.groups && g.c_out == g.groups && cfg!(target_arch = "x86_64")
}

/// The channels-last layout of `g`: cell pitch (channels rounded up to whole vectors) and the
/// padded grid's height and width, large enough for every tap of every output.
struct Cells {
    cp: usize,
    hp: usize,
    wp: usize,
    /// Offset of each tap's cell from the cell of its output's first tap, in tap order.
    taps: Vec<usize>,
}

impl Cells {
    fn of(g: &ConvGeom) -> Cells {
        let need = |o: usize, s: usize, k: usize, d: usize| (o - 1) * s + (k - 1) * d + 1;
        let cp = g.c_in.div_ceil(L) * L;
        let wp = need(g.ow, g.stride[1], g.kw, g.dilation[1]).max(g.w + g.padding[1]);
        let tap = |t: usize| ((t / g.kw) * g.dilation[0] * wp + (t % g.kw) * g.dilation[1]) * cp;
        Cells {
            cp,
            hp: need(g.oh, g.stride[0], g.kh, g.dilation[0]).max(g.h + g.padding[0]),
            wp,
            taps: (0..g.kh * g.kw).map(tap).collect(),
        }
    }

    fn grid(&self) -> usize {
        self.hp * self.wp * self.cp
    }

    /// Cell of output pixel `(oy, ox)`'s first tap.
    fn base(&self, g: &ConvGeom, oy: usize, ox: usize) -> usize {
        (oy * g.stride[0] * self.wp + ox * g.stride[1]) * self.cp
    }

    /// Cell of input pixel `(r, 0)`.
    fn row(&self, g: &ConvGeom, r: usize) -> usize {
        ((r + g.padding[0]) * self.wp + g.padding[1]) * self.cp
    }

    /// Copies sample `xs` (`C x H x W`) into the interior of `grid`; the rest of it is kept.
    fn fill(&self, g: &ConvGeom, xs: &[f32], grid: &mut [f32]) {
        for r in 0..g.h {
            planes_to_cells(
                &xs[r * g.w..],
                g.h * g.w,
                g.w,
                g.c_in,
                &mut grid[self.row(g, r)..],
                self.cp,
            );
        }
    }
}

/// `weight` `[C, 1, kh, kw]` as `kh*kw` cells of `cp` (zeros past `C`).
fn weight_cells(g: &ConvGeom, weight: &[f32], cp: usize) -> Vec<f32> {
    let kk = g.kh * g.kw;
    let mut wc = vec![0.0; kk * cp];
    for (c, taps) in weight.chunks_exact(kk).enumerate() {
        for (t, &v) in taps.iter().enumerate() {
            wc[t * cp + c] = v;
        }
    }
    wc
}

#[inline(always)]
fn madd<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FUSED {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

#[inline(always)]
fn lanes(s: &[f32], at: usize) -> &[f32; L] {
    s[at..at + L].try_into().expect("L floats")
}

// Compiled for the best instruction set present (simd::multiversion); the fused form where
// sgemm fuses its multiply-adds, so both paths round alike.
multiversion!(fn forward_cells(g: &ConvGeom, k: &Cells, wc: &[f32], xc: &[f32], yc: &mut [f32]) => forward_cells_any);
multiversion!(fn wgrad_cells(g: &ConvGeom, k: &Cells, dyc: &[f32], xc: &[f32], gw: &mut [f32], first: bool) => wgrad_cells_any);

/// Whether sgemm fuses its multiply-adds on this CPU (never off x86-64).
fn fuses() -> bool {
    #[cfg(target_arch = "x86_64")]
    return super::gemm::gemm_fuses();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[inline(always)]
fn forward_cells_any(g: &ConvGeom, k: &Cells, wc: &[f32], xc: &[f32], yc: &mut [f32]) {
    match fuses() {
        true => forward_cells_with::<true>(g, k, wc, xc, yc),
        false => forward_cells_with::<false>(g, k, wc, xc, yc),
    }
}

#[inline(always)]
fn wgrad_cells_any(g: &ConvGeom, k: &Cells, dyc: &[f32], xc: &[f32], gw: &mut [f32], first: bool) {
    match fuses() {
        true => wgrad_cells_with::<true>(g, k, dyc, xc, gw, first),
        false => wgrad_cells_with::<false>(g, k, dyc, xc, gw, first),
    }
}

/// `y[b] = conv(x[b], weight) + bias`; overwrites `y`. Panics unless [`applies`] holds.
pub fn forward(g: &ConvGeom, x: &[f32], weight: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    assert!(applies(g), "depthwise::forward: geometry {g:?}");
    let k = Cells::of(g);
    let wc = weight_cells(g, weight, k.cp);
    y.par_chunks_mut(g.out_size()).zip(x.par_chunks(g.in_size())).for_each_init(
        // The grid's padding stays zero: only its interior is written.
        || (Scratch::zeroed(k.grid()), Scratch::take(g.ohw() * k.cp)),
        |(xc, yc), (ys, xs)| {
            k.fill(g, xs, xc);
            forward_cells(g, &k, &wc, xc, yc);
            cells_to_planes(yc, k.cp, g.ohw(), g.c_out, bias, ys, g.ohw());
        },
    );
}

/// Each output cell: the sum over taps of `w * x` from +0 in tap order, then `+ 0` (sgemm's
/// store; the bias, if any, is added after).
#[inline(always)]
fn forward_cells_with<const FUSED: bool>(
    g: &ConvGeom,
    k: &Cells,
    wc: &[f32],
    xc: &[f32],
    yc: &mut [f32],
) {
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let base = k.base(g, oy, ox);
            let out = &mut yc[(oy * g.ow + ox) * k.cp..][..k.cp];
            for v in (0..k.cp).step_by(L) {
                let mut acc = [0.0f32; L];
                for (t, &o) in k.taps.iter().enumerate() {
                    let (w, x) = (lanes(wc, t * k.cp + v), lanes(xc, base + o + v));
                    for l in 0..L {
                        acc[l] = madd::<FUSED>(w[l], x[l], acc[l]);
                    }
                }
                for l in 0..L {
                    out[v + l] = acc[l] + 0.0;
                }
            }
        }
    }
}

/// Gradient with respect to the input; overwrites `dx`. Each input pixel sums its taps' rounded
/// products `w * dy` from +0 in tap order, as the GEMM + col2im path does.
pub fn backward_data(g: &ConvGeom, dy: &[f32], weight: &[f32], dx: &mut [f32]) {
    assert!(applies(g), "depthwise::backward_data: geometry {g:?}");
    let k = Cells::of(g);
    let wc = weight_cells(g, weight, k.cp);
    dx.par_chunks_mut(g.in_size()).zip(dy.par_chunks(g.out_size())).for_each_init(
        || (Scratch::take(k.grid()), Scratch::zeroed(g.ohw() * k.cp)),
        |(acc, dyc), (dxs, dys)| {
            planes_to_cells(dys, g.ohw(), g.ohw(), g.c_out, dyc, k.cp);
            acc.fill(0.0);
            for (t, &o) in k.taps.iter().enumerate() {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let at = k.base(g, oy, ox) + o;
                        let d = &dyc[(oy * g.ow + ox) * k.cp..][..k.cp];
                        let a = &mut acc[at..at + k.cp];
                        for ((a, &dv), &w) in a.iter_mut().zip(d).zip(&wc[t * k.cp..]) {
                            *a += w * dv;
                        }
                    }
                }
            }
            for r in 0..g.h {
                let cells = &acc[k.row(g, r)..];
                cells_to_planes(cells, k.cp, g.w, g.c_in, None, &mut dxs[r * g.w..], g.h * g.w);
            }
        },
    );
}

/// Weight-gradient leaf: WRITES the weight gradient of samples `lo..hi` into `gw`, as
/// `conv::wgrad_leaf` does (one sgemm per sample, `beta` 0 for the first, 1 after).
pub(crate) fn wgrad_leaf(
    g: &ConvGeom,
    x: &[f32],
    dy: &[f32],
    lo: usize,
    hi: usize,
    gw: &mut [f32],
) {
    let k = Cells::of(g);
    let mut xc = Scratch::zeroed(k.grid());
    let mut dyc = Scratch::zeroed(g.ohw() * k.cp);
    for s in lo..hi {
        let dys = &dy[s * g.out_size()..][..g.out_size()];
        k.fill(g, &x[s * g.in_size()..][..g.in_size()], &mut xc);
        planes_to_cells(dys, g.ohw(), g.ohw(), g.c_out, &mut dyc, k.cp);
        wgrad_cells(g, &k, &dyc, &xc, gw, s == lo);
    }
}

/// Each (channel, tap): per block of 256 output pixels, `sum = dy . x_tap` from +0 in pixel
/// order, then `gw = gw + (sum + 0)` (the first block of the `first` sample stores `sum + 0`).
/// Up to nine taps (a 3x3 kernel's) run at once: independent sums hide the multiply-add
/// latency.
#[inline(always)]
fn wgrad_cells_with<const FUSED: bool>(
    g: &ConvGeom,
    k: &Cells,
    dyc: &[f32],
    xc: &[f32],
    gw: &mut [f32],
    first: bool,
) {
    const U: usize = 9;
    let kk = g.kh * g.kw;
    for v in (0..k.cp).step_by(L) {
        for t0 in (0..kk).step_by(U) {
            let nt = U.min(kk - t0);
            // Lanes past `nt` repeat tap `t0` and are dropped.
            let off: [usize; U] = std::array::from_fn(|u| k.taps[t0 + if u < nt { u } else { 0 }]);
            for b0 in (0..g.ohw()).step_by(SGEMM_DEPTH) {
                let mut acc = [[0.0f32; L]; U];
                let (mut oy, mut ox) = (b0 / g.ow, b0 % g.ow);
                for p in b0..g.ohw().min(b0 + SGEMM_DEPTH) {
                    let d = lanes(dyc, p * k.cp + v);
                    let base = k.base(g, oy, ox) + v;
                    ox += 1;
                    if ox == g.ow {
                        (oy, ox) = (oy + 1, 0);
                    }
                    for (acc, &o) in acc.iter_mut().zip(&off) {
                        let x = lanes(xc, base + o);
                        for l in 0..L {
                            acc[l] = madd::<FUSED>(d[l], x[l], acc[l]);
                        }
                    }
                }
                for (u, acc) in acc.iter().enumerate().take(nt) {
                    for (l, &a) in acc.iter().enumerate().take(g.c_in.saturating_sub(v).min(L)) {
                        let (sum, gw) = (a + 0.0, &mut gw[(v + l) * kk + t0 + u]);
                        *gw = if first && b0 == 0 { sum } else { *gw + sum };
                    }
                }
            }
        }
    }
}
