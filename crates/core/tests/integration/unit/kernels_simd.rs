//! Tests of `dualstream_core::kernels::simd`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `kernels::simd` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::kernels::simd::*;
}
use dualstream_core::kernels::simd::array_of;

#[test]
fn array_of_calls_f_once_per_index_in_order() {
    let mut calls = Vec::new();
    let squares: [usize; 5] = array_of(|i| {
        calls.push(i);
        i * i
    });
    assert_eq!(squares, [0, 1, 4, 9, 16]);
    assert_eq!(calls, [0, 1, 2, 3, 4]);
    let names: [String; 3] = array_of(|i| format!("lane {i}"));
    assert_eq!(names, ["lane 0", "lane 1", "lane 2"]);
}
