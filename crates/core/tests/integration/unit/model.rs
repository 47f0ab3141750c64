//! Tests of `dualstream_core::model`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `model` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::error::Error;
    pub use dualstream_core::layer::{Layer, Walk};
    pub use dualstream_core::loss::{head_slice, time_mean_logits, LossSpec};
    pub use dualstream_core::model::*;
    pub use dualstream_core::nn::sequential::inference_only;
    pub use dualstream_core::optim::schedule::ScheduleSpec;
    pub use dualstream_core::optim::{Optimizer, OptimizerSpec};
    pub use dualstream_core::rng::Rng;
    pub use dualstream_core::spec::{DualStage, LayerSpec, ModelSpec};
    pub use dualstream_core::tensor::Tensor;
}
use crate::energy::small_dsnn::small_dsnn_json;
use dualstream_core::spec::DualStage;

fn spec(encoding: &str) -> ModelSpec {
    serde_json::from_str(&format!(
        r#"{{"timeSteps":3,"inputShape":[1,4,4],"encoding":"{encoding}","layers":[
            {{"type":"conv2d","inChannels":1,"outChannels":2,"kernelSize":[3,3],"padding":[1,1]}},
            {{"type":"batchNorm2d","numFeatures":2}},
            {{"type":"flatten"}},
            {{"type":"linear","inFeatures":32,"outFeatures":3}}]}}"#
    ))
    .unwrap()
}

fn ramp(shape: &[usize]) -> Tensor {
    let n = dualstream_core::tensor::numel(shape);
    Tensor::from_vec(shape, (0..n).map(|i| ((i * 37 % 101) as f32) / 101.0).collect()).unwrap()
}

#[test]
fn direct_encoding_equals_the_repeated_sequence_and_sums_input_gradients_over_time() {
    let mut direct = Model::from_spec(&spec("direct"), 9).unwrap();
    let mut sequence = Model::from_spec(&spec("sequence"), 9).unwrap();
    let x = ramp(&[2, 1, 4, 4]);
    let mut repeated = Vec::new();
    for _ in 0..3 {
        repeated.extend_from_slice(x.data());
    }
    let xs = Tensor::from_vec(&[3, 2, 1, 4, 4], repeated).unwrap();
    let yd = direct.forward(&x, true).unwrap().clone();
    let ys = sequence.forward(&xs, true).unwrap().clone();
    assert_eq!(yd, ys);
    let g = ramp(yd.shape());
    let gd = direct.backward(&g).unwrap().clone();
    let gs = sequence.backward(&g).unwrap().clone();
    assert_eq!(gd.shape(), &[2, 1, 4, 4]);
    for i in 0..gd.numel() {
        let sum: f32 = (0..3).map(|t| gs.data()[t * 32 + i]).sum();
        assert!((gd.data()[i] - sum).abs() <= 1e-6 * sum.abs().max(1.0), "at {i}");
    }
}

#[test]
fn a_seed_reproduces_the_weights_and_another_seed_does_not() {
    let a = Model::from_spec(&spec("direct"), 1).unwrap().state_tensors();
    let b = Model::from_spec(&spec("direct"), 1).unwrap().state_tensors();
    let c = Model::from_spec(&spec("direct"), 2).unwrap().state_tensors();
    assert_eq!(a, b);
    assert_ne!(a, c);
    let names: Vec<&str> = a.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "layers.0.weight",
            "layers.0.bias",
            "layers.1.weight",
            "layers.1.bias",
            "layers.3.weight",
            "layers.3.bias",
            "layers.1.running_mean",
            "layers.1.running_var"
        ]
    );
}

#[test]
fn layer_shapes_follow_the_spec() {
    let m = Model::from_spec(&spec("direct"), 1).unwrap();
    let shapes = m.layer_shapes().unwrap();
    let expected: Vec<(String, Vec<usize>)> = vec![
        ("layers.0 (conv2d)".into(), vec![2, 4, 4]),
        ("layers.1 (batchNorm2d)".into(), vec![2, 4, 4]),
        ("layers.2 (flatten)".into(), vec![32]),
        ("layers.3 (linear)".into(), vec![3]),
    ];
    assert_eq!(shapes, expected);
}

