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
