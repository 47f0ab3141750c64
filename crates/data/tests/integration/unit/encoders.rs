//! Tests of `dualstream_data::encoders`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `encoders` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::rng::Rng;
    pub use dualstream_core::Tensor;
    pub use dualstream_data::encoders::*;
}
fn image(values: &[f32]) -> Tensor {
    Tensor::from_vec(&[1, 1, values.len()], values.to_vec()).unwrap()
}

#[test]
fn direct_repeats_the_image() {
    let x = image(&[0.2, 0.7]);
    let y = direct(&x, 3).unwrap();
    assert_eq!(y.shape(), &[3, 1, 1, 2]);
    assert_eq!(y.data(), &[0.2, 0.7, 0.2, 0.7, 0.2, 0.7]);
}

#[test]
fn poisson_rates_match_intensity_and_are_seeded() {
    let x = image(&[0.0, 0.25, 0.9, 1.0, 1.7]);
    let t = 4000;
    let y = poisson(&x, t, &mut Rng::new(11)).unwrap();
    assert_eq!(y.data(), poisson(&x, t, &mut Rng::new(11)).unwrap().data());
    assert!(y.data().iter().all(|&v| v == 0.0 || v == 1.0));
    for (i, expected) in [0.0f32, 0.25, 0.9, 1.0, 1.0].iter().enumerate() {
        let rate = (0..t).map(|s| y.data()[s * 5 + i]).sum::<f32>() / t as f32;
        assert!((rate - expected).abs() < 0.025, "pixel {i}: rate {rate} vs {expected}");
    }
}

#[test]
fn latency_spikes_once_earlier_for_brighter_pixels() {
    // T = 5: v = 1 -> step 0, 0.5 -> 2, 0.2 -> round(3.2) = 3, 0.01 -> round(3.96) = 4, 0 -> never.
    let x = image(&[1.0, 0.5, 0.2, 0.01, 0.0]);
    let y = latency(&x, 5).unwrap();
    let first: Vec<Option<usize>> =
        (0..5).map(|i| (0..5).find(|&t| y.data()[t * 5 + i] == 1.0)).collect();
    assert_eq!(first, vec![Some(0), Some(2), Some(3), Some(4), None]);
    assert_eq!(y.data().iter().sum::<f32>(), 4.0, "one spike per lit pixel");
    assert!(latency(&image(&[f32::NAN]), 3).is_err());
    assert!(direct(&x, 0).is_err());
}
