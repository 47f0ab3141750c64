//! The sequence against its layers run one by one: same bits, the plans chosen, the
//! activations kept.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `nn::sequential` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::layer::{Layer, Visitor, VisitorMut};
    pub use dualstream_core::nn::sequential::plan::Concrete;
    pub use dualstream_core::nn::sequential::*;
    pub use dualstream_core::tensor::Tensor;
}
use dualstream_core::layer::Walk;
use dualstream_core::nn::build_sequential;
use dualstream_core::rng::Rng;
use dualstream_core::spec::LayerSpec;

/// Steps of the plans of `seq` and the sequences inside it (last forward) that match `f`.
pub fn planned(seq: &Sequential, f: impl Fn(&FusedOp) -> bool) -> usize {
    seq.fusion_plans().iter().flat_map(|(_, plan)| plan).filter(|op| f(op)).count()
}

/// Fused BN + neuron steps that pool their spikes.
fn pools(seq: &Sequential) -> usize {
    planned(seq, |op| matches!(op, FusedOp::BnNeuron { pool: true, .. }))
}

pub fn specs(json: &str) -> Vec<LayerSpec> {
    serde_json::from_str(json).unwrap()
}

/// A training forward and backward (output gradient from `g_seed`): output, input gradient,
/// parameter gradients.
pub fn run(seq: &mut Sequential, x: &Tensor, g_seed: u64) -> (Tensor, Tensor, Vec<Tensor>) {
    let mut y = Tensor::default();
    seq.forward(x, &mut y, true).unwrap();
    let mut rng = Rng::new(g_seed);
    let g = Tensor::from_vec(y.shape(), (0..y.numel()).map(|_| rng.normal()).collect()).unwrap();
    let mut gx = Tensor::default();
    seq.backward(x, &y, &g, &mut gx).unwrap();
    let mut ps = Vec::new();
    seq.params(&mut ps);
    (y, gx, ps.into_iter().map(|p| p.grad.clone()).collect())
}

#[test]
fn spike_maps_are_kept_bit_packed_and_backward_is_unchanged() {
    let layers = specs(
        r#"[{"type":"conv2d","inChannels":1,"outChannels":4,"kernelSize":[3,3],"padding":[1,1]},
            {"type":"batchNorm2d","numFeatures":4},{"type":"lif"},{"type":"maxPool2d","kernelSize":[2,2]},
            {"type":"flatten"},{"type":"linear","inFeatures":64,"outFeatures":3}]"#,
    );
    let mut rng = Rng::new(1);
    let x = Tensor::from_vec(&[4, 2, 1, 8, 8], (0..512).map(|_| 2.0 * rng.uniform()).collect())
        .unwrap();
    let mut packed = build_sequential("layers", &layers, &mut Rng::new(7)).unwrap();
    // Unfused, so that the comparison below is bit for bit (the fused BN + LIF pass sums
    // in another order; `fused_bn_neuron_pairs_match...` compares it).
    let (y1, gx1, g1) = unfused(|| run(&mut packed, &x, 3));
    assert!(packed.fusion_plans()[0].1.iter().all(|op| matches!(op, FusedOp::Layer(_))));
    // The conv output stays f32 (4 x 2 x 4 x 8 x 8); BN recomputes its output from it in
    // backward; the LIF and pool outputs are read by no backward pass (LIF recomputes its
    // spikes, the pool keeps its argmax, flatten needs shapes only) and are not kept; the
    // flatten output, which the linear layer reads, is kept as bits.
    let dense = 4 * 2 * 4 * 64 * 4;
    let bits = 512usize.div_ceil(64) * 8;
    assert_eq!(
        packed.stored.clone(),
        vec![Stored::Dense, Stored::Recomputed, Stored::Unread, Stored::Unread, Stored::Packed]
    );
    // One byte per pooled output: the maximum's index inside its window.
    let argmax = 512;
    assert_eq!(packed.stored_bytes(), dense + bits + argmax);
    // The same network with every boundary forced dense gives bit-identical results. It keeps
    // the conv and BN outputs and the flatten output as f32; the LIF and pool outputs are still
    // read by no backward pass, so they are not kept either.
    let mut plain = build_sequential("layers", &layers, &mut Rng::new(7)).unwrap();
    plain.spiking.iter_mut().for_each(|s| *s = false);
    plain.recompute.iter_mut().for_each(|s| *s = false);
    let (y2, gx2, g2) = unfused(|| run(&mut plain, &x, 3));
    assert_eq!(plain.stored_bytes(), 2 * dense + 512 * 4 + argmax);
    assert_eq!((y1, gx1, g1), (y2, gx2, g2));
}

