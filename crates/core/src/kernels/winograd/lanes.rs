//! The lane-wise arithmetic of the Winograd transforms, one formula for 8 lanes (AVX2) and 16
//! (AVX-512), shared by the 8-lane transforms and [`super::sixteen_lanes`].
#![cfg(target_arch = "x86_64")]

use crate::kernels::simd::array_of;

/// The lane-wise arithmetic of the transforms, in 8 lanes (AVX2) and 16 (AVX-512): one
/// formula for both widths, so both run the same operations and give the same bits.
#[doc(hidden)]
pub trait Lanes: Copy {
    /// # Safety
    /// Vector intrinsics: the CPU must have the instruction set of the vector type (AVX2 and
    /// FMA for `__m256`, AVX-512F for `__m512`).
    unsafe fn splat(v: f32) -> Self;
    /// # Safety
    /// Vector intrinsics: the CPU must have the instruction set of the vector type (AVX2 and
    /// FMA for `__m256`, AVX-512F for `__m512`).
    unsafe fn add(self, b: Self) -> Self;
    /// # Safety
    /// Vector intrinsics: the CPU must have the instruction set of the vector type (AVX2 and
    /// FMA for `__m256`, AVX-512F for `__m512`).
    unsafe fn sub(self, b: Self) -> Self;
    /// # Safety
    /// Vector intrinsics: the CPU must have the instruction set of the vector type (AVX2 and
    /// FMA for `__m256`, AVX-512F for `__m512`).
    unsafe fn mul(self, b: Self) -> Self;
    /// `self * b + c`, rounded once.
    ///
    /// # Safety
    /// Vector intrinsics: the CPU must have the instruction set of the vector type (AVX2 and
    /// FMA for `__m256`, AVX-512F for `__m512`).
    unsafe fn fmadd(self, b: Self, c: Self) -> Self;
    /// `c - self * b`, rounded once.
    ///
    /// # Safety
    /// Vector intrinsics: the CPU must have the instruction set of the vector type (AVX2 and
    /// FMA for `__m256`, AVX-512F for `__m512`).
    unsafe fn fnmadd(self, b: Self, c: Self) -> Self;
}

/// Implements [`Lanes`] for one vector type by its intrinsics.
macro_rules! impl_lanes {
    ($v:ty, $splat:ident, $add:ident, $sub:ident, $mul:ident, $fmadd:ident, $fnmadd:ident) => {
        impl Lanes for $v {
            /// # Safety
            /// Vector intrinsics: the CPU must have the instruction set of the vector type (AVX2 and
            /// FMA for `__m256`, AVX-512F for `__m512`).
            #[inline(always)]
            unsafe fn splat(v: f32) -> Self {
                // SAFETY: the caller keeps this function's `# Safety` contract.
                unsafe { std::arch::x86_64::$splat(v) }
            }
            /// # Safety
            /// Vector intrinsics: the CPU must have the instruction set of the vector type (AVX2 and
            /// FMA for `__m256`, AVX-512F for `__m512`).
            #[inline(always)]
            unsafe fn add(self, b: Self) -> Self {
                // SAFETY: the caller keeps this function's `# Safety` contract.
                unsafe { std::arch::x86_64::$add(self, b) }
            }
            /// # Safety
            /// Vector intrinsics: the CPU must have the instruction set of the vector type (AVX2 and
            /// FMA for `__m256`, AVX-512F for `__m512`).
            #[inline(always)]
            unsafe fn sub(self, b: Self) -> Self {
                // SAFETY: the caller keeps this function's `# Safety` contract.
                unsafe { std::arch::x86_64::$sub(self, b) }
            }
            /// # Safety
            /// Vector intrinsics: the CPU must have the instruction set of the vector type (AVX2 and
            /// FMA for `__m256`, AVX-512F for `__m512`).
            #[inline(always)]
            unsafe fn mul(self, b: Self) -> Self {
                // SAFETY: the caller keeps this function's `# Safety` contract.
                unsafe { std::arch::x86_64::$mul(self, b) }
            }
            /// # Safety
            /// Vector intrinsics: the CPU must have the instruction set of the vector type (AVX2 and
            /// FMA for `__m256`, AVX-512F for `__m512`).
            #[inline(always)]
            unsafe fn fmadd(self, b: Self, c: Self) -> Self {
                // SAFETY: the caller keeps this function's `# Safety` contract.
                unsafe { std::arch::x86_64::$fmadd(self, b, c) }
            }
            /// # Safety
            /// Vector intrinsics: the CPU must have the instruction set of the vector type (AVX2 and
            /// FMA for `__m256`, AVX-512F for `__m512`).
            #[inline(always)]
            unsafe fn fnmadd(self, b: Self, c: Self) -> Self {
                // SAFETY: the caller keeps this function's `# Safety` contract.
                unsafe { std::arch::x86_64::$fnmadd(self, b, c) }
            }
        }
    };
}

