//! The dual-stream trunk: dual-stream blocks and two-stream poolings on `(O, A)`, then the
//! heads `y_s = FC(GAP(O_L))`, `y_a = FC(GAP(A_L))` with one shared FC, per time step.
//! Output `[T, N, 2K]` (`y_s` then `y_a` in each row) with the accumulation pathway (AAP),
//! `[T, N, K]` (`y_s` alone, the AAP not computed) without it.
use crate::energy::{Counter, RateMonitor, SynapseCounter};
use crate::error::{Error, Result};
use crate::kernels::elementwise;
use crate::kernels::pool::{global_avg_backward, global_avg_forward};
use crate::layer::{expect_sample_rank, AuditProbe, Layer, Visitor, VisitorMut, Walk};
use crate::nn::dual_stream_block::DualStreamBlock;
use crate::nn::linear::Linear;
use crate::nn::pool::{AvgPool2d, MaxPool2d};
use crate::nn::transformer::token_mean::{token_mean_backward, token_mean_forward};
use crate::rng::Rng;
use crate::spec::{DualStage, DualStreamSpec, HeadPool};
use crate::tensor::Tensor;

#[doc(hidden)]
pub mod lean;
#[doc(hidden)]
pub mod stage;
use lean::Lean;
use stage::Stage;

pub struct DualStream {
    label: String,
    stages: Vec<Stage>,
    head: Linear,
    classes: usize,
    /// Built with the AAP (the spec's `aap`).
    has_aap: bool,
    /// The AAP runs in the next forward (off for full-spike inference).
    aap_on: bool,
    /// Stage i's outputs; stage 0 reads the trunk input as both O_0 and A_0.
    o: Vec<Tensor>,
    a: Vec<Tensor>,
    pooled_s: Tensor,
    pooled_a: Tensor,
    logits_s: Tensor,
    logits_a: Tensor,
    /// Whether the last forward ran the AAP (backward must match it).
    ran_aap: bool,
    grad_o: [Tensor; 2],
    grad_a: [Tensor; 2],
    grad_logits: Tensor,
    grad_pooled: Tensor,
    grad_scratch: Tensor,
    /// Audits the head: `FC(GAP(O_L))` = GAP of a 1x1 conv over the spikes O_L (FC is linear),
    /// so the head's synaptic input is O_L, which must be binary.
    probe: AuditProbe,
    head_pool: HeadPool,
    /// Per stage, the mean of its spike output O_i in the last forward (its firing rate).
    out_rates: Vec<f32>,
    /// Per stage, the spike output's rate monitor (energy reports).
    out_monitors: Vec<RateMonitor>,
    /// The two heads' synaptic operations. The spike head counts as the FC applied to the
    /// spike map O_L itself (FC(GAP(O)) = GAP(FC_1x1(O)) as FC is linear): each spike adds one
    /// weight column, AC. The accumulation head pools A_L first and multiplies: MAC.
    head_ops: [SynapseCounter; 2],
    /// Per stage, `(|dL/dO_i|, |dL/dA_i|)` of the last backward (0 for A without the AAP).
    grad_norms: Vec<(f32, f32)>,
    /// The trunk's path, e.g. `layers.4`.
    path: String,
    /// The memory-lean training mode (see `lean`).
    lean: Lean,
}

/// Euclidean norm, summed in f64 so that long tensors keep their precision.
fn l2(data: &[f32]) -> f32 {
    elementwise::l2_norm(data) as f32
}

