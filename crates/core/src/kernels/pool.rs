//! Max and average pooling on `[planes, H, W]` (planes = B*C), one plane per task.
use std::cell::RefCell;

use rayon::prelude::*;

use super::geometry::PoolGeom;
#[cfg(target_arch = "x86_64")]
use super::pool_3x3::is_3x3_s2_p1;
#[cfg(target_arch = "x86_64")]
use super::pool_3x3::maxpool_3x3_s2_avx2;

/// Whether the AVX2 window loops run: the project's one CPU check ([`super::simd::simd`]).
#[cfg(target_arch = "x86_64")]
fn wide() -> bool {
    super::simd::simd() != super::simd::Simd::Base
}

/// Max over each window (padding acts as -inf); `argmax` receives the in-plane index of the
/// first maximum (NaN wins, as in PyTorch). Overwrites `y` and `argmax`.
pub fn maxpool2d_forward(g: &PoolGeom, x: &[f32], y: &mut [f32], argmax: &mut [u32]) {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    y.par_chunks_mut(ohw)
        .zip(argmax.par_chunks_mut(ohw))
        .zip(x.par_chunks(hw))
        .for_each(|((ys, am), xs)| maxpool_any_plane(g, xs, ys, am));
}

/// One plane of [`maxpool2d_forward`].
pub(crate) fn maxpool_any_plane(g: &PoolGeom, xs: &[f32], ys: &mut [f32], am: &mut [u32]) {
    if g.halving() {
        maxpool_2x2_plane(g, xs, ys, am);
    } else {
        maxpool_window_plane(g, xs, ys, am);
    }
}

thread_local! {
    /// One plane of a batch norm's output, for the forward that fuses the batch norm with
    /// the max pool after it: the plane stays in L1 and the whole tensor is never written.
    static PLANE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's plane scratch of `len` floats (values unspecified).
pub(crate) fn with_plane<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    PLANE.with(|cell| {
        let plane = &mut *cell.borrow_mut();
        if plane.len() < len {
            plane.resize(len, 0.0);
        }
        f(&mut plane[..len])
    })
}

/// One plane of [`maxpool2d_backward`]: `dx` (the plane's input gradient) from its output
/// gradient `dy` and argmax `am`, overwritten.
pub(crate) fn unpool_any_plane(g: &PoolGeom, dy: &[f32], am: &[u32], dx: &mut [f32]) {
    if g.halving() {
        maxpool_2x2_unpool_plane(g, dy, am, dx);
    } else {
        unpool_plane(dy, am, dx);
    }
}

/// Any window geometry, one plane: the 3x3 stride-2 kernel or [`maxpool_rows_plane`] unless
/// the plane holds a NaN, whose rule (the first NaN wins) only the generic loop follows.
#[doc(hidden)]
pub fn maxpool_window_plane(g: &PoolGeom, xs: &[f32], ys: &mut [f32], am: &mut [u32]) {
    if maxpool_3x3_s2_plane::<true>(g, xs, ys, am) {
        return;
    }
    // A fold rather than `any`, so the scan vectorises.
    if xs.iter().fold(false, |nan, v| nan | v.is_nan()) {
        maxpool_plane(g, xs, ys, am);
        return;
    }
    maxpool_rows_plane(g, xs, ys, am);
}

/// [`maxpool_window_plane`]'s values without the argmax (`am` is scratch for the generic
/// loops).
fn maxpool_window_values_plane(g: &PoolGeom, xs: &[f32], ys: &mut [f32], am: &mut [u32]) {
    if !maxpool_3x3_s2_plane::<false>(g, xs, ys, am) {
        maxpool_window_plane(g, xs, ys, am);
    }
}

/// The 3x3 stride-2 kernel where it runs (AVX2, that geometry), with the generic loop for a
/// plane that holds a NaN (the kernel finds one itself and then writes nothing valid); false,
/// with nothing written, where it does not run.
#[allow(unused_variables)]
fn maxpool_3x3_s2_plane<const ARGMAX: bool>(
    g: &PoolGeom,
    xs: &[f32],
    ys: &mut [f32],
    am: &mut [u32],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if wide() && is_3x3_s2_p1(g) {
        // SAFETY: AVX2 was detected.
        if !unsafe { maxpool_3x3_s2_avx2::<ARGMAX>(g, xs, ys, am) } {
            maxpool_plane(g, xs, ys, am);
        }
        return true;
    }
    false
}

