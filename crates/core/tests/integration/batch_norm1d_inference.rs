//! BatchNorm1d in evaluation mode and the neuron after it run as one inference pass (the
//! planner's fused step, channels last) against the two layers run one by one: the same spikes
//! bit for bit.
use dualstream_core::layer::Layer;
use dualstream_core::nn::build_sequential;
use dualstream_core::nn::sequential::{inference_only, with_fusion, FusedOp, Fusion};
use dualstream_core::nn::Sequential;
use dualstream_core::rng::Rng;
use dualstream_core::spec::LayerSpec;
use dualstream_core::Tensor;

/// Fused inference BN + neuron steps in the plans of `seq` and of the sequences inside it.
fn inference_pairs(seq: &Sequential) -> usize {
    seq.fusion_plans()
        .iter()
        .flat_map(|(_, plan)| plan)
        .filter(|op| matches!(op, FusedOp::BnNeuronInference { .. }))
        .count()
}

fn random(rng: &mut Rng, shape: &[usize], scale: f32, offset: f32) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(shape, (0..n).map(|_| scale * rng.normal() + offset).collect()).unwrap()
}

#[test]
fn batch_norm1d_and_its_neuron_infer_fused_with_the_unfused_bits() {
    // Spikformer's token blocks (linear, BN1d, neuron) with channel counts that are and are
    // not multiples of a vector, every neuron kind, hard and soft reset, a pair inside a
    // residual branch, and a BN1d followed by no neuron.
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
        {"type":"batchNorm1d","numFeatures":96},{"type":"lif","vReset":-0.2},
        {"type":"linear","inFeatures":96,"outFeatures":9,"bias":false},
        {"type":"batchNorm1d","numFeatures":9}]"#;
    let layers: Vec<LayerSpec> = serde_json::from_str(json).unwrap();
    let mut rng = Rng::new(3);
    let mut fused = build_sequential("layers", &layers, &mut Rng::new(5)).unwrap();
    let mut plain = build_sequential("layers", &layers, &mut Rng::new(5)).unwrap();
    // Training forwards move the running statistics away from (0, 1), the same in both.
    for _ in 0..3 {
        let x = random(&mut rng, &[4, 3, 11, 6], 1.5, 0.4);
        fused.forward(&x, &mut Tensor::default(), true).unwrap();
        plain.forward(&x, &mut Tensor::default(), true).unwrap();
    }
    for seed in 0..3 {
        let x = random(&mut Rng::new(40 + seed), &[4, 3, 11, 6], 1.5, 0.4);
        let (mut a, mut b) = (Tensor::default(), Tensor::default());
        inference_only(|| fused.forward(&x, &mut a, false)).unwrap();
        assert_eq!(inference_pairs(&fused), 5, "every BN1d + neuron pair fuses in inference");
        with_fusion(Fusion::None, || inference_only(|| plain.forward(&x, &mut b, false))).unwrap();
        assert_eq!(inference_pairs(&plain), 0, "the unfused run fused");
        assert_eq!(a.shape(), b.shape());
        let bits = |t: &Tensor| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b), "input {seed}: outputs");
        assert!(a.data().iter().any(|&v| v != 0.0), "input {seed}: nothing reached the output");
    }
    // A training forward after inference plans and runs the training pass again.
    let x = random(&mut rng, &[4, 3, 11, 6], 1.5, 0.4);
    fused.forward(&x, &mut Tensor::default(), true).unwrap();
    assert_eq!(inference_pairs(&fused), 0, "training plans no inference pass");
}
