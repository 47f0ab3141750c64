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
