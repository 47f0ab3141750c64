//! A dual-stream block over chunks of time steps, for the memory-lean mode: the branch of a
//! chunked SEW block (conv, BN, neuron, conv, BN, neuron with both pairs fused, see
//! `sew_chunks`) behind an identity shortcut and a spike join g: `O' = g(S, O)` and, with the
//! accumulation pathway and no projection, `A' = A + S`.
//!
//! Forward ([`forward`]): `sew_chunks::forward` writes the branch spikes S into the buffer of
//! O' (its passes do not depend on the join), S is kept bit-packed, then `A' = A + S` and the
//! join in place: the values and the output's sum of the whole-sequence join.
//!
//! Backward ([`backward`]): `sew_chunks::backward` with the join's partials where the SEW
//! block's ADD has constants (`sew_chunks::Join`): the last neuron's BPTT starts from
//! `dL/dS = dg/dS dL/dO' + dL/dA'` of the chunk's steps (S unpacked, O read in place), and the
//! block's input gradient, the branch's plus `dg/dO dL/dO'` (and `dL/dA'` where O and A are
//! one input), goes over `dL/dO'` chunk by chunk. The elementwise kernels are the
//! whole-sequence ones on the chunk's slices, so every number is the default mode's.
use crate::error::Result;
use crate::kernels::connect::connect_forward_in_place;
use crate::kernels::elementwise;
use crate::nn::sequential::Sequential;
use crate::nn::sew_chunks::{self, Input, Join, Kept};
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
    let join = Join { connect: g, partials: Some((&chunked.spikes, o)), grad_a_out, merge };
    sew_chunks::backward(branch, &join, &chunked.kept, Input::Dense(o), grad)
}
