//! Tests of `dualstream_core::rng`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `rng` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::rng::*;
}
#[test]
fn same_seed_same_stream_and_moments_are_right() {
    let (mut a, mut b) = (Rng::new(7), Rng::new(7));
    for _ in 0..100 {
        assert_eq!(a.next_u64(), b.next_u64());
    }
    let mut r = Rng::new(1);
    let n = 200_000;
    let xs: Vec<f32> = (0..n).map(|_| r.normal()).collect();
    let mean = xs.iter().sum::<f32>() / n as f32;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n as f32;
    assert!(mean.abs() < 0.01, "mean {mean}");
    assert!((var - 1.0).abs() < 0.02, "var {var}");
    let us: Vec<f32> = (0..n).map(|_| r.uniform()).collect();
    assert!(us.iter().all(|&u| (0.0..1.0).contains(&u)));
    let umean = us.iter().sum::<f32>() / n as f32;
    assert!((umean - 0.5).abs() < 0.01);
}