impl DualStream {
    pub fn new(name: &str, spec: &DualStreamSpec, rng: &mut Rng) -> Result<Self> {
        let label = format!("{name} (dualStream)");
        if spec.stages.is_empty() {
            return Err(Error::spec(&label, "a dual-stream trunk needs at least one stage"));
        }
        let mut stages = Vec::with_capacity(spec.stages.len());
        for (i, st) in spec.stages.iter().enumerate() {
            let path = format!("{name}.stages.{i}");
            stages.push(match st {
                DualStage::Block(b) => {
                    if !spec.aap && b.projection.is_some() {
                        return Err(Error::spec(
                            &path,
                            "has a projection but the trunk's aap is false; a full-spike trunk has no accumulation stream",
                        ));
                    }
                    Stage::Block(DualStreamBlock::new(&path, b, &mut rng.fork(0))?)
                }
                DualStage::MaxPool2d(p) => Stage::Pool {
                    spike: Box::new(MaxPool2d::new(&path, p)?),
                    acc: Box::new(MaxPool2d::new(&format!("{path} (accumulation)"), p)?),
                },
                DualStage::AvgPool2d(p) => Stage::Pool {
                    spike: Box::new(AvgPool2d::new(&path, p)?),
                    acc: Box::new(AvgPool2d::new(&format!("{path} (accumulation)"), p)?),
                },
            });
        }
        let head = Linear::new(&format!("{name}.head"), &spec.head, &mut rng.fork(1))?;
        let n = stages.len();
        Ok(DualStream {
            label,
            stages,
            head,
            classes: spec.head.out_features,
            has_aap: spec.aap,
            aap_on: spec.aap,
            o: (0..n).map(|_| Tensor::default()).collect(),
            a: (0..n).map(|_| Tensor::default()).collect(),
            pooled_s: Tensor::default(),
            pooled_a: Tensor::default(),
            logits_s: Tensor::default(),
            logits_a: Tensor::default(),
            ran_aap: false,
            grad_o: [Tensor::default(), Tensor::default()],
            grad_a: [Tensor::default(), Tensor::default()],
            grad_logits: Tensor::default(),
            grad_pooled: Tensor::default(),
            grad_scratch: Tensor::default(),
            probe: AuditProbe::default(),
            grad_norms: Vec::new(),
            out_rates: Vec::new(),
            out_monitors: (0..n).map(|_| RateMonitor::default()).collect(),
            head_ops: [SynapseCounter::default(), SynapseCounter::default()],
            head_pool: spec.head_pool,
            path: name.to_string(),
            lean: Lean::default(),
        })
    }

    fn heads(&self) -> usize {
        if self.aap_on {
            2
        } else {
            1
        }
    }

    /// GAP then the shared FC: `[T, N, C, H, W]` -> `[T, N, K]`.
    fn head_forward(
        pool: HeadPool,
        head: &mut Linear,
        x: &Tensor,
        pooled: &mut Tensor,
        logits: &mut Tensor,
    ) -> Result<()> {
        let s = x.shape();
        match pool {
            HeadPool::Gap => {
                pooled.resize_for_overwrite(&s[..3]);
                global_avg_forward(x.data(), s[3] * s[4], pooled.data_mut());
            }
            HeadPool::Flatten => {
                pooled.resize_for_overwrite(&[s[0], s[1], s[2] * s[3] * s[4]]);
                pooled.data_mut().copy_from_slice(x.data());
            }
            HeadPool::Tokens => {
                pooled.resize_for_overwrite(&[s[0], s[1], s[3]]);
                token_mean_forward(x.data(), s[2], s[3], pooled.data_mut());
            }
        }
        head.forward(pooled, logits, true)
    }

