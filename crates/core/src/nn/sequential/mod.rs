//! A chain of layers. Owns the activations between layers and the gradient buffers, all reused
//! across batches. Activations that are spike maps are kept for the backward pass bit-packed
//! (1 bit per element); only two f32 buffers are shared by all of them, to run the forward and
//! to unpack them again during the backward pass. Those and the two gradient buffers are
//! borrowed from a process-wide pool for the length of each call, so the sequences inside
//! residual blocks share one set instead of keeping one each.
use crate::error::{Error, Result};
use crate::kernels::scratch::{lend_tensor, reclaim_tensor, with_tensors};
use crate::layer::{downcast_ref, Layer, Visitor, VisitorMut};
use crate::spec::Connect;
use crate::tensor::{SpikeBits, Tensor};
use plan::{Concrete, PlanInputs};

#[doc(hidden)]
pub mod backward;
#[doc(hidden)]
pub mod forward;
#[doc(hidden)]
pub mod plan;
mod recompute;

pub(crate) use plan::with_thread_setting as plan_setting;
pub use plan::{with_fusion, FusedOp, Fusion};

/// Where the backward pass finds the activation between layer i and i+1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[doc(hidden)]
pub enum Stored {
    /// An f32 tensor in `activations[i]`.
    Dense,
    /// Bit-packed in `packed[i]`; the forward ran it through a shared f32 buffer.
    Packed,
    /// Not kept: layer i recomputes it from boundary i-1 (which is `Dense`) in backward.
    Recomputed,
    /// Not kept: neither layer i nor layer i+1 reads its values in backward
    /// ([`Layer::backward_reads`]), e.g. a block output that only a max pool reads.
    Unread,
}

