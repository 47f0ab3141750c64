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

#[cfg(target_arch = "x86_64")]
use crate::kernels::gemm::gemm_fuses;
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

/// Packs one operand of every token of a sample-step block, `c <= 64` channels each:
/// `out[t]` holds the values `x[t * pitch..][..c]` as bits. Whether every value was 0 or 1.
pub fn pack_tokens(x: &[f32], l: usize, c: usize, pitch: usize, out: &mut [u64]) -> bool {
    assert!(c <= 64 && out.len() >= l, "pack_tokens: one word per token");
    assert!(l == 0 || (l - 1) * pitch + c <= x.len(), "pack_tokens: input too short");
    let mut binary = true;
    for (t, word) in out[..l].iter_mut().enumerate() {
        let (bits, ok) = pack_word(&x[t * pitch..t * pitch + c]);
        *word = bits;
        binary &= ok;
    }
    binary
}

/// The transpose of `rows` one-word bit rows: `out[ch * words_for(rows) + r / 64]` bit `r % 64`
/// is bit `ch` of `bits[r]`, for the `cols` channels. Walks the set bits only.
pub fn transpose_bits(bits: &[u64], cols: usize, out: &mut [u64]) {
    let words = words_for(bits.len());
    let out = &mut out[..cols * words];
    out.fill(0);
    for (r, &row) in bits.iter().enumerate() {
        let (w, b) = (r / 64, r % 64);
        let mut m = row;
        while m != 0 {
            let ch = m.trailing_zeros() as usize;
            m &= m - 1;
            out[ch * words + w] |= 1 << b;
        }
    }
}

/// For the one-word bit row `bits` of a token (channel `b` of head `b / d`): adds row `b` of
/// `m` (`d` floats at `m[b * d..]`) to `acc[(b / d) * d..][..d]` for every set bit, in
/// ascending `b`: the event form of the products of a token's spikes with per-head `d x d`
/// matrices stacked in `m`.
#[inline(always)]
pub fn add_rows_by_bits(bits: u64, d: usize, m: &[f32], acc: &mut [f32]) {
    // Common head widths with a constant trip count: the row additions unroll.
    match d {
        8 => add_rows_fixed::<8>(bits, m, acc),
        16 => add_rows_fixed::<16>(bits, m, acc),
        32 => add_rows_fixed::<32>(bits, m, acc),
        _ => {
            let mut rest = bits;
            while rest != 0 {
                let b = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                let h0 = b / d * d;
                for (a, &v) in acc[h0..h0 + d].iter_mut().zip(&m[b * d..b * d + d]) {
                    *a += v;
                }
            }
        }
    }
}

/// [`add_rows_by_bits`] for `D` channels a head.
#[inline(always)]
fn add_rows_fixed<const D: usize>(bits: u64, m: &[f32], acc: &mut [f32]) {
    let mut rest = bits;
    while rest != 0 {
        let b = rest.trailing_zeros() as usize;
        rest &= rest - 1;
        let h0 = b / D * D;
        let a: &mut [f32; D] = (&mut acc[h0..h0 + D]).try_into().unwrap();
        let r: &[f32; D] = m[b * D..b * D + D].try_into().unwrap();
        for k in 0..D {
            a[k] += r[k];
        }
    }
}

