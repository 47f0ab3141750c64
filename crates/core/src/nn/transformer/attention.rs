//! The product of spiking self-attention (SSA, Spikformer): on `[T, N, L, 3C]`, the channels
//! of Q, K and V side by side, per sample, step and head `Y = scale * Q K^T V` (no softmax),
//! written to `[T, N, L, C]` with the heads side by side. Q, K and V are spikes in a
//! Spikformer, so every product is an integer count times `scale`, exact in f32.
//!
//! Two association orders give the same values: `(Q K^T) V` costs `L * L * D` per head and
//! `Q (K^T V)` costs `L * D * D` (SpikingJelly computes the latter); [`Order::for_sizes`]
//! picks the cheaper. Each order is a pair of products per head: when Q, K and V are spikes,
//! the product of two spike matrices runs bit-packed (AND + popcount) and the product of a spike
//! matrix and the resulting counts event-driven below
//! [`EVENT_MAX_DENSITY`](crate::kernels::spike_attention::EVENT_MAX_DENSITY), both exact, so
//! the output is the dense GEMMs' bit for bit; any other input takes the dense GEMMs. The
//! backward recomputes the count matrix the same way and runs the real-valued products dense.
use crate::energy::{Counter, SynapseCounter};
use crate::error::{Error, Result};
use crate::kernels::gemm::gemm_strided;
use crate::kernels::spike_attention::{
    and_popcount, pack_rows, spikes_times_matrix, words_for, EVENT_MAX_DENSITY,
};
use crate::layer::{check_backward_shapes, AuditProbe, BackwardReads, Layer, Visitor, VisitorMut};
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
#[doc(hidden)]
pub struct Head {
    #[doc(hidden)]
    pub l: usize,
    #[doc(hidden)]
    pub d: usize,
    #[doc(hidden)]
    pub c: usize,
    #[doc(hidden)]
    pub q: usize,
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

/// Per-thread buffers of the per-head products.
#[doc(hidden)]
pub struct Scratch {
    /// The L x L (tokens first) or D x D (channels first) product, and its gradient.
    #[doc(hidden)]
    pub work: Vec<f32>,
    work_grad: Vec<f32>,
    /// Packed operands: two for the spike x spike product, one for the spike x counts product.
    bits: [Vec<u64>; 3],
    /// `Y^T` of one head (tokens first) and one accumulator row.
    transposed: Vec<f32>,
    acc: Vec<f32>,
}

impl Scratch {
    #[doc(hidden)]
    pub fn new(l: usize, d: usize, order: Order) -> Self {
        let work_len = if order == Order::TokensFirst { l * l } else { d * d };
        let packed = (l * words_for(d)).max(d * words_for(l));
        Scratch {
            work: vec![0.0; work_len],
            work_grad: vec![0.0; work_len],
            bits: [vec![0; packed], vec![0; packed], vec![0; packed]],
            transposed: vec![0.0; l * d],
            acc: vec![0.0; l.max(d)],
        }
    }
}

/// The count matrix of one head from its spikes: `Q K^T` (`transposed`: `K Q^T`) tokens first,
/// `K^T V` channels first, into `s.work`. `None` (nothing usable written) if an operand is not
/// binary.
fn head_counts(order: Order, x: &[f32], h: &Head, transposed: bool, s: &mut Scratch) -> Option<()> {
    let (l, d, p) = (h.l, h.d, h.pitch());
    let [a, b, _] = &mut s.bits;
    match order {
        Order::TokensFirst => {
            // Rows of Q and K packed along the head's channels.
            let (first, second) = if transposed { (h.k(), h.q) } else { (h.q, h.k()) };
            pack_rows(&x[first..], l, d, p, 1, a)?;
            pack_rows(&x[second..], l, d, p, 1, b)?;
            and_popcount(a, b, l, l, words_for(d), &mut s.work, l);
        }
        Order::ChannelsFirst => {
            // Columns of K and V packed along the tokens.
            pack_rows(&x[h.k()..], d, l, 1, p, a)?;
            pack_rows(&x[h.v()..], d, l, 1, p, b)?;
            and_popcount(a, b, d, d, words_for(l), &mut s.work, d);
        }
    }
    Some(())
}

/// [`head_forward`] for spike operands: the counts packed, then the spike x counts product
/// event-driven or dense by the spikes' density. `None` (`y` untouched) if an operand is not
/// binary.
#[doc(hidden)]
pub fn head_forward_spikes(
    order: Order,
    x: &[f32],
    h: &Head,
    scale: f32,
    y: &mut [f32],
    s: &mut Scratch,
) -> Option<()> {
    let (l, d, c, p) = (h.l, h.d, h.c, h.pitch());
    let yo = h.q;
    match order {
        Order::TokensFirst => {
            // A^T = K Q^T, then Y^T = s V^T A^T: each spike of V adds a row of A^T.
            head_counts(order, x, h, true, s)?;
            let vt = &mut s.bits[2];
            let ones = pack_rows(&x[h.v()..], d, l, 1, p, vt)?;
            if ones as f32 <= EVENT_MAX_DENSITY * (l * d) as f32 {
                let yt = &mut s.transposed;
                spikes_times_matrix(vt, d, l, &s.work, l, l, scale, yt, l, &mut s.acc);
                for (i, row) in y[yo..].chunks_mut(c).take(l).enumerate() {
                    for (ch, out) in row[..d].iter_mut().enumerate() {
                        *out = yt[ch * l + i];
                    }
                }
            } else {
                let (a, v) = (&s.work, &x[h.v()..]);
                gemm_strided(l, d, l, scale, a, 1, l, v, p, 1, 0.0, &mut y[yo..], c, 1);
            }
        }
        Order::ChannelsFirst => {
            // M = K^T V, then Y = s Q M: each spike of Q adds a row of M.
            head_counts(order, x, h, false, s)?;
            let q = &mut s.bits[2];
            let ones = pack_rows(&x[h.q..], l, d, p, 1, q)?;
            if ones as f32 <= EVENT_MAX_DENSITY * (l * d) as f32 {
                spikes_times_matrix(q, l, d, &s.work, d, d, scale, &mut y[yo..], c, &mut s.acc);
            } else {
                let (qs, m) = (&x[h.q..], &s.work);
                gemm_strided(l, d, d, scale, qs, p, 1, m, d, 1, 0.0, &mut y[yo..], c, 1);
            }
        }
    }
    Some(())
}

/// `y[l, q..q+d]` (rows `C` apart) = `scale * Q K^T V` of one head.
#[doc(hidden)]
pub fn head_forward(
    order: Order,
    x: &[f32],
    h: &Head,
    scale: f32,
    y: &mut [f32],
    work: &mut [f32],
) {
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
#[allow(clippy::too_many_arguments)]
#[doc(hidden)]
pub fn head_backward(
    order: Order,
    x: &[f32],
    dy: &[f32],
    h: &Head,
    scale: f32,
    dx: &mut [f32],
    s: &mut Scratch,
    packed: bool,
) {
    let (l, d, c, p) = (h.l, h.d, h.c, h.pitch());
    let dyo = &dy[h.q..];
    let (xq, xk, xv) = (&x[h.q..], &x[h.k()..], &x[h.v()..]);
    let (q, k, v) = (h.q, h.k(), h.v());
    // The count matrix (A or M) packed when the operands are spikes, else by a GEMM below.
    let counted = packed && head_counts(order, x, h, false, s).is_some();
    let (work, work_grad) = (&mut s.work[..], &mut s.work_grad[..]);
    match order {
        Order::TokensFirst => {
            // A = Q K^T; dA = s dY V^T, dV = s A^T dY, dQ = dA K, dK = dA^T Q.
            if !counted {
                gemm_strided(l, l, d, 1.0, xq, p, 1, xk, 1, p, 0.0, work, l, 1);
            }
            gemm_strided(l, l, d, scale, dyo, c, 1, xv, 1, p, 0.0, work_grad, l, 1);
            gemm_strided(l, d, l, scale, work, 1, l, dyo, c, 1, 0.0, &mut dx[v..], p, 1);
            gemm_strided(l, d, l, 1.0, work_grad, l, 1, xk, p, 1, 0.0, &mut dx[q..], p, 1);
            gemm_strided(l, d, l, 1.0, work_grad, 1, l, xq, p, 1, 0.0, &mut dx[k..], p, 1);
        }
        Order::ChannelsFirst => {
            // M = K^T V; dQ = s dY M^T, dM = s Q^T dY, dK = V dM^T, dV = K dM.
            if !counted {
                gemm_strided(d, d, l, 1.0, xk, 1, p, xv, p, 1, 0.0, work, d, 1);
            }
            gemm_strided(l, d, d, scale, dyo, c, 1, work, 1, d, 0.0, &mut dx[q..], p, 1);
            gemm_strided(d, d, l, scale, xq, 1, p, dyo, c, 1, 0.0, work_grad, d, 1);
            gemm_strided(l, d, d, 1.0, xv, p, 1, work_grad, 1, d, 0.0, &mut dx[k..], p, 1);
            gemm_strided(l, d, d, 1.0, xk, p, 1, work_grad, d, 1, 0.0, &mut dx[v..], p, 1);
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

    /// For an output of `shape`: tokens L, width C, heads, head width C / heads, the product
    /// order and the scale; None when the output holds no values.
    fn head_plan(&self, shape: &[usize]) -> Option<(usize, usize, usize, usize, Order, f32)> {
        let (l, c, heads) = (shape[2], self.spec.dim, self.spec.heads);
        let d = c / heads;
        if l == 0 || shape.iter().product::<usize>() == 0 {
            return None;
        }
        Some((l, c, heads, d, Order::for_sizes(l, d), self.spec.scale))
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

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.check_input(input)?;
        Ok(vec![input[0], input[1], input[2], self.spec.dim])
    }

    fn forward(&mut self, input: &Tensor, output: &mut Tensor, _training: bool) -> Result<()> {
        let shape = self.output_shape(input.shape())?;
        self.probe.observe(input.data());
        self.count(input);
        output.resize_for_overwrite(&shape);
        let Some((l, c, heads, d, order, scale)) = self.head_plan(&shape) else {
            return Ok(());
        };
        output
            .data_mut()
            .par_chunks_mut(l * c)
            .zip(input.data().par_chunks(l * 3 * c))
            .for_each_init(
                || Scratch::new(l, d, order),
                |s, (y, x)| {
                    for h in 0..heads {
                        let head = Head { l, d, c, q: h * d };
                        if head_forward_spikes(order, x, &head, scale, y, s).is_none() {
                            head_forward(order, x, &head, scale, y, &mut s.work);
                        }
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
        let shape = check_backward_shapes(self, input, output, grad_output)?;
        grad_input.resize_for_overwrite(input.shape());
        let Some((l, c, heads, d, order, scale)) = self.head_plan(&shape) else {
            return Ok(());
        };
        grad_input
            .data_mut()
            .par_chunks_mut(l * 3 * c)
            .zip(input.data().par_chunks(l * 3 * c).zip(grad_output.data().par_chunks(l * c)))
            .for_each_init(
                || Scratch::new(l, d, order),
                |s, (dx, (x, dy))| {
                    for h in 0..heads {
                        let head = Head { l, d, c, q: h * d };
                        head_backward(order, x, dy, &head, scale, dx, s, true);
                    }
                },
            );
        Ok(())
    }

    /// Backward recomputes the per-head products from the input.
    fn backward_reads(&self) -> BackwardReads {
        BackwardReads { input: true, output: false }
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
