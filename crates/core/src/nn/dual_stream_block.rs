//! Dual-stream block on the pair (spike stream O, accumulation stream A):
//! `S = branch(O)`, `O' = g(S, shortcut(O))` (or `SN_res(S + shortcut(O))`), `A' = P(A) + S`.
//! The spike stream never reads A, so skipping the accumulation pathway (AAP) leaves O' exact.
//! Not a `Layer`: it takes and gives two tensors; `DualStream` chains blocks and owns the
//! activations.
use crate::error::{Error, Result};
use crate::kernels::connect::{
    connect_backward, connect_backward_add_o, connect_backward_s, connect_forward,
};
use crate::kernels::elementwise;
use crate::layer::{Layer, Visitor, VisitorMut};
use crate::neuron::{NeuronKind, NeuronLayer};
use crate::nn::build_sequential;
use crate::nn::residual::joined_shape;
use crate::nn::sequential::Sequential;
use crate::rng::Rng;
use crate::spec::{Connect, DualConnect, DualStreamBlockSpec};
use crate::tensor::Tensor;

mod chunks;

// One per block, built once: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Join {
    Spike(Connect),
    /// `SN_res(S + shortcut(O))`: the Spiking ResNet form, with its IF residual neuron.
    SpikingResnet(NeuronLayer),
}

/// What a block's backward tells its trunk.
pub struct BlockBackward {
    /// Whether it wrote `dL/dA`: without a projection `A' = A + S`, so `dL/dA` is `dL/dA'`
    /// itself, and the trunk reads that instead of a copy.
    pub wrote_grad_a: bool,
    /// Whether it added `dL/dA` into `grad_o` (a shared input, see [`DualStreamBlock::backward`]).
    pub merged_grad_a: bool,
    /// `sum((dL/dO')^2)` and `sum((dL/dA')^2)` where its passes took them on the way (for the
    /// trunk's gradient norms).
    pub grad_o_out_sq: Option<f64>,
    pub grad_a_out_sq: Option<f64>,
}

pub struct DualStreamBlock {
    name: String,
    #[doc(hidden)]
    pub branch: Sequential,
    shortcut: Option<Sequential>,
    join: Join,
    projection: Option<Sequential>,
    /// Branch spikes S.
    spikes: Tensor,
    shortcut_out: Tensor,
    /// `S + shortcut(O)` for the Spiking ResNet form.
    charge: Tensor,
    projected: Tensor,
    grad_spikes: Tensor,
    grad_shortcut: Tensor,
    grad_charge: Tensor,
    grad_scratch: Tensor,
    /// What the forward over chunks of time steps kept for the backward (see `chunks`),
    /// while it holds anything.
    chunked: Option<chunks::Chunked>,
    /// Whether a training forward over chunks keeps the neurons' charges at the chunk
    /// boundaries (a forward whose stores are released right after does not need them).
    keep: bool,
}

