//! Winograd minimal filtering F(2x2, 3x3) for 3x3 stride-1 padding-1 one-group convolutions
//! (the dense 3x3 forward and backward-data passes of the usual networks).
//!
//! Why: the direct kernel (`conv3x3.rs`) already runs near this CPU's FMA peak, so the only way
//! to make these passes faster is fewer multiplications. F(2x2, 3x3) computes a 2x2 output tile
//! from a 4x4 input tile with 16 multiplications per input-output channel pair instead of 36;
//! the transforms (additions only, coefficients 0, +-1 and 1/2) cost O(C) per tile and are
//! amortised over the other channel count.
//!
//! Per band of tiles: the input transform `V = B^T d B` (per tile and input channel), then for
//! each of the 16 transform positions one GEMM `M[p] = U[p] V[p]` (`[C_out x C_in] x
//! [C_in x tiles]`, `U = G g G^T` the transformed weights) on register tiles of 8 output
//! channels x 32 tiles in AVX-512 where the CPU has it, else of 4 x 16 in AVX2/FMA, then the
//! output transform `Y = A^T M A`. On maps four tiles wide (13-15 for F(4x4), 7-8 for F(2x2))
//! and seven F(4x4) tiles wide (25-28) the AVX-512 path runs both transforms in 16 lanes, four
//! or two tile rows per vector ([`sixteen_lanes`]).
//!
//! F(4x4, 3x3) cuts the multiplications by 4x instead of 2.25x and moves fewer transformed
//! values per output, but its transforms have coefficients up to 8 (1/24 in the weights') and
//! lose about four more bits in f32; it runs on maps of [`F4_MIN_SIDE`] and more, where it
//! wins. F(2x2, 3x3)'s error stays within a few ulps of the sums it forms (see the
//! tests' tolerance).
//!
//! Each output element depends only on its own tile, summed over input channels in a fixed
//! order inside one register tile: results are bit-identical whatever the banding or the
//! thread count.
use super::geometry::ConvGeom;
use super::scratch::Scratch;
#[cfg(target_arch = "x86_64")]
use super::simd::{array_of, copy_lanes, deinterleave, interleave, store_lanes};
use rayon::prelude::*;

#[doc(hidden)]
pub mod lanes;
#[doc(hidden)]
pub mod plan;
mod sixteen_lanes;

#[cfg(target_arch = "x86_64")]
use lanes::{at6, at_f2_lanes, bt4, bt4_row, bt6};
#[cfg(target_arch = "x86_64")]
use plan::PatchRows;
use plan::{pos_stride, tiles_pad, Plan, Tile, NV};

/// Output channels per block of the transformed weights: one AVX-512 register tile, or two
/// AVX2 ones of [`HALF`] rows.
const MR: usize = 8;
/// Output channels per AVX2 register tile.
const HALF: usize = 4;
/// Tiles per AVX-512 register tile: two 16-lane vectors.
const NV_512: usize = 32;
/// Tiles per wide AVX2 register tile ([`register_tile_24`]): three 8-lane vectors.
const NV_24: usize = 24;
/// Whether [`winograd_forward`] handles `g` on this CPU (the same geometries as the direct
/// kernel: 3x3, stride 1, padding 1, no dilation, one group; AVX2 and FMA present).
pub fn applies(g: &ConvGeom) -> bool {
    super::conv3x3::applies(g)
}

/// Channel counts from which Winograd beats the direct kernel: its input transform is
/// amortised over the output channels and its output transform over the input channels, so
/// both must be large enough; stems (one to four input channels) lose. Measured with
/// `cargo run --release -p dualstream-core --example conv_winograd` (see docs/performance.md).
pub const MIN_CHANNELS: usize = 16;
/// The larger of the two channel counts must reach this as well (16->16 does not gain).
pub const MIN_MAX_CHANNELS: usize = 32;

/// Whether the dense 3x3 convolutions of `g` should run as Winograd rather than the direct
/// kernel (see [`MIN_CHANNELS`]).
pub fn wins(g: &ConvGeom) -> bool {
    applies(g) && g.c_in.min(g.c_out) >= MIN_CHANNELS && g.c_in.max(g.c_out) >= MIN_MAX_CHANNELS
}

/// `y[b] = conv3x3(x[b], weight) + bias` for every sample, by F(2x2, 3x3); overwrites `y`.
/// Panics unless [`applies`] holds.
pub fn winograd_forward(
    g: &ConvGeom,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    forward_with(g, x, weight, bias, y, gemm_avx512());
}

/// [`winograd_forward`] with the position GEMMs in AVX-512 register tiles (`wide`, which
/// [`gemm_avx512`] must allow) or in AVX2 ones: the same bits either way.
#[doc(hidden)]
pub fn forward_with(
    g: &ConvGeom,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    wide: bool,
) {
    assert!(applies(g), "winograd_forward: geometry {g:?} or CPU not supported");
    let batch = x.len() / g.in_size();
    assert_eq!(x.len(), batch * g.in_size(), "winograd_forward: input length");
    assert_eq!(y.len(), batch * g.out_size(), "winograd_forward: output length");
    assert_eq!(weight.len(), g.weight_len(), "winograd_forward: weight length");
    if let Some(b) = bias {
        assert_eq!(b.len(), g.c_out, "winograd_forward: bias length");
    }
    if batch == 0 {
        return;
    }
    let tile = if f4_wins(g) { Tile::F4 } else { Tile::F2 };
    let u = match tile {
        Tile::F2 => transform_weights(g, weight),
        Tile::F4 => transform_weights_f4(g, weight),
    };
    let plan = Plan::new(g, batch, tile);
    let positions = tile.positions();
    let v_len = positions * pos_stride(g.c_in, plan.max_tiles_pad);
    let m_len = positions * pos_stride(g.c_out, plan.max_tiles_pad);
    let row_len = row_buffer_len(g);
    let spc = plan.samples_per_chunk;
    y.par_chunks_mut(spc * g.out_size()).zip(x.par_chunks(spc * g.in_size())).for_each_init(
        || (Scratch::take(v_len), Scratch::take(m_len), Scratch::take(row_len)),
        |(v, m, rows), (ys, xs)| {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: applies() checked AVX2 and FMA, gemm_avx512() AVX-512; v, m and rows
            // have the lengths the chunk functions index (sized from the same plan).
            unsafe {
                if wide {
                    chunk_avx512(tile, g, &plan, xs, &u, bias, ys, v, m, rows)
                } else {
                    chunk_avx2(tile, g, &plan, xs, &u, bias, ys, v, m, rows)
                }
            }
        },
    );
}