/// The generic window loop on one plane (`[h, w]` into `[oh, ow]`), NaN rule included: the
/// reference the fast paths are tested against.
#[doc(hidden)]
pub fn maxpool_window_loop(g: &PoolGeom, xs: &[f32], ys: &mut [f32], am: &mut [u32]) {
    maxpool_plane(g, xs, ys, am);
}

/// [`maxpool_plane`] for a plane without NaN, a row of outputs at a time: for each input row of
/// the windows and each window column, one branch-free pass over the outputs it reaches. Rows,
/// then columns, ascend as in the window loop, and `v > best` never replaces an equal value, so
/// the first maximum in row-major order wins as there: the same values and argmax.
fn maxpool_rows_plane(g: &PoolGeom, xs: &[f32], ys: &mut [f32], am: &mut [u32]) {
    let (w, ow) = (g.w, g.ow);
    let (kw, sw, pw) = (g.kernel[1], g.stride[1], g.padding[1]);
    for (oy, (best, at)) in ys.chunks_exact_mut(ow).zip(am.chunks_exact_mut(ow)).enumerate() {
        let (y0, y1, _, _) = g.window(oy, 0);
        best.fill(f32::NEG_INFINITY);
        for (ox, a) in at.iter_mut().enumerate() {
            *a = (y0 * w + g.window(oy, ox).2) as u32;
        }
        for iy in y0..y1 {
            let row = &xs[iy * w..(iy + 1) * w];
            for kx in 0..kw {
                // Outputs whose window column kx, input column `ox * sw + kx - pw`, is inside
                // the row.
                let lo = pw.saturating_sub(kx).div_ceil(sw);
                let hi = (w + pw).saturating_sub(kx).div_ceil(sw).min(ow);
                for ox in lo..hi {
                    let ix = ox * sw + kx - pw;
                    let v = row[ix];
                    let gt = v > best[ox];
                    best[ox] = if gt { v } else { best[ox] };
                    at[ox] = if gt { (iy * w + ix) as u32 } else { at[ox] };
                }
            }
        }
    }
}

/// Any window geometry, one plane.
#[doc(hidden)]
pub fn maxpool_plane(g: &PoolGeom, xs: &[f32], ys: &mut [f32], am: &mut [u32]) {
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let (y0, y1, x0, x1) = g.window(oy, ox);
            let mut best = f32::NEG_INFINITY;
            let mut at = y0 * g.w + x0;
            for iy in y0..y1 {
                for ix in x0..x1 {
                    let v = xs[iy * g.w + ix];
                    if v > best || v.is_nan() {
                        best = v;
                        at = iy * g.w + ix;
                        if v.is_nan() {
                            break;
                        }
                    }
                }
                if best.is_nan() {
                    break;
                }
            }
            ys[oy * g.ow + ox] = best;
            am[oy * g.ow + ox] = at as u32;
        }
    }
}

/// Max of a 2x2 window in row-major order, NaN-propagating: `if v > best` is the x86 max
/// instruction, and a window holding a NaN gives its first NaN (a sum of NaN operands returns
/// the first one). Written without branches so the loops around it vectorise.
#[inline(always)]
fn window_max(t0: f32, t1: f32, b0: f32, b1: f32) -> (f32, bool) {
    let keep = |best: f32, v: f32| if v > best { v } else { best };
    let m = keep(keep(keep(t0, t1), b0), b1);
    let any_nan = t0.is_nan() | t1.is_nan() | b0.is_nan() | b1.is_nan();
    (if any_nan { t0 + t1 + b0 + b1 } else { m }, any_nan)
}

