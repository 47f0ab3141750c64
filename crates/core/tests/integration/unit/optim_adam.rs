//! Tests of `dualstream_core::optim::adam`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `optim::adam` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::optim::adam::*;
    pub use dualstream_core::optim::Optimizer;
    pub use dualstream_core::tensor::Tensor;
}
use crate::unit::optim_testing::{assert_elements_close, large_param, param, set_grad};
use dualstream_core::optim::OptimizerSpec;

/// Independent f64 re-derivation of torch.optim.Adam / AdamW (amsgrad off) for one tensor.
struct RefAdam {
    b1: f64,
    b2: f64,
    eps: f64,
    wd: f64,
    decoupled: bool,
    t: i32,
    m: Vec<f64>,
    v: Vec<f64>,
}

impl RefAdam {
    fn new(b1: f64, b2: f64, eps: f64, wd: f64, decoupled: bool, n: usize) -> Self {
        RefAdam { b1, b2, eps, wd, decoupled, t: 0, m: vec![0.0; n], v: vec![0.0; n] }
    }

    fn step(&mut self, p: &mut [f64], g: &[f64], lr: f64) {
        self.t += 1;
        for i in 0..p.len() {
            let mut gi = g[i];
            if self.decoupled {
                p[i] *= 1.0 - lr * self.wd;
            } else {
                gi += self.wd * p[i];
            }
            self.m[i] = self.b1 * self.m[i] + (1.0 - self.b1) * gi;
            self.v[i] = self.b2 * self.v[i] + (1.0 - self.b2) * gi * gi;
            let m_hat = self.m[i] / (1.0 - self.b1.powi(self.t));
            let v_hat = self.v[i] / (1.0 - self.b2.powi(self.t));
            // PyTorch adds eps to sqrt(v)/sqrt(bc2), i.e. to sqrt(v_hat).
            p[i] -= lr * m_hat / (v_hat.sqrt() + self.eps);
        }
    }
}

const P0: [f64; 4] = [0.5, -1.25, 2.0, 0.1];
const GRADS: [[f64; 4]; 3] =
    [[0.3, -0.2, 1.5, -0.7], [-0.4, 0.25, 0.9, 0.0], [0.1, 0.6, -1.2, 0.33]];

fn run(spec: &str, lrs: [f64; 3], decay: bool) {
    let parsed: OptimizerSpec = serde_json::from_str(spec).unwrap();
    let (betas, eps, wd, decoupled) = match parsed {
        OptimizerSpec::Adam { betas, eps, weight_decay, .. } => (betas, eps, weight_decay, false),
        OptimizerSpec::AdamW { betas, eps, weight_decay, .. } => (betas, eps, weight_decay, true),
        _ => unreachable!(),
    };
    let wd = if decay { wd as f64 } else { 0.0 };
    let mut r = RefAdam::new(betas[0] as f64, betas[1] as f64, eps as f64, wd, decoupled, P0.len());
    let mut opt = parsed.build().unwrap();
    let mut p = param("w", &P0, decay);
    let mut want = P0.to_vec();
    for (g, lr) in GRADS.iter().zip(lrs) {
        set_grad(&mut p, g);
        opt.step(&mut [&mut p], lr as f32).unwrap();
        r.step(&mut want, g, lr);
        for (got, want) in p.value.data().iter().zip(&want) {
            assert!(
                (*got as f64 - want).abs() < 1e-5,
                "{spec}: got {:?}, want {want:?}",
                p.value.data()
            );
        }
    }
}

#[test]
fn adam_first_step_by_hand() {
    // Step 1: m_hat = g, v_hat = g^2, so p -= lr * g / (|g| + eps) ~ lr * sign(g).
    let mut opt = Adam::new([0.9, 0.999], 1e-8, 0.0, false);
    let mut p = param("w", &[1.0, 1.0, 1.0], true);
    set_grad(&mut p, &[0.5, -3.0, 0.0]);
    opt.step(&mut [&mut p], 0.01).unwrap();
    let d = p.value.data();
    assert!((d[0] - 0.99).abs() < 1e-6 && (d[1] - 1.01).abs() < 1e-6 && d[2] == 1.0, "{d:?}");
}

