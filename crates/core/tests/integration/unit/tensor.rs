//! Tests of `dualstream_core::tensor`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `tensor` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::tensor::*;
}
#[test]
fn growing_back_within_the_written_allocation_skips_the_zero_fill() {
    let mut t = Tensor::from_vec(&[2, 3], (1..=6).map(|v| v as f32).collect()).unwrap();
    let ptr = t.data().as_ptr();
    t.resize_for_overwrite(&[2]);
    assert_eq!(t.data(), &[1.0, 2.0]);
    // Back to 6 elements: the old values are still there (no fill), in the same allocation.
    t.resize_for_overwrite(&[6]);
    assert_eq!(t.data(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(t.data().as_ptr(), ptr);
    // Past what was ever written: zeros, as Vec::resize gives.
    t.resize_for_overwrite(&[3]);
    t.resize_for_overwrite(&[9]);
    assert_eq!(&t.data()[6..], &[0.0, 0.0, 0.0]);
    // A clone owns only its elements; equality ignores the allocation.
    let mut c = t.clone();
    c.resize_for_overwrite(&[2]);
    c.resize_for_overwrite(&[9]);
    assert_eq!(c.data()[..3], t.data()[..3]);
    assert_eq!(Tensor::from_vec(&[1], vec![2.0]).unwrap(), Tensor::full(&[1], 2.0));
}
