//! Tests of `dualstream_core::loss`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `loss` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::error::Result;
    pub use dualstream_core::loss::*;
    pub use dualstream_core::tensor::Tensor;
}
fn tensor(shape: &[usize], f: impl Fn(usize) -> f32) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(shape, (0..n).map(f).collect()).unwrap()
}

/// Deterministic, varied values without an RNG dependency.
fn sample_output(t: usize, n: usize, k: usize) -> Tensor {
    tensor(&[t, n, k], |i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
}

type LossFn = fn(&Tensor, &[u32], &mut Tensor) -> Result<LossStats>;

fn finite_difference_check(loss: LossFn, out: &Tensor, labels: &[u32]) {
    let mut grad = Tensor::default();
    loss(out, labels, &mut grad).unwrap();
    assert_eq!(grad.shape(), out.shape());
    let h = 1e-2f32;
    let mut scratch = Tensor::default();
    for i in 0..out.numel() {
        let mut plus = out.clone();
        plus.data_mut()[i] += h;
        let mut minus = out.clone();
        minus.data_mut()[i] -= h;
        let lp = loss(&plus, labels, &mut scratch).unwrap().loss as f64;
        let lm = loss(&minus, labels, &mut scratch).unwrap().loss as f64;
        let fd = (lp - lm) / (2.0 * h as f64);
        let g = grad.data()[i] as f64;
        assert!((fd - g).abs() < 2e-4, "element {i}: analytic {g}, finite difference {fd}");
    }
}

#[test]
fn cross_entropy_matches_finite_differences() {
    let out = sample_output(3, 4, 5);
    finite_difference_check(cross_entropy_time_mean, &out, &[0, 4, 2, 2]);
}

#[test]
fn smoothed_cross_entropy_matches_finite_differences_and_pytorch() {
    let out = sample_output(3, 4, 5);
    let labels = [0u32, 4, 2, 2];
    let smoothed: LossFn = |o, y, g| cross_entropy_time_mean_smoothed(o, y, 0.1, 1.0, g);
    finite_difference_check(smoothed, &out, &labels);
    // torch.nn.functional.cross_entropy(out.double().mean(0), labels, label_smoothing=0.1)
    // and its gradient with respect to the time mean (torch 2, float64).
    let want_loss = 1.8015015267414938f64;
    let want_grad: [[f64; 5]; 4] = [
        [
            -0.21465595376507177,
            0.10837801616185155,
            0.02634369821116818,
            0.02090761843755047,
            0.05902662095450156,
        ],
        [
            0.016977534455165706,
            0.04931403856308432,
            0.03989410511082445,
            0.03210791513738812,
            -0.13829359326646265,
        ],
        [
            0.01697753507442816,
            0.049314036586344936,
            -0.18510589407017422,
            0.03210791673593139,
            0.08670640567346971,
        ],
        [
            0.016977534456592468,
            0.04931403802704886,
            -0.18510589399429533,
            0.03210791477116313,
            0.08670640673949086,
        ],
    ];
    let mut grad = Tensor::default();
    let stats = cross_entropy_time_mean_smoothed(&out, &labels, 0.1, 1.0, &mut grad).unwrap();
    assert!((stats.loss as f64 - want_loss).abs() < 1e-6, "{} vs {want_loss}", stats.loss);
    for step in 0..3 {
        for (i, row) in want_grad.iter().enumerate() {
            for (j, &want) in row.iter().enumerate() {
                // Each of the T = 3 steps carries a third of d loss / d mean.
                let g = grad.data()[step * 20 + i * 5 + j] as f64;
                assert!((g - want / 3.0).abs() < 1e-7, "[{step},{i},{j}] {g} vs {}", want / 3.0);
            }
        }
    }
    // eps = 0 is the unsmoothed loss bit for bit, through the spec as well.
    let (mut g0, mut g1) = (Tensor::default(), Tensor::default());
    let plain = cross_entropy_time_mean(&out, &labels, &mut g0).unwrap();
    let zero = cross_entropy_time_mean_smoothed(&out, &labels, 0.0, 1.0, &mut g1).unwrap();
    assert_eq!(plain.loss.to_bits(), zero.loss.to_bits());
    assert_eq!(g0.data(), g1.data());
    let spec = LossSpec::CrossEntropy { head_weights: None, label_smoothing: Some(0.1) };
    let via_spec = spec.compute(&out, &labels, 1.0, &mut g1).unwrap();
    assert_eq!(via_spec.loss.to_bits(), stats.loss.to_bits());
    assert_eq!(g1.data(), grad.data());
    for bad in [-0.1f32, 1.0, f32::NAN] {
        let e = cross_entropy_time_mean_smoothed(&out, &labels, bad, 1.0, &mut g1).unwrap_err();
        assert_eq!(e.code(), "ERR_VALUE");
        assert!(e.to_string().contains("labelSmoothing"), "{e}");
    }
}

#[test]
fn mse_matches_finite_differences() {
    let out = tensor(&[4, 3, 5], |i| (i * 13 % 7) as f32 / 6.0);
    finite_difference_check(mse_firing_rate, &out, &[1, 0, 4]);
}

#[test]
#[allow(clippy::needless_range_loop)] // indices mirror the [T, N, K] layout being checked
fn cross_entropy_matches_softmax_formula() {
    // T = 2, N = 2, K = 3, written out.
    let out = Tensor::from_vec(
        &[2, 2, 3],
        vec![1.0, 2.0, 0.0, -1.0, 0.5, 3.0, 3.0, 0.0, 1.0, 1.0, 0.5, -1.0],
    )
    .unwrap();
    let labels = [2u32, 0];
    // Time means: sample 0 -> [2, 1, 0.5], sample 1 -> [0, 0.5, 1].
    let z = [[2.0f64, 1.0, 0.5], [0.0, 0.5, 1.0]];
    let mut want_loss = 0.0;
    let mut want_grad = [[0.0f64; 3]; 2];
    for (i, zi) in z.iter().enumerate() {
        let s: f64 = zi.iter().map(|v| v.exp()).sum();
        want_loss += -(zi[labels[i] as usize].exp() / s).ln() / 2.0;
        for j in 0..3 {
            let onehot = if j == labels[i] as usize { 1.0 } else { 0.0 };
            // 1/N for the batch mean, 1/T for the time mean.
            want_grad[i][j] = (zi[j].exp() / s - onehot) / 2.0 / 2.0;
        }
    }
    let mut grad = Tensor::default();
    let stats = cross_entropy_time_mean(&out, &labels, &mut grad).unwrap();
    assert!((stats.loss as f64 - want_loss).abs() < 1e-6, "{} vs {want_loss}", stats.loss);
    // argmax: sample 0 -> 0 (label 2, wrong), sample 1 -> 2 (label 0, wrong).
    assert_eq!((stats.correct, stats.count), (0, 2));
    for step in 0..2 {
        for i in 0..2 {
            for j in 0..3 {
                let g = grad.data()[step * 6 + i * 3 + j] as f64;
                assert!(
                    (g - want_grad[i][j]).abs() < 1e-7,
                    "[{step},{i},{j}] {g} vs {}",
                    want_grad[i][j]
                );
            }
        }
    }
    assert_eq!(predict(&out).unwrap(), vec![0, 2]);

    // Weighted: loss and gradient scale together.
    let mut g2 = Tensor::default();
    let s2 = cross_entropy_time_mean_weighted(&out, &labels, 0.25, &mut g2).unwrap();
    assert!((s2.loss as f64 - 0.25 * want_loss).abs() < 1e-6);
    for (a, b) in g2.data().iter().zip(grad.data()) {
        assert!((a - 0.25 * b).abs() < 1e-7);
    }
}

#[test]
fn cross_entropy_is_stable_for_large_logits() {
    let out = Tensor::from_vec(&[1, 1, 3], vec![1000.0, 0.0, -1000.0]).unwrap();
    let mut grad = Tensor::default();
    let s = cross_entropy_time_mean(&out, &[0], &mut grad).unwrap();
    assert_eq!((s.loss, s.correct), (0.0, 1));
    let s = cross_entropy_time_mean(&out, &[1], &mut grad).unwrap();
    assert!((s.loss - 1000.0).abs() < 1e-3);
    assert!(grad.data().iter().all(|v| v.is_finite()));
    assert!((grad.data()[0] - 1.0).abs() < 1e-6 && (grad.data()[1] + 1.0).abs() < 1e-6);
}

#[test]
fn mse_by_hand() {
    // T = 2, N = 1, K = 2: rates [0.5, 1], label 0 -> errors [-0.5, 1], loss (0.25 + 1) / 2.
    let out = Tensor::from_vec(&[2, 1, 2], vec![1.0, 1.0, 0.0, 1.0]).unwrap();
    let mut grad = Tensor::default();
    let s = mse_firing_rate(&out, &[0], &mut grad).unwrap();
    assert!((s.loss - 0.625).abs() < 1e-7);
    assert_eq!((s.correct, s.count), (0, 1));
    // 2 * err / (N K) / T = err / 2.
    assert_eq!(grad.data(), &[-0.25, 0.5, -0.25, 0.5]);
    let s =
        LossSpec::MseFiringRate { head_weights: None }.compute(&out, &[1], 2.0, &mut grad).unwrap();
    // errors [0.5, 0]: loss 2 * 0.25 / 2.
    assert!((s.loss - 0.25).abs() < 1e-7);
    assert_eq!(s.correct, 1);
    assert_eq!(grad.data(), &[0.5, 0.0, 0.5, 0.0]);
}

#[test]
fn label_and_shape_errors() {
    let out = sample_output(2, 3, 4);
    let mut grad = Tensor::default();
    for f in [cross_entropy_time_mean as LossFn, mse_firing_rate] {
        let e = f(&out, &[0, 1], &mut grad).unwrap_err();
        assert_eq!(e.code(), "ERR_VALUE");
        assert!(e.to_string().starts_with("labels:"), "{e}");
        let e = f(&out, &[0, 4, 1], &mut grad).unwrap_err();
        assert_eq!(e.to_string(), "labels[1]: expected an integer in [0, 4), got 4");
        let flat = sample_output(1, 2, 12);
        let mut flat2 = flat.clone();
        flat2.reshape(&[2, 12]).unwrap();
        assert_eq!(f(&flat2, &[0, 1], &mut grad).unwrap_err().code(), "ERR_SHAPE");
        let mut bad = out.clone();
        bad.data_mut()[5] = f32::NAN;
        assert_eq!(f(&bad, &[0, 1, 2], &mut grad).unwrap_err().code(), "ERR_NON_FINITE");
        bad.data_mut()[5] = f32::INFINITY;
        assert_eq!(f(&bad, &[0, 1, 2], &mut grad).unwrap_err().code(), "ERR_NON_FINITE");
    }
    let mut g = Tensor::default();
    assert!(cross_entropy_time_mean_weighted(&out, &[0, 1, 2], -1.0, &mut g).is_err());
    assert_eq!(predict(&Tensor::zeros(&[2, 3])).unwrap_err().code(), "ERR_SHAPE");
}

#[test]
fn spec_serde() {
    let s: LossSpec = serde_json::from_str(r#"{"type":"crossEntropy"}"#).unwrap();
    assert_eq!(s, LossSpec::CrossEntropy { head_weights: None, label_smoothing: None });
    assert_eq!(s, LossSpec::default());
    assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"type":"crossEntropy"}"#);
    let s: LossSpec =
        serde_json::from_str(r#"{"type":"crossEntropy","labelSmoothing":0.1}"#).unwrap();
    assert_eq!(s, LossSpec::CrossEntropy { head_weights: None, label_smoothing: Some(0.1) });
    assert_eq!(
        serde_json::to_string(&s).unwrap(),
        r#"{"type":"crossEntropy","labelSmoothing":0.1}"#
    );
    let s: LossSpec = serde_json::from_str(r#"{"type":"mseFiringRate"}"#).unwrap();
    assert_eq!(s, LossSpec::MseFiringRate { head_weights: None });
    assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"type":"mseFiringRate"}"#);
    assert!(serde_json::from_str::<LossSpec>(r#"{"type":"nll"}"#).is_err());
    assert!(serde_json::from_str::<LossSpec>(r#"{"type":"crossEntropy","weight":1}"#).is_err());
}
