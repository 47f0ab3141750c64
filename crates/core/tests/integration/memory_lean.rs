//! The memory-lean training mode against the default one: a few SGD steps of the same model
//! from the same seed must leave every parameter and buffer identical bit for bit, while the
//! forward keeps fewer bytes.
use dualstream_core::loss::LossSpec;
use dualstream_core::model::{Model, Trainer};
use dualstream_core::optim::schedule::ScheduleSpec;
use dualstream_core::optim::OptimizerSpec;
use dualstream_core::rng::Rng;
use dualstream_core::spec::{Encoding, ModelSpec};
use dualstream_core::training_memory::{predict, training_peak_bytes};
use dualstream_core::Tensor;

use crate::energy::small_dsnn::small_dsnn_json;

fn images(n: usize, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    Tensor::from_vec(&[n, 1, 8, 8], (0..n * 64).map(|_| 3.0 * rng.uniform()).collect()).unwrap()
}

/// Event frames `[T = 3, n, 1, 8, 8]` of 0/1 values, a quarter of them set.
fn frames(n: usize, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let data = (0..3 * n * 64).map(|_| (rng.uniform() < 0.25) as u8 as f32).collect();
    Tensor::from_vec(&[3, n, 1, 8, 8], data).unwrap()
}

/// A batch for `spec`: images for a directly encoded model, event frames for a sequence.
fn batch(spec: &ModelSpec, n: usize, seed: u64) -> Tensor {
    match spec.encoding {
        Encoding::Direct => images(n, seed),
        Encoding::Sequence => frames(n, seed),
    }
}

/// A residual chain at the top level: stem, a block of `kind`, max pooling, a downsampling
/// block with a conv shortcut, flatten and a linear head (SEW blocks joined by `connect`, or
/// Spiking ResNet blocks); dropout in the head.
fn residual_json(kind: &str, connect: &str) -> String {
    let join =
        if kind == "sewBlock" { format!(r#""connect":"{connect}","#) } else { String::new() };
    let lif = r#"{"type":"lif","tau":2.0,"detachReset":true}"#;
    let branch = |cin: usize, cout: usize, s: usize| {
        format!(
            r#"[{{"type":"conv2d","inChannels":{cin},"outChannels":{cout},"kernelSize":[3,3],"padding":[1,1],"stride":[{s},{s}],"bias":false}},
            {{"type":"batchNorm2d","numFeatures":{cout}}},{lif},
            {{"type":"conv2d","inChannels":{cout},"outChannels":{cout},"kernelSize":[3,3],"padding":[1,1],"bias":false}},
            {{"type":"batchNorm2d","numFeatures":{cout}}}{}]"#,
            if kind == "sewBlock" { format!(",{lif}") } else { String::new() }
        )
    };
    format!(
        r#"{{"timeSteps":3,"inputShape":[1,8,8],"layers":[
        {{"type":"conv2d","inChannels":1,"outChannels":4,"kernelSize":[3,3],"padding":[1,1],"bias":false}},
        {{"type":"batchNorm2d","numFeatures":4}},{lif},
        {{"type":"{kind}",{join}"branch":{}}},
        {{"type":"maxPool2d","kernelSize":[2,2]}},
        {{"type":"{kind}",{join}"branch":{},
          "shortcut":[{{"type":"conv2d","inChannels":4,"outChannels":8,"kernelSize":[1,1],"stride":[2,2],"bias":false}},
                      {{"type":"batchNorm2d","numFeatures":8}}]}},
        {{"type":"flatten"}},{{"type":"dropout","p":0.2}},
        {{"type":"linear","inFeatures":32,"outFeatures":3}}]}}"#,
        branch(4, 4, 1),
        branch(4, 8, 2)
    )
}

