//! Safe wrappers over `matrixmultiply::sgemm` for row-major matrices.
//!
//! matrixmultiply is used without its `threading` feature: callers parallelise at a coarser
//! level (over samples, over blocks of rows), and a single-threaded GEMM gives results that
//! depend only on the operand shapes, which the deterministic gradient reductions rely on.

/// `C = alpha * op(A) * op(B) + beta * C` with `C` an `m x n` row-major matrix, `op(A)` an
/// `m x k` matrix stored row-major as `m x k` (or as `k x m` when `a_trans`), and `op(B)` a
/// `k x n` matrix stored as `k x n` (or `n x k` when `b_trans`). With `beta == 0` the previous
/// contents of `C` are never read (NaN garbage in a reused buffer does not leak through).
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    a_trans: bool,
    b: &[f32],
    b_trans: bool,
    beta: f32,
    c: &mut [f32],
) {
    let (rsa, csa) = if a_trans { (1, m) } else { (k, 1) };
    let (rsb, csb) = if b_trans { (1, k) } else { (n, 1) };
    gemm_strided(m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, n, 1);
}

/// Whether matrixmultiply's sgemm, which [`gemm`] calls, accumulates with fused
/// multiply-adds on this CPU: it picks its FMA + AVX2 kernel when both are present (the crate
/// is built without its AVX-512 kernel), else an AVX or portable kernel that multiplies, then
/// adds.
#[cfg(target_arch = "x86_64")]
pub fn gemm_fuses() -> bool {
    is_x86_feature_detected!("fma") && is_x86_feature_detected!("avx2")
}

/// Largest flat index touched by an `rows x cols` matrix with the given strides, plus one.
fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

/// General-stride form of [`gemm`], for sub-matrices (a block of columns of a wider matrix).
/// Panics if a stride pattern would reach outside its slice or if `C` is not row-major-like
/// (`csc >= 1`, `rsc >= n * csc`), which rules out aliasing output elements.
#[allow(clippy::too_many_arguments)]
pub fn gemm_strided(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    beta: f32,
    c: &mut [f32],
    rsc: usize,
    csc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(extent(m, k, rsa, csa) <= a.len(), "gemm: A ({m}x{k}) out of bounds");
    assert!(extent(k, n, rsb, csb) <= b.len(), "gemm: B ({k}x{n}) out of bounds");
    assert!(extent(m, n, rsc, csc) <= c.len(), "gemm: C ({m}x{n}) out of bounds");
    // Distinct C elements must not share an address: only row-major-like layouts are taken.
    assert!(csc >= 1 && (m == 1 || rsc >= n * csc), "gemm: C strides alias");
    // SAFETY: the asserts above keep every index that sgemm forms inside the three slices, and
    // C's strides do not alias; `a`/`b` are shared borrows and `c` an exclusive one, so the
    // regions cannot overlap.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            rsc as isize,
            csc as isize,
        );
    }
}

/// matrixmultiply's sgemm depth block (`S_KC`): it sums each output over up to this many inner
/// terms from +0 in order before adding the block's sum to `C`.
pub(crate) const SGEMM_DEPTH: usize = 256;

/// `c = a b` for row-major `a` (`m x k`), `b` (`k x n`) and `c` (`m x n`), equal bit for bit to
/// [`gemm`]`(m, n, k, 1.0, a, false, b, false, 0.0, c)` where that GEMM sums each output in one
/// depth block with fused multiply-adds (`1 <= k <= 256` and [`gemm_fuses`]); `false` (nothing
/// written) otherwise. Each output is summed from +0 over the inner axis in order, one fused
/// multiply-add per term, as sgemm's kernel does, and stored as it is (sgemm's `1 * sum + 0`
/// keeps every bit of a sum that never is -0). Neither operand is packed: `b` is read in its
/// own layout, strips of 16 columns staying in L1 over 48 rows of `a`, tiles of 6 rows x 16
/// columns in twelve registers.
pub fn gemm_shallow(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if (1..=SGEMM_DEPTH).contains(&k) && gemm_fuses() {
        assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n, "gemm_shallow: sizes");
        // SAFETY: the CPU has AVX2 and FMA; the asserts keep `a` (`m x k`), `b` (`k x n`) and
        // `c` (`m x n`) inside their slices.
        unsafe { shallow_fma(m, n, k, a.as_ptr(), b.as_ptr(), c.as_mut_ptr()) };
        return true;
    }
    let _ = (m, n, k, a, b, c);
    false
}

