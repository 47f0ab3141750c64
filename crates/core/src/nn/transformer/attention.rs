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
//! backward recomputes the count matrix the same way. Channels first with up to 64 channels,
//! a whole sample-step runs at once ([`sample_forward_spikes`], [`sample_backward_spikes`]):
//! Q, K and V packed once for all heads, and the backward's products event-driven or
//! register-blocked in the GEMMs' summation order, so their bits too; otherwise the backward's
//! real-valued products run dense.
use crate::energy::{Counter, SynapseCounter};
use crate::error::{Error, Result};
use crate::kernels::gemm::gemm_strided;
use crate::kernels::spike_attention::{
    add_rows_by_bits, and_popcount, pack_rows, pack_tokens, spikes_times_matrix, transpose_bits,
    words_for, EVENT_MAX_DENSITY,
};
#[cfg(target_arch = "x86_64")]
use crate::kernels::spike_attention::{scale_as_gemm, times_transposed_as_gemm};
use crate::layer::{check_backward_shapes, AuditProbe, BackwardReads, Layer, Visitor, VisitorMut};
use crate::spec::SpikingAttentionSpec;
use crate::tensor::Tensor;
use rayon::prelude::*;
use std::cell::RefCell;

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
    /// Grows the buffers to `l` tokens and head width `d` in `order`.
    fn fit(&mut self, l: usize, d: usize, order: Order) {
        let work_len = if order == Order::TokensFirst { l * l } else { d * d };
        let packed = (l * words_for(d)).max(d * words_for(l));
        if self.work.len() < work_len
            || self.bits[0].len() < packed
            || self.transposed.len() < l * d
            || self.acc.len() < l.max(d)
        {
            *self = Scratch::new(l, d, order);
        }
    }

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

/// Per-thread buffers of the whole-sample products ([`sample_forward_spikes`],
/// [`sample_backward_spikes`]): a thread keeps one across calls and layers, so a step
/// allocates nothing inside its parallel tasks.
#[derive(Default)]
#[doc(hidden)]
pub struct SampleScratch {
    /// Q, K and V of each token as one word each (bit = channel).
    q: Vec<u64>,
    k: Vec<u64>,
    v: Vec<u64>,
    /// K and V transposed: per channel, `words_for(L)` words of tokens.
    kt: Vec<u64>,
    vt: Vec<u64>,
    /// The heads' `M = K^T V` stacked (`[C, D]`: row `h * D + i` is row `i` of head `h`), and
    /// `dM`, `dM^T` and `M^T` likewise.
    m: Vec<f32>,
    dm: Vec<f32>,
    dmt: Vec<f32>,
    mt: Vec<f32>,
    /// One token's output row (`C` floats) and the per-head fallback's buffers.
    acc: Vec<f32>,
    heads: Option<Scratch>,
}

thread_local! {
    static SAMPLE_SCRATCH: RefCell<SampleScratch> = RefCell::new(SampleScratch::default());
}

/// Whether a block takes the whole-sample products: Q K^T V associated channels first, every
/// operand of a token in one word, the token axis within one depth block of matrixmultiply's
/// sgemm (256, so the event sums over tokens run in its order).
fn whole_sample(order: Order, l: usize, c: usize) -> bool {
    cfg!(target_arch = "x86_64") && order == Order::ChannelsFirst && c <= 64 && l <= 256
}

impl SampleScratch {
    fn grow(&mut self, l: usize, c: usize, d: usize) {
        let wl = words_for(l);
        for bits in [&mut self.q, &mut self.k, &mut self.v] {
            bits.resize(l, 0);
        }
        self.kt.resize(c * wl, 0);
        self.vt.resize(c * wl, 0);
        for m in [&mut self.m, &mut self.dm, &mut self.dmt, &mut self.mt] {
            m.resize(c * d, 0.0);
        }
        self.acc.resize(c, 0.0);
    }

