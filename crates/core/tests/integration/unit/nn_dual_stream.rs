//! Tests of `dualstream_core::nn::dual_stream`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `nn::dual_stream` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::layer::{Layer, Visitor, VisitorMut, Walk};
    pub use dualstream_core::nn::dual_stream::*;
    pub use dualstream_core::rng::Rng;
    pub use dualstream_core::tensor::Tensor;
}
use crate::unit::layer_testing::forward_backward;
use dualstream_core::nn::build_layer;
use dualstream_core::spec::LayerSpec;

/// A trunk of smooth layers only (no neurons; the projection without its ReLU), so that
/// finite differences are valid: a stride-1 block, an average pooling of both streams (max pooling has kinks), a
/// downsampling block with the AAP projection (depthwise conv3x3 s2, conv1x1, BN), and a
/// stride-1 block again (the blocks without a projection pass dL/dA' on as dL/dA).
fn smooth_trunk(connect: &str, flatten: bool) -> LayerSpec {
    // The last stage gives [4, 2, 2]: GAP feeds 4 features to the FC, flatten 16.
    let head = if flatten {
        r#""headPool":"flatten","head":{"inFeatures":16,"outFeatures":3}"#
    } else {
        r#""head":{"inFeatures":4,"outFeatures":3}"#
    };
    let json = format!(
        r#"{{"type":"dualStream",{head},"stages":[
        {{"type":"block","connect":"{connect}","branch":[
            {{"type":"conv2d","inChannels":2,"outChannels":2,"kernelSize":[3,3],"padding":[1,1],"bias":false}},
            {{"type":"batchNorm2d","numFeatures":2}}]}},
        {{"type":"avgPool2d","kernelSize":[2,2]}},
        {{"type":"block","connect":"{connect}","branch":[
            {{"type":"conv2d","inChannels":2,"outChannels":4,"kernelSize":[3,3],"padding":[1,1],"stride":[2,2],"bias":false}},
            {{"type":"batchNorm2d","numFeatures":4}}],
          "shortcut":[{{"type":"conv2d","inChannels":2,"outChannels":4,"kernelSize":[1,1],"stride":[2,2],"bias":false}},
            {{"type":"batchNorm2d","numFeatures":4}}],
          "projection":[{{"type":"conv2d","inChannels":2,"outChannels":2,"kernelSize":[3,3],"stride":[2,2],"padding":[1,1],"groups":2,"bias":false}},
            {{"type":"conv2d","inChannels":2,"outChannels":4,"kernelSize":[1,1],"bias":false}},
            {{"type":"batchNorm2d","numFeatures":4}}]}},
        {{"type":"block","connect":"{connect}","branch":[
            {{"type":"conv2d","inChannels":4,"outChannels":4,"kernelSize":[3,3],"padding":[1,1],"bias":false}},
            {{"type":"batchNorm2d","numFeatures":4}}]}}]}}"#
    );
    serde_json::from_str(&json).unwrap()
}

fn loss(spec: &LayerSpec, x: &Tensor, g: &Tensor, perturb: Option<(usize, usize, f32)>) -> f64 {
    let mut trunk = build_layer("t", spec, &mut Rng::new(3)).unwrap();
    if let Some((p, j, d)) = perturb {
        let mut ps = Vec::new();
        trunk.params(&mut ps);
        ps[p].value.data_mut()[j] += d;
    }
    let mut y = Tensor::default();
    trunk.forward(x, &mut y, true).unwrap();
    y.data().iter().zip(g.data()).map(|(&a, &b)| a as f64 * b as f64).sum()
}

#[test]
fn gradients_of_both_streams_heads_and_projection_match_finite_differences() {
    for (connect, flatten) in [
        ("and", false),
        ("iand", false),
        ("or", false),
        ("xor", false),
        ("iand", true),
        ("xor", true),
    ] {
        let spec = smooth_trunk(connect, flatten);
        let mut rng = Rng::new(21);
        let x =
            Tensor::from_vec(&[2, 2, 2, 8, 8], (0..512).map(|_| rng.uniform()).collect()).unwrap();
        let mut trunk = build_layer("t", &spec, &mut Rng::new(3)).unwrap();
        let mut y = Tensor::default();
        trunk.forward(&x, &mut y, true).unwrap();
        assert_eq!(y.shape(), &[2, 2, 6], "[y_s | y_a]");
        let g =
            Tensor::from_vec(y.shape(), (0..y.numel()).map(|_| rng.normal()).collect()).unwrap();
        let mut gx = Tensor::default();
        trunk.backward(&x, &y, &g, &mut gx).unwrap();
        let eps = 1e-2f32;
        let close = |what: String, analytic: f64, numeric: f64| {
            assert!(
                (numeric - analytic).abs() <= 2e-3 + 2e-2 * numeric.abs(),
                "{connect} {what}: analytic {analytic}, numeric {numeric}"
            );
        };
        for i in (0..x.numel()).step_by(11) {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp.data_mut()[i] += eps;
            xm.data_mut()[i] -= eps;
            let numeric =
                (loss(&spec, &xp, &g, None) - loss(&spec, &xm, &g, None)) / (2.0 * eps as f64);
            close(format!("input {i}"), gx.data()[i] as f64, numeric);
        }
        let mut ps = Vec::new();
        trunk.params(&mut ps);
        let grads: Vec<(String, Vec<f32>)> =
            ps.iter().map(|p| (p.name.clone(), p.grad.data().to_vec())).collect();
        assert!(
            grads.iter().any(|(n, _)| n == "t.stages.2.projection.0.weight"),
            "projection parameters are trained"
        );
        assert!(grads.iter().any(|(n, _)| n == "t.head.weight"));
        for (p, (name, grad)) in grads.iter().enumerate() {
            for j in (0..grad.len()).step_by(5) {
                let numeric = (loss(&spec, &x, &g, Some((p, j, eps)))
                    - loss(&spec, &x, &g, Some((p, j, -eps))))
                    / (2.0 * eps as f64);
                close(format!("{name}[{j}]"), grad[j] as f64, numeric);
            }
        }
    }
}