#[test]
fn backward_consuming_the_output_gradient_gives_the_same_gradients() {
    // Ending in a fused BN + neuron pair after a conv (worked in place in the consumed
    // gradient), in a lone neuron, and in a conv; odd and even layer counts, since the
    // buffer the last layer reads alternates with them.
    let conv = r#"{"type":"conv2d","inChannels":3,"outChannels":3,"kernelSize":[3,3],"padding":[1,1],"bias":false}"#;
    let (bn, lif) = (
        r#"{"type":"batchNorm2d","numFeatures":3}"#,
        r#"{"type":"lif","tau":2.0,"vThreshold":0.3}"#,
    );
    let sequences = [
        format!("[{conv},{bn},{lif},{conv},{bn},{lif}]"),
        format!("[{lif},{conv},{bn},{lif}]"),
        format!("[{conv},{bn},{lif},{conv},{lif}]"),
        format!("[{conv},{bn},{lif},{conv}]"),
    ];
    let mut rng = Rng::new(4);
    let shape = [2, 3, 3, 6, 6];
    let x = Tensor::from_vec(
        &shape,
        (0..shape.iter().product()).map(|_| 2.0 * rng.uniform()).collect(),
    )
    .unwrap();
    for json in &sequences {
        let layers = specs(json);
        for fused in [true, false] {
            let go = |consume: bool| {
                let mut seq = build_sequential("layers", &layers, &mut Rng::new(8)).unwrap();
                let mut y = Tensor::default();
                seq.forward(&x, &mut y, true).unwrap();
                let mut rng = Rng::new(9);
                let mut g =
                    Tensor::from_vec(y.shape(), (0..y.numel()).map(|_| rng.normal()).collect())
                        .unwrap();
                let mut gx = Tensor::default();
                if consume {
                    seq.backward_consuming(&x, &y, &mut g, &mut gx).unwrap();
                } else {
                    seq.backward(&x, &y, &g, &mut gx).unwrap();
                }
                let mut ps = Vec::new();
                seq.params(&mut ps);
                (gx, ps.into_iter().map(|p| p.grad.clone()).collect::<Vec<_>>())
            };
            let (want, got) =
                if fused { (go(false), go(true)) } else { unfused(|| (go(false), go(true))) };
            assert!(want.0.data().iter().any(|&v| v != 0.0), "{json}: zero input gradient");
            assert_eq!(got, want, "{json} (fused {fused})");
        }
    }
}

/// Runs `f` with every fused pass off; returns its result.
fn unfused<R>(f: impl FnOnce() -> R) -> R {
    with_fusion(Fusion::None, f)
}

/// Fused inference steps that write a residual join.
fn joins(seq: &Sequential) -> usize {
    planned(seq, |op| matches!(op, FusedOp::ConvInference { join: true, .. }))
}

/// Builds `layers` twice, trains both on `x` (BN statistics), switches any AAP off, and runs
/// inference with and without conv + neuron fusion: `joins` blocks must join in their last
/// conv pass, with the same output bits and firing rates as the unfused run. Returns both.
fn joined_against_unfused(
    layers: &[LayerSpec],
    x: &Tensor,
    joins: usize,
    what: &str,
) -> (Sequential, Sequential) {
    let mut fused = build_sequential("layers", layers, &mut Rng::new(4)).unwrap();
    let mut plain = build_sequential("layers", layers, &mut Rng::new(4)).unwrap();
    for net in [&mut fused, &mut plain] {
        for _ in 0..30 {
            net.forward(x, &mut Tensor::default(), true).unwrap();
        }
        net.set_aap(false);
    }
    let (mut y1, mut y2) = (Tensor::default(), Tensor::default());
    inference_only(|| fused.forward(x, &mut y1, false)).unwrap();
    assert_eq!(self::joins(&fused), joins, "{what}: joins in a conv pass");
    unfused(|| inference_only(|| plain.forward(x, &mut y2, false))).unwrap();
    assert_eq!(self::joins(&plain), 0, "{what}: the unfused run joined in a conv pass");
    assert_eq!(y1.shape(), y2.shape(), "{what}");
    assert!(y1.data().iter().zip(y2.data()).all(|(a, b)| a.to_bits() == b.to_bits()), "{what}");
    let (mut r1, mut r2) = (Vec::new(), Vec::new());
    fused.firing_rates(&mut r1);
    plain.firing_rates(&mut r2);
    assert_eq!(r1, r2, "{what}");
    assert!(r1.iter().all(|(_, r)| *r > 0.0 && *r < 1.0), "{what}: {r1:?}");
    (fused, plain)
}

/// Spikes of `shape` at density 0.15, drawn from `Rng::new(seed)`.
fn sparse_spikes(shape: &[usize], seed: u64) -> Tensor {
    Tensor::from_vec(shape, Rng::new(seed).spikes(shape.iter().product(), 0.15)).unwrap()
}

