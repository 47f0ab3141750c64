//! A SEW block's branch over chunks of time steps, for the memory-lean mode: a branch conv,
//! BN, neuron, conv, BN, neuron (the pairs fused) behind an identity shortcut joined by ADD.
//! Every map it computes is one chunk of steps; only the block input and output, the output
//! gradient, the inner neuron's spikes (bit-packed), each neuron's charge at the chunk
//! boundaries and per-element state carried across chunks (see `neuron::kernel::window`)
//! span all steps.
//!
//! Forward ([`forward`]): a BN's statistics need its whole input first, so each conv runs
//! twice, the first time only for its output's per-plane moments (merged in plane order, as
//! the whole-sequence BN merges them: the same statistics), then the fused BN + neuron window
//! after it. The block output's spikes are written chunk by chunk.
//!
//! Backward ([`backward`]): a BN's input gradient needs its sums over all steps first, so the
//! chunks run three times, last chunk first each time: (A) the second conv again and the last
//! neuron's BPTT, for the second BN's sums; (B) that again, the second BN's and conv's
//! backward (its weight gradient collected per chunk, see `kernels::conv::WgradParts`) and the
//! inner neuron's BPTT, for the first BN's sums; (C) all of that once more, the first BN's and
//! conv's backward and the block's input gradient. The second conv runs three more times per
//! step, the first two, the last neuron's BPTT three times and the inner one's twice. Every
//! number is the default mode's, bit for bit: the convs run the kernel a forward over all
//! steps would run, and the BN moments, the neuron and BN sums and the weight-gradient trees
//! add up in the order of one pass over all steps.
use std::cell::Cell;

use crate::error::Result;
use crate::kernels::batch_norm::{sample_moments, ChannelAffine};
use crate::kernels::connect::connect_backward_add_o;
use crate::kernels::conv::{wgrad_cuts_leaf, WgradParts};
use crate::kernels::scratch::empty_idle_tensors;
use crate::kernels::spike_conv::{spike_stats, SpikeStats};
use crate::layer::{downcast_mut, downcast_ref, Layer};
use crate::neuron::kernel::window::{backward_window, forward_window, window_sums, WindowCarry};
use crate::neuron::NeuronLayer;
use crate::nn::conv2d::repeats_one_step;
use crate::nn::sequential::plan_setting;
use crate::nn::sequential::{FusedOp, Sequential};
use crate::nn::{BatchNorm2d, Conv2d};
use crate::spec::Connect;
use crate::tensor::memory::resized;
use crate::tensor::{SpikeBits, Tensor};

thread_local! {
    pub(crate) static CHUNKED_RUNS: Cell<usize> = const { Cell::new(0) };
    static CHUNKED: Cell<bool> = const { Cell::new(true) };
}

/// Runs `f` with the memory-lean mode's SEW blocks over chunks of time steps (`on`, the
/// default) or over all steps at once on this thread.
#[doc(hidden)]
pub fn with_chunked_backward<R>(on: bool, f: impl FnOnce() -> R) -> R {
    plan_setting(&CHUNKED, on, f)
}

/// How many branch backward passes ran over chunks of time steps on this thread (for tests).
#[doc(hidden)]
pub fn chunked_runs() -> usize {
    CHUNKED_RUNS.with(|c| c.get())
}

/// Time steps per chunk for `t_len` steps: an eighth of them (at least one).
fn chunk_steps(t_len: usize) -> usize {
    t_len.div_ceil(8).max(1)
}

/// The chunks `(t0, len)` of `t_len` steps: [`chunk_steps`] each, longer where a boundary
/// would cut a leaf of the weight-gradient tree over `t_len * n` planes. None for one chunk.
fn chunks(t_len: usize, n: usize) -> Option<Vec<(usize, usize)>> {
    let step = chunk_steps(t_len);
    let mut out = Vec::new();
    let mut t0 = 0;
    while t0 < t_len {
        let mut t1 = (t0 + step).min(t_len);
        while t1 < t_len && wgrad_cuts_leaf(t_len * n, t1 * n) {
            t1 += 1;
        }
        out.push((t0, t1 - t0));
        t0 = t1;
    }
    (out.len() > 1).then_some(out)
}

