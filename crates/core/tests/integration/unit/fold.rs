//! Tests of `dualstream_core::fold`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `fold` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::fold::*;
    pub use dualstream_core::model::Model;
    pub use dualstream_core::spec::LayerSpec;
    pub use dualstream_core::tensor::Tensor;
}
use crate::energy::small_dsnn::small_dsnn_json;
use dualstream_core::loss::LossSpec;
use dualstream_core::model::InferenceMode;
use dualstream_core::rng::Rng;
use dualstream_core::spec::ModelSpec;

fn images(n: usize, c: usize, hw: usize, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    Tensor::from_vec(&[n, c, hw, hw], (0..n * c * hw * hw).map(|_| 2.0 * rng.uniform()).collect())
        .unwrap()
}

/// Sets every BN's statistics and affine parameters to values far from the defaults.
fn randomise_bn(m: &mut Model, seed: u64) {
    let mut rng = Rng::new(seed);
    for (name, t) in m.state_tensors() {
        let (gamma_like, stat) = (name.ends_with("running_var"), name.ends_with("running_mean"));
        let is_bn = m
            .buffer_names()
            .iter()
            .any(|(b, _)| b.rsplit_once('.').map(|x| x.0) == name.rsplit_once('.').map(|x| x.0));
        if !is_bn {
            continue;
        }
        let data = (0..t.numel())
            .map(|_| {
                if gamma_like {
                    0.2 + rng.uniform()
                } else if stat {
                    rng.uniform_range(-0.5, 0.5)
                } else {
                    rng.uniform_range(0.5, 1.5)
                }
            })
            .collect();
        m.set_tensor(&name, &Tensor::from_vec(t.shape(), data).unwrap()).unwrap();
    }
}

fn bn_count(spec: &[LayerSpec]) -> usize {
    serde_json::to_string(spec).unwrap().matches("batchNorm2d").count()
}

fn assert_same_outputs(m: &mut Model, f: &mut Model, x: &Tensor, mode: InferenceMode) {
    let a = m.evaluate(x, None, mode, &LossSpec::default()).unwrap().logits;
    let b = f.evaluate(x, None, mode, &LossSpec::default()).unwrap().logits;
    let worst = a.data().iter().zip(b.data()).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
    assert!(worst <= 1e-5, "{mode:?}: the folded model's logits differ by {worst}");
    assert!(a.data().iter().any(|&v| v != a.data()[0]), "the logits must not be constant");
}

#[test]
fn a_folded_conv_bn_lif_stack_computes_the_same_eval_output() {
    let spec: ModelSpec = serde_json::from_str(
        r#"{"timeSteps":4,"inputShape":[2,6,6],"layers":[
        {"type":"conv2d","inChannels":2,"outChannels":4,"kernelSize":[3,3],"padding":[1,1],"bias":false},
        {"type":"batchNorm2d","numFeatures":4},{"type":"lif","vThreshold":0.5},
        {"type":"conv2d","inChannels":4,"outChannels":4,"kernelSize":[3,3],"padding":[1,1]},
        {"type":"batchNorm2d","numFeatures":4,"eps":0.01,"affine":false},{"type":"lif","vThreshold":0.5},
        {"type":"flatten"},{"type":"linear","inFeatures":144,"outFeatures":3}]}"#,
    )
    .unwrap();
    let mut m = Model::from_spec(&spec, 5).unwrap();
    let names: Vec<String> = m.state_tensors().into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"layers.1.weight".to_string()), "{names:?}");
    assert!(!names.contains(&"layers.4.weight".to_string()), "affine: false, {names:?}");
    randomise_bn(&mut m, 1);
    let mut f = fold_batch_norm(&mut m).unwrap();
    assert_eq!(bn_count(&f.spec().layers), 0);
    assert_eq!(f.spec().layers.len(), 6);
    assert!(
        f.state_tensors().iter().any(|(n, _)| n == "layers.0.bias"),
        "the first conv gains a bias"
    );
    assert_same_outputs(&mut m, &mut f, &images(5, 2, 6, 3), InferenceMode::Fsnn);
    assert!(m.firing_rates().iter().all(|(_, r)| *r > 0.02 && *r < 0.98), "{:?}", m.firing_rates());
}

#[test]
fn a_folded_dual_stream_network_matches_in_both_modes_and_keeps_unfoldable_layers() {
    let neuron = r#"{"type":"if","vThreshold":0.5}"#;
    let spec: ModelSpec = serde_json::from_str(&small_dsnn_json("iand", neuron, false)).unwrap();
    let mut m = Model::from_spec(&spec, 2).unwrap();
    randomise_bn(&mut m, 7);
    let mut f = fold_batch_norm(&mut m).unwrap();
    assert_eq!(bn_count(&f.spec().layers), 0);
    let x = images(4, 1, 8, 11);
    assert_same_outputs(&mut m, &mut f, &x, InferenceMode::Fsnn);
    assert_same_outputs(&mut m, &mut f, &x, InferenceMode::Dsnn);
    // The depthwise conv is followed by a conv, not a BN: it keeps its (absent) bias.
    let names: Vec<String> = f.state_tensors().into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"layers.2.stages.1.projection.1.bias".to_string()), "{names:?}");
    assert!(!names.contains(&"layers.2.stages.1.projection.0.bias".to_string()), "{names:?}");
}