/// `steps` SGD steps in the given mode; every tensor (parameters, BN statistics, dropout
/// streams) afterwards, and the bytes the last forward kept.
fn train(spec: &ModelSpec, lean: bool, steps: usize) -> (Vec<(String, Tensor)>, usize) {
    let mut model = Model::from_spec(spec, 11).unwrap();
    model.set_memory_lean(lean);
    let opt: OptimizerSpec =
        serde_json::from_str(r#"{"type":"sgd","lr":0.5,"momentum":0.9}"#).unwrap();
    let mut trainer = Trainer::new(&opt, &ScheduleSpec::default(), &LossSpec::default()).unwrap();
    let mut stored = 0;
    for step in 0..steps {
        let x = batch(spec, 4, step as u64);
        let labels = [0, 1, 2, (step % 3) as u32];
        model.forward(&x, true).unwrap();
        stored = model.stored_bytes();
        trainer.train_step(&mut model, &x, &labels).unwrap();
    }
    (model.state_tensors(), stored)
}

fn assert_identical(spec: &ModelSpec, what: &str) {
    let (default, default_bytes) = train(spec, false, 3);
    let (lean, lean_bytes) = train(spec, true, 3);
    assert_eq!(default.len(), lean.len());
    for ((name, a), (_, b)) in default.iter().zip(&lean) {
        assert_eq!(a.shape(), b.shape(), "{what}: {name}");
        let same = a.data().iter().zip(b.data()).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{what}: {name} differs between the default and the memory-lean mode");
    }
    assert!(
        lean_bytes < default_bytes,
        "{what}: the memory-lean forward keeps {lean_bytes} bytes, the default {default_bytes}"
    );
}

#[test]
fn memory_lean_training_updates_a_dsnn_bit_for_bit_as_the_default_mode() {
    for connect in ["iand", "spikingResnet"] {
        let neuron = r#"{"type":"plif","tau":2.0,"detachReset":true}"#;
        let spec = serde_json::from_str(&small_dsnn_json(connect, neuron, true)).unwrap();
        assert_identical(&spec, &format!("dsnn {connect}"));
    }
}

#[test]
fn memory_lean_training_updates_residual_chains_bit_for_bit_as_the_default_mode() {
    for (kind, connect) in [("sewBlock", "add"), ("sewBlock", "iand"), ("spikingResnetBlock", "")] {
        let spec = serde_json::from_str(&residual_json(kind, connect)).unwrap();
        assert_identical(&spec, &format!("{kind} {connect}"));
    }
}

#[test]
fn memory_lean_training_of_event_frames_recomputes_the_stem_bit_for_bit() {
    // Sequence-encoded: the stem conv runs all T steps, and the memory-lean mode frees its
    // output after the BN + neuron pair and computes it again before the pair's backward.
    for (kind, connect) in [("sewBlock", "add"), ("sewBlock", "iand")] {
        let json = residual_json(kind, connect).replacen(
            r#""inputShape":[1,8,8],"#,
            r#""inputShape":[1,8,8],"encoding":"sequence","#,
            1,
        );
        let spec = serde_json::from_str(&json).unwrap();
        assert_identical(&spec, &format!("{kind} {connect} on event frames"));
    }
}

/// The engine's byte counters are process-wide, and the other tests of this binary run in
/// parallel threads: the check runs alone, in a process of its own (this binary again, with
/// only the ignored test below). One rayon thread: the per-thread scratch a kernel keeps grows
/// to the largest task its thread has run, so with work stealing the bytes held move by a few
/// per cent from step to step in a network this small.
#[test]
fn predicted_training_memory_is_the_engine_peak_at_another_batch_size() {
    let name = "memory_lean::prediction_in_a_process_of_its_own";
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env("RAYON_NUM_THREADS", "1")
        .args([name, "--exact", "--ignored", "--test-threads", "1", "--nocapture"])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("1 passed"), "{text}");
}

