//! Bit-packed spike maps: 1 bit per element instead of a 4-byte f32. Layers keep their inputs for
//! the backward pass; when an input is a spike map, the model stores it packed (32x smaller).
use rayon::prelude::*;

use crate::tensor::Tensor;

/// Elements per parallel work item (a multiple of 64 so work items own whole words).
#[doc(hidden)]
pub const CHUNK: usize = 64 * 1024;

#[derive(Debug, Default)]
pub struct SpikeBits {
    shape: Vec<usize>,
    len: usize,
    words: Vec<u64>,
}

impl Clone for SpikeBits {
    fn clone(&self) -> Self {
        let words = self.words.clone();
        super::memory::resized(0, words.capacity() * 8);
        SpikeBits { shape: self.shape.clone(), len: self.len, words }
    }
}

impl Drop for SpikeBits {
    fn drop(&mut self) {
        super::memory::resized(self.words.capacity() * 8, 0);
    }
}

impl SpikeBits {
    /// Packs `t`; returns false (and leaves `self` unusable) if some value is not exactly 0 or 1.
    pub fn pack(&mut self, t: &Tensor) -> bool {
        self.shape.clear();
        self.shape.extend_from_slice(t.shape());
        self.len = t.numel();
        let capacity = self.words.capacity();
        self.words.resize(self.len.div_ceil(64), 0);
        super::memory::resized(capacity * 8, self.words.capacity() * 8);
        let data = t.data();
        self.words
            .par_chunks_mut(CHUNK / 64)
            .enumerate()
            .map(|(c, words)| {
                let base = c * CHUNK;
                let mut binary = true;
                for (w, word) in words.iter_mut().enumerate() {
                    let start = base + w * 64;
                    let end = (start + 64).min(data.len());
                    let (bits, ok) = pack_word(&data[start..end]);
                    *word = bits;
                    binary &= ok;
                }
                binary
            })
            .reduce(|| true, |a, b| a && b)
    }

    /// Writes the spikes back as 0.0 / 1.0 into `t`, reusing its allocation.
    pub fn unpack_into(&self, t: &mut Tensor) {
        t.resize_for_overwrite(&self.shape);
        let words = &self.words;
        t.data_mut().par_chunks_mut(CHUNK).enumerate().for_each(|(c, out)| {
            let first_word = c * CHUNK / 64;
            for (i, chunk) in out.chunks_mut(64).enumerate() {
                let bits = words[first_word + i];
                if chunk.len() == 64 {
                    // Four values per table row: one 16-byte copy instead of four conversions.
                    for (q, quad) in chunk.chunks_exact_mut(4).enumerate() {
                        quad.copy_from_slice(&NIBBLE_VALUES[((bits >> (4 * q)) & 0xf) as usize]);
                    }
                    continue;
                }
                for (b, v) in chunk.iter_mut().enumerate() {
                    *v = ((bits >> b) & 1) as f32;
                }
            }
        });
    }

    /// Time steps `[t0, t0 + len)` of packed `[T, ...]` spikes as 0.0 / 1.0 into `t`
    /// (`[len, ...]`), for a pass that reads a packed map chunk by chunk of time steps.
    pub fn unpack_steps_into(&self, t0: usize, len: usize, t: &mut Tensor) {
        let step = self.len / self.shape[0].max(1);
        let mut shape = self.shape.clone();
        shape[0] = len;
        t.resize_for_overwrite(&shape);
        let (words, base) = (&self.words, t0 * step);
        t.data_mut().par_chunks_mut(CHUNK).enumerate().for_each(|(c, out)| {
            let start = base + c * CHUNK;
            if start.is_multiple_of(64) {
                // Whole words, as `unpack_into` reads them.
                for (i, chunk) in out.chunks_mut(64).enumerate() {
                    let bits = words[start / 64 + i];
                    for (b, v) in chunk.iter_mut().enumerate() {
                        *v = ((bits >> b) & 1) as f32;
                    }
                }
                return;
            }
            for (j, v) in out.iter_mut().enumerate() {
                let e = start + j;
                *v = ((words[e / 64] >> (e % 64)) & 1) as f32;
            }
        });
    }

    /// The number of spikes.
    pub fn count_ones(&self) -> usize {
        self.words.par_iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Bytes held for the spikes.
    pub fn bytes(&self) -> usize {
        self.words.len() * 8
    }
}

/// The four 0.0 / 1.0 values of every 4-bit pattern, lowest bit first.
const NIBBLE_VALUES: [[f32; 4]; 16] = {
    let mut rows = [[0.0f32; 4]; 16];
    let mut k = 0;
    while k < 16 {
        let mut b = 0;
        while b < 4 {
            rows[k][b] = ((k >> b) & 1) as f32;
            b += 1;
        }
        k += 1;
    }
    rows
};

/// Bit `b` of the word is `src[b] != 0` for up to 64 values; also whether every value is
/// exactly 0 or 1. Whole groups of 4 take SSE2 compares and sign-bit masks, 4 values per
/// instruction (SSE2 is part of every x86-64, so no run-time check): the scalar loop took ~4x
/// the time of reading the data. The kernels that pack spike rows of other lengths share it.
#[inline(always)]
pub(crate) fn pack_word(src: &[f32]) -> (u64, bool) {
    debug_assert!(src.len() <= 64, "pack_word: at most 64 values");
    #[cfg(target_arch = "x86_64")]
    if src.len() == 64 {
        // A constant trip count: the loop unrolls, as in the packing of whole spike maps.
        return sse2_quads(src, 16);
    }
    #[cfg(target_arch = "x86_64")]
    let ((mut bits, mut binary), done) = (sse2_quads(src, src.len() / 4), src.len() / 4 * 4);
    #[cfg(not(target_arch = "x86_64"))]
    let (mut bits, mut binary, done) = (0u64, true, 0);
    for (b, &v) in src.iter().enumerate().skip(done) {
        binary &= (v == 0.0) | (v == 1.0);
        bits |= ((v != 0.0) as u64) << b;
    }
    (bits, binary)
}

/// [`pack_word`] of the first `4 * quads` values of `src` by SSE2 compares and sign-bit masks.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn sse2_quads(src: &[f32], quads: usize) -> (u64, bool) {
    use std::arch::x86_64::{
        _mm_cmpeq_ps, _mm_cmpneq_ps, _mm_loadu_ps, _mm_movemask_ps, _mm_or_ps, _mm_set1_ps,
        _mm_setzero_ps,
    };
    assert!(4 * quads <= src.len().min(64), "sse2_quads: {quads} groups of 4");
    // SAFETY: SSE2 is baseline on x86_64; each load reads 4 of the first `4 * quads` values of
    // `src` (asserted in bounds).
    unsafe {
        let (zero, one) = (_mm_setzero_ps(), _mm_set1_ps(1.0));
        let (mut bits, mut ok) = (0u64, u64::MAX);
        for q in 0..quads {
            let v = _mm_loadu_ps(src.as_ptr().add(4 * q));
            bits |= (_mm_movemask_ps(_mm_cmpneq_ps(v, zero)) as u64) << (4 * q);
            let both = _mm_or_ps(_mm_cmpeq_ps(v, zero), _mm_cmpeq_ps(v, one));
            ok &= !((0xf ^ _mm_movemask_ps(both) as u64) << (4 * q));
        }
        (bits, ok == u64::MAX)
    }
}