#[test]
fn without_the_aap_the_trunk_gives_the_spike_head_alone_and_projections_get_no_gradient() {
    let spec = smooth_trunk("iand", false);
    let mut rng = Rng::new(5);
    let x = Tensor::from_vec(&[2, 2, 2, 8, 8], (0..512).map(|_| rng.uniform()).collect()).unwrap();
    let mut trunk = build_layer("t", &spec, &mut Rng::new(3)).unwrap();
    let mut both = Tensor::default();
    trunk.forward(&x, &mut both, true).unwrap();
    trunk.set_aap(false);
    let mut spike = Tensor::default();
    trunk.forward(&x, &mut spike, true).unwrap();
    assert_eq!(spike.shape(), &[2, 2, 3]);
    for (row, s) in both.data().chunks_exact(6).zip(spike.data().chunks_exact(3)) {
        assert_eq!(&row[..3], s);
    }
    let mut gx = Tensor::default();
    trunk.backward(&x, &spike, &Tensor::full(&[2, 2, 3], 1.0), &mut gx).unwrap();
    let mut ps = Vec::new();
    trunk.params(&mut ps);
    for p in ps {
        let zero = p.grad.data().iter().all(|&v| v == 0.0);
        assert_eq!(zero, p.name.contains("projection"), "{}", p.name);
    }
}

#[test]
fn at_zero_init_both_heads_agree_exactly() {
    // O_0 = A_0 and identity blocks keep O_L = A_L, so the shared FC gives y_s = y_a.
    let branch = r#"{"type":"conv2d","inChannels":2,"outChannels":2,"kernelSize":[3,3],"padding":[1,1],"bias":false},
        {"type":"batchNorm2d","numFeatures":2,"initWeight":0},{"type":"if"}"#;
    let json = format!(
        r#"{{"type":"dualStream","head":{{"inFeatures":2,"outFeatures":4}},"stages":[
          {{"type":"block","connect":"xor","branch":[{branch}]}},{{"type":"maxPool2d","kernelSize":[2,2]}},
          {{"type":"block","connect":"iand","branch":[{branch}]}}]}}"#
    );
    let spec: LayerSpec = serde_json::from_str(&json).unwrap();
    let mut trunk = build_layer("t", &spec, &mut Rng::new(2)).unwrap();
    let mut rng = Rng::new(9);
    let x = Tensor::from_vec(&[3, 2, 2, 4, 4], rng.spikes(192, 0.5)).unwrap();
    let mut y = Tensor::default();
    trunk.forward(&x, &mut y, true).unwrap();
    for row in y.data().chunks_exact(8) {
        assert_eq!(row[..4], row[4..]);
    }
}

#[test]
fn at_zero_init_the_gradient_reaching_every_block_is_the_same_constant() {
    // Identity blocks: P is the identity and the zero-gamma branch passes no gradient back,
    // so dL/dA_{l-1} = dL/dA_l and (IAND, S = 0) dL/dO_{l-1} = dL/dO_l, stage after stage.
    let branch = r#"{"type":"conv2d","inChannels":2,"outChannels":2,"kernelSize":[3,3],"padding":[1,1],"bias":false},
        {"type":"batchNorm2d","numFeatures":2,"initWeight":0},{"type":"if"}"#;
    let block = format!(r#"{{"type":"block","connect":"iand","branch":[{branch}]}}"#);
    let stages = vec![block; 6].join(",");
    for aap in [true, false] {
        let json = format!(
            r#"{{"type":"dualStream","aap":{aap},"head":{{"inFeatures":2,"outFeatures":3}},"stages":[{stages}]}}"#
        );
        let spec: LayerSpec = serde_json::from_str(&json).unwrap();
        let mut trunk = build_layer("layers.3", &spec, &mut Rng::new(2)).unwrap();
        let mut rng = Rng::new(4);
        let x = Tensor::from_vec(&[2, 2, 2, 4, 4], rng.spikes(128, 0.4)).unwrap();
        forward_backward(trunk.as_mut(), &x, &mut rng);
        let mut norms = Vec::new();
        trunk.gradient_norms(&mut norms);
        assert_eq!(norms.len(), if aap { 12 } else { 6 });
        assert_eq!(norms[0].0, "layers.3.stages.0.O");
        if aap {
            assert_eq!(norms[1].0, "layers.3.stages.0.A");
        }
        let step = if aap { 2 } else { 1 };
        for stream in 0..step {
            let first = norms[stream].1;
            assert!(first > 0.0);
            for (name, n) in norms.iter().skip(stream).step_by(step) {
                assert_eq!(*n, first, "{name}");
            }
        }
    }
}