/// Whether the position GEMMs run AVX-512 register tiles: on CPUs with 512-bit FMA units
/// they do twice the work per instruction of the AVX2 tiles. The sums are the same
/// (each output's FMAs in input-channel order), so the bits are too.
#[doc(hidden)]
pub fn gemm_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::simd::simd() == super::simd::Simd::Avx512
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `U = G g G^T` for every (output, input) channel pair, laid out
/// `[16, ceil(C_out/MR), C_in, MR]` (zero rows past `C_out`) so that a register tile reads its
/// MR weights of one position and input channel from one place.
fn transform_weights(g: &ConvGeom, weight: &[f32]) -> Scratch {
    let blocks = g.c_out.div_ceil(MR);
    let mut u = Scratch::zeroed(16 * blocks * g.c_in * MR);
    let pos_stride = blocks * g.c_in * MR;
    for co in 0..g.c_out {
        let (b, r) = (co / MR, co % MR);
        for ci in 0..g.c_in {
            let k = &weight[(co * g.c_in + ci) * 9..][..9];
            // G k: 4 rows of 3, G = [[1,0,0],[1/2,1/2,1/2],[1/2,-1/2,1/2],[0,0,1]].
            let mut gk = [[0.0f32; 3]; 4];
            for j in 0..3 {
                let (k0, k1, k2) = (k[j], k[3 + j], k[6 + j]);
                gk[0][j] = k0;
                gk[1][j] = 0.5 * (k0 + k1 + k2);
                gk[2][j] = 0.5 * (k0 - k1 + k2);
                gk[3][j] = k2;
            }
            for (i, row) in gk.iter().enumerate() {
                let t = [
                    row[0],
                    0.5 * (row[0] + row[1] + row[2]),
                    0.5 * (row[0] - row[1] + row[2]),
                    row[2],
                ];
                for (j, &val) in t.iter().enumerate() {
                    u[(i * 4 + j) * pos_stride + (b * g.c_in + ci) * MR + r] = val;
                }
            }
        }
    }
    u
}

/// [`chunk`] with AVX2 register tiles.
///
/// # Safety
/// The CPU must have AVX2, FMA (see `kernels::simd`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn chunk_avx2(
    tile: Tile,
    g: &ConvGeom,
    plan: &Plan,
    xs: &[f32],
    u: &[f32],
    bias: Option<&[f32]>,
    ys: &mut [f32],
    v: &mut [f32],
    m: &mut [f32],
    rows: &mut [f32],
) {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe { chunk::<false>(tile, g, plan, xs, u, bias, ys, v, m, rows) }
}

/// [`chunk`] with AVX-512 register tiles, and the transforms in 16 lanes where
/// [`sixteen_lanes::applies`].
///
/// # Safety
/// The CPU must have AVX-512F, AVX2, FMA (see `kernels::simd`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn chunk_avx512(
    tile: Tile,
    g: &ConvGeom,
    plan: &Plan,
    xs: &[f32],
    u: &[f32],
    bias: Option<&[f32]>,
    ys: &mut [f32],
    v: &mut [f32],
    m: &mut [f32],
    rows: &mut [f32],
) {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe { chunk::<true>(tile, g, plan, xs, u, bias, ys, v, m, rows) }
}

/// One chunk of whole samples (`xs`, `ys`), band by band, with `tile`'s transforms; `WIDE`
/// picks the AVX-512 register tiles.
///
/// # Safety
/// Vector intrinsics, inlined into the kernels compiled for them: the CPU must have AVX2
/// and FMA (AVX-512F for 512-bit vectors).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn chunk<const WIDE: bool>(
    tile: Tile,
    g: &ConvGeom,
    plan: &Plan,
    xs: &[f32],
    u: &[f32],
    bias: Option<&[f32]>,
    ys: &mut [f32],
    v: &mut [f32],
    m: &mut [f32],
    rows: &mut [f32],
) {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        let samples = xs.len() / g.in_size();
        let total_rows = samples * plan.th;
        // The transforms in 16 lanes where they apply (AVX-512 only, as the register tiles).
        let sixteen = WIDE && sixteen_lanes::applies(tile, g, plan);
        let mut r0 = 0;
        while r0 < total_rows {
            let r1 = (r0 + plan.rows_per_band).min(total_rows);
            let tiles_pad = tiles_pad((r1 - r0) * plan.tw);
            if sixteen {
                sixteen_lanes::input(tile, g, plan, xs, r0, r1, tiles_pad, v, rows);
            } else {
                input_transform(tile, g, plan, xs, r0, r1, tiles_pad, v, rows);
            }
            position_gemms::<WIDE>(g, u, v, (r1 - r0) * plan.tw, tiles_pad, m, tile.positions());
            match tile {
                _ if sixteen => {
                    sixteen_lanes::output(tile, g, plan, m, bias, r0, r1, tiles_pad, ys)
                }
                Tile::F2 => output_transform(g, plan, m, bias, r0, r1, tiles_pad, ys),
                Tile::F4 => output_transform_f4(g, plan, m, bias, r0, r1, tiles_pad, ys),
            }
            r0 = r1;
        }
    }
}