#[test]
fn parameter_only_backward_gives_the_same_parameter_gradients() {
    let run = |params_only: bool| {
        let mut m = Model::from_spec(&spec("direct"), 4).unwrap();
        m.forward(&ramp(&[2, 1, 4, 4]), true).unwrap();
        let g = ramp(&[3, 2, 3]);
        if params_only {
            m.backward_params(&g).unwrap();
        } else {
            m.backward(&g).unwrap();
        }
        let grads: Vec<Tensor> = m.params_mut().iter().map(|p| p.grad.clone()).collect();
        let input_grad = m.grad_steps_input.clone();
        (grads, input_grad)
    };
    let (full, full_input) = run(false);
    let (params, _) = run(true);
    assert_eq!(full, params);
    assert!(full_input.data().iter().any(|&v| v != 0.0));
    // The switch is reset: a later full backward computes the input gradient again.
    let mut m = Model::from_spec(&spec("direct"), 4).unwrap();
    m.forward(&ramp(&[2, 1, 4, 4]), true).unwrap();
    m.backward_params(&ramp(&[3, 2, 3])).unwrap();
    m.forward(&ramp(&[2, 1, 4, 4]), true).unwrap();
    assert_eq!(
        m.backward(&ramp(&[3, 2, 3])).unwrap().data(),
        {
            let mut r = Model::from_spec(&spec("direct"), 4).unwrap();
            r.forward(&ramp(&[2, 1, 4, 4]), true).unwrap();
            r.backward(&ramp(&[3, 2, 3])).unwrap().data().to_vec()
        }
        .as_slice()
    );
}

