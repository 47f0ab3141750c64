//! Helpers the layer tests share.
use super::Layer;
use crate::rng::Rng;
use crate::tensor::Tensor;

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
