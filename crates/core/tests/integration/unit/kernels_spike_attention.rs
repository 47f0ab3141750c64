//! Tests of `dualstream_core::kernels::spike_attention`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `kernels::spike_attention` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::kernels::spike_attention::*;
}
use dualstream_core::kernels::gemm::gemm_strided;
use dualstream_core::rng::Rng;

fn spikes(rng: &mut Rng, n: usize, density: f32) -> Vec<f32> {
    (0..n).map(|_| if rng.uniform() < density { 1.0 } else { 0.0 }).collect()
}

#[test]
fn packed_product_equals_dense_gemm_at_every_density_and_odd_sizes() {
    let mut rng = Rng::new(11);
    for &(m, n, k) in &[(1, 1, 1), (7, 5, 63), (49, 49, 16), (33, 17, 64), (9, 13, 130)] {
        for density in [0.0, 0.03, 0.2, 0.5, 1.0] {
            // A is m x k row-major; B is stored as k x n (column j of B is row j of B^T),
            // packed along k through its strides, as the attention packs K^T V.
            let a = spikes(&mut rng, m * k, density);
            let b = spikes(&mut rng, k * n, density);
            let words = words_for(k);
            let (mut pa, mut pb) = (vec![0u64; m * words], vec![0u64; n * words]);
            let ones_a = pack_rows(&a, m, k, k, 1, &mut pa).unwrap();
            pack_rows(&b, n, k, 1, n, &mut pb).unwrap();
            assert_eq!(ones_a, a.iter().filter(|&&v| v == 1.0).count());
            let mut packed = vec![f32::NAN; m * n];
            and_popcount(&pa, &pb, m, n, words, &mut packed, n);
            let mut dense = vec![0.0f32; m * n];
            gemm_strided(m, n, k, 1.0, &a, k, 1, &b, n, 1, 0.0, &mut dense, n, 1);
            assert_eq!(packed, dense, "{m}x{n}x{k} at {density}");
        }
    }
}

#[test]
fn event_product_equals_dense_gemm_bit_for_bit_on_counts() {
    let mut rng = Rng::new(12);
    for &(rows, inner, n) in &[(1, 1, 1), (49, 16, 16), (64, 32, 7), (5, 70, 33), (3, 128, 64)] {
        for density in [0.0, 0.05, 0.3, 1.0] {
            let s = spikes(&mut rng, rows * inner, density);
            let counts: Vec<f32> = (0..inner * n).map(|_| (rng.uniform() * 60.0).floor()).collect();
            let mut ps = vec![0u64; rows * words_for(inner)];
            pack_rows(&s, rows, inner, inner, 1, &mut ps).unwrap();
            for scale in [1.0f32, 0.125, 0.3] {
                let mut event = vec![f32::NAN; rows * n];
                let mut acc = vec![0.0f32; n];
                spikes_times_matrix(
                    &ps, rows, inner, &counts, n, n, scale, &mut event, n, &mut acc,
                );
                let mut dense = vec![0.0f32; rows * n];
                gemm_strided(
                    rows, n, inner, scale, &s, inner, 1, &counts, n, 1, 0.0, &mut dense, n, 1,
                );
                let same = event.iter().zip(&dense).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same, "{rows}x{inner}x{n} at {density}, scale {scale}");
            }
        }
    }
}

#[test]
fn packing_rejects_values_other_than_zero_and_one() {
    for bad in [0.5f32, 2.0, -1.0, f32::NAN] {
        let mut x = vec![0.0f32; 70];
        x[67] = bad;
        let mut out = vec![0u64; 2];
        assert_eq!(pack_rows(&x, 1, 70, 70, 1, &mut out), None, "{bad}");
    }
}

/// Bit `c % 64` of word `c / 64` of row `r` is `x[r * rs + c * cs] != 0`, one element at a time.
fn packed_one_by_one(x: &[f32], rows: usize, cols: usize, rs: usize, cs: usize) -> Vec<u64> {
    let words = words_for(cols);
    let mut out = vec![0u64; rows * words];
    for r in 0..rows {
        for c in 0..cols {
            if x[r * rs + c * cs] != 0.0 {
                out[r * words + c / 64] |= 1 << (c % 64);
            }
        }
    }
    out
}

#[test]
fn packing_sets_the_bits_of_every_layout_whatever_the_output_held() {
    let mut rng = Rng::new(5);
    // (rows, cols, rs, cs): rows of a token block and its columns (contiguous rows, as the
    // attention packs K and V along the tokens) inside a wider pitch; then several words a
    // row, a layout strided both ways, and a single column.
    let token_block = [(49, 16, 192, 1), (16, 49, 1, 192)];
    let others = [(7, 130, 130, 1), (130, 7, 1, 131), (5, 70, 3, 17), (3, 1, 1, 1)];
    for &(rows, cols, rs, cs) in token_block.iter().chain(&others) {
        for density in [0.0, 0.1, 0.5, 1.0] {
            let len = (rows - 1) * rs + (cols - 1) * cs + 1;
            // -0.0 is a zero, as `v == 0.0` says.
            let x: Vec<f32> = spikes(&mut rng, len, density)
                .into_iter()
                .map(|v| if v == 0.0 && rng.uniform() < 0.3 { -0.0 } else { v })
                .collect();
            let want = packed_one_by_one(&x, rows, cols, rs, cs);
            let mut out = vec![u64::MAX; want.len()];
            let ones = pack_rows(&x, rows, cols, rs, cs, &mut out);
            let what = format!("{rows}x{cols} strides ({rs}, {cs}) at {density}");
            assert_eq!(out, want, "{what}");
            let count = (0..rows)
                .flat_map(|r| (0..cols).map(move |c| (r, c)))
                .filter(|&(r, c)| x[r * rs + c * cs] == 1.0)
                .count();
            assert_eq!(ones, Some(count), "{what}");
            if rows * cols > 1 {
                let mut bad = x.clone();
                bad[(rows - 1) * rs + (cols - 1) * cs] = 0.5;
                assert_eq!(pack_rows(&bad, rows, cols, rs, cs, &mut out), None, "{what}");
            }
        }
    }
}