    /// Stage `i`'s backward where the memory-lean mode ran a block over chunks of time steps
    /// (None for any other stage, which the trunk's loop runs). The block's backward writes
    /// its input gradient over its output gradient, whose buffer then takes the input
    /// gradient's place. A pooling right after such a block, with the AAP: the block's
    /// outputs, which no backward reads (the block's reads S bit-packed, a pooling only its
    /// input's shape), hand their buffers to the pooling's input gradients, so the two
    /// full-size streams and their two gradients are never live together; what the pooling
    /// kept and its output gradients are freed after its backward. Returns whether it
    /// wrote `dL/dA` into the other buffer of its pair, and whether it added `dL/dA` into `dL/dO`
    /// (the first block's shared input).
    fn chunked_stage(
        &mut self,
        i: usize,
        from_even: bool,
        a_from_even: bool,
        input: &Tensor,
        grad_input: &mut Tensor,
    ) -> Result<Option<(bool, bool)>> {
        let aap = self.ran_aap;
        let after_chunked =
            i > 0 && matches!(&self.stages[i - 1], Stage::Block(b) if b.ran_chunked());
        let [go_even, go_odd] = &mut self.grad_o;
        let [ga_even, ga_odd] = &mut self.grad_a;
        let (go_from, go_to) = if from_even { (go_even, go_odd) } else { (go_odd, go_even) };
        let (ga_from, ga_to) = if a_from_even { (ga_even, ga_odd) } else { (ga_odd, ga_even) };
        match &mut self.stages[i] {
            Stage::Block(b) if b.ran_chunked() => {
                let a_norm = if aap { l2(ga_from.data()) } else { 0.0 };
                self.grad_norms[i] = (l2(go_from.data()), a_norm);
                let o_in = if i == 0 { input } else { &self.o[i - 1] };
                b.backward_chunked(o_in, go_from, aap.then_some(&*ga_from), i == 0)?;
                std::mem::swap(go_from, if i == 0 { grad_input } else { go_to });
                Ok(Some((false, i == 0 && aap)))
            }
            Stage::Pool { spike, acc } if aap && after_chunked => {
                self.grad_norms[i] = (l2(go_from.data()), l2(ga_from.data()));
                *go_to = std::mem::take(&mut self.o[i - 1]);
                *ga_to = std::mem::take(&mut self.a[i - 1]);
                // Each stream's buffer stands in for the other's input: the same shape.
                spike.backward(ga_to, &self.o[i], go_from, go_to)?;
                acc.backward(go_to, &self.a[i], ga_from, ga_to)?;
                // The pooling's outputs, argmax and output gradients are not read again
                // (the stages after it are done): freed before the block's backward.
                for t in [&mut self.o[i], &mut self.a[i], go_from, ga_from] {
                    *t = Tensor::default();
                }
                spike.release_stored();
                acc.release_stored();
                Ok(Some((true, false)))
            }
            _ => Ok(None),
        }
    }

    /// The features the FC sees for a stream shape `[T, N, C, H, W]`.
    fn head_input_shape(&self, s: &[usize]) -> Vec<usize> {
        match self.head_pool {
            HeadPool::Gap => s[..3].to_vec(),
            HeadPool::Flatten => vec![s[0], s[1], s[2] * s[3] * s[4]],
            HeadPool::Tokens => vec![s[0], s[1], s[3]],
        }
    }
}

impl Layer for DualStream {
    fn name(&self) -> &str {
        &self.label
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        match self.head_pool {
            HeadPool::Tokens => {
                expect_sample_rank(&self.label, input, 2, "[T, N, L, C] (the stem's tokens)")?
            }
            _ => expect_sample_rank(&self.label, input, 3, "[T, N, C, H, W] (the stem's spikes)")?,
        }
        let mut shape = input.to_vec();
        for st in &self.stages {
            shape = match st {
                Stage::Block(b) => b.output_shape(&shape, self.aap_on)?,
                Stage::Pool { spike, .. } => spike.output_shape(&shape)?,
            };
        }
        let logits = self.head.output_shape(&self.head_input_shape(&shape))?;
        Ok(vec![logits[0], logits[1], self.classes * self.heads()])
    }

    /// Segments its own stages (see `lean`).
    fn set_memory_lean(&mut self, on: bool) {
        self.lean.on = on;
        for stage in &mut self.stages {
            if let Stage::Block(b) = stage {
                b.set_memory_lean(on);
            }
        }
    }