#[test]
fn a_sew_block_joins_in_its_last_conv_pass_with_the_same_bits_and_rates() {
    let x = sparse_spikes(&[3, 2, 2, 12, 11], 21);
    for connect in ["or", "and", "iand", "xor", "add"] {
        let layers = specs(&format!(
            r#"[{{"type":"conv2d","inChannels":2,"outChannels":16,"kernelSize":[3,3],"padding":[1,1],"bias":false}},
                {{"type":"batchNorm2d","numFeatures":16}},{{"type":"lif","vThreshold":0.3}},
                {{"type":"sewBlock","connect":"{connect}","branch":[
                  {{"type":"conv2d","inChannels":16,"outChannels":16,"kernelSize":[3,3],"padding":[1,1],"bias":false}},
                  {{"type":"batchNorm2d","numFeatures":16}},{{"type":"lif","vThreshold":0.5}},
                  {{"type":"conv2d","inChannels":16,"outChannels":16,"kernelSize":[3,3],"padding":[1,1],"bias":false}},
                  {{"type":"batchNorm2d","numFeatures":16}},{{"type":"plif","vThreshold":0.3}}]}}]"#
        ));
        let (mut fused, mut plain) = joined_against_unfused(&layers, &x, 1, connect);
        // The block in training afterwards: its branch output is its own again.
        let (mut t1, mut t2) = (Tensor::default(), Tensor::default());
        fused.forward(&x, &mut t1, true).unwrap();
        plain.forward(&x, &mut t2, true).unwrap();
        assert_eq!(t1, t2, "{connect}: training after inference");
    }
}

#[test]
fn full_spike_dual_stream_blocks_join_in_their_last_conv_pass_with_the_same_bits() {
    let x = sparse_spikes(&[3, 2, 2, 12, 12], 22);
    let block = |connect: &str| {
        format!(
            r#"{{"type":"block","connect":"{connect}","branch":[
              {{"type":"conv2d","inChannels":16,"outChannels":16,"kernelSize":[3,3],"padding":[1,1],"bias":false}},
              {{"type":"batchNorm2d","numFeatures":16}},{{"type":"lif","vThreshold":0.5}},
              {{"type":"conv2d","inChannels":16,"outChannels":16,"kernelSize":[3,3],"padding":[1,1],"bias":false}},
              {{"type":"batchNorm2d","numFeatures":16}},{{"type":"lif","vThreshold":0.3}}]}}"#
        )
    };
    let layers = specs(&format!(
        r#"[{{"type":"conv2d","inChannels":2,"outChannels":16,"kernelSize":[3,3],"padding":[1,1],"bias":false}},
            {{"type":"batchNorm2d","numFeatures":16}},{{"type":"lif","vThreshold":0.3}},
            {{"type":"dualStream","aap":true,"headPool":"flatten","head":{{"inFeatures":576,"outFeatures":10}},
              "stages":[{},{{"type":"maxPool2d","kernelSize":[2,2]}},{}]}}]"#,
        block("or"),
        block("iand")
    ));
    joined_against_unfused(&layers, &x, 2, "or, iand");
}

