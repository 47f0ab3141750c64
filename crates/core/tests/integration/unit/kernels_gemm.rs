//! Tests of `dualstream_core::kernels::gemm`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `kernels::gemm` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::kernels::gemm::*;
}
use dualstream_core::rng::Rng;

fn naive(m: usize, n: usize, k: usize, a: &[f32], at: bool, b: &[f32], bt: bool) -> Vec<f64> {
    let mut c = vec![0.0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            for p in 0..k {
                let av = if at { a[p * m + i] } else { a[i * k + p] };
                let bv = if bt { b[j * k + p] } else { b[p * n + j] };
                s += av as f64 * bv as f64;
            }
            c[i * n + j] = s;
        }
    }
    c
}

#[test]
fn all_transpose_combinations_match_naive() {
    let mut rng = Rng::new(3);
    for &(m, n, k) in &[(1, 1, 1), (3, 5, 7), (17, 9, 33), (4, 1, 12), (1, 13, 2)] {
        for at in [false, true] {
            for bt in [false, true] {
                let a: Vec<f32> = (0..m * k).map(|_| rng.normal()).collect();
                let b: Vec<f32> = (0..k * n).map(|_| rng.normal()).collect();
                let c0: Vec<f32> = (0..m * n).map(|_| rng.normal()).collect();
                let mut c = c0.clone();
                gemm(m, n, k, 0.5, &a, at, &b, bt, 2.0, &mut c);
                let r = naive(m, n, k, &a, at, &b, bt);
                for i in 0..m * n {
                    let want = 0.5 * r[i] + 2.0 * c0[i] as f64;
                    assert!(
                        (c[i] as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                        "{m}x{n}x{k} {at} {bt}"
                    );
                }
                // beta = 0 must ignore garbage in C.
                let mut c = vec![f32::NAN; m * n];
                gemm(m, n, k, 1.0, &a, at, &b, bt, 0.0, &mut c);
                for i in 0..m * n {
                    assert!((c[i] as f64 - r[i]).abs() < 1e-4 * (1.0 + r[i].abs()));
                }
            }
        }
    }
}

#[test]
#[should_panic]
fn short_slice_panics() {
    let mut c = vec![0.0; 4];
    gemm(2, 2, 3, 1.0, &[0.0; 5], false, &[0.0; 6], false, 0.0, &mut c);
}

#[test]
fn shallow_product_equals_the_gemm_bit_for_bit() {
    let mut rng = Rng::new(5);
    // The token linears' input gradients (K = 64..256, N = 64..256), odd sizes, every tile
    // remainder (rows mod 6, columns mod 16 and 8), and depths at sgemm's block limit.
    let shapes = [
        (1, 1, 1),
        (7, 13, 5),
        (49, 64, 192),
        (100, 64, 64),
        (53, 64, 256),
        (61, 256, 64),
        (13, 24, 255),
        (11, 33, 256),
        (96, 40, 17),
        (3, 257, 9),
    ];
    for &(m, n, k) in &shapes {
        for zeros in [0.0, 0.5] {
            // Exact zeros in `a`, as in gradients through silent neurons.
            let a: Vec<f32> = (0..m * k)
                .map(|_| if rng.uniform() < zeros { 0.0 } else { rng.normal() })
                .collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.normal()).collect();
            let mut want = vec![f32::NAN; m * n];
            gemm(m, n, k, 1.0, &a, false, &b, false, 0.0, &mut want);
            let mut got = vec![f32::NAN; m * n];
            if gemm_shallow(m, n, k, &a, &b, &mut got) {
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(g.to_bits(), w.to_bits(), "{m}x{n}x{k} element {i}: {g} vs {w}");
                }
            } else {
                // Declined: nothing written.
                assert!(got.iter().all(|v| v.is_nan()), "{m}x{n}x{k}");
            }
        }
    }
    // Depths beyond one sgemm block are declined.
    let mut c = vec![f32::NAN; 4];
    assert!(!gemm_shallow(2, 2, 257, &[1.0; 2 * 257], &[1.0; 257 * 2], &mut c));
    assert!(c.iter().all(|v| v.is_nan()));
}
