//! The input and output transforms in 16 lanes (AVX-512) for maps four tiles wide (F(4x4) on
//! maps 13-15 wide, F(2x2) on maps 7-8 wide, such as 14x14 and 7x7 blocks): one
//! vector holds four tile rows of four tiles, which is exactly where those tiles lie in `V`
//! and `M` (lane `(rr - r0) * 4 + tx`), so the position GEMMs are unchanged. Maps seven F(4x4)
//! tiles wide (25-28, such as 28x28) put two tile rows of seven in a vector the same way.
//!
//! Why: the 8-lane transforms spend most of their time regrouping columns by tile
//! (`deinterleave4`/`interleave4`: 24 shuffles per input row of eight F(4x4) tiles, all on the
//! one shuffle port), and the F(2x2) output transform filled half of its lanes on such maps.
//! Here each patch row of the 16 tiles comes from four row loads by two levels of two-source
//! permutes (12 per row for F(4x4)), and the arithmetic runs on twice the lanes. The
//! arithmetic is the 8-lane code's, in the same order ([`super::Lanes`]): the same bits.
#![cfg(target_arch = "x86_64")]

use super::lanes::{at6, at_f2_lanes, bt4, bt4_row, bt6};
use super::plan::{pos_stride, PatchRows, Plan, Tile};
use crate::kernels::geometry::ConvGeom;
use crate::kernels::simd::array_of;
use std::arch::x86_64::*;

/// Whether [`input`] and [`output`] take `g`: rows of four tiles, and the columns a tile row's
/// patches read (`-1 ..= 4 * tile`) fit in one vector where the map has them: lane `l` holds
/// column `l - 1`, so columns 15 and 16 (F(4x4)'s last patch) must lie outside the map.
pub(super) fn applies(tile: Tile, g: &ConvGeom, plan: &Plan) -> bool {
    (plan.tw == 4 && g.w <= 15) || (tile == Tile::F4 && plan.tw == 7)
}

/// Lane indices of a two-source permute taking, for column offsets `c0` (lanes 0-7) and `c0 + 1`
/// (lanes 8-15), columns `step * tx + c` of the first source (lanes 0-3 of each half) and of
/// the second (lanes 4-7): tile `tx` of two tile rows. Rows are loaded one column early (lane
/// `l` = column `l - 1`); a column past lane 15 lies outside the map ([`applies`]) and reads
/// lane 0, column -1, which is zero.
fn pair_index(step: usize, c0: usize) -> [i32; 16] {
    array_of(|l| {
        let (c, src, tx) = (c0 + l / 8, (l % 8) / 4, l % 4);
        let col = step * tx + c;
        (16 * src + if col < 16 { col } else { 0 }) as i32
    })
}