#[test]
fn inference_feeds_each_conv_to_its_neuron_in_cache_with_the_same_spikes() {
    // conv-BN-LIF stem (a BN without affine parameters), a SEW block (conv-BN-PLIF-conv-BN-LIF),
    // a pool, a conv with bias straight into IF, a conv-BN-LIF ending the sequence (writes the
    // caller's output), and a conv-BN without a neuron.
    let layers = specs(
        r#"[{"type":"conv2d","inChannels":2,"outChannels":8,"kernelSize":[3,3],"padding":[1,1],"bias":false},
            {"type":"batchNorm2d","numFeatures":8,"affine":false},{"type":"lif","tau":2.0,"vThreshold":0.5},
            {"type":"sewBlock","connect":"iand","branch":[
              {"type":"conv2d","inChannels":8,"outChannels":8,"kernelSize":[3,3],"padding":[1,1],"bias":false},
              {"type":"batchNorm2d","numFeatures":8},{"type":"plif","vReset":null},
              {"type":"conv2d","inChannels":8,"outChannels":8,"kernelSize":[3,3],"padding":[1,1],"bias":false},
              {"type":"batchNorm2d","numFeatures":8},{"type":"lif","vThreshold":0.4}]},
            {"type":"maxPool2d","kernelSize":[2,2]},
            {"type":"conv2d","inChannels":8,"outChannels":5,"kernelSize":[3,3],"padding":[1,1]},{"type":"if","vThreshold":0.3},
            {"type":"conv2d","inChannels":5,"outChannels":6,"kernelSize":[3,3],"stride":[2,2]},
            {"type":"batchNorm2d","numFeatures":6},{"type":"lif","vThreshold":0.2}]"#,
    );
    let mut rng = Rng::new(3);
    let shape = [3, 4, 2, 14, 14];
    let n: usize = shape.iter().product();
    let image: Vec<f32> = (0..n / 3).map(|_| 2.0 * rng.uniform()).collect();
    let inputs = [
        ("sparse spikes", Tensor::from_vec(&shape, rng.spikes(n, 0.15)).unwrap()),
        (
            "real values",
            Tensor::from_vec(&shape, (0..n).map(|_| 2.0 * rng.uniform()).collect()).unwrap(),
        ),
        // Direct encoding: the stem convolves the image once for all steps.
        ("a static image", Tensor::from_vec(&shape, image.repeat(3)).unwrap()),
    ];
    let mut fused = build_sequential("layers", &layers, &mut Rng::new(9)).unwrap();
    let mut plain = build_sequential("layers", &layers, &mut Rng::new(9)).unwrap();
    for (what, x) in &inputs {
        // Running statistics of this input, as after training on its kind.
        for net in [&mut fused, &mut plain] {
            for _ in 0..30 {
                net.forward(x, &mut Tensor::default(), true).unwrap();
            }
        }
        let conv_neuron = |s: &Sequential| {
            planned(s, |op| matches!(op, FusedOp::ConvInference { neuron: true, .. }))
        };
        let (mut y1, mut y2) = (Tensor::default(), Tensor::default());
        inference_only(|| fused.forward(x, &mut y1, false)).unwrap();
        assert_eq!(conv_neuron(&fused), 5, "{what}");
        unfused(|| inference_only(|| plain.forward(x, &mut y2, false))).unwrap();
        assert_eq!(conv_neuron(&plain), 0, "{what}: the unfused run fused");
        assert_eq!(y1.shape(), &[3, 4, 6, 3, 3]);
        let (mut r1, mut r2) = (Vec::new(), Vec::new());
        fused.firing_rates(&mut r1);
        assert!(y1.data().contains(&1.0), "{what}: the last layer fires ({r1:?})");
        assert_eq!(y1, y2, "{what}");
        plain.firing_rates(&mut r2);
        assert_eq!(r1, r2, "{what}");
        assert!(r1.iter().all(|(_, r)| *r > 0.0 && *r < 1.0), "{what}: {r1:?}");
    }
}

#[test]
fn a_repeated_input_runs_the_stem_for_one_step_with_the_same_results() {
    for stem_neuron in
        [r#"{"type":"lif","tau":2.0,"detachReset":true}"#, r#"{"type":"plif","vReset":null}"#]
    {
        let layers = specs(&format!(
            r#"[{{"type":"conv2d","inChannels":2,"outChannels":6,"kernelSize":[3,3],"padding":[1,1]}},
                {{"type":"batchNorm2d","numFeatures":6}},{stem_neuron},
                {{"type":"sewBlock","connect":"iand","branch":[
                  {{"type":"conv2d","inChannels":6,"outChannels":6,"kernelSize":[3,3],"padding":[1,1]}},
                  {{"type":"batchNorm2d","numFeatures":6}},{{"type":"lif"}}]}},
                {{"type":"maxPool2d","kernelSize":[2,2]}},
                {{"type":"flatten"}},{{"type":"linear","inFeatures":294,"outFeatures":3}}]"#
        ));
        let (t_len, n) = (3, 4);
        let mut rng = Rng::new(12);
        let step: Vec<f32> = (0..n * 2 * 196).map(|_| 2.0 * rng.uniform()).collect();
        let repeated = Tensor::from_vec(&[t_len, n, 2, 14, 14], step.repeat(t_len)).unwrap();
        let varying = Tensor::from_vec(
            &[t_len, n, 2, 14, 14],
            (0..t_len * step.len()).map(|_| 2.0 * rng.uniform()).collect(),
        )
        .unwrap();
        let mut one_step = build_sequential("layers", &layers, &mut Rng::new(5)).unwrap();
        one_step.set_repeated_input(true);
        let mut plain = build_sequential("layers", &layers, &mut Rng::new(5)).unwrap();
        for k in 0..2 {
            let what = format!("{stem_neuron}, step {k}");
            let (y1, gx1, g1) = run(&mut one_step, &repeated, 30 + k);
            assert_eq!(one_step.one_step, Some(t_len), "{what}");
            let stored = one_step.stored_bytes();
            let (y2, gx2, g2) = run(&mut plain, &repeated, 30 + k);
            assert_eq!(plain.one_step, None);
            // The stem conv's output is kept for one step instead of T.
            assert_eq!(plain.stored_bytes() - stored, (t_len - 1) * n * 6 * 196 * 4, "{what}");
            // The BN statistics of one step equal the repeated input's up to rounding, so
            // the spikes agree (no membrane potential lands within rounding of V_th here).
            assert_eq!(y1, y2, "{what}: outputs");
            let close = |a: &[f32], b: &[f32], item: &str| {
                let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
                for (i, (p, q)) in a.iter().zip(b).enumerate() {
                    assert!((p - q).abs() <= 1e-5 * scale + 1e-6, "{what} {item}[{i}]: {p} vs {q}");
                }
            };
            // The input gradient comes back summed over time on the first step.
            let per_step = gx2.numel() / t_len;
            let summed: Vec<f32> = (0..per_step)
                .map(|i| (0..t_len).map(|t| gx2.data()[t * per_step + i]).sum())
                .collect();
            close(&gx1.data()[..per_step], &summed, "input grad summed over time");
            assert!(gx1.data()[per_step..].iter().all(|&v| v == 0.0), "{what}");
            for (p, (a, b)) in g1.iter().zip(&g2).enumerate() {
                close(a.data(), b.data(), &format!("param {p} grad"));
            }
            let (mut b1, mut b2) = (Vec::new(), Vec::new());
            one_step.buffers(&mut b1);
            plain.buffers(&mut b2);
            for (a, b) in b1.iter().zip(&b2) {
                close(a.value.data(), b.value.data(), &format!("buffer {}", a.name));
            }
            // An input that does not repeat takes the plain path, with the same bits (the
            // parameter gradients add to the above, so they are only close).
            let (y1, gx1, g1) = run(&mut one_step, &varying, 40 + k);
            assert_eq!(one_step.one_step, None);
            let (y2, gx2, g2) = run(&mut plain, &varying, 40 + k);
            assert_eq!((y1, gx1), (y2, gx2), "{what}: varying input");
            for (p, (a, b)) in g1.iter().zip(&g2).enumerate() {
                close(a.data(), b.data(), &format!("param {p} grad after a varying input"));
            }
        }
    }
}

