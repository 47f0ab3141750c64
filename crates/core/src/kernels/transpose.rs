//! Channels-last cells to channel planes (NCHW) and back: the last step of the event-driven
//! convolution and of the neuron fed by it, and the first of the event-driven weight gradient.
//! A plain loop moves one float per cell and channel with a stride of a whole cell and stalls
//! on those accesses; 8x8 blocks transposed in AVX2 registers move whole vectors.
//! A last partial block of pixels is done as a full block overlapping the one before it (the
//! overlap is written twice with the same values), so only channel counts that are not a
//! multiple of 8 leave scalar work.

/// `planes[co * plane_stride + p] = cells[p * pitch + co] (+ bias[co])` for `p < n`,
/// `co < c`: `n` cells of `pitch >= c` floats each become `c` runs of `n` floats.
pub fn cells_to_planes(
    cells: &[f32],
    pitch: usize,
    n: usize,
    c: usize,
    bias: Option<&[f32]>,
    planes: &mut [f32],
    plane_stride: usize,
) {
    assert!(pitch >= c && cells.len() >= n.saturating_sub(1) * pitch + c, "cells_to_planes: cells");
    assert!(c == 0 || planes.len() >= (c - 1) * plane_stride + n, "cells_to_planes: planes");
    assert!(plane_stride >= n, "cells_to_planes: planes overlap");
    if let Some(b) = bias {
        assert!(b.len() >= c, "cells_to_planes: bias");
    }
    let mut c_done = 0;
    #[cfg(target_arch = "x86_64")]
    if n >= 8 && c >= 8 && crate::kernels::simd::has(crate::kernels::simd::Feature::Avx2) {
        // SAFETY: AVX2 was detected; the asserts above bound every block.
        unsafe { cells_to_planes_avx2(cells, pitch, n, c, bias, planes, plane_stride) };
        c_done = c / 8 * 8;
    }
    for co in c_done..c {
        let b = bias.map_or(0.0, |b| b[co]);
        for p in 0..n {
            planes[co * plane_stride + p] = cells[p * pitch + co] + b;
        }
    }
}

/// The inverse: `cells[p * pitch + co] = planes[co * plane_stride + p]` for `p < n`, `co < c`;
/// the rest of each cell is left as it is.
pub fn planes_to_cells(
    planes: &[f32],
    plane_stride: usize,
    n: usize,
    c: usize,
    cells: &mut [f32],
    pitch: usize,
) {
    assert!(pitch >= c && cells.len() >= n.saturating_sub(1) * pitch + c, "planes_to_cells: cells");
    assert!(c == 0 || planes.len() >= (c - 1) * plane_stride + n, "planes_to_cells: planes");
    let mut c_done = 0;
    #[cfg(target_arch = "x86_64")]
    if n >= 8 && c >= 8 && crate::kernels::simd::has(crate::kernels::simd::Feature::Avx2) {
        // SAFETY: AVX2 was detected; the asserts above bound every block.
        unsafe { planes_to_cells_avx2(planes, plane_stride, n, c, cells, pitch) };
        c_done = c / 8 * 8;
    }
    for co in c_done..c {
        for p in 0..n {
            cells[p * pitch + co] = planes[co * plane_stride + p];
        }
    }
}

/// Asks the CPU to bring the `n` floats at `planes[k * plane_stride..]` (`k < c`) into L1:
/// one row of each channel plane, read soon by [`planes_to_cells`]. The planes are read as
/// `c` short streams at once (one row of each per call), more than the hardware prefetcher
/// follows; the loads of an unprefetched pass waited on memory. Nothing is read for a range
/// outside `planes`.
#[inline]
pub fn prefetch_planes(planes: &[f32], plane_stride: usize, n: usize, c: usize) {
    if n == 0 || c == 0 || (c - 1) * plane_stride + n > planes.len() {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    for k in 0..c {
        prefetch_row(planes[k * plane_stride..][..n].as_ptr(), n);
    }
}

/// Prefetches (into L1) every cache line of the `n > 0` floats at `p`. A prefetch never
/// faults, but the addresses are formed inside the row.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[doc(hidden)]
pub fn prefetch_row(p: *const f32, n: usize) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    let mut x = 0;
    loop {
        // SAFETY: a prefetch is a hint: it reads nothing the program sees and never faults.
        #[allow(unused_unsafe)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(x).cast())
        };
        if x == n - 1 {
            break;
        }
        x = (x + 16).min(n - 1);
    }
}