/// `V` for tile rows `r0..r1` of the chunk (see [`super::input_transform`]), four tile rows at a
/// time. Lanes of tile rows past `r1` read zero rows and land in padding lanes (a band of `r`
/// tile rows writes `16 * ceil(r / 4)` lanes, within [`super::tiles_pad`] of its `4 r` tiles).
///
/// # Safety
/// AVX-512F must be present; [`applies`] must hold, and `xs`, `v` and `rows` be as
/// [`super::input_transform`] needs them.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn input(
    tile: Tile,
    g: &ConvGeom,
    plan: &Plan,
    xs: &[f32],
    r0: usize,
    r1: usize,
    tiles_pad: usize,
    v: &mut [f32],
    rows: &mut [f32],
) {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        debug_assert!(applies(tile, g, plan));
        let patches = PatchRows::new(g, plan, xs, r1, tile.size(), rows);
        let pos_stride = pos_stride(g.c_in, tiles_pad);
        assert!(v.len() >= tile.positions() * pos_stride);
        if plan.tw == 7 {
            return input_f4_seven(&patches, g, plan, r0, r1, tiles_pad, v);
        }
        assert!((r1 - r0).div_ceil(4) * 16 <= tiles_pad);
        // Columns 0..w at lanes 1..=w.
        let load_mask: __mmask16 = (((1u32 << g.w) - 1) << 1) as __mmask16;
        let step = tile.size();
        let index: [__m512i; 3] =
            array_of(|q| _mm512_loadu_epi32(pair_index(step, 2 * q).as_ptr()));
        let mut rr = r0;
        while rr < r1 {
            let group: [Option<(usize, usize)>; 4] =
                array_of(|k| (rr + k < r1).then(|| ((rr + k) / plan.th, (rr + k) % plan.th)));
            for ci in 0..g.c_in {
                // Patch row i of the group's four tile rows, columns -1..15.
                let load = |i: usize| -> [__m512; 4] {
                    array_of(|k| {
                        let p = match group[k] {
                            Some((b, ty)) => patches.row_of(ci, b, ty, i),
                            None => patches.zero.as_ptr(),
                        };
                        // SAFETY: lanes 1..=w read columns 0..w of a row of w floats; the others
                        // are masked off and not accessed.
                        _mm512_maskz_loadu_ps(load_mask, p.wrapping_sub(1))
                    })
                };
                // Column offset c of every tile: lanes 4k..4k+4 from tile row k.
                let columns = |r: [__m512; 4], pairs: usize| -> [__m512; 6] {
                    let mut v = [_mm512_setzero_ps(); 6];
                    for q in 0..pairs {
                        let top = _mm512_permutex2var_ps(r[0], index[q], r[1]);
                        let bottom = _mm512_permutex2var_ps(r[2], index[q], r[3]);
                        v[2 * q] = _mm512_shuffle_f32x4::<0x44>(top, bottom);
                        v[2 * q + 1] = _mm512_shuffle_f32x4::<0xEE>(top, bottom);
                    }
                    v
                };
                let dst = v.as_mut_ptr().add(ci * tiles_pad + (rr - r0) * 4);
                // SAFETY (stores): lanes (rr - r0) * 4 .. + 16 of the V rows lie inside tiles_pad
                // (asserted above), and the positions inside v.
                match tile {
                    Tile::F4 => {
                        // B across the columns of each patch row, then B^T across the rows, as tile8_f4.
                        let e: [[__m512; 6]; 6] = array_of(|i| bt6(columns(load(i), 3)));
                        for j in 0..6 {
                            let col = bt6([e[0][j], e[1][j], e[2][j], e[3][j], e[4][j], e[5][j]]);
                            for (k, val) in col.iter().enumerate() {
                                _mm512_storeu_ps(dst.add((k * 6 + j) * pos_stride), *val);
                            }
                        }
                    }
                    Tile::F2 => {
                        // B^T across the rows, then B across the columns, as tile8_f2.
                        let d: [[__m512; 4]; 4] = array_of(load);
                        for k in 0..4 {
                            let rows: [__m512; 4] =
                                array_of(|t| bt4_row(k, [d[0][t], d[1][t], d[2][t], d[3][t]]));
                            let c = columns(rows, 2);
                            for (j, val) in bt4([c[0], c[1], c[2], c[3]]).iter().enumerate() {
                                _mm512_storeu_ps(dst.add((4 * k + j) * pos_stride), *val);
                            }
                        }
                    }
                }
            }
            rr += 4;
        }
    }
}

