//! Tests of `dualstream_core::nn::dropout`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `nn::dropout` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::error::Error;
    pub use dualstream_core::layer::{Layer, VisitorMut};
    pub use dualstream_core::nn::dropout::*;
    pub use dualstream_core::rng::Rng;
    pub use dualstream_core::tensor::Tensor;
    pub use rayon::prelude::*;
}
use crate::unit::nn_gradcheck::{check_gradients, random_tensor};
use dualstream_core::layer::Walk;
use dualstream_core::spec::DropoutSpec;

#[test]
fn one_mask_is_shared_by_all_time_steps_and_scaled() {
    let mut d = Dropout::new("layers.1", &DropoutSpec { p: 0.4 }, Rng::new(61)).unwrap();
    let (t, n, f) = (5, 7, 300);
    let x = Tensor::full(&[t, n, f], 1.0);
    let mut y = Tensor::default();
    d.forward(&x, &mut y, true).unwrap();
    let step = n * f;
    for s in 1..t {
        assert_eq!(&y.data()[..step], &y.data()[s * step..(s + 1) * step], "step {s} mask differs");
    }
    let kept = y.data()[..step].iter().filter(|&&v| v != 0.0).count();
    assert!(y.data().iter().all(|&v| v == 0.0 || (v - 1.0 / 0.6).abs() < 1e-6));
    let rate = kept as f32 / step as f32;
    assert!((rate - 0.6).abs() < 0.03, "keep rate {rate}");
    // The mask is not shared across samples or features.
    assert!(y.data()[..f] != y.data()[f..2 * f]);
    // A new forward draws a new mask.
    let first = y.clone();
    d.forward(&x, &mut y, true).unwrap();
    assert_ne!(first, y);
}

#[test]
fn gradients_use_the_forward_mask() {
    let mut rng = Rng::new(62);
    let d = Dropout::new("layers.1", &DropoutSpec { p: 0.5 }, Rng::new(63)).unwrap();
    let x = random_tensor(&mut rng, &[3, 2, 2, 3]);
    check_gradients(&d, &x, 1, 1e-2, 1e-3, 1e-3);
}

#[test]
fn the_generator_position_is_a_buffer_that_continues_the_mask_stream() {
    let mut a = Dropout::new("layers.1", &DropoutSpec { p: 0.5 }, Rng::new(5)).unwrap();
    let x = Tensor::full(&[2, 3, 40], 1.0);
    let mut y = Tensor::default();
    a.forward(&x, &mut y, true).unwrap();
    let mut saved = Vec::new();
    a.buffers(&mut saved);
    assert_eq!(saved[0].name, "layers.1.rng_state");
    let position = saved[0].value.clone();
    drop(saved);
    a.forward(&x, &mut y, true).unwrap();
    let next = y.clone();
    // Another seed, then the saved position: the same next mask.
    let mut b = Dropout::new("layers.1", &DropoutSpec { p: 0.5 }, Rng::new(99)).unwrap();
    let mut slots = Vec::new();
    b.buffers(&mut slots);
    slots[0].value.copy_from(&position);
    drop(slots);
    b.forward(&x, &mut y, true).unwrap();
    assert_eq!(y, next);
    let mut slots = Vec::new();
    b.buffers(&mut slots);
    slots[0].value.data_mut()[3] = 0.5;
    drop(slots);
    let err = b.forward(&x, &mut y, true).unwrap_err();
    assert!(err.to_string().contains("layers.1 (dropout).rng_state"), "{err}");
}

#[test]
fn eval_and_p_zero_are_identity() {
    let mut rng = Rng::new(64);
    let x = random_tensor(&mut rng, &[2, 3, 4]);
    let mut y = Tensor::default();
    let mut d = Dropout::new("d", &DropoutSpec { p: 0.5 }, Rng::new(1)).unwrap();
    d.forward(&x, &mut y, false).unwrap();
    assert_eq!(x, y);
    let mut gx = Tensor::default();
    d.backward(&x, &y, &x, &mut gx).unwrap();
    assert_eq!(gx, x);
    let mut d = Dropout::new("d", &DropoutSpec { p: 0.0 }, Rng::new(1)).unwrap();
    d.forward(&x, &mut y, true).unwrap();
    assert_eq!(x, y);
}

#[test]
fn invalid_p_and_shapes_name_the_layer() {
    for p in [-0.1, 1.0, f32::NAN] {
        let err = Dropout::new("layers.2", &DropoutSpec { p }, Rng::new(1)).unwrap_err();
        assert!(
            matches!(err, Error::Value { .. }) && err.to_string().contains("layers.2 (dropout)"),
            "{err}"
        );
    }
    let d = Dropout::new("layers.2", &DropoutSpec { p: 0.1 }, Rng::new(1)).unwrap();
    let err = d.output_shape(&[4]).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }) && err.to_string().contains("layers.2"));
    let mut d = d;
    let x = Tensor::zeros(&[1, 1, 2]);
    let mut gx = Tensor::default();
    assert_eq!(d.backward(&x, &x, &x, &mut gx).unwrap_err().code(), "ERR_STATE");
}
