//! The backward of a SEW block's branch over chunks of time steps, for the memory-lean mode:
//! a branch conv, BN, neuron, conv, BN, neuron (the pairs fused) behind an identity shortcut
//! joined by ADD. Every map it computes is one chunk of steps; only the block input, its
//! output gradient, the inner neuron's spikes and per-element state carried across chunks
//! (see `neuron::kernel::window`) span all steps.
//!
//! A BN's input gradient needs its sums over all steps first, so the chunks run three times,
//! last chunk first each time: (A) the second conv again and the last neuron's BPTT, for the
//! second BN's sums; (B) that again, the second BN's and conv's backward (its weight gradient
//! collected per chunk, see `kernels::conv::WgradParts`) and the inner neuron's BPTT, for the
//! first BN's sums; (C) all of that once more, the first BN's and conv's backward and the
//! block's input gradient. The second conv runs three more times per step, the first two, the
//! last neuron's BPTT three times and the inner one's twice. Every number is the default
//! backward's, bit for bit: the convs run the kernel their forward ran, the neuron and BN sums
//! and the weight-gradient trees add up in the order of one pass over all steps.
use std::cell::Cell;

use crate::error::Result;
use crate::kernels::batch_norm::ChannelAffine;
use crate::kernels::connect::connect_backward_add_o;
use crate::kernels::conv::{wgrad_cuts_leaf, WgradParts};
use crate::kernels::spike_conv::{spike_stats, SpikeStats};
use crate::layer::{downcast_mut, downcast_ref, Layer};
use crate::neuron::kernel::window::{backward_window, forward_window, window_sums, WindowCarry};
use crate::neuron::NeuronLayer;
use crate::nn::sequential::plan_setting;
use crate::nn::sequential::{FusedOp, Sequential};
use crate::nn::{BatchNorm2d, Conv2d};
use crate::spec::Connect;
use crate::tensor::{SpikeBits, Tensor};