    fn forward(&mut self, input: &Tensor, output: &mut Tensor, training: bool) -> Result<()> {
        self.output_shape(input.shape())?;
        let aap = self.aap_on;
        self.out_rates.clear();
        self.out_rates.resize(self.stages.len(), 0.0);
        self.lean.begin(self.stages.len(), training);
        for i in 0..self.stages.len() {
            self.lean.before_stage(&mut self.stages[i], i);
            let (o_done, o_rest) = self.o.split_at_mut(i);
            let (a_done, a_rest) = self.a.split_at_mut(i);
            let o_in = if i == 0 { input } else { &o_done[i - 1] };
            let a_in = if i == 0 { input } else { &a_done[i - 1] };
            let (o_out, a_out) = (&mut o_rest[0], &mut a_rest[0]);
            let sum =
                stage::run_stage(&mut self.stages[i], (o_in, a_in), (o_out, a_out), aap, training)?;
            if let Stage::Block(_) = self.stages[i] {
                // Block stages' output rates (pools' stay 0: not reported).
                let sum = sum.unwrap_or_else(|| elementwise::sum(o_out.data()));
                self.out_rates[i] =
                    if o_out.numel() == 0 { 0.0 } else { (sum / o_out.numel() as f64) as f32 };
            }
            if lean::ends(&self.stages, i) {
                self.lean.end_forward(&mut self.stages, &mut self.o, &mut self.a, i);
            }
        }
        for (m, o) in self.out_monitors.iter_mut().zip(&self.o) {
            m.observe(o);
        }
        let last = self.stages.len() - 1;
        self.probe.observe(self.o[last].data());
        let bias_ops = if self.head.bias().is_some() { self.classes as u64 } else { 0 };
        let o_last = &self.o[last];
        let per_sample_step = o_last.numel() / (o_last.shape()[0] * o_last.shape()[1]).max(1);
        self.head_ops[0].observe(o_last, (per_sample_step * self.classes) as u64, bias_ops);
        Self::head_forward(
            self.head_pool,
            &mut self.head,
            &self.o[last],
            &mut self.pooled_s,
            &mut self.logits_s,
        )?;
        let (t, n, k) = (self.logits_s.shape()[0], self.logits_s.shape()[1], self.classes);
        if aap {
            Self::head_forward(
                self.head_pool,
                &mut self.head,
                &self.a[last],
                &mut self.pooled_a,
                &mut self.logits_a,
            )?;
            let features = self.pooled_a.shape()[2];
            self.head_ops[1].observe(&self.pooled_a, (features * self.classes) as u64, bias_ops);
            output.resize_for_overwrite(&[t, n, 2 * k]);
            for ((row, s), a) in output
                .data_mut()
                .chunks_exact_mut(2 * k)
                .zip(self.logits_s.data().chunks_exact(k))
                .zip(self.logits_a.data().chunks_exact(k))
            {
                row[..k].copy_from_slice(s);
                row[k..].copy_from_slice(a);
            }
        } else {
            output.resize_for_overwrite(&[t, n, k]);
            output.data_mut().copy_from_slice(self.logits_s.data());
        }
        self.ran_aap = aap;
        Ok(())
    }

