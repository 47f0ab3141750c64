//! `[T, N, ...] -> [T, N, prod(...)]`.
use crate::error::{Error, Result};
use crate::layer::check_backward_shapes;
use crate::layer::{BackwardReads, Layer};
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct Flatten {
    label: String,
}

impl Flatten {
    pub fn new(name: &str) -> Self {
        Flatten { label: format!("{name} (flatten)") }
    }
}

impl Layer for Flatten {
    /// Backward needs the shapes alone.
    fn backward_reads(&self) -> BackwardReads {
        BackwardReads { input: false, output: false }
    }

    fn emits_spikes(&self, input_spikes: bool) -> bool {
        input_spikes
    }

    fn name(&self) -> &str {
        &self.label
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        if input.len() < 3 {
            return Err(Error::shape(
                &self.label,
                "[T, N, ...] with at least one feature dimension",
                input,
            ));
        }
        Ok(vec![input[0], input[1], input[2..].iter().product()])
    }

    fn forward(&mut self, input: &Tensor, output: &mut Tensor, _training: bool) -> Result<()> {
        // A copy, not a view: the caller owns one buffer per layer boundary.
        let shape = self.output_shape(input.shape())?;
        output.resize_for_overwrite(&shape);
        output.data_mut().copy_from_slice(input.data());
        Ok(())
    }

    fn backward(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        grad_input: &mut Tensor,
    ) -> Result<()> {
        check_backward_shapes(self, input, output, grad_output)?;
        grad_input.resize_for_overwrite(input.shape());
        grad_input.data_mut().copy_from_slice(grad_output.data());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::{check_gradients, random_tensor};
    use crate::rng::Rng;

    #[test]
    fn flattens_and_passes_gradients_through() {
        let mut f = Flatten::new("layers.5");
        let mut rng = Rng::new(51);
        let x = random_tensor(&mut rng, &[2, 3, 2, 2, 3]);
        let mut y = Tensor::default();
        f.forward(&x, &mut y, true).unwrap();
        assert_eq!(y.shape(), &[2, 3, 12]);
        assert_eq!(y.data(), x.data());
        check_gradients(&f, &x, 1, 1e-2, 1e-3, 1e-3);
        let err = f.output_shape(&[2, 3]).unwrap_err();
        assert!(
            matches!(err, Error::Shape { .. }) && err.to_string().contains("layers.5 (flatten)")
        );
    }
}