    /// Packs Q, K and V of the block `x` (`[L, 3C]`) and fills `m` with each head's
    /// `K^T V` counts; `false` if a value is not 0 or 1.
    fn pack_counts(&mut self, x: &[f32], l: usize, c: usize, d: usize) -> bool {
        self.grow(l, c, d);
        let p = 3 * c;
        let binary = pack_tokens(x, l, c, p, &mut self.q)
            & pack_tokens(&x[c..], l, c, p, &mut self.k)
            & pack_tokens(&x[2 * c..], l, c, p, &mut self.v);
        if !binary {
            return false;
        }
        transpose_bits(&self.k, c, &mut self.kt);
        transpose_bits(&self.v, c, &mut self.vt);
        let wl = words_for(l);
        for h in 0..c / d {
            let (ch, m) = (h * d, &mut self.m[h * d * d..(h + 1) * d * d]);
            and_popcount(&self.kt[ch * wl..], &self.vt[ch * wl..], d, d, wl, m, d);
        }
        true
    }
}

/// Forward of a whole sample-step block `x` (`[L, 3C]`) into `y` (`[L, C]`) when Q, K and V
/// are spikes: each operand packed once for all heads, each head's `M = K^T V` by AND +
/// popcount, then `Y = scale * Q M` event-driven over every token's spikes (a head denser than
/// [`EVENT_MAX_DENSITY`] takes the GEMM, as [`head_forward_spikes`] does). The same bits as
/// the per-head products. `false` (`y` untouched) if [`whole_sample`] does not hold or an
/// operand is not binary.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn sample_forward_spikes(
    order: Order,
    x: &[f32],
    l: usize,
    c: usize,
    heads: usize,
    scale: f32,
    y: &mut [f32],
    s: &mut SampleScratch,
) -> bool {
    let d = c / heads;
    if !whole_sample(order, l, c) || !s.pack_counts(x, l, c, d) {
        return false;
    }
    // Heads whose Q is too dense for the event product.
    let mut dense = 0u64;
    for h in 0..heads {
        let mask = head_mask(h, d);
        let ones: u32 = s.q[..l].iter().map(|&w| (w & mask).count_ones()).sum();
        if ones as f32 > EVENT_MAX_DENSITY * (l * d) as f32 {
            dense |= mask;
        }
    }
    let acc = &mut s.acc[..c];
    for (t, row) in y.chunks_exact_mut(c).take(l).enumerate() {
        acc.fill(0.0);
        add_rows_by_bits(s.q[t] & !dense, d, &s.m, acc);
        for (out, &a) in row.iter_mut().zip(acc.iter()) {
            *out = scale * a;
        }
    }
    for h in 0..heads {
        if dense & head_mask(h, d) != 0 {
            let (qs, m) = (&x[h * d..], &s.m[h * d * d..(h + 1) * d * d]);
            gemm_strided(l, d, d, scale, qs, 3 * c, 1, m, d, 1, 0.0, &mut y[h * d..], c, 1);
        }
    }
    true
}

/// `dst += src`, unrolled for common head widths.
#[inline(always)]
fn add_row(dst: &mut [f32], src: &[f32]) {
    fn fixed<const D: usize>(dst: &mut [f32], src: &[f32]) {
        let (dst, src): (&mut [f32; D], &[f32; D]) =
            (dst.try_into().unwrap(), src.try_into().unwrap());
        for k in 0..D {
            dst[k] += src[k];
        }
    }
    match dst.len() {
        8 => fixed::<8>(dst, src),
        16 => fixed::<16>(dst, src),
        32 => fixed::<32>(dst, src),
        _ => dst.iter_mut().zip(src).for_each(|(a, &v)| *a += v),
    }
}

/// The bits of head `h`'s `d` channels in a token's word.
fn head_mask(h: usize, d: usize) -> u64 {
    (u64::MAX >> (64 - d)) << (h * d)
}