    fn backward(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        grad_input: &mut Tensor,
    ) -> Result<()> {
        if grad_output.shape() != output.shape() {
            return Err(Error::shape(
                format!("{} grad_output", self.label),
                format!("{:?}", output.shape()),
                grad_output.shape(),
            ));
        }
        let aap = self.ran_aap;
        let k = self.classes;
        let last = self.stages.len() - 1;
        let [go_even, _] = &mut self.grad_o;
        let [ga_even, _] = &mut self.grad_a;
        // Heads: split [y_s | y_a] rows, back through the shared FC (its gradients add up) and GAP.
        let heads = if aap { 2 } else { 1 };
        for h in 0..heads {
            self.grad_logits.resize_for_overwrite(self.logits_s.shape());
            for (g, row) in self
                .grad_logits
                .data_mut()
                .chunks_exact_mut(k)
                .zip(grad_output.data().chunks_exact(heads * k))
            {
                g.copy_from_slice(&row[h * k..(h + 1) * k]);
            }
            let (pooled, logits, feat, dst) = if h == 0 {
                (&self.pooled_s, &self.logits_s, &self.o[last], &mut *go_even)
            } else {
                (&self.pooled_a, &self.logits_a, &self.a[last], &mut *ga_even)
            };
            self.head.backward(pooled, logits, &self.grad_logits, &mut self.grad_pooled)?;
            dst.resize_for_overwrite(feat.shape());
            let s = feat.shape();
            match self.head_pool {
                HeadPool::Gap => {
                    global_avg_backward(self.grad_pooled.data(), s[3] * s[4], dst.data_mut())
                }
                HeadPool::Flatten => dst.data_mut().copy_from_slice(self.grad_pooled.data()),
                HeadPool::Tokens => {
                    token_mean_backward(self.grad_pooled.data(), s[2], s[3], dst.data_mut())
                }
            }
        }
        // Stage i reads its output gradient from one buffer of each pair and writes its input
        // gradient into the other; stage 0's input is both O_0 and A_0, so its two gradients add.
        // A block without a projection passes dL/dA' through as dL/dA: the A stream's buffers
        // then stay where they are.
        self.grad_norms.clear();
        self.grad_norms.resize(self.stages.len(), (0.0, 0.0));
        let mut a_from_even = true;
        let mut a0_in_scratch = false;
        let mut a0_merged = false;
        let lean = self.lean.ran;
        for i in (0..self.stages.len()).rev() {
            if lean && lean::ends(&self.stages, i) {
                self.lean.rerun(&mut self.stages, &mut self.o, &mut self.a, input, aap, i)?;
            }
            let from_even = (last - i).is_multiple_of(2);
            let chunked = self.chunked_stage(i, from_even, a_from_even, input, grad_input)?;
            if let Some((wrote_a, merged)) = chunked {
                // A block over chunks of time steps, or the pooling after one: see
                // `chunked_stage`.
                a0_merged |= merged;
                if wrote_a {
                    a_from_even = !a_from_even;
                }
                if lean && lean::starts_segment(&self.stages, i) {
                    self.lean.end_backward(&mut self.stages, &mut self.o, &mut self.a, i);
                }
                continue;
            }
            let [go_even, go_odd] = &mut self.grad_o;
            let [ga_even, ga_odd] = &mut self.grad_a;
            let (go_from, go_to) =
                if from_even { (&*go_even, &mut *go_odd) } else { (&*go_odd, &mut *go_even) };
            let (ga_from, ga_to) =
                if a_from_even { (&*ga_even, &mut *ga_odd) } else { (&*ga_odd, &mut *ga_even) };
            let o_in = if i == 0 { input } else { &self.o[i - 1] };
            let a_in = if i == 0 { input } else { &self.a[i - 1] };
            let go_to: &mut Tensor = if i == 0 { &mut *grad_input } else { go_to };
            let ga_to: &mut Tensor = if i == 0 { &mut self.grad_scratch } else { ga_to };
            let (wrote_a, o_sq, a_sq) = match &mut self.stages[i] {
                Stage::Block(b) => {
                    // Stage 0's two streams both start from the input.
                    let done = b.backward(
                        o_in,
                        &self.o[i],
                        go_from,
                        go_to,
                        aap.then_some((a_in, ga_from, ga_to)),
                        i == 0,
                    )?;
                    a0_merged = done.merged_grad_a;
                    (done.wrote_grad_a, done.grad_o_out_sq, done.grad_a_out_sq)
                }
                Stage::Pool { spike, acc } => {
                    spike.backward(o_in, &self.o[i], go_from, go_to)?;
                    if aap {
                        acc.backward(a_in, &self.a[i], ga_from, ga_to)?;
                    }
                    (aap, None, None)
                }
            };
            // Norms the block's passes did not take on the way cost a pass of their own.
            let norm = |sq: Option<f64>, g: &Tensor| {
                sq.map_or_else(|| l2(g.data()), |sq| sq.sqrt() as f32)
            };
            self.grad_norms[i] = (norm(o_sq, go_from), if aap { norm(a_sq, ga_from) } else { 0.0 });
            if i == 0 {
                a0_in_scratch = wrote_a;
            } else if wrote_a {
                a_from_even = !a_from_even;
            }
            if lean && lean::starts_segment(&self.stages, i) {
                self.lean.end_backward(&mut self.stages, &mut self.o, &mut self.a, i);
            }
        }
        if aap && !a0_merged {
            let grad_a0 = if a0_in_scratch {
                &self.grad_scratch
            } else if a_from_even {
                &self.grad_a[0]
            } else {
                &self.grad_a[1]
            };
            elementwise::add_assign(grad_input.data_mut(), grad_a0.data());
        }
        if lean {
            // The gradient pairs are full-size at the first block's resolution: not kept
            // between steps in the memory-lean mode.
            self.grad_o = [Tensor::default(), Tensor::default()];
            self.grad_a = [Tensor::default(), Tensor::default()];
            self.grad_scratch = Tensor::default();
        }
        Ok(())
    }

