//! Event-driven fully connected products for inputs `X` (`rows x in`) with many zeros, such as
//! spikes or sums of spikes:
//!
//! - forward `Y = X W^T (+ b)`: each nonzero `x` of a row adds `x` times one row of `W^T`
//!   (`in x out`), an accumulation per spike (the paper's AC) instead of `in` multiply-adds per
//!   output;
//! - weight gradient `dW += dY^T X`: each nonzero `x` at `(r, i)` adds `x` times row `r` of
//!   `dY` to row `i` of `dW^T`.
//!
//! The sums run in registers, blocks of 64 outputs at a time, one multiply-add per nonzero
//! term in the order of the inner axis, fused where matrixmultiply's sgemm fuses
//! ([`gemm_fuses`]). Skipped terms are exact zeros, so with [`Order::Gemm`] the results are
//! the GEMM's bit for bit: the forward sums from +0 and adds the bias last, the weight
//! gradient adds each block of [`GEMM_DEPTH`] rows' sum to the gradient, as sgemm's depth
//! blocks do. [`Order::Events`] is the order of the binary event path, taken for binary
//! inputs up to [`FORWARD_MAX_DENSITY`]: the bias first, and one sum over all rows of the
//! weight gradient, within rounding of the GEMM.

#[cfg(target_arch = "x86_64")]
use crate::kernels::gemm::gemm_fuses;
use crate::tensor::spike_bits::pack_word;

/// Fraction of active inputs up to which the binary event order is taken (bias first in the
/// forward, one sum over all rows in the weight gradient); between it and
/// [`SPARSE_MAX_DENSITY`] the sparse kernels keep the GEMM's order.
pub const FORWARD_MAX_DENSITY: f32 = 0.2;
/// The same for the weight gradient.
pub const WEIGHT_GRAD_MAX_DENSITY: f32 = 0.2;
/// Fraction of nonzero inputs up to which the sparse forward beats the GEMM (measured on the
/// token linears of a Spikformer, 6272 rows of 64 -> 64, 128 and 192 and 128 -> 64, single
/// thread: 1.4-1.8x the GEMM's speed at 27 % nonzeros, even at 35-60 %).
pub const SPARSE_MAX_DENSITY: f32 = 0.4;
/// The same for the weight gradient in the GEMM's order ([`linear_weight_grad_block`]): 1.1-1.5x
/// the GEMM's speed at 27 %, even at 35-45 %.
pub const WEIGHT_GRAD_SPARSE_MAX_DENSITY: f32 = 0.35;
/// matrixmultiply's sgemm depth block (`S_KC`): a GEMM sums an output over each block of this
/// many inner terms from +0, then adds the block's sum to the output.
pub const GEMM_DEPTH: usize = 256;
/// Rows of `dY` one pass of the sparse weight gradient reads: a divisor of [`GEMM_DEPTH`], and
/// at most 64 (one mask word per input); 64 rows of 64 outputs fill 16 KiB, half an L1 data
/// cache.
const PASS_ROWS: usize = 64;
const _: () = assert!(PASS_ROWS <= 64 && GEMM_DEPTH.is_multiple_of(PASS_ROWS));
/// Outputs summed in registers at once: eight AVX2 vectors.
const BLOCK: usize = 64;

/// The summation order of a sparse product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// The dense GEMM's: results equal to [`crate::kernels::gemm::gemm`]'s bit for bit.
    Gemm,
    /// The binary event path's: the forward starts each output from the bias, the weight
    /// gradient sums all rows from +0 before adding to the gradient.
    Events,
}

/// Per-thread buffers of the sparse kernels.
#[derive(Default)]
pub struct EventScratch {
    /// Forward: each row's nonzeros as bit masks, `words` per row (bit `k` of word `p` is
    /// column `64 p + k`), and their count.
    masks: Vec<u64>,
    words: usize,
    nonzeros: usize,
    /// Weight gradient: per input, the rows of its nonzeros in one pass as a bit mask, and
    /// the running sums of the inputs' outputs.
    col_masks: Vec<u64>,
    sums: Vec<f32>,
}

