//! BatchNorm1d and the neuron after it run as one pass of the sequence (the planner's fused BN +
//! neuron steps, channels last) against the two layers run one by one: in training the same
//! outputs and BN statistics bit for bit and gradients equal up to summation order, in
//! inference the same spikes bit for bit.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `nn::transformer` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::nn::transformer::*;
}
use crate::unit::nn_gradcheck::random_tensor;
use crate::unit::nn_sequential::{planned, run, specs};
use dualstream_core::layer::{Layer, Walk};
use dualstream_core::nn::build_sequential;
use dualstream_core::nn::sequential::{inference_only, with_fusion, FusedOp, Fusion};
use dualstream_core::nn::Sequential;
use dualstream_core::rng::Rng;
use dualstream_core::spec::LayerSpec;
use dualstream_core::tensor::Tensor;

/// Fused BN + neuron steps (training or inference) in the plans of `seq` and of the sequences
/// inside it.
fn fused_pairs(seq: &Sequential) -> (usize, usize) {
    let train = planned(seq, |op| matches!(op, FusedOp::BnNeuron { .. }));
    let infer = planned(seq, |op| matches!(op, FusedOp::BnNeuronInference { .. }));
    (train, infer)
}

/// [`run`] and the BN running statistics after it.
fn train(seq: &mut Sequential, x: &Tensor, g_seed: u64) -> [Vec<Tensor>; 4] {
    let (y, gx, grads) = run(seq, x, g_seed);
    let mut bufs = Vec::new();
    seq.buffers(&mut bufs);
    let running = bufs.iter().map(|b| b.value.clone()).collect();
    [vec![y], vec![gx], grads, running]
}

/// Token blocks as in Spikformer (linear, BN1d, neuron), with channel counts that are and are
/// not multiples of the kernel's register block, every neuron kind, hard and soft reset, and a
/// pair that ends a residual branch. The linears before a BN have no bias (as in Spikformer):
/// its gradient would be 0 up to rounding noise.
const TOKEN_BLOCKS: &str = r#"[
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

/// `[4, 3, 11, 6]` token inputs around 0.4, spread 1.5.
fn token_input(rng: &mut Rng) -> Tensor {
    let x = random_tensor(rng, &[4, 3, 11, 6]);
    Tensor::from_vec(x.shape(), x.data().iter().map(|v| 1.5 * v + 0.4).collect()).unwrap()
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
    let layers = specs(TOKEN_BLOCKS);
    let x = token_input(&mut Rng::new(3));
    let mut fused = build_sequential("layers", &layers, &mut Rng::new(5)).unwrap();
    let mut plain = build_sequential("layers", &layers, &mut Rng::new(5)).unwrap();
    for step in 0..2 {
        let a = train(&mut fused, &x, 30 + step);
        assert_eq!(fused_pairs(&fused), (5, 0), "step {step}: every BN1d + neuron pair fuses");
        let b = with_fusion(Fusion::None, || train(&mut plain, &x, 30 + step));
        assert_eq!(fused_pairs(&plain), (0, 0), "the unfused run fused");
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

/// Inference with the fused BN + neuron passes against the layers one by one, after training
/// forwards have moved the running statistics: the same outputs bit for bit, with `pairs`
/// fused passes planned; a training forward afterwards plans none.
fn assert_fused_inference(layers: &[LayerSpec], input: fn(&mut Rng) -> Tensor, pairs: usize) {
    let mut rng = Rng::new(3);
    let mut fused = build_sequential("layers", layers, &mut Rng::new(5)).unwrap();
    let mut plain = build_sequential("layers", layers, &mut Rng::new(5)).unwrap();
    // Training forwards move the running statistics away from (0, 1), the same in both.
    for _ in 0..3 {
        let x = input(&mut rng);
        fused.forward(&x, &mut Tensor::default(), true).unwrap();
        plain.forward(&x, &mut Tensor::default(), true).unwrap();
    }
    for seed in 0..3 {
        let x = input(&mut Rng::new(40 + seed));
        let (mut a, mut b) = (Tensor::default(), Tensor::default());
        inference_only(|| fused.forward(&x, &mut a, false)).unwrap();
        assert_eq!(fused_pairs(&fused), (0, pairs), "every BN + neuron pair fuses in inference");
        with_fusion(Fusion::None, || inference_only(|| plain.forward(&x, &mut b, false))).unwrap();
        assert_eq!(fused_pairs(&plain), (0, 0), "the unfused run fused");
        assert_eq!(a.shape(), b.shape());
        let bits = |t: &Tensor| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b), "input {seed}: outputs");
        assert!(a.data().iter().any(|&v| v != 0.0), "input {seed}: nothing reached the output");
    }
    // A training forward after inference plans and runs the training pass again.
    fused.forward(&input(&mut rng), &mut Tensor::default(), true).unwrap();
    assert_eq!(fused_pairs(&fused).1, 0, "training plans no inference pass");
}

#[test]
fn batch_norm1d_and_its_neuron_infer_fused_with_the_unfused_bits() {
    // The token blocks above and a BN1d followed by no neuron, which stays a layer of its own.
    let mut layers = specs(TOKEN_BLOCKS);
    layers.extend(specs(
        r#"[{"type":"linear","inFeatures":96,"outFeatures":9,"bias":false},
            {"type":"batchNorm1d","numFeatures":9}]"#,
    ));
    assert_fused_inference(&layers, token_input, 5);
}

/// BatchNorm2d pairs the convs do not fold: after a max pool (as in Spikformer's patch
/// splitting), in a residual branch after a join, with hard and soft reset; the BN right after
/// a conv is folded into it instead.
#[test]
fn batch_norm2d_and_its_neuron_infer_fused_with_the_unfused_bits() {
    let layers = specs(
        r#"[{"type":"conv2d","inChannels":2,"outChannels":5,"kernelSize":[3,3],"padding":[1,1],"bias":false},
            {"type":"maxPool2d","kernelSize":[2,2],"stride":[2,2]},
            {"type":"batchNorm2d","numFeatures":5},{"type":"lif","tau":2.0,"vThreshold":0.5},
            {"type":"sewBlock","connect":"add","branch":[
              {"type":"conv2d","inChannels":5,"outChannels":5,"kernelSize":[3,3],"padding":[1,1],"bias":false},
              {"type":"batchNorm2d","numFeatures":5},{"type":"lif","tau":2.0}]},
            {"type":"batchNorm2d","numFeatures":5},{"type":"plif","vReset":null}]"#,
    );
    fn image_input(rng: &mut Rng) -> Tensor {
        let x = random_tensor(rng, &[4, 3, 2, 10, 10]);
        Tensor::from_vec(x.shape(), x.data().iter().map(|v| 3.0 * v + 1.0).collect()).unwrap()
    }
    assert_fused_inference(&layers, image_input, 2);
}
