//! A SEW block's branch over chunks of time steps, for the memory-lean mode: a branch conv,
//! BN, neuron, conv, BN, neuron (the pairs fused) behind an identity shortcut joined by ADD.
//! Every map it computes is one chunk of steps; only the block input and output, the output
//! gradient, the inner neuron's spikes (bit-packed), each neuron's charge at every other chunk
//! boundary and per-element state carried across chunks (see `neuron::kernel::window`) span
//! all steps.
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
//! step, the first two, the last neuron's BPTT three times and the inner one's twice; before
//! an odd chunk, whose charges the forward did not keep, each pass first runs the chunk
//! before it through the conv and neuron forward again. Only pass A keeps the last neuron's
//! per-element sums across chunks and only pass B the inner one's; the other carries hold
//! `dL/dV` alone. Every number is the default mode's, bit for bit: the convs run the kernel a
//! forward over all steps would run, and the BN moments, the neuron and BN sums and the
//! weight-gradient trees add up in the order of one pass over all steps.
use std::cell::Cell;

use crate::error::Result;
use crate::kernels::batch_norm::{sample_moments, ChannelAffine};
use crate::kernels::connect::{connect_backward_add_o, connect_backward_s};
use crate::kernels::conv::{wgrad_cuts_leaf, WgradParts};
use crate::kernels::scratch::empty_idle_tensors;
use crate::kernels::spike_conv::{spike_stats, SpikeStats};
use crate::layer::{downcast_mut, downcast_ref, Layer};
use crate::neuron::kernel::window::{backward_window, forward_window, window_sums, WindowCarry};
use crate::neuron::kernel::Dynamics;
use crate::neuron::NeuronLayer;
use crate::nn::conv2d::repeats_one_step;
use crate::nn::sequential::plan_setting;
use crate::nn::sequential::{FusedOp, Sequential};
use crate::nn::{BatchNorm2d, Conv2d};
use crate::spec::Connect;
use crate::tensor::memory::resized;
use crate::tensor::{SpikeBits, Tensor};

