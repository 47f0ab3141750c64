//! Tests of `dualstream_core::nn::relu`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `nn::relu` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::layer::Layer;
    pub use dualstream_core::nn::relu::*;
    pub use dualstream_core::tensor::Tensor;
    pub use rayon::prelude::*;
}
use crate::unit::nn_gradcheck::check_gradients;

#[test]
fn clamps_negatives_and_masks_their_gradient() {
    let x = Tensor::from_vec(&[1, 1, 4], vec![-1.0, 0.5, 2.0, -0.25]).unwrap();
    let mut r = Relu::new("layers.2");
    let mut y = Tensor::default();
    r.forward(&x, &mut y, true).unwrap();
    assert_eq!(y.data(), &[0.0, 0.5, 2.0, 0.0]);
    // Values away from 0 so central differences do not straddle the kink.
    check_gradients(&r, &x, 3, 1e-2, 1e-3, 1e-3);
}