impl EventScratch {
    /// Nonzeros the last [`scan_nonzeros`] found.
    pub fn nonzeros(&self) -> usize {
        self.nonzeros
    }
}

/// Whether multiply-adds are fused, as in the GEMM this crate calls.
fn fused() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        gemm_fuses()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether [`mask_word`] may take its AVX2 form.
fn wide_masks() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// [`pack_word`]: the mask of the nonzeros of up to 64 values (NaN counts as nonzero) and
/// whether every value is 0 or 1; 64 values at once in eight AVX2 compares when `wide`.
#[inline]
fn mask_word(values: &[f32], wide: bool) -> (u64, bool) {
    #[cfg(target_arch = "x86_64")]
    if wide && values.len() == 64 {
        // SAFETY: the CPU has AVX2 (`wide` comes from `wide_masks`); 64 values are read.
        return unsafe { mask_word_avx2(values.as_ptr()) };
    }
    let _ = wide;
    pack_word(values)
}

/// [`mask_word`] of the 64 values at `p`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn mask_word_avx2(p: *const f32) -> (u64, bool) {
    use std::arch::x86_64::*;
    let (zero, one) = (_mm256_setzero_ps(), _mm256_set1_ps(1.0));
    let (mut bits, mut other) = (0u64, _mm256_setzero_ps());
    for j in 0..8 {
        // SAFETY: the caller keeps `p[..64]` readable.
        let v = unsafe { _mm256_loadu_ps(p.add(8 * j)) };
        // Unordered: NaN is nonzero (and not binary), as in `pack_word`.
        let nonzero = _mm256_cmp_ps::<_CMP_NEQ_UQ>(v, zero);
        let is_one = _mm256_cmp_ps::<_CMP_EQ_OQ>(v, one);
        other = _mm256_or_ps(other, _mm256_andnot_ps(is_one, nonzero));
        bits |= (_mm256_movemask_ps(nonzero) as u32 as u64) << (8 * j);
    }
    (bits, _mm256_movemask_ps(other) == 0)
}

/// Fills `s` with the bit mask of the nonzeros of every row of the `rows x cols` block `x`.
/// `None` as soon as the nonzeros exceed `max_nonzero`; else whether every value is 0 or 1.
/// Each row is read 64 values at a time into a mask of its nonzeros.
pub fn scan_nonzeros(
    x: &[f32],
    cols: usize,
    max_nonzero: usize,
    s: &mut EventScratch,
) -> Option<bool> {
    let words = cols.div_ceil(64);
    s.words = words;
    s.masks.clear();
    s.nonzeros = 0;
    let (mut binary, wide) = (true, wide_masks());
    for row in x.chunks_exact(cols) {
        for values in row.chunks(64) {
            let (mask, ones) = mask_word(values, wide);
            binary &= ones;
            s.nonzeros += mask.count_ones() as usize;
            s.masks.push(mask);
        }
        if s.nonzeros > max_nonzero {
            return None;
        }
    }
    Some(binary)
}

/// Where a sum over rows starts.
#[derive(Clone, Copy)]
enum Start<'a> {
    /// The output's own values (an accumulation).
    Output,
    /// +0.
    Zero,
    /// These values, one per output.
    Values(&'a [f32]),
}

/// The terms of a sparse sum: index `i = 64 p + k` for every set bit `k` of `masks[p]`, in
/// ascending order, with the value `vals[i * vstride]`.
#[derive(Clone, Copy)]
struct Terms<'a> {
    masks: &'a [u64],
    vals: &'a [f32],
    vstride: usize,
}

impl Terms<'_> {
    /// The largest index, if any.
    fn last(&self) -> Option<usize> {
        let p = self.masks.iter().rposition(|&m| m != 0)?;
        Some(64 * p + 63 - self.masks[p].leading_zeros() as usize)
    }
}