thread_local! {
    /// Set while [`inference_only`] runs: no backward pass will follow, so a conv may fold
    /// the eval-mode BN after it into its weights and the BN's pass over the activations (and
    /// the conv output that a backward would read) disappear.
    static INFERENCE_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` (an eval-mode forward whose activations no backward will read) with conv+BN
/// folding on for the sequences it runs on this thread.
#[doc(hidden)]
pub fn inference_only<R>(f: impl FnOnce() -> R) -> R {
    plan::with_thread_setting(&INFERENCE_ONLY, true, f)
}

/// Boundary `k` as the backward pass reads it: its own f32 tensor, or the shared buffer it was
/// unpacked or recomputed into.
fn kept_boundary<'a>(
    activations: &'a [Tensor],
    shared: &'a [Tensor; 2],
    stored: &[Stored],
    k: usize,
) -> &'a Tensor {
    match stored[k] {
        Stored::Dense => &activations[k],
        Stored::Packed | Stored::Recomputed | Stored::Unread => &shared[k % 2],
    }
}

/// The tensors of one backward call of a sequence: its forward input and output, the gradient
/// that reached its output, and where its input gradient goes.
struct BackwardIo<'a> {
    input: &'a Tensor,
    output: &'a Tensor,
    grad_output: &'a Tensor,
    grad_input: &'a mut Tensor,
}

/// The gradient buffers of layer `i`: the one layer `i + 1` wrote, which it reads, and the
/// other one, which it writes (`grad_input` for the first layer).
fn grad_pair<'a>(
    grad_buffers: &'a mut [Tensor; 2],
    i: usize,
    grad_input: &'a mut Tensor,
) -> (&'a Tensor, &'a mut Tensor) {
    let [even, odd] = grad_buffers;
    let (from, to) = if i.is_multiple_of(2) { (&*odd, even) } else { (&*even, odd) };
    (from, if i == 0 { grad_input } else { to })
}

pub struct Sequential {
    name: String,
    layers: Vec<Box<dyn Layer>>,
    /// Whether this sequence's input is normally a spike map (true inside residual blocks).
    input_spikes: bool,
    /// Per boundary i (output of layer i, for i < len-1): the layer is expected to emit spikes.
    #[doc(hidden)]
    pub spiking: Vec<bool>,
    /// Set once packing a boundary found non-binary values; it then stays dense.
    #[doc(hidden)]
    pub not_binary: Vec<bool>,
    /// Per boundary i: no backward pass reads its values (neither layer i's nor layer i+1's,
    /// see [`Layer::backward_reads`]), e.g. a SEW ADD block's output before a max pool. It
    /// then runs through a shared buffer like a spike map and is never kept.
    unread: Vec<bool>,
    /// Per boundary i: layer i recomputes it in backward from boundary i-1, which is kept
    /// as f32 (never itself packed or recomputed, so recomputing needs no second buffer).
    #[doc(hidden)]
    pub recompute: Vec<bool>,
    /// Per layer i: a BN (recomputing its output) followed by a neuron layer. In training the
    /// pair runs as one fused pass (`neuron::kernel::forward_bn` / `backward_bn`), and the BN
    /// output is never written: forward, the BN computes its statistics and the neuron applies
    /// the BN affine on the fly; backward, the neuron writes the BN output's gradient and the
    /// BN's per-channel sums in one pass, then the BN writes its input gradient. The profiler
    /// times the statistics and input-gradient passes under the BN and the fused pass under
    /// the neuron.
    fuse: Vec<bool>,
    #[doc(hidden)]
    pub stored: Vec<Stored>,
    activations: Vec<Tensor>,
    packed: Vec<SpikeBits>,
    /// Shapes of the `Unread` boundaries (backward hands their layers a buffer of that shape).
    unread_shapes: Vec<Vec<usize>>,
    /// Shared f32 buffers for spike maps: boundary i uses `shared[i % 2]`.
    shared: [Tensor; 2],
    /// Which boundary each shared buffer currently holds unpacked during backward.
    shared_holds: [Option<usize>; 2],
    /// Per parity: whether any boundary runs through `shared[p]` (a fused BN's output is never
    /// written), so that a call borrows that buffer from the work-buffer pool. A buffer found
    /// used after all is borrowed from then on.
    shared_needed: [bool; 2],
    grad_buffers: [Tensor; 2],
    /// During [`Sequential::backward_consuming`]: the output gradient sits in the grad buffer
    /// the last layer reads, which it may overwrite.
    grad_output_in_buffer: bool,
    /// The input is a model's directly encoded one (a static sample repeated over time),
    /// whose gradient is only used summed over time (see [`Sequential::set_repeated_input`]).
    repeated_input: bool,
    /// The last training forward's first layer, a conv on the repeated input before a fused
    /// BN + neuron pair, wrote one step only (`Conv2d::forward_one_step`) and the pair took it
    /// as all `T` steps: holds that `T`.
    #[doc(hidden)]
    pub one_step: Option<usize>,
    /// The fused passes the last forward ran, and what that plan was made for.
    plan: Vec<FusedOp>,
    plan_inputs: PlanInputs,
    /// The memory-lean training mode (see `recompute`).
    lean: bool,
    /// The last forward ran in training with the memory-lean mode: its segments kept nothing.
    lean_ran: bool,
    /// Per layer: a segment's buffers before the last training forward, for its second run.
    segment_buffers: Vec<Vec<Tensor>>,
    /// Per boundary, memory-lean mode: a conv's output that only the fused BN + neuron pair
    /// after it reads was freed once the pair ran, and the conv runs again from its kept input
    /// just before the pair's backward (see `recompute`).
    conv_dropped: Vec<bool>,
    /// Per boundary, memory-lean mode: the conv output that the forward is about to free
    /// again runs through a buffer borrowed from the work-buffer pool (see `recompute`).
    conv_pooled: Vec<bool>,
}

impl Sequential {
    pub fn new(name: &str, layers: Vec<Box<dyn Layer>>) -> Result<Self> {
        if layers.is_empty() {
            return Err(Error::spec(name, "a sequence needs at least one layer"));
        }
        let n = layers.len();
        let mut s = Sequential {
            name: name.to_string(),
            layers,
            input_spikes: false,
            spiking: Vec::new(),
            not_binary: vec![false; n - 1],
            unread: vec![false; n - 1],
            recompute: vec![false; n - 1],
            fuse: vec![false; n],
            stored: vec![Stored::Dense; n - 1],
            activations: (0..n - 1).map(|_| Tensor::default()).collect(),
            packed: (0..n - 1).map(|_| SpikeBits::default()).collect(),
            unread_shapes: vec![Vec::new(); n - 1],
            shared: [Tensor::default(), Tensor::default()],
            shared_holds: [None, None],
            shared_needed: [true, true],
            grad_buffers: [Tensor::default(), Tensor::default()],
            grad_output_in_buffer: false,
            repeated_input: false,
            one_step: None,
            plan: Vec::new(),
            plan_inputs: PlanInputs::default(),
            lean: false,
            lean_ran: false,
            segment_buffers: vec![Vec::new(); n],
            conv_dropped: vec![false; n - 1],
            conv_pooled: vec![false; n - 1],
        };
        s.set_input_spikes(false);
        Ok(s)
    }

    /// Declares whether the input is normally spikes (lets spike-preserving layers be packed).
    pub fn set_input_spikes(&mut self, input_spikes: bool) {
        self.input_spikes = input_spikes;
        let mut spikes = input_spikes;
        self.spiking = self
            .layers
            .iter()
            .take(self.layers.len() - 1)
            .map(|layer| {
                spikes = layer.emits_spikes(spikes);
                spikes
            })
            .collect();
        self.unread = (0..self.layers.len() - 1)
            .map(|i| {
                !self.layers[i].backward_reads().output
                    && !self.layers[i + 1].backward_reads().input
            })
            .collect();
        self.recompute = (0..self.layers.len() - 1)
            .map(|i| {
                let input_dense =
                    i == 0 || (!self.spiking[i - 1] && !self.layers[i - 1].recomputes_output());
                self.layers[i].recomputes_output() && !self.spiking[i] && input_dense
            })
            .collect();
        let n = self.layers.len();
        self.fuse = (0..n)
            .map(|i| {
                i + 1 < n
                    && self.recompute[i]
                    && self.layers[i].as_paired_norm().is_some()
                    && self.layers[i + 1].as_neuron().is_some()
            })
            .collect();
        let mut needed = [false; 2];
        for k in 0..n - 1 {
            needed[k % 2] |= self.uses_shared(k) && !self.fuse[k];
        }
        self.shared_needed = needed;
        self.plan.clear();
        // A conv feeding a fused BN takes the BN's statistics on the way (`Conv2d::output_moments`).
        for i in 1..n {
            // A BatchNorm2d before a max pool runs fused with it in training
            // (`FusedOp::BnPool`), which takes the conv's moments too.
            let feeds_fused_bn = self.fuse[i]
                || (i + 1 < n
                    && self.layers[i].as_batch_norm().is_some()
                    && self.layers[i + 1].as_max_pool().is_some());
            if let Some(conv) = self.layers[i - 1].as_conv() {
                conv.keep_output_moments(feeds_fused_bn);
            }
        }
    }

    /// [`Layer::forward`] of a residual branch whose block joins it with `shortcut` by `g`:
    /// in inference, where the last layers are a conv and a neuron run fused on spikes, the
    /// join happens as each sample is written and `output` gets the block's output,
    /// Some(its sum); otherwise None and `output` holds the branch output, for the block to
    /// join. The same numbers either way.
    pub fn forward_joined(
        &mut self,
        input: &Tensor,
        output: &mut Tensor,
        training: bool,
        g: Connect,
        shortcut: &Tensor,
    ) -> Result<Option<f64>> {
        let join = Some((g, shortcut));
        self.with_shared_buffers(|seq| seq.forward_in_buffers(input, output, training, join))
    }

    /// Runs `f` with the shared boundary buffers borrowed from the work-buffer pool.
    fn with_shared_buffers<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        self.borrow_shared();
        let run = f(self);
        self.return_shared();
        run
    }

    /// Takes the shared boundary buffers this sequence uses from the work-buffer pool, the
    /// largest first (as `with_tensors`); a buffer no boundary runs through stays empty, and
    /// the pool keeps it for the calls nested in this one.
    fn borrow_shared(&mut self) {
        for p in 0..2 {
            if self.shared_needed[p] {
                self.shared[p] = reclaim_tensor();
            }
        }
    }

    /// Hands the shared boundary buffers back to the pool. One that was not borrowed yet
    /// was written (a plan that does not fuse a BN) is freed, not pooled, so that the pool
    /// keeps its count, and borrowed from the next call on.
    fn return_shared(&mut self) {
        for p in 0..2 {
            let buffer = std::mem::take(&mut self.shared[p]);
            if self.shared_needed[p] {
                lend_tensor(buffer);
            } else if buffer.capacity() > 0 {
                self.shared_needed[p] = true;
            }
        }
    }

    /// Declares the input a model's directly encoded one: every time step the same, and its
    /// gradient used only summed over time (`Model::backward` sums it). A first conv before a
    /// BN + neuron pair is then computed for one step in training and the pair reads it for
    /// every step, so the stem reads and writes `1 / T` of the data. The input gradient comes
    /// back summed on its first step.
    pub fn set_repeated_input(&mut self, repeated: bool) {
        self.repeated_input = repeated;
    }

    /// The fusion plans of the last forward of this sequence and of the sequences inside it
    /// (residual branches and shortcuts), by name, in forward order.
    pub fn fusion_plans(&self) -> Vec<(String, Vec<FusedOp>)> {
        struct Plans(Vec<(String, Vec<FusedOp>)>);
        impl Visitor for Plans {
            fn container(&mut self, layer: &dyn Layer) {
                if let Some(s) = downcast_ref::<Sequential>(layer) {
                    self.0.push((s.name.clone(), s.plan.clone()));
                }
            }
        }
        let mut plans = Plans(Vec::new());
        self.visit(&mut plans);
        plans.0
    }

    /// Whether the memory-lean training mode is on (see [`Layer::set_memory_lean`]).
    pub fn memory_lean(&self) -> bool {
        self.lean
    }

    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }

    pub(crate) fn layers_mut(&mut self) -> &mut [Box<dyn Layer>] {
        &mut self.layers
    }

    /// Bytes of the activations between this sequence's own layers kept by the last training
    /// forward (packed or not; the caller's input and output are not counted).
    fn boundary_bytes(&self) -> usize {
        self.stored
            .iter()
            .enumerate()
            .map(|(i, s)| match s {
                Stored::Dense => self.activations[i].numel() * 4,
                Stored::Packed => self.packed[i].bytes(),
                Stored::Recomputed | Stored::Unread => 0,
            })
            .sum()
    }

    /// [`Layer::backward`] that may overwrite `grad_output` (left holding no useful values):
    /// the last layers then work in place in it, as they do in the buffers between layers,
    /// instead of reading it and writing a third stream (a SEW block's branch, whose output
    /// gradient is the block's own scratch).
    pub fn backward_consuming(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &mut Tensor,
        grad_input: &mut Tensor,
    ) -> Result<()> {
        let n = self.layers.len();
        // The buffer the last layer reads: layer i reads grad_buffers[1] when i is even.
        let last_reads = if (n - 1).is_multiple_of(2) { 1 } else { 0 };
        // The shared buffers and one gradient buffer from the pool: `grad_output` itself is
        // the other, so no pool buffer sits idle (a whole activation's size) while the layers
        // run.
        self.borrow_shared();
        let run = with_tensors::<1, _>(|bufs| {
            let [c] = bufs;
            self.grad_buffers[1 - last_reads] = std::mem::take(c);
            self.grad_buffers[last_reads] = std::mem::take(grad_output);
            self.grad_output_in_buffer = true;
            let run = self.backward_in_buffers(&mut BackwardIo {
                input,
                output,
                grad_output: &Tensor::default(),
                grad_input,
            });
            self.grad_output_in_buffer = false;
            // Whichever tensor now sits there goes back to the caller (buffers may have traded
            // places): the caller keeps an allocation of its size for the next step.
            *grad_output = std::mem::take(&mut self.grad_buffers[last_reads]);
            *bufs = [std::mem::take(&mut self.grad_buffers[1 - last_reads])];
            run
        });
        self.return_shared();
        run
    }

    /// Runs `f` with the shared spike-map and gradient buffers borrowed from the thread's
    /// scratch pool (see `with_tensors`), and hands them back afterwards.
    fn with_work_buffers<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        self.borrow_shared();
        let run = with_tensors::<2, _>(|bufs| {
            let [c, d] = bufs;
            self.grad_buffers = [std::mem::take(c), std::mem::take(d)];
            let run = f(self);
            let [g0, g1] = std::mem::take(&mut self.grad_buffers);
            *bufs = [g0, g1];
            run
        });
        self.return_shared();
        run
    }

    fn uses_shared(&self, i: usize) -> bool {
        (self.spiking[i] && !self.not_binary[i]) || self.recompute[i] || self.unread[i]
    }

    /// Boundary `i` for a backward call: unpacked if the layer reads its values (`read`), else
    /// only a buffer of its shape (whatever values the shared buffer held).
    fn provide(&mut self, i: usize, read: bool, input: &Tensor) {
        let shape = match self.stored[i] {
            Stored::Packed if !read && self.shared_holds[i % 2] != Some(i) => {
                self.packed[i].shape().to_vec()
            }
            Stored::Unread => {
                assert!(!read, "boundary {i} was not kept, yet its values are read");
                self.unread_shapes[i].clone()
            }
            _ => return self.unpack(i, input),
        };
        self.shared[i % 2].resize_for_overwrite(&shape);
        self.shared_holds[i % 2] = None;
    }

    /// Makes boundary `i` available as f32 in its shared buffer during backward.
    fn unpack(&mut self, i: usize, input: &Tensor) {
        if self.shared_holds[i % 2] == Some(i) {
            return;
        }
        match self.stored[i] {
            Stored::Dense => return,
            Stored::Unread => unreachable!("boundary {i} is read by no backward pass"),
            Stored::Packed => self.packed[i].unpack_into(&mut self.shared[i % 2]),
            Stored::Recomputed => {
                let x = if i == 0 { input } else { &self.activations[i - 1] };
                self.layers[i].recompute_output(x, &mut self.shared[i % 2]);
            }
        }
        self.shared_holds[i % 2] = Some(i);
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
        self.with_shared_buffers(|seq| seq.forward_in_buffers(input, output, training, None))?;
        Ok(())
    }

    fn backward(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        grad_input: &mut Tensor,
    ) -> Result<()> {
        self.with_work_buffers(|seq| {
            seq.backward_in_buffers(&mut BackwardIo { input, output, grad_output, grad_input })
        })
    }

    fn skip_input_grad(&mut self, skip: bool) {
        self.layers[0].skip_input_grad(skip);
    }

    /// The boundaries between layers and the scratch of the layers inside; the shared work
    /// buffers live in the thread's pool and are not this sequence's.
    fn release_stored(&mut self) {
        self.activations.iter_mut().for_each(|a| *a = Tensor::default());
        self.packed.iter_mut().for_each(|p| *p = SpikeBits::default());
        self.layers.iter_mut().for_each(|l| l.release_stored());
    }

    /// Segments its blocks; a dual-stream trunk inside segments its own stages; the convs
    /// before fused BN + neuron pairs run again in backward instead of keeping their output.
    fn set_memory_lean(&mut self, on: bool) {
        self.lean = on;
        self.layers.iter_mut().for_each(|l| l.set_memory_lean(on));
    }

    fn emits_spikes(&self, input_spikes: bool) -> bool {
        self.layers.iter().fold(input_spikes, |spikes, layer| layer.emits_spikes(spikes))
    }

    /// The layers in order, and the activations kept between them.
    fn visit(&self, visitor: &mut dyn Visitor) {
        visitor.container(self);
        visitor.stored_bytes(self.boundary_bytes());
        self.layers.iter().for_each(|l| l.visit(visitor));
    }

    fn visit_mut<'a>(&'a mut self, visitor: &mut dyn VisitorMut<'a>) {
        self.layers.iter_mut().for_each(|l| l.visit_mut(visitor));
    }
}
