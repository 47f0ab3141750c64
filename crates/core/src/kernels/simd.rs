//! Instruction sets chosen at run time. The published binary targets any x86-64 (no
//! `target-cpu`), so a hot loop is compiled once per instruction set and the best one present
//! runs: [`multiversion`] does that for a function.
//!
//! A closure handed to rayon is compiled on its own, for the baseline (SSE2), even inside a
//! function compiled for AVX2: the per-task body of a parallel loop must itself be a
//! multiversioned function for its loops to get wider vectors.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Simd {
    Base,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

/// A CPU feature a kernel asks about.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    Avx2,
    Fma,
    Avx512f,
    Avx512vl,
}

/// Whether this CPU has `feature`: the one place where the kernels ask the CPU (the standard
/// library caches the answer).
#[cfg(target_arch = "x86_64")]
pub fn has(feature: Feature) -> bool {
    match feature {
        Feature::Avx2 => std::is_x86_feature_detected!("avx2"),
        Feature::Fma => std::is_x86_feature_detected!("fma"),
        Feature::Avx512f => std::is_x86_feature_detected!("avx512f"),
        Feature::Avx512vl => std::is_x86_feature_detected!("avx512vl"),
    }
}

/// The best instruction set of this CPU (AVX2 counts only with FMA).
pub fn simd() -> Simd {
    #[cfg(target_arch = "x86_64")]
    {
        if has(Feature::Avx512f) {
            return Simd::Avx512;
        }
        if has(Feature::Avx2) && has(Feature::Fma) {
            return Simd::Avx2;
        }
    }
    Simd::Base
}

/// Defines `$name(args)` that runs `$body` compiled for the best instruction set present.
/// The body is `#[inline(always)]` so every helper it calls inherits the target features.
/// Rust never contracts `a * b + c` into an FMA by itself, so every version gives the same
/// bits unless the body asks for `mul_add`.
macro_rules! multiversion {
    ($vis:vis fn $name:ident($($a:ident: $t:ty),*) $(-> $ret:ty)? => $body:ident) => {
        $vis fn $name($($a: $t),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                use $crate::kernels::simd::{simd, Simd};
                #[target_feature(enable = "avx512f,avx2,fma")]
                fn avx512($($a: $t),*) $(-> $ret)? { $body($($a),*) }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($a: $t),*) $(-> $ret)? { $body($($a),*) }
                match simd() {
                    // SAFETY: simd() saw these features on this CPU.
                    Simd::Avx512 => return unsafe { avx512($($a),*) },
                    // SAFETY: simd() saw these features on this CPU.
                    Simd::Avx2 => return unsafe { avx2($($a),*) },
                    Simd::Base => {}
                }
            }
            $body($($a),*)
        }
    };
}
pub(crate) use multiversion;

/// `[f(0), f(1), .., f(N - 1)]`, built where it is called. Inside SIMD code use this, not
/// `std::array::from_fn`: that one runs `f` in `core::array::try_from_fn`, which LLVM may leave
/// out of line, compiled for the baseline, and then every intrinsic in `f` becomes a call and
/// every vector a trip through memory.
// Only the x86-64 kernels use it so far.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[inline(always)]
#[doc(hidden)]
pub fn array_of<T, const N: usize>(mut f: impl FnMut(usize) -> T) -> [T; N] {
    let mut out: [std::mem::MaybeUninit<T>; N] = [const { std::mem::MaybeUninit::uninit() }; N];
    for (i, slot) in out.iter_mut().enumerate() {
        slot.write(f(i));
    }
    // SAFETY: every element was written above, and `[MaybeUninit<T>; N]` has the layout of `[T; N]`.
    unsafe { std::mem::transmute_copy(&out) }
}

/// Writes the first `n` of `vs`' lanes (8 per vector, in order) to `dst`, whole vectors where
/// they fit and a masked store for the rest. Rows of a map end inside a vector at most widths;
/// a byte copy of the tail called `memcpy` for every such row (several % of a training step).
///
/// # Safety
/// AVX2 must be present; `dst..dst + n` must be writable and `n <= 8 * K`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[doc(hidden)]
pub unsafe fn store_lanes<const K: usize>(
    dst: *mut f32,
    vs: &[std::arch::x86_64::__m256; K],
    n: usize,
) {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        use std::arch::x86_64::*;
        debug_assert!(n <= 8 * K);
        for (q, v) in vs.iter().enumerate() {
            let left = n.saturating_sub(8 * q);
            if left >= 8 {
                _mm256_storeu_ps(dst.add(8 * q), *v);
            } else if left > 0 {
                // Lane l is kept when l < left: the sign bit of (l - left) is set.
                let mask = _mm256_sub_epi32(
                    _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                    _mm256_set1_epi32(left as i32),
                );
                _mm256_maskstore_ps(dst.add(8 * q), mask, *v);
            } else {
                break;
            }
        }
    }
}

/// `dst[..n] = src[..n]` by whole vectors and a masked tail (see [`store_lanes`]).
///
/// # Safety
/// AVX2 must be present; `dst..dst + n` must be writable and `src` must hold `n` rounded up
/// to whole vectors of 8.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[doc(hidden)]
pub unsafe fn copy_lanes(dst: *mut f32, src: &[f32], n: usize) {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        use std::arch::x86_64::*;
        assert!(src.len() >= n.div_ceil(8) * 8);
        for q in (0..n).step_by(8) {
            store_lanes(dst.add(q), &[_mm256_loadu_ps(src.as_ptr().add(q))], n - q);
        }
    }
}

/// Even and odd lanes of the 16 floats `a, b`: `([a0 a2 a4 a6 b0 b2 b4 b6], [a1 a3 .. b7])`.
///
/// # Safety
/// Vector intrinsics, inlined into the kernels compiled for them: the CPU must have AVX2
/// and FMA (AVX-512F for 512-bit vectors).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[doc(hidden)]
pub unsafe fn deinterleave(
    a: std::arch::x86_64::__m256,
    b: std::arch::x86_64::__m256,
) -> (std::arch::x86_64::__m256, std::arch::x86_64::__m256) {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        use std::arch::x86_64::*;
        // shuffle gives [a0 a2 b0 b2 | a4 a6 b4 b6]; 64-bit lanes 0 2 1 3 put them in order.
        let ev = _mm256_castpd_ps(_mm256_permute4x64_pd(
            _mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)),
            0xD8,
        ));
        let od = _mm256_castpd_ps(_mm256_permute4x64_pd(
            _mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)),
            0xD8,
        ));
        (ev, od)
    }
}

/// The inverse of [`deinterleave`]: `e, o` -> `([e0 o0 e1 o1 e2 o2 e3 o3], [e4 o4 .. e7 o7])`.
///
/// # Safety
/// Vector intrinsics, inlined into the kernels compiled for them: the CPU must have AVX2
/// and FMA (AVX-512F for 512-bit vectors).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[doc(hidden)]
pub unsafe fn interleave(
    e: std::arch::x86_64::__m256,
    o: std::arch::x86_64::__m256,
) -> [std::arch::x86_64::__m256; 2] {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        use std::arch::x86_64::*;
        let lo = _mm256_unpacklo_ps(e, o); // e0 o0 e1 o1 | e4 o4 e5 o5
        let hi = _mm256_unpackhi_ps(e, o); // e2 o2 e3 o3 | e6 o6 e7 o7
        [_mm256_permute2f128_ps(lo, hi, 0x20), _mm256_permute2f128_ps(lo, hi, 0x31)]
    }
}