/// `acc[c] = fold over the terms (i, v) of madd(v, src[i * stride + c], s[c])` for
/// `c < acc.len()`, with `s` the `start`: 64 outputs at a time in registers (AVX2 with FMA), the
/// rest one by one. The sums go from the registers straight to `acc`: no copy through a
/// block-sized array.
fn add_rows(acc: &mut [f32], start: Start, src: &[f32], stride: usize, t: Terms, fuse: bool) {
    let n = acc.len();
    let Some(last) = t.last() else {
        // No terms: each output is its start.
        match start {
            Start::Output => {}
            Start::Zero => acc.fill(0.0),
            Start::Values(v) => acc.copy_from_slice(&v[..n]),
        }
        return;
    };
    assert!(last * stride + n <= src.len(), "add_rows: source out of bounds");
    assert!(last * t.vstride < t.vals.len(), "add_rows: values out of bounds");
    if let Start::Values(v) = start {
        assert!(v.len() >= n, "add_rows: start values too short");
    }
    let mut c = 0;
    #[cfg(target_arch = "x86_64")]
    if fuse {
        // SAFETY: the CPU has AVX2 and FMA (`gemm_fuses`); every row read, `i * stride + c`
        // to `+ 8 * NB` within `n`, is inside `src`, and every value `i * vstride` inside
        // `vals` (the asserts above: `last` is the largest index), and `acc[c..c + 8 * NB]`
        // and the start values there are inside `acc` and `start` (asserted).
        unsafe {
            let out = acc.as_mut_ptr();
            let from = |c: usize| match start {
                Start::Output => out.add(c) as *const f32,
                Start::Zero => std::ptr::null(),
                Start::Values(v) => v.as_ptr().add(c),
            };
            while c + BLOCK <= n {
                add_rows_fma::<8>(out.add(c), from(c), src.as_ptr().add(c), stride, t);
                c += BLOCK;
            }
            while c + 8 <= n {
                add_rows_fma::<1>(out.add(c), from(c), src.as_ptr().add(c), stride, t);
                c += 8;
            }
        }
    }
    for k in c..n {
        let mut a = match start {
            Start::Output => acc[k],
            Start::Zero => 0.0,
            Start::Values(v) => v[k],
        };
        for (p, &mask) in t.masks.iter().enumerate() {
            let mut mask = mask;
            while mask != 0 {
                let i = 64 * p + mask.trailing_zeros() as usize;
                mask &= mask - 1;
                let (v, w) = (t.vals[i * t.vstride], src[i * stride + k]);
                a = if fuse { v.mul_add(w, a) } else { v * w + a };
            }
        }
        acc[k] = a;
    }
}

/// [`add_rows`] on `8 * NB` outputs in `NB` AVX2 registers, started from `first[..8 * NB]` (or
/// +0 when `first` is null) and stored to `acc`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn add_rows_fma<const NB: usize>(
    acc: *mut f32,
    first: *const f32,
    src: *const f32,
    stride: usize,
    t: Terms,
) {
    use std::arch::x86_64::*;
    // SAFETY: the caller keeps `acc[..8 * NB]`, `first[..8 * NB]` (when not null), every row
    // `src[i * stride..][..8 * NB]` and every value `vals[i * vstride]` in bounds.
    unsafe {
        let mut a = [_mm256_setzero_ps(); NB];
        if !first.is_null() {
            for (j, r) in a.iter_mut().enumerate() {
                *r = _mm256_loadu_ps(first.add(8 * j));
            }
        }
        let vals = t.vals.as_ptr();
        for (p, &mask) in t.masks.iter().enumerate() {
            let mut mask = mask;
            while mask != 0 {
                let i = 64 * p + mask.trailing_zeros() as usize;
                mask &= mask - 1;
                let vb = _mm256_broadcast_ss(&*vals.add(i * t.vstride));
                let row = src.add(i * stride);
                for (j, r) in a.iter_mut().enumerate() {
                    *r = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row.add(8 * j)), *r);
                }
            }
        }
        for (j, r) in a.iter().enumerate() {
            _mm256_storeu_ps(acc.add(8 * j), *r);
        }
    }
}

