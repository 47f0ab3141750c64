//! Layers without parameters whose backward needs the shapes alone: the reshapes (`flatten`,
//! `tokens`) and the means over positions (`globalAvgPool`, `tokenMean`). One [`Layer`]
//! implementation serves them all; each kind gives its shape rule and its two passes.
use crate::error::Result;
use crate::layer::{check_backward_shapes, BackwardReads, Layer, Visitor, VisitorMut};
use crate::nn::mean_head::MeanHead;
use crate::tensor::Tensor;
use std::marker::PhantomData;

/// What one kind of [`ShapeLayer`] computes.
pub trait ShapeMap: Send + 'static {
    /// The kind as the layer's label names it, e.g. `flatten`.
    const KIND: &'static str;
    /// Whether the output holds only 0/1 values when the input does: a reshape moves values,
    /// a mean mixes them.
    const KEEPS_SPIKES: bool = false;

    /// Output shape for a `[T, N, ...]` input; errors name `label`.
    fn output_shape(label: &str, input: &[usize]) -> Result<Vec<usize>>;

    /// Writes every value of `output` from an `input` whose shape [`Self::output_shape`] took.
    fn forward(input: &Tensor, output: &mut [f32]);

    /// Overwrites `grad_input` (of `input_shape`) from `grad_output`.
    fn backward(input_shape: &[usize], grad_output: &[f32], grad_input: &mut [f32]);
}

/// A [`ShapeMap`] that averages over positions, so that a linear reading it can be audited
/// and counted on its input (see [`MeanHead`]).
pub trait MeanMap: ShapeMap {}

pub struct ShapeLayer<M> {
    label: String,
    head: Option<MeanHead>,
    map: PhantomData<fn() -> M>,
}

impl<M> Clone for ShapeLayer<M> {
    fn clone(&self) -> Self {
        ShapeLayer { label: self.label.clone(), head: self.head.clone(), map: PhantomData }
    }
}

impl<M: ShapeMap> ShapeLayer<M> {
    pub fn new(name: &str) -> Self {
        ShapeLayer { label: format!("{name} ({})", M::KIND), head: None, map: PhantomData }
    }
}

impl<M: MeanMap> ShapeLayer<M> {
    /// Audits and counts the synapses of the linear `linear_path` that reads this mean.
    pub fn feeding(mut self, linear_path: &str, out_features: usize, bias: bool) -> Self {
        self.head = Some(MeanHead::new(&self.label, linear_path, out_features, bias));
        self
    }
}

impl<M: ShapeMap> Layer for ShapeLayer<M> {
    fn name(&self) -> &str {
        &self.label
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        M::output_shape(&self.label, input)
    }

    fn forward(&mut self, input: &Tensor, output: &mut Tensor, _training: bool) -> Result<()> {
        // A copy even for a reshape, not a view: the caller owns one buffer per layer boundary.
        let shape = self.output_shape(input.shape())?;
        output.resize_for_overwrite(&shape);
        M::forward(input, output.data_mut());
        if let Some(h) = self.head.as_mut() {
            h.observe(input, output);
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
        check_backward_shapes(self, input, output, grad_output)?;
        grad_input.resize_for_overwrite(input.shape());
        M::backward(input.shape(), grad_output.data(), grad_input.data_mut());
        Ok(())
    }

    fn backward_reads(&self) -> BackwardReads {
        BackwardReads { input: false, output: false }
    }

    fn emits_spikes(&self, input_spikes: bool) -> bool {
        M::KEEPS_SPIKES && input_spikes
    }

    fn visit(&self, visitor: &mut dyn Visitor) {
        if let Some(h) = &self.head {
            h.visit(visitor);
        }
    }

    fn visit_mut<'a>(&'a mut self, visitor: &mut dyn VisitorMut<'a>) {
        if let Some(h) = self.head.as_mut() {
            h.visit_mut(visitor);
        }
    }
}
