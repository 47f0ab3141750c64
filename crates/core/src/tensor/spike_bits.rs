//! Bit-packed spike maps: 1 bit per element instead of a 4-byte f32. Layers keep their inputs for
//! the backward pass; when an input is a spike map, the model stores it packed (32x smaller).
use rayon::prelude::*;

use crate::tensor::Tensor;

/// Elements per parallel work item (a multiple of 64 so work items own whole words).
const CHUNK: usize = 64 * 1024;

#[derive(Clone, Debug, Default)]
pub struct SpikeBits {
    shape: Vec<usize>,
    len: usize,
    words: Vec<u64>,
}

impl SpikeBits {
    /// Packs `t`; returns false (and leaves `self` unusable) if some value is not exactly 0 or 1.
    pub fn pack(&mut self, t: &Tensor) -> bool {
        self.shape.clear();
        self.shape.extend_from_slice(t.shape());
        self.len = t.numel();
        self.words.resize(self.len.div_ceil(64), 0);
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
                    let mut bits = 0u64;
                    for (b, &v) in data[start..end].iter().enumerate() {
                        binary &= v == 0.0 || v == 1.0;
                        bits |= ((v != 0.0) as u64) << b;
                    }
                    *word = bits;
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
                for (b, v) in chunk.iter_mut().enumerate() {
                    *v = ((bits >> b) & 1) as f32;
                }
            }
        });
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Bytes held for the spikes.
    pub fn bytes(&self) -> usize {
        self.words.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn round_trip_is_exact_at_every_density_and_odd_sizes() {
        let mut rng = Rng::new(2);
        for &(n, density) in &[(1usize, 1.0f32), (63, 0.5), (64, 0.0), (1000, 0.01), (CHUNK * 2 + 77, 0.1), (4096, 1.0)] {
            let t = Tensor::from_vec(&[n], (0..n).map(|_| (rng.uniform() < density) as u8 as f32).collect()).unwrap();
            let mut bits = SpikeBits::default();
            assert!(bits.pack(&t));
            assert_eq!(bits.bytes(), n.div_ceil(64) * 8);
            let mut back = Tensor::full(&[3], 7.0);
            bits.unpack_into(&mut back);
            assert_eq!(back, t, "n {n} density {density}");
        }
    }

    #[test]
    fn non_binary_values_are_refused() {
        let mut bits = SpikeBits::default();
        for bad in [2.0f32, 0.5, -1.0, f32::NAN] {
            let t = Tensor::from_vec(&[2, 3], vec![0.0, 1.0, bad, 0.0, 1.0, 1.0]).unwrap();
            assert!(!bits.pack(&t), "{bad}");
        }
    }
}