thread_local! {
    static CHUNKED_RUNS: Cell<usize> = const { Cell::new(0) };
    static CHUNKED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the branch backward over chunks of time steps on (`on`) for the memory-lean
/// mode's SEW blocks on this thread. Off by default: the block's second forward still runs
/// over all steps before it and the work buffers stay full-size, so the chunks save no memory
/// yet and cost more passes; it is here to be checked against the default mode.
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

/// Whether `branch`'s last forward fits this backward: conv, BN, neuron, conv, BN, neuron with
/// both pairs fused, convs on a sequence input, input gradient wanted.
fn fits(branch: &Sequential) -> bool {
    let l = branch.layers();
    let conv = |i: usize| downcast_ref::<Conv2d>(l[i].as_ref()).is_some_and(|c| !c.repeated);
    let bn = |i: usize| downcast_ref::<BatchNorm2d>(l[i].as_ref()).is_some();
    let neuron = |i: usize| downcast_ref::<NeuronLayer>(l[i].as_ref()).is_some();
    l.len() == 6
        && conv(0)
        && bn(1)
        && neuron(2)
        && conv(3)
        && bn(4)
        && neuron(5)
        && downcast_ref::<Conv2d>(l[0].as_ref()).is_some_and(|c| !c.skips_input_grad())
        && matches!(
            branch.last_plan(),
            [
                FusedOp::Layer(0),
                FusedOp::BnNeuron { bn: 1, pool: false, .. },
                FusedOp::Layer(3),
                FusedOp::BnNeuron { bn: 4, pool: false, .. }
            ]
        )
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

/// The backward of a SEW ADD block with an identity shortcut whose branch is `branch`, over
/// chunks of time steps, after the branch's training forward on `input`: `grad_input`
/// receives the block's input gradient (the branch's plus the shortcut's). False (nothing
/// done) where the branch or the shape does not fit; the caller then runs the whole-sequence
/// backward.
pub(crate) fn backward(
    branch: &mut Sequential,
    connect: Connect,
    input: &Tensor,
    grad_output: &Tensor,
    grad_input: &mut Tensor,
) -> Result<bool> {
    let s = input.shape();
    if !CHUNKED.with(|c| c.get())
        || connect != Connect::Add
        || s.len() != 5
        || !fits(branch)
        || grad_output.shape() != s
    {
        return Ok(false);
    }
    let (t_len, n) = (s[0], s[1]);
    let Some(chunks) = chunks(t_len, n) else { return Ok(false) };
    let l = branch.layers_mut();
    let a_shape = l[0].output_shape(s)?;
    if a_shape.as_slice() != s {
        return Ok(false);
    }
    let numel = input.numel() / t_len;
    let (bn1, bn2) = (Affine::of(bn(l, 1), s)?, Affine::of(bn(l, 4), s)?);
    let (d1, sg1) = (neuron(l, 2).dynamics(), neuron(l, 2).surrogate());
    let (d2, sg2) = (neuron(l, 5).dynamics(), neuron(l, 5).surrogate());
    let (mut xc, mut a, mut g, mut g1, mut dx) = (
        Tensor::default(),
        Tensor::default(),
        Tensor::default(),
        Tensor::default(),
        Tensor::default(),
    );
    let (mut s1c, mut spikes2) = (Tensor::default(), Tensor::default());

    // Forward: the inner neuron's spikes over all steps (bit-packed, chunk by chunk), and
    // each neuron's charge before every chunk.
    let mut s1: Vec<SpikeBits> = Vec::with_capacity(chunks.len());
    let mut s1_active = 0;
    let (mut h1, mut h2) = (vec![0.0f32; numel], vec![0.0f32; numel]);
    let (mut h1_at, mut h2_at) = (Vec::new(), Vec::new());
    for &(t0, len) in &chunks {
        steps_of(input, t0, len, &mut xc);
        conv(l, 0).forward_steps(&xc, &mut a)?;
        h1_at.push(h1.clone());
        s1c.resize_for_overwrite(a.shape());
        s1_active += forward_window(
            &d1,
            a.data(),
            Some(bn1.affine()),
            len,
            t0 == 0,
            &mut h1,
            s1c.data_mut(),
        );
        let mut bits = SpikeBits::default();
        assert!(bits.pack(&s1c), "a neuron's spikes are binary");
        s1.push(bits);
        conv(l, 3).forward_steps(&s1c, &mut a)?;
        h2_at.push(h2.clone());
        spikes2.resize_for_overwrite(a.shape());
        let first = t0 == 0;
        forward_window(&d2, a.data(), Some(bn2.affine()), len, first, &mut h2, spikes2.data_mut());
    }
    drop(spikes2);
    let before = |h_at: &[Vec<f32>], k: usize| -> Option<Vec<f32>> {
        (chunks[k].0 > 0).then(|| h_at[k].clone())
    };

    // The last neuron's BPTT over chunk k into `g` (dL/dy of the second BN), `a` the second
    // conv's output; then the second BN's input gradient over it.
    let last_pair = |l: &mut [Box<dyn Layer>],
                     k: usize,
                     carry: &mut WindowCarry,
                     s1c: &mut Tensor,
                     a: &mut Tensor,
                     g: &mut Tensor|
     -> Result<()> {
        let (t0, len) = chunks[k];
        s1[k].unpack_into(s1c);
        conv(l, 3).forward_steps(s1c, a)?;
        steps_of(grad_output, t0, len, g);
        let hb = before(&h2_at, k);
        let bn = Some((bn2.affine(), &bn2.mean[..]));
        backward_window(&d2, sg2, a.data(), bn, len, hb.as_deref(), g.data_mut(), carry);
        Ok(())
    };

    // (A) The second BN's sums.
    let mut carry2 = WindowCarry::new(numel);
    for k in (0..chunks.len()).rev() {
        last_pair(l, k, &mut carry2, &mut s1c, &mut a, &mut g)?;
    }
    {
        let bn2l = bn(l, 4);
        let sums = bn2l.fused_grad(s)?;
        let dw = window_sums(&d2, Some(&bn2.affine()), &carry2, sums.sum_dy, sums.sum_dy_xc);
        bn2l.input_grad_from_sums(s, bn2.batch_stats);
        neuron(l, 5).add_w_grad(dw);
    }

    // (B) The second conv's backward, the inner neuron's BPTT: the first BN's sums.
    let s1_stats = SpikeStats { binary: true, active: s1_active as usize, len: input.numel() };
    let path2 = conv(l, 3).wgrad_path(s, s1_stats)?;
    let mut parts2 = WgradParts::new(t_len * n);
    let (mut carry2, mut carry1) = (WindowCarry::new(numel), WindowCarry::new(numel));
    let inner = |l: &mut [Box<dyn Layer>],
                 k: usize,
                 carry2: &mut WindowCarry,
                 carry1: &mut WindowCarry,
                 parts2: Option<&mut WgradParts>,
                 bufs: [&mut Tensor; 4]|
     -> Result<()> {
        let [s1c, a, g, g1] = bufs;
        let (t0, len) = chunks[k];
        last_pair(l, k, carry2, s1c, a, g)?;
        bn(l, 4).input_grad_steps_in_place(a, g);
        if let Some(parts2) = parts2 {
            conv(l, 3).wgrad_steps(path2, s1c, g, t0 * n, parts2)?;
        }
        conv(l, 3).backward_data_steps(s1c.shape(), g, g1)?;
        let mut xc = Tensor::default();
        steps_of(input, t0, len, &mut xc);
        conv(l, 0).forward_steps(&xc, a)?;
        let hb = before(&h1_at, k);
        let bn = Some((bn1.affine(), &bn1.mean[..]));
        backward_window(&d1, sg1, a.data(), bn, len, hb.as_deref(), g1.data_mut(), carry1);
        Ok(())
    };
    for k in (0..chunks.len()).rev() {
        let bufs = [&mut s1c, &mut a, &mut g, &mut g1];
        inner(l, k, &mut carry2, &mut carry1, Some(&mut parts2), bufs)?;
    }
    conv(l, 3).wgrad_finish(path2, s, &parts2)?;
    drop(parts2);
    {
        let bn1l = bn(l, 1);
        let sums = bn1l.fused_grad(s)?;
        let dw = window_sums(&d1, Some(&bn1.affine()), &carry1, sums.sum_dy, sums.sum_dy_xc);
        bn1l.input_grad_from_sums(s, bn1.batch_stats);
        neuron(l, 2).add_w_grad(dw);
    }

    // (C) The first BN's and conv's backward and the block's input gradient.
    let path1 = conv(l, 0).wgrad_path(s, spike_stats(input.data()))?;
    let mut parts1 = WgradParts::new(t_len * n);
    let (mut carry2, mut carry1) = (WindowCarry::new(numel), WindowCarry::new(numel));
    grad_input.resize_for_overwrite(s);
    for k in (0..chunks.len()).rev() {
        let (t0, len) = chunks[k];
        let bufs = [&mut s1c, &mut a, &mut g, &mut g1];
        inner(l, k, &mut carry2, &mut carry1, None, bufs)?;
        // `a` holds the first conv's output, `g1` the first BN's output gradient.
        bn(l, 1).input_grad_steps_in_place(&a, &mut g1);
        steps_of(input, t0, len, &mut xc);
        conv(l, 0).wgrad_steps(path1, &xc, &g1, t0 * n, &mut parts1)?;
        conv(l, 0).backward_data_steps(xc.shape(), &g1, &mut dx)?;
        // The identity shortcut's gradient added in, as the block's join does.
        steps_of(grad_output, t0, len, &mut g);
        connect_backward_add_o(connect, g.data(), xc.data(), g.data(), None, dx.data_mut());
        grad_input.data_mut()[t0 * numel..(t0 + len) * numel].copy_from_slice(dx.data());
    }
    conv(l, 0).wgrad_finish(path1, s, &parts1)?;
    CHUNKED_RUNS.with(|c| c.set(c.get() + 1));
    Ok(true)
}