/// Length of the per-task row buffer of [`input_transform`]: one zero row (the rows above
/// and below the map).
fn row_buffer_len(g: &ConvGeom) -> usize {
    g.w
}

/// `V[p][ci][t] = (B^T d B)[p]` for the band's tiles `t` (tile rows `r0..r1` of the chunk),
/// `d` the `tile + 2` square input patch of tile `t` (zero outside the map), by `tile`'s
/// transform ([`tile8_f2`] or [`tile8_f4`]) eight tiles at a time. Lanes past the band's tiles
/// are left as they are: no output reads them. The 8 lanes run past the tile row; those lanes
/// are overwritten by the next row (rows go in order) or land in padding lanes.
///
/// # Safety
/// Vector intrinsics, inlined into the kernels compiled for them: the CPU must have AVX2
/// and FMA (AVX-512F for 512-bit vectors).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn input_transform(
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
        let tw = plan.tw;
        let patches = PatchRows::new(g, plan, xs, r1, tile.size(), rows);
        assert!(v.len() >= tile.positions() * pos_stride(g.c_in, tiles_pad));
        assert!((r1 - r0 - 1) * tw + tw.div_ceil(8) * 8 <= tiles_pad);
        let pos_stride = pos_stride(g.c_in, tiles_pad);
        let paired = pairs_tile_rows(plan);
        for ci in 0..g.c_in {
            if ci + 1 < g.c_in {
                patches.prefetch(ci + 1, r0, r1);
            }
            let mut rr = r0;
            while rr < r1 {
                // Rows past the patch (F(2x2) reads 4 of the 6) are not read.
                let rp: [*const f32; 6] = array_of(|i| patches.row(ci, rr, i));
                let vbase = v.as_mut_ptr().add(ci * tiles_pad + (rr - r0) * tw);
                // SAFETY (all three calls): the loads read columns in 0..w of rows of length w
                // (masked at the edges); the stores write lanes (rr - r0) * tw + tx.. + 8 of V
                // rows, inside tiles_pad (asserted above).
                if paired {
                    // Lanes 4-7 are the next tile row's four tiles (this row's again at the end).
                    let next: [*const f32; 6] =
                        if rr + 1 < r1 { array_of(|i| patches.row(ci, rr + 1, i)) } else { rp };
                    match tile {
                        Tile::F2 => tile8_f2(&patches, (&rp, -1), (&next, -1), vbase, pos_stride),
                        Tile::F4 => tile8_f4(&patches, (&rp, -1), (&next, -1), vbase, pos_stride),
                    }
                    rr += 2;
                    continue;
                }
                for tx in (0..tw).step_by(8) {
                    let ix = (tile.size() * tx) as i32 - 1;
                    match tile {
                        Tile::F2 => {
                            tile8_f2(&patches, (&rp, ix), (&rp, ix + 8), vbase.add(tx), pos_stride)
                        }
                        Tile::F4 => {
                            tile8_f4(&patches, (&rp, ix), (&rp, ix + 16), vbase.add(tx), pos_stride)
                        }
                    }
                }
                rr += 1;
            }
        }
    }
}

/// Whether the input transform runs two tile rows per eight lanes: rows of four tiles (maps
/// 13-16 wide in F(4x4), 7-8 wide in F(2x2)) would fill half of the lanes. F(4x4)'s output
/// transform pairs them as well.
#[doc(hidden)]
pub fn pairs_tile_rows(plan: &Plan) -> bool {
    plan.tw == 4
}

/// F(2x2, 3x3) for 8 tiles, the 4 of `first` (or all 8 when `second` continues its row 8
/// columns on) whose patches start at column `ia` of rows `ra[..4]`, then those of `second`,
/// `B^T = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]]`, all in registers: the 4 input rows at
/// columns `ix..` and `ix+2..` (one vector of each half), `B^T` across the rows, even/odd split
/// of the columns, `B` across the columns; position `p` goes to `dst + p * pos_stride`. (A version
/// staging rows through memory stalled on store forwarding: unaligned re-reads of
/// just-written vectors.)
///
/// # Safety
/// Vector intrinsics, inlined into the kernels compiled for them: the CPU must have AVX2
/// and FMA (AVX-512F for 512-bit vectors).
/// Every pointer must be valid for the reads and writes the body makes through it.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tile8_f2(
    patches: &PatchRows,
    first: (&[*const f32; 6], i32),
    second: (&[*const f32; 6], i32),
    dst: *mut f32,
    pos_stride: usize,
) {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        use std::arch::x86_64::*;
        let ((ra, ia), (rb, ib)) = (first, second);
        let mut d = [[_mm256_setzero_ps(); 4]; 4];
        for (i, di) in d.iter_mut().enumerate() {
            let (pa, pb) = (ra[i], rb[i]);
            *di = [
                patches.load(pa, ia),
                patches.load(pb, ib),
                patches.load(pa, ia + 2),
                patches.load(pb, ib + 2),
            ];
        }
        for k in 0..4 {
            let c: [__m256; 4] = array_of(|n| bt4_row(k, [d[0][n], d[1][n], d[2][n], d[3][n]]));
            let (e0, o0) = deinterleave(c[0], c[1]);
            let (e1, o1) = deinterleave(c[2], c[3]);
            let dst = dst.add(4 * k * pos_stride);
            for (j, val) in bt4([e0, o0, e1, o1]).iter().enumerate() {
                _mm256_storeu_ps(dst.add(j * pos_stride), *val);
            }
        }
    }
}

