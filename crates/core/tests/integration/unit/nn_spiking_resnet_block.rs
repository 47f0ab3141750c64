//! Tests of `dualstream_core::nn::spiking_resnet_block`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `nn::spiking_resnet_block` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::layer::{Layer, Visitor, VisitorMut};
    pub use dualstream_core::nn::spiking_resnet_block::*;
    pub use dualstream_core::tensor::Tensor;
}
use dualstream_core::layer::Walk;
use dualstream_core::nn::build_layer;
use dualstream_core::rng::Rng;
use dualstream_core::spec::LayerSpec;

fn spec(json: &str) -> LayerSpec {
    serde_json::from_str(json).unwrap()
}

#[test]
fn silent_branch_gives_identity_mapping_and_a_charge_of_two_fires_once() {
    // Zero-init last BN: the branch outputs exactly 0, the IF residual neuron sees the input.
    let s = spec(
        r#"{"type":"spikingResnetBlock","branch":[
            {"type":"conv2d","inChannels":2,"outChannels":2,"kernelSize":[3,3],"padding":[1,1],"bias":false},
            {"type":"batchNorm2d","numFeatures":2,"initWeight":0}]}"#,
    );
    let mut block = build_layer("layers.1", &s, &mut Rng::new(2)).unwrap();
    let mut rng = Rng::new(8);
    let x = Tensor::from_vec(&[4, 2, 2, 3, 3], rng.spikes(144, 0.4)).unwrap();
    let mut y = Tensor::default();
    block.forward(&x, &mut y, true).unwrap();
    assert_eq!(y.data(), x.data());
}

#[test]
fn residual_neuron_integrates_branch_plus_shortcut_by_hand() {
    // Branch: a 1x1 conv with weight 0.5 and no bias on a single channel; identity shortcut.
    // Input over T = 3 for one element: 1, 0, 1. Charges: 1.5, 0, 1.5.
    // IF: H1 = 1.5 -> spike, V = 0; H2 = 0 -> none; H3 = 1.5 -> spike.
    // A second element with input 0, 1, 0: charges 0, 1.5, 0 -> 0, 1, 0.
    let s = spec(
        r#"{"type":"spikingResnetBlock","branch":[
        {"type":"conv2d","inChannels":1,"outChannels":1,"kernelSize":[1,1],"bias":false}]}"#,
    );
    let mut block = build_layer("b", &s, &mut Rng::new(1)).unwrap();
    let mut ps = Vec::new();
    block.params(&mut ps);
    ps[0].value.data_mut()[0] = 0.5;
    let x = Tensor::from_vec(&[3, 1, 1, 1, 2], vec![1.0, 0.0, 0.0, 1.0, 1.0, 0.0]).unwrap();
    let mut y = Tensor::default();
    block.forward(&x, &mut y, false).unwrap();
    assert_eq!(y.data(), &[1.0, 0.0, 0.0, 1.0, 1.0, 0.0]);
    // Weight -0.25 with input 1 at every step: charge 0.75 each step -> 0.75, 1.5 (fire), 0.75.
    let mut ps = Vec::new();
    block.params(&mut ps);
    ps[0].value.data_mut()[0] = -0.25;
    let x = Tensor::from_vec(&[3, 1, 1, 1, 1], vec![1.0, 1.0, 1.0]).unwrap();
    block.forward(&x, &mut y, false).unwrap();
    assert_eq!(y.data(), &[0.0, 1.0, 0.0]);
}

#[test]
fn mismatched_branch_and_shortcut_is_a_spec_error() {
    let s = spec(
        r#"{"type":"spikingResnetBlock","branch":[
        {"type":"conv2d","inChannels":2,"outChannels":4,"kernelSize":[1,1]}]}"#,
    );
    let block = build_layer("layers.2", &s, &mut Rng::new(1)).unwrap();
    let err = block.output_shape(&[2, 1, 2, 4, 4]).unwrap_err();
    assert!(err.to_string().contains("layers.2") && err.to_string().contains("shortcut"), "{err}");
}