#[test]
fn a_max_pool_after_a_fused_pair_pools_its_spikes_in_cache_with_the_same_bits() {
    // Maps whose planes are (14x14) and are not (13x13: floor mode, odd planes) a
    // multiple of the neuron's register block; LIF and PLIF; a varying input and a
    // directly encoded one (the stem pair then reads one step for all T).
    for (side, neuron) in [
        (14, r#"{"type":"lif","tau":2.0,"detachReset":true}"#),
        (13, r#"{"type":"plif","vReset":null}"#),
    ] {
        let pooled_side = side / 2;
        let layers = specs(&format!(
            r#"[{{"type":"conv2d","inChannels":2,"outChannels":5,"kernelSize":[3,3],"padding":[1,1]}},
                {{"type":"batchNorm2d","numFeatures":5}},{neuron},
                {{"type":"maxPool2d","kernelSize":[2,2]}},
                {{"type":"conv2d","inChannels":5,"outChannels":4,"kernelSize":[3,3],"padding":[1,1]}},
                {{"type":"batchNorm2d","numFeatures":4}},{{"type":"lif"}},
                {{"type":"maxPool2d","kernelSize":[2,2]}},
                {{"type":"flatten"}},{{"type":"linear","inFeatures":{},"outFeatures":3}}]"#,
            4 * (pooled_side / 2) * (pooled_side / 2)
        ));
        let (t_len, n) = (3, 4);
        let mut rng = Rng::new(13);
        let step: Vec<f32> = (0..n * 2 * side * side).map(|_| 2.0 * rng.uniform()).collect();
        let repeated = Tensor::from_vec(&[t_len, n, 2, side, side], step.repeat(t_len)).unwrap();
        let varying = Tensor::from_vec(
            &[t_len, n, 2, side, side],
            (0..t_len * step.len()).map(|_| 2.0 * rng.uniform()).collect(),
        )
        .unwrap();
        for (input, direct) in [(&varying, false), (&repeated, true)] {
            let mut pooled = build_sequential("layers", &layers, &mut Rng::new(5)).unwrap();
            let mut apart = build_sequential("layers", &layers, &mut Rng::new(5)).unwrap();
            pooled.set_repeated_input(direct);
            apart.set_repeated_input(direct);
            for k in 0..2 {
                let what = format!("{side}x{side} {neuron}, direct {direct}, step {k}");
                let (y1, gx1, g1) = run(&mut pooled, input, 50 + k);
                // Both conv-BN-neuron-pool runs.
                assert_eq!(pools(&pooled), 2, "{what}");
                let (y2, gx2, g2) = with_fusion(Fusion::NoPool, || run(&mut apart, input, 50 + k));
                assert_eq!(pools(&apart), 0, "{what}: the unpooled run pooled");
                assert_eq!((y1, gx1, g1), (y2, gx2, g2), "{what}: outputs and gradients");
                assert_eq!(pooled.stored_bytes(), apart.stored_bytes(), "{what}");
                let (mut r1, mut r2) = (Vec::new(), Vec::new());
                pooled.firing_rates(&mut r1);
                apart.firing_rates(&mut r2);
                assert_eq!(r1, r2, "{what}");
            }
        }
    }
    // A pool that ends the sequence: pooled forward, its own backward.
    let layers = specs(
        r#"[{"type":"conv2d","inChannels":2,"outChannels":3,"kernelSize":[3,3],"padding":[1,1]},
            {"type":"batchNorm2d","numFeatures":3},{"type":"lif"},{"type":"maxPool2d","kernelSize":[2,2]}]"#,
    );
    let x = Tensor::from_vec(
        &[2, 3, 2, 10, 10],
        (0..2 * 3 * 2 * 100).map(|i| ((i * 37) % 23) as f32 / 8.0).collect(),
    )
    .unwrap();
    let mut pooled = build_sequential("layers", &layers, &mut Rng::new(6)).unwrap();
    let mut apart = build_sequential("layers", &layers, &mut Rng::new(6)).unwrap();
    let a = run(&mut pooled, &x, 60);
    assert_eq!(pools(&pooled), 1);
    let b = with_fusion(Fusion::NoPool, || run(&mut apart, &x, 60));
    assert_eq!(pools(&apart), 0);
    assert_eq!(a, b, "a pool at the end");
}