/// `y = x w^T (+ bias)` for the `rows x fi` block `x` whose nonzeros [`scan_nonzeros`] left
/// in `s`, with `wt = w^T` (`fi x fo`), summed in `order`.
pub fn linear_forward_sparse(
    x: &[f32],
    s: &EventScratch,
    wt: &[f32],
    fo: usize,
    bias: Option<&[f32]>,
    order: Order,
    y: &mut [f32],
) {
    let fuse = fused();
    let words = s.words;
    let rows = s.masks.len().checked_div(words).unwrap_or(0);
    assert!(y.len() >= rows * fo, "linear_forward_sparse: output too short");
    let fi = x.len().checked_div(rows).unwrap_or(0);
    assert!(
        fi.div_ceil(64) == words || rows == 0,
        "linear_forward_sparse: x is not the scanned block"
    );
    for o0 in (0..fo).step_by(BLOCK) {
        let n = BLOCK.min(fo - o0);
        for r in 0..rows {
            let start = match (bias, order) {
                (Some(b), Order::Events) => Start::Values(&b[o0..o0 + n]),
                _ => Start::Zero,
            };
            let t = Terms {
                masks: &s.masks[r * words..(r + 1) * words],
                vals: &x[r * fi..(r + 1) * fi],
                vstride: 1,
            };
            let out = &mut y[r * fo + o0..r * fo + o0 + n];
            add_rows(out, start, &wt[o0..], fo, t, fuse);
            if let (Some(b), Order::Gemm) = (bias, order) {
                // The GEMM's `C = 1 * sum + C` with `C` preset to the bias.
                for (o, &b) in out.iter_mut().zip(&b[o0..o0 + n]) {
                    *o += b;
                }
            }
        }
    }
}

/// `y = x w^T (+ bias)` for the `rows x fi` spike block `x` and `wt = w^T` (`fi x fo`), each
/// spike adding a row of `wt`, in the [`Order::Events`] order. `false` (nothing written) if
/// `x` is not binary or has more than `max_density` active inputs.
#[allow(clippy::too_many_arguments)]
pub fn linear_forward_spikes(
    x: &[f32],
    fi: usize,
    wt: &[f32],
    fo: usize,
    bias: Option<&[f32]>,
    y: &mut [f32],
    max_density: f32,
    s: &mut EventScratch,
) -> bool {
    let max_ones = (max_density * x.len() as f32) as usize;
    if scan_nonzeros(x, fi, max_ones, s) != Some(true) {
        return false;
    }
    linear_forward_sparse(x, s, wt, fo, bias, Order::Events, y);
    true
}

/// For every input `k` of the pass whose column masks are `masks`: `sums[k, :]` gains its
/// nonzeros' rows of `g` (the pass's rows of `dY`, `fo` wide) times their values, read from
/// `xcols` (the pass's first row of `x` from the first input, `fi` wide). Blocks of 64 outputs
/// outside, so one block of the pass's `dY` rows stays in L1 over all inputs.
fn add_columns(
    masks: &[u64],
    sums: &mut [f32],
    xcols: &[f32],
    fi: usize,
    g: &[f32],
    fo: usize,
    fuse: bool,
) {
    for o0 in (0..fo).step_by(BLOCK) {
        let width = BLOCK.min(fo - o0);
        for (k, mask) in masks.iter().enumerate() {
            if *mask == 0 {
                continue;
            }
            let t = Terms { masks: std::slice::from_ref(mask), vals: &xcols[k..], vstride: fi };
            let acc = &mut sums[k * fo + o0..k * fo + o0 + width];
            add_rows(acc, Start::Output, &g[o0..], fo, t, fuse);
        }
    }
}

/// Fills `s`'s column masks with the nonzeros of the inputs `i0..i0 + n` in the rows `r0..r1`
/// (at most 64) of the `fi`-wide `x`: bit `r - r0` of input `k`'s word. `false` if
/// `binary_only` and a value is not 0 or 1.
#[allow(clippy::too_many_arguments)]
fn column_masks(
    x: &[f32],
    fi: usize,
    i0: usize,
    n: usize,
    r0: usize,
    r1: usize,
    binary_only: bool,
    s: &mut EventScratch,
) -> bool {
    debug_assert!(r1 - r0 <= 64);
    let cols = &mut s.col_masks[..n];
    cols.fill(0);
    let wide = wide_masks();
    for r in r0..r1 {
        let row = &x[r * fi + i0..r * fi + i0 + n];
        let bit = 1u64 << (r - r0);
        for (part, values) in row.chunks(64).enumerate() {
            let (mut mask, ones) = mask_word(values, wide);
            if binary_only && !ones {
                return false;
            }
            let cols = &mut cols[64 * part..];
            while mask != 0 {
                let k = mask.trailing_zeros() as usize;
                mask &= mask - 1;
                cols[k] |= bit;
            }
        }
    }
    true
}