/// The 2x2, stride-2, unpadded window of every network here, without the generic window
/// bookkeeping and without branches (measured by `examples/memory_bound`). Same rule as the generic loop: the first maximum in row-major
/// order wins (the max never replaces an equal value, so it is the first value equal to it),
/// a NaN wins over everything.
#[doc(hidden)]
pub fn maxpool_2x2_plane(g: &PoolGeom, xs: &[f32], ys: &mut [f32], am: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    if wide() {
        // SAFETY: AVX2 was detected.
        return unsafe { pool_2x2_avx2::<false, true>(g, xs, ys, am) };
    }
    maxpool_2x2_plane_scalar(g, xs, ys, am)
}

/// [`maxpool_2x2_plane`] one window at a time (CPUs without AVX2).
#[doc(hidden)]
pub fn maxpool_2x2_plane_scalar(g: &PoolGeom, xs: &[f32], ys: &mut [f32], am: &mut [u32]) {
    let w = g.w as u32;
    pool_2x2_rows(g, xs, ys, am, |t, b| {
        let (m, any_nan) = window_max(t[0], t[1], b[0], b[1]);
        let hit = |v: f32| if any_nan { v.is_nan() } else { v == m };
        let offset = if hit(t[0]) {
            0
        } else if hit(t[1]) {
            1
        } else if hit(b[0]) {
            w
        } else {
            w + 1
        };
        (m, offset)
    });
}

/// [`maxpool_2x2_plane`] on a plane of spikes (every value 0.0 or 1.0): the same values and
/// argmax (the window's first 1, else its first element) from selects alone, no NaN checks.
#[inline(always)]
#[doc(hidden)]
pub fn maxpool_2x2_spikes_plane(g: &PoolGeom, xs: &[f32], ys: &mut [f32], am: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    if wide() {
        // SAFETY: AVX2 was detected.
        return unsafe { pool_2x2_avx2::<true, true>(g, xs, ys, am) };
    }
    maxpool_2x2_spikes_plane_scalar(g, xs, ys, am)
}

/// [`maxpool_2x2_spikes_plane`] one window at a time (CPUs without AVX2).
#[doc(hidden)]
pub fn maxpool_2x2_spikes_plane_scalar(g: &PoolGeom, xs: &[f32], ys: &mut [f32], am: &mut [u32]) {
    let w = g.w as u32;
    pool_2x2_rows(g, xs, ys, am, |t, b| {
        let offset = if t[0] > 0.0 {
            0
        } else if t[1] > 0.0 {
            1
        } else if b[0] > 0.0 {
            w
        } else if b[1] > 0.0 {
            w + 1
        } else {
            0
        };
        (t[0].max(t[1]).max(b[0].max(b[1])), offset)
    });
}

/// Walks the 2x2 windows of one plane: `window(top pair, bottom pair)` gives the output and
/// the argmax's offset from the window's top-left corner.
#[inline(always)]
fn pool_2x2_rows(
    g: &PoolGeom,
    xs: &[f32],
    ys: &mut [f32],
    am: &mut [u32],
    window: impl Fn(&[f32], &[f32]) -> (f32, u32),
) {
    let w = g.w;
    for oy in 0..g.oh {
        let top = &xs[2 * oy * w..][..2 * g.ow];
        let bottom = &xs[(2 * oy + 1) * w..][..2 * g.ow];
        let (yr, ar) = (&mut ys[oy * g.ow..][..g.ow], &mut am[oy * g.ow..][..g.ow]);
        let row = (2 * oy * w) as u32;
        for (ox, (((o, a), t), b)) in yr
            .iter_mut()
            .zip(ar.iter_mut())
            .zip(top.chunks_exact(2))
            .zip(bottom.chunks_exact(2))
            .enumerate()
        {
            let (m, offset) = window(t, b);
            *o = m;
            *a = row + 2 * ox as u32 + offset;
        }
    }
}