/// `Y = A^T M A + bias` for tile rows `r0..r1` of the chunk (see [`super::output_transform`]),
/// four tile rows at a time, each output row's columns put in order by two levels of
/// permutes and stored where they lie inside the map.
///
/// # Safety
/// AVX-512F must be present; [`applies`] must hold, and `m` and `ys` be as
/// [`super::output_transform`] needs them.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn output(
    tile: Tile,
    g: &ConvGeom,
    plan: &Plan,
    m: &[f32],
    bias: Option<&[f32]>,
    r0: usize,
    r1: usize,
    tiles_pad: usize,
    ys: &mut [f32],
) {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        debug_assert!(applies(tile, g, plan));
        if plan.tw == 7 {
            return output_f4_seven(g, plan, m, bias, r0, r1, tiles_pad, ys);
        }
        let (h, w) = (g.h, g.w);
        let pos_stride = pos_stride(g.c_out, tiles_pad);
        assert!(
            m.len() >= tile.positions() * pos_stride && (r1 - r0).div_ceil(4) * 16 <= tiles_pad
        );
        assert!(ys.len() >= (r1 - 1) / plan.th * g.out_size() + g.out_size());
        let out = ys.as_mut_ptr();
        let store_mask: __mmask16 = ((1u32 << w) - 1) as __mmask16;
        let idx = |f: fn(usize) -> i32| _mm512_loadu_epi32(array_of::<i32, 16>(f).as_ptr());
        // Lane 8k' + 2tx + c <- tile tx of tile row k' (`pairs[0]`) or 2 + k' (`pairs[1]`), from the
        // first source for c = 0 and the second for c = 1: two output columns of four tiles for
        // two tile rows. F(2x2) has its rows' eight columns in order; F(4x4) then takes each row's
        // 16 columns 4tx + c from two of those (c < 2 from the first, else the second): `rows_of`.
        let pairs = [
            idx(|l| (16 * (l % 2) + 4 * (l / 8) + (l % 8) / 2) as i32),
            idx(|l| (16 * (l % 2) + 8 + 4 * (l / 8) + (l % 8) / 2) as i32),
        ];
        let rows_of = [
            idx(|l| (16 * ((l % 4) / 2) + 2 * (l / 4) + l % 2) as i32),
            idx(|l| (16 * ((l % 4) / 2) + 8 + 2 * (l / 4) + l % 2) as i32),
        ];
        for co in 0..g.c_out {
            let bv = _mm512_set1_ps(bias.map_or(0.0, |b| b[co]));
            let mut rr = r0;
            while rr < r1 {
                // Output row `row` of the group's tile row k, if it lies inside the map.
                let target = |k: usize, row: usize| -> Option<*mut f32> {
                    if rr + k >= r1 {
                        return None;
                    }
                    let (b, ty) = ((rr + k) / plan.th, (rr + k) % plan.th);
                    let oy = tile.size() * ty + row;
                    (oy < h).then(|| out.add((b * g.c_out + co) * h * w + oy * w))
                };
                let mbase = m.as_ptr().add(co * tiles_pad + (rr - r0) * 4);
                // SAFETY (loads): lanes (rr - r0) * 4 .. + 16 of the M rows lie inside tiles_pad
                // (asserted). Stores: masked to columns 0..w of output rows inside the map.
                match tile {
                    Tile::F4 => {
                        // Rows of A^T M column by column, then A^T across each row, as at_rows_f4.
                        let s: [[__m512; 4]; 6] = array_of(|j| {
                            at6(array_of(|k| _mm512_loadu_ps(mbase.add((k * 6 + j) * pos_stride))))
                        });
                        for i in 0..4 {
                            let y = at6(array_of(|j| s[j][i])).map(|v| _mm512_add_ps(v, bv));
                            let low = [
                                _mm512_permutex2var_ps(y[0], pairs[0], y[1]),
                                _mm512_permutex2var_ps(y[0], pairs[1], y[1]),
                            ];
                            let high = [
                                _mm512_permutex2var_ps(y[2], pairs[0], y[3]),
                                _mm512_permutex2var_ps(y[2], pairs[1], y[3]),
                            ];
                            for k in 0..4 {
                                if let Some(dst) = target(k, i) {
                                    let row = _mm512_permutex2var_ps(
                                        low[k / 2],
                                        rows_of[k % 2],
                                        high[k / 2],
                                    );
                                    _mm512_mask_storeu_ps(dst, store_mask, row);
                                }
                            }
                        }
                    }
                    Tile::F2 => {
                        let mm: [__m512; 16] =
                            array_of(|p| _mm512_loadu_ps(mbase.add(p * pos_stride)));
                        let y = at_f2_lanes(mm, bv);
                        for a in 0..2 {
                            for (half, index) in pairs.iter().enumerate() {
                                // Tile rows 2 half and 2 half + 1 in the low and high eight lanes.
                                let both = _mm512_permutex2var_ps(y[2 * a], *index, y[2 * a + 1]);
                                for k in 0..2 {
                                    if let Some(dst) = target(2 * half + k, a) {
                                        // The high half goes through a pointer 8 floats early with
                                        // lanes 8.. kept: masked-off lanes are not accessed.
                                        _mm512_mask_storeu_ps(
                                            dst.wrapping_sub(8 * k),
                                            store_mask << (8 * k),
                                            both,
                                        );
                                    }
                                }
                            }
                        }
                    }
                }
                rr += 4;
            }
        }
    }
}

