//! A dual-stream block over chunks of time steps, for the memory-lean mode: the branch of a
//! chunked SEW block (conv, BN, neuron, conv, BN, neuron with both pairs fused, see
//! `sew_chunks`) behind an identity shortcut and a spike join g: `O' = g(S, O)` and, with the
//! accumulation pathway and no projection, `A' = A + S`.
//!
//! Forward ([`forward`]): `sew_chunks::forward` writes the branch spikes S into the buffer of
//! O' (its passes do not depend on the join), S is kept bit-packed, then `A' = A + S` and the
//! join in place: the values and the output's sum of the whole-sequence join.
//!
//! Backward ([`backward`]): the three passes of `sew_chunks::backward`, last chunk first each
//! time, with the join's partials where the SEW block's ADD has constants: the last neuron's
//! BPTT starts from `dL/dS = dg/dS dL/dO' + dL/dA'` of the chunk's steps (S unpacked, O read
//! in place), and the block's input gradient, the branch's plus `dg/dO dL/dO'` (and `dL/dA'`
//! where O and A are one input), goes over `dL/dO'` chunk by chunk. The elementwise kernels
//! are the whole-sequence ones on the chunk's slices, so every number is the default mode's.
use crate::error::Result;
use crate::kernels::connect::{
    connect_backward_add_o, connect_backward_s, connect_forward_in_place,
};
use crate::kernels::conv::WgradParts;
use crate::kernels::elementwise;
use crate::kernels::spike_conv::SpikeStats;
use crate::layer::Layer;
use crate::neuron::kernel::window::{backward_window, window_sums, WindowCarry};
use crate::nn::sequential::Sequential;
use crate::nn::sew_chunks::{self, bn, conv, neuron, Affine, Carry, Input, Kept, CHUNKED_RUNS};
use crate::spec::Connect;
use crate::tensor::{SpikeBits, Tensor};

/// What [`forward`] keeps for [`backward`]: the branch's chunked record and its spikes S.
pub(super) struct Chunked {
    kept: Kept,
    spikes: SpikeBits,
}

impl Chunked {
    /// Bytes held.
    pub(super) fn bytes(&self) -> usize {
        self.kept.bytes() + self.spikes.bytes()
    }
}

/// The training forward over chunks of time steps of a block with branch `branch`, identity
/// shortcut and spike join `g` on input `o`: writes `O'` into `o_out` and, with `a = Some((A,
/// A'))`, `A' = A + S`. Returns what [`backward`] reads (the charges at chunk boundaries only
/// if `keep`) and the sum of `O'`; None (nothing done) where the branch or input does not fit.
pub(super) fn forward(
    branch: &mut Sequential,
    g: Connect,
    o: &Tensor,
    o_out: &mut Tensor,
    a: Option<(&Tensor, &mut Tensor)>,
    keep: bool,
) -> Result<Option<(Chunked, f64)>> {
    // `sew_chunks::forward` takes ADD for the join it leaves to its caller: the branch's
    // passes are the same whatever joins S, and the join runs here.
    let x = Input::Dense(o);
    let Some(kept) = sew_chunks::forward(branch, Connect::Add, x, Some(o_out), keep)? else {
        return Ok(None);
    };
    let mut spikes = SpikeBits::default();
    assert!(spikes.pack(o_out), "a neuron's spikes are binary");
    if let Some((a, a_out)) = a {
        a_out.resize_for_overwrite(o_out.shape());
        elementwise::add(a.data(), o_out.data(), a_out.data_mut());
    }
    let sum = connect_forward_in_place(g, o_out.data_mut(), o.data());
    Ok(Some((Chunked { kept, spikes }, sum)))
}

