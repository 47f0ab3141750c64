//! The contract every layer (and neuron, and block) keeps, below both the neurons and the
//! layers built on them, so that neither needs the other to name it.
use crate::energy::Counter;
use crate::error::{Error, Result};
use crate::tensor::{SpikeBits, Tensor};
use std::any::Any;

mod walk;
pub use walk::Walk;

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
    /// A running statistic of the data (BN mean and variance), which a weight average
    /// (`optim::Ema`) averages with the parameters; false for state that only makes sense as
    /// it is, such as a dropout layer's random stream.
    pub averaged: bool,
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
pub trait Layer: AsAny + Send {
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

    /// Frees what the last training forward kept for this layer's backward pass, and the
    /// work buffers it keeps between calls; the next forward allocates them again. The
    /// memory-lean mode calls it on a segment once its backward is done (and after its
    /// forward, which the backward then runs again).
    fn release_stored(&mut self) {}

    /// Whether a memory-lean container treats this layer as a segment: keeps only its input,
    /// frees what it stores after its forward, and runs its forward again just before its
    /// backward. Blocks are segments; single layers are not (their stores are the container's
    /// boundaries).
    fn is_segment(&self) -> bool {
        false
    }

    /// Turns the memory-lean training mode on or off in this container and the containers it
    /// segments itself (see [`Layer::is_segment`]).
    fn set_memory_lean(&mut self, _on: bool) {}

    /// A training forward whose stores [`Layer::release_stored`] frees right after (a
    /// segment's first forward in the memory-lean mode): a layer may skip making them.
    fn forward_released(&mut self, input: &Tensor, output: &mut Tensor) -> Result<()> {
        self.forward(input, output, true)
    }

    /// Memory-lean mode: whether this segment's last training forward lets its second forward
    /// and its backward run from its kept input ([`Layer::rerun_in_place`],
    /// [`Layer::backward_in_place`]), its input gradient written over its output gradient, so
    /// that the container's other full-size buffers can be freed meanwhile.
    fn runs_in_place(&self) -> bool {
        false
    }

    /// The second forward of a segment that [`Layer::runs_in_place`], from its kept input:
    /// it keeps what its backward reads and writes no output (none reads it).
    fn rerun_in_place(&mut self, _input: SegmentInput) -> Result<()> {
        Err(Error::state(self.name(), "rerun_in_place on a layer that does not run in place"))
    }

    /// After [`Layer::rerun_in_place`]: the backward from the kept input, `grad` holding the
    /// output gradient on entry and the input gradient on exit.
    fn backward_in_place(&mut self, _input: SegmentInput, _grad: &mut Tensor) -> Result<()> {
        Err(Error::state(self.name(), "backward_in_place on a layer that does not run in place"))
    }

    /// Reports this layer's own parts to `visitor` (firing rate, gradient norms, audit
    /// recorder, stored bytes) and walks the layers inside it, in forward order. The walks
    /// built on it are in [`Walk`].
    fn visit(&self, _visitor: &mut dyn Visitor) {}

    /// Reports this layer's own mutable parts to `visitor` (parameters, buffers, energy
    /// counters, audit recorder, AAP switch) and walks the layers inside it, in forward order.
    fn visit_mut<'a>(&'a mut self, _visitor: &mut dyn VisitorMut<'a>) {}
}

