//! Products of spiking self-attention whose operands are binary spike matrices.
//!
//! - **Packed product** of two binary matrices, `C[i][j] = sum_k A[i][k] B[j][k]`: each row is
//!   packed into u64 words along the summed axis, so 64 multiply-adds become one AND and one
//!   popcount. Used for `Q K^T` (rows of Q and K along the head's channels) and `K^T V` (columns
//!   of K and V along the tokens). The counts are exact integers, the same values a dense GEMM
//!   gives.
//! - **Event-driven product** of a binary matrix and a count matrix, `Y = S M`: each spike of S
//!   adds one row of M. The partial sums are integers below 2^24, exact in f32 in any order, so
//!   the result equals the dense GEMM's bit for bit; it does work in proportion to the spikes,
//!   and the dense GEMM wins above [`EVENT_MAX_DENSITY`].
//!
//! Values other than exactly 0 and 1 make the packing fail, and the caller takes the dense path.

use crate::tensor::spike_bits::pack_word;

/// Above this fraction of active elements in S, `Y = S M` runs as a dense GEMM: the event form
/// adds one row of M per spike (measured by `cargo run --release -p dualstream-core --example
/// attention_crossover`, which prints the event/dense time ratio per shape and density).
pub const EVENT_MAX_DENSITY: f32 = 0.5;

/// Number of u64 words holding `bits` bits.
pub fn words_for(bits: usize) -> usize {
    bits.div_ceil(64)
}

/// Packs the `rows x cols` matrix whose element `(r, c)` is `x[r * rs + c * cs]` into `rows`
/// rows of `words_for(cols)` words (bit `c % 64` of word `c / 64` is element `(r, c)`). Returns
/// the number of ones, or `None` if a value is neither 0 nor 1 (`out` then holds no usable
/// bits).
///
/// The input is read in memory order either way: row by row when the columns are contiguous
/// (`cs == 1`), else, when the rows are (`rs == 1`, the columns of a token block), column by
/// column, each column setting one bit in every row's word.
pub fn pack_rows(
    x: &[f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
    out: &mut [u64],
) -> Option<usize> {
    let words = words_for(cols);
    assert!(out.len() >= rows * words, "pack_rows: output too short");
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    assert!((rows - 1) * rs + (cols - 1) * cs < x.len(), "pack_rows: input too short");
    let out = &mut out[..rows * words];
    // Both tests branch-free (NaN is neither), so the loops carry no early exit.
    let binary = if cs != 1 && rs == 1 {
        pack_columns(x, rows, cols, cs, out)
    } else {
        pack_each_row(x, cols, rs, cs, out)
    };
    binary.then(|| out.iter().map(|w| w.count_ones() as usize).sum())
}

/// [`pack_rows`] row by row (`out` holds whole rows); whether every value was 0 or 1.
fn pack_each_row(x: &[f32], cols: usize, rs: usize, cs: usize, out: &mut [u64]) -> bool {
    let words = words_for(cols);
    let mut binary = true;
    for (r, row) in out.chunks_exact_mut(words).enumerate() {
        let base = r * rs;
        for (w, word) in row.iter_mut().enumerate() {
            let (c0, c1) = (64 * w, (64 * w + 64).min(cols));
            let mut bits = 0u64;
            if cs == 1 {
                let (packed, ok) = pack_word(&x[base + c0..base + c1]);
                bits = packed;
                binary &= ok;
            } else {
                for c in c0..c1 {
                    let v = x[base + c * cs];
                    binary &= (v == 0.0) | (v == 1.0);
                    bits |= ((v != 0.0) as u64) << (c - c0);
                }
            }
            *word = bits;
        }
    }
    binary
}

/// [`pack_rows`] for contiguous rows (`rs == 1`): column `c` is `x[c * cs..][..rows]`, read
/// in order 64 values at a time into a mask, whose set bits each set bit `c % 64` of their
/// row's word `c / 64` (spikes are sparse: the work follows the ones, not the rows).
fn pack_columns(x: &[f32], rows: usize, cols: usize, cs: usize, out: &mut [u64]) -> bool {
    let words = words_for(cols);
    out.fill(0);
    let mut binary = true;
    for c in 0..cols {
        let column = &x[c * cs..][..rows];
        let (w, b) = (c / 64, c % 64);
        for (part, values) in column.chunks(64).enumerate() {
            let (mut mask, ok) = pack_word(values);
            binary &= ok;
            while mask != 0 {
                let r = 64 * part + mask.trailing_zeros() as usize;
                mask &= mask - 1;
                out[r * words + w] |= 1 << b;
            }
        }
    }
    binary
}

/// `c[i * ldc + j] = popcount(a_i & b_j)` for `m` rows of `a` and `n` rows of `b`, each of
/// `words` words: the product of two packed binary matrices, as f32 counts.
pub fn and_popcount(
    a: &[u64],
    b: &[u64],
    m: usize,
    n: usize,
    words: usize,
    c: &mut [f32],
    ldc: usize,
) {
    assert!(a.len() >= m * words && b.len() >= n * words, "and_popcount: operands too short");
    assert!(m == 0 || n == 0 || c.len() >= (m - 1) * ldc + n, "and_popcount: output too short");
    if words == 1 {
        // One word per row (up to 64 channels or tokens): the common case in a transformer head.
        for i in 0..m {
            let ai = a[i];
            let row = &mut c[i * ldc..i * ldc + n];
            for (out, &bj) in row.iter_mut().zip(&b[..n]) {
                *out = (ai & bj).count_ones() as f32;
            }
        }
        return;
    }
    for i in 0..m {
        let ai = &a[i * words..(i + 1) * words];
        for j in 0..n {
            let bj = &b[j * words..(j + 1) * words];
            let count: u32 = ai.iter().zip(bj).map(|(&x, &y)| (x & y).count_ones()).sum();
            c[i * ldc + j] = count as f32;
        }
    }
}

/// `y[i * ldy + j] = scale * sum_k s[i][k] m[k * ldm + j]` for `rows` rows of the packed binary
/// matrix `s` (`words_for(inner)` words a row) and the `inner x n` matrix `m`: each set bit adds
/// one row of `m`. With integer `m` (counts) the sums are exact, so `scale` is applied once to an
/// exact value, as the dense GEMM does.
#[allow(clippy::too_many_arguments)]
pub fn spikes_times_matrix(
    s: &[u64],
    rows: usize,
    inner: usize,
    m: &[f32],
    ldm: usize,
    n: usize,
    scale: f32,
    y: &mut [f32],
    ldy: usize,
    acc: &mut [f32],
) {
    let words = words_for(inner);
    assert!(s.len() >= rows * words, "spikes_times_matrix: spikes too short");
    assert!(inner == 0 || m.len() >= (inner - 1) * ldm + n, "spikes_times_matrix: m too short");
    assert!(rows == 0 || y.len() >= (rows - 1) * ldy + n, "spikes_times_matrix: y too short");
    let acc = &mut acc[..n];
    for i in 0..rows {
        acc.fill(0.0);
        for (w, &word) in s[i * words..(i + 1) * words].iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let k = 64 * w + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                for (a, &v) in acc.iter_mut().zip(&m[k * ldm..k * ldm + n]) {
                    *a += v;
                }
            }
        }
        for (out, &a) in y[i * ldy..i * ldy + n].iter_mut().zip(acc.iter()) {
            *out = scale * a;
        }
    }
}