#[test]
fn fused_bn_neuron_pairs_match_the_unfused_layers_inside_blocks_too() {
    // Stem conv-BN-LIF, a SEW block whose branch is conv-BN-PLIF-conv-BN-LIF (the first BN
    // without affine parameters), a BN-IF pair after a pool (its input is spikes: not fused,
    // since the BN input is then not kept as f32), pooling and a linear head. Every conv has
    // a bias.
    let layers = specs(
        r#"[{"type":"conv2d","inChannels":2,"outChannels":6,"kernelSize":[3,3],"padding":[1,1]},
            {"type":"batchNorm2d","numFeatures":6},{"type":"lif","tau":2.0},
            {"type":"sewBlock","connect":"iand","branch":[
              {"type":"conv2d","inChannels":6,"outChannels":6,"kernelSize":[3,3],"padding":[1,1]},
              {"type":"batchNorm2d","numFeatures":6,"affine":false},{"type":"plif","vReset":null},
              {"type":"conv2d","inChannels":6,"outChannels":6,"kernelSize":[3,3],"padding":[1,1]},
              {"type":"batchNorm2d","numFeatures":6},{"type":"lif","detachReset":true}]},
            {"type":"maxPool2d","kernelSize":[2,2]},
            {"type":"batchNorm2d","numFeatures":6},{"type":"if"},
            {"type":"flatten"},{"type":"linear","inFeatures":294,"outFeatures":3}]"#,
    );
    let mut rng = Rng::new(11);
    let x = Tensor::from_vec(
        &[3, 4, 2, 14, 14],
        (0..3 * 4 * 2 * 196).map(|_| 2.0 * rng.uniform()).collect(),
    )
    .unwrap();
    let mut fused = build_sequential("layers", &layers, &mut Rng::new(5)).unwrap();
    let mut plain = build_sequential("layers", &layers, &mut Rng::new(5)).unwrap();
    for step in 0..2 {
        let (y1, gx1, g1) = run(&mut fused, &x, 20 + step);
        // The stem's pair and the block branch's two pairs; not the pair after the pool.
        let pairs = |s: &Sequential| planned(s, |op| matches!(op, FusedOp::BnNeuron { .. }));
        assert_eq!(pairs(&fused), 3);
        // Each of those BNs takes its statistics from its conv (the unfused run computes
        // them itself, the same numbers: the outputs below agree bit for bit).
        let given =
            planned(&fused, |op| matches!(op, FusedOp::BnNeuron { conv_moments: true, .. }));
        assert_eq!(given, 3);
        let (y2, gx2, g2) = unfused(|| run(&mut plain, &x, 20 + step));
        assert_eq!(pairs(&plain), 0, "the unfused run fused");
        assert_eq!(y1, y2, "step {step}: outputs");
        assert_eq!(fused.stored_bytes(), plain.stored_bytes());
        let close = |a: &Tensor, b: &Tensor, what: &str| {
            let scale = b.data().iter().fold(1e-6f32, |m, v| m.max(v.abs()));
            for (i, (p, q)) in a.data().iter().zip(b.data()).enumerate() {
                // The absolute term covers conv biases before a BN, whose gradient is 0 up to
                // rounding noise.
                assert!(
                    (p - q).abs() <= 1e-5 * scale + 1e-6,
                    "step {step} {what}[{i}]: {p} vs {q}"
                );
            }
        };
        close(&gx1, &gx2, "input grad");
        assert_eq!(g1.len(), g2.len());
        for (k, (a, b)) in g1.iter().zip(&g2).enumerate() {
            close(a, b, &format!("param {k} grad"));
        }
        let (mut r1, mut r2) = (Vec::new(), Vec::new());
        fused.firing_rates(&mut r1);
        plain.firing_rates(&mut r2);
        assert_eq!(r1, r2);
        // Move the weights identically (plain SGD on the fused grads) so step 2 differs.
        let (mut p1, mut p2) = (Vec::new(), Vec::new());
        fused.params(&mut p1);
        plain.params(&mut p2);
        for (a, b) in p1.iter_mut().zip(p2.iter_mut()) {
            let g = a.grad.clone();
            for ((va, vb), &gv) in
                a.value.data_mut().iter_mut().zip(b.value.data_mut()).zip(g.data())
            {
                *va -= 0.1 * gv;
                *vb -= 0.1 * gv;
            }
            a.grad.data_mut().fill(0.0);
            b.grad.data_mut().fill(0.0);
        }
    }
}

