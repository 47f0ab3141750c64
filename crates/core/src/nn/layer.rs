//! The contract every layer (and neuron, and block) keeps.
use crate::energy::Counter;
use crate::error::Result;
use crate::tensor::Tensor;

/// A learnable tensor with its gradient. `name` is the stable key used by checkpoints and the
/// SpikingJelly fixtures, e.g. `layers.3.weight` or `layers.5.branch.0.weight`.
#[derive(Clone, Debug)]
pub struct Param {
    pub name: String,
    pub value: Tensor,
    pub grad: Tensor,
    /// Weight decay applies to this parameter (conv/linear weights); BN affine parameters,
    /// biases and neuron parameters are exempt, as is usual.
    pub decay: bool,
}

impl Param {
    pub fn new(name: impl Into<String>, value: Tensor, decay: bool) -> Self {
        let grad = Tensor::zeros(value.shape());
        Param { name: name.into(), value, grad, decay }
    }
}

/// A non-learnable state tensor that a checkpoint must keep (BN running statistics).
pub struct Buffer<'a> {
    pub name: String,
    pub value: &'a mut Tensor,
}

/// See [`Layer::backward_reads`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackwardReads {
    pub input: bool,
    pub output: bool,
}

/// A layer of the multi-step model. Inputs and outputs are time-major `[T, N, ...]`.
///
/// Buffers are owned by the caller (the model keeps one activation tensor per layer boundary and
/// reuses them across batches), so `forward` and `backward` resize their outputs with
/// `Tensor::resize_for_overwrite` and write every element: no allocation per time step, and
/// none per batch once the sizes are stable.
pub trait Layer: Send {
    /// Human-readable location used in error messages, e.g. `layers.3 (conv2d)`.
    fn name(&self) -> &str;

    /// Output shape for a `[T, N, ...]` input shape; errors name the layer and the expected shape.
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>>;

    /// Runs all T steps. In training mode the layer keeps what its backward needs.
    fn forward(&mut self, input: &Tensor, output: &mut Tensor, training: bool) -> Result<()>;

    /// Backpropagation through time. Called after a training-mode `forward` with the same
    /// `input` and `output`. Overwrites `grad_input`; ADDS parameter gradients into `Param::grad`
    /// (the trainer zeroes them before each step).
    fn backward(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        grad_input: &mut Tensor,
    ) -> Result<()>;

    /// Which of its forward `input` and `output` this layer's `backward` reads the values of
    /// (it always checks their shapes). Where one is not read, the model may pass a buffer of
    /// the right shape that holds other values, instead of unpacking a stored spike map (a
    /// memory pass as large as the map) that nobody reads.
    fn backward_reads(&self) -> BackwardReads {
        BackwardReads { input: true, output: true }
    }

    /// `true`: the caller will not read `grad_input` of the following backward calls, so the
    /// layer may leave it unwritten (the stem conv skips a whole dense backward-data pass).
    /// Only the model sets this, on its first layer, for parameter-only backward passes.
    fn skip_input_grad(&mut self, _skip: bool) {}

    /// In eval mode, the per-channel affine `y = x * scale + shift` this layer computes (BN
    /// with its running statistics), so that a preceding conv can fold it into its weights
    /// and the pass over the activations disappears. `None` for every other layer.
    fn eval_affine(&mut self) -> Option<(&[f32], &[f32])> {
        None
    }

    /// This layer as a batch norm, for the fused training-mode BN + neuron pass of `Sequential`.
    fn as_batch_norm(&mut self) -> Option<&mut crate::nn::batch_norm::BatchNorm2d> {
        None
    }

    /// This layer as a spiking neuron layer (the other half of that fused pass).
    fn as_neuron(&mut self) -> Option<&mut crate::neuron::NeuronLayer> {
        None
    }

    /// This layer as a convolution, for `Sequential`'s inference passes (a following eval-mode
    /// BN folded into its weights, a following neuron fed in cache).
    fn as_conv(&mut self) -> Option<&mut crate::nn::conv2d::Conv2d> {
        None
    }

    /// This layer as a max pool (a 2x2 one after a fused BN + neuron pair runs inside it).
    fn as_max_pool(&mut self) -> Option<&mut crate::nn::pool::MaxPool2d> {
        None
    }

    /// Learnable parameters, in a stable order.
    fn params<'a>(&'a mut self, _out: &mut Vec<&'a mut Param>) {}

