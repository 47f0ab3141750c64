//! A chain of layers. Owns the activations between layers and the gradient buffers, all reused
//! across batches. Activations that are spike maps are kept for the backward pass bit-packed
//! (1 bit per element); only two f32 buffers are shared by all of them, to run the forward and
//! to unpack them again during the backward pass. Those and the two gradient buffers are
//! borrowed from a process-wide pool for the length of each call, so the sequences inside
//! residual blocks share one set instead of keeping one each.
use crate::error::{Error, Result};
use crate::kernels::scratch::with_tensors;
use crate::nn::layer::{AuditEntry, Buffer, Layer, Param};
use crate::spec::Connect;
use crate::tensor::{SpikeBits, Tensor};

/// Where the backward pass finds the activation between layer i and i+1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stored {
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

#[cfg(test)]
thread_local! {
    /// Tests: run BN + neuron pairs unfused (to compare), and count the fused forward passes.
    static UNFUSED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static FUSED_PASSES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    static CONV_NEURON_PASSES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Forwards whose last conv + neuron pass wrote a residual join.
    static JOINED_PASSES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    static UNPACKS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Fused BN passes that took their statistics from the conv before them.
    static GIVEN_MOMENTS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Tests: leave max pools after fused pairs to themselves, and count the pooled passes.
    static UNPOOLED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static POOLED_PASSES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Whether this sequence fuses its training BN + neuron pairs (always, except in tests that
/// compare with the unfused pair).
fn fusion_on() -> bool {
    #[cfg(test)]
    {
        !UNFUSED.with(|c| c.get())
    }
    #[cfg(not(test))]
    {
        true
    }
}

/// Runs `f` (an eval-mode forward whose activations no backward will read) with conv+BN
/// folding on for the sequences it runs on this thread.
pub(crate) fn inference_only<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            INFERENCE_ONLY.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(INFERENCE_ONLY.with(|c| c.replace(true)));
    f()
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

pub struct Sequential {
    name: String,
    layers: Vec<Box<dyn Layer>>,
    /// Whether this sequence's input is normally a spike map (true inside residual blocks).
    input_spikes: bool,
    /// Per boundary i (output of layer i, for i < len-1): the layer is expected to emit spikes.
    spiking: Vec<bool>,
    /// Set once packing a boundary found non-binary values; it then stays dense.
    not_binary: Vec<bool>,
    /// Per boundary i: layer i recomputes it in backward from boundary i-1, which is kept
    /// as f32 (never itself packed or recomputed, so recomputing needs no second buffer).
    recompute: Vec<bool>,
    /// Per layer i: a BN (recomputing its output) followed by a neuron layer. In training the
    /// pair runs as one fused pass (`neuron::kernel::forward_bn` / `backward_bn`), and the BN
    /// output is never written: forward, the BN computes its statistics and the neuron applies
    /// the BN affine on the fly; backward, the neuron writes the BN output's gradient and the
    /// BN's per-channel sums in one pass, then the BN writes its input gradient. The profiler
    /// times the statistics and input-gradient passes under the BN and the fused pass under
    /// the neuron.
    fuse: Vec<bool>,
    stored: Vec<Stored>,
    activations: Vec<Tensor>,
    packed: Vec<SpikeBits>,
    /// Shapes of the `Unread` boundaries (backward hands their layers a buffer of that shape).
    unread_shapes: Vec<Vec<usize>>,
    /// Shared f32 buffers for spike maps: boundary i uses `shared[i % 2]`.
    shared: [Tensor; 2],
    /// Which boundary each shared buffer currently holds unpacked during backward.
    shared_holds: [Option<usize>; 2],
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
    one_step: Option<usize>,
    /// Set while a forward pools a fused pair's spikes: the shape of the neuron output it
    /// never wrote.
    pooled_shape: Option<Vec<usize>>,
    /// Per layer: the last training forward ran this BN's fused pair and the max pool after
    /// it as one pass, so their backward runs as one too.
    pooled_pairs: Vec<bool>,
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
            recompute: vec![false; n - 1],
            fuse: vec![false; n],
            stored: vec![Stored::Dense; n - 1],
            activations: (0..n - 1).map(|_| Tensor::default()).collect(),
            packed: (0..n - 1).map(|_| SpikeBits::default()).collect(),
            unread_shapes: vec![Vec::new(); n - 1],
            shared: [Tensor::default(), Tensor::default()],
            shared_holds: [None, None],
            grad_buffers: [Tensor::default(), Tensor::default()],
            grad_output_in_buffer: false,
            repeated_input: false,
            one_step: None,
            pooled_shape: None,
            pooled_pairs: Vec::new(),
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
                    && self.layers[i].as_batch_norm().is_some()
                    && self.layers[i + 1].as_neuron().is_some()
            })
            .collect();
        // A conv feeding a fused BN takes the BN's statistics on the way (`Conv2d::output_moments`).
        for i in 1..n {
            let feeds_fused_bn = self.fuse[i];
            if let Some(conv) = self.layers[i - 1].as_conv() {
                conv.keep_output_moments(feeds_fused_bn);
            }
        }
    }

    /// Declares the input a model's directly encoded one: every time step the same, and its
    /// gradient used only summed over time (`Model::backward` sums it). A first conv before a
    /// BN + neuron pair is then computed for one step in training and the pair reads it for
    /// every step: W1's and the CLI's stem conv, BN and LIF read and write a quarter of the
    /// data (T = 4). The input gradient comes back summed on its first step.
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
        self.forward_with_join(input, output, training, Some((g, shortcut)))
    }

    fn forward_with_join(
        &mut self,
        input: &Tensor,
        output: &mut Tensor,
        training: bool,
        join: Option<(Connect, &Tensor)>,
    ) -> Result<Option<f64>> {
        with_tensors::<2, _>(|bufs| {
            std::mem::swap(&mut self.shared, bufs);
            let run = self.forward_in_buffers(input, output, training, join);
            std::mem::swap(&mut self.shared, bufs);
            run
        })
    }

    pub fn set_repeated_input(&mut self, repeated: bool) {
        self.repeated_input = repeated;
    }

    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
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

    /// The forward pass proper; `shared` holds the borrowed work buffers.
    /// With `join`, a last conv + neuron pair run fused in inference writes the residual
    /// join `g(spikes, o)` into `output` (see `Conv2d::forward_inference`): then Some(sum of
    /// `output`); None when `output` holds this sequence's own output.
    fn forward_in_buffers(
        &mut self,
        input: &Tensor,
        output: &mut Tensor,
        training: bool,
        join: Option<(Connect, &Tensor)>,
    ) -> Result<Option<f64>> {
        let n = self.layers.len();
        let mut joined = None;
        self.shared_holds = [None, None];
        let fold = !training && INFERENCE_ONLY.with(|c| c.get());
        self.one_step = None;
        self.pooled_pairs.clear();
        self.pooled_pairs.resize(n, false);
        let mut i = 0;
        while i < n {
            let in_shared = i > 0 && self.uses_shared(i - 1);
            // Inference: a conv, an eval-mode BN after it (folded into the conv's weights) and
            // a neuron after those run as one layer that writes straight into the last one's
            // output slot; the layers it covers do not run. Training: a BN and the neuron after
            // it run fused (see `fuse`). When the output slot is the shared buffer holding the
            // input, the output goes to the other shared buffer and the two are exchanged
            // (buffers are never reallocated, so no page is touched twice).
            let conv = fold && self.layers[i].as_conv().is_some();
            let bn_folded = conv && i + 1 < n && self.layers[i + 1].eval_affine().is_some();
            let neuron_at = i + 1 + bn_folded as usize;
            let with_neuron = conv
                && fusion_on()
                && neuron_at < n
                && self.layers[neuron_at].as_neuron().is_some();
            let fused = training && self.fuse[i] && fusion_on();
            // A 2x2 max pool after the fused pair pools the spikes while they are in cache.
            let pooled = fused && i + 2 < n && self.pools_after_pair(i);
            let target = if with_neuron {
                neuron_at
            } else if pooled {
                i + 2
            } else if bn_folded || fused {
                i + 1
            } else {
                i
            };
            let target_shared = target < n - 1 && self.uses_shared(target);
            // Shared buffers alternate by position: an odd span lands in the input's buffer.
            let exchange = (target - i) % 2 == 1 && target_shared && in_shared;
            {
                let [even, odd] = &mut self.shared;
                let (shared_prev, shared_this) = if i % 2 == 0 { (odd, even) } else { (even, odd) };
                let mut shared_prev = Some(shared_prev);
                let mut shared_this = Some(shared_this);
                let (before, rest) = self.activations.split_at_mut(i.min(n - 1));
                let x: &Tensor = if i == 0 {
                    input
                } else if in_shared {
                    shared_prev.take().expect("input buffer")
                } else {
                    &before[i - 1]
                };
                let y: &mut Tensor = if target == n - 1 {
                    &mut *output
                } else if target_shared && ((target - i) % 2 == 0 || exchange) {
                    shared_this.take().expect("output buffer")
                } else if target_shared {
                    shared_prev.take().expect("the input is not in this buffer (else exchange)")
                } else {
                    &mut rest[target - i]
                };
                let (this, next) = self.layers.split_at_mut(i + 1);
                if bn_folded || with_neuron {
                    let (bn, after_bn) = next.split_at_mut(bn_folded as usize);
                    let affine = bn.first_mut().and_then(|bn| bn.eval_affine());
                    let neuron = if with_neuron { after_bn[0].as_neuron() } else { None };
                    #[cfg(test)]
                    if neuron.is_some() {
                        CONV_NEURON_PASSES.with(|c| c.set(c.get() + 1));
                    }
                    let conv = this[i].as_conv().expect("checked above");
                    let join = join.filter(|_| with_neuron && target == n - 1);
                    joined = crate::profile::timed(conv, false, |c| {
                        c.forward_inference(x, y, affine, neuron, join)
                    })?;
                } else if fused {
                    let (before_bn, bn_on) = this.split_at_mut(i);
                    let bn = bn_on[0].as_batch_norm().expect("fuse marks a BN");
                    let moments = before_bn
                        .last_mut()
                        .and_then(|l| l.as_conv())
                        .and_then(|c| c.output_moments(x.shape()));
                    #[cfg(test)]
                    GIVEN_MOMENTS.with(|c| c.set(c.get() + moments.is_some() as usize));
                    let repeats = self.one_step.filter(|_| i == 1).unwrap_or(1);
                    crate::profile::timed(&mut *bn, false, |bn| {
                        bn.forward_statistics(x, moments, repeats)
                    })?;
                    let (neuron_slot, after) = next.split_at_mut(1);
                    let neuron =
                        neuron_slot[0].as_neuron().expect("fuse marks a BN before a neuron");
                    let affine = bn.affine(x.shape());
                    if pooled {
                        let pool = after[0].as_max_pool().expect("checked by pools_after_pair");
                        crate::profile::timed(neuron, false, |l| {
                            l.forward_bn_pooled(x, affine, repeats, pool, y)
                        })?;
                        #[cfg(test)]
                        POOLED_PASSES.with(|c| c.set(c.get() + 1));
                        let mut shape = x.shape().to_vec();
                        shape[0] *= repeats;
                        self.pooled_shape = Some(shape);
                        self.pooled_pairs[i] = true;
                    } else if repeats > 1 {
                        crate::profile::timed(neuron, false, |l| {
                            l.forward_bn_repeated(x, affine, repeats, y)
                        })?;
                    } else {
                        crate::profile::timed(neuron, false, |l| l.forward_bn(x, affine, y))?;
                    }
                    #[cfg(test)]
                    FUSED_PASSES.with(|c| c.set(c.get() + 1));
                } else if i == 0
                    && self.repeated_input
                    && training
                    && n > 2
                    && self.fuse[1]
                    && fusion_on()
                    && this[0].as_conv().is_some()
                {
                    // The stem conv before a fused pair: one step of a repeated input is enough.
                    let conv = this[0].as_conv().expect("checked above");
                    if crate::profile::timed(conv, false, |c| c.forward_one_step(x, y))? {
                        self.one_step = Some(x.shape()[0]);
                    }
                } else {
                    crate::profile::timed(&mut *this[i], false, |l| l.forward(x, y, training))?;
                }
            }
            self.note_boundary(i, training);
            if exchange {
                self.shared.swap(0, 1);
            }
            for k in i + 1..=target {
                self.note_boundary(k, training);
            }
            if let Some(shape) = self.pooled_shape.take() {
                // The neuron's output was never written: its shape stands for it.
                assert_eq!(
                    self.stored[i + 1],
                    Stored::Unread,
                    "a pooled neuron's output is read by no backward"
                );
                self.unread_shapes[i + 1] = shape;
            }
            i = target;
            i += 1;
        }
        #[cfg(test)]
        if joined.is_some() {
            JOINED_PASSES.with(|c| c.set(c.get() + 1));
        }
        Ok(joined)
    }

    /// Bookkeeping after layer `i` ran: how boundary `i - 1` (its input) is kept for backward.
    fn note_boundary(&mut self, i: usize, training: bool) {
        let in_shared = i > 0 && self.uses_shared(i - 1);
        if in_shared && self.recompute[i - 1] {
            self.stored[i - 1] = Stored::Recomputed;
        } else if in_shared {
            // Layer i has consumed boundary i-1: keep it packed for backward (training only)
            // if a backward pass reads it.
            let b = i - 1;
            if !self.read_in_backward(b) {
                self.stored[b] = Stored::Unread;
                let shape = self.shared[b % 2].shape();
                self.unread_shapes[b].clear();
                self.unread_shapes[b].extend_from_slice(shape);
                return;
            }
            self.stored[b] = Stored::Packed;
            if training && !self.packed[b].pack(&self.shared[b % 2]) {
                self.not_binary[b] = true;
                self.stored[b] = Stored::Dense;
                let (src, dst) = (&self.shared[b % 2], &mut self.activations[b]);
                dst.copy_from(src);
            }
        } else if i > 0 {
            self.stored[i - 1] = Stored::Dense;
        }
    }

    /// The backward pass proper; `shared` and `grad_buffers` hold the borrowed work buffers.
    fn backward_in_buffers(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        grad_input: &mut Tensor,
    ) -> Result<()> {
        let n = self.layers.len();
        self.shared_holds = [None, None];
        let mut i = n;
        while i > 0 {
            i -= 1;
            if i >= 2 && i < n - 1 && self.pooled_pairs[i - 2] && fusion_on() {
                // The pool's backward runs inside its pair's: the pool's gradient goes to the
                // buffer the neuron would read.
                self.grad_buffers.swap(0, 1);
                i -= 2;
                self.backward_fused(i, true, input, output, grad_output, grad_input)?;
                continue;
            }
            if i > 0 && self.fuse[i - 1] && fusion_on() {
                i -= 1;
                self.backward_fused(i, false, input, output, grad_output, grad_input)?;
                continue;
            }
            let reads = self.layers[i].backward_reads();
            if i < n - 1 {
                self.provide(i, reads.output, input);
            }
            if i > 0 {
                self.provide(i - 1, reads.input, input);
            }
            let (activations, shared, stored) = (&self.activations, &self.shared, &self.stored);
            let boundary = |k: usize| kept_boundary(activations, shared, stored, k);
            let x = if i == 0 { input } else { boundary(i - 1) };
            let y = if i == n - 1 { output } else { boundary(i) };
            // Layer i reads the gradient layer i+1 wrote and writes into the other buffer.
            let [even, odd] = &mut self.grad_buffers;
            let (from, to) = if i % 2 == 0 { (&*odd, even) } else { (&*even, odd) };
            let g_out = if i == n - 1 && !self.grad_output_in_buffer { grad_output } else { from };
            let g_in = if i == 0 { &mut *grad_input } else { to };
            crate::profile::timed(&mut *self.layers[i], true, |l| l.backward(x, y, g_out, g_in))?;
        }
        Ok(())
    }

    /// Backward of the fused pair BN `b`, neuron `b + 1` (see `fuse`): the neuron pass writes
    /// dL/dy into the grad buffer the neuron would have written, the BN reads it and writes dx
    /// where it would have, so the buffers alternate as in the unfused loop. `pooled`: the max
    /// pool `b + 2` ran inside the pair's forward, and its output's gradient is where the
    /// neuron reads; the neuron pass routes it through the pool's argmax itself.
    #[allow(clippy::too_many_arguments)]
    fn backward_fused(
        &mut self,
        b: usize,
        pooled: bool,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        grad_input: &mut Tensor,
    ) -> Result<()> {
        let n = self.layers.len();
        let j = b + 1;
        if j < n - 1 && !pooled {
            let reads = self.layers[j].backward_reads().output;
            self.provide(j, reads, input);
        }
        if b > 0 {
            self.unpack(b - 1, input);
        }
        let (activations, shared, stored) = (&self.activations, &self.shared, &self.stored);
        let boundary = |k: usize| kept_boundary(activations, shared, stored, k);
        let x = if b == 0 { input } else { boundary(b - 1) };
        let y = if j == n - 1 { output } else { boundary(j) };
        let [even, odd] = &mut self.grad_buffers;
        let (g_next, g_bn) = if j % 2 == 0 { (odd, even) } else { (even, odd) };
        let (bn_layer, neuron_layer) = self.layers.split_at_mut(j);
        let bn = bn_layer[b].as_batch_norm().expect("fuse marks a BN");
        let (neuron_slot, after) = neuron_layer.split_at_mut(1);
        let neuron = neuron_slot[0].as_neuron().expect("fuse marks a BN before a neuron");
        let batch_stats = bn.last_used_batch_stats(x.shape())?;
        // The pair took one step for all (`one_step`): its input gradient is that step's.
        let repeated = b == 1 && self.one_step.is_some();
        if pooled {
            let pool = after[0].as_max_pool().expect("pooled_pairs marks a pool");
            let sums = bn.fused_grad(x.shape())?;
            crate::profile::timed(neuron, true, |l| {
                l.backward_bn_pooled(x, g_next, pool, sums, g_bn)
            })?;
        } else if (j < n - 1 || self.grad_output_in_buffer) && b > 0 && !repeated {
            // Both passes in place in the buffer layer j + 1 (or the caller) wrote, where layer
            // b - 1 reads: dL/dS becomes dL/dy (neuron), then dx (BN).
            let sums = bn.fused_grad(x.shape())?;
            crate::profile::timed(neuron, true, |l| l.backward_bn_in_place(x, y, g_next, sums))?;
            return crate::profile::timed(bn, true, |bn| {
                bn.backward_from_sums_in_place(x, g_next, batch_stats);
                Ok(())
            });
        } else {
            let g_out =
                if j == n - 1 && !self.grad_output_in_buffer { grad_output } else { &*g_next };
            let sums = bn.fused_grad(x.shape())?;
            if repeated {
                crate::profile::timed(neuron, true, |l| {
                    l.backward_bn_repeated(x, y, g_out, sums, g_bn)
                })?;
            } else {
                crate::profile::timed(neuron, true, |l| l.backward_bn(x, y, g_out, sums, g_bn))?;
            }
        }
        if b == 0 {
            return crate::profile::timed(bn, true, |bn| {
                bn.backward_from_sums(x, g_bn, grad_input, batch_stats);
                Ok(())
            });
        }
        // dx over dL/dy, in place; the buffers then trade places so that layer b - 1 finds it
        // where it reads (the other one held the neuron's incoming gradient, no longer needed).
        crate::profile::timed(bn, true, |bn| {
            bn.backward_from_sums_in_place(x, g_bn, batch_stats);
            Ok(())
        })?;
        self.grad_buffers.swap(0, 1);
        Ok(())
    }

    /// [`Layer::backward`] that may overwrite `grad_output` (left holding no useful values):
    /// the last layers then work in place in it, as they do in the buffers between layers,
    /// instead of reading it and writing a third stream (a SEW block's branch, whose output
    /// gradient is the block's own scratch: the backward of W1's last neuron in each SEW
    /// branch 2.2-2.3 -> 1.5-1.7 ms at 28x28, 1.0-1.2 -> 0.8-0.9 ms at 14x14).
    pub fn backward_consuming(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &mut Tensor,
        grad_input: &mut Tensor,
    ) -> Result<()> {
        let n = self.layers.len();
        self.with_work_buffers(|seq| {
            // The buffer the last layer reads: layer i reads grad_buffers[1] when i is even.
            let last_reads = if (n - 1) % 2 == 0 { 1 } else { 0 };
            std::mem::swap(&mut seq.grad_buffers[last_reads], grad_output);
            seq.grad_output_in_buffer = true;
            let run = seq.backward_in_buffers(input, output, &Tensor::default(), grad_input);
            seq.grad_output_in_buffer = false;
            // Whichever tensor now sits there goes back to the caller (buffers may have traded
            // places): the caller keeps an allocation of its size for the next step.
            std::mem::swap(&mut seq.grad_buffers[last_reads], grad_output);
            run
        })
    }

    /// Runs `f` with the shared spike-map and gradient buffers borrowed from the thread's
    /// scratch pool (see `with_tensors`), and hands them back afterwards.
    fn with_work_buffers<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        with_tensors::<4, _>(|bufs| {
            let [a, b, c, d] = bufs;
            std::mem::swap(&mut self.shared, &mut [std::mem::take(a), std::mem::take(b)]);
            std::mem::swap(&mut self.grad_buffers, &mut [std::mem::take(c), std::mem::take(d)]);
            let run = f(self);
            let [s0, s1] = std::mem::take(&mut self.shared);
            let [g0, g1] = std::mem::take(&mut self.grad_buffers);
            *bufs = [s0, s1, g0, g1];
            run
        })
    }

    #[cfg(test)]
    fn stored(&self) -> Vec<Stored> {
        self.stored.clone()
    }

    fn uses_shared(&self, i: usize) -> bool {
        (self.spiking[i] && !self.not_binary[i]) || self.recompute[i]
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

    /// Whether layer `b + 2` is a 2x2 max pool that the fused pair BN `b`, neuron `b + 1` can
    /// run inside its pass ([`crate::neuron::NeuronLayer::forward_bn_pooled`]).
    fn pools_after_pair(&mut self, b: usize) -> bool {
        #[cfg(test)]
        if UNPOOLED.with(|c| c.get()) {
            return false;
        }
        let poolable = self.layers[b + 1].as_neuron().is_some_and(|l| l.poolable());
        poolable && self.layers[b + 2].as_max_pool().is_some_and(|p| p.halves())
    }

    /// Whether a backward pass reads the values of boundary `b`: its layer (as output) or the
    /// next (as input).
    fn read_in_backward(&self, b: usize) -> bool {
        self.layers[b].backward_reads().output || self.layers[b + 1].backward_reads().input
    }

    /// Makes boundary `i` available as f32 in its shared buffer during backward.
    fn unpack(&mut self, i: usize, input: &Tensor) {
        if self.shared_holds[i % 2] == Some(i) {
            return;
        }
        match self.stored[i] {
            Stored::Dense => return,
            Stored::Unread => unreachable!("boundary {i} is read by no backward pass"),
            Stored::Packed => {
                #[cfg(test)]
                UNPACKS.with(|c| c.set(c.get() + 1));
                self.packed[i].unpack_into(&mut self.shared[i % 2])
            }
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
        self.forward_with_join(input, output, training, None).map(|_| ())
    }

    fn backward(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        grad_input: &mut Tensor,
    ) -> Result<()> {
        self.with_work_buffers(|seq| {
            seq.backward_in_buffers(input, output, grad_output, grad_input)
        })
    }

    fn skip_input_grad(&mut self, skip: bool) {
        self.layers[0].skip_input_grad(skip);
    }

    fn stored_bytes(&self) -> usize {
        self.boundary_bytes() + self.layers.iter().map(|l| l.stored_bytes()).sum::<usize>()
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

    fn emits_spikes(&self, input_spikes: bool) -> bool {
        self.layers.iter().fold(input_spikes, |spikes, layer| layer.emits_spikes(spikes))
    }

    fn firing_rates(&self, out: &mut Vec<(String, f32)>) {
        for layer in &self.layers {
            layer.firing_rates(out);
        }
    }

    fn gradient_norms(&self, out: &mut Vec<(String, f32)>) {
        self.layers.iter().for_each(|l| l.gradient_norms(out));
    }

    fn set_audit(&mut self, on: bool) {
        self.layers.iter_mut().for_each(|l| l.set_audit(on));
    }

    fn audit(&self, out: &mut Vec<AuditEntry>) {
        self.layers.iter().for_each(|l| l.audit(out));
    }

    fn counters<'a>(&'a mut self, out: &mut Vec<crate::energy::Counter<'a>>) {
        self.layers.iter_mut().for_each(|l| l.counters(out));
    }

    fn set_aap(&mut self, on: bool) {
        self.layers.iter_mut().for_each(|l| l.set_aap(on));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::build_sequential;
    use crate::rng::Rng;
    use crate::spec::LayerSpec;

    fn specs(json: &str) -> Vec<LayerSpec> {
        serde_json::from_str(json).unwrap()
    }

    fn run(seq: &mut Sequential, x: &Tensor, g_seed: u64) -> (Tensor, Tensor, Vec<Tensor>) {
        let mut y = Tensor::default();
        seq.forward(x, &mut y, true).unwrap();
        let mut rng = Rng::new(g_seed);
        let g =
            Tensor::from_vec(y.shape(), (0..y.numel()).map(|_| rng.normal()).collect()).unwrap();
        let mut gx = Tensor::default();
        seq.backward(x, &y, &g, &mut gx).unwrap();
        let mut ps = Vec::new();
        seq.params(&mut ps);
        (y, gx, ps.into_iter().map(|p| p.grad.clone()).collect())
    }

    #[test]
    fn spike_maps_are_kept_bit_packed_and_backward_is_unchanged() {
        let layers = specs(
            r#"[{"type":"conv2d","inChannels":1,"outChannels":4,"kernelSize":[3,3],"padding":[1,1]},
                {"type":"batchNorm2d","numFeatures":4},{"type":"lif"},{"type":"maxPool2d","kernelSize":[2,2]},
                {"type":"flatten"},{"type":"linear","inFeatures":64,"outFeatures":3}]"#,
        );
        let mut rng = Rng::new(1);
        let x = Tensor::from_vec(&[4, 2, 1, 8, 8], (0..512).map(|_| 2.0 * rng.uniform()).collect())
            .unwrap();
        let mut packed = build_sequential("layers", &layers, &mut Rng::new(7)).unwrap();
        // Unfused, so that the comparison below is bit for bit (the fused BN + LIF pass sums
        // in another order; `fused_bn_neuron_pairs_match...` compares it).
        UNPACKS.with(|c| c.set(0));
        let (y1, gx1, g1) = unfused(|| run(&mut packed, &x, 3));
        // Only the linear layer reads its stored input back: the pool (argmax), flatten and
        // LIF backward passes read shapes alone.
        assert_eq!(UNPACKS.with(|c| c.get()), 1);
        // The conv output stays f32 (4 x 2 x 4 x 8 x 8); BN recomputes its output from it in
        // backward; the LIF and pool outputs are read by no backward pass (LIF recomputes its
        // spikes, the pool keeps its argmax, flatten needs shapes only) and are not kept; the
        // flatten output, which the linear layer reads, is kept as bits.
        let dense = 4 * 2 * 4 * 64 * 4;
        let bits = 512usize.div_ceil(64) * 8;
        assert_eq!(
            packed.stored(),
            vec![Stored::Dense, Stored::Recomputed, Stored::Unread, Stored::Unread, Stored::Packed]
        );
        let argmax = 512 * 4;
        assert_eq!(packed.stored_bytes(), dense + bits + argmax);
        // The same network with every boundary forced dense gives bit-identical results.
        let mut plain = build_sequential("layers", &layers, &mut Rng::new(7)).unwrap();
        plain.spiking.iter_mut().for_each(|s| *s = false);
        plain.recompute.iter_mut().for_each(|s| *s = false);
        let (y2, gx2, g2) = unfused(|| run(&mut plain, &x, 3));
        assert_eq!(plain.stored_bytes(), 2 * dense + 2048 * 4 + 512 * 4 * 2 + argmax);
        assert_eq!((y1, gx1, g1), (y2, gx2, g2));
    }

    #[test]
    fn backward_consuming_the_output_gradient_gives_the_same_gradients() {
        // Ending in a fused BN + neuron pair after a conv (worked in place in the consumed
        // gradient), in a lone neuron, and in a conv; odd and even layer counts, since the
        // buffer the last layer reads alternates with them.
        let conv = r#"{"type":"conv2d","inChannels":3,"outChannels":3,"kernelSize":[3,3],"padding":[1,1],"bias":false}"#;
        let (bn, lif) = (
            r#"{"type":"batchNorm2d","numFeatures":3}"#,
            r#"{"type":"lif","tau":2.0,"vThreshold":0.3}"#,
        );
        let sequences = [
            format!("[{conv},{bn},{lif},{conv},{bn},{lif}]"),
            format!("[{lif},{conv},{bn},{lif}]"),
            format!("[{conv},{bn},{lif},{conv},{lif}]"),
            format!("[{conv},{bn},{lif},{conv}]"),
        ];
        let mut rng = Rng::new(4);
        let shape = [2, 3, 3, 6, 6];
        let x = Tensor::from_vec(
            &shape,
            (0..shape.iter().product()).map(|_| 2.0 * rng.uniform()).collect(),
        )
        .unwrap();
        for json in &sequences {
            let layers = specs(json);
            for fused in [true, false] {
                let go = |consume: bool| {
                    let mut seq = build_sequential("layers", &layers, &mut Rng::new(8)).unwrap();
                    let mut y = Tensor::default();
                    seq.forward(&x, &mut y, true).unwrap();
                    let mut rng = Rng::new(9);
                    let mut g =
                        Tensor::from_vec(y.shape(), (0..y.numel()).map(|_| rng.normal()).collect())
                            .unwrap();
                    let mut gx = Tensor::default();
                    if consume {
                        seq.backward_consuming(&x, &y, &mut g, &mut gx).unwrap();
                    } else {
                        seq.backward(&x, &y, &g, &mut gx).unwrap();
                    }
                    let mut ps = Vec::new();
                    seq.params(&mut ps);
                    (gx, ps.into_iter().map(|p| p.grad.clone()).collect::<Vec<_>>())
                };
                let (want, got) =
                    if fused { (go(false), go(true)) } else { unfused(|| (go(false), go(true))) };
                assert!(want.0.data().iter().any(|&v| v != 0.0), "{json}: zero input gradient");
                assert_eq!(got, want, "{json} (fused {fused})");
            }
        }
    }

    /// Runs `f` with BN + neuron fusion off; returns its result.
    fn unfused<R>(f: impl FnOnce() -> R) -> R {
        UNFUSED.with(|c| c.set(true));
        let r = f();
        UNFUSED.with(|c| c.set(false));
        r
    }

    /// Builds `layers` twice, trains both on `x` (BN statistics), switches any AAP off, and runs
    /// inference with and without conv + neuron fusion: `joins` blocks must join in their last
    /// conv pass, with the same output bits and firing rates as the unfused run. Returns both.
    fn joined_against_unfused(
        layers: &[LayerSpec],
        x: &Tensor,
        joins: usize,
        what: &str,
    ) -> (Sequential, Sequential) {
        let mut fused = build_sequential("layers", layers, &mut Rng::new(4)).unwrap();
        let mut plain = build_sequential("layers", layers, &mut Rng::new(4)).unwrap();
        for net in [&mut fused, &mut plain] {
            for _ in 0..30 {
                net.forward(x, &mut Tensor::default(), true).unwrap();
            }
            net.set_aap(false);
        }
        JOINED_PASSES.with(|c| c.set(0));
        let (mut y1, mut y2) = (Tensor::default(), Tensor::default());
        inference_only(|| fused.forward(x, &mut y1, false)).unwrap();
        assert_eq!(JOINED_PASSES.with(|c| c.get()), joins, "{what}: joins in a conv pass");
        unfused(|| inference_only(|| plain.forward(x, &mut y2, false))).unwrap();
        assert_eq!(
            JOINED_PASSES.with(|c| c.get()),
            joins,
            "{what}: the unfused run joined in a conv pass"
        );
        assert_eq!(y1.shape(), y2.shape(), "{what}");
        assert!(y1.data().iter().zip(y2.data()).all(|(a, b)| a.to_bits() == b.to_bits()), "{what}");
        let (mut r1, mut r2) = (Vec::new(), Vec::new());
        fused.firing_rates(&mut r1);
        plain.firing_rates(&mut r2);
        assert_eq!(r1, r2, "{what}");
        assert!(r1.iter().all(|(_, r)| *r > 0.0 && *r < 1.0), "{what}: {r1:?}");
        (fused, plain)
    }

    #[test]
    fn a_sew_block_joins_in_its_last_conv_pass_with_the_same_bits_and_rates() {
        let mut rng = Rng::new(21);
        let shape = [3, 2, 2, 12, 11];
        let n: usize = shape.iter().product();
        let x =
            Tensor::from_vec(&shape, (0..n).map(|_| (rng.uniform() < 0.15) as u8 as f32).collect())
                .unwrap();
        for connect in ["or", "and", "iand", "xor", "add"] {
            let layers = specs(&format!(
                r#"[{{"type":"conv2d","inChannels":2,"outChannels":16,"kernelSize":[3,3],"padding":[1,1],"bias":false}},
                    {{"type":"batchNorm2d","numFeatures":16}},{{"type":"lif","vThreshold":0.3}},
                    {{"type":"sewBlock","connect":"{connect}","branch":[
                      {{"type":"conv2d","inChannels":16,"outChannels":16,"kernelSize":[3,3],"padding":[1,1],"bias":false}},
                      {{"type":"batchNorm2d","numFeatures":16}},{{"type":"lif","vThreshold":0.5}},
                      {{"type":"conv2d","inChannels":16,"outChannels":16,"kernelSize":[3,3],"padding":[1,1],"bias":false}},
                      {{"type":"batchNorm2d","numFeatures":16}},{{"type":"plif","vThreshold":0.3}}]}}]"#
            ));
            let (mut fused, mut plain) = joined_against_unfused(&layers, &x, 1, connect);
            // The block in training afterwards: its branch output is its own again.
            let (mut t1, mut t2) = (Tensor::default(), Tensor::default());
            fused.forward(&x, &mut t1, true).unwrap();
            plain.forward(&x, &mut t2, true).unwrap();
            assert_eq!(t1, t2, "{connect}: training after inference");
        }
    }

    #[test]
    fn full_spike_dual_stream_blocks_join_in_their_last_conv_pass_with_the_same_bits() {
        let mut rng = Rng::new(22);
        let shape = [3, 2, 2, 12, 12];
        let n: usize = shape.iter().product();
        let x =
            Tensor::from_vec(&shape, (0..n).map(|_| (rng.uniform() < 0.15) as u8 as f32).collect())
                .unwrap();
        let block = |connect: &str| {
            format!(
                r#"{{"type":"block","connect":"{connect}","branch":[
                  {{"type":"conv2d","inChannels":16,"outChannels":16,"kernelSize":[3,3],"padding":[1,1],"bias":false}},
                  {{"type":"batchNorm2d","numFeatures":16}},{{"type":"lif","vThreshold":0.5}},
                  {{"type":"conv2d","inChannels":16,"outChannels":16,"kernelSize":[3,3],"padding":[1,1],"bias":false}},
                  {{"type":"batchNorm2d","numFeatures":16}},{{"type":"lif","vThreshold":0.3}}]}}"#
            )
        };
        let layers = specs(&format!(
            r#"[{{"type":"conv2d","inChannels":2,"outChannels":16,"kernelSize":[3,3],"padding":[1,1],"bias":false}},
                {{"type":"batchNorm2d","numFeatures":16}},{{"type":"lif","vThreshold":0.3}},
                {{"type":"dualStream","aap":true,"headPool":"flatten","head":{{"inFeatures":576,"outFeatures":10}},
                  "stages":[{},{{"type":"maxPool2d","kernelSize":[2,2]}},{}]}}]"#,
            block("or"),
            block("iand")
        ));
        joined_against_unfused(&layers, &x, 2, "or, iand");
    }

    #[test]
    fn inference_feeds_each_conv_to_its_neuron_in_cache_with_the_same_spikes() {
        // conv-BN-LIF stem, a SEW block (conv-BN-PLIF-conv-BN-LIF), a pool, a conv with bias
        // straight into IF, a conv-BN-LIF ending the sequence (writes the caller's output),
        // and a conv-BN without a neuron.
        let layers = specs(
            r#"[{"type":"conv2d","inChannels":2,"outChannels":8,"kernelSize":[3,3],"padding":[1,1],"bias":false},
                {"type":"batchNorm2d","numFeatures":8},{"type":"lif","tau":2.0,"vThreshold":0.5},
                {"type":"sewBlock","connect":"iand","branch":[
                  {"type":"conv2d","inChannels":8,"outChannels":8,"kernelSize":[3,3],"padding":[1,1],"bias":false},
                  {"type":"batchNorm2d","numFeatures":8},{"type":"plif","vReset":null},
                  {"type":"conv2d","inChannels":8,"outChannels":8,"kernelSize":[3,3],"padding":[1,1],"bias":false},
                  {"type":"batchNorm2d","numFeatures":8},{"type":"lif","vThreshold":0.4}]},
                {"type":"maxPool2d","kernelSize":[2,2]},
                {"type":"conv2d","inChannels":8,"outChannels":5,"kernelSize":[3,3],"padding":[1,1]},{"type":"if","vThreshold":0.3},
                {"type":"conv2d","inChannels":5,"outChannels":6,"kernelSize":[3,3],"stride":[2,2]},
                {"type":"batchNorm2d","numFeatures":6},{"type":"lif","vThreshold":0.2}]"#,
        );
        let mut rng = Rng::new(3);
        let shape = [3, 4, 2, 14, 14];
        let n: usize = shape.iter().product();
        let image: Vec<f32> = (0..n / 3).map(|_| 2.0 * rng.uniform()).collect();
        let inputs = [
            (
                "sparse spikes",
                Tensor::from_vec(
                    &shape,
                    (0..n).map(|_| (rng.uniform() < 0.15) as u8 as f32).collect(),
                )
                .unwrap(),
            ),
            (
                "real values",
                Tensor::from_vec(&shape, (0..n).map(|_| 2.0 * rng.uniform()).collect()).unwrap(),
            ),
            // Direct encoding: the stem convolves the image once for all steps.
            ("a static image", Tensor::from_vec(&shape, image.repeat(3)).unwrap()),
        ];
        let mut fused = build_sequential("layers", &layers, &mut Rng::new(9)).unwrap();
        let mut plain = build_sequential("layers", &layers, &mut Rng::new(9)).unwrap();
        for (what, x) in &inputs {
            // Running statistics of this input, as after training on its kind.
            for net in [&mut fused, &mut plain] {
                for _ in 0..30 {
                    net.forward(x, &mut Tensor::default(), true).unwrap();
                }
            }
            CONV_NEURON_PASSES.with(|c| c.set(0));
            let (mut y1, mut y2) = (Tensor::default(), Tensor::default());
            inference_only(|| fused.forward(x, &mut y1, false)).unwrap();
            assert_eq!(CONV_NEURON_PASSES.with(|c| c.get()), 5, "{what}");
            unfused(|| inference_only(|| plain.forward(x, &mut y2, false))).unwrap();
            assert_eq!(CONV_NEURON_PASSES.with(|c| c.get()), 5, "{what}: the unfused run fused");
            assert_eq!(y1.shape(), &[3, 4, 6, 3, 3]);
            let (mut r1, mut r2) = (Vec::new(), Vec::new());
            fused.firing_rates(&mut r1);
            assert!(y1.data().iter().any(|&v| v == 1.0), "{what}: the last layer fires ({r1:?})");
            assert_eq!(y1, y2, "{what}");
            plain.firing_rates(&mut r2);
            assert_eq!(r1, r2, "{what}");
            assert!(r1.iter().all(|(_, r)| *r > 0.0 && *r < 1.0), "{what}: {r1:?}");
        }
    }

    #[test]
    fn a_repeated_input_runs_the_stem_for_one_step_with_the_same_results() {
        for stem_neuron in
            [r#"{"type":"lif","tau":2.0,"detachReset":true}"#, r#"{"type":"plif","vReset":null}"#]
        {
            let layers = specs(&format!(
                r#"[{{"type":"conv2d","inChannels":2,"outChannels":6,"kernelSize":[3,3],"padding":[1,1]}},
                    {{"type":"batchNorm2d","numFeatures":6}},{stem_neuron},
                    {{"type":"sewBlock","connect":"iand","branch":[
                      {{"type":"conv2d","inChannels":6,"outChannels":6,"kernelSize":[3,3],"padding":[1,1]}},
                      {{"type":"batchNorm2d","numFeatures":6}},{{"type":"lif"}}]}},
                    {{"type":"maxPool2d","kernelSize":[2,2]}},
                    {{"type":"flatten"}},{{"type":"linear","inFeatures":294,"outFeatures":3}}]"#
            ));
            let (t_len, n) = (3, 4);
            let mut rng = Rng::new(12);
            let step: Vec<f32> = (0..n * 2 * 196).map(|_| 2.0 * rng.uniform()).collect();
            let repeated = Tensor::from_vec(&[t_len, n, 2, 14, 14], step.repeat(t_len)).unwrap();
            let varying = Tensor::from_vec(
                &[t_len, n, 2, 14, 14],
                (0..t_len * step.len()).map(|_| 2.0 * rng.uniform()).collect(),
            )
            .unwrap();
            let mut one_step = build_sequential("layers", &layers, &mut Rng::new(5)).unwrap();
            one_step.set_repeated_input(true);
            let mut plain = build_sequential("layers", &layers, &mut Rng::new(5)).unwrap();
            for k in 0..2 {
                let what = format!("{stem_neuron}, step {k}");
                let (y1, gx1, g1) = run(&mut one_step, &repeated, 30 + k);
                assert_eq!(one_step.one_step, Some(t_len), "{what}");
                let stored = one_step.stored_bytes();
                let (y2, gx2, g2) = run(&mut plain, &repeated, 30 + k);
                assert_eq!(plain.one_step, None);
                // The stem conv's output is kept for one step instead of T.
                assert_eq!(plain.stored_bytes() - stored, (t_len - 1) * n * 6 * 196 * 4, "{what}");
                // The BN statistics of one step equal the repeated input's up to rounding, so
                // the spikes agree (no membrane potential lands within rounding of V_th here).
                assert_eq!(y1, y2, "{what}: outputs");
                let close = |a: &[f32], b: &[f32], item: &str| {
                    let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
                    for (i, (p, q)) in a.iter().zip(b).enumerate() {
                        assert!(
                            (p - q).abs() <= 1e-5 * scale + 1e-6,
                            "{what} {item}[{i}]: {p} vs {q}"
                        );
                    }
                };
                // The input gradient comes back summed over time on the first step.
                let per_step = gx2.numel() / t_len;
                let summed: Vec<f32> = (0..per_step)
                    .map(|i| (0..t_len).map(|t| gx2.data()[t * per_step + i]).sum())
                    .collect();
                close(&gx1.data()[..per_step], &summed, "input grad summed over time");
                assert!(gx1.data()[per_step..].iter().all(|&v| v == 0.0), "{what}");
                for (p, (a, b)) in g1.iter().zip(&g2).enumerate() {
                    close(a.data(), b.data(), &format!("param {p} grad"));
                }
                let (mut b1, mut b2) = (Vec::new(), Vec::new());
                one_step.buffers(&mut b1);
                plain.buffers(&mut b2);
                for (a, b) in b1.iter().zip(&b2) {
                    close(a.value.data(), b.value.data(), &format!("buffer {}", a.name));
                }
                // An input that does not repeat takes the plain path, with the same bits (the
                // parameter gradients add to the above, so they are only close).
                let (y1, gx1, g1) = run(&mut one_step, &varying, 40 + k);
                assert_eq!(one_step.one_step, None);
                let (y2, gx2, g2) = run(&mut plain, &varying, 40 + k);
                assert_eq!((y1, gx1), (y2, gx2), "{what}: varying input");
                for (p, (a, b)) in g1.iter().zip(&g2).enumerate() {
                    close(a.data(), b.data(), &format!("param {p} grad after a varying input"));
                }
            }
        }
    }

    #[test]
    fn a_max_pool_after_a_fused_pair_pools_its_spikes_in_cache_with_the_same_bits() {
        // Maps whose planes are (14x14) and are not (13x13: floor mode, odd planes) a
        // multiple of the neuron's register block; LIF and PLIF; a varying input and a
        // directly encoded one (the stem pair then reads one step for all T).
        for (side, neuron) in [
            (14, r#"{"type":"lif","tau":2.0,"detachReset":true}"#),
            (13, r#"{"type":"plif","vReset":null}"#),
        ] {
            let pooled_side = side / 2;
            let layers = specs(&format!(
                r#"[{{"type":"conv2d","inChannels":2,"outChannels":5,"kernelSize":[3,3],"padding":[1,1]}},
                    {{"type":"batchNorm2d","numFeatures":5}},{neuron},
                    {{"type":"maxPool2d","kernelSize":[2,2]}},
                    {{"type":"conv2d","inChannels":5,"outChannels":4,"kernelSize":[3,3],"padding":[1,1]}},
                    {{"type":"batchNorm2d","numFeatures":4}},{{"type":"lif"}},
                    {{"type":"maxPool2d","kernelSize":[2,2]}},
                    {{"type":"flatten"}},{{"type":"linear","inFeatures":{},"outFeatures":3}}]"#,
                4 * (pooled_side / 2) * (pooled_side / 2)
            ));
            let (t_len, n) = (3, 4);
            let mut rng = Rng::new(13);
            let step: Vec<f32> = (0..n * 2 * side * side).map(|_| 2.0 * rng.uniform()).collect();
            let repeated =
                Tensor::from_vec(&[t_len, n, 2, side, side], step.repeat(t_len)).unwrap();
            let varying = Tensor::from_vec(
                &[t_len, n, 2, side, side],
                (0..t_len * step.len()).map(|_| 2.0 * rng.uniform()).collect(),
            )
            .unwrap();
            for (input, direct) in [(&varying, false), (&repeated, true)] {
                let mut pooled = build_sequential("layers", &layers, &mut Rng::new(5)).unwrap();
                let mut apart = build_sequential("layers", &layers, &mut Rng::new(5)).unwrap();
                pooled.set_repeated_input(direct);
                apart.set_repeated_input(direct);
                for k in 0..2 {
                    let what = format!("{side}x{side} {neuron}, direct {direct}, step {k}");
                    POOLED_PASSES.with(|c| c.set(0));
                    let (y1, gx1, g1) = run(&mut pooled, input, 50 + k);
                    // Both conv-BN-neuron-pool runs.
                    assert_eq!(POOLED_PASSES.with(|c| c.get()), 2, "{what}");
                    UNPOOLED.with(|c| c.set(true));
                    let (y2, gx2, g2) = run(&mut apart, input, 50 + k);
                    UNPOOLED.with(|c| c.set(false));
                    assert_eq!(
                        POOLED_PASSES.with(|c| c.get()),
                        2,
                        "{what}: the unpooled run pooled"
                    );
                    assert_eq!((y1, gx1, g1), (y2, gx2, g2), "{what}: outputs and gradients");
                    assert_eq!(pooled.stored_bytes(), apart.stored_bytes(), "{what}");
                    let (mut r1, mut r2) = (Vec::new(), Vec::new());
                    pooled.firing_rates(&mut r1);
                    apart.firing_rates(&mut r2);
                    assert_eq!(r1, r2, "{what}");
                }
            }
        }
        // A pool that ends the sequence: pooled forward, its own backward.
        let layers = specs(
            r#"[{"type":"conv2d","inChannels":2,"outChannels":3,"kernelSize":[3,3],"padding":[1,1]},
                {"type":"batchNorm2d","numFeatures":3},{"type":"lif"},{"type":"maxPool2d","kernelSize":[2,2]}]"#,
        );
        let x = Tensor::from_vec(
            &[2, 3, 2, 10, 10],
            (0..2 * 3 * 2 * 100).map(|i| ((i * 37) % 23) as f32 / 8.0).collect(),
        )
        .unwrap();
        let mut pooled = build_sequential("layers", &layers, &mut Rng::new(6)).unwrap();
        let mut apart = build_sequential("layers", &layers, &mut Rng::new(6)).unwrap();
        POOLED_PASSES.with(|c| c.set(0));
        let a = run(&mut pooled, &x, 60);
        assert_eq!(POOLED_PASSES.with(|c| c.get()), 1);
        UNPOOLED.with(|c| c.set(true));
        let b = run(&mut apart, &x, 60);
        UNPOOLED.with(|c| c.set(false));
        assert_eq!(a, b, "a pool at the end");
    }

    #[test]
    fn fused_bn_neuron_pairs_match_the_unfused_layers_inside_blocks_too() {
        // Stem conv-BN-LIF, a SEW block whose branch is conv-BN-PLIF-conv-BN-LIF, a BN-IF pair
        // after a pool (its input is spikes: not fused, since the BN input is then not kept
        // as f32), pooling and a linear head.
        let layers = specs(
            r#"[{"type":"conv2d","inChannels":2,"outChannels":6,"kernelSize":[3,3],"padding":[1,1]},
                {"type":"batchNorm2d","numFeatures":6},{"type":"lif","tau":2.0},
                {"type":"sewBlock","connect":"iand","branch":[
                  {"type":"conv2d","inChannels":6,"outChannels":6,"kernelSize":[3,3],"padding":[1,1]},
                  {"type":"batchNorm2d","numFeatures":6},{"type":"plif","vReset":null},
                  {"type":"conv2d","inChannels":6,"outChannels":6,"kernelSize":[3,3],"padding":[1,1]},
                  {"type":"batchNorm2d","numFeatures":6},{"type":"lif","detachReset":true}]},
                {"type":"maxPool2d","kernelSize":[2,2]},
                {"type":"batchNorm2d","numFeatures":6},{"type":"if"},
                {"type":"flatten"},{"type":"linear","inFeatures":294,"outFeatures":3}]"#,
        );
        let mut rng = Rng::new(11);
        let x = Tensor::from_vec(
            &[3, 4, 2, 14, 14],
            (0..3 * 4 * 2 * 196).map(|_| 2.0 * rng.uniform()).collect(),
        )
        .unwrap();
        let mut fused = build_sequential("layers", &layers, &mut Rng::new(5)).unwrap();
        let mut plain = build_sequential("layers", &layers, &mut Rng::new(5)).unwrap();
        for step in 0..2 {
            FUSED_PASSES.with(|c| c.set(0));
            GIVEN_MOMENTS.with(|c| c.set(0));
            let (y1, gx1, g1) = run(&mut fused, &x, 20 + step);
            // The stem's pair and the block branch's two pairs; not the pair after the pool.
            assert_eq!(FUSED_PASSES.with(|c| c.get()), 3);
            // Each of those BNs took its statistics from its conv (the unfused run computes
            // them itself, the same numbers: the outputs below agree bit for bit).
            assert_eq!(GIVEN_MOMENTS.with(|c| c.get()), 3);
            let (y2, gx2, g2) = unfused(|| run(&mut plain, &x, 20 + step));
            assert_eq!(FUSED_PASSES.with(|c| c.get()), 3, "the unfused run fused");
            assert_eq!(y1, y2, "step {step}: outputs");
            assert_eq!(fused.stored_bytes(), plain.stored_bytes());
            let close = |a: &Tensor, b: &Tensor, what: &str| {
                let scale = b.data().iter().fold(1e-6f32, |m, v| m.max(v.abs()));
                for (i, (p, q)) in a.data().iter().zip(b.data()).enumerate() {
                    // The absolute term covers conv biases before a BN, whose gradient is 0 up to
                    // rounding noise.
                    assert!(
                        (p - q).abs() <= 1e-5 * scale + 1e-6,
                        "step {step} {what}[{i}]: {p} vs {q}"
                    );
                }
            };
            close(&gx1, &gx2, "input grad");
            assert_eq!(g1.len(), g2.len());
            for (k, (a, b)) in g1.iter().zip(&g2).enumerate() {
                close(a, b, &format!("param {k} grad"));
            }
            let (mut r1, mut r2) = (Vec::new(), Vec::new());
            fused.firing_rates(&mut r1);
            plain.firing_rates(&mut r2);
            assert_eq!(r1, r2);
            // Move the weights identically (plain SGD on the fused grads) so step 2 differs.
            let (mut p1, mut p2) = (Vec::new(), Vec::new());
            fused.params(&mut p1);
            plain.params(&mut p2);
            for (a, b) in p1.iter_mut().zip(p2.iter_mut()) {
                let g = a.grad.clone();
                for ((va, vb), &gv) in
                    a.value.data_mut().iter_mut().zip(b.value.data_mut()).zip(g.data())
                {
                    *va -= 0.1 * gv;
                    *vb -= 0.1 * gv;
                }
                a.grad.data_mut().fill(0.0);
                b.grad.data_mut().fill(0.0);
            }
        }
    }

    #[test]
    fn a_wrong_spike_hint_falls_back_to_dense_storage() {
        // Declared spiking input, but the values are not binary: packing refuses, results stay exact.
        let layers = specs(
            r#"[{"type":"maxPool2d","kernelSize":[2,2]},{"type":"flatten"},{"type":"linear","inFeatures":16,"outFeatures":2}]"#,
        );
        let mut rng = Rng::new(4);
        let x =
            Tensor::from_vec(&[2, 3, 1, 8, 8], (0..384).map(|_| rng.normal()).collect()).unwrap();
        let mut hinted = build_sequential("s", &layers, &mut Rng::new(2)).unwrap();
        hinted.set_input_spikes(true);
        let mut plain = build_sequential("s", &layers, &mut Rng::new(2)).unwrap();
        for _ in 0..2 {
            assert_eq!(run(&mut hinted, &x, 5), run(&mut plain, &x, 5));
        }
        // The pool output is read by no backward pass (not kept, so never checked); the
        // flatten output, which the linear layer reads, is kept dense.
        assert_eq!(hinted.not_binary, vec![false, true]);
        assert_eq!(hinted.stored(), vec![Stored::Unread, Stored::Dense]);
    }
}
