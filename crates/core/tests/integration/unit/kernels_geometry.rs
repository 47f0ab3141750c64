//! Tests of `dualstream_core::kernels::geometry`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `kernels::geometry` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::kernels::geometry::*;
}
#[test]
fn ceil_mode_keeps_a_last_window_that_starts_inside() {
    // PyTorch: MaxPool2d(2, 2, ceil_mode=True) on 5 gives 3, (3, 2, pad 1) on 6 gives 4,
    // and (2, 2, pad 1) on 5 gives 3: a 4th window would start in the right padding.
    assert_eq!(pool_out_size(5, 2, 2, 0, true), Some(3));
    assert_eq!(pool_out_size(5, 2, 2, 0, false), Some(2));
    assert_eq!(pool_out_size(6, 3, 2, 1, true), Some(4));
    assert_eq!(pool_out_size(6, 3, 2, 1, false), Some(3));
    assert_eq!(pool_out_size(5, 2, 2, 1, true), Some(3));
    assert_eq!(pool_out_size(4, 2, 2, 0, true), Some(2));
    let g = PoolGeom::with_ceil_mode(5, 5, [2, 2], [2, 2], [0, 0], true).unwrap();
    assert!(!g.halving());
    assert_eq!(g.window(2, 2), (4, 5, 4, 5));
    assert_eq!(g.divisor(2, 2, true), 1);
    assert_eq!(g.divisor(1, 1, true), 4);
    let g = PoolGeom::with_ceil_mode(6, 6, [3, 3], [2, 2], [1, 1], true).unwrap();
    assert_eq!((g.divisor(0, 0, true), g.divisor(0, 0, false)), (9, 4));
    assert_eq!((g.divisor(3, 0, true), g.divisor(3, 0, false)), (6, 2));
}