/// One depth block of the weight gradient in the GEMM's order: `part[i, :] = sum over the
/// nonzeros x[r, i] of x[r, i] dy[r, :]` (`part` is `fi x fo`, i.e. `dW^T`) over the rows of
/// the `rows x fi` block `x`, at most [`GEMM_DEPTH`] of them, summed from +0 in row order. The
/// GEMM adds each such block's sum to the gradient, blocks in order; blocks can run on
/// different threads.
pub fn linear_weight_grad_block(
    x: &[f32],
    fi: usize,
    dy: &[f32],
    fo: usize,
    part: &mut [f32],
    s: &mut EventScratch,
) {
    let rows = x.len() / fi;
    assert!(rows <= GEMM_DEPTH, "linear_weight_grad_block: one depth block at most");
    assert!(dy.len() >= rows * fo && part.len() == fi * fo, "linear_weight_grad_block: sizes");
    let fuse = fused();
    // The block's sum goes straight into `part`.
    part.fill(0.0);
    s.col_masks.resize(fi.max(s.col_masks.len()), 0);
    for r0 in (0..rows).step_by(PASS_ROWS) {
        let r1 = rows.min(r0 + PASS_ROWS);
        column_masks(x, fi, 0, fi, r0, r1, false, s);
        add_columns(&s.col_masks[..fi], part, &x[r0 * fi..], fi, &dy[r0 * fo..r1 * fo], fo, fuse);
    }
}

/// `dwt[k, :] += sum over nonzeros x[r, i0 + k] of x[r, i0 + k] dy[r, :]` for the inputs
/// `i0..i0 + n` of the `rows x fi` matrix `x` (`n = dwt.len() / fo`), with `dy` `rows x fo`.
/// Rows are summed in order in `order`: with [`Order::Gemm`] each block of [`GEMM_DEPTH`]
/// rows from +0, its sum then added to `dwt` (the GEMM's bits for `dW^T` accumulated into
/// `dwt`); with [`Order::Events`] all rows from +0, then added. The result does not depend on
/// how the inputs are split among calls. `false` if `binary_only` and a value of the columns
/// is not 0 or 1 (`dwt` then holds garbage).
#[allow(clippy::too_many_arguments)]
pub fn linear_weight_grad_sparse(
    x: &[f32],
    fi: usize,
    dy: &[f32],
    fo: usize,
    i0: usize,
    dwt: &mut [f32],
    order: Order,
    binary_only: bool,
    s: &mut EventScratch,
) -> bool {
    let n = dwt.len() / fo;
    let rows = x.len() / fi;
    assert!(i0 + n <= fi && dy.len() >= rows * fo, "linear_weight_grad_sparse: sizes");
    let fuse = fused();
    s.sums.clear();
    s.sums.resize(n * fo, 0.0);
    s.col_masks.resize(n.max(s.col_masks.len()), 0);
    for r0 in (0..rows).step_by(PASS_ROWS) {
        let r1 = rows.min(r0 + PASS_ROWS);
        if !column_masks(x, fi, i0, n, r0, r1, binary_only, s) {
            return false;
        }
        if s.col_masks[..n].iter().any(|&m| m != 0) {
            let xcols = &x[r0 * fi + i0..];
            let g = &dy[r0 * fo..r1 * fo];
            add_columns(&s.col_masks[..n], &mut s.sums, xcols, fi, g, fo, fuse);
        }
        let flush = match order {
            Order::Gemm => r1.is_multiple_of(GEMM_DEPTH) || r1 == rows,
            Order::Events => r1 == rows,
        };
        if flush {
            for (d, a) in dwt.iter_mut().zip(s.sums.iter_mut()) {
                *d += *a;
                *a = 0.0;
            }
        }
    }
    true
}

