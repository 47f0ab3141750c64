//! Tests of `dualstream_core::optim::sgd`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `optim::sgd` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::optim::sgd::*;
    pub use dualstream_core::optim::Optimizer;
    pub use dualstream_core::tensor::Tensor;
}
use crate::unit::optim_testing::{assert_elements_close, large_param, param, set_grad};
use dualstream_core::optim::OptimizerSpec;

/// Independent f64 re-derivation of torch.optim.SGD for one tensor.
struct RefSgd {
    lr: f64,
    momentum: f64,
    dampening: f64,
    nesterov: bool,
    wd: f64,
    buf: Option<Vec<f64>>,
}

impl RefSgd {
    fn step(&mut self, p: &mut [f64], g: &[f64]) {
        let g: Vec<f64> = g.iter().zip(p.iter()).map(|(g, p)| g + self.wd * p).collect();
        let d = if self.momentum != 0.0 {
            let buf = match self.buf.take() {
                None => g.clone(),
                Some(b) => b
                    .iter()
                    .zip(&g)
                    .map(|(b, g)| self.momentum * b + (1.0 - self.dampening) * g)
                    .collect(),
            };
            let d = if self.nesterov {
                g.iter().zip(&buf).map(|(g, b)| g + self.momentum * b).collect()
            } else {
                buf.clone()
            };
            self.buf = Some(buf);
            d
        } else {
            g
        };
        for (p, d) in p.iter_mut().zip(d) {
            *p -= self.lr * d;
        }
    }
}

const P0: [f64; 4] = [0.5, -1.25, 2.0, 0.1];
const GRADS: [[f64; 4]; 3] =
    [[0.3, -0.2, 1.5, -0.7], [-0.4, 0.25, 0.9, 0.05], [0.1, 0.6, -1.2, 0.33]];

fn run(spec: &str, reference: RefSgd, decay: bool) {
    let spec: OptimizerSpec = serde_json::from_str(spec).unwrap();
    let mut opt = spec.build().unwrap();
    let mut reference = reference;
    // With decay off, the reference sees no weight decay at all.
    if !decay {
        reference.wd = 0.0;
    }
    let mut p = param("w", &P0, decay);
    let mut want = P0.to_vec();
    for g in GRADS {
        set_grad(&mut p, &g);
        opt.step(&mut [&mut p], reference.lr as f32).unwrap();
        reference.step(&mut want, &g);
        for (got, want) in p.value.data().iter().zip(&want) {
            assert!(
                (*got as f64 - want).abs() < 1e-5,
                "{spec:?}: got {:?}, want {want:?}",
                p.value.data()
            );
        }
    }
}

fn reference(lr: f64, momentum: f64, dampening: f64, nesterov: bool, wd: f64) -> RefSgd {
    RefSgd { lr, momentum, dampening, nesterov, wd, buf: None }
}

