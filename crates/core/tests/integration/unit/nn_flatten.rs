//! Tests of `dualstream_core::nn::flatten`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `nn::flatten` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::error::Error;
    pub use dualstream_core::nn::flatten::*;
    pub use dualstream_core::nn::shape_layer::ShapeMap;
    pub use dualstream_core::tensor::Tensor;
}
use crate::unit::nn_gradcheck::{check_gradients, random_tensor};
use dualstream_core::layer::Layer;
use dualstream_core::rng::Rng;

#[test]
fn flattens_and_passes_gradients_through() {
    let f = Flatten::new("layers.5");
    let x = random_tensor(&mut Rng::new(51), &[2, 3, 2, 2, 3]);
    let mut y = Tensor::default();
    f.clone().forward(&x, &mut y, true).unwrap();
    assert_eq!((y.shape(), y.data()), (&[2, 3, 12][..], x.data()));
    check_gradients(&f, &x, 1, 1e-2, 1e-3, 1e-3);
    let err = f.output_shape(&[2, 3]).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }) && err.to_string().contains("layers.5 (flatten)"));
}