impl_lanes!(
    std::arch::x86_64::__m256,
    _mm256_set1_ps,
    _mm256_add_ps,
    _mm256_sub_ps,
    _mm256_mul_ps,
    _mm256_fmadd_ps,
    _mm256_fnmadd_ps
);
impl_lanes!(
    std::arch::x86_64::__m512,
    _mm512_set1_ps,
    _mm512_add_ps,
    _mm512_sub_ps,
    _mm512_mul_ps,
    _mm512_fmadd_ps,
    _mm512_fnmadd_ps
);

/// Row `k` of `B^T d` for one 4-vector `d` of F(2x2, 3x3), lane-wise.
///
/// # Safety
/// Vector intrinsics: the CPU must have the instruction set of the vector type (AVX2 and
/// FMA for `__m256`, AVX-512F for `__m512`).
#[inline(always)]
#[doc(hidden)]
pub unsafe fn bt4_row<V: Lanes>(k: usize, d: [V; 4]) -> V {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        match k {
            0 => d[0].sub(d[2]),
            1 => d[1].add(d[2]),
            2 => d[2].sub(d[1]),
            _ => d[1].sub(d[3]),
        }
    }
}

/// `B^T d` for one 4-vector `d` of F(2x2, 3x3), lane-wise (the same operations as [`bt4_row`]).
///
/// # Safety
/// Vector intrinsics: the CPU must have the instruction set of the vector type (AVX2 and
/// FMA for `__m256`, AVX-512F for `__m512`).
#[inline(always)]
#[doc(hidden)]
pub unsafe fn bt4<V: Lanes>(d: [V; 4]) -> [V; 4] {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe { array_of(|k| bt4_row(k, d)) }
}

/// The arithmetic of [`at_f2`] on the 16 positions' vectors, in any width.
///
/// # Safety
/// Vector intrinsics: the CPU must have the instruction set of the vector type (AVX2 and
/// FMA for `__m256`, AVX-512F for `__m512`).
#[inline(always)]
#[doc(hidden)]
pub unsafe fn at_f2_lanes<V: Lanes>(mm: [V; 16], bias: V) -> [V; 4] {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        let a: [V; 4] = array_of(|j| mm[j].add(mm[4 + j]).add(mm[8 + j]));
        let b: [V; 4] = array_of(|j| mm[4 + j].sub(mm[8 + j]).sub(mm[12 + j]));
        let even = |r: &[V; 4]| r[0].add(r[1]).add(r[2]).add(bias);
        let odd = |r: &[V; 4]| r[1].sub(r[2]).sub(r[3]).add(bias);
        [even(&a), odd(&a), even(&b), odd(&b)]
    }
}

/// `B^T d` for one 6-vector `d` of F(4x4, 3x3), `B^T = [[4,0,-5,0,1,0],[0,-4,-4,1,1,0],
/// [0,4,-4,-1,1,0],[0,-2,-1,2,1,0],[0,2,-1,-2,1,0],[0,4,0,-5,0,1]]`, lane-wise.
///
/// # Safety
/// Vector intrinsics: the CPU must have the instruction set of the vector type (AVX2 and
/// FMA for `__m256`, AVX-512F for `__m512`).
#[inline(always)]
#[doc(hidden)]
pub unsafe fn bt6<V: Lanes>(d: [V; 6]) -> [V; 6] {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        let (four, five, two) = (V::splat(4.0), V::splat(5.0), V::splat(2.0));
        let t0 = four.fnmadd(d[2], d[4]); // d4 - 4 d2
        let t1 = four.fnmadd(d[1], d[3]); // d3 - 4 d1
        let t2 = d[4].sub(d[2]); // d4 - d2
        let t3 = two.mul(d[3].sub(d[1])); // 2 (d3 - d1)
        [
            five.fnmadd(d[2], four.fmadd(d[0], d[4])),
            t0.add(t1),
            t0.sub(t1),
            t2.add(t3),
            t2.sub(t3),
            five.fnmadd(d[3], four.fmadd(d[1], d[5])),
        ]
    }
}

/// `A^T m` for one 6-vector `m` of F(4x4, 3x3), `A^T = [[1,1,1,1,1,0],[0,1,-1,2,-2,0],
/// [0,1,1,4,4,0],[0,1,-1,8,-8,1]]`, lane-wise.
///
/// # Safety
/// Vector intrinsics: the CPU must have the instruction set of the vector type (AVX2 and
/// FMA for `__m256`, AVX-512F for `__m512`).
#[inline(always)]
#[doc(hidden)]
pub unsafe fn at6<V: Lanes>(m: [V; 6]) -> [V; 4] {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        let (a, b) = (m[1].add(m[2]), m[1].sub(m[2]));
        let (c, d) = (m[3].add(m[4]), m[3].sub(m[4]));
        [
            m[0].add(a).add(c),
            V::splat(2.0).fmadd(d, b),
            V::splat(4.0).fmadd(c, a),
            V::splat(8.0).fmadd(d, b).add(m[5]),
        ]
    }
}
