//! Tests of `dualstream_core::tensor::spike_bits`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `tensor::spike_bits` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::tensor::spike_bits::*;
    pub use dualstream_core::tensor::Tensor;
    pub use rayon::prelude::*;
}
use dualstream_core::rng::Rng;

#[test]
fn round_trip_is_exact_at_every_density_and_odd_sizes() {
    let mut rng = Rng::new(2);
    for &(n, density) in
        &[(1usize, 1.0f32), (63, 0.5), (64, 0.0), (1000, 0.01), (CHUNK * 2 + 77, 0.1), (4096, 1.0)]
    {
        let t = Tensor::from_vec(&[n], rng.spikes(n, density)).unwrap();
        let mut bits = SpikeBits::default();
        assert!(bits.pack(&t));
        assert_eq!(bits.bytes(), n.div_ceil(64) * 8);
        let mut back = Tensor::full(&[3], 7.0);
        bits.unpack_into(&mut back);
        assert_eq!(back, t, "n {n} density {density}");
    }
}

#[test]
fn full_words_refuse_non_binary_values_anywhere_and_keep_negative_zero_as_no_spike() {
    let mut rng = Rng::new(3);
    let spikes: Vec<f32> = rng.spikes(200, 0.3);
    let mut bits = SpikeBits::default();
    for at in [0usize, 5, 63, 64, 127, 130, 191, 199] {
        for bad in [2.0f32, 0.5, -1.0, f32::NAN, f32::INFINITY, 1e-40] {
            let mut data = spikes.clone();
            data[at] = bad;
            let t = Tensor::from_vec(&[200], data).unwrap();
            assert!(!bits.pack(&t), "{bad} at {at}");
        }
    }
    let mut data = spikes.clone();
    data[70] = -0.0;
    let t = Tensor::from_vec(&[200], data).unwrap();
    assert!(bits.pack(&t));
    let mut back = Tensor::default();
    bits.unpack_into(&mut back);
    let mut want = spikes.clone();
    want[70] = 0.0;
    assert_eq!(back.data(), &want[..]);
}

#[test]
fn non_binary_values_are_refused() {
    let mut bits = SpikeBits::default();
    for bad in [2.0f32, 0.5, -1.0, f32::NAN] {
        let t = Tensor::from_vec(&[2, 3], vec![0.0, 1.0, bad, 0.0, 1.0, 1.0]).unwrap();
        assert!(!bits.pack(&t), "{bad}");
    }
}