/// Whether `branch`'s training forward fits these passes: conv, BN, neuron, conv, BN, neuron
/// with both pairs fused, the first conv's input gradient wanted.
fn fits(branch: &mut Sequential) -> bool {
    let fused = matches!(
        branch.training_plan(),
        [
            FusedOp::Layer(0),
            FusedOp::BnNeuron { bn: 1, pool: false, .. },
            FusedOp::Layer(3),
            FusedOp::BnNeuron { bn: 4, pool: false, .. }
        ]
    );
    let l = branch.layers();
    let conv = |i: usize| downcast_ref::<Conv2d>(l[i].as_ref()).is_some();
    let bn = |i: usize| downcast_ref::<BatchNorm2d>(l[i].as_ref()).is_some();
    let neuron =
        |i: usize| downcast_ref::<NeuronLayer>(l[i].as_ref()).is_some_and(|n| !n.monitored());
    fused
        && l.len() == 6
        && conv(0)
        && bn(1)
        && neuron(2)
        && conv(3)
        && bn(4)
        && neuron(5)
        && downcast_ref::<Conv2d>(l[0].as_ref()).is_some_and(|c| !c.skips_input_grad())
}

/// Steps `[t0, t0 + len)` of `x` (`[T, ...]`) into `out`.
pub(crate) fn steps_of(x: &Tensor, t0: usize, len: usize, out: &mut Tensor) {
    let step = x.numel() / x.shape()[0];
    let mut shape = x.shape().to_vec();
    shape[0] = len;
    out.resize_for_overwrite(&shape);
    out.data_mut().copy_from_slice(&x.data()[t0 * step..(t0 + len) * step]);
}

/// One BN's affine and mean as its last forward used them, owned.
pub(crate) struct Affine {
    scale: Vec<f32>,
    shift: Vec<f32>,
    pub(crate) mean: Vec<f32>,
    hw: usize,
    pub(crate) batch_stats: bool,
}

impl Affine {
    pub(crate) fn of(bn: &mut BatchNorm2d, shape: &[usize]) -> Result<Self> {
        let batch_stats = bn.last_used_batch_stats(shape)?;
        let g = bn.fused_grad(shape)?;
        Ok(Affine {
            scale: g.affine.scale.to_vec(),
            shift: g.affine.shift.to_vec(),
            mean: g.mean.to_vec(),
            hw: g.affine.hw,
            batch_stats,
        })
    }
    pub(crate) fn affine(&self) -> ChannelAffine<'_> {
        ChannelAffine { scale: &self.scale, shift: &self.shift, hw: self.hw }
    }
}

pub(crate) fn conv(l: &mut [Box<dyn Layer>], i: usize) -> &mut Conv2d {
    downcast_mut::<Conv2d>(l[i].as_mut()).expect("checked by fits")
}
pub(crate) fn bn(l: &mut [Box<dyn Layer>], i: usize) -> &mut BatchNorm2d {
    downcast_mut::<BatchNorm2d>(l[i].as_mut()).expect("checked by fits")
}
pub(crate) fn neuron(l: &mut [Box<dyn Layer>], i: usize) -> &mut NeuronLayer {
    downcast_mut::<NeuronLayer>(l[i].as_mut()).expect("checked by fits")
}

/// The block input as the passes read it, a chunk of time steps at a time: whole, or
/// bit-packed (the memory-lean sequence keeps a block's spike input so).
pub(crate) use crate::layer::SegmentInput as Input;

impl Input<'_> {
    fn shape(&self) -> &[usize] {
        match self {
            Input::Dense(x) => x.shape(),
            Input::Packed(x) => x.shape(),
        }
    }

    /// Steps `[t0, t0 + len)` into `out`.
    pub(crate) fn steps_into(&self, t0: usize, len: usize, out: &mut Tensor) {
        match self {
            Input::Dense(x) => steps_of(x, t0, len, out),
            Input::Packed(x) => x.unpack_steps_into(t0, len, out),
        }
    }

    /// What a conv measures of the whole input to pick its kernel.
    pub(crate) fn stats(&self) -> SpikeStats {
        match self {
            Input::Dense(x) => spike_stats(x.data()),
            Input::Packed(x) => {
                let len = x.shape().iter().product();
                SpikeStats { binary: true, active: x.count_ones(), len }
            }
        }
    }
}

/// A [`WindowCarry`], counted among the engine's buffers while it lives
/// (`crate::training_memory` reads them).
pub(crate) struct Carry(pub(crate) WindowCarry);

impl Carry {
    pub(crate) fn new(numel: usize) -> Self {
        let c = WindowCarry::new(numel);
        resized(0, c.bytes());
        Carry(c)
    }
}

impl Drop for Carry {
    fn drop(&mut self) {
        resized(self.0.bytes(), 0);
    }
}

