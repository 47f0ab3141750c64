//! The 3x3, stride-2, padding-1 max pool (floor mode) of Spikformer's patch splitting, on a
//! plane without NaN (a plane holding one goes back to the generic loop), as two separable
//! passes: the max of each window's three columns in every input row (each row serves two
//! output rows), then the max of three such row results.
//!
//! Both passes take the first maximum of their three values in order (left, centre, right;
//! top, middle, bottom) by strict comparisons, so the whole window gives its first maximum in
//! row-major order: the generic window loop's value and argmax. Padding takes no part (a
//! window of `-inf` values gives its first value inside the input, as the generic loop does).
use std::cell::RefCell;

use super::geometry::PoolGeom;

/// Whether `g` is the floor-mode 3x3, stride-2, padding-1 window.
pub(crate) fn is_3x3_s2_p1(g: &PoolGeom) -> bool {
    g.kernel == [3, 3]
        && g.stride == [2, 2]
        && g.padding == [1, 1]
        && g.oh == (g.h - 1) / 2 + 1
        && g.ow == (g.w - 1) / 2 + 1
}

/// Per-thread work of one plane: the row pass's maxima and their in-plane indices (`h * ow`,
/// and a vector's worth more so whole vectors load), and for even widths whether each row-pass
/// output has a left column (the cache is for `left_ow`).
#[derive(Default)]
struct RowPass {
    max: Vec<f32>,
    at: Vec<i32>,
    has_left: Vec<i32>,
    left_ow: usize,
}

thread_local! {
    static ROW_PASS: RefCell<RowPass> = RefCell::new(RowPass::default());
}

/// The pool of one plane `xs` (`[h, w]`) into `ys` and, with `ARGMAX`, the in-plane index of
/// each window's first maximum into `am`; false, with `ys` and `am` unspecified, where the
/// plane holds a NaN (whose rule, the first NaN wins, only the generic window loop follows).
/// An even width finds a NaN in the row pass's own loads, an odd one scans the plane first.
/// `g` must pass [`is_3x3_s2_p1`].
///
/// # Safety
/// AVX2 must be present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn maxpool_3x3_s2_avx2<const ARGMAX: bool>(
    g: &PoolGeom,
    xs: &[f32],
    ys: &mut [f32],
    am: &mut [u32],
) -> bool {
    debug_assert!(is_3x3_s2_p1(g));
    let (h, w, oh, ow) = (g.h, g.w, g.oh, g.ow);
    assert!(xs.len() >= h * w && ys.len() >= oh * ow && (!ARGMAX || am.len() >= oh * ow));
    ROW_PASS.with(|cell| {
        let rp = &mut *cell.borrow_mut();
        let n = h * ow + 8;
        if rp.max.len() < n {
            rp.max.resize(n, 0.0);
            rp.at.resize(n, 0);
        }
        // SAFETY: AVX2 is present (this function's contract); the sizes are checked above.
        unsafe {
            if w % 2 == 0 {
                if rp.left_ow != ow || rp.has_left.len() < n {
                    rp.has_left.clear();
                    rp.has_left.extend((0..n).map(|k| if k % ow == 0 { 0 } else { -1 }));
                    rp.left_ow = ow;
                }
                if row_pass_even::<ARGMAX>(h * ow, xs, &rp.has_left, &mut rp.max, &mut rp.at) {
                    return false;
                }
            } else {
                // A fold rather than `any`, so the scan vectorises.
                if xs[..h * w].iter().fold(false, |nan, v| nan | v.is_nan()) {
                    return false;
                }
                row_pass_odd(h, w, ow, xs, &mut rp.max, &mut rp.at);
            }
            column_pass::<ARGMAX>(h, oh, ow, &rp.max, &rp.at, ys, am);
            true
        }
    })
}

