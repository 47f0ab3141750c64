//! How a Winograd call groups its tiles into parallel chunks and bands, where a band's
//! transform positions lie, and how the input transforms read their patches.
use crate::kernels::geometry::ConvGeom;

/// Tiles per AVX2 register tile: two 8-lane vectors.
#[doc(hidden)]
pub const NV: usize = 16;
/// Target size in floats of one transform position's input block `V[p]` (`C_in x tiles`), so
/// that it stays in L1 while every output-channel block of that position's GEMM reads it, and
/// the band's 16 positions of `V` and `M` stay in L2.
pub(super) const BAND_FLOATS: usize = 4096;

/// The output tile: F(2x2, 3x3) (4x4 input tiles, 16 transform positions) or F(4x4, 3x3)
/// (6x6 input tiles, 36 positions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[doc(hidden)]
pub enum Tile {
    F2,
    F4,
}

impl Tile {
    pub(super) fn size(self) -> usize {
        match self {
            Tile::F2 => 2,
            Tile::F4 => 4,
        }
    }
    pub(super) fn positions(self) -> usize {
        (self.size() + 2) * (self.size() + 2)
    }
}

/// How the tiles of a call are grouped: `m x m` output tiles (`m` 2 or 4), `th x tw` per sample; a chunk (one
/// parallel task) is `samples_per_chunk` whole samples, processed in bands of `rows_per_band`
/// tile rows (counted over the chunk's samples one after another).
#[doc(hidden)]
pub struct Plan {
    pub(super) th: usize,
    pub(super) tw: usize,
    pub(super) samples_per_chunk: usize,
    pub(super) rows_per_band: usize,
    /// Tiles of the largest band, rounded up to whole register tiles.
    pub(super) max_tiles_pad: usize,
}

/// Chunks per call at least, when the batch allows it, so both cores get work on small maps.
pub(super) const MIN_CHUNKS: usize = 8;

impl Plan {
    #[doc(hidden)]
    pub fn new(g: &ConvGeom, batch: usize, tile: Tile) -> Plan {
        let (th, tw) = (g.h.div_ceil(tile.size()), g.w.div_ceil(tile.size()));
        let band_tiles = (BAND_FLOATS / g.c_in.max(g.c_out)).max(NV);
        let per_sample = th * tw;
        let (samples_per_chunk, rows_per_band) = if per_sample < band_tiles {
            // Small maps: several samples share a band so the vectors are not mostly padding.
            let spc = (band_tiles / per_sample).min(batch.div_ceil(MIN_CHUNKS)).max(1);
            (spc, spc * th)
        } else {
            (1, (band_tiles / tw).max(1))
        };
        let max_tiles_pad = tiles_pad(rows_per_band * tw);
        Plan { th, tw, samples_per_chunk, rows_per_band, max_tiles_pad }
    }
}

/// Floats from one transform position's block of `V` (`c` = `C_in`) or `M` (`c` = `C_out`)
/// to the next: `c` rows of `tiles_pad` lanes, plus one cache line. Without it the blocks lie
/// a multiple of 2 KB apart (`c` and `tiles_pad` are multiples of 16), the transforms' 16 or
/// 36 streams (one per position) fall into the same few L1 sets, and conflict misses took
/// half of the input transform's time.
#[doc(hidden)]
pub fn pos_stride(c: usize, tiles_pad: usize) -> usize {
    c * tiles_pad + SKEW
}

/// One cache line, in floats.
pub(super) const SKEW: usize = 16;

/// Lanes of a band's `V` and `M` rows: the band's tiles plus room for the whole-vector loops
/// of the last tile row (up to 7 lanes past it), rounded up to whole register tiles.
#[doc(hidden)]
pub fn tiles_pad(tiles: usize) -> usize {
    (tiles + 8).div_ceil(NV) * NV
}

/// What both input transforms read a band's input patches through: the input row `i` of a
/// tile row's patch (a zero row outside the map), and masked loads of 8 columns (zero outside).
#[cfg(target_arch = "x86_64")]
#[doc(hidden)]
pub struct PatchRows<'a> {
    pub(super) g: &'a ConvGeom,
    pub(super) plan: &'a Plan,
    pub(super) xs: &'a [f32],
    pub(super) zero: &'a [f32],
    /// Output tile side: patch row `i` of tile row `ty` is input row `tile * ty + i - 1`.
    pub(super) tile: usize,
    pub(super) lane: std::arch::x86_64::__m256i,
    pub(super) width: std::arch::x86_64::__m256i,
}