impl DualStreamBlock {
    pub fn new(name: &str, spec: &DualStreamBlockSpec, rng: &mut Rng) -> Result<Self> {
        let join = match spec.connect {
            DualConnect::Add => {
                return Err(Error::spec(
                    name,
                    "connect \"add\" is not allowed in a dual-stream block: S + O takes the values 0, 1, 2, \
                     so the spike stream would stop being full-spike (the next conv would multiply non-spikes). \
                     Use and, iand, or, xor, or spikingResnet; the accumulation pathway already adds the branch spikes",
                ))
            }
            DualConnect::And => Join::Spike(Connect::And),
            DualConnect::Iand => Join::Spike(Connect::Iand),
            DualConnect::Or => Join::Spike(Connect::Or),
            DualConnect::Xor => Join::Spike(Connect::Xor),
            DualConnect::SpikingResnet => {
                let n = spec.residual_neuron.clone().unwrap_or_default();
                Join::SpikingResnet(NeuronLayer::new(&format!("{name}.residual"), NeuronKind::If, &n)?)
            }
        };
        if spec.residual_neuron.is_some() && spec.connect != DualConnect::SpikingResnet {
            return Err(Error::spec(
                name,
                "residualNeuron is only used with connect \"spikingResnet\"",
            ));
        }
        // The spike stream's input is spikes, so spike maps inside can be kept bit-packed.
        let mut branch = build_sequential(&format!("{name}.branch"), &spec.branch, rng)?;
        branch.set_input_spikes(true);
        let shortcut = match &spec.shortcut {
            Some(layers) => {
                let mut sc = build_sequential(&format!("{name}.shortcut"), layers, rng)?;
                sc.set_input_spikes(true);
                Some(sc)
            }
            None => None,
        };
        let projection = match &spec.projection {
            Some(layers) => Some(build_sequential(&format!("{name}.projection"), layers, rng)?),
            None => None,
        };
        Ok(DualStreamBlock {
            name: name.to_string(),
            branch,
            shortcut,
            join,
            projection,
            spikes: Tensor::default(),
            shortcut_out: Tensor::default(),
            charge: Tensor::default(),
            projected: Tensor::default(),
            grad_spikes: Tensor::default(),
            grad_shortcut: Tensor::default(),
            grad_charge: Tensor::default(),
            grad_scratch: Tensor::default(),
            chunked: None,
            keep: true,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Output shape of both streams; with `aap`, also checks that `P(A)` matches `S`.
    pub fn output_shape(&self, input: &[usize], aap: bool) -> Result<Vec<usize>> {
        let out = joined_shape(&self.name, &self.branch, self.shortcut.as_ref(), input)?;
        if aap {
            let p = match &self.projection {
                Some(p) => p.output_shape(input)?,
                None => input.to_vec(),
            };
            if p != out {
                return Err(Error::spec(
                    &self.name,
                    format!(
                        "the accumulation stream gives {p:?} but the branch gives {out:?}; a downsampling block needs a \
                         projection (depthwise conv3x3 stride s, conv1x1, BN, ReLU) so both match"
                    ),
                ));
            }
        }
        Ok(out)
    }

    /// `a = Some((A, A'))` runs the accumulation pathway too. Returns the sum of `O'` where
    /// the join took it on the way (a spike join), for the trunk's output rate.
    pub fn forward(
        &mut self,
        o: &Tensor,
        o_out: &mut Tensor,
        a: Option<(&Tensor, &mut Tensor)>,
        training: bool,
    ) -> Result<Option<f64>> {
        self.chunked = None;
        let mut a = a;
        if let (Join::Spike(g), None, true) = (&self.join, &self.shortcut, training) {
            // The memory-lean mode runs the block over chunks of time steps where it fits (see
            // `chunks`): an identity shortcut, and A' = A + S where the AAP runs.
            if self.branch.memory_lean() && (a.is_none() || self.projection.is_none()) {
                let acc = a.as_mut().map(|(a, a_out)| (*a, &mut **a_out));
                let g = *g;
                if let Some((kept, sum)) =
                    chunks::forward(&mut self.branch, g, o, o_out, acc, self.keep)?
                {
                    self.chunked = Some(kept);
                    return Ok(Some(sum));
                }
            }
        }
        match (&self.join, &self.shortcut) {
            // Full-spike inference with an identity shortcut: nothing reads S but the join, which
            // the branch's last conv + neuron pass can do as it writes (see `Sequential::forward_joined`).
            (Join::Spike(g), None) if a.is_none() && !training => {
                if let Some(sum) = self.branch.forward_joined(o, o_out, false, *g, o)? {
                    return Ok(Some(sum));
                }
                std::mem::swap(o_out, &mut self.spikes);
            }
            _ => self.branch.forward(o, &mut self.spikes, training)?,
        }
        let sc = forward_path(&mut self.shortcut, o, &mut self.shortcut_out, training)?;
        if sc.shape() != self.spikes.shape() {
            return Err(Error::shape(
                &self.name,
                format!("the branch output shape {:?} for the shortcut", self.spikes.shape()),
                sc.shape(),
            ));
        }
        // A' = P(A) + S, in the join's pass where that is a spike join.
        let accumulate = match a {
            Some((a, a_out)) => {
                let base = forward_path(&mut self.projection, a, &mut self.projected, training)?;
                if base.shape() != self.spikes.shape() {
                    return Err(Error::shape(
                        format!("{} (accumulation stream)", self.name),
                        format!("the branch output shape {:?}", self.spikes.shape()),
                        base.shape(),
                    ));
                }
                a_out.resize_for_overwrite(base.shape());
                Some((base, a_out))
            }
            None => None,
        };
        let out_sum = match &mut self.join {
            Join::Spike(g) => {
                o_out.resize_for_overwrite(sc.shape());
                let accumulate = accumulate.map(|(base, a_out)| (base.data(), a_out.data_mut()));
                Some(connect_forward(
                    *g,
                    self.spikes.data(),
                    sc.data(),
                    o_out.data_mut(),
                    accumulate,
                ))
            }
            Join::SpikingResnet(neuron) => {
                self.charge.resize_for_overwrite(sc.shape());
                elementwise::add(self.spikes.data(), sc.data(), self.charge.data_mut());
                neuron.forward(&self.charge, o_out, training)?;
                if let Some((base, a_out)) = accumulate {
                    elementwise::add(base.data(), self.spikes.data(), a_out.data_mut());
                }
                None
            }
        };
        Ok(out_sum)
    }

    /// BPTT after a training forward. `a = Some((A, dL/dA', dL/dA))` when the forward ran the
    /// accumulation pathway. Overwrites `grad_o`, and `dL/dA` where the block has a projection;
    /// adds parameter gradients. `shared_input`: O and A are one tensor (the trunk's first
    /// block), whose gradient is the sum of both; the block adds `dL/dA` into `grad_o` itself
    /// where it can do so on the way ([`BlockBackward::merged_grad_a`]). See [`BlockBackward`]
    /// for what it returns.
    pub fn backward(
        &mut self,
        o: &Tensor,
        o_out: &Tensor,
        grad_o_out: &Tensor,
        grad_o: &mut Tensor,
        a: Option<(&Tensor, &Tensor, &mut Tensor)>,
        shared_input: bool,
    ) -> Result<BlockBackward> {
        let shape = self.spikes.shape().to_vec();
        if grad_o_out.shape() != shape.as_slice() {
            return Err(Error::shape(
                format!("{} grad_output", self.name),
                format!("{shape:?}"),
                grad_o_out.shape(),
            ));
        }
        let sc: &Tensor = if self.shortcut.is_some() { &self.shortcut_out } else { o };
        // With an identity shortcut and a spike join, dL/dO's shortcut part is added straight
        // into the branch's input gradient after the branch's backward (as in the SEW block):
        // no full-size buffer for it and no extra pass.
        let identity_join = match self.join {
            Join::Spike(g) if self.shortcut.is_none() => Some(g),
            _ => None,
        };
        if let Some((_, grad_a_out, _)) = &a {
            if grad_a_out.shape() != shape.as_slice() {
                return Err(Error::shape(
                    format!("{} accumulation grad_output", self.name),
                    format!("{shape:?}"),
                    grad_a_out.shape(),
                ));
            }
        }
        let mut done = BlockBackward {
            wrote_grad_a: a.is_some() && self.projection.is_some(),
            merged_grad_a: false,
            grad_o_out_sq: None,
            grad_a_out_sq: None,
        };
        // dA'/dS = 1: the accumulation gradient reaches the branch without passing any g.
        let grad_a_out: Option<&[f32]> = a.as_ref().map(|t| t.1).map(Tensor::data);
        self.grad_spikes.resize_for_overwrite(&shape);
        match (&mut self.join, identity_join) {
            (Join::Spike(g), Some(_)) => {
                // dL/dS = dL/dO' dg/dS + dL/dA' in one pass.
                let (o_sq, a_sq) = connect_backward_s(
                    *g,
                    self.spikes.data(),
                    sc.data(),
                    grad_o_out.data(),
                    grad_a_out,
                    self.grad_spikes.data_mut(),
                );
                done.grad_o_out_sq = Some(o_sq);
                done.grad_a_out_sq = grad_a_out.map(|_| a_sq);
            }
            (Join::Spike(g), None) => {
                self.grad_shortcut.resize_for_overwrite(&shape);
                connect_backward(
                    *g,
                    self.spikes.data(),
                    sc.data(),
                    grad_o_out.data(),
                    self.grad_spikes.data_mut(),
                    self.grad_shortcut.data_mut(),
                )
            }
            (Join::SpikingResnet(neuron), _) => {
                neuron.backward(&self.charge, o_out, grad_o_out, &mut self.grad_charge)?;
                self.grad_spikes.data_mut().copy_from_slice(self.grad_charge.data());
                self.grad_shortcut.copy_from(&self.grad_charge);
            }
        }
        if let Some((a_in, grad_a_out, grad_a)) = a {
            if done.grad_a_out_sq.is_none() {
                done.grad_a_out_sq = Some(elementwise::add_assign_sum_of_squares(
                    self.grad_spikes.data_mut(),
                    grad_a_out.data(),
                ));
            }
            if let Some(p) = &mut self.projection {
                p.backward(a_in, &self.projected, grad_a_out, grad_a)?;
            }
        }
        // grad_spikes is this block's scratch: the branch may work in place in it.
        self.branch.backward_consuming(o, &self.spikes, &mut self.grad_spikes, grad_o)?;
        if let Some(g) = identity_join {
            // Without a projection dL/dA is dL/dA' itself; on a shared input it joins dL/dO here.
            let merge = if shared_input && self.projection.is_none() { grad_a_out } else { None };
            done.merged_grad_a = merge.is_some();
            connect_backward_add_o(
                g,
                self.spikes.data(),
                o.data(),
                grad_o_out.data(),
                merge,
                grad_o.data_mut(),
            );
            return Ok(done);
        }
        let through_shortcut = match &mut self.shortcut {
            Some(sc) => {
                sc.backward(o, &self.shortcut_out, &self.grad_shortcut, &mut self.grad_scratch)?;
                &self.grad_scratch
            }
            None => &self.grad_shortcut,
        };
        elementwise::add_assign(grad_o.data_mut(), through_shortcut.data());
        Ok(done)
    }

    /// Whether the last training forward ran over chunks of time steps (its backward is then
    /// [`DualStreamBlock::backward_chunked`]).
    pub fn ran_chunked(&self) -> bool {
        self.chunked.is_some()
    }

    /// Whether a training forward over chunks keeps what its backward reads (off for a
    /// memory-lean first forward, whose stores are released right after).
    pub fn set_keep(&mut self, keep: bool) {
        self.keep = keep;
    }

    /// The backward after a forward over chunks of time steps: `grad_o` holds `dL/dO'` on entry
    /// and `dL/dO` on exit; `grad_a_out` is `dL/dA'` where the forward ran the AAP (`dL/dA` is
    /// then `dL/dA'` itself: the block has no projection), added into `dL/dO` where
    /// `shared_input`. Reads neither output.
    pub fn backward_chunked(
        &mut self,
        o: &Tensor,
        grad_o: &mut Tensor,
        grad_a_out: Option<&Tensor>,
        shared_input: bool,
    ) -> Result<()> {
        let (Some(kept), Join::Spike(g)) = (self.chunked.take(), &self.join) else {
            return Err(Error::state(
                &self.name,
                "no forward over chunks of time steps to go back through",
            ));
        };
        for (what, t) in [("grad_output", Some(&*grad_o)), ("accumulation grad_output", grad_a_out)]
        {
            if let Some(t) = t.filter(|t| t.shape() != o.shape()) {
                return Err(Error::shape(
                    format!("{} {what}", self.name),
                    format!("{:?}", o.shape()),
                    t.shape(),
                ));
            }
        }
        chunks::backward(&mut self.branch, *g, &kept, o, grad_o, grad_a_out, shared_input)
    }

    /// The memory-lean mode inside the block's paths (their convs recompute their outputs).
    pub fn set_memory_lean(&mut self, on: bool) {
        self.branch.set_memory_lean(on);
        for path in [&mut self.shortcut, &mut self.projection].into_iter().flatten() {
            path.set_memory_lean(on);
        }
    }

    /// Frees the tensors kept between forward and backward, the gradient scratch, and what
    /// the paths' layers stored.
    pub fn release_stored(&mut self) {
        for t in [
            &mut self.spikes,
            &mut self.shortcut_out,
            &mut self.charge,
            &mut self.projected,
            &mut self.grad_spikes,
            &mut self.grad_shortcut,
            &mut self.grad_charge,
            &mut self.grad_scratch,
        ] {
            *t = Tensor::default();
        }
        self.chunked = None;
        self.branch.release_stored();
        for path in [&mut self.shortcut, &mut self.projection].into_iter().flatten() {
            path.release_stored();
        }
    }

    /// The branch, the shortcut, a Spiking ResNet join's neuron, then the AAP projection;
    /// the branch spikes, shortcut output, join charge and projection output the block keeps
    /// between forward and backward count as its stored bytes.
    pub fn visit(&self, visitor: &mut dyn Visitor) {
        let kept = [&self.spikes, &self.shortcut_out, &self.charge, &self.projected];
        let chunked = self.chunked.as_ref().map_or(0, chunks::Chunked::bytes);
        visitor.stored_bytes(kept.iter().map(|t| t.numel() * 4).sum::<usize>() + chunked);
        self.branch.visit(visitor);
        if let Some(sc) = &self.shortcut {
            sc.visit(visitor);
        }
        if let Join::SpikingResnet(n) = &self.join {
            n.visit(visitor);
        }
        if let Some(p) = &self.projection {
            p.visit(visitor);
        }
    }

    pub fn visit_mut<'a>(&'a mut self, visitor: &mut dyn VisitorMut<'a>) {
        self.branch.visit_mut(visitor);
        if let Some(sc) = &mut self.shortcut {
            sc.visit_mut(visitor);
        }
        if let Join::SpikingResnet(n) = &mut self.join {
            n.visit_mut(visitor);
        }
        if let Some(p) = &mut self.projection {
            p.visit_mut(visitor);
        }
    }
}

/// `x` through the optional `path` into `out`, or `x` itself where there is no path (an
/// identity shortcut or projection).
fn forward_path<'a>(
    path: &mut Option<Sequential>,
    x: &'a Tensor,
    out: &'a mut Tensor,
    training: bool,
) -> Result<&'a Tensor> {
    match path {
        Some(p) => {
            p.forward(x, out, training)?;
            Ok(out)
        }
        None => Ok(x),
    }
}