/// The row pass for an even width: row-pass output `k` (row `k / ow`, window column
/// `k % ow`) reads input `2k - 1`, `2k`, `2k + 1` of the flat plane, its left one only where
/// `has_left[k]`; eight outputs a vector. Its centre and right loads cover the plane: returns
/// whether they met a NaN (then `max` and `at` are unspecified).
///
/// # Safety
/// AVX2 must be present; `xs` holds `2 * outputs` values, `has_left`, `max` and `at` hold
/// `outputs` rounded up to a multiple of 8.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn row_pass_even<const ARGMAX: bool>(
    outputs: usize,
    xs: &[f32],
    has_left: &[i32],
    max: &mut [f32],
    at: &mut [i32],
) -> bool {
    use std::arch::x86_64::*;
    let whole = outputs.div_ceil(8) * 8;
    assert!(xs.len() >= 2 * outputs && has_left.len() >= whole);
    assert!(max.len() >= whole && at.len() >= whole);
    // SAFETY: AVX2 is present; every load and store stays inside the slices checked above
    // (masked loads for a last partial vector).
    unsafe {
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let one = _mm256_set1_epi32(1);
        let rotate = _mm256_setr_epi32(7, 0, 1, 2, 3, 4, 5, 6);
        // `count` values from `p`, split into even and odd positions.
        let load = |p: *const f32, count: usize| {
            if count == 16 {
                super::simd::deinterleave(_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)))
            } else {
                let lo = _mm256_cmpgt_epi32(_mm256_set1_epi32(count as i32), lane);
                let hi = _mm256_cmpgt_epi32(_mm256_set1_epi32(count as i32 - 8), lane);
                super::simd::deinterleave(
                    _mm256_maskload_ps(p, lo),
                    _mm256_maskload_ps(p.add(8), hi),
                )
            }
        };
        // Lanes where a centre or right value was NaN (masked-off lanes load 0.0).
        let mut nan = _mm256_setzero_ps();
        for k in (0..outputs).step_by(8) {
            let count = 2 * (outputs - k).min(8);
            let p = xs.as_ptr().add(2 * k);
            let (c, r) = load(p, count);
            nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(c, r));
            // The left column is the previous odd position; at k = 0 lane 0 has none (row
            // start), and the others are the right columns one lane down.
            let l =
                if k == 0 { _mm256_permutevar8x32_ps(r, rotate) } else { load(p.sub(1), count).0 };
            let left =
                _mm256_castsi256_ps(_mm256_loadu_si256(has_left.as_ptr().add(k) as *const __m256i));
            let right_wins = _mm256_cmp_ps::<_CMP_GT_OQ>(r, c);
            let cr = _mm256_blendv_ps(c, r, right_wins);
            let left_wins = _mm256_andnot_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(cr, l), left);
            _mm256_storeu_ps(max.as_mut_ptr().add(k), _mm256_blendv_ps(cr, l, left_wins));
            if ARGMAX {
                // Centre at 2k + 2 lane; right one more, left one less.
                let centre =
                    _mm256_add_epi32(_mm256_set1_epi32(2 * k as i32), _mm256_slli_epi32::<1>(lane));
                let pick = |a: __m256i, b: __m256i, m: __m256| {
                    _mm256_castps_si256(_mm256_blendv_ps(
                        _mm256_castsi256_ps(a),
                        _mm256_castsi256_ps(b),
                        m,
                    ))
                };
                let cr_at = _mm256_add_epi32(centre, pick(_mm256_setzero_si256(), one, right_wins));
                let lr_at = _mm256_sub_epi32(centre, one);
                _mm256_storeu_si256(
                    at.as_mut_ptr().add(k) as *mut __m256i,
                    pick(cr_at, lr_at, left_wins),
                );
            }
        }
        _mm256_movemask_ps(nan) != 0
    }
}

/// The row pass for an odd width, one window column at a time: the last has no right column.
fn row_pass_odd(h: usize, w: usize, ow: usize, xs: &[f32], max: &mut [f32], at: &mut [i32]) {
    for (iy, row) in xs[..h * w].chunks_exact(w).enumerate() {
        for ox in 0..ow {
            let x0 = (2 * ox).saturating_sub(1);
            let x1 = (2 * ox + 2).min(w);
            let (mut best, mut best_at) = (row[x0], x0);
            for (ix, &v) in row.iter().enumerate().take(x1).skip(x0 + 1) {
                if v > best {
                    best = v;
                    best_at = ix;
                }
            }
            max[iy * ow + ox] = best;
            at[iy * ow + ox] = (iy * w + best_at) as i32;
        }
    }
}

/// The column pass: output row `oy` takes the first maximum of row-pass rows `2oy - 1`
/// (when `oy > 0`), `2oy` and `2oy + 1` (when inside the input), eight outputs a vector.
///
/// # Safety
/// AVX2 must be present; `max` and `at` hold `h * ow` values and 8 more.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn column_pass<const ARGMAX: bool>(
    h: usize,
    oh: usize,
    ow: usize,
    max: &[f32],
    at: &[i32],
    ys: &mut [f32],
    am: &mut [u32],
) {
    use std::arch::x86_64::*;
    assert!(max.len() >= h * ow + 8 && at.len() >= h * ow + 8 && ys.len() >= oh * ow);
    assert!(!ARGMAX || am.len() >= oh * ow);
    // SAFETY: AVX2 is present; loads stay inside `max` and `at` (8 spare values), stores are
    // masked to the row's `ow` outputs.
    unsafe {
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let pick = |a: __m256i, b: __m256i, m: __m256| {
            _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(a), _mm256_castsi256_ps(b), m))
        };
        let load_at = |i: usize| _mm256_loadu_si256(at.as_ptr().add(i) as *const __m256i);
        for oy in 0..oh {
            let mid = 2 * oy * ow;
            for ox in (0..ow).step_by(8) {
                let n = (ow - ox).min(8);
                let (mut m, mut a) =
                    (_mm256_loadu_ps(max.as_ptr().add(mid + ox)), load_at(mid + ox));
                if 2 * oy + 1 < h {
                    let below = mid + ow + ox;
                    let b = _mm256_loadu_ps(max.as_ptr().add(below));
                    let wins = _mm256_cmp_ps::<_CMP_GT_OQ>(b, m);
                    m = _mm256_blendv_ps(m, b, wins);
                    if ARGMAX {
                        a = pick(a, load_at(below), wins);
                    }
                }
                if oy > 0 {
                    let above = mid - ow + ox;
                    let t = _mm256_loadu_ps(max.as_ptr().add(above));
                    let wins = _mm256_cmp_ps::<_CMP_LE_OQ>(m, t);
                    m = _mm256_blendv_ps(m, t, wins);
                    if ARGMAX {
                        a = pick(a, load_at(above), wins);
                    }
                }
                let o = oy * ow + ox;
                super::simd::store_lanes(ys.as_mut_ptr().add(o), &[m], n);
                if ARGMAX {
                    _mm256_maskstore_epi32(
                        am.as_mut_ptr().add(o) as *mut i32,
                        _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), lane),
                        a,
                    );
                }
            }
        }
    }
}
