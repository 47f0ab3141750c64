//! Helpers the layer tests share.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `layer` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::layer::*;
    pub use dualstream_core::tensor::Tensor;
}
use dualstream_core::layer::Layer;
use dualstream_core::rng::Rng;
use dualstream_core::tensor::Tensor;

/// Runs `layer` forward in training mode on `x`, then backward with a standard-normal output
/// gradient drawn from `rng`: `(output, grad_output, grad_input)`.
pub fn forward_backward(
    layer: &mut dyn Layer,
    x: &Tensor,
    rng: &mut Rng,
) -> (Tensor, Tensor, Tensor) {
    let mut y = Tensor::default();
    layer.forward(x, &mut y, true).unwrap();
    let g = Tensor::from_vec(y.shape(), (0..y.numel()).map(|_| rng.normal()).collect()).unwrap();
    let mut gx = Tensor::default();
    layer.backward(x, &y, &g, &mut gx).unwrap();
    (y, g, gx)
}