#[cfg(target_arch = "x86_64")]
impl<'a> PatchRows<'a> {
    /// Checks that `xs` holds the band's samples; `zero` becomes the zero row.
    ///
    /// # Safety
    /// Vector intrinsics, inlined into the kernels compiled for them: the CPU must have AVX2
    /// and FMA (AVX-512F for 512-bit vectors).
    #[inline(always)]
    #[doc(hidden)]
    pub unsafe fn new(
        g: &'a ConvGeom,
        plan: &'a Plan,
        xs: &'a [f32],
        r1: usize,
        tile: usize,
        zero: &'a mut [f32],
    ) -> Self {
        // SAFETY: the caller keeps this function's `# Safety` contract.
        unsafe {
            use std::arch::x86_64::*;
            assert!(xs.len() >= (r1 - 1) / plan.th * g.in_size() + g.in_size());
            let zero = &mut zero[..g.w];
            zero.fill(0.0);
            let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            PatchRows { g, plan, xs, zero, tile, lane, width: _mm256_set1_epi32(g.w as i32) }
        }
    }

    /// Input row `i` of the patch of the chunk's tile row `rr` in channel `ci`.
    #[inline(always)]
    pub(super) fn row(&self, ci: usize, rr: usize, i: usize) -> *const f32 {
        self.row_of(ci, rr / self.plan.th, rr % self.plan.th, i)
    }

    /// Input row `i` of the patch of tile row `ty` of sample `b` (of the chunk) in channel `ci`.
    #[inline(always)]
    pub(super) fn row_of(&self, ci: usize, b: usize, ty: usize, i: usize) -> *const f32 {
        let g = self.g;
        let iy = (self.tile * ty + i) as isize - 1;
        if iy < 0 || iy >= g.h as isize {
            self.zero.as_ptr()
        } else {
            self.xs[((b * g.c_in + ci) * g.h + iy as usize) * g.w..].as_ptr()
        }
    }

    /// Prefetches the input rows of channel `ci` that tile rows `r0..r1` read: while one
    /// channel is transformed, the next one's rows come in. A band's rows of one channel lie
    /// in short pieces (a few rows of each sample's plane), which the hardware prefetcher does
    /// not follow; the transform's loads waited on memory.
    #[inline(always)]
    pub(super) fn prefetch(&self, ci: usize, r0: usize, r1: usize) {
        for rr in r0..r1 {
            // Each tile row starts `tile` input rows after the last; the last of a sample or
            // band also covers the two rows after its own.
            let last = rr + 1 == r1 || rr % self.plan.th + 1 == self.plan.th;
            for i in 0..if last { self.tile + 2 } else { self.tile } {
                crate::kernels::transpose::prefetch_row(self.row(ci, rr, i), self.g.w);
            }
        }
    }

    /// Columns `ix..ix + 8` of the row at `p`, zero outside `0..w`: a plain load where all
    /// eight lie inside (a masked load costs more), else a masked one.
    ///
    /// # Safety
    /// AVX2 must be present and `p` a row of `w` floats; masked-off lanes are not accessed, so
    /// `ix` may lie before or past the row.
    #[inline(always)]
    pub(super) unsafe fn load(&self, p: *const f32, ix: i32) -> std::arch::x86_64::__m256 {
        // SAFETY: the caller keeps this function's `# Safety` contract.
        unsafe {
            use std::arch::x86_64::*;
            if ix >= 0 && ix as usize + 8 <= self.g.w {
                return _mm256_loadu_ps(p.add(ix as usize));
            }
            let idx = _mm256_add_epi32(_mm256_set1_epi32(ix), self.lane);
            let mask = _mm256_and_si256(
                _mm256_cmpgt_epi32(idx, _mm256_set1_epi32(-1)),
                _mm256_cmpgt_epi32(self.width, idx),
            );
            _mm256_maskload_ps(p.wrapping_offset(ix as isize), mask)
        }
    }
}
