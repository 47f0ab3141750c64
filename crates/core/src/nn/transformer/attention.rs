//! The product of spiking self-attention (SSA, Spikformer): on `[T, N, L, 3C]`, the channels
//! of Q, K and V side by side, per sample, step and head `Y = scale * Q K^T V` (no softmax),
//! written to `[T, N, L, C]` with the heads side by side. Q, K and V are spikes in a
//! Spikformer, so every product is an integer count times `scale`, exact in f32.
//!
//! Two association orders give the same values: `(Q K^T) V` costs `L * L * D` per head and
//! `Q (K^T V)` costs `L * D * D` (SpikingJelly computes the latter); [`Order::for_sizes`]
//! picks the cheaper. Each order is a pair of dense GEMMs per head; a bit-packed or
//! event-driven kernel for binary Q, K and V is one more [`Order`]-like choice here.
use crate::energy::{Counter, SynapseCounter};
use crate::error::{Error, Result};
use crate::kernels::gemm::gemm_strided;
use crate::layer::{check_grad_output, AuditProbe, BackwardReads, Layer, Visitor, VisitorMut};
use crate::spec::SpikingAttentionSpec;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// How one head's product is associated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// `A = Q K^T` (L x L), then `A V`.
    TokensFirst,
    /// `M = K^T V` (D x D), then `Q M`.
    ChannelsFirst,
}

impl Order {
    /// The order with fewer multiply-adds for `l` tokens of `d` channels per head.
    pub fn for_sizes(l: usize, d: usize) -> Order {
        if l <= d {
            Order::TokensFirst
        } else {
            Order::ChannelsFirst
        }
    }
}

#[derive(Clone, Debug)]
pub struct SpikingAttention {
    label: String,
    spec: SpikingAttentionSpec,
    probe: AuditProbe,
    /// `[Q K^T, (Q K^T) V]`, counted as defined whatever the order computed.
    ops: [SynapseCounter; 2],
    /// Q and V of the last forward, copied only while energy counting is on.
    counted: Tensor,
}

/// One head's operands inside a sample-step's `[L, 3C]` block: Q, K and V start at
/// `q`, `q + C` and `q + 2C`, with rows `3C` apart.
struct Head {
    l: usize,
    d: usize,
    c: usize,
    q: usize,
}

impl Head {
    fn k(&self) -> usize {
        self.q + self.c
    }
    fn v(&self) -> usize {
        self.q + 2 * self.c
    }
    fn pitch(&self) -> usize {
        3 * self.c
    }
}

/// `y[l, q..q+d]` (rows `C` apart) = `scale * Q K^T V` of one head.
fn head_forward(order: Order, x: &[f32], h: &Head, scale: f32, y: &mut [f32], work: &mut [f32]) {
    let (l, d, c, p) = (h.l, h.d, h.c, h.pitch());
    let yo = h.q;
    match order {
        Order::TokensFirst => {
            // A = Q K^T, Y = s A V.
            gemm_strided(l, l, d, 1.0, &x[h.q..], p, 1, &x[h.k()..], 1, p, 0.0, work, l, 1);
            gemm_strided(l, d, l, scale, work, l, 1, &x[h.v()..], p, 1, 0.0, &mut y[yo..], c, 1);
        }
        Order::ChannelsFirst => {
            // M = K^T V, Y = s Q M.
            gemm_strided(d, d, l, 1.0, &x[h.k()..], 1, p, &x[h.v()..], p, 1, 0.0, work, d, 1);
            gemm_strided(l, d, d, scale, &x[h.q..], p, 1, work, d, 1, 0.0, &mut y[yo..], c, 1);
        }
    }
}

/// Writes dQ, dK and dV of one head into `dx` (same layout as `x`) from `dy` (rows `C` apart).
fn head_backward(
    order: Order,
    x: &[f32],
    dy: &[f32],
    h: &Head,
    scale: f32,
    dx: &mut [f32],
    (work, work_grad): (&mut [f32], &mut [f32]),
) {
    let (l, d, c, p) = (h.l, h.d, h.c, h.pitch());
    let dyo = &dy[h.q..];
    match order {
        Order::TokensFirst => {
            // A = Q K^T; dA = s dY V^T, dV = s A^T dY, dQ = dA K, dK = dA^T Q.
            gemm_strided(l, l, d, 1.0, &x[h.q..], p, 1, &x[h.k()..], 1, p, 0.0, work, l, 1);
            gemm_strided(l, l, d, scale, dyo, c, 1, &x[h.v()..], 1, p, 0.0, work_grad, l, 1);
            gemm_strided(l, d, l, scale, work, 1, l, dyo, c, 1, 0.0, &mut dx[h.v()..], p, 1);
            gemm_strided(
                l,
                d,
                l,
                1.0,
                work_grad,
                l,
                1,
                &x[h.k()..],
                p,
                1,
                0.0,
                &mut dx[h.q..],
                p,
                1,
            );
            gemm_strided(
                l,
                d,
                l,
                1.0,
                work_grad,
                1,
                l,
                &x[h.q..],
                p,
                1,
                0.0,
                &mut dx[h.k()..],
                p,
                1,
            );
        }
        Order::ChannelsFirst => {
            // M = K^T V; dQ = s dY M^T, dM = s Q^T dY, dK = V dM^T, dV = K dM.
            gemm_strided(d, d, l, 1.0, &x[h.k()..], 1, p, &x[h.v()..], p, 1, 0.0, work, d, 1);
            gemm_strided(l, d, d, scale, dyo, c, 1, work, 1, d, 0.0, &mut dx[h.q..], p, 1);
            gemm_strided(d, d, l, scale, &x[h.q..], 1, p, dyo, c, 1, 0.0, work_grad, d, 1);
            gemm_strided(
                l,
                d,
                d,
                1.0,
                &x[h.v()..],
                p,
                1,
                work_grad,
                1,
                d,
                0.0,
                &mut dx[h.k()..],
                p,
                1,
            );
            gemm_strided(
                l,
                d,
                d,
                1.0,
                &x[h.k()..],
                p,
                1,
                work_grad,
                d,
                1,
                0.0,
                &mut dx[h.v()..],
                p,
                1,
            );
        }
    }
}

