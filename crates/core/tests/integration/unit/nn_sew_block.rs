//! Tests of `dualstream_core::nn::sew_block`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `nn::sew_block` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::layer::{Layer, Visitor, VisitorMut};
    pub use dualstream_core::nn::sew_block::*;
    pub use dualstream_core::spec::Connect;
    pub use dualstream_core::tensor::Tensor;
}
use crate::unit::layer_testing::forward_backward;
use dualstream_core::nn::build_layer;
use dualstream_core::rng::Rng;
use dualstream_core::spec::LayerSpec;

fn block_spec(connect: &str, shortcut: bool) -> LayerSpec {
    // Smooth layers only (no neurons), so finite differences are valid; `g`'s formulas are
    // polynomials and hold off {0, 1} too.
    let sc = if shortcut {
        r#","shortcut":[{"type":"conv2d","inChannels":3,"outChannels":4,"kernelSize":[1,1],"stride":[2,2],"bias":false},
                      {"type":"batchNorm2d","numFeatures":4}]"#
    } else {
        ""
    };
    let (c_out, stride) = if shortcut { (4, 2) } else { (3, 1) };
    let json = format!(
        r#"{{"type":"sewBlock","connect":"{connect}","branch":[
            {{"type":"conv2d","inChannels":3,"outChannels":{c_out},"kernelSize":[3,3],"padding":[1,1],"stride":[{stride},{stride}]}},
            {{"type":"batchNorm2d","numFeatures":{c_out}}}]{sc}}}"#
    );
    serde_json::from_str(&json).unwrap()
}

fn loss(spec: &LayerSpec, x: &Tensor, g: &Tensor) -> f64 {
    let mut block = build_layer("block", spec, &mut Rng::new(3)).unwrap();
    let mut y = Tensor::default();
    block.forward(x, &mut y, true).unwrap();
    y.data().iter().zip(g.data()).map(|(&a, &b)| a as f64 * b as f64).sum()
}

#[test]
fn gradients_match_finite_differences_for_every_connect_function_and_shortcut() {
    for connect in ["add", "and", "iand", "or", "xor"] {
        for shortcut in [false, true] {
            let spec = block_spec(connect, shortcut);
            let mut rng = Rng::new(11);
            let x = Tensor::from_vec(&[2, 2, 3, 4, 4], (0..192).map(|_| rng.uniform()).collect())
                .unwrap();
            let mut block = build_layer("block", &spec, &mut Rng::new(3)).unwrap();
            let (_, g, gx) = forward_backward(block.as_mut(), &x, &mut rng);
            let eps = 1e-2f32;
            for i in (0..x.numel()).step_by(7) {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp.data_mut()[i] += eps;
                xm.data_mut()[i] -= eps;
                let numeric = (loss(&spec, &xp, &g) - loss(&spec, &xm, &g)) / (2.0 * eps as f64);
                let analytic = gx.data()[i] as f64;
                assert!(
                    (numeric - analytic).abs() <= 2e-3 + 2e-2 * numeric.abs(),
                    "{connect} shortcut={shortcut} input {i}: analytic {analytic}, numeric {numeric}"
                );
            }
        }
    }
}

#[test]
fn identity_shortcut_with_silent_branch_passes_spikes_through() {
    // Zero-init of the branch's last BN makes S = 0, so ADD, IAND, OR and XOR give O = X.
    let json = r#"{"type":"sewBlock","connect":"iand","branch":[
        {"type":"conv2d","inChannels":2,"outChannels":2,"kernelSize":[3,3],"padding":[1,1]},
        {"type":"batchNorm2d","numFeatures":2,"initWeight":0},
        {"type":"if"}]}"#;
    let mut spec: LayerSpec = serde_json::from_str(json).unwrap();
    let mut rng = Rng::new(5);
    let x = Tensor::from_vec(&[3, 2, 2, 4, 4], rng.spikes(192, 0.3)).unwrap();
    for connect in [Connect::Add, Connect::Iand, Connect::Or, Connect::Xor] {
        if let LayerSpec::SewBlock(s) = &mut spec {
            s.connect = connect;
        }
        let mut block = build_layer("block", &spec, &mut Rng::new(1)).unwrap();
        let mut y = Tensor::default();
        block.forward(&x, &mut y, true).unwrap();
        assert_eq!(y.data(), x.data(), "{connect:?}");
    }
}