thread_local! {
    static CHUNKED_RUNS: Cell<usize> = const { Cell::new(0) };
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
fn steps_of(x: &Tensor, t0: usize, len: usize, out: &mut Tensor) {
    let step = x.numel() / x.shape()[0];
    let mut shape = x.shape().to_vec();
    shape[0] = len;
    out.resize_for_overwrite(&shape);
    out.data_mut().copy_from_slice(&x.data()[t0 * step..(t0 + len) * step]);
}

/// One BN's affine and mean as its last forward used them, owned.
struct Affine {
    scale: Vec<f32>,
    shift: Vec<f32>,
    mean: Vec<f32>,
    hw: usize,
    batch_stats: bool,
}

impl Affine {
    fn of(bn: &mut BatchNorm2d, shape: &[usize]) -> Result<Self> {
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
    fn affine(&self) -> ChannelAffine<'_> {
        ChannelAffine { scale: &self.scale, shift: &self.shift, hw: self.hw }
    }
}

fn conv(l: &mut [Box<dyn Layer>], i: usize) -> &mut Conv2d {
    downcast_mut::<Conv2d>(l[i].as_mut()).expect("checked by fits")
}
fn bn(l: &mut [Box<dyn Layer>], i: usize) -> &mut BatchNorm2d {
    downcast_mut::<BatchNorm2d>(l[i].as_mut()).expect("checked by fits")
}
fn neuron(l: &mut [Box<dyn Layer>], i: usize) -> &mut NeuronLayer {
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
    fn steps_into(&self, t0: usize, len: usize, out: &mut Tensor) {
        match self {
            Input::Dense(x) => steps_of(x, t0, len, out),
            Input::Packed(x) => x.unpack_steps_into(t0, len, out),
        }
    }

    /// What a conv measures of the whole input to pick its kernel.
    fn stats(&self) -> SpikeStats {
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
struct Carry(WindowCarry);

impl Carry {
    /// With the per-element sums (`sums`, for [`window_sums`]) or `dL/dV` alone.
    fn new(numel: usize, sums: bool) -> Self {
        let c = if sums { WindowCarry::new(numel) } else { WindowCarry::flow_only(numel) };
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
/// chunk by chunk, and each neuron's charge before every even chunk but the first (see
/// [`kept_before`]).
pub(crate) struct Kept {
    chunks: Vec<(usize, usize)>,
    s1: Vec<SpikeBits>,
    s1_active: u64,
    h1_kept: Vec<Tensor>,
    h2_kept: Vec<Tensor>,
}

/// Whether the forward keeps a neuron's charge before chunk `k`: at every other boundary
/// (before chunks 2, 4, ..), which halves the charges kept; the backward recomputes the one
/// before an odd chunk from the kept one before the chunk before it (one more conv and
/// forward window of that chunk), into a buffer of one step ([`Recomputed`]).
fn kept_before(k: usize) -> bool {
    k > 0 && k.is_multiple_of(2)
}

/// The charge of one neuron before chunk `k` as the backward reads it: None for chunk 0
/// (at rest), a kept one before an even chunk, else `recomputed` (by [`Recomputed::recompute`]).
fn before<'a>(kept: &'a [Tensor], recomputed: &'a Recomputed, k: usize) -> Option<&'a [f32]> {
    match k {
        0 => None,
        k if kept_before(k) => Some(kept[k / 2 - 1].data()),
        _ => Some(recomputed.0.data()),
    }
}

/// A neuron's charge before an odd chunk, recomputed for the backward.
struct Recomputed(Tensor);

impl Recomputed {
    fn new() -> Self {
        Recomputed(Tensor::default())
    }

    /// The charge before odd chunk `k` (the neuron's dynamics `d`, BN affine `bn`, the BN
    /// input `x` of chunk `k - 1`, `[len, ...]`): the forward window of chunk `k - 1` from the
    /// charge before it, as the first forward ran it. `spikes` (of `x`'s size) receives the
    /// window's spikes, which are not read.
    fn recompute(
        &mut self,
        kept: &[Tensor],
        k: usize,
        d: &Dynamics,
        bn: &Affine,
        x: &Tensor,
        spikes: &mut [f32],
    ) {
        debug_assert!(k % 2 == 1);
        let len = x.shape()[0];
        let (x, numel) = (x.data(), x.numel() / len);
        self.0.resize_for_overwrite(&[numel]);
        if k > 1 {
            self.0.data_mut().copy_from_slice(kept[(k - 1) / 2 - 1].data());
        }
        forward_window(d, x, Some(bn.affine()), len, k == 1, self.0.data_mut(), spikes);
    }
}

impl Kept {
    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        let charges: usize = self.h1_kept.iter().chain(&self.h2_kept).map(|h| h.numel() * 4).sum();
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
    let (mut h1, mut h1_kept) = (vec![0.0f32; numel], Vec::new());
    let mut s1_active = 0u64;
    for (k, &(t0, len)) in chunks.iter().enumerate() {
        input.steps_into(t0, len, &mut xc);
        conv(l, 0).forward_steps(&xc, &mut a)?;
        s1c.resize_for_overwrite(a.shape());
        let affine = Some(bn(l, 1).affine(s));
        s1_active += forward_window(&d1, a.data(), affine, len, t0 == 0, &mut h1, s1c.data_mut());
        if keep && k + 1 < chunks.len() && kept_before(k + 1) {
            h1_kept.push(charges(&h1));
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
    let (mut h2, mut h2_kept) = (vec![0.0f32; numel], Vec::new());
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
        if keep && k + 1 < chunks.len() && kept_before(k + 1) {
            h2_kept.push(charges(&h2));
        }
    }
    neuron(l, 5).record_steps(s2_active, s);
    Ok(Some(Kept { chunks, s1, s1_active, h1_kept, h2_kept }))
}

/// A neuron's charges `h`, kept as a counted tensor.
fn charges(h: &[f32]) -> Tensor {
    let mut t = Tensor::default();
    t.resize_for_overwrite(&[h.len()]);
    t.data_mut().copy_from_slice(h);
    t
}

/// How a block joins its branch's spikes S to its input O, as the backward reads it: a SEW
/// block's ADD (constant partials: `dL/dS` is the output gradient), or a dual-stream block's
/// spike join g, whose partials read S and O, with the accumulation stream's `dL/dA'`.
pub(crate) struct Join<'a> {
    pub(crate) connect: Connect,
    /// S bit-packed and O, where the partials read them (None for ADD).
    pub(crate) partials: Option<(&'a SpikeBits, &'a Tensor)>,
    /// `dL/dA'` (`A' = A + S`), added to `dL/dS`.
    pub(crate) grad_a_out: Option<&'a Tensor>,
    /// `dL/dA'` is added to the input gradient too (the input is both O and A).
    pub(crate) merge: bool,
}

impl Join<'_> {
    /// A SEW block's join.
    pub(crate) fn sew(connect: Connect) -> Self {
        Join { connect, partials: None, grad_a_out: None, merge: false }
    }
}

/// The backward of a block with an identity shortcut joined by `join` whose branch is
/// `branch`, over chunks of time steps, after [`forward`] on `input` kept `kept`: `grad` holds
/// the block's output gradient on entry and its input gradient (the branch's plus the
/// shortcut's) on exit, written chunk by chunk over the output gradient once no pass reads it
/// any more.
pub(crate) fn backward(
    branch: &mut Sequential,
    join: &Join,
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
    let [mut a, mut g, mut g1, mut s1c, mut sc]: [Tensor; 5] = Default::default();
    let s1 = &kept.s1;

    let range = |k: usize| chunks[k].0 * numel..(chunks[k].0 + chunks[k].1) * numel;

    // `dL/dS` of chunk k into `g`; `sc` receives the chunk's S where the join's partials
    // read it.
    let grad_s = |k: usize, grad: &Tensor, sc: &mut Tensor, g: &mut Tensor| {
        let (t0, len) = chunks[k];
        let Some((spikes, o)) = join.partials else {
            return steps_of(grad, t0, len, g);
        };
        spikes.unpack_steps_into(t0, len, sc);
        g.resize_for_overwrite(sc.shape());
        let r = range(k);
        let also = join.grad_a_out.map(|t| &t.data()[r.clone()]);
        let (o, grad) = (&o.data()[r.clone()], &grad.data()[r]);
        connect_backward_s(join.connect, sc.data(), o, grad, also, g.data_mut());
    };

    // The last neuron's BPTT over chunk k into `g` (dL/dy of the second BN), `a` the second
    // conv's output, `s1c` the chunk's inner spikes, `sc` its S (see `grad_s`); `h` receives
    // the charge before an odd chunk.
    let last_pair = |l: &mut [Box<dyn Layer>],
                     k: usize,
                     grad: &Tensor,
                     carry: &mut WindowCarry,
                     h: &mut Recomputed,
                     [s1c, a, g, sc]: [&mut Tensor; 4]|
     -> Result<()> {
        let len = chunks[k].1;
        if k % 2 == 1 {
            s1[k - 1].unpack_into(s1c);
            conv(l, 3).forward_steps(s1c, a)?;
            h.recompute(&kept.h2_kept, k, &d2, &bn2, a, s1c.data_mut());
        }
        s1[k].unpack_into(s1c);
        conv(l, 3).forward_steps(s1c, a)?;
        grad_s(k, grad, sc, g);
        let hb = before(&kept.h2_kept, h, k);
        let bn = Some((bn2.affine(), &bn2.mean[..]));
        backward_window(&d2, sg2, a.data(), bn, len, hb, g.data_mut(), carry);
        Ok(())
    };

    // (A) The second BN's sums.
    // One recomputed charge serves both neurons: each reads it only in its own window.
    let (mut carry2, mut h) = (Carry::new(numel, true), Recomputed::new());
    for k in (0..chunks.len()).rev() {
        last_pair(l, k, grad, &mut carry2.0, &mut h, [&mut s1c, &mut a, &mut g, &mut sc])?;
    }
    {
        let bn2l = bn(l, 4);
        let sums = bn2l.fused_grad(s)?;
        let dw = window_sums(&d2, Some(&bn2.affine()), &carry2.0, sums.sum_dy, sums.sum_dy_xc);
        bn2l.input_grad_from_sums(s, bn2.batch_stats);
        neuron(l, 5).add_w_grad(dw);
    }
    drop(carry2);

    // (B) The second conv's backward, the inner neuron's BPTT: the first BN's sums. The
    // last neuron's sums are taken: its carry holds dL/dV alone.
    let s1_stats = SpikeStats { binary: true, active: kept.s1_active as usize, len: total };
    let path2 = conv(l, 3).wgrad_path(s, s1_stats)?;
    let mut parts2 = WgradParts::new(t_len * n);
    let (mut carry2, mut carry1) = (Carry::new(numel, false), Carry::new(numel, true));
    // On return `s1c` holds the chunk's input (the inner spikes' buffer, free by then), `a`
    // the first conv's output and `g1` the first BN's output gradient.
    let inner = |l: &mut [Box<dyn Layer>],
                 k: usize,
                 grad: &Tensor,
                 carry2: &mut WindowCarry,
                 carry1: &mut WindowCarry,
                 parts2: Option<&mut WgradParts>,
                 h: &mut Recomputed,
                 [s1c, a, g, g1, sc]: [&mut Tensor; 5]|
     -> Result<()> {
        let (t0, len) = chunks[k];
        last_pair(l, k, grad, carry2, h, [&mut *s1c, &mut *a, &mut *g, sc])?;
        bn(l, 4).input_grad_steps_in_place(a, g);
        if let Some(parts2) = parts2 {
            conv(l, 3).wgrad_steps(path2, s1c, g, t0 * n, parts2)?;
        }
        conv(l, 3).backward_data_steps(s1c.shape(), g, g1)?;
        // The inner spikes are read no more: their buffer takes the block input's chunks.
        let xc = s1c;
        if k % 2 == 1 {
            // `a` is free until the chunk's own first conv.
            let (t00, len0) = chunks[k - 1];
            input.steps_into(t00, len0, xc);
            conv(l, 0).forward_steps(xc, a)?;
            h.recompute(&kept.h1_kept, k, &d1, &bn1, a, xc.data_mut());
        }
        input.steps_into(t0, len, xc);
        conv(l, 0).forward_steps(xc, a)?;
        let hb = before(&kept.h1_kept, h, k);
        let bn = Some((bn1.affine(), &bn1.mean[..]));
        backward_window(&d1, sg1, a.data(), bn, len, hb, g1.data_mut(), carry1);
        Ok(())
    };
    for k in (0..chunks.len()).rev() {
        let bufs = [&mut s1c, &mut a, &mut g, &mut g1, &mut sc];
        let (c2, c1) = (&mut carry2.0, &mut carry1.0);
        inner(l, k, grad, c2, c1, Some(&mut parts2), &mut h, bufs)?;
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

    // (C) The first BN's and conv's backward and the block's input gradient (both neurons'
    // sums are taken: the carries hold dL/dV alone).
    let path1 = conv(l, 0).wgrad_path(s, input.stats())?;
    let mut parts1 = WgradParts::new(t_len * n);
    let (mut carry2, mut carry1) = (Carry::new(numel, false), Carry::new(numel, false));
    for k in (0..chunks.len()).rev() {
        let t0 = chunks[k].0;
        let bufs = [&mut s1c, &mut a, &mut g, &mut g1, &mut sc];
        inner(l, k, grad, &mut carry2.0, &mut carry1.0, None, &mut h, bufs)?;
        // `a` holds the first conv's output, `g1` the first BN's output gradient, `s1c` the
        // chunk's input.
        let xc = &s1c;
        bn(l, 1).input_grad_steps_in_place(&a, &mut g1);
        conv(l, 0).wgrad_steps(path1, xc, &g1, t0 * n, &mut parts1)?;
        // The input gradient goes to `a`, free now.
        conv(l, 0).backward_data_steps(xc.shape(), &g1, &mut a)?;
        // The shortcut's gradient (and `dL/dA'` on a shared input) added in, as the block's
        // join does; then the chunk's input gradient over its output gradient, which no
        // later chunk reads. ADD's partials do not read S.
        let r = range(k);
        let also = if join.merge { join.grad_a_out.map(|t| &t.data()[r.clone()]) } else { None };
        let chunk = &mut grad.data_mut()[r];
        let s_chunk = if join.partials.is_some() { sc.data() } else { &*chunk };
        connect_backward_add_o(join.connect, s_chunk, xc.data(), chunk, also, a.data_mut());
        chunk.copy_from_slice(a.data());
    }
    conv(l, 0).wgrad_finish(path1, s, &parts1)?;
    CHUNKED_RUNS.with(|c| c.set(c.get() + 1));
    Ok(())
}
