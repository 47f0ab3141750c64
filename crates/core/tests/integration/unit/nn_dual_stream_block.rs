//! Tests of `dualstream_core::nn::dual_stream_block`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `nn::dual_stream_block` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::layer::{Layer, Visitor, VisitorMut};
    pub use dualstream_core::nn::dual_stream_block::*;
    pub use dualstream_core::rng::Rng;
    pub use dualstream_core::spec::DualStreamBlockSpec;
    pub use dualstream_core::tensor::Tensor;
}
use dualstream_core::layer::Walk;

fn block(connect: &str, branch: &str, extra: &str) -> DualStreamBlock {
    let json = format!(r#"{{"connect":"{connect}","branch":[{branch}]{extra}}}"#);
    let spec: DualStreamBlockSpec = serde_json::from_str(&json).unwrap();
    DualStreamBlock::new("b", &spec, &mut Rng::new(4)).unwrap()
}

/// Branch `conv1x1 (2 -> 2) - IF(V_th 0.5)` with weights `[[0, 1], [1, 1]]`: on binary input
/// `S_0 = O_1` and `S_1 = O_0 | O_1` (IF fires on any charge >= 0.5 and resets to 0, and
/// a zero charge leaves V at 0), so channel 0 sees every (S, O) pair across the positions.
fn mixing_block(connect: &str) -> DualStreamBlock {
    let mut b = block(
        connect,
        r#"{"type":"conv2d","inChannels":2,"outChannels":2,"kernelSize":[1,1],"bias":false},{"type":"if","vThreshold":0.5}"#,
        "",
    );
    let mut ps = Vec::new();
    b.branch.params(&mut ps);
    ps[0].value.data_mut().copy_from_slice(&[0.0, 1.0, 1.0, 1.0]);
    b
}

#[test]
fn both_streams_follow_the_block_equations_for_every_g() {
    // T = 2, N = 1, C = 2, 1 x 4 positions: (O_0, O_1) = (0,0), (0,1), (1,0), (1,1) at t = 0
    // and the reverse order at t = 1.
    let o0 = [0.0, 0.0, 1.0, 1.0];
    let o1 = [0.0, 1.0, 0.0, 1.0];
    let mut data = Vec::new();
    for t in 0..2 {
        let order: Vec<usize> = if t == 0 { vec![0, 1, 2, 3] } else { vec![3, 2, 1, 0] };
        data.extend(order.iter().map(|&p| o0[p]));
        data.extend(order.iter().map(|&p| o1[p]));
    }
    let o = Tensor::from_vec(&[2, 1, 2, 1, 4], data).unwrap();
    let a = Tensor::from_vec(&[2, 1, 2, 1, 4], (0..16).map(|i| 0.25 * i as f32 - 1.0).collect())
        .unwrap();
    type Rule = (&'static str, fn(u8, u8) -> u8);
    let truth: [Rule; 5] = [
        ("and", |s, o| s & o),
        ("iand", |s, o| (1 - s) & o),
        ("or", |s, o| s | o),
        ("xor", |s, o| s ^ o),
        // IF(V_th 1, V_reset 0) on S + O in {0, 1, 2}: fires on 1 or 2 and resets, so OR.
        ("spikingResnet", |s, o| s | o),
    ];
    for (name, g) in truth {
        let mut b = mixing_block(name);
        let (mut o_out, mut a_out) = (Tensor::default(), Tensor::default());
        b.forward(&o, &mut o_out, Some((&a, &mut a_out)), true).unwrap();
        for t in 0..2 {
            for p in 0..4 {
                let at = |c: usize| t * 8 + c * 4 + p;
                let (x0, x1) = (o.data()[at(0)] as u8, o.data()[at(1)] as u8);
                let s = [x1, x0 | x1];
                for c in 0..2 {
                    let x = [x0, x1][c];
                    assert_eq!(o_out.data()[at(c)], g(s[c], x) as f32, "{name} O' t{t} p{p} c{c}");
                    assert_eq!(
                        a_out.data()[at(c)],
                        a.data()[at(c)] + s[c] as f32,
                        "{name} A' t{t} p{p} c{c}"
                    );
                }
            }
        }
    }
}

#[test]
fn zero_init_gives_identity_on_both_streams_for_every_g_but_and() {
    let branch = r#"{"type":"conv2d","inChannels":3,"outChannels":3,"kernelSize":[3,3],"padding":[1,1],"bias":false},
        {"type":"batchNorm2d","numFeatures":3},{"type":"if"},
        {"type":"conv2d","inChannels":3,"outChannels":3,"kernelSize":[3,3],"padding":[1,1],"bias":false},
        {"type":"batchNorm2d","numFeatures":3,"initWeight":0},{"type":"if"}"#;
    let mut rng = Rng::new(17);
    let o = Tensor::from_vec(&[3, 2, 3, 4, 4], rng.spikes(288, 0.4)).unwrap();
    let a = Tensor::from_vec(&[3, 2, 3, 4, 4], (0..288).map(|_| 3.0 * rng.uniform()).collect())
        .unwrap();
    for connect in ["iand", "or", "xor", "spikingResnet"] {
        let mut b = block(connect, branch, "");
        let (mut o_out, mut a_out) = (Tensor::default(), Tensor::default());
        b.forward(&o, &mut o_out, Some((&a, &mut a_out)), true).unwrap();
        assert_eq!(o_out.data(), o.data(), "{connect}: O' = O");
        assert_eq!(a_out.data(), a.data(), "{connect}: A' = A");
    }
}

#[test]
fn add_is_refused_with_the_reason() {
    let spec: DualStreamBlockSpec =
        serde_json::from_str(r#"{"connect":"add","branch":[{"type":"if"}]}"#).unwrap();
    let err = DualStreamBlock::new("layers.1.stages.0", &spec, &mut Rng::new(1)).err().unwrap();
    assert_eq!(err.code(), "ERR_SPEC");
    let msg = err.to_string();
    assert!(
        msg.contains("layers.1.stages.0") && msg.contains("full-spike") && msg.contains("iand"),
        "{msg}"
    );
    let spec: DualStreamBlockSpec =
        serde_json::from_str(r#"{"connect":"iand","branch":[{"type":"if"}],"residualNeuron":{}}"#)
            .unwrap();
    assert!(DualStreamBlock::new("b", &spec, &mut Rng::new(1)).is_err());
}

#[test]
fn a_downsampling_block_without_projection_is_a_spec_error_only_with_the_aap() {
    let b = block(
        "iand",
        r#"{"type":"conv2d","inChannels":2,"outChannels":4,"kernelSize":[1,1],"stride":[2,2]},{"type":"if"}"#,
        r#","shortcut":[{"type":"conv2d","inChannels":2,"outChannels":4,"kernelSize":[1,1],"stride":[2,2]},{"type":"if"}]"#,
    );
    assert_eq!(b.output_shape(&[2, 1, 2, 4, 4], false).unwrap(), vec![2, 1, 4, 2, 2]);
    let err = b.output_shape(&[2, 1, 2, 4, 4], true).unwrap_err();
    assert!(err.to_string().contains("projection"), "{err}");
}