/// `M[p] = U[p] V[p]` for the `positions` (16 or 36) positions: `[C_out x C_in] x [C_in x
/// lanes]`, `lanes` the band's `tiles` rounded up to whole vectors. Blocks of [`MR`] output
/// channels run as one AVX-512 register tile of 32 tiles (`WIDE`) or as two AVX2 ones of 24;
/// what is left of the lanes runs as AVX2 tiles of 16, then of 8 (14x14 maps have 49 tiles per
/// sample, which whole 16- or 32-tile steps would pad by a third).
///
/// # Safety
/// Vector intrinsics, inlined into the kernels compiled for them: the CPU must have AVX2
/// and FMA (AVX-512F for 512-bit vectors).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn position_gemms<const WIDE: bool>(
    g: &ConvGeom,
    u: &[f32],
    v: &[f32],
    tiles: usize,
    tiles_pad: usize,
    m: &mut [f32],
    positions: usize,
) {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        let blocks = g.c_out.div_ceil(MR);
        let (c_in, c_out) = (g.c_in, g.c_out);
        let lanes = tiles.div_ceil(8) * 8;
        let (v_stride, m_stride) = (pos_stride(c_in, tiles_pad), pos_stride(c_out, tiles_pad));
        assert!(v.len() >= positions * v_stride && m.len() >= positions * m_stride);
        assert!(
            u.len() == positions * blocks * c_in * MR
                && tiles_pad.is_multiple_of(NV)
                && lanes <= tiles_pad
        );
        let wide = if WIDE { lanes / NV_512 * NV_512 } else { 0 };
        let triples = wide + (lanes - wide) / NV_24 * NV_24;
        let sixteens = triples + (lanes - triples) / NV * NV;
        for p in 0..positions {
            let vp = v.as_ptr().add(p * v_stride);
            let ub = |b: usize| u.as_ptr().add((p * blocks + b) * c_in * MR);
            let m0 = m.as_mut_ptr();
            let mp = |b: usize| m0.add(p * m_stride + b * MR * tiles_pad);
            let rows = |b: usize| (c_out - b * MR).min(MR);
            // SAFETY: the register tiles read V rows ci < c_in at lanes below lanes <= tiles_pad,
            // U's blocks b < blocks of c_in*MR floats, and write M rows b*MR+r < c_out at the
            // same lanes: all inside the slices (asserted above).
            for b in 0..blocks {
                // A block cut short by c_out may have no second half: its M pointer may then lie
                // past the slice, so it is formed with wrapping_add and never written through.
                let halves = [
                    (ub(b), mp(b), rows(b).min(HALF)),
                    (
                        ub(b).add(HALF),
                        mp(b).wrapping_add(HALF * tiles_pad),
                        rows(b).saturating_sub(HALF),
                    ),
                ];
                for t0 in (0..wide).step_by(NV_512) {
                    register_tile_avx512(
                        c_in,
                        ub(b),
                        vp.add(t0),
                        tiles_pad,
                        mp(b).add(t0),
                        rows(b),
                    );
                }
                for t0 in (wide..triples).step_by(NV_24) {
                    for &(uh, mh, mr) in halves.iter().filter(|h| h.2 > 0) {
                        register_tile_24(c_in, uh, vp.add(t0), tiles_pad, mh.add(t0), mr);
                    }
                }
                for t0 in (triples..sixteens).step_by(NV) {
                    for &(uh, mh, mr) in halves.iter().filter(|h| h.2 > 0) {
                        register_tile(c_in, uh, vp.add(t0), tiles_pad, mh.add(t0), mr);
                    }
                }
                if lanes > sixteens {
                    register_tile_narrow(
                        c_in,
                        [halves[0].0, halves[1].0],
                        vp.add(sixteens),
                        tiles_pad,
                        [halves[0].1.add(sixteens), halves[1].1.wrapping_add(sixteens)],
                        [halves[0].2, halves[1].2],
                    );
                }
            }
        }
    }
}

/// One block's `mr[0] + mr[1] <= MR` output channels (two halves) x 8 tiles: the eight
/// accumulators of [`register_tile`] over half its lanes.
///
/// # Safety
/// Vector intrinsics, inlined into the kernels compiled for them: the CPU must have AVX2
/// and FMA (AVX-512F for 512-bit vectors).
/// Every pointer must be valid for the reads and writes the body makes through it.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::needless_range_loop)]
unsafe fn register_tile_narrow(
    c_in: usize,
    u: [*const f32; 2],
    v: *const f32,
    stride: usize,
    m: [*mut f32; 2],
    mr: [usize; 2],
) {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        use std::arch::x86_64::*;
        let mut acc = [[_mm256_setzero_ps(); HALF]; 2];
        let mut vr = v;
        let (mut u0, mut u1) = (u[0], u[1]);
        for _ in 0..c_in {
            let x = _mm256_loadu_ps(vr);
            for r in 0..HALF {
                acc[0][r] = _mm256_fmadd_ps(_mm256_broadcast_ss(&*u0.add(r)), x, acc[0][r]);
                acc[1][r] = _mm256_fmadd_ps(_mm256_broadcast_ss(&*u1.add(r)), x, acc[1][r]);
            }
            vr = vr.add(stride);
            u0 = u0.add(MR);
            u1 = u1.add(MR);
        }
        for i in 0..2 {
            for r in 0..mr[i] {
                _mm256_storeu_ps(m[i].add(r * stride), acc[i][r]);
            }
        }
    }
}