impl SpikingAttention {
    pub fn new(name: &str, spec: &SpikingAttentionSpec) -> Result<Self> {
        let label = format!("{name} (spikingAttention)");
        if spec.dim == 0 || spec.heads == 0 || !spec.dim.is_multiple_of(spec.heads) {
            return Err(Error::spec(
                &label,
                format!(
                    "expected heads dividing a positive dim, got dim {} and heads {}",
                    spec.dim, spec.heads
                ),
            ));
        }
        if !spec.scale.is_finite() {
            return Err(Error::value(&label, "a finite scale", spec.scale));
        }
        Ok(SpikingAttention {
            label,
            spec: spec.clone(),
            probe: AuditProbe::default(),
            ops: [SynapseCounter::default(), SynapseCounter::default()],
            counted: Tensor::default(),
        })
    }

    fn check_input(&self, input: &[usize]) -> Result<()> {
        let c3 = 3 * self.spec.dim;
        if input.len() != 4 || input[3] != c3 {
            return Err(Error::shape(
                &self.label,
                format!("[T, N, L, {c3}] (Q, K and V of {} channels each)", self.spec.dim),
                input,
            ));
        }
        Ok(())
    }

    /// Counts both products by the value rule (each spike of Q, then of V, adds L values).
    fn count(&mut self, input: &Tensor) {
        let s = input.shape();
        let (l, c) = (s[2], self.spec.dim);
        let weight_ops = (l * l * c) as u64;
        for (part, counter) in self.ops.iter_mut().enumerate() {
            if !counter.is_on() {
                continue;
            }
            // Q for the first product, V for the second.
            let from = if part == 0 { 0 } else { 2 * c };
            self.counted.resize_for_overwrite(&[s[0], s[1], l, c]);
            for (dst, src) in
                self.counted.data_mut().chunks_exact_mut(c).zip(input.data().chunks_exact(3 * c))
            {
                dst.copy_from_slice(&src[from..from + c]);
            }
            counter.observe(&self.counted, weight_ops, 0);
        }
    }
}

impl Layer for SpikingAttention {
    fn name(&self) -> &str {
        &self.label
    }

    /// Backward recomputes the per-head products from the input.
    fn backward_reads(&self) -> BackwardReads {
        BackwardReads { input: true, output: false }
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.check_input(input)?;
        Ok(vec![input[0], input[1], input[2], self.spec.dim])
    }

    fn forward(&mut self, input: &Tensor, output: &mut Tensor, _training: bool) -> Result<()> {
        let shape = self.output_shape(input.shape())?;
        self.probe.observe(input.data());
        self.count(input);
        output.resize_for_overwrite(&shape);
        let (l, c, heads) = (shape[2], self.spec.dim, self.spec.heads);
        let d = c / heads;
        if l == 0 || output.numel() == 0 {
            return Ok(());
        }
        let order = Order::for_sizes(l, d);
        let scale = self.spec.scale;
        let work_len = if order == Order::TokensFirst { l * l } else { d * d };
        output
            .data_mut()
            .par_chunks_mut(l * c)
            .zip(input.data().par_chunks(l * 3 * c))
            .for_each_init(
                || vec![0.0f32; work_len],
                |work, (y, x)| {
                    for h in 0..heads {
                        let head = Head { l, d, c, q: h * d };
                        head_forward(order, x, &head, scale, y, work);
                    }
                },
            );
        Ok(())
    }

    fn backward(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        grad_input: &mut Tensor,
    ) -> Result<()> {
        let shape = self.output_shape(input.shape())?;
        check_grad_output(&self.label, output.shape(), grad_output.shape())?;
        check_grad_output(&self.label, &shape, grad_output.shape())?;
        grad_input.resize_for_overwrite(input.shape());
        let (l, c, heads) = (shape[2], self.spec.dim, self.spec.heads);
        let d = c / heads;
        if l == 0 || output.numel() == 0 {
            return Ok(());
        }
        let order = Order::for_sizes(l, d);
        let scale = self.spec.scale;
        let work_len = if order == Order::TokensFirst { l * l } else { d * d };
        grad_input
            .data_mut()
            .par_chunks_mut(l * 3 * c)
            .zip(input.data().par_chunks(l * 3 * c).zip(grad_output.data().par_chunks(l * c)))
            .for_each_init(
                || (vec![0.0f32; work_len], vec![0.0f32; work_len]),
                |(work, work_grad), (dx, (x, dy))| {
                    for h in 0..heads {
                        let head = Head { l, d, c, q: h * d };
                        head_backward(order, x, dy, &head, scale, dx, (work, work_grad));
                    }
                },
            );
        Ok(())
    }

    fn visit(&self, visitor: &mut dyn Visitor) {
        visitor.audit(&self.label, &self.probe);
    }

    fn visit_mut<'a>(&'a mut self, visitor: &mut dyn VisitorMut<'a>) {
        let name = self.label.trim_end_matches(" (spikingAttention)").to_string();
        let [qk, av] = &mut self.ops;
        visitor.counter(Counter::Synapse {
            name: format!("{name} (Q K^T)"),
            kind: "attention",
            counter: qk,
        });
        visitor.counter(Counter::Synapse {
            name: format!("{name} ((Q K^T) V)"),
            kind: "attention",
            counter: av,
        });
        visitor.audit_probe(&mut self.probe);
    }
}
