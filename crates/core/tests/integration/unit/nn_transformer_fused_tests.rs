//! BatchNorm1d and the neuron after it run as one training pass of the sequence (the planner's
//! fused BN + neuron step, channels last) against the two layers run one by one: the same
//! outputs and BN statistics bit for bit, gradients equal up to summation order.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `nn::transformer` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::nn::transformer::*;
}
use crate::unit::nn_gradcheck::random_tensor;
use dualstream_core::layer::{Layer, Walk};
use dualstream_core::nn::build_sequential;
use dualstream_core::nn::sequential::{with_fusion, FusedOp, Fusion};
use dualstream_core::nn::Sequential;
use dualstream_core::rng::Rng;
use dualstream_core::spec::LayerSpec;
use dualstream_core::tensor::Tensor;

/// Fused BN + neuron steps in the plans of `seq` and of the sequences inside it.
fn fused_pairs(seq: &Sequential) -> usize {
    seq.fusion_plans()
        .iter()
        .flat_map(|(_, plan)| plan)
        .filter(|op| matches!(op, FusedOp::BnNeuron { .. }))
        .count()
}

/// A training forward and backward (output gradient from `g_seed`): output, input gradient,
/// parameter gradients, BN running statistics.
fn train(seq: &mut Sequential, x: &Tensor, g_seed: u64) -> [Vec<Tensor>; 4] {
    let mut y = Tensor::default();
    seq.forward(x, &mut y, true).unwrap();
    let mut rng = Rng::new(g_seed);
    let g = Tensor::from_vec(y.shape(), (0..y.numel()).map(|_| rng.normal()).collect()).unwrap();
    let mut gx = Tensor::default();
    seq.backward(x, &y, &g, &mut gx).unwrap();
    let mut ps = Vec::new();
    seq.params(&mut ps);
    let grads = ps.iter().map(|p| p.grad.clone()).collect();
    let mut bufs = Vec::new();
    seq.buffers(&mut bufs);
    let running = bufs.iter().map(|b| b.value.clone()).collect();
    [vec![y], vec![gx], grads, running]
}

/// Equal within 1e-5 of the tensor's largest value.
fn assert_close(got: &Tensor, want: &Tensor, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let scale = want.data().iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.data().iter().zip(want.data()).enumerate() {
        assert!((g - w).abs() <= 1e-5 * scale + 1e-6, "{what}[{i}]: got {g}, want {w}");
    }
}

#[test]
fn batch_norm1d_and_its_neuron_run_fused_with_the_unfused_bits() {
    // Token blocks as in Spikformer (linear, BN1d, neuron), with channel counts that are and
    // are not multiples of the kernel's register block, every neuron kind, hard and soft
    // reset, and a pair that ends a residual branch. The linears before a BN have no bias (as
    // in Spikformer): its gradient would be 0 up to rounding noise.
    let json = r#"[
        {"type":"linear","inFeatures":6,"outFeatures":64,"bias":false},
        {"type":"batchNorm1d","numFeatures":64},{"type":"lif","tau":2.0,"detachReset":true},
        {"type":"linear","inFeatures":64,"outFeatures":40,"bias":false},
        {"type":"batchNorm1d","numFeatures":40},{"type":"plif","vReset":null},
        {"type":"sewBlock","connect":"add","branch":[
          {"type":"linear","inFeatures":40,"outFeatures":7,"bias":false},
          {"type":"batchNorm1d","numFeatures":7},{"type":"if"},
          {"type":"linear","inFeatures":7,"outFeatures":40,"bias":false},
          {"type":"batchNorm1d","numFeatures":40},{"type":"lif","tau":3.0}]},
        {"type":"linear","inFeatures":40,"outFeatures":96,"bias":false},
        {"type":"batchNorm1d","numFeatures":96},{"type":"lif","vReset":-0.2}]"#;
    let layers: Vec<LayerSpec> = serde_json::from_str(json).unwrap();
    let mut rng = Rng::new(3);
    let x = random_tensor(&mut rng, &[4, 3, 11, 6]);
    let x = Tensor::from_vec(x.shape(), x.data().iter().map(|v| 1.5 * v + 0.4).collect()).unwrap();
    let mut fused = build_sequential("layers", &layers, &mut Rng::new(5)).unwrap();
    let mut plain = build_sequential("layers", &layers, &mut Rng::new(5)).unwrap();
    for step in 0..2 {
        let a = train(&mut fused, &x, 30 + step);
        assert_eq!(fused_pairs(&fused), 5, "step {step}: every BN1d + neuron pair fuses");
        let b = with_fusion(Fusion::None, || train(&mut plain, &x, 30 + step));
        assert_eq!(fused_pairs(&plain), 0, "the unfused run fused");
        assert_eq!(a[0], b[0], "step {step}: outputs");
        assert!(a[0][0].data().iter().any(|&v| v != 0.0), "step {step}: nothing fired");
        assert_eq!(a[3], b[3], "step {step}: running statistics");
        assert_eq!(fused.stored_bytes(), plain.stored_bytes(), "step {step}: bytes kept");
        assert_close(&a[1][0], &b[1][0], &format!("step {step}: input gradient"));
        assert_eq!(a[2].len(), b[2].len());
        for (k, (g, w)) in a[2].iter().zip(&b[2]).enumerate() {
            assert_close(g, w, &format!("step {step}: parameter gradient {k}"));
        }
    }
}

#[test]
fn batch_norm1d_recomputes_its_output_bit_for_bit() {
    let spec = dualstream_core::spec::BatchNormSpec {
        num_features: 5,
        eps: 1e-5,
        momentum: 0.1,
        init_weight: 1.0,
        affine: true,
    };
    let mut bn = dualstream_core::nn::transformer::BatchNorm1d::new("bn", &spec).unwrap();
    let mut rng = Rng::new(4);
    let x = random_tensor(&mut rng, &[2, 3, 4, 5]);
    for training in [true, false] {
        let (mut y, mut again) = (Tensor::default(), Tensor::default());
        bn.forward(&x, &mut y, training).unwrap();
        assert!(bn.recomputes_output());
        bn.recompute_output(&x, &mut again);
        assert_eq!(y, again, "training {training}");
    }
}