#[test]
fn bad_calls_fail_with_errors_that_say_what_was_expected() {
    let mut m = Model::from_spec(&spec("direct"), 1).unwrap();
    let err = m.forward(&ramp(&[2, 1, 5, 4]), true).unwrap_err();
    assert!(
        matches!(err, Error::Shape { .. }) && err.to_string().contains("[N, 1, 4, 4]"),
        "{err}"
    );
    let mut nan = ramp(&[2, 1, 4, 4]);
    nan.data_mut()[3] = f32::NAN;
    assert!(matches!(m.forward(&nan, true).unwrap_err(), Error::NonFinite { index: 3, .. }));
    assert!(matches!(m.backward(&ramp(&[3, 2, 3])).unwrap_err(), Error::State { .. }));
    let err = m.set_param("layers.0.weight", &ramp(&[2, 1, 3, 2])).unwrap_err();
    assert!(
        err.to_string().contains("layers.0.weight") && err.to_string().contains("[2, 1, 3, 3]"),
        "{err}"
    );
    assert!(m.set_tensor("layers.9.weight", &ramp(&[1])).is_err());
    let mut inf = ramp(&[3]);
    inf.data_mut()[1] = f32::INFINITY;
    let err = m.set_param("layers.3.bias", &inf).unwrap_err();
    assert!(
        matches!(err, Error::NonFinite { index: 1, .. })
            && err.to_string().contains("layers.3.bias"),
        "{err}"
    );
    let mut bad = spec("direct");
    bad.layers.pop();
    bad.layers.push(
        serde_json::from_str(r#"{"type":"linear","inFeatures":31,"outFeatures":3}"#).unwrap(),
    );
    let err = Model::from_spec(&bad, 0).err().unwrap();
    assert!(err.to_string().contains("layers.3") && err.to_string().contains("31"), "{err}");
}

#[test]
fn training_lowers_the_loss_on_a_fixed_batch() {
    let mut m = Model::from_spec(&spec("direct"), 4).unwrap();
    let opt: OptimizerSpec =
        serde_json::from_str(r#"{"type":"sgd","lr":0.05,"momentum":0.9}"#).unwrap();
    let mut trainer = Trainer::new(&opt, &ScheduleSpec::default(), &LossSpec::default()).unwrap();
    let x = ramp(&[4, 1, 4, 4]);
    let labels = [0, 1, 2, 1];
    let first = trainer.train_step(&mut m, &x, &labels).unwrap().loss;
    let mut last = first;
    for _ in 0..30 {
        last = trainer.train_step(&mut m, &x, &labels).unwrap().loss;
    }
    assert!(last < 0.5 * first, "loss {first} -> {last}");
    assert_eq!(trainer.step_count(), 31);
    let err = trainer.train_step(&mut m, &x, &[0, 1, 2, 3]).unwrap_err();
    assert!(err.to_string().contains("labels[3]"), "{err}");
}
#[test]
fn a_run_resumed_from_saved_tensors_and_trainer_state_continues_bit_for_bit() {
    let mut with_dropout = spec("direct");
    with_dropout.layers.insert(3, serde_json::from_str(r#"{"type":"dropout","p":0.3}"#).unwrap());
    let schedule: ScheduleSpec =
        serde_json::from_str(r#"{"type":"cosine","totalSteps":8}"#).unwrap();
    for opt in [r#"{"type":"sgd","lr":0.05,"momentum":0.9}"#, r#"{"type":"adam","lr":0.01}"#] {
        let opt: OptimizerSpec = serde_json::from_str(opt).unwrap();
        let batch = |i: u64| (images4(i), [0u32, 1, 2, (i % 3) as u32]);
        let mut m = Model::from_spec(&with_dropout, 4).unwrap();
        let mut trainer = Trainer::new(&opt, &schedule, &LossSpec::default()).unwrap();
        for i in 0..3 {
            let (x, y) = batch(i);
            trainer.train_step(&mut m, &x, &y).unwrap();
        }
        let tensors = m.state_tensors();
        assert!(tensors.iter().any(|(n, _)| n == "layers.3.rng_state"));
        let state = trainer.state();
        let mut resumed = Model::from_spec(&with_dropout, 77).unwrap();
        for (name, t) in &tensors {
            resumed.set_tensor(name, t).unwrap();
        }
        let mut resumed_trainer = Trainer::new(&opt, &schedule, &LossSpec::default()).unwrap();
        resumed_trainer.load_state(&state).unwrap();
        assert_eq!(resumed_trainer.step_count(), 3);
        assert_eq!(resumed_trainer.learning_rate(), trainer.learning_rate());
        for i in 3..8 {
            let (x, y) = batch(i);
            let a = trainer.train_step(&mut m, &x, &y).unwrap();
            let b = resumed_trainer.train_step(&mut resumed, &x, &y).unwrap();
            assert_eq!(a.loss.to_bits(), b.loss.to_bits(), "{} step {i}", opt.kind());
        }
        assert_eq!(m.state_tensors(), resumed.state_tensors());
        // Without the trainer state the run differs (fresh momentum, schedule from 0).
        let mut cold = Trainer::new(&opt, &schedule, &LossSpec::default()).unwrap();
        assert_ne!(cold.learning_rate(), trainer.learning_rate());
        let bad = vec![("epoch".to_string(), Tensor::zeros(&[1]))];
        assert!(cold.load_state(&bad).unwrap_err().to_string().contains("epoch"));
    }
}

fn images4(seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    Tensor::from_vec(&[4, 1, 4, 4], (0..64).map(|_| 2.0 * rng.uniform()).collect()).unwrap()
}

/// The shared small DSNN with IF neurons and blocks joined by `connect`.
fn dsnn_spec(connect: &str) -> ModelSpec {
    serde_json::from_str(&small_dsnn_json(connect, r#"{"type":"if"}"#, true)).unwrap()
}

fn images(n: usize, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    Tensor::from_vec(&[n, 1, 8, 8], (0..n * 64).map(|_| 3.0 * rng.uniform()).collect()).unwrap()
}

fn trained_dsnn(connect: &str) -> Model {
    let mut m = Model::from_spec(&dsnn_spec(connect), 7).unwrap();
    let opt: OptimizerSpec =
        serde_json::from_str(r#"{"type":"sgd","lr":0.1,"momentum":0.9}"#).unwrap();
    let mut trainer = Trainer::new(&opt, &ScheduleSpec::default(), &LossSpec::default()).unwrap();
    for step in 0..3 {
        trainer.train_step(&mut m, &images(6, step), &[0, 1, 2, 0, 1, 2]).unwrap();
    }
    m
}

#[test]
fn evaluate_folds_each_conv_bn_pair_and_matches_the_unfolded_eval_forward() {
    // evaluate() runs with conv+BN folding (inference_only); forward(false) without.
    for connect in ["iand", "spikingResnet"] {
        let mut fsnn = trained_dsnn(connect).to_full_spike().unwrap();
        let x = images(5, 41);
        let unfolded = time_mean_logits(fsnn.forward(&x, false).unwrap()).unwrap();
        let loss = LossSpec::default();
        let folded = fsnn.evaluate(&x, None, InferenceMode::Fsnn, &loss).unwrap().logits;
        assert_eq!(folded.shape(), unfolded.shape());
        for (a, b) in folded.data().iter().zip(unfolded.data()) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{connect}: folded {a}, unfolded {b}");
        }
        let again = fsnn.evaluate(&x, None, InferenceMode::Fsnn, &loss).unwrap().logits;
        assert_eq!(again, folded, "{connect}: evaluate is deterministic");
        // The folded pass leaves nothing behind that a later training step could misread.
        let opt: OptimizerSpec = serde_json::from_str(r#"{"type":"sgd","lr":0.1}"#).unwrap();
        let mut trainer =
            Trainer::new(&opt, &ScheduleSpec::default(), &LossSpec::default()).unwrap();
        let mut reference = trained_dsnn(connect).to_full_spike().unwrap();
        let a = trainer.train_step(&mut fsnn, &x, &[0, 1, 2, 0, 1]).unwrap();
        let mut trainer =
            Trainer::new(&opt, &ScheduleSpec::default(), &LossSpec::default()).unwrap();
        let b = trainer.train_step(&mut reference, &x, &[0, 1, 2, 0, 1]).unwrap();
        assert_eq!(a, b, "{connect}: a training step after evaluate");
        assert_eq!(fsnn.state_tensors(), reference.state_tensors(), "{connect}");
    }
}

#[test]
fn the_full_spike_model_has_no_aap_and_reproduces_the_spike_head_bit_for_bit() {
    for connect in ["iand", "xor", "spikingResnet"] {
        let mut dsnn = trained_dsnn(connect);
        assert_eq!(dsnn.heads(), 2);
        let mut fsnn = dsnn.to_full_spike().unwrap();
        assert_eq!(fsnn.heads(), 1);
        match fsnn.spec().layers.last() {
            Some(LayerSpec::DualStream(d)) => {
                assert!(!d.aap);
                assert!(d
                    .stages
                    .iter()
                    .all(|s| !matches!(s, DualStage::Block(b) if b.projection.is_some())));
            }
            _ => panic!("the trunk is kept"),
        }
        let names: Vec<String> = fsnn.state_tensors().into_iter().map(|(n, _)| n).collect();
        assert!(!names.iter().any(|n| n.contains("projection")), "{names:?}");
        assert!(dsnn.state_tensors().iter().any(|(n, _)| n.contains("projection")));
        assert_eq!(
            names.len() + 6,
            dsnn.state_tensors().len(),
            "two convs + BN weight, bias, 2 statistics"
        );

        let x = images(5, 99);
        let both = dsnn.forward(&x, false).unwrap().clone();
        assert_eq!(both.shape(), &[3, 5, 6]);
        let alone = fsnn.forward(&x, false).unwrap().clone();
        assert_eq!(alone.shape(), &[3, 5, 3]);
        for (row, s) in both.data().chunks_exact(6).zip(alone.data().chunks_exact(3)) {
            assert_eq!(
                row[..3].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                s.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{connect}"
            );
        }
        let labels = [0, 1, 2, 0, 1];
        let loss = LossSpec::default();
        let f_mode = dsnn.evaluate(&x, Some(&labels), InferenceMode::Fsnn, &loss).unwrap();
        let f_model = fsnn.evaluate(&x, Some(&labels), InferenceMode::Fsnn, &loss).unwrap();
        assert_eq!(f_mode.logits, f_model.logits);
        assert_eq!(f_mode.stats, f_model.stats);
        let d_mode = dsnn.evaluate(&x, Some(&labels), InferenceMode::Dsnn, &loss).unwrap();
        assert_eq!(d_mode.logits.shape(), &[5, 3]);
        assert_ne!(d_mode.logits, f_mode.logits, "dsnn predicts with the accumulation head");
        let err = fsnn.evaluate(&x, None, InferenceMode::Dsnn, &loss).err().unwrap();
        assert!(err.to_string().contains("fsnn"), "{err}");
    }
}

#[test]
fn the_audit_passes_a_dst_network_and_fails_sew_add_naming_the_layer() {
    let mut dsnn = trained_dsnn("iand");
    let report = dsnn.audit(&images(4, 5)).unwrap();
    assert!(report.passed(), "{report:?}");
    assert_eq!(report.stem.as_deref(), Some("layers.0 (conv2d)"));
    assert!(!report.layers[0].binary, "the stem reads the image");
    assert!(report.layers.iter().any(|e| e.layer.contains("head")));
    assert!(
        !report.layers.iter().any(|e| e.layer.contains("projection")),
        "the AAP is not part of the FSNN"
    );
    assert!(dsnn.to_full_spike().unwrap().audit(&images(4, 5)).unwrap().passed());

    let block = |cin: usize| {
        format!(
            r#"{{"type":"sewBlock","connect":"add","branch":[
            {{"type":"conv2d","inChannels":{cin},"outChannels":4,"kernelSize":[3,3],"padding":[1,1],"bias":false}},
            {{"type":"batchNorm2d","numFeatures":4}},{{"type":"if"}}]}}"#
        )
    };
    let sew: ModelSpec = serde_json::from_str(&format!(
        r#"{{"timeSteps":3,"inputShape":[1,8,8],"layers":[
            {{"type":"conv2d","inChannels":1,"outChannels":4,"kernelSize":[3,3],"padding":[1,1],"bias":false}},
            {{"type":"batchNorm2d","numFeatures":4}},{{"type":"if"}},{},{},
            {{"type":"flatten"}},{{"type":"linear","inFeatures":256,"outFeatures":3}}]}}"#,
        block(4),
        block(4)
    ))
    .unwrap();
    let mut sew = Model::from_spec(&sew, 1).unwrap();
    let report = sew.audit(&images(4, 5)).unwrap();
    assert!(!report.passed());
    let first = &report.offending[0];
    assert_eq!(
        first.layer, "layers.4.branch.0 (conv2d)",
        "the conv reading the first ADD block's output"
    );
    assert_eq!(first.example, Some(2.0));
}

#[test]
fn a_dual_stream_trunk_must_be_last_and_add_is_refused() {
    let mut spec = dsnn_spec("iand");
    spec.layers.push(serde_json::from_str(r#"{"type":"flatten"}"#).unwrap());
    let err = Model::from_spec(&spec, 0).err().unwrap();
    assert!(err.to_string().contains("last layer"), "{err}");
    let err = Model::from_spec(&dsnn_spec("add"), 0).err().unwrap();
    assert!(
        err.to_string().contains("layers.3.stages.0") && err.to_string().contains("full-spike"),
        "{err}"
    );
}

#[test]
fn the_two_head_loss_is_the_weighted_sum_and_its_gradient_matches_finite_differences() {
    let mut rng = Rng::new(4);
    let out = Tensor::from_vec(&[2, 3, 8], (0..48).map(|_| rng.normal()).collect()).unwrap();
    let labels = [1u32, 3, 0];
    let loss: LossSpec =
        serde_json::from_str(r#"{"type":"crossEntropy","headWeights":[0.7,0.2]}"#).unwrap();
    let mut grad = Tensor::default();
    let stats = loss.compute_heads(&out, &labels, 2, &mut grad).unwrap();
    let mut part = Tensor::default();
    let mut single = |h: usize| {
        dualstream_core::loss::head_slice(&out, h, 2, &mut part).unwrap();
        LossSpec::default().compute(&part, &labels, 1.0, &mut Tensor::default()).unwrap()
    };
    let (s, a) = (single(0), single(1));
    assert!((stats.loss - (0.7 * s.loss + 0.2 * a.loss)).abs() < 1e-6);
    assert_eq!(stats.heads.len(), 2);
    assert_eq!(
        (stats.heads[0].correct, stats.heads[1].correct, stats.correct),
        (s.correct, a.correct, s.correct)
    );
    let h = 1e-2f32;
    for i in 0..out.numel() {
        let (mut p, mut m) = (out.clone(), out.clone());
        p.data_mut()[i] += h;
        m.data_mut()[i] -= h;
        let mut g = Tensor::default();
        let lp = loss.compute_heads(&p, &labels, 2, &mut g).unwrap().loss as f64;
        let lm = loss.compute_heads(&m, &labels, 2, &mut g).unwrap().loss as f64;
        let fd = (lp - lm) / (2.0 * h as f64);
        assert!(
            (fd - grad.data()[i] as f64).abs() < 2e-4,
            "element {i}: analytic {}, numeric {fd}",
            grad.data()[i]
        );
    }
}

#[test]
fn a_small_dsnn_learns_a_fixed_batch_on_both_heads() {
    let mut m = Model::from_spec(&dsnn_spec("iand"), 3).unwrap();
    let opt: OptimizerSpec = serde_json::from_str(r#"{"type":"adam","lr":0.01}"#).unwrap();
    let mut trainer = Trainer::new(&opt, &ScheduleSpec::default(), &LossSpec::default()).unwrap();
    let x = images(6, 1);
    let labels = [0, 1, 2, 0, 1, 2];
    let first = trainer.train_step(&mut m, &x, &labels).unwrap();
    let mut last = first.clone();
    for _ in 0..40 {
        last = trainer.train_step(&mut m, &x, &labels).unwrap();
    }
    assert!(last.loss < 0.5 * first.loss, "loss {} -> {}", first.loss, last.loss);
    assert!(
        last.heads[0].loss < first.heads[0].loss && last.heads[1].loss < first.heads[1].loss,
        "{first:?} -> {last:?}"
    );
}