/// Backward of a whole sample-step block when Q, K and V are spikes: `dx` (`[L, 3C]`, every
/// value written) from `dy` (`[L, C]`). Per head `dQ = s dY M^T` (summed as the GEMM sums it),
/// `dM = s Q^T dY` (each spike of Q adds a row of dY), `dK = V dM^T` and `dV = K dM` (each
/// spike adds a row of `dM^T` or `dM`): every sum runs over the same terms in the GEMM's order,
/// the skipped terms being exact zeros, so the bits are [`head_backward`]'s. `false` (`dx`
/// untouched) if [`whole_sample`] does not hold or an operand is not binary.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn sample_backward_spikes(
    order: Order,
    x: &[f32],
    dy: &[f32],
    l: usize,
    c: usize,
    heads: usize,
    scale: f32,
    dx: &mut [f32],
    s: &mut SampleScratch,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let d = c / heads;
        if !whole_sample(order, l, c) || !s.pack_counts(x, l, c, d) {
            return false;
        }
        let p = 3 * c;
        // dM: over the tokens in order, each spike (t, b) of Q adds dY's row t of b's head.
        let dm = &mut s.dm[..c * d];
        dm.fill(0.0);
        for (t, &bits) in s.q[..l].iter().enumerate() {
            let g = &dy[t * c..t * c + c];
            let mut rest = bits;
            while rest != 0 {
                let b = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                let h0 = b / d * d;
                add_row(&mut dm[b * d..b * d + d], &g[h0..h0 + d]);
            }
        }
        scale_as_gemm(scale, dm);
        for h in 0..heads {
            let o = h * d * d;
            for i in 0..d {
                for j in 0..d {
                    s.dmt[o + j * d + i] = dm[o + i * d + j];
                    s.mt[o + j * d + i] = s.m[o + i * d + j];
                }
            }
        }
        let acc = &mut s.acc[..c];
        for t in 0..l {
            let row = &mut dx[t * p..t * p + p];
            // dK: each spike of V adds a row of dM^T; dV: each spike of K a row of dM.
            acc.fill(0.0);
            add_rows_by_bits(s.v[t], d, &s.dmt, acc);
            row[c..2 * c].copy_from_slice(acc);
            acc.fill(0.0);
            add_rows_by_bits(s.k[t], d, dm, acc);
            row[2 * c..].copy_from_slice(acc);
        }
        for h in 0..heads {
            let (o, mt) = (h * d, &s.mt[h * d * d..(h + 1) * d * d]);
            times_transposed_as_gemm(l, d, scale, &dy[o..], c, mt, &mut dx[o..], p, acc);
        }
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (order, x, dy, l, c, heads, scale, dx, s);
        false
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
        output.data_mut().par_chunks_mut(l * c).zip(input.data().par_chunks(l * 3 * c)).for_each(
            |(y, x)| {
                SAMPLE_SCRATCH.with_borrow_mut(|ss| {
                    if sample_forward_spikes(order, x, l, c, heads, scale, y, ss) {
                        return;
                    }
                    let s = ss.heads.get_or_insert_with(|| Scratch::new(l, d, order));
                    s.fit(l, d, order);
                    for h in 0..heads {
                        let head = Head { l, d, c, q: h * d };
                        if head_forward_spikes(order, x, &head, scale, y, s).is_none() {
                            head_forward(order, x, &head, scale, y, &mut s.work);
                        }
                    }
                })
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
            .for_each(|(dx, (x, dy))| {
                SAMPLE_SCRATCH.with_borrow_mut(|ss| {
                    if sample_backward_spikes(order, x, dy, l, c, heads, scale, dx, ss) {
                        return;
                    }
                    let s = ss.heads.get_or_insert_with(|| Scratch::new(l, d, order));
                    s.fit(l, d, order);
                    for h in 0..heads {
                        let head = Head { l, d, c, q: h * d };
                        head_backward(order, x, dy, &head, scale, dx, s, true);
                    }
                })
            });
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
