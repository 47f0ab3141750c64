//! Tests of `dualstream_core::optim::ema`: the update rule against PyTorch's AveragedModel
//! (tests/fixtures/ema-torch.json, written by scripts/reference/ema_fixture.py), showing the
//! average, its state, and the trainer keeping it through a resume.
use dualstream_core::loss::LossSpec;
use dualstream_core::model::{Model, Trainer};
use dualstream_core::optim::ema::blend;
use dualstream_core::optim::{Ema, EmaSpec, OptimizerSpec, ScheduleSpec};
use dualstream_core::rng::Rng;
use dualstream_core::spec::ModelSpec;
use dualstream_core::tensor::Tensor;
use serde_json::Value;
use std::path::Path;

fn fixture() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ema-torch.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn spec(decay: f64) -> EmaSpec {
    EmaSpec { decay, warmup: false, buffers: true }
}

/// What a walk calls on every tensor.
type Each<'f> = &'f mut dyn FnMut(&str, &mut Tensor);

/// Walks `tensors` the way `Model::for_each_averaged` walks a model.
fn walk(tensors: &mut [(String, Tensor)]) -> impl FnMut(Each<'_>) + '_ {
    move |f| tensors.iter_mut().for_each(|(n, t)| f(n, t))
}

#[test]
fn the_average_matches_torch_averaged_model_bit_for_bit() {
    let fx = fixture();
    let names: Vec<String> =
        fx["names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().into()).collect();
    let shapes: Vec<Vec<usize>> = fx["shapes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect())
        .collect();
    let tensors = |values: &Value| -> Vec<(String, Tensor)> {
        let values = values.as_array().unwrap();
        (0..names.len())
            .map(|i| (names[i].clone(), Tensor::from_vec(&shapes[i], floats(&values[i])).unwrap()))
            .collect()
    };
    let steps = fx["values"].as_array().unwrap();
    let runs = fx["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 6);
    for run in runs {
        let decay = run["decay"].as_f64().unwrap();
        let warmup = run["warmup"].as_bool().unwrap();
        let mut ema = Ema::new(&EmaSpec { decay, warmup, buffers: true }).unwrap();
        for (s, expected) in run["steps"].as_array().unwrap().iter().enumerate() {
            let mut model = tensors(&steps[s]);
            ema.update(&mut walk(&mut model)).unwrap();
            // Showing the average puts torch's values into the model's tensors.
            ema.show(true, &mut walk(&mut model)).unwrap();
            let want = tensors(&expected["average"]);
            for ((name, got), (_, want)) in model.iter().zip(&want) {
                let (g, w) = (got.data(), want.data());
                for (k, (g, w)) in g.iter().zip(w).enumerate() {
                    assert_eq!(
                        g.to_bits(),
                        w.to_bits(),
                        "decay {decay} warmup {warmup} step {s} {name}[{k}]: {g} vs {w}"
                    );
                }
            }
            ema.show(false, &mut walk(&mut model)).unwrap();
            assert_eq!(model, tensors(&steps[s]), "showing and hiding restores the values");
        }
        assert_eq!(ema.count(), 4);
    }
}

#[test]
fn the_warm_up_caps_the_decay_at_1_plus_n_over_10_plus_n() {
    let mut model = vec![("w".to_string(), Tensor::zeros(&[1]))];
    let mut ema = Ema::new(&EmaSpec { decay: 0.5, warmup: true, buffers: true }).unwrap();
    let mut decays = Vec::new();
    for _ in 0..12 {
        decays.push(ema.decay());
        ema.update(&mut walk(&mut model)).unwrap();
    }
    // n = 0 (a copy anyway), 1/10, 2/11, .., then 0.5 from n = 8 on ((1 + 8) / 18).
    assert_eq!(decays[1], 2.0 / 11.0);
    assert_eq!(decays[7], 8.0 / 17.0);
    assert!(decays[8..].iter().all(|&d| d == 0.5), "{decays:?}");
    assert_eq!(Ema::new(&spec(0.5)).unwrap().decay(), 0.5);
}

#[test]
fn blend_uses_the_form_anchored_at_the_nearer_end() {
    // decay 0 gives the value exactly, even where value - average rounds.
    let mut a = vec![1e-8f32, 3.0, -7.5];
    blend(&mut a, &[1e8, -2.5e-9, 0.1], 1.0);
    assert_eq!(a, vec![1e8, -2.5e-9, 0.1]);
    // w = 1 / 4: fma(w, v - a, a), one rounding after the product and sum.
    let mut a = vec![1.0f32; 37];
    let v: Vec<f32> = (0..37).map(|i| i as f32 * 0.3).collect();
    blend(&mut a, &v, 0.25);
    for (i, (a, v)) in a.iter().zip(&v).enumerate() {
        assert_eq!(a.to_bits(), 0.25f32.mul_add(v - 1.0, 1.0).to_bits(), "{i}");
    }
}

#[test]
fn the_first_update_copies_and_decay_out_of_range_is_refused() {
    let mut model = vec![("w".to_string(), Tensor::from_vec(&[2], vec![1.0, -2.0]).unwrap())];
    let mut ema = Ema::new(&spec(0.9)).unwrap();
    // No average yet: showing it moves nothing.
    ema.show(true, &mut walk(&mut model)).unwrap();
    assert!(!ema.shown());
    ema.update(&mut walk(&mut model)).unwrap();
    model[0].1.data_mut().copy_from_slice(&[2.0, 0.0]);
    ema.update(&mut walk(&mut model)).unwrap();
    ema.show(true, &mut walk(&mut model)).unwrap();
    // 0.9 * 1 + 0.1 * 2 and 0.9 * -2 + 0.1 * 0, to rounding.
    let got = model[0].1.data();
    assert!((got[0] - 1.1).abs() < 1e-6 && (got[1] + 1.8).abs() < 1e-6, "{got:?}");
    let err = ema.update(&mut walk(&mut model)).unwrap_err().to_string();
    assert!(err.contains("show(false)"), "{err}");
    for bad in [1.0, -0.1, f64::NAN, 1.5] {
        let err = Ema::new(&spec(bad)).unwrap_err().to_string();
        assert!(err.contains("ema.decay") && err.contains("[0, 1)"), "{err}");
    }
    let err = serde_json::from_str::<EmaSpec>(r#"{"decay":0.9,"warmUp":true}"#).unwrap_err();
    assert!(err.to_string().contains("warmUp"), "{err}");
    let parsed: EmaSpec = serde_json::from_str(r#"{"decay":0.9}"#).unwrap();
    let plain = EmaSpec { decay: 0.9, warmup: false, buffers: false };
    assert_eq!(parsed, plain, "no warm-up and the trained BN statistics unless asked for");
}

#[test]
fn a_model_of_another_shape_is_refused_without_changing_anything() {
    let mut model = vec![
        ("a".to_string(), Tensor::from_vec(&[2], vec![1.0, 2.0]).unwrap()),
        ("b".to_string(), Tensor::from_vec(&[1], vec![3.0]).unwrap()),
    ];
    let mut ema = Ema::new(&spec(0.5)).unwrap();
    ema.update(&mut walk(&mut model)).unwrap();
    let mut other = vec![
        ("a".to_string(), Tensor::from_vec(&[2], vec![5.0, 6.0]).unwrap()),
        ("b".to_string(), Tensor::from_vec(&[2], vec![7.0, 8.0]).unwrap()),
    ];
    let before = other.clone();
    let err = ema.show(true, &mut walk(&mut other)).unwrap_err().to_string();
    assert!(err.contains("average of b"), "{err}");
    assert_eq!(other, before);
    let err = ema.update(&mut walk(&mut other[..1])).unwrap_err().to_string();
    assert!(err.contains("holds 2 tensors but the model has 1"), "{err}");
    assert_eq!(ema.count(), 1);
}

#[test]
fn the_state_round_trips_and_bad_states_are_refused() {
    let mut model = vec![("w".to_string(), Tensor::from_vec(&[3], vec![1.0, 2.0, 3.0]).unwrap())];
    let mut ema = Ema::new(&spec(0.7)).unwrap();
    ema.update(&mut walk(&mut model)).unwrap();
    model[0].1.data_mut()[0] = 9.0;
    ema.update(&mut walk(&mut model)).unwrap();
    ema.show(true, &mut walk(&mut model)).unwrap();
    let state = ema.state();
    let keys: Vec<&str> = state.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["count", "shown", "slot/w"]);
    let mut back = Ema::new(&spec(0.7)).unwrap();
    back.load_state(&state).unwrap();
    assert_eq!((back.count(), back.shown()), (2, true));
    assert_eq!(back.state(), state);
    let mut shown_fresh = state.clone();
    shown_fresh.truncate(2);
    shown_fresh[0].1 = dualstream_core::optim::step_to_tensor(0);
    assert!(back.clone().load_state(&shown_fresh).is_err(), "shown with no average");
    let mut nan = state.clone();
    nan[2].1.data_mut()[1] = f32::NAN;
    let err = back.clone().load_state(&nan).unwrap_err().to_string();
    assert!(err.contains("slot/w"), "{err}");
    let mut odd = state.clone();
    odd.push(("decay".into(), Tensor::zeros(&[1])));
    assert!(back.load_state(&odd).unwrap_err().to_string().contains("\"decay\""));
    assert_eq!(back.count(), 2, "a refused state changes nothing");
}

fn model_spec() -> ModelSpec {
    serde_json::from_str(
        r#"{"timeSteps":2,"inputShape":[1,4,4],"layers":[
            {"type":"conv2d","inChannels":1,"outChannels":2,"kernelSize":[3,3],"padding":[1,1]},
            {"type":"batchNorm2d","numFeatures":2},
            {"type":"plif"},
            {"type":"dropout","p":0.3},
            {"type":"flatten"},
            {"type":"linear","inFeatures":32,"outFeatures":3}]}"#,
    )
    .expect("model spec")
}

fn images4(seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    Tensor::from_vec(&[4, 1, 4, 4], (0..64).map(|_| 2.0 * rng.uniform()).collect()).unwrap()
}

fn trainer(ema: Option<f64>) -> Trainer {
    trainer_with(ema.map(spec))
}

fn trainer_with(ema: Option<EmaSpec>) -> Trainer {
    let opt: OptimizerSpec = serde_json::from_str(r#"{"type":"adam","lr":0.01}"#).unwrap();
    let schedule: ScheduleSpec =
        serde_json::from_str(r#"{"type":"cosine","totalSteps":8}"#).unwrap();
    let ema = ema.map(|s| Ema::new(&s).unwrap());
    Trainer::new(&opt, &schedule, &LossSpec::default()).unwrap().with_ema(ema)
}

#[test]
fn the_trainer_averages_parameters_and_bn_statistics_but_not_dropout_streams() {
    let mut m = Model::from_spec(&model_spec(), 3).unwrap();
    let mut names = Vec::new();
    m.for_each_averaged(true, &mut |n, _| names.push(n.to_string()));
    let mut params = Vec::new();
    m.for_each_averaged(false, &mut |n, _| params.push(n.to_string()));
    assert_eq!(params, m.param_shapes().into_iter().map(|(n, _)| n).collect::<Vec<_>>());
    assert!(names.iter().any(|n| n.ends_with("running_var")), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("layers.2")), "PLIF's parameter: {names:?}");
    assert!(!names.iter().any(|n| n.ends_with("rng_state")), "{names:?}");
    let mut t = trainer(Some(0.0));
    let mut plain = Model::from_spec(&model_spec(), 3).unwrap();
    let mut t_plain = trainer(None);
    for i in 0..4 {
        let y = [0u32, 1, 2, (i % 3) as u32];
        let a = t.train_step(&mut m, &images4(i), &y).unwrap();
        let b = t_plain.train_step(&mut plain, &images4(i), &y).unwrap();
        assert_eq!(a.loss.to_bits(), b.loss.to_bits(), "step {i}");
        // Decay 0: the average is the trained weights, bit for bit.
        t.show_average(&mut m, true).unwrap();
        assert_eq!(m.state_tensors(), plain.state_tensors(), "step {i}");
    }
    assert!(t.ema().unwrap().shown());
}

#[test]
fn without_buffers_the_model_keeps_the_trained_bn_statistics() {
    let mut m = Model::from_spec(&model_spec(), 3).unwrap();
    let mut t = trainer_with(Some(EmaSpec { decay: 0.9, warmup: false, buffers: false }));
    let mut plain = Model::from_spec(&model_spec(), 3).unwrap();
    let mut t_plain = trainer(None);
    for i in 0..4 {
        let y = [0u32, 1, 2, (i % 3) as u32];
        t.train_step(&mut m, &images4(i), &y).unwrap();
        t_plain.train_step(&mut plain, &images4(i), &y).unwrap();
    }
    t.show_average(&mut m, true).unwrap();
    let (mine, trained) = (m.state_tensors(), plain.state_tensors());
    for ((name, a), (_, b)) in mine.iter().zip(&trained) {
        let stat = name.ends_with("running_mean") || name.ends_with("running_var");
        assert_eq!(stat || name.ends_with("rng_state"), a == b, "{name}");
    }
    assert!(!t.state().iter().any(|(k, _)| k.ends_with("running_var")));
}

#[test]
fn a_resumed_trainer_with_an_average_continues_bit_for_bit() {
    let batch = |i: u64| (images4(i), [0u32, 1, 2, (i % 3) as u32]);
    let mut m = Model::from_spec(&model_spec(), 4).unwrap();
    let mut t = trainer(Some(0.75));
    for i in 0..3 {
        let (x, y) = batch(i);
        t.train_step(&mut m, &x, &y).unwrap();
    }
    // Saved as a checkpoint is: the model carrying the average, the trained weights aside.
    t.show_average(&mut m, true).unwrap();
    let (tensors, state) = (m.state_tensors(), t.state());
    assert!(state.iter().any(|(k, _)| k == "ema/slot/layers.1.running_mean"));
    let mut resumed = Model::from_spec(&model_spec(), 77).unwrap();
    for (name, value) in &tensors {
        resumed.set_tensor(name, value).unwrap();
    }
    let mut rt = trainer(Some(0.75));
    rt.load_state(&state).unwrap();
    for i in 3..8 {
        let (x, y) = batch(i);
        let a = t.train_step(&mut m, &x, &y).unwrap();
        let b = rt.train_step(&mut resumed, &x, &y).unwrap();
        assert_eq!(a.loss.to_bits(), b.loss.to_bits(), "step {i}");
    }
    for (tr, model) in [(&mut t, &mut m), (&mut rt, &mut resumed)] {
        tr.show_average(model, true).unwrap();
    }
    assert_eq!(m.state_tensors(), resumed.state_tensors());
    assert_eq!(t.state(), rt.state());
    // The average differs from the trained weights, and resuming needs the same averaging.
    t.show_average(&mut m, false).unwrap();
    assert_ne!(m.state_tensors(), resumed.state_tensors());
    let err = trainer(None).load_state(&state).unwrap_err().to_string();
    assert!(err.contains("keeps none"), "{err}");
    let plain: Vec<_> = state.iter().filter(|(k, _)| !k.starts_with("ema/")).cloned().collect();
    let err = trainer(Some(0.75)).load_state(&plain).unwrap_err().to_string();
    assert!(err.contains("holds none"), "{err}");
}
