//! `[T, N, ...] -> [T, N, prod(...)]`.
use crate::error::{Error, Result};
use crate::nn::shape_layer::{ShapeLayer, ShapeMap};
use crate::tensor::Tensor;

/// The rule of [`Flatten`].
pub struct Flattening;

impl ShapeMap for Flattening {
    const KIND: &'static str = "flatten";
    const KEEPS_SPIKES: bool = true;

    fn output_shape(label: &str, input: &[usize]) -> Result<Vec<usize>> {
        if input.len() < 3 {
            return Err(Error::shape(
                label,
                "[T, N, ...] with at least one feature dimension",
                input,
            ));
        }
        Ok(vec![input[0], input[1], input[2..].iter().product()])
    }

    fn forward(input: &Tensor, output: &mut [f32]) {
        output.copy_from_slice(input.data());
    }

    fn backward(_input_shape: &[usize], grad_output: &[f32], grad_input: &mut [f32]) {
        grad_input.copy_from_slice(grad_output);
    }
}

pub type Flatten = ShapeLayer<Flattening>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::Layer;
    use crate::nn::gradcheck::{check_gradients, random_tensor};
    use crate::rng::Rng;

    #[test]
    fn flattens_and_passes_gradients_through() {
        let f = Flatten::new("layers.5");
        let x = random_tensor(&mut Rng::new(51), &[2, 3, 2, 2, 3]);
        let mut y = Tensor::default();
        f.clone().forward(&x, &mut y, true).unwrap();
        assert_eq!((y.shape(), y.data()), (&[2, 3, 12][..], x.data()));
        check_gradients(&f, &x, 1, 1e-2, 1e-3, 1e-3);
        let err = f.output_shape(&[2, 3]).unwrap_err();
        assert!(
            matches!(err, Error::Shape { .. }) && err.to_string().contains("layers.5 (flatten)")
        );
    }
}