/// [`gemm_shallow`]'s loops: blocks of 48 rows, in them strips of 16 (then 8) columns, in them
/// tiles of 6 rows; the last columns (below 8) one by one.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn shallow_fma(m: usize, n: usize, k: usize, a: *const f32, b: *const f32, c: *mut f32) {
    const ROWS: usize = 48;
    // SAFETY: every tile reads rows `r..r + R` of `a` (`k` wide), columns `c0..c0 + 8 * NB` of
    // `b`'s `k` rows and writes the same block of `c`, all inside `m x k`, `k x n` and `m x n`.
    unsafe {
        for r0 in (0..m).step_by(ROWS) {
            let r1 = m.min(r0 + ROWS);
            let mut c0 = 0;
            while c0 + 16 <= n {
                shallow_strip::<2>(r0, r1, c0, n, k, a, b, c);
                c0 += 16;
            }
            if c0 + 8 <= n {
                shallow_strip::<1>(r0, r1, c0, n, k, a, b, c);
                c0 += 8;
            }
            for r in r0..r1 {
                for j in c0..n {
                    let mut s = 0.0f32;
                    for p in 0..k {
                        s = (*a.add(r * k + p)).mul_add(*b.add(p * n + j), s);
                    }
                    *c.add(r * n + j) = s;
                }
            }
        }
    }
}

/// The rows `r0..r1` of the columns `c0..c0 + 8 * NB`: tiles of 6 rows, then the rest.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn shallow_strip<const NB: usize>(
    r0: usize,
    r1: usize,
    c0: usize,
    n: usize,
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
) {
    // SAFETY: as in `shallow_fma`.
    unsafe {
        let mut r = r0;
        while r + 6 <= r1 {
            shallow_tile::<6, NB>(r, c0, n, k, a, b, c);
            r += 6;
        }
        match r1 - r {
            5 => shallow_tile::<5, NB>(r, c0, n, k, a, b, c),
            4 => shallow_tile::<4, NB>(r, c0, n, k, a, b, c),
            3 => shallow_tile::<3, NB>(r, c0, n, k, a, b, c),
            2 => shallow_tile::<2, NB>(r, c0, n, k, a, b, c),
            1 => shallow_tile::<1, NB>(r, c0, n, k, a, b, c),
            _ => {}
        }
    }
}

/// `c[r..r + R, c0..c0 + 8 * NB] = a[r..r + R, :] b[:, c0..c0 + 8 * NB]` in `R * NB`
/// registers, summed over the `k` inner terms in order from +0.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn shallow_tile<const R: usize, const NB: usize>(
    r: usize,
    c0: usize,
    n: usize,
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
) {
    use std::arch::x86_64::*;
    // SAFETY: as in `shallow_fma`.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); NB]; R];
        let a = a.add(r * k);
        let b = b.add(c0);
        for p in 0..k {
            let mut w = [_mm256_setzero_ps(); NB];
            for (j, w) in w.iter_mut().enumerate() {
                *w = _mm256_loadu_ps(b.add(p * n + 8 * j));
            }
            for (i, acc) in acc.iter_mut().enumerate() {
                let s = _mm256_broadcast_ss(&*a.add(i * k + p));
                for (acc, &w) in acc.iter_mut().zip(&w) {
                    *acc = _mm256_fmadd_ps(s, w, *acc);
                }
            }
        }
        let c = c.add(r * n + c0);
        for (i, acc) in acc.iter().enumerate() {
            for (j, &v) in acc.iter().enumerate() {
                _mm256_storeu_ps(c.add(i * n + 8 * j), v);
            }
        }
    }
}
