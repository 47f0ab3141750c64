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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn naive(m: usize, n: usize, k: usize, a: &[f32], at: bool, b: &[f32], bt: bool) -> Vec<f64> {
        let mut c = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for p in 0..k {
                    let av = if at { a[p * m + i] } else { a[i * k + p] };
                    let bv = if bt { b[j * k + p] } else { b[p * n + j] };
                    s += av as f64 * bv as f64;
                }
                c[i * n + j] = s;
            }
        }
        c
    }

    #[test]
    fn all_transpose_combinations_match_naive() {
        let mut rng = Rng::new(3);
        for &(m, n, k) in &[(1, 1, 1), (3, 5, 7), (17, 9, 33), (4, 1, 12), (1, 13, 2)] {
            for at in [false, true] {
                for bt in [false, true] {
                    let a: Vec<f32> = (0..m * k).map(|_| rng.normal()).collect();
                    let b: Vec<f32> = (0..k * n).map(|_| rng.normal()).collect();
                    let c0: Vec<f32> = (0..m * n).map(|_| rng.normal()).collect();
                    let mut c = c0.clone();
                    gemm(m, n, k, 0.5, &a, at, &b, bt, 2.0, &mut c);
                    let r = naive(m, n, k, &a, at, &b, bt);
                    for i in 0..m * n {
                        let want = 0.5 * r[i] + 2.0 * c0[i] as f64;
                        assert!(
                            (c[i] as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                            "{m}x{n}x{k} {at} {bt}"
                        );
                    }
                    // beta = 0 must ignore garbage in C.
                    let mut c = vec![f32::NAN; m * n];
                    gemm(m, n, k, 1.0, &a, at, &b, bt, 0.0, &mut c);
                    for i in 0..m * n {
                        assert!((c[i] as f64 - r[i]).abs() < 1e-4 * (1.0 + r[i].abs()));
                    }
                }
            }
        }
    }

    #[test]
    #[should_panic]
    fn short_slice_panics() {
        let mut c = vec![0.0; 4];
        gemm(2, 2, 3, 1.0, &[0.0; 5], false, &[0.0; 6], false, 0.0, &mut c);
    }
}