/// The backward over chunks after [`forward`] on `o` kept `chunked`: `grad` holds `dL/dO'` on
/// entry and `dL/dO` on exit; `grad_a_out` is `dL/dA'` where the forward ran the accumulation
/// pathway, added into `dL/dO` where `merge` (the trunk's first block reads one input as both
/// O and A). Adds the branch's parameter gradients.
pub(super) fn backward(
    branch: &mut Sequential,
    g: Connect,
    chunked: &Chunked,
    o: &Tensor,
    grad: &mut Tensor,
    grad_a_out: Option<&Tensor>,
    merge: bool,
) -> Result<()> {
    let kept = &chunked.kept;
    let s = o.shape().to_vec();
    let s = &s[..];
    let input = Input::Dense(o);
    let (t_len, n) = (s[0], s[1]);
    let chunks = &kept.chunks;
    let l = branch.layers_mut();
    let total: usize = s.iter().product();
    let numel = total / t_len;
    let (bn1, bn2) = (Affine::of(bn(l, 1), s)?, Affine::of(bn(l, 4), s)?);
    let (d1, sg1) = (neuron(l, 2).dynamics(), neuron(l, 2).surrogate());
    let (d2, sg2) = (neuron(l, 5).dynamics(), neuron(l, 5).surrogate());
    let [mut xc, mut a, mut gc, mut g1, mut s1c, mut sc]: [Tensor; 6] = Default::default();
    let range = |k: usize| chunks[k].0 * numel..(chunks[k].0 + chunks[k].1) * numel;

    // The last neuron's BPTT over chunk k into `gc` (dL/dy of the second BN) from the join's
    // dL/dS, `a` the second conv's output, `sc` the chunk's spikes S.
    let last_pair = |l: &mut [Box<dyn Layer>],
                     k: usize,
                     grad: &Tensor,
                     carry: &mut WindowCarry,
                     [s1c, a, gc, sc]: [&mut Tensor; 4]|
     -> Result<()> {
        let (t0, len) = chunks[k];
        kept.s1[k].unpack_into(s1c);
        conv(l, 3).forward_steps(s1c, a)?;
        chunked.spikes.unpack_steps_into(t0, len, sc);
        gc.resize_for_overwrite(sc.shape());
        let r = range(k);
        let also = grad_a_out.map(|t| &t.data()[r.clone()]);
        connect_backward_s(
            g,
            sc.data(),
            &o.data()[r.clone()],
            &grad.data()[r],
            also,
            gc.data_mut(),
        );
        let hb = Kept::before(&kept.h2_after, k);
        let bn = Some((bn2.affine(), &bn2.mean[..]));
        backward_window(&d2, sg2, a.data(), bn, len, hb, gc.data_mut(), carry);
        Ok(())
    };

    // (A) The second BN's sums.
    let mut carry2 = Carry::new(numel);
    for k in (0..chunks.len()).rev() {
        last_pair(l, k, grad, &mut carry2.0, [&mut s1c, &mut a, &mut gc, &mut sc])?;
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
                 carries: [&mut WindowCarry; 2],
                 parts2: Option<&mut WgradParts>,
                 [s1c, a, gc, g1, xc, sc]: [&mut Tensor; 6]|
     -> Result<()> {
        let [carry2, carry1] = carries;
        let (t0, len) = chunks[k];
        last_pair(l, k, grad, carry2, [&mut *s1c, &mut *a, &mut *gc, sc])?;
        bn(l, 4).input_grad_steps_in_place(a, gc);
        if let Some(parts2) = parts2 {
            conv(l, 3).wgrad_steps(path2, s1c, gc, t0 * n, parts2)?;
        }
        conv(l, 3).backward_data_steps(s1c.shape(), gc, g1)?;
        input.steps_into(t0, len, xc);
        conv(l, 0).forward_steps(xc, a)?;
        let hb = Kept::before(&kept.h1_after, k);
        let bn = Some((bn1.affine(), &bn1.mean[..]));
        backward_window(&d1, sg1, a.data(), bn, len, hb, g1.data_mut(), carry1);
        Ok(())
    };
    for k in (0..chunks.len()).rev() {
        let bufs = [&mut s1c, &mut a, &mut gc, &mut g1, &mut xc, &mut sc];
        let carries = [&mut carry2.0, &mut carry1.0];
        inner(l, k, grad, carries, Some(&mut parts2), bufs)?;
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
        let t0 = chunks[k].0;
        let bufs = [&mut s1c, &mut a, &mut gc, &mut g1, &mut xc, &mut sc];
        inner(l, k, grad, [&mut carry2.0, &mut carry1.0], None, bufs)?;
        // `a` holds the first conv's output, `g1` the first BN's output gradient, `xc` the
        // chunk's input O, `sc` its spikes S.
        bn(l, 1).input_grad_steps_in_place(&a, &mut g1);
        conv(l, 0).wgrad_steps(path1, &xc, &g1, t0 * n, &mut parts1)?;
        // The branch's input gradient goes to `a`, free now; the join's dL/dO (and dL/dA'
        // on a shared input) is added as the whole block's backward adds it, then the chunk's
        // input gradient goes over its output gradient, which no later chunk reads.
        conv(l, 0).backward_data_steps(xc.shape(), &g1, &mut a)?;
        let r = range(k);
        let also = if merge { grad_a_out.map(|t| &t.data()[r.clone()]) } else { None };
        let chunk = &mut grad.data_mut()[r];
        connect_backward_add_o(g, sc.data(), xc.data(), chunk, also, a.data_mut());
        chunk.copy_from_slice(a.data());
    }
    conv(l, 0).wgrad_finish(path1, s, &parts1)?;
    CHUNKED_RUNS.with(|c| c.set(c.get() + 1));
    Ok(())
}
