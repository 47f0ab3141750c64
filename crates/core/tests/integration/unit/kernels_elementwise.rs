//! Tests of `dualstream_core::kernels::elementwise`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `kernels::elementwise` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::kernels::elementwise::*;
    pub use rayon::prelude::*;
}
use dualstream_core::rng::Rng;

#[test]
fn reductions_match_plain_sums_and_do_not_depend_on_the_thread_count() {
    let mut rng = Rng::new(4);
    for n in [0usize, 1, 7, 8, 9, CHUNK - 1, CHUNK, 3 * CHUNK + 5] {
        let x: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
        let plain: f64 = x.iter().map(|&v| v as f64).sum();
        let squares: f64 = x.iter().map(|&v| v as f64 * v as f64).sum();
        assert!((sum(&x) - plain).abs() <= 1e-9 * (1.0 + plain.abs()), "sum of {n}");
        assert!(
            (l2_norm(&x) - squares.sqrt()).abs() <= 1e-9 * (1.0 + squares.sqrt()),
            "norm of {n}"
        );
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| (sum(&x).to_bits(), l2_norm(&x).to_bits()))
        };
        assert!((2..=4).all(|t| on(t) == on(1)), "thread count changed the sums of {n}");
    }
}

#[test]
fn element_wise_adds_are_exact() {
    let mut rng = Rng::new(5);
    let n = 2 * CHUNK + 3;
    let a: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    let b: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    let mut out = vec![f32::NAN; n];
    add(&a, &b, &mut out);
    let mut acc = a.clone();
    add_assign(&mut acc, &b);
    let mut acc_too = a.clone();
    let squares = add_assign_sum_of_squares(&mut acc_too, &b);
    assert_eq!(acc_too, acc);
    let want: f64 = b.iter().map(|&v| v as f64 * v as f64).sum();
    assert!((squares - want).abs() <= 1e-12 * want, "sum of squares {squares} vs {want}");
    for i in 0..n {
        assert_eq!(out[i], a[i] + b[i]);
        assert_eq!(acc[i], a[i] + b[i]);
    }
}