/// `mr <= HALF` output channels (their weights at `u`, `u + 1`, .. of each [`MR`] group) x
/// `NV` tiles, summed over the input channels in order. Eight named accumulators: with twelve
/// (4 x 24) LLVM spilled one to the stack inside the loop.
///
/// # Safety
/// Vector intrinsics, inlined into the kernels compiled for them: the CPU must have AVX2
/// and FMA (AVX-512F for 512-bit vectors).
/// Every pointer must be valid for the reads and writes the body makes through it.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn register_tile(
    c_in: usize,
    u: *const f32,
    v: *const f32,
    stride: usize,
    m: *mut f32,
    mr: usize,
) {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        use std::arch::x86_64::*;
        let z = _mm256_setzero_ps();
        let (mut a00, mut a01, mut a10, mut a11) = (z, z, z, z);
        let (mut a20, mut a21, mut a30, mut a31) = (z, z, z, z);
        let mut vr = v;
        let mut ur = u;
        for _ in 0..c_in {
            let x0 = _mm256_loadu_ps(vr);
            let x1 = _mm256_loadu_ps(vr.add(8));
            let w = _mm256_broadcast_ss(&*ur);
            a00 = _mm256_fmadd_ps(w, x0, a00);
            a01 = _mm256_fmadd_ps(w, x1, a01);
            let w = _mm256_broadcast_ss(&*ur.add(1));
            a10 = _mm256_fmadd_ps(w, x0, a10);
            a11 = _mm256_fmadd_ps(w, x1, a11);
            let w = _mm256_broadcast_ss(&*ur.add(2));
            a20 = _mm256_fmadd_ps(w, x0, a20);
            a21 = _mm256_fmadd_ps(w, x1, a21);
            let w = _mm256_broadcast_ss(&*ur.add(3));
            a30 = _mm256_fmadd_ps(w, x0, a30);
            a31 = _mm256_fmadd_ps(w, x1, a31);
            vr = vr.add(stride);
            ur = ur.add(MR);
        }
        let rows = [[a00, a01], [a10, a11], [a20, a21], [a30, a31]];
        for (r, a) in rows.iter().enumerate().take(mr) {
            _mm256_storeu_ps(m.add(r * stride), a[0]);
            _mm256_storeu_ps(m.add(r * stride + 8), a[1]);
        }
    }
}

/// [`register_tile`] over [`NV_24`] tiles: `mr <= HALF` output channels, twelve accumulators.
/// The loop holds the twelve sums, the input channel's three V vectors and one broadcast
/// weight: all sixteen AVX2 registers. Each V vector is loaded once per input channel, so
/// the 12 FMAs take 7 loads (3 V, 4 broadcasts); with V as the FMAs' memory operands they
/// took 16, more than the two 256-bit loads a cycle of Zen 2 and 3 can issue in the 6 cycles
/// of the FMAs. Written in assembly: from intrinsics LLVM spills a sum to the stack inside
/// the loop. The same FMAs per output in input-channel order as [`register_tile`]
/// (`vfmadd231ps a, w, x` is `fma(w, x, a)`): the same bits.
///
/// # Safety
/// AVX2 and FMA must be present; `v` rows of 24 floats at `stride` for `c_in > 0` channels,
/// `u` `c_in * MR` floats, `m` rows `r < mr` of 24 floats at `stride`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn register_tile_24(
    c_in: usize,
    u: *const f32,
    v: *const f32,
    stride: usize,
    m: *mut f32,
    mr: usize,
) {
    // SAFETY: the caller keeps this function's `# Safety` contract; the loop reads U at
    // `u + ci * MR + r` (r < HALF) and V at `v + ci * stride + 0..24` for ci < c_in.
    unsafe {
        use std::arch::asm;
        use std::arch::x86_64::*;
        assert!(c_in > 0, "register_tile_24: no input channels");
        let z = _mm256_setzero_ps();
        let (mut a00, mut a01, mut a02, mut a10, mut a11, mut a12) = (z, z, z, z, z, z);
        let (mut a20, mut a21, mut a22, mut a30, mut a31, mut a32) = (z, z, z, z, z, z);
        asm!(
            "2:",
            "vmovups {x0}, ymmword ptr [{v}]",
            "vmovups {x1}, ymmword ptr [{v} + 32]",
            "vmovups {x2}, ymmword ptr [{v} + 64]",
            "vbroadcastss {w}, dword ptr [{u}]",
            "vfmadd231ps {a00}, {w}, {x0}",
            "vfmadd231ps {a01}, {w}, {x1}",
            "vfmadd231ps {a02}, {w}, {x2}",
            "vbroadcastss {w}, dword ptr [{u} + 4]",
            "vfmadd231ps {a10}, {w}, {x0}",
            "vfmadd231ps {a11}, {w}, {x1}",
            "vfmadd231ps {a12}, {w}, {x2}",
            "vbroadcastss {w}, dword ptr [{u} + 8]",
            "vfmadd231ps {a20}, {w}, {x0}",
            "vfmadd231ps {a21}, {w}, {x1}",
            "vfmadd231ps {a22}, {w}, {x2}",
            "vbroadcastss {w}, dword ptr [{u} + 12]",
            "vfmadd231ps {a30}, {w}, {x0}",
            "vfmadd231ps {a31}, {w}, {x1}",
            "vfmadd231ps {a32}, {w}, {x2}",
            "add {u}, {u_step}",
            "add {v}, {v_step}",
            "dec {n}",
            "jnz 2b",
            u = inout(reg) u => _,
            v = inout(reg) v => _,
            n = inout(reg) c_in => _,
            u_step = const MR * 4,
            v_step = in(reg) stride * 4,
            w = out(ymm_reg) _,
            x0 = out(ymm_reg) _,
            x1 = out(ymm_reg) _,
            x2 = out(ymm_reg) _,
            a00 = inout(ymm_reg) a00,
            a01 = inout(ymm_reg) a01,
            a02 = inout(ymm_reg) a02,
            a10 = inout(ymm_reg) a10,
            a11 = inout(ymm_reg) a11,
            a12 = inout(ymm_reg) a12,
            a20 = inout(ymm_reg) a20,
            a21 = inout(ymm_reg) a21,
            a22 = inout(ymm_reg) a22,
            a30 = inout(ymm_reg) a30,
            a31 = inout(ymm_reg) a31,
            a32 = inout(ymm_reg) a32,
            options(nostack, readonly),
        );
        let rows = [[a00, a01, a02], [a10, a11, a12], [a20, a21, a22], [a30, a31, a32]];
        for (r, a) in rows.iter().enumerate().take(mr) {
            for (k, val) in a.iter().enumerate() {
                _mm256_storeu_ps(m.add(r * stride + 8 * k), *val);
            }
        }
    }
}