    /// Non-learnable state to checkpoint (BN running statistics).
    fn buffers<'a>(&'a mut self, _out: &mut Vec<Buffer<'a>>) {}

    /// Whether the output holds only 0/1 values when the input does (`input_spikes`) — a hint
    /// that lets the model keep this output bit-packed for the backward pass. Neurons always
    /// emit spikes; max pooling and flattening keep them; anything that scales or mixes does not.
    /// The packing itself checks the values, so a wrong hint costs time, never correctness.
    fn emits_spikes(&self, _input_spikes: bool) -> bool {
        false
    }

    /// Whether [`Layer::recompute_output`] can rebuild the last training forward's output from
    /// its input, cheaply and bit for bit (BN in training: one affine pass). The sequence then
    /// keeps no copy of that output for the backward pass: 4 bytes per element saved.
    fn recomputes_output(&self) -> bool {
        false
    }

    /// Writes the last training forward's output again, from the same input (only called when
    /// [`Layer::recomputes_output`] is true, after that forward and before the optimizer step).
    fn recompute_output(&self, _input: &Tensor, _output: &mut Tensor) {
        unreachable!("recompute_output on a layer that does not recompute its output")
    }

    /// Bytes this layer keeps from the last training forward for its backward pass (blocks and
    /// sequences include their inner layers), for the BPTT memory figure of the README.
    fn stored_bytes(&self) -> usize {
        0
    }

    /// Mean firing rate of the last forward, for neuron layers (None for others).
    fn firing_rate(&self) -> Option<f32> {
        None
    }

    /// Firing rates of every neuron layer inside (blocks and sequences recurse).
    fn firing_rates(&self, out: &mut Vec<(String, f32)>) {
        if let Some(rate) = self.firing_rate() {
            out.push((self.name().to_string(), rate));
        }
    }

    /// Turns the full-spike audit on or off. While on, every synaptic layer (conv, linear)
    /// notes whether its inputs were all in {0, 1}; containers pass the switch on.
    fn set_audit(&mut self, _on: bool) {}

    /// What the synaptic layers inside saw since auditing was turned on, in forward order.
    fn audit(&self, _out: &mut Vec<AuditEntry>) {}

    /// Runs (`true`) or skips the auxiliary accumulation pathway of dual-stream trunks inside;
    /// skipping it gives the full-spike network's spike head alone.
    fn set_aap(&mut self, _on: bool) {}

    /// L2 norms of the gradients that reached each block's outputs in the last backward, as
    /// `(name, norm)`, e.g. `layers.3.stages.7.O` (spike stream) and `...A` (accumulation).
    /// Containers recurse; dual-stream trunks report per stage (Appendix C.3 of the paper).
    fn gradient_norms(&self, _out: &mut Vec<(String, f32)>) {}

    /// The energy counters inside, in forward order: one per synaptic layer (conv, linear),
    /// one rate monitor per neuron layer and per block output. Containers recurse.
    fn counters<'a>(&'a mut self, _out: &mut Vec<Counter<'a>>) {}
}

/// One synaptic layer's audit result.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    pub layer: String,
    /// Every input value seen was exactly 0 or 1.
    pub binary: bool,
    /// The first non-binary input value seen, if any.
    pub example: Option<f32>,
}

/// The per-layer recorder behind the audit; off (and free) unless `set_audit(true)`.
#[derive(Clone, Debug, Default)]
pub struct AuditProbe {
    on: bool,
    seen: bool,
    example: Option<f32>,
}

impl AuditProbe {
    pub fn set(&mut self, on: bool) {
        *self = AuditProbe { on, seen: false, example: None };
    }

    #[inline]
    pub fn observe(&mut self, input: &[f32]) {
        if !self.on {
            return;
        }
        self.seen = true;
        if self.example.is_none() {
            self.example = input.iter().copied().find(|&v| v != 0.0 && v != 1.0);
        }
    }

    pub fn report(&self, layer: &str, out: &mut Vec<AuditEntry>) {
        if self.on && self.seen {
            out.push(AuditEntry {
                layer: layer.to_string(),
                binary: self.example.is_none(),
                example: self.example,
            });
        }
    }
}

/// Checks that a `[T, N, ...]` input has the given per-sample shape; `what` describes it
/// for the message, e.g. `[T, N, 32, H, W]`.
pub fn expect_sample_rank(layer: &str, input: &[usize], rank: usize, what: &str) -> Result<()> {
    if input.len() != rank + 2 {
        return Err(crate::error::Error::shape(layer, what, input));
    }
    Ok(())
}