/// The 2x2 windows of one plane eight at a time: [`maxpool_2x2_plane`]'s rule (`SPIKES`:
/// [`maxpool_2x2_spikes_plane`]'s) in selects, rather than one window per iteration compiled
/// for SSE2 inside rayon's closures. A row's last windows come through
/// masked loads and stores. Without `ARGMAX`, `am` is not touched (evaluation).
///
/// # Safety
/// AVX2 must be present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pool_2x2_avx2<const SPIKES: bool, const ARGMAX: bool>(
    g: &PoolGeom,
    xs: &[f32],
    ys: &mut [f32],
    am: &mut [u32],
) {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        use super::simd::{deinterleave, store_lanes};
        use std::arch::x86_64::*;
        let (w, ow) = (g.w, g.ow);
        assert!(
            2 * g.oh <= g.h
                && 2 * ow <= w
                && xs.len() >= g.h * w
                && ys.len() >= g.oh * ow
                && (!ARGMAX || am.len() >= g.oh * ow)
        );
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let (zero, one) = (_mm256_setzero_si256(), _mm256_set1_epi32(1));
        let (below, below_right) = (_mm256_set1_epi32(w as i32), _mm256_set1_epi32(w as i32 + 1));
        let pick = |off: __m256i, to: __m256i, hit: __m256| {
            _mm256_castps_si256(_mm256_blendv_ps(
                _mm256_castsi256_ps(off),
                _mm256_castsi256_ps(to),
                hit,
            ))
        };
        for oy in 0..g.oh {
            let (top, bottom) = (xs.as_ptr().add(2 * oy * w), xs.as_ptr().add((2 * oy + 1) * w));
            for ox in (0..ow).step_by(8) {
                let n = (ow - ox).min(8);
                // The 2n values of the windows' top (bottom) row, split into left and right columns.
                let pair = |row: *const f32| {
                    let p = row.add(2 * ox);
                    if n == 8 {
                        deinterleave(_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)))
                    } else {
                        let lo = _mm256_cmpgt_epi32(_mm256_set1_epi32(2 * n as i32), lane);
                        let hi = _mm256_cmpgt_epi32(_mm256_set1_epi32(2 * n as i32 - 8), lane);
                        deinterleave(_mm256_maskload_ps(p, lo), _mm256_maskload_ps(p.add(8), hi))
                    }
                };
                let ((t0, t1), (b0, b1)) = (pair(top), pair(bottom));
                // Which values equal the window's output: spikes are hits where 1.
                let (m, [h_t0, h_t1, h_b0, h_b1]) = if SPIKES {
                    let z = _mm256_setzero_ps();
                    let m = _mm256_max_ps(_mm256_max_ps(t0, t1), _mm256_max_ps(b0, b1));
                    (m, [t0, t1, b0, b1].map(|v| _mm256_cmp_ps::<_CMP_GT_OQ>(v, z)))
                } else {
                    // `keep(best, v)` = `v > best ? v : best` = maxps(v, best); a NaN window gives
                    // the sum of its four values (its first NaN), as [`window_max`] does.
                    let m = _mm256_max_ps(b1, _mm256_max_ps(b0, _mm256_max_ps(t1, t0)));
                    let nan = _mm256_or_ps(
                        _mm256_cmp_ps::<_CMP_UNORD_Q>(t0, t1),
                        _mm256_cmp_ps::<_CMP_UNORD_Q>(b0, b1),
                    );
                    let sum = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(t0, t1), b0), b1);
                    let m = _mm256_blendv_ps(m, sum, nan);
                    // A NaN maximum equals nothing, so a NaN window's hits are its NaNs alone.
                    (
                        m,
                        [t0, t1, b0, b1].map(|v| {
                            _mm256_or_ps(
                                _mm256_cmp_ps::<_CMP_EQ_OQ>(v, m),
                                _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v),
                            )
                        }),
                    )
                };
                let o = oy * ow + ox;
                store_lanes(ys.as_mut_ptr().add(o), &[m], n);
                if !ARGMAX {
                    continue;
                }
                // The first hit in row-major order; spikes with no hit take the window's first.
                let last = if SPIKES { pick(zero, below_right, h_b1) } else { below_right };
                let off = pick(pick(pick(last, below, h_b0), one, h_t1), zero, h_t0);
                let at = _mm256_add_epi32(
                    _mm256_set1_epi32((2 * oy * w + 2 * ox) as i32),
                    _mm256_add_epi32(_mm256_slli_epi32::<1>(lane), off),
                );
                _mm256_maskstore_epi32(
                    am.as_mut_ptr().add(o) as *mut i32,
                    _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), lane),
                    at,
                );
            }
        }
    }
}