/// `mr <= MR` output channels x [`NV_512`] tiles in 16 accumulators, summed over the input
/// channels in order (the same FMAs per output as [`register_tile`]).
///
/// # Safety
/// AVX-512F must be enabled in the caller; `v` rows of 32 floats at `stride` for `c_in`
/// channels, `u` `c_in * MR` floats, `m` rows `r < mr` of 32 floats at `stride`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn register_tile_avx512(
    c_in: usize,
    u: *const f32,
    v: *const f32,
    stride: usize,
    m: *mut f32,
    mr: usize,
) {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        use std::arch::x86_64::*;
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        let mut vr = v;
        let mut ur = u;
        for _ in 0..c_in {
            let x0 = _mm512_loadu_ps(vr);
            let x1 = _mm512_loadu_ps(vr.add(16));
            for (r, a) in acc.iter_mut().enumerate() {
                let w = _mm512_set1_ps(*ur.add(r));
                a[0] = _mm512_fmadd_ps(w, x0, a[0]);
                a[1] = _mm512_fmadd_ps(w, x1, a[1]);
            }
            vr = vr.add(stride);
            ur = ur.add(MR);
        }
        for (r, a) in acc.iter().enumerate().take(mr) {
            _mm512_storeu_ps(m.add(r * stride), a[0]);
            _mm512_storeu_ps(m.add(r * stride + 16), a[1]);
        }
    }
}

/// Tile columns per step of [`output_transform`] (its row buffers live on the stack).
#[doc(hidden)]
pub const OUT_CHUNK: usize = 128;

/// `Y = A^T M A + bias` per tile and output channel, `A^T = [[1,1,1,0],[0,1,-1,-1]]`, written
/// to the 2x2 output pixels that lie inside the map: eight tiles at a time in registers, their
/// two output rows interleaved into row buffers and copied into the map.
///
/// # Safety
/// Vector intrinsics, inlined into the kernels compiled for them: the CPU must have AVX2
/// and FMA (AVX-512F for 512-bit vectors).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn output_transform(
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
        use std::arch::x86_64::*;
        let (h, w, tw) = (g.h, g.w, plan.tw);
        let pos_stride = pos_stride(g.c_out, tiles_pad);
        let mut out = [[0.0f32; 2 * OUT_CHUNK]; 2];
        for co in 0..g.c_out {
            let bv = _mm256_set1_ps(bias.map_or(0.0, |b| b[co]));
            for rr in r0..r1 {
                let (b, ty) = (rr / plan.th, rr % plan.th);
                let t0 = (rr - r0) * tw + co * tiles_pad;
                let mut tx0 = 0;
                while tx0 < tw {
                    let n = (tw - tx0).min(OUT_CHUNK);
                    // Whole vectors: lanes past the tile row read the next row's or padding lanes
                    // of M, and their results are not copied out.
                    let nv = n.div_ceil(8) * 8;
                    assert!(15 * pos_stride + t0 + tx0 + nv <= m.len());
                    let [o0, o1] = &mut out;
                    for tx in (0..nv).step_by(8) {
                        // SAFETY: lanes t0 + tx0 + tx .. + 8 of the 16 positions lie inside m
                        // (asserted above); the stores write 16 floats at 2 * tx < 2 * OUT_CHUNK.
                        let [y00, y01, y10, y11] =
                            at_f2(m.as_ptr().add(t0 + tx0 + tx), pos_stride, bv);
                        let [lo, hi] = interleave(y00, y01);
                        _mm256_storeu_ps(o0.as_mut_ptr().add(2 * tx), lo);
                        _mm256_storeu_ps(o0.as_mut_ptr().add(2 * tx + 8), hi);
                        let [lo, hi] = interleave(y10, y11);
                        _mm256_storeu_ps(o1.as_mut_ptr().add(2 * tx), lo);
                        _mm256_storeu_ps(o1.as_mut_ptr().add(2 * tx + 8), hi);
                    }
                    let x0 = 2 * tx0;
                    let nx = (w - x0).min(2 * n);
                    let plane = &mut ys[(b * g.c_out + co) * h * w..][..h * w];
                    for (a, o) in out.iter().enumerate() {
                        let oy = 2 * ty + a;
                        if oy < h {
                            let row = &mut plane[oy * w + x0..][..nx];
                            // SAFETY: `row` holds nx floats; `o` whole vectors past them.
                            copy_lanes(row.as_mut_ptr(), o, nx);
                        }
                    }
                    tx0 += n;
                }
            }
        }
    }
}

/// `A^T M A + bias` of F(2x2, 3x3) for the 8 tiles at `m` (position `p` at `m + p * pos_stride`):
/// the tiles' outputs `[y00, y01, y10, y11]`, summed in the order of the scalar formula (rows of
/// `A^T M`, then `A^T` across each row, then the bias).
///
/// # Safety
/// AVX2 must be present and 8 floats readable at `m + p * pos_stride` for `p < 16`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn at_f2(
    m: *const f32,
    pos_stride: usize,
    bias: std::arch::x86_64::__m256,
) -> [std::arch::x86_64::__m256; 4] {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        use std::arch::x86_64::*;
        let mm: [__m256; 16] = array_of(|p| _mm256_loadu_ps(m.add(p * pos_stride)));
        at_f2_lanes(mm, bias)
    }
}

/// Map side (height and width) from which [`winograd_forward`] runs F(4x4, 3x3) instead of
/// F(2x2, 3x3). Backward-data, both alternately in one process (2 threads), F(4x4)/F(2x2)
/// time: 0.79-0.81 on 32->32 28x28 (batch 128), 32x32 and 64x64 (batch 64); 1.8 on 8x8.
/// Below it only maps of four tiles a side run as F(4x4) (see [`f4_wins`]).
pub const F4_MIN_SIDE: usize = 24;