/// What [`forward`] keeps for [`backward`]: the chunks, the inner neuron's spikes bit-packed
/// chunk by chunk, and each neuron's charge after every chunk but the last.
pub(crate) struct Kept {
    pub(crate) chunks: Vec<(usize, usize)>,
    pub(crate) s1: Vec<SpikeBits>,
    pub(crate) s1_active: u64,
    pub(crate) h1_after: Vec<Tensor>,
    pub(crate) h2_after: Vec<Tensor>,
}

impl Kept {
    /// The charge before chunk `k` (None for the first chunk, which starts at rest).
    pub(crate) fn before(h_after: &[Tensor], k: usize) -> Option<&[f32]> {
        k.checked_sub(1).map(|j| h_after[j].data())
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        let charges: usize =
            self.h1_after.iter().chain(&self.h2_after).map(|h| h.numel() * 4).sum();
        charges + self.s1.iter().map(SpikeBits::bytes).sum::<usize>()
    }
}

/// `moments[planes of chunk]`: the per-plane moments of `y`, chunk `(t0, len)` of the conv's
/// output over `n` samples of `c` channels.
fn chunk_moments(y: &Tensor, t0: usize, n: usize, moments: &mut [f64]) {
    let (c, hw) = (y.shape()[2], y.shape()[3] * y.shape()[4]);
    let plane0 = t0 * n * c;
    let planes = y.numel() / hw;
    sample_moments(y.data(), c, hw, &mut moments[2 * plane0..2 * (plane0 + planes)]);
}

/// The training forward of a SEW ADD block with an identity shortcut whose branch is
/// `branch`, over chunks of time steps: `output` (if given) receives the branch's spikes (the
/// caller adds the input), the branch's layers record what their own forward records (BN
/// batch and running statistics, firing rates, kernels), and the returned [`Kept`] is what
/// [`backward`] reads (without the charges unless `keep`: a forward whose stores are
/// released right after). None (nothing done) where the branch or the input does not fit;
/// the caller then runs the whole-sequence forward.
pub(crate) fn forward(
    branch: &mut Sequential,
    connect: Connect,
    input: Input,
    mut output: Option<&mut Tensor>,
    keep: bool,
) -> Result<Option<Kept>> {
    let s = input.shape().to_vec();
    let s = &s[..];
    if !CHUNKED.with(|c| c.get()) || connect != Connect::Add || s.len() != 5 || !fits(branch) {
        return Ok(None);
    }
    let (t_len, n) = (s[0], s[1]);
    let Some(chunks) = chunks(t_len, n) else { return Ok(None) };
    let l = branch.layers_mut();
    let repeated = matches!(input, Input::Dense(x) if repeats_one_step(x));
    if l[0].output_shape(s)?.as_slice() != s || repeated {
        return Ok(None);
    }
    // The second conv's input is the inner neuron's spikes, of the input's shape; the first
    // conv sees the block input.
    let total: usize = s.iter().product();
    let numel = total / t_len;
    let unknown = SpikeStats { binary: true, active: 0, len: total };
    if !conv(l, 3).plan_steps(s, unknown)? || !conv(l, 0).plan_steps(s, input.stats())? {
        return Ok(None);
    }
    if output.is_some() {
        // A first forward holds only the block's input and output at full size: the idle
        // work buffers of the pool (a conv output the stem handed back) are freed meanwhile.
        empty_idle_tensors();
    }
    let c = s[2];
    let (mut xc, mut a, mut s1c) = (Tensor::default(), Tensor::default(), Tensor::default());
    let mut moments = vec![0.0f64; t_len * n * c * 2];

    // The first BN's statistics from the first conv's output moments.
    for &(t0, len) in &chunks {
        input.steps_into(t0, len, &mut xc);
        conv(l, 0).forward_steps(&xc, &mut a)?;
        chunk_moments(&a, t0, n, &mut moments);
    }
    bn(l, 1).statistics_of_moments(s, &moments)?;

    // The inner neuron's spikes, packed, and its charge after each chunk.
    let d1 = neuron(l, 2).dynamics();
    let mut s1 = Vec::with_capacity(chunks.len());
    let (mut h1, mut h1_after) = (vec![0.0f32; numel], Vec::new());
    let mut s1_active = 0u64;
    for (k, &(t0, len)) in chunks.iter().enumerate() {
        input.steps_into(t0, len, &mut xc);
        conv(l, 0).forward_steps(&xc, &mut a)?;
        s1c.resize_for_overwrite(a.shape());
        let affine = Some(bn(l, 1).affine(s));
        s1_active += forward_window(&d1, a.data(), affine, len, t0 == 0, &mut h1, s1c.data_mut());
        if keep && k + 1 < chunks.len() {
            h1_after.push(charges(&h1));
        }
        let mut bits = SpikeBits::default();
        assert!(bits.pack(&s1c), "a neuron's spikes are binary");
        s1.push(bits);
    }
    drop(h1);
    neuron(l, 2).record_steps(s1_active, s);

    // The second BN's statistics from the second conv's output moments (its kernel depends on
    // the density of all the inner spikes, known only now).
    let s1_stats = SpikeStats { binary: true, active: s1_active as usize, len: total };
    conv(l, 3).plan_steps(s, s1_stats)?;
    for (k, &(t0, _)) in chunks.iter().enumerate() {
        s1[k].unpack_into(&mut s1c);
        conv(l, 3).forward_steps(&s1c, &mut a)?;
        chunk_moments(&a, t0, n, &mut moments);
    }
    bn(l, 4).statistics_of_moments(s, &moments)?;

    // The block output's spikes, chunk by chunk, and the last neuron's charge after each chunk.
    let d2 = neuron(l, 5).dynamics();
    let (mut h2, mut h2_after) = (vec![0.0f32; numel], Vec::new());
    let mut s2_active = 0u64;
    if let Some(out) = output.as_deref_mut() {
        out.resize_for_overwrite(s);
    }
    for (k, &(t0, len)) in chunks.iter().enumerate() {
        s1[k].unpack_into(&mut s1c);
        conv(l, 3).forward_steps(&s1c, &mut a)?;
        // Without an output (a second forward, whose output no one reads) the spikes go to
        // the chunk's own buffer, which the inner spikes have left.
        let out = match output.as_deref_mut() {
            Some(out) => &mut out.data_mut()[t0 * numel..(t0 + len) * numel],
            None => s1c.data_mut(),
        };
        let affine = Some(bn(l, 4).affine(s));
        s2_active += forward_window(&d2, a.data(), affine, len, t0 == 0, &mut h2, out);
        if keep && k + 1 < chunks.len() {
            h2_after.push(charges(&h2));
        }
    }
    neuron(l, 5).record_steps(s2_active, s);
    Ok(Some(Kept { chunks, s1, s1_active, h1_after, h2_after }))
}