#[test]
fn adam_matches_reference() {
    run(r#"{"type":"adam","lr":0.01}"#, [0.01; 3], true);
    run(r#"{"type":"adam","betas":[0.8,0.99],"eps":1e-3}"#, [0.1, 0.05, 0.02], true);
}

#[test]
fn adam_l2_weight_decay() {
    let spec = r#"{"type":"adam","lr":0.01,"weightDecay":0.1}"#;
    run(spec, [0.01; 3], true);
    run(spec, [0.01; 3], false);
}

#[test]
fn adamw_decoupled_weight_decay() {
    // Zero gradient isolates the decay: p *= 1 - lr * wd, then m = v = 0 leaves p alone.
    let mut opt = Adam::new([0.9, 0.999], 1e-8, 0.5, true);
    let mut w = param("w", &[2.0], true);
    let mut b = param("b", &[2.0], false);
    opt.step(&mut [&mut w, &mut b], 0.1).unwrap();
    assert!((w.value.data()[0] - 1.9).abs() < 1e-6, "{:?}", w.value.data());
    assert_eq!(b.value.data()[0], 2.0);

    let spec = r#"{"type":"adamW","lr":0.01,"weightDecay":0.3}"#;
    run(spec, [0.01, 0.02, 0.005], true);
    run(spec, [0.01, 0.02, 0.005], false);
    run(r#"{"type":"adamW"}"#, [1e-3; 3], true);
}

#[test]
fn large_tensor_parallel_path_matches_reference() {
    let n = (1 << 16) + 5;
    let (mut p, mut want) = large_param(n, 19);
    let mut r = RefAdam::new(0.9, 0.999, 1e-8, 0.01, true, n);
    let mut opt = Adam::new([0.9, 0.999], 1e-8, 0.01, true);
    for s in 0..3 {
        let g: Vec<f64> = (0..n).map(|i| (((i * 5 + s) % 11) as f64 - 5.0) / 5.0).collect();
        set_grad(&mut p, &g);
        opt.step(&mut [&mut p], 0.01).unwrap();
        r.step(&mut want, &g, 0.01);
    }
    assert_elements_close(p.value.data(), &want);
}

#[test]
fn state_round_trip() {
    let mut a = Adam::new([0.9, 0.99], 1e-8, 0.1, false);
    let mut w = param("layers.0.weight", &P0, true);
    let mut b = param("layers.0.bias", &[0.2, -0.3], false);
    for g in &GRADS[..2] {
        set_grad(&mut w, g);
        set_grad(&mut b, &[g[0], g[1]]);
        a.step(&mut [&mut w, &mut b], 0.01).unwrap();
    }
    let state = a.state();
    let keys: Vec<&str> = state.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "step",
            "0/layers.0.weight/exp_avg",
            "0/layers.0.weight/exp_avg_sq",
            "1/layers.0.bias/exp_avg",
            "1/layers.0.bias/exp_avg_sq"
        ]
    );

    let mut fresh = Adam::new([0.9, 0.99], 1e-8, 0.1, false);
    fresh.load_state(&state).unwrap();
    assert_eq!(fresh.step, 2);
    let (mut w2, mut b2) = (w.clone(), b.clone());
    for g in [GRADS[2], GRADS[0]] {
        for p in [&mut w, &mut w2] {
            set_grad(p, &g);
        }
        a.step(&mut [&mut w, &mut b], 0.01).unwrap();
        fresh.step(&mut [&mut w2, &mut b2], 0.01).unwrap();
        assert_eq!(w.value, w2.value);
        assert_eq!(b.value, b2.value);
    }
    assert_eq!(a.state(), fresh.state());
}

#[test]
fn load_state_rejects_incomplete() {
    let mut a = Adam::new([0.9, 0.999], 1e-8, 0.0, false);
    let mut w = param("w", &[1.0], true);
    set_grad(&mut w, &[1.0]);
    a.step(&mut [&mut w], 0.1).unwrap();
    let state = a.state();
    let without_step: Vec<_> = state.iter().filter(|(k, _)| k != "step").cloned().collect();
    let without_sq: Vec<_> =
        state.iter().filter(|(k, _)| !k.ends_with("exp_avg_sq")).cloned().collect();
    let mut fresh = Adam::new([0.9, 0.999], 1e-8, 0.0, false);
    assert_eq!(fresh.load_state(&without_step).unwrap_err().code(), "ERR_STATE");
    assert_eq!(fresh.load_state(&without_sq).unwrap_err().code(), "ERR_STATE");
    let mut with_junk = state.clone();
    with_junk.push(("lr".to_string(), Tensor::zeros(&[1])));
    assert_eq!(fresh.load_state(&with_junk).unwrap_err().code(), "ERR_VALUE");
    // A failed load leaves the optimizer as it was.
    assert_eq!(fresh.step, 0);
    assert!(fresh.state().len() == 1);
}