/// Max over each window without the argmax, for forward passes no backward will follow
/// (evaluation): the 2x2 stride-2 window takes [`pool_2x2_avx2`] (a branch-free window loop
/// without AVX2), any other window the generic one. Same values as [`maxpool2d_forward`], NaNs included.
pub fn maxpool2d_values(g: &PoolGeom, x: &[f32], y: &mut [f32]) {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    if !g.halving() {
        y.par_chunks_mut(ohw).zip(x.par_chunks(hw)).for_each_init(
            || vec![0u32; ohw],
            |am, (ys, xs)| maxpool_window_values_plane(g, xs, ys, am),
        );
        return;
    }
    let w = g.w;
    y.par_chunks_mut(ohw).zip(x.par_chunks(hw)).for_each(|(ys, xs)| {
        #[cfg(target_arch = "x86_64")]
        if wide() {
            // SAFETY: AVX2 was detected.
            return unsafe { pool_2x2_avx2::<false, false>(g, xs, ys, &mut []) };
        }
        for (oy, yr) in ys.chunks_exact_mut(g.ow).enumerate() {
            let top = &xs[2 * oy * w..][..2 * g.ow];
            let bottom = &xs[(2 * oy + 1) * w..][..2 * g.ow];
            for ((o, t), b) in yr.iter_mut().zip(top.chunks_exact(2)).zip(bottom.chunks_exact(2)) {
                *o = window_max(t[0], t[1], b[0], b[1]).0;
            }
        }
    });
}

/// Routes each output gradient to its window's argmax; overwrites `dx`.
pub fn maxpool2d_backward(g: &PoolGeom, dy: &[f32], argmax: &[u32], dx: &mut [f32]) {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    dx.par_chunks_mut(hw)
        .zip(dy.par_chunks(ohw).zip(argmax.par_chunks(ohw)))
        .for_each(|(dxs, (dys, am))| unpool_any_plane(g, dys, am, dxs));
}

/// One plane's gradient routed to the argmaxes by a fill and a scatter.
#[doc(hidden)]
pub fn unpool_plane(dy: &[f32], am: &[u32], dx: &mut [f32]) {
    dx.fill(0.0);
    for (&d, &i) in dy.iter().zip(am) {
        dx[i as usize] += d;
    }
}

/// [`maxpool2d_backward`] of one plane for the 2x2, stride-2 window, whose `am` the forward
/// gave (each argmax inside its window): every input written once, `0.0 + dy` at its window's
/// argmax (the scatter's bits, `-0.0` included) and `0.0` elsewhere: eight windows at a time
/// in AVX2 (a scalar branch-free form loses to the plain fill + scatter).
#[doc(hidden)]
pub fn maxpool_2x2_unpool_plane(g: &PoolGeom, dy: &[f32], am: &[u32], dx: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if wide() {
        // SAFETY: AVX2 was detected.
        return unsafe { unpool_2x2_avx2(g, dy, am, dx) };
    }
    unpool_plane(dy, am, dx)
}