#[test]
fn a_wrong_spike_hint_falls_back_to_dense_storage() {
    // Declared spiking input, but the values are not binary: packing refuses, results stay exact.
    let layers = specs(
        r#"[{"type":"maxPool2d","kernelSize":[2,2]},{"type":"flatten"},{"type":"linear","inFeatures":16,"outFeatures":2}]"#,
    );
    let mut rng = Rng::new(4);
    let x = Tensor::from_vec(&[2, 3, 1, 8, 8], (0..384).map(|_| rng.normal()).collect()).unwrap();
    let mut hinted = build_sequential("s", &layers, &mut Rng::new(2)).unwrap();
    hinted.set_input_spikes(true);
    let mut plain = build_sequential("s", &layers, &mut Rng::new(2)).unwrap();
    for _ in 0..2 {
        assert_eq!(run(&mut hinted, &x, 5), run(&mut plain, &x, 5));
    }
    // The pool output is read by no backward pass (not kept, so never checked); the
    // flatten output, which the linear layer reads, is kept dense.
    assert_eq!(hinted.not_binary, vec![false, true]);
    assert_eq!(hinted.stored.clone(), vec![Stored::Unread, Stored::Dense]);
}

#[test]
fn the_planner_fuses_what_each_mode_allows() {
    use FusedOp::*;
    let layers = specs(
        r#"[{"type":"conv2d","inChannels":2,"outChannels":4,"kernelSize":[3,3],"padding":[1,1]},
            {"type":"batchNorm2d","numFeatures":4},{"type":"lif"},{"type":"maxPool2d","kernelSize":[2,2]},
            {"type":"conv2d","inChannels":4,"outChannels":4,"kernelSize":[3,3],"padding":[1,1]},
            {"type":"if"},{"type":"flatten"},{"type":"linear","inFeatures":64,"outFeatures":3}]"#,
    );
    let mut rng = Rng::new(2);
    let step: Vec<f32> = (0..2 * 2 * 64).map(|_| 2.0 * rng.uniform()).collect();
    let x = Tensor::from_vec(&[3, 2, 2, 8, 8], step.repeat(3)).unwrap();
    let mut seq = build_sequential("layers", &layers, &mut Rng::new(3)).unwrap();
    let plan = |seq: &Sequential| seq.fusion_plans()[0].1.clone();
    let pair = BnNeuron { bn: 1, pool: true, conv_moments: true };
    seq.forward(&x, &mut Tensor::default(), true).unwrap();
    assert_eq!(plan(&seq), [Layer(0), pair, Layer(4), Layer(5), Layer(6), Layer(7)]);
    // A directly encoded input: the stem conv runs one step for the pair after it.
    seq.set_repeated_input(true);
    seq.forward(&x, &mut Tensor::default(), true).unwrap();
    assert_eq!(plan(&seq), [OneStepStem, pair, Layer(4), Layer(5), Layer(6), Layer(7)]);
    assert_eq!(seq.one_step, Some(3));
    with_fusion(Fusion::NoPool, || seq.forward(&x, &mut Tensor::default(), true)).unwrap();
    let unpooled = BnNeuron { bn: 1, pool: false, conv_moments: true };
    assert_eq!(
        plan(&seq),
        [OneStepStem, unpooled, Layer(3), Layer(4), Layer(5), Layer(6), Layer(7)]
    );
    unfused(|| seq.forward(&x, &mut Tensor::default(), true)).unwrap();
    assert_eq!(plan(&seq), (0..8).map(Layer).collect::<Vec<_>>());
    // Inference whose activations no backward reads: convs fold the BN after them and feed
    // the neuron after that in cache.
    inference_only(|| seq.forward(&x, &mut Tensor::default(), false)).unwrap();
    let stem = ConvInference { conv: 0, bn: true, neuron: true, join: false };
    let second = ConvInference { conv: 4, bn: false, neuron: true, join: false };
    assert_eq!(plan(&seq), [stem, Layer(3), second, Layer(6), Layer(7)]);
    // Plain evaluation runs every layer.
    seq.forward(&x, &mut Tensor::default(), false).unwrap();
    assert_eq!(plan(&seq), (0..8).map(Layer).collect::<Vec<_>>());
}