/// `dwt[i - i0, :] = sum over spikes (r, i) of x of dy[r, :]` for the inputs `i0..i0 + n` of
/// the `rows x fi` spike matrix `x`, with `dy` `rows x fo`; rows are summed in order, so the
/// result does not depend on how the inputs are split among threads. `false` if the columns are
/// not binary (`dwt` then holds garbage).
pub fn linear_weight_grad_spikes(
    x: &[f32],
    fi: usize,
    dy: &[f32],
    fo: usize,
    i0: usize,
    dwt: &mut [f32],
) -> bool {
    dwt.fill(0.0);
    let mut s = EventScratch::default();
    linear_weight_grad_sparse(x, fi, dy, fo, i0, dwt, Order::Events, true, &mut s)
}

/// Fraction of ones in `x`, or `None` if a value is neither 0 nor 1.
pub fn spike_density(x: &[f32]) -> Option<f32> {
    match nonzero_density(x) {
        (d, true) => Some(d),
        (_, false) => None,
    }
}

/// Fraction of nonzeros in `x` and whether every value is 0 or 1.
pub fn nonzero_density(x: &[f32]) -> (f32, bool) {
    let (nonzero, binary) = nonzero_count(x);
    (if x.is_empty() { 0.0 } else { nonzero as f32 / x.len() as f32 }, binary)
}

/// Nonzeros in `x` (NaN counts as nonzero) and whether every value is 0 or 1.
fn nonzero_count(x: &[f32]) -> (usize, bool) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return unsafe { nonzero_count_avx2(x) };
    }
    nonzero_count_blocks(x)
}

/// [`nonzero_count`] with branch-free counts over blocks (they vectorise).
fn nonzero_count_blocks(x: &[f32]) -> (usize, bool) {
    let (mut nonzero, mut binary) = (0usize, true);
    for block in x.chunks(1024) {
        let (mut block_nonzero, mut other) = (0u32, 0u32);
        for &v in block {
            block_nonzero += (v != 0.0) as u32;
            other += ((v != 0.0) & (v != 1.0)) as u32;
        }
        binary &= other == 0;
        nonzero += block_nonzero as usize;
    }
    (nonzero, binary)
}

/// [`nonzero_count`] 32 values per step: compares subtract their all-ones masks (-1) from
/// lane counters, and values neither 0 nor 1 OR into a flag vector.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn nonzero_count_avx2(x: &[f32]) -> (usize, bool) {
    use std::arch::x86_64::*;
    let (mut nonzero, mut other) = (0usize, _mm256_setzero_ps());
    // Blocks short enough that no 32-bit lane counter overflows.
    for block in x.chunks(1 << 20) {
        let quads = block.len() / 32;
        let (zero, one) = (_mm256_setzero_ps(), _mm256_set1_ps(1.0));
        let mut counts = [_mm256_setzero_si256(); 4];
        // SAFETY: every load reads 8 of the first `32 * quads` values of `block`.
        unsafe {
            let p = block.as_ptr();
            for q in 0..quads {
                for (j, c) in counts.iter_mut().enumerate() {
                    let v = _mm256_loadu_ps(p.add(32 * q + 8 * j));
                    // Unordered: NaN is nonzero, as `v != 0.0` says.
                    let nz = _mm256_cmp_ps::<_CMP_NEQ_UQ>(v, zero);
                    let is_one = _mm256_cmp_ps::<_CMP_EQ_OQ>(v, one);
                    other = _mm256_or_ps(other, _mm256_andnot_ps(is_one, nz));
                    *c = _mm256_sub_epi32(*c, _mm256_castps_si256(nz));
                }
            }
        }
        let sum = _mm256_add_epi32(
            _mm256_add_epi32(counts[0], counts[1]),
            _mm256_add_epi32(counts[2], counts[3]),
        );
        let mut lanes = [0u32; 8];
        // SAFETY: `lanes` holds 8 32-bit values.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), sum) };
        nonzero += lanes.iter().map(|&c| c as usize).sum::<usize>();
        let (tail, tail_binary) = nonzero_count_blocks(&block[32 * quads..]);
        nonzero += tail;
        if !tail_binary {
            other = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
        }
    }
    (nonzero, _mm256_movemask_ps(other) == 0)
}
