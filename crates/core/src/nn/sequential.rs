//! A chain of layers. Owns the activation between each pair of layers and two gradient
//! buffers used in turn, all reused across batches.
use crate::error::{Error, Result};
use crate::nn::layer::{AuditEntry, Buffer, Layer, Param};
use crate::tensor::Tensor;

pub struct Sequential {
    name: String,
    layers: Vec<Box<dyn Layer>>,
    /// `activations[i]` is the output of layer i, for i < len-1 (the last writes to the caller's).
    activations: Vec<Tensor>,
    grad_buffers: [Tensor; 2],
}

impl Sequential {
    pub fn new(name: &str, layers: Vec<Box<dyn Layer>>) -> Result<Self> {
        if layers.is_empty() {
            return Err(Error::spec(name, "a sequence needs at least one layer"));
        }
        let n = layers.len();
        Ok(Sequential {
            name: name.to_string(),
            layers,
            activations: (0..n - 1).map(|_| Tensor::default()).collect(),
            grad_buffers: [Tensor::default(), Tensor::default()],
        })
    }

    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }

    /// Output of layer `i` from the last forward (the last layer's output lives with the caller).
    pub fn activation(&self, i: usize) -> Option<&Tensor> {
        self.activations.get(i)
    }
}

impl Layer for Sequential {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let mut shape = input.to_vec();
        for layer in &self.layers {
            shape = layer.output_shape(&shape)?;
        }
        Ok(shape)
    }

    fn forward(&mut self, input: &Tensor, output: &mut Tensor, training: bool) -> Result<()> {
        let n = self.layers.len();
        for i in 0..n {
            let (done, rest) = self.activations.split_at_mut(i);
            let x = if i == 0 { input } else { &done[i - 1] };
            let y = if i == n - 1 { &mut *output } else { &mut rest[0] };
            self.layers[i].forward(x, y, training)?;
        }
        Ok(())
    }

    fn backward(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        grad_input: &mut Tensor,
    ) -> Result<()> {
        let n = self.layers.len();
        for i in (0..n).rev() {
            let x = if i == 0 { input } else { &self.activations[i - 1] };
            let y = if i == n - 1 { output } else { &self.activations[i] };
            // Layer i reads the gradient layer i+1 wrote and writes into the other buffer.
            let [even, odd] = &mut self.grad_buffers;
            let (from, to) = if i % 2 == 0 { (&*odd, even) } else { (&*even, odd) };
            let g_out = if i == n - 1 { grad_output } else { from };
            if i == 0 {
                self.layers[i].backward(x, y, g_out, grad_input)?;
            } else {
                self.layers[i].backward(x, y, g_out, to)?;
            }
        }
        Ok(())
    }

    fn params<'a>(&'a mut self, out: &mut Vec<&'a mut Param>) {
        for layer in self.layers.iter_mut() {
            layer.params(out);
        }
    }

    fn buffers<'a>(&'a mut self, out: &mut Vec<Buffer<'a>>) {
        for layer in self.layers.iter_mut() {
            layer.buffers(out);
        }
    }

    fn firing_rates(&self, out: &mut Vec<(String, f32)>) {
        for layer in &self.layers {
            layer.firing_rates(out);
        }
    }

    fn set_audit(&mut self, on: bool) {
        self.layers.iter_mut().for_each(|l| l.set_audit(on));
    }

    fn audit(&self, out: &mut Vec<AuditEntry>) {
        self.layers.iter().for_each(|l| l.audit(out));
    }

    fn set_aap(&mut self, on: bool) {
        self.layers.iter_mut().for_each(|l| l.set_aap(on));
    }
}