/// Fused BatchNorm2d + max pool steps.
fn bn_pools(seq: &Sequential) -> usize {
    planned(seq, |op| matches!(op, FusedOp::BnPool { .. }))
}

#[test]
fn a_batch_norm_before_a_max_pool_runs_fused_with_the_same_bits() {
    // Spikformer's patch splitting (conv, BN, 3x3 stride-2 pool, LIF) on even and odd
    // planes, and the 2x2 window; two steps, so the running statistics feed the second.
    let pool3 = r#"{"type":"maxPool2d","kernelSize":[3,3],"stride":[2,2],"padding":[1,1]}"#;
    let pool2 = r#"{"type":"maxPool2d","kernelSize":[2,2]}"#;
    for (side, pool, pooled_side) in
        [(14, pool3, 7), (13, pool3, 7), (14, pool2, 7), (12, pool3, 6)]
    {
        let second = if pool == pool3 { (pooled_side - 1) / 2 + 1 } else { pooled_side / 2 };
        let layers = specs(&format!(
            r#"[{{"type":"conv2d","inChannels":2,"outChannels":5,"kernelSize":[3,3],"padding":[1,1],"bias":false}},
                {{"type":"batchNorm2d","numFeatures":5}},{pool},{{"type":"lif","tau":2.0,"vThreshold":0.5}},
                {{"type":"conv2d","inChannels":5,"outChannels":4,"kernelSize":[3,3],"padding":[1,1],"bias":false}},
                {{"type":"batchNorm2d","numFeatures":4}},{pool},{{"type":"lif","vThreshold":0.5}},
                {{"type":"flatten"}},{{"type":"linear","inFeatures":{},"outFeatures":3}}]"#,
            4 * second * second
        ));
        let (t_len, n) = (3, 4);
        let mut rng = Rng::new(21);
        let x = Tensor::from_vec(
            &[t_len, n, 2, side, side],
            (0..t_len * n * 2 * side * side).map(|_| 2.0 * rng.uniform() - 0.5).collect(),
        )
        .unwrap();
        let mut fused = build_sequential("layers", &layers, &mut Rng::new(5)).unwrap();
        let mut apart = build_sequential("layers", &layers, &mut Rng::new(5)).unwrap();
        for k in 0..2 {
            let what = format!("{side}x{side} {pool}, step {k}");
            let a = run(&mut fused, &x, 70 + k);
            assert_eq!(bn_pools(&fused), 2, "{what}");
            let b = unfused(|| run(&mut apart, &x, 70 + k));
            assert_eq!(bn_pools(&apart), 0, "{what}");
            assert!(a.1.data().iter().any(|&v| v != 0.0), "{what}: zero input gradient");
            assert_eq!(a, b, "{what}: outputs and gradients");
            assert_eq!(fused.buffer_values(), apart.buffer_values(), "{what}: running statistics");
        }
    }
    // The BN first and the pool last (the sequence's own input and output gradient), with
    // the output gradient consumed or not.
    let layers = specs(&format!(r#"[{{"type":"batchNorm2d","numFeatures":3}},{pool3}]"#));
    let mut rng = Rng::new(22);
    let x = Tensor::from_vec(&[2, 3, 3, 9, 10], (0..1620).map(|_| rng.normal()).collect()).unwrap();
    for consume in [false, true] {
        let go = || {
            let mut seq = build_sequential("layers", &layers, &mut Rng::new(8)).unwrap();
            let mut y = Tensor::default();
            seq.forward(&x, &mut y, true).unwrap();
            let mut rng = Rng::new(9);
            let mut g = Tensor::from_vec(y.shape(), (0..y.numel()).map(|_| rng.normal()).collect())
                .unwrap();
            let mut gx = Tensor::default();
            if consume {
                seq.backward_consuming(&x, &y, &mut g, &mut gx).unwrap();
            } else {
                seq.backward(&x, &y, &g, &mut gx).unwrap();
            }
            let fused = bn_pools(&seq);
            let mut ps = Vec::new();
            seq.params(&mut ps);
            (fused, y, gx, ps.into_iter().map(|p| p.grad.clone()).collect::<Vec<_>>())
        };
        let (a, b) = (go(), unfused(go));
        assert_eq!((a.0, b.0), (1, 0), "consume {consume}");
        assert_eq!(a.1, b.1, "consume {consume}: output");
        assert_eq!(a.2, b.2, "consume {consume}: input gradient");
        assert_eq!(a.3, b.3, "consume {consume}: parameter gradients");
    }
}
