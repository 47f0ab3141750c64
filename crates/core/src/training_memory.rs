//! The memory a training step takes, predicted for any batch size from the engine's own byte
//! counters ([`crate::tensor::memory`]): every buffer a step holds — the activations the
//! forward keeps for BPTT (spike maps bit-packed), the blocks' second forward in the
//! memory-lean mode, the gradient buffers, the convolutions' work buffers, the parameters and
//! their gradients — scales with the batch N or does not depend on it. Two training steps, at
//! N = 1 and N = 2, give the two parts, and `fixed + N * per_sample` the peak for any N.
use crate::error::{Error, Result};
use crate::kernels::scratch::release_pools;
use crate::loss::LossSpec;
use crate::model::Model;
use crate::spec::Encoding;
use crate::tensor::{memory, Tensor};

/// A training step's peak engine bytes as `fixed + batch * per_sample`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrainingMemory {
    pub fixed: usize,
    pub per_sample: usize,
}

impl TrainingMemory {
    /// The predicted peak for a batch of `batch` samples.
    pub fn bytes(&self, batch: usize) -> usize {
        self.fixed + batch * self.per_sample
    }
}

/// A deterministic input batch: 0/1 values, one in 32 set (event-like frames, or a sparse
/// image; the stored bytes do not depend on the values).
fn probe_input(model: &Model, batch: usize) -> Result<Tensor> {
    let spec = model.spec();
    let mut shape = match spec.encoding {
        Encoding::Direct => vec![batch],
        Encoding::Sequence => vec![spec.time_steps, batch],
    };
    shape.extend_from_slice(&spec.input_shape);
    let n: usize = shape.iter().product();
    let data = (0..n as u64)
        .map(|i| ((i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 59) == 0) as u8 as f32)
        .collect();
    Tensor::from_vec(&shape, data)
}

/// Forward, loss and backward of one batch in training mode, without an optimizer step.
fn train_once(model: &mut Model, input: &Tensor, labels: &[u32], grad: &mut Tensor) -> Result<()> {
    model.zero_grad();
    let heads = model.heads();
    let output = model.forward(input, true)?;
    LossSpec::default().compute_heads(output, labels, heads, grad)?;
    model.backward_params(grad)
}

/// The peak engine bytes (held by every model of the process) during one training forward
/// and backward of a batch of `batch` samples, the model's memory mode as it is set. The
/// model's BN running statistics are restored afterwards and its gradients zeroed; its
/// weights do not change (no optimizer step).
pub fn training_peak_bytes(model: &mut Model, batch: usize) -> Result<usize> {
    if batch == 0 {
        return Err(Error::value("batch", "a positive batch size", "0"));
    }
    let buffers: Vec<(String, Tensor)> = model
        .buffer_names()
        .into_iter()
        .filter_map(|(name, _)| model.buffer(&name).cloned().map(|t| (name, t)))
        .collect();
    let input = probe_input(model, batch)?;
    let labels = vec![0u32; batch];
    let mut grad = Tensor::default();
    memory::reset_peak();
    let run = train_once(model, &input, &labels, &mut grad);
    let peak = memory::peak_bytes();
    model.zero_grad();
    for (name, value) in &buffers {
        model.set_buffer(name, value)?;
    }
    run.map(|_| peak)
}

/// [`TrainingMemory`] of `model` in the memory mode `lean` (the model's own mode comes back
/// afterwards), from training steps at N = 1 and N = 2 (each the second of its size, so that
/// the first step's one-off allocations do not count), with the idle work buffers of the
/// process freed before each size. The model's own buffers keep the capacity of its largest
/// batch so far: predict on a model that has not trained on a larger batch (in another memory
/// mode either), as `dualstream info` does with a new model per mode.
pub fn predict(model: &mut Model, lean: bool) -> Result<TrainingMemory> {
    let mode = model.memory_lean();
    model.set_memory_lean(lean);
    let peaks = peaks_at_one_and_two(model);
    model.set_memory_lean(mode);
    let [one, two] = peaks?;
    let per_sample = two.saturating_sub(one);
    Ok(TrainingMemory { fixed: one.saturating_sub(per_sample), per_sample })
}

/// The engine peaks of training steps at N = 1 and N = 2, each the second step of its size.
fn peaks_at_one_and_two(model: &mut Model) -> Result<[usize; 2]> {
    let mut peaks = [0usize; 2];
    for (i, batch) in [1, 2].into_iter().enumerate() {
        release_pools();
        training_peak_bytes(model, batch)?;
        peaks[i] = training_peak_bytes(model, batch)?;
    }
    Ok(peaks)
}