#[test]
#[ignore = "run by predicted_training_memory_is_the_engine_peak_at_another_batch_size"]
fn prediction_in_a_process_of_its_own() {
    let neuron = r#"{"type":"plif","tau":2.0,"detachReset":true}"#;
    let dsnn: ModelSpec = serde_json::from_str(&small_dsnn_json("iand", neuron, true)).unwrap();
    let sew: ModelSpec = serde_json::from_str(&residual_json("sewBlock", "add")).unwrap();
    for (what, spec) in [("dsnn", dsnn), ("sew", sew)] {
        for lean in [false, true] {
            let mut model = Model::from_spec(&spec, 3).unwrap();
            let memory = predict(&mut model, lean).unwrap();
            assert!(!model.memory_lean(), "{what}: predict left the memory mode changed");
            model.set_memory_lean(lean);
            training_peak_bytes(&mut model, 5).unwrap();
            let peak = training_peak_bytes(&mut model, 5).unwrap();
            // The work buffers lent and taken back across calls balance: later steps hold
            // what this one held.
            for step in 0..3 {
                let later = training_peak_bytes(&mut model, 5).unwrap();
                assert!(
                    (later as f64 / peak as f64 - 1.0).abs() < 0.01,
                    "{what} lean={lean}: step {step} after held {later} bytes, the one before {peak}"
                );
            }
            assert!(memory.per_sample > 0, "{what}: no bytes per sample");
            // Nearly affine, not exactly: the per-thread work buffers have fixed sizes, and
            // which pooled buffer serves which call changes with the sizes asked for.
            let predicted = memory.bytes(5) as f64;
            println!("{what} lean={lean}: predicted {predicted}, engine peak {peak}");
            assert!(
                (predicted / peak as f64 - 1.0).abs() < 0.1,
                "{what} lean={lean}: predicted {memory:?} for 5 samples, the engine held {peak}"
            );
        }
    }
}

/// A W3-shaped model at a small size: event frames `[T, n, 2, 16, 16]`, a conv-BN-neuron stem,
/// two SEW ADD blocks (branch conv-BN-neuron-conv-BN-neuron, identity shortcut) each before a
/// 2x2 max pool, global average pooling and a linear head.
fn w3_like_json(t_len: usize, neuron: &str) -> String {
    let conv = r#"{"type":"conv2d","inChannels":4,"outChannels":4,"kernelSize":[3,3],"padding":[1,1],"bias":false}"#;
    let bn = |w: f32| format!(r#"{{"type":"batchNorm2d","numFeatures":4,"initWeight":{w}}}"#);
    let block = format!(
        r#"{{"type":"sewBlock","connect":"add","branch":[{conv},{},{neuron},{conv},{},{neuron}]}}"#,
        bn(1.0),
        bn(0.5)
    );
    format!(
        r#"{{"timeSteps":{t_len},"inputShape":[2,16,16],"encoding":"sequence","layers":[
        {{"type":"conv2d","inChannels":2,"outChannels":4,"kernelSize":[3,3],"padding":[1,1],"bias":false}},
        {},{neuron},{block},{{"type":"maxPool2d","kernelSize":[2,2]}},
        {block},{{"type":"maxPool2d","kernelSize":[2,2]}},
        {{"type":"globalAvgPool"}},{{"type":"linear","inFeatures":4,"outFeatures":3}}]}}"#,
        bn(1.0)
    )
}