/// Whether `g` (for which [`wins`] holds) runs as F(4x4, 3x3): 2.25 multiplications per
/// output and channel pair instead of 4, and input/output transforms that move 36 values per
/// 16 outputs instead of 16 per 4. Its transforms have coefficients up to 8 (and 1/24 in the
/// weights'), so the rounding error grows (see the tests' tolerance). Small maps waste the
/// part of their 4x4 tiles that lies outside them; maps 13-16 a side (four tiles) run two
/// tile rows per eight lanes ([`pairs_tile_rows`]), which fills the lanes those maps would
/// leave empty. Maps 17-23 a side (five or six tiles) stay F(2x2).
#[doc(hidden)]
pub fn f4_wins(g: &ConvGeom) -> bool {
    g.h.min(g.w) >= F4_MIN_SIDE || (g.h.div_ceil(4) == 4 && g.w.div_ceil(4) == 4)
}

/// `U = G g G^T` of F(4x4, 3x3), `G = [[1/4,0,0],[-1/6,-1/6,-1/6],[-1/6,1/6,-1/6],
/// [1/24,1/12,1/6],[1/24,-1/12,1/6],[0,0,1]]`, computed in f64 and rounded once; laid out as
/// [`transform_weights`] does, with 36 positions.
fn transform_weights_f4(g: &ConvGeom, weight: &[f32]) -> Scratch {
    const G: [[f64; 3]; 6] = [
        [0.25, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];
    let blocks = g.c_out.div_ceil(MR);
    let mut u = Scratch::zeroed(36 * blocks * g.c_in * MR);
    let pos_stride = blocks * g.c_in * MR;
    for co in 0..g.c_out {
        let (b, r) = (co / MR, co % MR);
        for ci in 0..g.c_in {
            let k = &weight[(co * g.c_in + ci) * 9..][..9];
            // G k: 6 x 3.
            let mut gk = [[0.0f64; 3]; 6];
            for (i, row) in gk.iter_mut().enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = (0..3).map(|a| G[i][a] * k[a * 3 + j] as f64).sum();
                }
            }
            for (i, row) in gk.iter().enumerate() {
                for (j, grow) in G.iter().enumerate() {
                    let val: f64 = (0..3).map(|a| row[a] * grow[a]).sum();
                    u[(i * 6 + j) * pos_stride + (b * g.c_in + ci) * MR + r] = val as f32;
                }
            }
        }
    }
    u
}

/// 4x4 transpose inside each 128-bit half of four vectors (its own inverse).
///
/// # Safety
/// Vector intrinsics, inlined into the kernels compiled for them: the CPU must have AVX2
/// and FMA (AVX-512F for 512-bit vectors).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn transpose4_halves(a: [std::arch::x86_64::__m256; 4]) -> [std::arch::x86_64::__m256; 4] {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        use std::arch::x86_64::*;
        let t0 = _mm256_unpacklo_ps(a[0], a[1]);
        let t1 = _mm256_unpackhi_ps(a[0], a[1]);
        let t2 = _mm256_unpacklo_ps(a[2], a[3]);
        let t3 = _mm256_unpackhi_ps(a[2], a[3]);
        [
            _mm256_shuffle_ps::<0x44>(t0, t2),
            _mm256_shuffle_ps::<0xEE>(t0, t2),
            _mm256_shuffle_ps::<0x44>(t1, t3),
            _mm256_shuffle_ps::<0xEE>(t1, t3),
        ]
    }
}

/// 32 consecutive floats (8 groups of 4) -> 4 vectors, vector `j` holding element `j` of each
/// group in group order.
///
/// # Safety
/// Vector intrinsics, inlined into the kernels compiled for them: the CPU must have AVX2
/// and FMA (AVX-512F for 512-bit vectors).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn deinterleave4(a: [std::arch::x86_64::__m256; 4]) -> [std::arch::x86_64::__m256; 4] {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        use std::arch::x86_64::*;
        // Groups 0 and 4, 1 and 5, 2 and 6, 3 and 7 side by side, then a transpose per half.
        transpose4_halves([
            _mm256_permute2f128_ps::<0x20>(a[0], a[2]),
            _mm256_permute2f128_ps::<0x31>(a[0], a[2]),
            _mm256_permute2f128_ps::<0x20>(a[1], a[3]),
            _mm256_permute2f128_ps::<0x31>(a[1], a[3]),
        ])
    }
}

/// The inverse of [`deinterleave4`].
///
/// # Safety
/// Vector intrinsics, inlined into the kernels compiled for them: the CPU must have AVX2
/// and FMA (AVX-512F for 512-bit vectors).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn interleave4(c: [std::arch::x86_64::__m256; 4]) -> [std::arch::x86_64::__m256; 4] {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        use std::arch::x86_64::*;
        let b = transpose4_halves(c);
        [
            _mm256_permute2f128_ps::<0x20>(b[0], b[1]),
            _mm256_permute2f128_ps::<0x20>(b[2], b[3]),
            _mm256_permute2f128_ps::<0x31>(b[0], b[1]),
            _mm256_permute2f128_ps::<0x31>(b[2], b[3]),
        ]
    }
}