/// A neuron's charges `h`, kept as a counted tensor.
fn charges(h: &[f32]) -> Tensor {
    let mut t = Tensor::default();
    t.resize_for_overwrite(&[h.len()]);
    t.data_mut().copy_from_slice(h);
    t
}

/// The backward of a SEW ADD block with an identity shortcut whose branch is `branch`, over
/// chunks of time steps, after [`forward`] on `input` kept `kept`: `grad` holds the block's
/// output gradient on entry and its input gradient (the branch's plus the shortcut's) on
/// exit, written chunk by chunk over the output gradient once no pass reads it any more.
pub(crate) fn backward(
    branch: &mut Sequential,
    connect: Connect,
    kept: &Kept,
    input: Input,
    grad: &mut Tensor,
) -> Result<()> {
    let s = input.shape().to_vec();
    let s = &s[..];
    let (t_len, n) = (s[0], s[1]);
    let chunks = &kept.chunks;
    let l = branch.layers_mut();
    let total: usize = s.iter().product();
    let numel = total / t_len;
    let (bn1, bn2) = (Affine::of(bn(l, 1), s)?, Affine::of(bn(l, 4), s)?);
    let (d1, sg1) = (neuron(l, 2).dynamics(), neuron(l, 2).surrogate());
    let (d2, sg2) = (neuron(l, 5).dynamics(), neuron(l, 5).surrogate());
    let (mut xc, mut a, mut g, mut g1, mut s1c) = (
        Tensor::default(),
        Tensor::default(),
        Tensor::default(),
        Tensor::default(),
        Tensor::default(),
    );
    let s1 = &kept.s1;

    // The last neuron's BPTT over chunk k into `g` (dL/dy of the second BN), `a` the second
    // conv's output; then the second BN's input gradient over it.
    let last_pair = |l: &mut [Box<dyn Layer>],
                     k: usize,
                     grad: &Tensor,
                     carry: &mut WindowCarry,
                     s1c: &mut Tensor,
                     a: &mut Tensor,
                     g: &mut Tensor|
     -> Result<()> {
        let (t0, len) = chunks[k];
        s1[k].unpack_into(s1c);
        conv(l, 3).forward_steps(s1c, a)?;
        steps_of(grad, t0, len, g);
        let hb = Kept::before(&kept.h2_after, k);
        let bn = Some((bn2.affine(), &bn2.mean[..]));
        backward_window(&d2, sg2, a.data(), bn, len, hb, g.data_mut(), carry);
        Ok(())
    };

    // (A) The second BN's sums.
    let mut carry2 = Carry::new(numel);
    for k in (0..chunks.len()).rev() {
        last_pair(l, k, grad, &mut carry2.0, &mut s1c, &mut a, &mut g)?;
    }
    {
        let bn2l = bn(l, 4);
        let sums = bn2l.fused_grad(s)?;
        let dw = window_sums(&d2, Some(&bn2.affine()), &carry2.0, sums.sum_dy, sums.sum_dy_xc);
        bn2l.input_grad_from_sums(s, bn2.batch_stats);
        neuron(l, 5).add_w_grad(dw);
    }
    drop(carry2);

    // (B) The second conv's backward, the inner neuron's BPTT: the first BN's sums.
    let s1_stats = SpikeStats { binary: true, active: kept.s1_active as usize, len: total };
    let path2 = conv(l, 3).wgrad_path(s, s1_stats)?;
    let mut parts2 = WgradParts::new(t_len * n);
    let (mut carry2, mut carry1) = (Carry::new(numel), Carry::new(numel));
    let inner = |l: &mut [Box<dyn Layer>],
                 k: usize,
                 grad: &Tensor,
                 carry2: &mut WindowCarry,
                 carry1: &mut WindowCarry,
                 parts2: Option<&mut WgradParts>,
                 bufs: [&mut Tensor; 5]|
     -> Result<()> {
        let [s1c, a, g, g1, xc] = bufs;
        let (t0, len) = chunks[k];
        last_pair(l, k, grad, carry2, s1c, a, g)?;
        bn(l, 4).input_grad_steps_in_place(a, g);
        if let Some(parts2) = parts2 {
            conv(l, 3).wgrad_steps(path2, s1c, g, t0 * n, parts2)?;
        }
        conv(l, 3).backward_data_steps(s1c.shape(), g, g1)?;
        input.steps_into(t0, len, xc);
        conv(l, 0).forward_steps(xc, a)?;
        let hb = Kept::before(&kept.h1_after, k);
        let bn = Some((bn1.affine(), &bn1.mean[..]));
        backward_window(&d1, sg1, a.data(), bn, len, hb, g1.data_mut(), carry1);
        Ok(())
    };
    for k in (0..chunks.len()).rev() {
        let bufs = [&mut s1c, &mut a, &mut g, &mut g1, &mut xc];
        inner(l, k, grad, &mut carry2.0, &mut carry1.0, Some(&mut parts2), bufs)?;
    }
    conv(l, 3).wgrad_finish(path2, s, &parts2)?;
    drop(parts2);
    {
        let bn1l = bn(l, 1);
        let sums = bn1l.fused_grad(s)?;
        let dw = window_sums(&d1, Some(&bn1.affine()), &carry1.0, sums.sum_dy, sums.sum_dy_xc);
        bn1l.input_grad_from_sums(s, bn1.batch_stats);
        neuron(l, 2).add_w_grad(dw);
    }
    drop((carry1, carry2));

    // (C) The first BN's and conv's backward and the block's input gradient.
    let path1 = conv(l, 0).wgrad_path(s, input.stats())?;
    let mut parts1 = WgradParts::new(t_len * n);
    let (mut carry2, mut carry1) = (Carry::new(numel), Carry::new(numel));
    for k in (0..chunks.len()).rev() {
        let (t0, len) = chunks[k];
        let bufs = [&mut s1c, &mut a, &mut g, &mut g1, &mut xc];
        inner(l, k, grad, &mut carry2.0, &mut carry1.0, None, bufs)?;
        // `a` holds the first conv's output, `g1` the first BN's output gradient, `xc` the
        // chunk's input.
        bn(l, 1).input_grad_steps_in_place(&a, &mut g1);
        conv(l, 0).wgrad_steps(path1, &xc, &g1, t0 * n, &mut parts1)?;
        // The input gradient goes to `a`, free now.
        conv(l, 0).backward_data_steps(xc.shape(), &g1, &mut a)?;
        // The identity shortcut's gradient added in, as the block's join does; then the
        // chunk's input gradient over its output gradient, which no later chunk reads.
        let chunk = &mut grad.data_mut()[t0 * numel..(t0 + len) * numel];
        connect_backward_add_o(connect, chunk, xc.data(), chunk, None, a.data_mut());
        chunk.copy_from_slice(a.data());
    }
    conv(l, 0).wgrad_finish(path1, s, &parts1)?;
    CHUNKED_RUNS.with(|c| c.set(c.get() + 1));
    Ok(())
}