/// `json` (a small W3-like model) without its stem: the layers from the first conv up to
/// `first_block` go, and the input has the stem's 4 channels.
fn without_stem(json: &str, first_block: &str) -> String {
    let mut json = json.to_string();
    let stem_end = json.find(first_block).unwrap();
    let stem_start = json.find(r#"{"type":"conv2d","inChannels":2"#).unwrap();
    json.replace_range(stem_start..stem_end, "");
    json.replace(r#""inputShape":[2,16,16]"#, r#""inputShape":[4,16,16]"#)
}

/// The state tensors after two SGD steps (momentum 0.9) on random event frames
/// `[t, n, channels, 16, 16]` at density 0.3, in the memory-lean mode or not.
fn two_sgd_steps(
    spec: &ModelSpec,
    lean: bool,
    [t_len, n, channels]: [usize; 3],
) -> Vec<(String, Tensor)> {
    let mut model = Model::from_spec(spec, 5).unwrap();
    model.set_memory_lean(lean);
    let opt: OptimizerSpec =
        serde_json::from_str(r#"{"type":"sgd","lr":0.5,"momentum":0.9}"#).unwrap();
    let mut trainer = Trainer::new(&opt, &ScheduleSpec::default(), &LossSpec::default()).unwrap();
    for step in 0..2u64 {
        let mut rng = Rng::new(100 + step);
        let len = t_len * n * channels * 16 * 16;
        let data = (0..len).map(|_| (rng.uniform() < 0.3) as u8 as f32).collect();
        let x = Tensor::from_vec(&[t_len, n, channels, 16, 16], data).unwrap();
        let labels: Vec<u32> = (0..n as u32).map(|i| (i + step as u32) % 3).collect();
        trainer.train_step(&mut model, &x, &labels).unwrap();
    }
    model.state_tensors()
}

/// Every state tensor of `lean` has the bits of the one of `default`.
fn assert_same_bits(default: &[(String, Tensor)], lean: &[(String, Tensor)], what: &str) {
    assert_eq!(default.len(), lean.len(), "{what}: state tensors");
    for ((name, a), (_, b)) in default.iter().zip(lean) {
        let same = a.data().iter().zip(b.data()).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{what}: {name} differs between the default and the chunked blocks");
    }
}

/// The memory-lean mode runs the SEW blocks' branch forward and backward over chunks of time
/// steps; two SGD steps leave every parameter and BN statistic as the default mode does, bit
/// for bit: PLIF and LIF, T odd, T not a multiple of the chunk, chunks widened where a
/// boundary would cut the weight-gradient tree, batches of 1 to 4. The blocks after the stem
/// read their input bit-packed and write their input gradient over their output gradient; a
/// block that is the model's first layer (`first_block`) reads the model input itself.
#[test]
fn memory_lean_sew_blocks_over_chunks_of_time_steps_match_the_default_mode() {
    use dualstream_core::nn::sew_chunks::{chunked_runs, with_chunked_backward};
    let plif =
        r#"{"type":"plif","tau":2.0,"detachReset":true,"surrogate":{"type":"atan","alpha":2}}"#;
    let lif = r#"{"type":"lif","tau":2.0,"detachReset":true}"#;
    let cases = [
        (5, 3, plif, false),
        (9, 2, plif, false),
        (16, 4, plif, false),
        (7, 1, lif, false),
        (3, 4, lif, false),
        (6, 2, plif, true),
    ];
    for (t_len, n, neuron, first_block) in cases {
        let mut json = w3_like_json(t_len, neuron);
        if first_block {
            json = without_stem(&json, r#"{"type":"sewBlock""#);
        }
        let spec: ModelSpec = serde_json::from_str(&json).unwrap();
        let channels = if first_block { 4 } else { 2 };
        let what = format!("T {t_len} N {n} {} first {first_block}", &neuron[9..13]);
        let run = |lean: bool| two_sgd_steps(&spec, lean, [t_len, n, channels]);
        let default = run(false);
        let before = chunked_runs();
        let lean = with_chunked_backward(true, || run(true));
        assert_eq!(chunked_runs() - before, 4, "{what}: both blocks over chunks in both steps");
        assert_same_bits(&default, &lean, &what);
    }
}

/// A W3-dst-shaped model at a small size: event frames `[T, n, 2, 16, 16]`, a conv-BN-neuron
/// stem, a dual-stream trunk of two blocks (branch conv-BN-neuron-conv-BN-neuron, identity
/// shortcut, joined by `connect`) each before a 2x2 max pool, and the trunk's GAP + linear
/// heads (both streams with `aap`).
fn dsnn7b_like_json(t_len: usize, neuron: &str, connect: &str, aap: bool) -> String {
    let conv = r#"{"type":"conv2d","inChannels":4,"outChannels":4,"kernelSize":[3,3],"padding":[1,1],"bias":false}"#;
    let bn = |w: f32| format!(r#"{{"type":"batchNorm2d","numFeatures":4,"initWeight":{w}}}"#);
    let block = format!(
        r#"{{"type":"block","connect":"{connect}","branch":[{conv},{},{neuron},{conv},{},{neuron}]}}"#,
        bn(1.0),
        bn(0.5)
    );
    let pool = r#"{"type":"maxPool2d","kernelSize":[2,2]}"#;
    format!(
        r#"{{"timeSteps":{t_len},"inputShape":[2,16,16],"encoding":"sequence","layers":[
        {{"type":"conv2d","inChannels":2,"outChannels":4,"kernelSize":[3,3],"padding":[1,1],"bias":false}},
        {},{neuron},
        {{"type":"dualStream","aap":{aap},"head":{{"inFeatures":4,"outFeatures":3}},
          "stages":[{block},{pool},{block},{pool}]}}]}}"#,
        bn(1.0)
    )
}

/// The memory-lean mode runs the dual-stream blocks forward and backward over chunks of time
/// steps (`DualStreamBlock::backward_chunked`); two SGD steps leave every parameter and BN
/// statistic as the default mode does, bit for bit: PLIF and LIF, every spike join, with and
/// without the accumulation pathway, T odd and not a multiple of the chunk, batches of 1 to
/// 4; a trunk that is the model's first layer (`first`) reads the event frames themselves as
/// O and A. A Spiking ResNet join does not fit the chunked passes and runs whole.
#[test]
fn memory_lean_dual_stream_blocks_over_chunks_of_time_steps_match_the_default_mode() {
    use dualstream_core::nn::sew_chunks::{chunked_runs, with_chunked_backward};
    let plif =
        r#"{"type":"plif","tau":2.0,"detachReset":true,"surrogate":{"type":"atan","alpha":2}}"#;
    let lif = r#"{"type":"lif","tau":2.0,"detachReset":true}"#;
    let cases = [
        (5, 3, plif, "iand", true, false),
        (9, 2, plif, "iand", true, false),
        (16, 4, plif, "iand", true, true),
        (7, 1, lif, "and", true, false),
        (6, 2, plif, "or", false, false),
        (3, 4, lif, "xor", true, false),
        (8, 2, plif, "iand", false, true),
        (6, 2, plif, "spikingResnet", true, false),
    ];
    for (t_len, n, neuron, connect, aap, first) in cases {
        let mut json = dsnn7b_like_json(t_len, neuron, connect, aap);
        if first {
            json = without_stem(&json, r#"{"type":"dualStream""#);
        }
        let spec: ModelSpec = serde_json::from_str(&json).unwrap();
        let channels = if first { 4 } else { 2 };
        let what = format!("T {t_len} N {n} {} {connect} aap {aap} first {first}", &neuron[9..13]);
        let run = |lean: bool| two_sgd_steps(&spec, lean, [t_len, n, channels]);
        let default = run(false);
        let before = chunked_runs();
        let lean = with_chunked_backward(true, || run(true));
        let expected = if connect == "spikingResnet" { 0 } else { 4 };
        assert_eq!(chunked_runs() - before, expected, "{what}: blocks over chunks, both steps");
        assert_same_bits(&default, &lean, &what);
    }
}

/// A batch norm as the model's first layer (normalising the input frames, fused with the
/// neuron after it, no conv before it) trains in both modes, to the same bits, and its
/// running statistics move.
#[test]
fn a_batch_norm_as_the_first_layer_trains_alike_in_both_modes() {
    let lif = r#"{"type":"lif","tau":2.0,"detachReset":true}"#;
    let json = format!(
        r#"{{"timeSteps":4,"inputShape":[2,16,16],"encoding":"sequence","layers":[
        {{"type":"batchNorm2d","numFeatures":2}},{lif},
        {{"type":"conv2d","inChannels":2,"outChannels":4,"kernelSize":[3,3],"padding":[1,1],"bias":false}},
        {{"type":"batchNorm2d","numFeatures":4}},{lif},
        {{"type":"globalAvgPool"}},{{"type":"linear","inFeatures":4,"outFeatures":3}}]}}"#
    );
    let spec: ModelSpec = serde_json::from_str(&json).unwrap();
    let default = two_sgd_steps(&spec, false, [4, 3, 2]);
    let lean = two_sgd_steps(&spec, true, [4, 3, 2]);
    assert_same_bits(&default, &lean, "batch norm first");
    let (_, mean) = default.iter().find(|(name, _)| name.ends_with("running_mean")).unwrap();
    assert!(mean.data().iter().all(|&m| m > 0.0), "the first BN saw the frames: {:?}", mean.data());
}