/// Three steps of every setting against the reference, weight decay on and off.
#[test]
fn every_setting_matches_the_reference() {
    let settings = [
        (r#"{"type":"sgd","lr":0.1}"#, reference(0.1, 0.0, 0.0, false, 0.0), true),
        (r#"{"type":"sgd","lr":0.05,"momentum":0.9}"#, reference(0.05, 0.9, 0.0, false, 0.0), true),
        (
            r#"{"type":"sgd","lr":0.05,"momentum":0.8,"nesterov":true}"#,
            reference(0.05, 0.8, 0.0, true, 0.0),
            true,
        ),
        (
            r#"{"type":"sgd","lr":0.1,"momentum":0.9,"dampening":0.3}"#,
            reference(0.1, 0.9, 0.3, false, 0.0),
            true,
        ),
        (
            r#"{"type":"sgd","lr":0.1,"momentum":0.9,"weightDecay":0.01,"nesterov":true}"#,
            reference(0.1, 0.9, 0.0, true, 0.01),
            true,
        ),
        (
            r#"{"type":"sgd","lr":0.1,"momentum":0.9,"weightDecay":0.01,"nesterov":true}"#,
            reference(0.1, 0.9, 0.0, true, 0.01),
            false,
        ),
        (
            r#"{"type":"sgd","lr":0.1,"momentum":0.5,"dampening":0.1,"weightDecay":0.05}"#,
            reference(0.1, 0.5, 0.1, false, 0.05),
            true,
        ),
    ];
    for (spec, reference, decay) in settings {
        run(spec, reference, decay);
    }
}

#[test]
fn plain_sgd_by_hand() {
    // One step written out: p - lr * g.
    let mut opt = Sgd::new(0.0, 0.0, false, 0.0);
    let mut p = param("w", &[1.0, -2.0], true);
    set_grad(&mut p, &[0.5, -0.25]);
    opt.step(&mut [&mut p], 0.1).unwrap();
    assert!((p.value.data()[0] - 0.95).abs() < 1e-7 && (p.value.data()[1] + 1.975).abs() < 1e-7);
    assert!(opt.state().is_empty());
}

#[test]
fn momentum_by_hand() {
    // Three steps written out for one element, momentum 0.9, lr 0.1, g = 1, 2, 3:
    // buf = 1 -> p = -0.1; buf = 0.9 + 2 = 2.9 -> p = -0.39; buf = 2.61 + 3 = 5.61 -> p = -0.951.
    let mut opt = Sgd::new(0.9, 0.0, false, 0.0);
    let mut p = param("w", &[0.0], true);
    for (g, want) in [(1.0, -0.1), (2.0, -0.39), (3.0, -0.951)] {
        set_grad(&mut p, &[g]);
        opt.step(&mut [&mut p], 0.1).unwrap();
        assert!((p.value.data()[0] as f64 - want).abs() < 1e-6, "{:?} vs {want}", p.value.data());
    }
}

#[test]
fn dampening_skips_first_step() {
    // First step: buf = g (no dampening), so p = -lr * 1; second: buf = 0.9 * 1 + 0.5 * 2 = 1.9.
    let mut opt = Sgd::new(0.9, 0.5, false, 0.0);
    let mut p = param("w", &[0.0], true);
    set_grad(&mut p, &[1.0]);
    opt.step(&mut [&mut p], 0.1).unwrap();
    assert!((p.value.data()[0] + 0.1).abs() < 1e-7);
    set_grad(&mut p, &[2.0]);
    opt.step(&mut [&mut p], 0.1).unwrap();
    assert!((p.value.data()[0] + 0.29).abs() < 1e-6, "{:?}", p.value.data());
}

#[test]
fn weight_decay_only_on_decay_params() {
    // One step by hand: g = 0.5 + 0.1 * 2 = 0.7, p = 2 - 0.1 * 0.7 = 1.93.
    let mut opt = Sgd::new(0.0, 0.0, false, 0.1);
    let mut w = param("w", &[2.0], true);
    let mut b = param("b", &[2.0], false);
    set_grad(&mut w, &[0.5]);
    set_grad(&mut b, &[0.5]);
    opt.step(&mut [&mut w, &mut b], 0.1).unwrap();
    assert!((w.value.data()[0] - 1.93).abs() < 1e-6);
    assert!((b.value.data()[0] - 1.95).abs() < 1e-6);
}

#[test]
fn large_tensor_parallel_path_matches_reference() {
    let n = (1 << 16) + 3;
    let (mut p, mut want) = large_param(n, 17);
    let mut r = reference(0.1, 0.9, 0.0, true, 0.01);
    let mut opt = Sgd::new(0.9, 0.0, true, 0.01);
    for s in 0..3 {
        let g: Vec<f64> = (0..n).map(|i| (((i * 7 + s) % 13) as f64 - 6.0) / 6.0).collect();
        set_grad(&mut p, &g);
        opt.step(&mut [&mut p], 0.1).unwrap();
        r.step(&mut want, &g);
    }
    assert_elements_close(p.value.data(), &want);
}

#[test]
fn state_round_trip() {
    let mut a = Sgd::new(0.9, 0.1, false, 0.01);
    let mut w = param("layers.0.weight", &P0, true);
    let mut b = param("layers.0.bias", &[0.2, -0.3], false);
    set_grad(&mut w, &GRADS[0]);
    set_grad(&mut b, &[0.5, 0.5]);
    a.step(&mut [&mut w, &mut b], 0.1).unwrap();
    let state = a.state();
    let keys: Vec<&str> = state.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["0/layers.0.weight/momentum_buffer", "1/layers.0.bias/momentum_buffer"]);

    let mut fresh = Sgd::new(0.9, 0.1, false, 0.01);
    fresh.load_state(&state).unwrap();
    let (mut w2, mut b2) = (w.clone(), b.clone());
    for g in &GRADS[1..] {
        set_grad(&mut w, g);
        set_grad(&mut w2, g);
        a.step(&mut [&mut w, &mut b], 0.1).unwrap();
        fresh.step(&mut [&mut w2, &mut b2], 0.1).unwrap();
        assert_eq!(w.value, w2.value);
        assert_eq!(b.value, b2.value);
    }
    // A fresh optimizer without the state takes a different path (buffer re-initialised).
    let mut cold = Sgd::new(0.9, 0.1, false, 0.01);
    let mut w3 = w.clone();
    let mut w4 = w.clone();
    set_grad(&mut w3, &GRADS[2]);
    set_grad(&mut w4, &GRADS[2]);
    cold.step(&mut [&mut w3], 0.1).unwrap();
    a.step(&mut [&mut w4, &mut b], 0.1).unwrap();
    assert_ne!(w3.value, w4.value);
}

#[test]
fn state_mismatch_is_an_error() {
    let mut a = Sgd::new(0.9, 0.0, false, 0.0);
    let mut w = param("w", &[1.0, 2.0], true);
    a.step(&mut [&mut w], 0.1).unwrap();
    let state = a.state();

    let mut fresh = Sgd::new(0.9, 0.0, false, 0.0);
    fresh.load_state(&state).unwrap();
    let mut other = param("v", &[1.0, 2.0], true);
    assert_eq!(fresh.step(&mut [&mut other], 0.1).unwrap_err().code(), "ERR_STATE");
    let mut wrong_shape = param("w", &[1.0, 2.0, 3.0], true);
    assert_eq!(fresh.step(&mut [&mut wrong_shape], 0.1).unwrap_err().code(), "ERR_SHAPE");

    let bad = vec![("0/w/exp_avg".to_string(), Tensor::zeros(&[2]))];
    assert_eq!(Sgd::new(0.9, 0.0, false, 0.0).load_state(&bad).unwrap_err().code(), "ERR_VALUE");
    let bad = vec![("step".to_string(), Tensor::zeros(&[2]))];
    assert!(Sgd::new(0.9, 0.0, false, 0.0).load_state(&bad).is_err());
    assert!(a.step(&mut [&mut w], f32::NAN).is_err());
    assert!(a.step(&mut [&mut w], -0.1).is_err());
}
