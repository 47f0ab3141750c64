//! Tests of `dualstream_core::nn::batch_norm`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `nn::batch_norm` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::error::Error;
    pub use dualstream_core::kernels::batch_norm::affine;
    pub use dualstream_core::layer::{Layer, VisitorMut};
    pub use dualstream_core::nn::batch_norm::*;
    pub use dualstream_core::spec::BatchNormSpec;
    pub use dualstream_core::tensor::Tensor;
}
use crate::unit::nn_gradcheck::{check_gradients, random_tensor};
use dualstream_core::layer::Walk;
use dualstream_core::rng::Rng;

fn spec(c: usize) -> BatchNormSpec {
    BatchNormSpec { num_features: c, eps: 1e-5, momentum: 0.1, init_weight: 1.0, affine: true }
}

fn randomised(c: usize, rng: &mut Rng) -> BatchNorm2d {
    let mut bn = BatchNorm2d::new("layers.2", &spec(c)).unwrap();
    for v in bn.weight.value.data_mut() {
        *v = 0.5 + rng.uniform();
    }
    for v in bn.bias.value.data_mut() {
        *v = rng.normal();
    }
    bn
}

#[test]
fn training_gradients_match_finite_differences() {
    let mut rng = Rng::new(31);
    let bn = randomised(3, &mut rng);
    let mut x = random_tensor(&mut rng, &[2, 3, 3, 2, 3]);
    for v in x.data_mut() {
        *v = *v * 2.0 + 1.0;
    }
    check_gradients(&bn, &x, 5, 1e-2, 2e-3, 5e-3);
}

#[test]
fn eval_gradients_match_finite_differences() {
    // Eval mode through the trait is unusual but legal; check it by hand: y is affine in x.
    let mut rng = Rng::new(32);
    let mut bn = randomised(2, &mut rng);
    bn.running_mean.data_mut().copy_from_slice(&[0.3, -1.0]);
    bn.running_var.data_mut().copy_from_slice(&[2.0, 0.5]);
    let x = random_tensor(&mut rng, &[2, 2, 2, 2, 2]);
    let mut y = Tensor::default();
    bn.forward(&x, &mut y, false).unwrap();
    let gy = random_tensor(&mut rng, y.shape());
    let mut gx = Tensor::default();
    bn.backward(&x, &y, &gy, &mut gx).unwrap();
    for i in 0..x.numel() {
        let c = (i / 4) % 2;
        let want =
            gy.data()[i] * bn.weight.value.data()[c] / (bn.running_var.data()[c] + 1e-5).sqrt();
        assert!((gx.data()[i] - want).abs() < 1e-6);
    }
}

#[test]
fn running_statistics_follow_pytorch_and_eval_uses_them() {
    let mut rng = Rng::new(33);
    let mut bn = randomised(2, &mut rng);
    let x = random_tensor(&mut rng, &[3, 2, 2, 2, 3]);
    let mut y = Tensor::default();
    bn.forward(&x, &mut y, true).unwrap();
    for c in 0..2 {
        let vals: Vec<f64> = (0..6)
            .flat_map(|b| (0..6).map(move |k| (b, k)))
            .map(|(b, k)| x.data()[(b * 2 + c) * 6 + k] as f64)
            .collect();
        let n = vals.len() as f64;
        let mean = vals.iter().sum::<f64>() / n;
        let unbiased = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        assert!((bn.running_mean.data()[c] as f64 - 0.1 * mean).abs() < 1e-6);
        assert!((bn.running_var.data()[c] as f64 - (0.9 + 0.1 * unbiased)).abs() < 1e-6);
        // Training output is normalised with the biased variance.
        let biased = unbiased * (n - 1.0) / n;
        let (g, b) = (bn.weight.value.data()[c] as f64, bn.bias.value.data()[c] as f64);
        // Sample 1 (t = 0, n = 1), channel c, pixel 4.
        let i = (2 + c) * 6 + 4;
        let want = (x.data()[i] as f64 - mean) / (biased + 1e-5).sqrt() * g + b;
        assert!((y.data()[i] as f64 - want).abs() < 1e-5);
    }
    bn.forward(&x, &mut y, false).unwrap();
    for (i, &xv) in x.data().iter().enumerate() {
        let c = (i / 6) % 2;
        let want = (xv - bn.running_mean.data()[c]) / (bn.running_var.data()[c] + 1e-5).sqrt()
            * bn.weight.value.data()[c]
            + bn.bias.value.data()[c];
        assert!((y.data()[i] - want).abs() < 1e-5);
    }
    let before = bn.running_mean.clone();
    bn.forward(&x, &mut y, false).unwrap();
    assert_eq!(before, bn.running_mean, "eval must not update running statistics");
    let mut bufs = Vec::new();
    bn.buffers(&mut bufs);
    let names: Vec<_> = bufs.iter().map(|b| b.name.clone()).collect();
    assert_eq!(names, ["layers.2.running_mean", "layers.2.running_var"]);
}

#[test]
fn without_affine_it_only_normalises_and_has_no_parameters() {
    let mut rng = Rng::new(34);
    let plain = BatchNormSpec { affine: false, ..spec(3) };
    let mut bn = BatchNorm2d::new("layers.2", &plain).unwrap();
    let mut params = Vec::new();
    bn.params(&mut params);
    assert!(params.is_empty());
    let mut bufs = Vec::new();
    bn.buffers(&mut bufs);
    assert_eq!(bufs.len(), 2);
    let x = random_tensor(&mut rng, &[2, 3, 3, 2, 3]);
    let mut y = Tensor::default();
    bn.forward(&x, &mut y, true).unwrap();
    // The same output as an affine BN with gamma 1 and beta 0.
    let mut unit = BatchNorm2d::new("layers.2", &spec(3)).unwrap();
    let mut want = Tensor::default();
    unit.forward(&x, &mut want, true).unwrap();
    assert_eq!(y, want);
    check_gradients(&bn, &x, 5, 1e-2, 2e-3, 5e-3);
    let err =
        BatchNorm2d::new("layers.3", &BatchNormSpec { init_weight: 0.0, ..plain }).unwrap_err();
    assert!(matches!(err, Error::Spec { .. }) && err.to_string().contains("layers.3"));
}

#[test]
fn errors_name_the_layer() {
    let mut bn = BatchNorm2d::new("layers.4", &spec(8)).unwrap();
    let mut y = Tensor::default();
    let err = bn.forward(&Tensor::zeros(&[1, 2, 4, 3, 3]), &mut y, true).unwrap_err();
    assert_eq!(
        err.to_string(),
        "layers.4 (batchNorm2d): expected shape [T, N, 8, H, W], got [1, 2, 4, 3, 3]"
    );
    let err = bn.output_shape(&[2, 8, 3, 3]).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }) && err.to_string().contains("layers.4"));
    let err = bn.forward(&Tensor::zeros(&[1, 1, 8, 1, 1]), &mut y, true).unwrap_err();
    assert_eq!(err.code(), "ERR_VALUE");
    let mut gx = Tensor::default();
    let x = Tensor::zeros(&[1, 2, 8, 2, 2]);
    let err = bn.backward(&x, &x, &x, &mut gx).unwrap_err();
    assert_eq!(err.code(), "ERR_STATE");
    let err =
        BatchNorm2d::new("layers.5", &BatchNormSpec { momentum: 1.5, ..spec(2) }).unwrap_err();
    assert!(err.to_string().contains("layers.5"));
}