/// `y[t * ldy + i] = alpha * sum_j a[t * lda + j] mt[j * d + i]` for `t < rows`, `i < d`: the
/// product `A M^T` with `mt = M^T`, summed as matrixmultiply's sgemm sums it for an inner
/// size below its depth block (256): each output from +0 over `j` in order, one multiply-add
/// per term (fused where [`gemm_fuses`]), then `alpha * sum + 0` (again fused or not). The
/// result is `gemm_strided`'s bit for bit, without its packing of both operands per call.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub fn times_transposed_as_gemm(
    rows: usize,
    d: usize,
    alpha: f32,
    a: &[f32],
    lda: usize,
    mt: &[f32],
    y: &mut [f32],
    ldy: usize,
    acc: &mut [f32],
) {
    assert!(d <= 256 && mt.len() >= d * d && acc.len() >= d, "times_transposed_as_gemm: sizes");
    assert!(rows == 0 || (a.len() >= (rows - 1) * lda + d && y.len() >= (rows - 1) * ldy + d));
    if gemm_fuses() {
        // SAFETY: the CPU has FMA and AVX2 (checked just above).
        unsafe { times_transposed_fma(rows, d, alpha, a, lda, mt, y, ldy, acc) }
    } else {
        let madd = |x: f32, y: f32, z: f32| x * y + z;
        times_transposed_with(rows, d, alpha, a, lda, mt, y, ldy, acc, madd);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma,avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn times_transposed_fma(
    rows: usize,
    d: usize,
    alpha: f32,
    a: &[f32],
    lda: usize,
    mt: &[f32],
    y: &mut [f32],
    ldy: usize,
    acc: &mut [f32],
) {
    let madd = |x: f32, y: f32, z: f32| x.mul_add(y, z);
    times_transposed_with(rows, d, alpha, a, lda, mt, y, ldy, acc, madd);
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn times_transposed_with(
    rows: usize,
    d: usize,
    alpha: f32,
    a: &[f32],
    lda: usize,
    mt: &[f32],
    y: &mut [f32],
    ldy: usize,
    acc: &mut [f32],
    madd: impl Fn(f32, f32, f32) -> f32 + Copy,
) {
    // Common head widths with the sums in registers.
    match d {
        8 => return times_transposed_fixed::<8>(rows, alpha, a, lda, mt, y, ldy, madd),
        16 => return times_transposed_fixed::<16>(rows, alpha, a, lda, mt, y, ldy, madd),
        32 => return times_transposed_fixed::<32>(rows, alpha, a, lda, mt, y, ldy, madd),
        _ => {}
    }
    let acc = &mut acc[..d];
    for t in 0..rows {
        acc.fill(0.0);
        for (j, &g) in a[t * lda..t * lda + d].iter().enumerate() {
            for (s, &m) in acc.iter_mut().zip(&mt[j * d..j * d + d]) {
                *s = madd(g, m, *s);
            }
        }
        for (out, &s) in y[t * ldy..t * ldy + d].iter_mut().zip(acc.iter()) {
            *out = madd(alpha, s, 0.0);
        }
    }
}

/// [`times_transposed_with`] for `D` channels.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn times_transposed_fixed<const D: usize>(
    rows: usize,
    alpha: f32,
    a: &[f32],
    lda: usize,
    mt: &[f32],
    y: &mut [f32],
    ldy: usize,
    madd: impl Fn(f32, f32, f32) -> f32,
) {
    let mt: &[f32] = &mt[..D * D];
    for t in 0..rows {
        let mut acc = [0.0f32; D];
        let g: &[f32; D] = a[t * lda..t * lda + D].try_into().unwrap();
        for j in 0..D {
            let row: &[f32; D] = mt[j * D..j * D + D].try_into().unwrap();
            for k in 0..D {
                acc[k] = madd(g[j], row[k], acc[k]);
            }
        }
        let out: &mut [f32; D] = (&mut y[t * ldy..t * ldy + D]).try_into().unwrap();
        for k in 0..D {
            out[k] = madd(alpha, acc[k], 0.0);
        }
    }
}

/// `alpha * sum + 0` as matrixmultiply's sgemm ends an output it wrote with `beta = 0`
/// (fused where [`gemm_fuses`]).
#[cfg(target_arch = "x86_64")]
pub fn scale_as_gemm(alpha: f32, values: &mut [f32]) {
    if gemm_fuses() {
        // SAFETY: the CPU has FMA and AVX2 (checked just above).
        unsafe { scale_fma(alpha, values) }
    } else {
        for v in values {
            *v = alpha * *v + 0.0;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma,avx2")]
unsafe fn scale_fma(alpha: f32, values: &mut [f32]) {
    for v in values {
        *v = alpha.mul_add(*v, 0.0);
    }
}
