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
/// Rows of `dY` one pass of the sparse weight gradient reads: a divisor of [`GEMM_DEPTH`]; 64
/// rows of 64 outputs fill 16 KiB, half an L1 data cache.
const PASS_ROWS: usize = 64;
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
    /// Forward: column and value of each nonzero, and each row's end offset.
    active: Vec<u32>,
    values: Vec<f32>,
    starts: Vec<usize>,
    /// Weight gradient: per input, the rows and values of its nonzeros in one pass, and the
    /// running sums of the inputs' outputs.
    col_rows: Vec<u32>,
    col_values: Vec<f32>,
    col_len: Vec<usize>,
    sums: Vec<f32>,
}

impl EventScratch {
    /// Nonzeros the last [`scan_nonzeros`] found.
    pub fn nonzeros(&self) -> usize {
        self.active.len()
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

/// Fills `s` with the column and value of every nonzero of the `rows x cols` block `x` and
/// each row's end offset. `None` as soon as the nonzeros exceed `max_nonzero`; else whether
/// every value is 0 or 1. Each row is read 64 values at a time into a mask of its nonzeros.
pub fn scan_nonzeros(
    x: &[f32],
    cols: usize,
    max_nonzero: usize,
    s: &mut EventScratch,
) -> Option<bool> {
    s.active.clear();
    s.values.clear();
    s.starts.clear();
    s.starts.push(0);
    let mut binary = true;
    for row in x.chunks_exact(cols) {
        for (part, values) in row.chunks(64).enumerate() {
            let (mut mask, ones) = pack_word(values);
            binary &= ones;
            while mask != 0 {
                let k = mask.trailing_zeros() as usize;
                mask &= mask - 1;
                s.active.push((64 * part + k) as u32);
                s.values.push(values[k]);
            }
        }
        if s.active.len() > max_nonzero {
            return None;
        }
        s.starts.push(s.active.len());
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

/// `acc[c] = fold over (i, v) of madd(v, src[i * stride + c], s[c])` for `c < acc.len()`, with
/// `s` the `start`: 64 outputs at a time in registers (AVX2 with FMA), the rest one by one. The
/// sums go from the registers straight to `acc`: no copy through a block-sized array.
fn add_rows(
    acc: &mut [f32],
    start: Start,
    src: &[f32],
    stride: usize,
    idx: &[u32],
    vals: &[f32],
    fuse: bool,
) {
    let n = acc.len();
    if let Some(&last) = idx.last() {
        // Indices ascend, so the last reaches furthest.
        assert!(last as usize * stride + n <= src.len(), "add_rows: source out of bounds");
    }
    if let Start::Values(v) = start {
        assert!(v.len() >= n, "add_rows: start values too short");
    }
    let mut c = 0;
    #[cfg(target_arch = "x86_64")]
    if fuse {
        // SAFETY: the CPU has AVX2 and FMA (`gemm_fuses`); every row read, `i * stride + c`
        // to `+ 8 * NB` within `n`, is inside `src` (the assert above), and `acc[c..c + 8 * NB]`
        // and the start values there are inside `acc` and `start` (asserted).
        unsafe {
            let out = acc.as_mut_ptr();
            let from = |c: usize| match start {
                Start::Output => out.add(c) as *const f32,
                Start::Zero => std::ptr::null(),
                Start::Values(v) => v.as_ptr().add(c),
            };
            while c + BLOCK <= n {
                add_rows_fma::<8>(out.add(c), from(c), src.as_ptr().add(c), stride, idx, vals);
                c += BLOCK;
            }
            while c + 8 <= n {
                add_rows_fma::<1>(out.add(c), from(c), src.as_ptr().add(c), stride, idx, vals);
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
        for (&i, &v) in idx.iter().zip(vals) {
            let w = src[i as usize * stride + k];
            a = if fuse { v.mul_add(w, a) } else { v * w + a };
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
    idx: &[u32],
    vals: &[f32],
) {
    use std::arch::x86_64::*;
    // SAFETY: the caller keeps `acc[..8 * NB]`, `first[..8 * NB]` (when not null) and every
    // row `src[i * stride..][..8 * NB]` in bounds.
    unsafe {
        let mut a = [_mm256_setzero_ps(); NB];
        if !first.is_null() {
            for (j, r) in a.iter_mut().enumerate() {
                *r = _mm256_loadu_ps(first.add(8 * j));
            }
        }
        for (&i, &v) in idx.iter().zip(vals) {
            let vb = _mm256_set1_ps(v);
            let p = src.add(i as usize * stride);
            for (j, r) in a.iter_mut().enumerate() {
                *r = _mm256_fmadd_ps(vb, _mm256_loadu_ps(p.add(8 * j)), *r);
            }
        }
        for (j, r) in a.iter().enumerate() {
            _mm256_storeu_ps(acc.add(8 * j), *r);
        }
    }
}

/// `y = x w^T (+ bias)` for the block whose nonzeros [`scan_nonzeros`] left in `s`, with
/// `wt = w^T` (`fi x fo`), summed in `order`.
pub fn linear_forward_sparse(
    s: &EventScratch,
    wt: &[f32],
    fo: usize,
    bias: Option<&[f32]>,
    order: Order,
    y: &mut [f32],
) {
    let fuse = fused();
    let rows = s.starts.len() - 1;
    assert!(y.len() >= rows * fo, "linear_forward_sparse: output too short");
    for o0 in (0..fo).step_by(BLOCK) {
        let n = BLOCK.min(fo - o0);
        for r in 0..rows {
            let start = match (bias, order) {
                (Some(b), Order::Events) => Start::Values(&b[o0..o0 + n]),
                _ => Start::Zero,
            };
            let (lo, hi) = (s.starts[r], s.starts[r + 1]);
            let out = &mut y[r * fo + o0..r * fo + o0 + n];
            add_rows(out, start, &wt[o0..], fo, &s.active[lo..hi], &s.values[lo..hi], fuse);
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
    linear_forward_sparse(s, wt, fo, bias, Order::Events, y);
    true
}

/// For every input `k < n` of the pass whose column lists `s` holds: `s.sums[k, :]` gains its
/// nonzeros' rows of `g` (the pass's rows of `dY`, `fo` wide). Blocks of 64 outputs outside,
/// so one block of the pass's `dY` rows stays in L1 over all inputs.
fn add_columns(s: &mut EventScratch, n: usize, g: &[f32], fo: usize, fuse: bool) {
    for o0 in (0..fo).step_by(BLOCK) {
        let width = BLOCK.min(fo - o0);
        for k in 0..n {
            let len = s.col_len[k];
            if len == 0 {
                continue;
            }
            let (idx, vals) = (
                &s.col_rows[k * PASS_ROWS..k * PASS_ROWS + len],
                &s.col_values[k * PASS_ROWS..k * PASS_ROWS + len],
            );
            let acc = &mut s.sums[k * fo + o0..k * fo + o0 + width];
            add_rows(acc, Start::Output, &g[o0..], fo, idx, vals, fuse);
        }
    }
}

/// Fills `s`'s column lists with the nonzeros of the inputs `i0..i0 + n` in the rows `r0..r1`
/// of the `fi`-wide `x` (rows relative to `r0`). `false` if `binary_only` and a value is not 0
/// or 1.
#[allow(clippy::too_many_arguments)]
fn column_lists(
    x: &[f32],
    fi: usize,
    i0: usize,
    n: usize,
    r0: usize,
    r1: usize,
    binary_only: bool,
    s: &mut EventScratch,
) -> bool {
    s.col_len.fill(0);
    for r in r0..r1 {
        let row = &x[r * fi + i0..r * fi + i0 + n];
        for (part, values) in row.chunks(64).enumerate() {
            let (mut mask, ones) = pack_word(values);
            if binary_only && !ones {
                return false;
            }
            while mask != 0 {
                let k = mask.trailing_zeros() as usize;
                mask &= mask - 1;
                let col = 64 * part + k;
                let at = col * PASS_ROWS + s.col_len[col];
                s.col_rows[at] = (r - r0) as u32;
                s.col_values[at] = values[k];
                s.col_len[col] += 1;
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
    s.sums.clear();
    s.sums.resize(fi * fo, 0.0);
    s.col_len.resize(fi, 0);
    s.col_rows.resize(fi * PASS_ROWS, 0);
    s.col_values.resize(fi * PASS_ROWS, 0.0);
    for r0 in (0..rows).step_by(PASS_ROWS) {
        let r1 = rows.min(r0 + PASS_ROWS);
        column_lists(x, fi, 0, fi, r0, r1, false, s);
        add_columns(s, fi, &dy[r0 * fo..r1 * fo], fo, fuse);
    }
    part.copy_from_slice(&s.sums);
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
    s.col_len.clear();
    s.col_len.resize(n, 0);
    s.col_rows.resize(n * PASS_ROWS, 0);
    s.col_values.resize(n * PASS_ROWS, 0.0);
    for r0 in (0..rows).step_by(PASS_ROWS) {
        let r1 = rows.min(r0 + PASS_ROWS);
        if !column_lists(x, fi, i0, n, r0, r1, binary_only, s) {
            return false;
        }
        if s.col_len.iter().any(|&len| len > 0) {
            add_columns(s, n, &dy[r0 * fo..r1 * fo], fo, fuse);
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
    // Branch-free counts over blocks (they vectorise).
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
    (if x.is_empty() { 0.0 } else { nonzero as f32 / x.len() as f32 }, binary)
}
