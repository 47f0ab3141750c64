//! Dense f32 tensors in row-major order. Activations are time-major `[T, N, ...]`; stateless
//! layers view them as the merged batch `[T*N, ...]`.
pub mod memory;
#[doc(hidden)]
pub mod spike_bits;

pub use spike_bits::SpikeBits;

use crate::error::{Error, Result};

#[derive(Debug, Default)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
    /// How many elements of `data`'s allocation have been written since it was made (at
    /// least `data.len()`): growing back within them needs no zero fill (see
    /// [`Tensor::resize_for_overwrite`]).
    initialized: usize,
}

/// Bytes of an f32 allocation of `capacity` elements.
fn bytes(capacity: usize) -> usize {
    capacity * std::mem::size_of::<f32>()
}

impl Tensor {
    /// A tensor made from its parts, its allocation counted ([`memory`]).
    fn counted(shape: Vec<usize>, data: Vec<f32>, initialized: usize) -> Self {
        memory::resized(0, bytes(data.capacity()));
        Tensor { shape, data, initialized }
    }
}

impl Drop for Tensor {
    fn drop(&mut self) {
        memory::resized(bytes(self.data.capacity()), 0);
    }
}

impl Clone for Tensor {
    fn clone(&self) -> Self {
        Tensor::counted(self.shape.clone(), self.data.clone(), self.data.len())
    }
}

impl PartialEq for Tensor {
    fn eq(&self, other: &Self) -> bool {
        self.shape == other.shape && self.data == other.data
    }
}

#[inline]
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Tensor {
    pub fn zeros(shape: &[usize]) -> Self {
        Tensor::counted(shape.to_vec(), vec![0.0; numel(shape)], numel(shape))
    }

    pub fn full(shape: &[usize], value: f32) -> Self {
        Tensor::counted(shape.to_vec(), vec![value; numel(shape)], numel(shape))
    }

    pub fn from_vec(shape: &[usize], data: Vec<f32>) -> Result<Self> {
        if numel(shape) != data.len() {
            return Err(Error::value(
                "Tensor::from_vec",
                format!("{} values for shape {:?}", numel(shape), shape),
                format!("{} values", data.len()),
            ));
        }
        let initialized = data.len();
        Ok(Tensor::counted(shape.to_vec(), data, initialized))
    }

    #[inline]
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    #[inline]
    pub fn numel(&self) -> usize {
        self.data.len()
    }
    /// Elements the allocation holds without growing.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.data.capacity()
    }
    #[inline]
    pub fn data(&self) -> &[f32] {
        &self.data
    }
    #[inline]
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }
    pub fn into_vec(mut self) -> Vec<f32> {
        let data = std::mem::take(&mut self.data);
        memory::resized(bytes(data.capacity()), 0);
        data
    }

    /// Gives the tensor `shape`, reusing its allocation; the contents are unspecified
    /// (callers overwrite every element). This is how layers keep buffers across batches.
    ///
    /// Growing back within what the allocation has held skips `Vec::resize`'s zero fill: work
    /// buffers shared by blocks of different sizes shrink and grow every step, and that fill
    /// was a full memory pass over the largest activation each time.
    pub fn resize_for_overwrite(&mut self, shape: &[usize]) {
        let n = numel(shape);
        let capacity = self.data.capacity();
        self.shape.clear();
        self.shape.extend_from_slice(shape);
        if n > self.data.len() && n <= self.initialized {
            // SAFETY: `initialized <= capacity`, and the elements below it were written as f32
            // values of this allocation; truncating never de-initialises them.
            unsafe { self.data.set_len(n) };
        } else {
            self.data.resize(n, 0.0);
            memory::resized(bytes(capacity), bytes(self.data.capacity()));
        }
        self.initialized = self.initialized.max(n);
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

    pub fn fill(&mut self, value: f32) {
        self.data.fill(value);
    }
}