/// # Safety
/// AVX2 must be present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn unpool_2x2_avx2(g: &PoolGeom, dy: &[f32], am: &[u32], dx: &mut [f32]) {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        use super::simd::{interleave, store_lanes};
        use std::arch::x86_64::*;
        let (w, ow) = (g.w, g.ow);
        let ohw = g.oh * ow;
        assert!(
            2 * g.oh <= g.h
                && 2 * ow <= w
                && dx.len() == g.h * w
                && dy.len() >= ohw
                && am.len() >= ohw
        );
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let zero = _mm256_setzero_ps();
        let offsets = [0, 1, w as i32, w as i32 + 1].map(|k| _mm256_set1_epi32(k));
        for oy in 0..g.oh {
            let (top, bottom) =
                (dx.as_mut_ptr().add(2 * oy * w), dx.as_mut_ptr().add((2 * oy + 1) * w));
            for ox in (0..ow).step_by(8) {
                let n = (ow - ox).min(8);
                let o = oy * ow + ox;
                let (d, a) = if n == 8 {
                    (
                        _mm256_loadu_ps(dy.as_ptr().add(o)),
                        _mm256_loadu_si256(am.as_ptr().add(o) as *const __m256i),
                    )
                } else {
                    let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), lane);
                    (
                        _mm256_maskload_ps(dy.as_ptr().add(o), mask),
                        _mm256_maskload_epi32(am.as_ptr().add(o) as *const i32, mask),
                    )
                };
                let d = _mm256_add_ps(zero, d);
                let off = _mm256_sub_epi32(
                    a,
                    _mm256_add_epi32(
                        _mm256_set1_epi32((2 * oy * w + 2 * ox) as i32),
                        _mm256_slli_epi32::<1>(lane),
                    ),
                );
                let [tl, tr, bl, br] = offsets
                    .map(|k| _mm256_and_ps(d, _mm256_castsi256_ps(_mm256_cmpeq_epi32(off, k))));
                store_lanes(top.add(2 * ox), &interleave(tl, tr), 2 * n);
                store_lanes(bottom.add(2 * ox), &interleave(bl, br), 2 * n);
            }
            // An odd width's last column lies in no window.
            for x in 2 * ow..w {
                *top.add(x) = 0.0;
                *bottom.add(x) = 0.0;
            }
        }
        dx[2 * g.oh * w..].fill(0.0);
    }
}

/// Window mean over [`PoolGeom::divisor`] values: with `count_include_pad` the padding counts
/// (in floor mode the divisor is always `kh * kw`), without it only the input values do.
/// Overwrites `y`.
pub fn avgpool2d_forward(g: &PoolGeom, count_include_pad: bool, x: &[f32], y: &mut [f32]) {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    y.par_chunks_mut(ohw).zip(x.par_chunks(hw)).for_each(|(ys, xs)| {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let (y0, y1, x0, x1) = g.window(oy, ox);
                let mut s = 0.0f32;
                for iy in y0..y1 {
                    s += xs[iy * g.w + x0..iy * g.w + x1].iter().sum::<f32>();
                }
                ys[oy * g.ow + ox] = s * (1.0 / g.divisor(oy, ox, count_include_pad) as f32);
            }
        }
    });
}

/// Adjoint of [`avgpool2d_forward`]; overwrites `dx`.
pub fn avgpool2d_backward(g: &PoolGeom, count_include_pad: bool, dy: &[f32], dx: &mut [f32]) {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    dx.par_chunks_mut(hw).zip(dy.par_chunks(ohw)).for_each(|(dxs, dys)| {
        dxs.fill(0.0);
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let (y0, y1, x0, x1) = g.window(oy, ox);
                let inv = 1.0 / g.divisor(oy, ox, count_include_pad) as f32;
                let d = dys[oy * g.ow + ox] * inv;
                for iy in y0..y1 {
                    for v in &mut dxs[iy * g.w + x0..iy * g.w + x1] {
                        *v += d;
                    }
                }
            }
        }
    });
}

/// Mean of each plane of `hw` values: `[planes, hw] -> [planes]`.
pub fn global_avg_forward(x: &[f32], hw: usize, y: &mut [f32]) {
    let inv = 1.0 / hw as f64;
    y.par_iter_mut().zip(x.par_chunks(hw)).for_each(|(o, xs)| {
        *o = (xs.iter().map(|&v| v as f64).sum::<f64>() * inv) as f32;
    });
}

/// Spreads each plane's gradient evenly; overwrites `dx`.
pub fn global_avg_backward(dy: &[f32], hw: usize, dx: &mut [f32]) {
    let inv = 1.0 / hw as f32;
    dx.par_chunks_mut(hw).zip(dy.par_iter()).for_each(|(dxs, &d)| dxs.fill(d * inv));
}