/// Lane indices for maps seven F(4x4) tiles wide (25-28): `index[l]` for `l` in `0..16`.
#[doc(hidden)]
pub fn lanes(f: impl Fn(usize) -> usize) -> [i32; 16] {
    array_of(|l| f(l) as i32)
}

/// [`input`] on maps seven F(4x4) tiles wide: two tile rows (14 tiles) per vector, at lanes
/// `(rr - r0) * 7 + tx` as in `V`. A row's columns -1..30 are two vectors; per column pair, one
/// permute per tile row picks the seven tiles' columns from its two vectors, and one more puts
/// the two tile rows side by side. Lanes 14-15 of a group are the next group's first two tiles,
/// which it writes after (or padding lanes, after the band's last group).
///
/// # Safety
/// As [`input`], with `plan.tw == 7`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn input_f4_seven(
    patches: &PatchRows,
    g: &ConvGeom,
    plan: &Plan,
    r0: usize,
    r1: usize,
    tiles_pad: usize,
    v: &mut [f32],
) {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        let pos_stride = pos_stride(g.c_in, tiles_pad);
        assert!(7 * (r1 - r0 - 1) - 7 * ((r1 - r0 - 1) % 2) + 16 <= tiles_pad);
        // Columns -1..15 and 15..31: lane l of the first is column l - 1, of the second l + 15.
        let (low_mask, high_mask): (__mmask16, __mmask16) =
            (0xFFFE, ((1u32 << (g.w - 15)) - 1) as __mmask16);
        let index = |f: fn(usize) -> usize| _mm512_loadu_epi32(lanes(f).as_ptr());
        // Column offsets c0 (lanes 0-6) and c0 + 1 (lanes 8-14) of the seven tiles of one row.
        let pick: [__m512i; 3] = [
            index(|l| 4 * (l % 8).min(6) + l / 8),
            index(|l| 4 * (l % 8).min(6) + 2 + l / 8),
            index(|l| 4 * (l % 8).min(6) + 4 + l / 8),
        ];
        // Two tile rows side by side: lanes 0-6 from the first, 7-13 from the second (offset c0,
        // then c0 + 1 from lanes 8-14).
        let join = [
            index(|l| if l < 7 { l } else { 16 + (l - 7).min(6) }),
            index(|l| if l < 7 { 8 + l } else { 24 + (l - 7).min(6) }),
        ];
        let mut rr = r0;
        while rr < r1 {
            let group: [Option<(usize, usize)>; 2] =
                array_of(|k| (rr + k < r1).then(|| ((rr + k) / plan.th, (rr + k) % plan.th)));
            for ci in 0..g.c_in {
                let e: [[__m512; 6]; 6] = array_of(|i| {
                    let rows: [(__m512, __m512); 2] = array_of(|k| {
                        let p = match group[k] {
                            Some((b, ty)) => patches.row_of(ci, b, ty, i),
                            None => patches.zero.as_ptr(),
                        };
                        // SAFETY: the unmasked lanes read columns 0..w of a row of w floats.
                        (
                            _mm512_maskz_loadu_ps(low_mask, p.wrapping_sub(1)),
                            _mm512_maskz_loadu_ps(high_mask, p.wrapping_add(15)),
                        )
                    });
                    let mut d = [_mm512_setzero_ps(); 6];
                    for q in 0..3 {
                        let first = _mm512_permutex2var_ps(rows[0].0, pick[q], rows[0].1);
                        let second = _mm512_permutex2var_ps(rows[1].0, pick[q], rows[1].1);
                        d[2 * q] = _mm512_permutex2var_ps(first, join[0], second);
                        d[2 * q + 1] = _mm512_permutex2var_ps(first, join[1], second);
                    }
                    bt6(d)
                });
                let dst = v.as_mut_ptr().add(ci * tiles_pad + (rr - r0) * 7);
                for j in 0..6 {
                    let col = bt6([e[0][j], e[1][j], e[2][j], e[3][j], e[4][j], e[5][j]]);
                    for (k, val) in col.iter().enumerate() {
                        // SAFETY: lanes (rr - r0) * 7 .. + 16 lie inside tiles_pad (asserted).
                        _mm512_storeu_ps(dst.add((k * 6 + j) * pos_stride), *val);
                    }
                }
            }
            rr += 2;
        }
    }
}

