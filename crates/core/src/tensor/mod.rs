//! Dense f32 tensors in row-major order. Activations are time-major `[T, N, ...]`; stateless
//! layers view them as the merged batch `[T*N, ...]`.
mod spike_bits;

pub use spike_bits::SpikeBits;

use crate::error::{Error, Result};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Tensor {
    pub fn zeros(shape: &[usize]) -> Self {
        Tensor { shape: shape.to_vec(), data: vec![0.0; numel(shape)] }
    }

    pub fn full(shape: &[usize], value: f32) -> Self {
        Tensor { shape: shape.to_vec(), data: vec![value; numel(shape)] }
    }

    pub fn from_vec(shape: &[usize], data: Vec<f32>) -> Result<Self> {
        if numel(shape) != data.len() {
            return Err(Error::value(
                "Tensor::from_vec",
                format!("{} values for shape {:?}", numel(shape), shape),
                format!("{} values", data.len()),
            ));
        }
        Ok(Tensor { shape: shape.to_vec(), data })
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn numel(&self) -> usize {
        self.data.len()
    }
    /// Elements the allocation holds without growing.
    pub fn capacity(&self) -> usize {
        self.data.capacity()
    }
    pub fn data(&self) -> &[f32] {
        &self.data
    }
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// Gives the tensor `shape`, reusing its allocation; the contents are unspecified
    /// (callers overwrite every element). This is how layers keep buffers across batches.
    pub fn resize_for_overwrite(&mut self, shape: &[usize]) {
        let n = numel(shape);
        self.shape.clear();
        self.shape.extend_from_slice(shape);
        self.data.resize(n, 0.0);
    }

    /// Like `resize_for_overwrite`, then sets every element to zero (for accumulation).
    pub fn resize_zeroed(&mut self, shape: &[usize]) {
        self.resize_for_overwrite(shape);
        self.data.fill(0.0);
    }

    /// Changes the shape without touching data; the element count must not change.
    pub fn reshape(&mut self, shape: &[usize]) -> Result<()> {
        if numel(shape) != self.data.len() {
            return Err(Error::shape(
                "Tensor::reshape",
                format!("{} elements", self.data.len()),
                shape,
            ));
        }
        self.shape.clear();
        self.shape.extend_from_slice(shape);
        Ok(())
    }

    pub fn copy_from(&mut self, other: &Tensor) {
        self.resize_for_overwrite(&other.shape);
        self.data.copy_from_slice(&other.data);
    }

    /// Mean of all elements, summed in f64 (the same result on any thread count).
    pub fn mean(&self) -> f32 {
        if self.data.is_empty() {
            return 0.0;
        }
        (crate::kernels::elementwise::sum(&self.data) / self.data.len() as f64) as f32
    }

    pub fn fill(&mut self, value: f32) {
        self.data.fill(value);
    }
}
