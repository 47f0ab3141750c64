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

/// The best instruction set of this CPU (AVX2 counts only with FMA).
pub fn simd() -> Simd {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            return Simd::Avx512;
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
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
                    Simd::Avx2 => return unsafe { avx2($($a),*) },
                    Simd::Base => {}
                }
            }
            $body($($a),*)
        }
    };
}
pub(crate) use multiversion;