/// [`output`] on maps seven F(4x4) tiles wide: two tile rows per vector; each output row's 28
/// columns are two vectors, put in order by two levels of permutes.
///
/// # Safety
/// As [`output`], with `plan.tw == 7`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn output_f4_seven(
    g: &ConvGeom,
    plan: &Plan,
    m: &[f32],
    bias: Option<&[f32]>,
    r0: usize,
    r1: usize,
    tiles_pad: usize,
    ys: &mut [f32],
) {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        let (h, w) = (g.h, g.w);
        let pos_stride = pos_stride(g.c_out, tiles_pad);
        assert!(
            m.len() >= 36 * pos_stride
                && 7 * (r1 - r0 - 1) - 7 * ((r1 - r0 - 1) % 2) + 16 <= tiles_pad
        );
        assert!(ys.len() >= (r1 - 1) / plan.th * g.out_size() + g.out_size());
        let out = ys.as_mut_ptr();
        let masks: [__mmask16; 2] = [0xFFFF, ((1u32 << (w - 16)) - 1) as __mmask16];
        let index = |f: fn(usize) -> usize| _mm512_loadu_epi32(lanes(f).as_ptr());
        // Lane 2tx + c' <- column c' of the first source, c' = 1 of the second, tile tx of tile row k.
        let pairs = [
            index(|l| 16 * (l % 2) + (l / 2).min(6)),
            index(|l| 16 * (l % 2) + 7 + (l / 2).min(6)),
        ];
        // A row's columns 16 h + 4tx' + c (tile 4 h + tx') from those: c < 2 the first, else the second.
        let halves = [
            index(|l| 16 * ((l % 4) / 2) + 2 * (l / 4) + l % 2),
            index(|l| 16 * ((l % 4) / 2) + (8 + 2 * (l / 4)).min(12) + l % 2),
        ];
        for co in 0..g.c_out {
            let bv = _mm512_set1_ps(bias.map_or(0.0, |b| b[co]));
            let mut rr = r0;
            while rr < r1 {
                let mbase = m.as_ptr().add(co * tiles_pad + (rr - r0) * 7);
                // SAFETY: lanes (rr - r0) * 7 .. + 16 of the M rows lie inside tiles_pad (asserted).
                let s: [[__m512; 4]; 6] = array_of(|j| {
                    at6(array_of(|k| _mm512_loadu_ps(mbase.add((k * 6 + j) * pos_stride))))
                });
                for i in 0..4 {
                    let y = at6(array_of(|j| s[j][i])).map(|v| _mm512_add_ps(v, bv));
                    for (k, pair) in pairs.iter().enumerate() {
                        if rr + k >= r1 {
                            break;
                        }
                        let (b, ty) = ((rr + k) / plan.th, (rr + k) % plan.th);
                        let oy = 4 * ty + i;
                        if oy >= h {
                            continue;
                        }
                        let low = _mm512_permutex2var_ps(y[0], *pair, y[1]);
                        let high = _mm512_permutex2var_ps(y[2], *pair, y[3]);
                        let row = out.add((b * g.c_out + co) * h * w + oy * w);
                        for (half, index) in halves.iter().enumerate() {
                            // SAFETY: masked to columns 0..w of an output row inside the map.
                            _mm512_mask_storeu_ps(
                                row.add(16 * half),
                                masks[half],
                                _mm512_permutex2var_ps(low, *index, high),
                            );
                        }
                    }
                }
                rr += 2;
            }
        }
    }
}