/// A segment's input as its container keeps it for the backward pass: an f32 tensor, or a
/// spike map bit-packed.
#[derive(Clone, Copy)]
pub enum SegmentInput<'a> {
    Dense(&'a Tensor),
    Packed(&'a SpikeBits),
}

/// One walk over a layer tree: each layer reports its own parts to a visitor and passes it on
/// to the layers inside it ([`Layer::visit`]), in forward order. What a read-only walk sees;
/// every method has an empty default, a visitor overrides what it collects.
pub trait Visitor {
    /// A container reports itself, so that a visitor can look at its concrete type (a
    /// sequence's fusion plan).
    fn container(&mut self, _layer: &dyn Layer) {}

    /// A neuron layer's (or a block output's) mean firing rate in the last forward.
    fn firing_rate(&mut self, _name: String, _rate: f32) {}

    /// The L2 norm of the gradient that reached a block's output in the last backward.
    fn gradient_norm(&mut self, _name: String, _norm: f32) {}

    /// A synaptic layer's audit recorder, under the name its entry carries.
    fn audit(&mut self, _layer: &str, _probe: &AuditProbe) {}

    /// Bytes one layer keeps from the last training forward for its backward pass.
    fn stored_bytes(&mut self, _bytes: usize) {}
}

/// What a mutable walk sees; the references live as long as the borrow of the layer walked.
pub trait VisitorMut<'a> {
    /// A learnable parameter, in the stable order checkpoints use.
    fn param(&mut self, _param: &'a mut Param) {}

    /// A non-learnable state tensor a checkpoint keeps.
    fn buffer(&mut self, _buffer: Buffer<'a>) {}

    /// An energy counter, in forward order.
    fn counter(&mut self, _counter: Counter<'a>) {}

    /// A synaptic layer's audit recorder, to turn on or off.
    fn audit_probe(&mut self, _probe: &'a mut AuditProbe) {}

    /// A dual-stream trunk's switch for its auxiliary accumulation pathway; `available` is
    /// whether the trunk has one.
    fn aap_switch(&mut self, _on: &'a mut bool, _available: bool) {}
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

    pub fn is_on(&self) -> bool {
        self.on
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
        return Err(Error::shape(layer, what, input));
    }
    Ok(())
}

/// Checks that a `[T, N, C, ...]` input has `rank` dimensions per sample, the first of them
/// `channels`; `what` describes the expected shape for the message.
pub fn expect_channels(
    layer: &str,
    input: &[usize],
    rank: usize,
    channels: usize,
    what: &str,
) -> Result<()> {
    expect_sample_rank(layer, input, rank, what)?;
    if input[2] != channels {
        return Err(Error::shape(layer, what, input));
    }
    Ok(())
}

/// Fails unless `grad_output` has the shape the forward produced.
pub fn check_grad_output(label: &str, output: &[usize], grad_output: &[usize]) -> Result<()> {
    if output != grad_output {
        return Err(Error::shape(
            format!("{label} grad_output"),
            format!("{output:?} (the output's shape)"),
            grad_output,
        ));
    }
    Ok(())
}

/// Fails unless `grad_output` has both the shape of the forward `output` and the shape `layer`
/// gives `input`: the checks of a backward pass whose layer keeps no shapes of its own.
/// Returns that output shape.
pub fn check_backward_shapes<L: Layer + ?Sized>(
    layer: &L,
    input: &Tensor,
    output: &Tensor,
    grad_output: &Tensor,
) -> Result<Vec<usize>> {
    let expected = layer.output_shape(input.shape())?;
    check_grad_output(layer.name(), output.shape(), grad_output.shape())?;
    check_grad_output(layer.name(), &expected, grad_output.shape())?;
    Ok(expected)
}

/// A layer seen as [`Any`], so a container can reach the concrete type of a layer it plans a
/// fused pass for (see [`downcast_mut`]). Implemented for every layer type.
pub trait AsAny {
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Any> AsAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// `layer` as a `T`, if it is one.
pub fn downcast_mut<T: Layer + 'static>(layer: &mut dyn Layer) -> Option<&mut T> {
    layer.as_any_mut().downcast_mut::<T>()
}

/// `layer` as a `T`, if it is one.
pub fn downcast_ref<T: Layer + 'static>(layer: &dyn Layer) -> Option<&T> {
    layer.as_any().downcast_ref::<T>()
}

/// Runs `f` on `layer`, adding its duration to the layer's forward (or backward) time when
/// profiling is on (see [`crate::profile`]).
#[inline]
pub fn timed<L: Layer + ?Sized, R>(
    layer: &mut L,
    backward: bool,
    f: impl FnOnce(&mut L) -> R,
) -> R {
    let Some(start) = crate::profile::start() else {
        return f(layer);
    };
    let r = f(layer);
    crate::profile::add(layer.name(), backward, start.elapsed().as_secs_f64());
    r
}
