//! Tests of `dualstream_core::limits`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `limits` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::limits::*;
}
#[test]
fn products_that_overflow_or_pass_the_limit_are_refused() {
    assert_eq!(product(&[2, 3, 4]), Some(24));
    assert_eq!(product(&[usize::MAX, 2]), None);
    assert!(check_elements("x", "a tensor", &[1 << 20, 1 << 20], 4).is_err());
    assert!(check_elements("x", "a tensor", &[usize::MAX, usize::MAX], 4).is_err());
    assert_eq!(check_elements("x", "a tensor", &[10, 10], 4).unwrap(), 100);
    let err = check_elements("conv1.weight", "weights", &[1 << 40], 4).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("conv1.weight") && text.contains(MAX_BYTES_ENV), "{text}");
}