    /// Per block stage: its layers, then its output `<trunk>.stages.<i>.out`; then the spike
    /// head's audit and the per-stage gradient norms (O, and A when the AAP ran).
    fn visit(&self, visitor: &mut dyn Visitor) {
        // The two streams between stages, kept for the stages' backward passes (O bit-packed
        // where the memory-lean mode packed it).
        let streams: usize = self.o.iter().chain(&self.a).map(|t| t.numel() * 4).sum();
        visitor.stored_bytes(streams + self.lean.packed_bytes());
        for (i, st) in self.stages.iter().enumerate() {
            if let Stage::Block(b) = st {
                b.visit(visitor);
                if let Some(rate) = self.out_rates.get(i) {
                    visitor.firing_rate(format!("{}.stages.{i}.out", self.path), *rate);
                }
            }
        }
        let head = self.head.name().trim_end_matches(" (linear)");
        visitor.audit(&format!("{head} (linear head, on GAP of the spike stream)"), &self.probe);
        for (i, &(o, a)) in self.grad_norms.iter().enumerate() {
            visitor.gradient_norm(format!("{}.stages.{i}.O", self.path), o);
            if self.ran_aap {
                visitor.gradient_norm(format!("{}.stages.{i}.A", self.path), a);
            }
        }
    }

    /// Per block stage: its layers, then its output `<trunk>.stages.<i>.out`; then the head's
    /// parameters, the spike head's and the accumulation head's synapses, the head's audit
    /// recorder and the AAP switch.
    fn visit_mut<'a>(&'a mut self, visitor: &mut dyn VisitorMut<'a>) {
        for (i, (st, m)) in self.stages.iter_mut().zip(self.out_monitors.iter_mut()).enumerate() {
            if let Stage::Block(b) = st {
                b.visit_mut(visitor);
                visitor.counter(Counter::block_rate(format!("{}.stages.{i}.out", self.path), m));
            }
        }
        let mut head = Vec::new();
        self.head.params(&mut head);
        head.into_iter().for_each(|p| visitor.param(p));
        let [spike, acc] = &mut self.head_ops;
        visitor.counter(Counter::Synapse {
            name: format!("{}.head (on the spike stream O)", self.path),
            kind: "linear",
            counter: spike,
        });
        visitor.counter(Counter::Synapse {
            name: format!("{}.head (on the accumulation A)", self.path),
            kind: "linear",
            counter: acc,
        });
        visitor.audit_probe(&mut self.probe);
        visitor.aap_switch(&mut self.aap_on, self.has_aap);
    }
}