/// The whole-block part of [`cells_to_planes`], blocks inlined (a call per block, with its
/// bias lanes gathered per call, cost a third of the pass).
///
/// # Safety
/// AVX2 must be present; `cells_to_planes`' asserts must hold.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn cells_to_planes_avx2(
    cells: &[f32],
    pitch: usize,
    n: usize,
    c: usize,
    bias: Option<&[f32]>,
    planes: &mut [f32],
    plane_stride: usize,
) {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        use std::arch::x86_64::*;
        for_blocks(n, c, |p, co| {
            let add = match bias {
                Some(b) => _mm256_loadu_ps(b.as_ptr().add(co)),
                None => _mm256_setzero_ps(),
            };
            block_avx2(
                cells.as_ptr().add(p * pitch + co),
                pitch,
                planes.as_mut_ptr().add(co * plane_stride + p),
                plane_stride,
                add,
            );
        })
    }
}

/// The whole-block part of [`planes_to_cells`].
///
/// # Safety
/// AVX2 must be present; `planes_to_cells`' asserts must hold.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn planes_to_cells_avx2(
    planes: &[f32],
    plane_stride: usize,
    n: usize,
    c: usize,
    cells: &mut [f32],
    pitch: usize,
) {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        use std::arch::x86_64::*;
        for_blocks(n, c, |p, co| {
            block_avx2(
                planes.as_ptr().add(co * plane_stride + p),
                plane_stride,
                cells.as_mut_ptr().add(p * pitch + co),
                pitch,
                _mm256_setzero_ps(),
            );
        })
    }
}

/// Calls `f(p, co)` for the top-left corner of every 8x8 block covering `n >= 8` pixels and the
/// first `c / 8 * 8` channels, the last pixel block shifted back to end at `n`.
#[inline(always)]
fn for_blocks(n: usize, c: usize, mut f: impl FnMut(usize, usize)) {
    for co in (0..c / 8 * 8).step_by(8) {
        let mut p = 0;
        while p < n {
            let at = p.min(n - 8);
            f(at, co);
            p += 8;
        }
    }
}

/// One 8x8 block: the 8 contiguous floats at `src + k * src_line` (k < 8) are line k; column j
/// of those lines, plus lane j of `add`, is stored as 8 contiguous floats at `dst + j * dst_line`.
///
/// # Safety
/// AVX2 must be present; all 64 source and destination elements must be in bounds.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn block_avx2(
    src: *const f32,
    src_line: usize,
    dst: *mut f32,
    dst_line: usize,
    add: std::arch::x86_64::__m256,
) {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        use std::arch::x86_64::*;
        let r: [__m256; 8] =
            crate::kernels::simd::array_of(|k| _mm256_loadu_ps(src.add(k * src_line)));
        // Pairs, then quads, then the 128-bit halves: cols[j][k] = r[k][j].
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        let cols = [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ];
        // Lane j of `add` broadcast: the lane order within each 128-bit half, then the half.
        let lo = _mm256_permute2f128_ps::<0x00>(add, add);
        let hi = _mm256_permute2f128_ps::<0x11>(add, add);
        let adds = [
            _mm256_permute_ps::<0x00>(lo),
            _mm256_permute_ps::<0x55>(lo),
            _mm256_permute_ps::<0xAA>(lo),
            _mm256_permute_ps::<0xFF>(lo),
            _mm256_permute_ps::<0x00>(hi),
            _mm256_permute_ps::<0x55>(hi),
            _mm256_permute_ps::<0xAA>(hi),
            _mm256_permute_ps::<0xFF>(hi),
        ];
        for (j, v) in cols.iter().enumerate() {
            _mm256_storeu_ps(dst.add(j * dst_line), _mm256_add_ps(*v, adds[j]));
        }
    }
}
