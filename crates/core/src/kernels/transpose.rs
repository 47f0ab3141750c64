//! Channels-last cells to channel planes (NCHW), the last step of the event-driven convolution
//! and of the neuron fed by it. A plain loop reads one float per cell and channel with a stride
//! of a whole cell and, per perf, stalls on those loads (~70 % of the in-cache neuron pass);
//! 8x8 blocks transposed in AVX2 registers read and write whole vectors instead.

/// `planes[co * plane_stride + p] = cells[p * pitch + co] (+ bias[co])` for `p < n`,
/// `co < c`: `n` cells of `pitch >= c` floats each become `c` runs of `n` floats.
pub fn cells_to_planes(cells: &[f32], pitch: usize, n: usize, c: usize, bias: Option<&[f32]>, planes: &mut [f32], plane_stride: usize) {
    assert!(pitch >= c && cells.len() >= n.saturating_sub(1) * pitch + c, "cells_to_planes: cells");
    assert!(c == 0 || planes.len() >= (c - 1) * plane_stride + n, "cells_to_planes: planes");
    assert!(plane_stride >= n, "cells_to_planes: planes overlap");
    if let Some(b) = bias {
        assert!(b.len() >= c, "cells_to_planes: bias");
    }
    let (mut c_done, mut n_done) = (0, 0);
    #[cfg(target_arch = "x86_64")]
    if n >= 8 && c >= 8 && std::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was detected; the asserts above bound every access of the blocks.
        unsafe { blocks_avx2(cells, pitch, n, c, bias, planes, plane_stride) };
        (c_done, n_done) = (c / 8 * 8, n / 8 * 8);
    }
    // What the 8x8 blocks leave: the last channels of every cell, the last cells of the rest.
    let at = |co: usize| bias.map_or(0.0, |b| b[co]);
    for co in 0..c {
        let from = if co < c_done { n_done } else { 0 };
        let b = at(co);
        for p in from..n {
            planes[co * plane_stride + p] = cells[p * pitch + co] + b;
        }
    }
}

/// # Safety
/// AVX2 must be present; `cells_to_planes`'s asserts must hold.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn blocks_avx2(cells: &[f32], pitch: usize, n: usize, c: usize, bias: Option<&[f32]>, planes: &mut [f32], plane_stride: usize) {
    use std::arch::x86_64::*;
    let (src, dst) = (cells.as_ptr(), planes.as_mut_ptr());
    for co in (0..c / 8 * 8).step_by(8) {
        let b: [__m256; 8] = std::array::from_fn(|k| _mm256_set1_ps(bias.map_or(0.0, |b| b[co + k])));
        for p in (0..n / 8 * 8).step_by(8) {
            let r: [__m256; 8] = std::array::from_fn(|k| _mm256_loadu_ps(src.add((p + k) * pitch + co)));
            // Pairs, then quads, then the 128-bit halves: r[k][j] ends in column j, row k.
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
            for k in 0..8 {
                _mm256_storeu_ps(dst.add((co + k) * plane_stride + p), _mm256_add_ps(cols[k], b[k]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_become_planes_for_every_remainder() {
        for (n, c, pitch) in [(1, 1, 1), (7, 3, 8), (8, 8, 8), (9, 8, 8), (28, 32, 32), (29, 33, 40), (64, 17, 24), (16, 64, 64), (3, 9, 9)] {
            let cells: Vec<f32> = (0..n * pitch).map(|i| i as f32 * 0.5 - 3.0).collect();
            let bias: Vec<f32> = (0..c).map(|k| k as f32 * 0.25 - 1.0).collect();
            for with_bias in [false, true] {
                let stride = n + 5;
                let mut planes = vec![f32::NAN; c * stride];
                let b = with_bias.then_some(&bias[..]);
                cells_to_planes(&cells, pitch, n, c, b, &mut planes, stride);
                for co in 0..c {
                    for p in 0..n {
                        let want = cells[p * pitch + co] + if with_bias { bias[co] } else { 0.0 };
                        assert_eq!(planes[co * stride + p].to_bits(), want.to_bits(), "n {n} c {c} pitch {pitch} co {co} p {p}");
                    }
                    assert!(planes[co * stride + n..(co + 1) * stride].iter().all(|v| v.is_nan()), "gap written");
                }
            }
        }
    }
}