#[test]
fn mismatched_branch_and_shortcut_is_a_spec_error_naming_the_block() {
    let json = r#"{"type":"sewBlock","connect":"add","branch":[
        {"type":"conv2d","inChannels":2,"outChannels":4,"kernelSize":[3,3],"padding":[1,1]}]}"#;
    let spec: LayerSpec = serde_json::from_str(json).unwrap();
    let block = build_layer("layers.4", &spec, &mut Rng::new(1)).unwrap();
    let err = block.output_shape(&[4, 1, 2, 8, 8]).unwrap_err();
    assert!(err.to_string().contains("layers.4") && err.to_string().contains("shortcut"), "{err}");
}

/// A spiking SEW ADD block over `[T, N, 3, 6, 6]`; `shortcut`: an explicit identity shortcut
/// (a 1x1 max pool of stride 1), which takes the general path that keeps the branch output.
fn spiking_add_block(shortcut: bool) -> Box<dyn Layer> {
    let sc = if shortcut {
        r#","shortcut":[{"type":"maxPool2d","kernelSize":[1,1],"stride":[1,1],"padding":[0,0]}]"#
    } else {
        ""
    };
    let json = format!(
        r#"{{"type":"sewBlock","connect":"add","branch":[
            {{"type":"conv2d","inChannels":3,"outChannels":3,"kernelSize":[3,3],"padding":[1,1],"bias":false}},
            {{"type":"batchNorm2d","numFeatures":3}},
            {{"type":"plif","tau":2}},
            {{"type":"conv2d","inChannels":3,"outChannels":3,"kernelSize":[3,3],"padding":[1,1],"bias":false}},
            {{"type":"batchNorm2d","numFeatures":3}},
            {{"type":"plif","tau":2}}]{sc}}}"#
    );
    let spec: LayerSpec = serde_json::from_str(&json).unwrap();
    build_layer("block", &spec, &mut Rng::new(7)).unwrap()
}

/// The bits of every parameter gradient of `layer`, by name.
fn grad_bits(layer: &mut dyn Layer) -> Vec<(String, Vec<u32>)> {
    struct Grads(Vec<(String, Vec<u32>)>);
    impl<'a> VisitorMut<'a> for Grads {
        fn param(&mut self, p: &'a mut dualstream_core::layer::Param) {
            self.0.push((p.name.clone(), p.grad.data().iter().map(|v| v.to_bits()).collect()));
        }
    }
    let mut grads = Grads(Vec::new());
    layer.visit_mut(&mut grads);
    grads.0
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.data().iter().map(|v| v.to_bits()).collect()
}

#[test]
fn add_block_that_keeps_no_branch_output_matches_the_general_path_bit_for_bit() {
    // With an identity shortcut and ADD the block keeps no copy of the branch output (its
    // backward reads the shape only); the general path keeps it. Both give the same bits,
    // over two steps (the second reuses pooled buffers) and in both memory modes.
    for lean in [false, true] {
        let mut lean_block = spiking_add_block(false);
        let mut general = spiking_add_block(true);
        lean_block.set_memory_lean(lean);
        general.set_memory_lean(lean);
        let mut rng = Rng::new(21);
        for step in 0..2 {
            let x = Tensor::from_vec(&[4, 2, 3, 6, 6], rng.spikes(864, 0.3)).unwrap();
            let (mut y0, mut y1) = (Tensor::default(), Tensor::default());
            lean_block.forward(&x, &mut y0, true).unwrap();
            general.forward(&x, &mut y1, true).unwrap();
            assert_eq!(bits(&y0), bits(&y1), "lean {lean} step {step}: output");
            let g = Tensor::from_vec(y0.shape(), (0..y0.numel()).map(|_| rng.normal()).collect())
                .unwrap();
            // An empty input gradient tensor (the block's first layer then gives it a buffer
            // of its own) on the first step, a stale one on the second.
            let stale = Tensor::from_vec(x.shape(), vec![f32::NAN; x.numel()]).unwrap();
            let mut gx0 = if step == 0 { Tensor::default() } else { stale };
            let mut gx1 = Tensor::default();
            lean_block.backward(&x, &y0, &g, &mut gx0).unwrap();
            general.backward(&x, &y1, &g, &mut gx1).unwrap();
            assert_eq!(bits(&gx0), bits(&gx1), "lean {lean} step {step}: input gradient");
            let (p0, p1) = (grad_bits(lean_block.as_mut()), grad_bits(general.as_mut()));
            assert!(p0.len() == p1.len() && p0.iter().any(|(_, b)| b.iter().any(|&v| v != 0)));
            for ((name, a), (_, b)) in p0.iter().zip(&p1) {
                assert_eq!(a, b, "lean {lean} step {step}: {name}");
            }
        }
    }
}