/// F(4x4, 3x3) for 8 tiles, all in registers: tiles 0-3 have their 6x6 patches at columns
/// `first.1`, `+ 4`, `+ 8`, `+ 12` of rows `first.0`, tiles 4-7 likewise in `second` (the next
/// four tiles of the same tile row, or those of the next tile row when a row has only four).
/// Per input row, the 32 columns of the eight patches' starts and those 4 further on, each
/// split into the tiles' column offsets 0-3 (then 4-5) by [`deinterleave4`]; `B` across the
/// columns, then `B^T` across the rows; position `p` goes to `dst + p * pos_stride`.
///
/// # Safety
/// Vector intrinsics, inlined into the kernels compiled for them: the CPU must have AVX2
/// and FMA (AVX-512F for 512-bit vectors).
/// Every pointer must be valid for the reads and writes the body makes through it.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::needless_range_loop)]
unsafe fn tile8_f4(
    patches: &PatchRows,
    first: (&[*const f32; 6], i32),
    second: (&[*const f32; 6], i32),
    dst: *mut f32,
    pos_stride: usize,
) {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        use std::arch::x86_64::*;
        let ((ra, ia), (rb, ib)) = (first, second);
        // e[i] = (d_i B) for input row i: B across the columns.
        let mut e = [[_mm256_setzero_ps(); 6]; 6];
        for (i, ei) in e.iter_mut().enumerate() {
            let (pa, pb) = (ra[i], rb[i]);
            let lo = deinterleave4([
                patches.load(pa, ia),
                patches.load(pa, ia + 8),
                patches.load(pb, ib),
                patches.load(pb, ib + 8),
            ]);
            let hi = deinterleave4([
                patches.load(pa, ia + 4),
                patches.load(pa, ia + 12),
                patches.load(pb, ib + 4),
                patches.load(pb, ib + 12),
            ]);
            *ei = bt6([lo[0], lo[1], lo[2], lo[3], hi[0], hi[1]]);
        }
        // B^T across the rows, column by column.
        for j in 0..6 {
            let col = bt6([e[0][j], e[1][j], e[2][j], e[3][j], e[4][j], e[5][j]]);
            for (k, val) in col.iter().enumerate() {
                _mm256_storeu_ps(dst.add((k * 6 + j) * pos_stride), *val);
            }
        }
    }
}

/// [`output_transform`] for F(4x4, 3x3): `Y = A^T M A + bias` per tile and output channel,
/// eight tiles at a time in registers, each output row's 32 values put back in column order by
/// [`interleave4`] and written where they lie inside the map.
///
/// # Safety
/// Vector intrinsics, inlined into the kernels compiled for them: the CPU must have AVX2
/// and FMA (AVX-512F for 512-bit vectors).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn output_transform_f4(
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
        use std::arch::x86_64::*;
        let (h, w, tw) = (g.h, g.w, plan.tw);
        let pos_stride = pos_stride(g.c_out, tiles_pad);
        assert!(m.len() >= 36 * pos_stride && (r1 - r0 - 1) * tw + tw.div_ceil(8) * 8 <= tiles_pad);
        assert!(ys.len() >= (r1 - 1) / plan.th * g.out_size() + g.out_size());
        let paired = pairs_tile_rows(plan);
        for co in 0..g.c_out {
            let bv = _mm256_set1_ps(bias.map_or(0.0, |b| b[co]));
            let mut rr = r0;
            while rr < r1 {
                let (b, ty) = (rr / plan.th, rr % plan.th);
                let mbase = m.as_ptr().add(co * tiles_pad + (rr - r0) * tw);
                let plane = ys.as_mut_ptr().add((b * g.c_out + co) * h * w);
                if paired {
                    // Lanes 0-3 are tile row rr's four tiles, lanes 4-7 row rr + 1's.
                    let s = at_rows_f4(mbase, pos_stride);
                    let second = (rr + 1 < r1).then(|| {
                        let (b2, ty2) = ((rr + 1) / plan.th, (rr + 1) % plan.th);
                        (ys.as_mut_ptr().add((b2 * g.c_out + co) * h * w), ty2)
                    });
                    let nx = w.min(16);
                    for (i, si) in s.iter().enumerate() {
                        let y = at6(*si);
                        let out = interleave4([
                            _mm256_add_ps(y[0], bv),
                            _mm256_add_ps(y[1], bv),
                            _mm256_add_ps(y[2], bv),
                            _mm256_add_ps(y[3], bv),
                        ]);
                        for (half, (plane, ty)) in
                            [(0, (plane, ty))].into_iter().chain(second.map(|p| (1, p)))
                        {
                            let oy = 4 * ty + i;
                            if oy < h {
                                // SAFETY: columns 0..nx of row oy lie inside the plane.
                                store_lanes(
                                    plane.add(oy * w),
                                    &[out[2 * half], out[2 * half + 1]],
                                    nx,
                                );
                            }
                        }
                    }
                    rr += 2;
                    continue;
                }
                for tx in (0..tw).step_by(8) {
                    // SAFETY: the 36 loads read lanes t..t+8 of M rows inside tiles_pad (asserted).
                    let s = at_rows_f4(mbase.add(tx), pos_stride);
                    let x0 = 4 * tx;
                    let nx = (w - x0).min(32);
                    for (i, si) in s.iter().enumerate() {
                        let oy = 4 * ty + i;
                        if oy >= h {
                            break;
                        }
                        let y = at6(*si);
                        let out = interleave4([
                            _mm256_add_ps(y[0], bv),
                            _mm256_add_ps(y[1], bv),
                            _mm256_add_ps(y[2], bv),
                            _mm256_add_ps(y[3], bv),
                        ]);
                        let dst = plane.add(oy * w + x0);
                        // SAFETY: columns x0..x0+nx of row oy lie inside the plane.
                        store_lanes(dst, &out, nx);
                    }
                }
                rr += 1;
            }
        }
    }
}

/// Rows of `A^T M` for the 8 tiles whose 36 positions start at `m` (position `p` at
/// `m + p * pos_stride`), column by column: `s[i][j]`.
///
/// # Safety
/// AVX2 must be present; the 36 loads of 8 lanes must be in bounds.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::needless_range_loop)]
unsafe fn at_rows_f4(m: *const f32, pos_stride: usize) -> [[std::arch::x86_64::__m256; 6]; 4] {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        use std::arch::x86_64::*;
        let mut s = [[_mm256_setzero_ps(); 6]; 4];
        for j in 0..6 {
            let col: [__m256; 6] = array_of(|k| _mm256_loadu_ps(m.add((k * 6 + j) * pos_stride)));
            let r = at6(col);
            for i in 0..4 {
                s[i][j] = r[i];
            }
        }
        s
    }
}
