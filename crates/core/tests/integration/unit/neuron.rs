//! Tests of `dualstream_core::neuron`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `neuron` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::layer::{Layer, Visitor, VisitorMut};
    pub use dualstream_core::neuron::*;
    pub use dualstream_core::spec::NeuronSpec;
    pub use dualstream_core::tensor::Tensor;
}
use dualstream_core::layer::Walk;
use dualstream_core::rng::Rng;
use dualstream_core::spec::SurrogateSpec;

fn spec(
    tau: f32,
    decay_input: bool,
    v_reset: Option<f32>,
    detach_reset: bool,
    surrogate: SurrogateSpec,
) -> NeuronSpec {
    NeuronSpec { tau, decay_input, v_threshold: 1.0, v_reset, detach_reset, surrogate }
}

/// LIF with tau 2, hard reset to 0, detached reset and the ATan surrogate (alpha 2): the
/// settings SpikingJelly's examples use.
pub(crate) fn detached_atan_lif() -> NeuronSpec {
    spec(2.0, true, Some(0.0), true, SurrogateSpec::Atan { alpha: 2.0 })
}

fn run(layer: &mut NeuronLayer, shape: &[usize], x: Vec<f32>, training: bool) -> Tensor {
    let input = Tensor::from_vec(shape, x).unwrap();
    let mut out = Tensor::default();
    layer.forward(&input, &mut out, training).unwrap();
    out
}

fn trace(l: &NeuronLayer, shape: &[usize], x: Vec<f32>) -> Vec<f32> {
    l.charge_trace(&Tensor::from_vec(shape, x).unwrap()).unwrap().into_vec()
}

fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{what}[{i}]: got {g}, want {w}");
    }
}

// ---------------------------------------------------------------- forward, by hand

#[test]
fn if_hard_reset_constant_input_fires_every_other_step() {
    let mut l = NeuronLayer::new("n", NeuronKind::If, &NeuronSpec::default()).unwrap();
    let out = run(&mut l, &[6, 1], vec![0.6; 6], true);
    assert_eq!(out.data(), &[0., 1., 0., 1., 0., 1.]);
    assert_close(&trace(&l, &[6, 1], vec![0.6; 6]), &[0.6, 1.2, 0.6, 1.2, 0.6, 1.2], 1e-6, "H");
    assert_eq!(l.firing_rate(), Some(0.5));
}

#[test]
fn firing_rate_counts_every_spike_over_several_chunks() {
    // 6300 elements per step: six whole chunks of the kernel and a partial one.
    let mut rng = Rng::new(31);
    let shape = [4, 3, 2100];
    let x: Vec<f32> = (0..4 * 6300).map(|_| 2.0 * rng.uniform()).collect();
    let mut l = NeuronLayer::new("n", NeuronKind::Lif, &NeuronSpec::default()).unwrap();
    let out = run(&mut l, &shape, x, true);
    let spikes: f64 = out.data().iter().map(|&v| v as f64).sum();
    assert!(spikes > 1000.0, "{spikes} spikes");
    assert_eq!(l.firing_rate(), Some((spikes / out.numel() as f64) as f32));
}

#[test]
fn if_soft_reset_keeps_the_excess() {
    let s = spec(2.0, true, None, true, SurrogateSpec::default());
    let mut l = NeuronLayer::new("n", NeuronKind::If, &s).unwrap();
    let out = run(&mut l, &[8, 1], vec![0.7; 8], true);
    // H: .7, 1.4 (->.4), 1.1 (->.1), .8, 1.5 (->.5), 1.2 (->.2), .9, 1.6
    assert_eq!(out.data(), &[0., 1., 1., 0., 1., 1., 0., 1.]);
    assert_close(
        &trace(&l, &[8, 1], vec![0.7; 8]),
        &[0.7, 1.4, 1.1, 0.8, 1.5, 1.2, 0.9, 1.6],
        1e-6,
        "H",
    );
}

#[test]
fn lif_decay_input_hard_reset() {
    let mut l = NeuronLayer::new("n", NeuronKind::Lif, &NeuronSpec::default()).unwrap();
    let out = run(&mut l, &[4, 1], vec![1.5; 4], true);
    // H_0 = 1.5/2 = .75; H_1 = .75 + (1.5 - .75)/2 = 1.125 -> fire, V = 0; repeat.
    assert_eq!(out.data(), &[0., 1., 0., 1.]);
    assert_close(&trace(&l, &[4, 1], vec![1.5; 4]), &[0.75, 1.125, 0.75, 1.125], 0.0, "H");
}

#[test]
fn lif_no_decay_input_hard_reset() {
    let s = spec(2.0, false, Some(0.0), true, SurrogateSpec::default());
    let mut l = NeuronLayer::new("n", NeuronKind::Lif, &s).unwrap();
    let out = run(&mut l, &[6, 1], vec![0.6; 6], true);
    // H_0 = .6; H_1 = .3 + .6 = .9; H_2 = .45 + .6 = 1.05 -> fire; repeat.
    assert_eq!(out.data(), &[0., 0., 1., 0., 0., 1.]);
    assert_close(&trace(&l, &[6, 1], vec![0.6; 6]), &[0.6, 0.9, 1.05, 0.6, 0.9, 1.05], 1e-6, "H");
}

#[test]
fn lif_nonzero_v_reset_both_decay_modes_fire_exactly_at_threshold() {
    // decay_input: V_0 = -.5; H_0 = -.5 + (2 - 0)/2 = .5; H_1 = .5 + (2 - 1)/2 = 1.0 exactly -> fire.
    let s = spec(2.0, true, Some(-0.5), true, SurrogateSpec::default());
    let mut l = NeuronLayer::new("n", NeuronKind::Lif, &s).unwrap();
    let out = run(&mut l, &[4, 1], vec![2.0; 4], true);
    assert_eq!(out.data(), &[0., 1., 0., 1.]);
    assert_close(&trace(&l, &[4, 1], vec![2.0; 4]), &[0.5, 1.0, 0.5, 1.0], 0.0, "H decay");
    // no decay: H_0 = -.5 - 0/2 + 1 = .5; H_1 = .5 - 1/2 + 1 = 1.0 -> fire.
    let s = spec(2.0, false, Some(-0.5), true, SurrogateSpec::default());
    let mut l = NeuronLayer::new("n", NeuronKind::Lif, &s).unwrap();
    let out = run(&mut l, &[4, 1], vec![1.0; 4], true);
    assert_eq!(out.data(), &[0., 1., 0., 1.]);
    assert_close(&trace(&l, &[4, 1], vec![1.0; 4]), &[0.5, 1.0, 0.5, 1.0], 0.0, "H no decay");
}

#[test]
fn lif_soft_reset() {
    let s = spec(2.0, true, None, true, SurrogateSpec::default());
    let mut l = NeuronLayer::new("n", NeuronKind::Lif, &s).unwrap();
    let out = run(&mut l, &[5, 1], vec![1.5; 5], true);
    // .75; 1.125 (-> .125); .125 + 1.375/2 = .8125; .8125 + .6875/2 = 1.15625 (-> .15625);
    // .15625 + 1.34375/2 = .828125
    assert_eq!(out.data(), &[0., 1., 0., 1., 0.]);
    assert_close(
        &trace(&l, &[5, 1], vec![1.5; 5]),
        &[0.75, 1.125, 0.8125, 1.15625, 0.828125],
        0.0,
        "H",
    );
}

#[test]
fn plif_starts_at_init_tau_and_charges_with_sigmoid_w() {
    let mut l = NeuronLayer::new("blk.2", NeuronKind::Plif, &NeuronSpec::default()).unwrap();
    {
        let mut ps = Vec::new();
        l.params(&mut ps);
        assert_eq!(ps.len(), 1);
        assert_eq!(ps[0].name, "blk.2.w");
        assert_eq!(ps[0].value.shape(), &[1]);
        assert_eq!(ps[0].value.data(), &[0.0]);
        assert!(!ps[0].decay);
    }
    assert_eq!(l.tau(), Some(2.0));
    let out = run(&mut l, &[4, 1], vec![1.5; 4], true);
    assert_eq!(out.data(), &[0., 1., 0., 1.]);

    // tau 4: k = 1/4. H_0 = .5; H_1 = .5 + 1.5/4 = .875; H_2 = .875 + 1.125/4 = 1.15625 -> fire.
    let s = spec(4.0, true, Some(0.0), true, SurrogateSpec::default());
    let mut l = NeuronLayer::new("p", NeuronKind::Plif, &s).unwrap();
    assert!((l.tau().unwrap() - 4.0).abs() < 1e-5);
    let out = run(&mut l, &[6, 1], vec![2.0; 6], true);
    assert_eq!(out.data(), &[0., 0., 1., 0., 0., 1.]);
    assert_close(
        &trace(&l, &[6, 1], vec![2.0; 6]),
        &[0.5, 0.875, 1.15625, 0.5, 0.875, 1.15625],
        1e-6,
        "H",
    );

    // no decay, tau 4: H_0 = 0 + .5 = .5; H_1 = .5 * .75 + .5 = .875; H_2 = .65625 + .5 = 1.15625.
    let s = spec(4.0, false, Some(0.0), true, SurrogateSpec::default());
    let mut l = NeuronLayer::new("p", NeuronKind::Plif, &s).unwrap();
    let out = run(&mut l, &[3, 1], vec![0.5; 3], true);
    assert_eq!(out.data(), &[0., 0., 1.]);
    assert_close(&trace(&l, &[3, 1], vec![0.5; 3]), &[0.5, 0.875, 1.15625], 1e-6, "H no decay");
}

#[test]
fn state_restarts_at_every_forward_and_elements_are_independent() {
    let mut l = NeuronLayer::new("n", NeuronKind::If, &NeuronSpec::default()).unwrap();
    // [T=3, N=2, 2]: four neurons with different constant inputs.
    let per = [0.6f32, 0.2, 1.0, -1.0];
    let x: Vec<f32> = (0..3).flat_map(|_| per).collect();
    let a = run(&mut l, &[3, 2, 2], x.clone(), false);
    let b = run(&mut l, &[3, 2, 2], x, false);
    assert_eq!(a, b);
    assert_eq!(a.shape(), &[3, 2, 2]);
    #[rustfmt::skip]
    let want = [
        0., 0., 1., 0.,
        1., 0., 1., 0.,
        0., 0., 1., 0.,
    ];
    assert_eq!(a.data(), &want);
    assert_eq!(l.firing_rate(), Some(4.0 / 12.0));
}

// ---------------------------------------------------------------- reference BPTT

/// Every configuration the layer supports: kind x decay_input x reset x detach x surrogate.
fn configs() -> Vec<(NeuronKind, NeuronSpec)> {
    let surrogates = [
        SurrogateSpec::Sigmoid { alpha: 4.0 },
        SurrogateSpec::Atan { alpha: 2.0 },
        SurrogateSpec::PiecewiseQuadratic { alpha: 1.0 },
        SurrogateSpec::SuperSpike { alpha: 100.0 },
        SurrogateSpec::Erf { alpha: 2.0 },
        SurrogateSpec::SoftSign { alpha: 2.0 },
        SurrogateSpec::PiecewiseExp { alpha: 1.0 },
        SurrogateSpec::PiecewiseLeakyRelu { w: 1.0, c: 0.01 },
    ];
    let kinds = [
        (NeuronKind::If, true),
        (NeuronKind::Lif, true),
        (NeuronKind::Lif, false),
        (NeuronKind::Plif, true),
        (NeuronKind::Plif, false),
    ];
    let mut v = Vec::new();
    for (kind, decay_input) in kinds {
        for v_reset in [Some(0.0), Some(-0.3), None] {
            for detach_reset in [true, false] {
                for surrogate in surrogates {
                    let s = NeuronSpec {
                        tau: 2.5,
                        decay_input,
                        v_threshold: 0.8,
                        v_reset,
                        detach_reset,
                        surrogate,
                    };
                    v.push((kind, s));
                }
            }
        }
    }
    v
}

/// Surrogate derivative in f64, written from the formulas of docs/dual-stream-training.md
/// independently of `Surrogate::grad`.
fn sg_ref(s: &SurrogateSpec, x: f64) -> f64 {
    match *s {
        SurrogateSpec::Sigmoid { alpha } => {
            let a = alpha as f64;
            let sig = 1.0 / (1.0 + (-a * x).exp());
            a * sig * (1.0 - sig)
        }
        SurrogateSpec::Atan { alpha } => {
            let a = alpha as f64;
            (a / 2.0) / (1.0 + (std::f64::consts::PI / 2.0 * a * x).powi(2))
        }
        SurrogateSpec::PiecewiseQuadratic { alpha } => {
            let a = alpha as f64;
            (a - a * a * x.abs()).max(0.0)
        }
        SurrogateSpec::SuperSpike { alpha } => 1.0 / (alpha as f64 * x.abs() + 1.0).powi(2),
        SurrogateSpec::Erf { alpha } => {
            let a = alpha as f64;
            a / std::f64::consts::PI.sqrt() * (-(a * x).powi(2)).exp()
        }
        SurrogateSpec::SoftSign { alpha } => {
            let a = alpha as f64;
            a / (2.0 * (1.0 + a * x.abs()).powi(2))
        }
        SurrogateSpec::PiecewiseExp { alpha } => {
            let a = alpha as f64;
            a / 2.0 * (-a * x.abs()).exp()
        }
        SurrogateSpec::PiecewiseLeakyRelu { w, c } => {
            if x.abs() < w as f64 {
                1.0 / (2.0 * w as f64)
            } else {
                c as f64
            }
        }
    }
}

/// SpikingJelly's forward for one neuron, in f32 with its formulas as written in neuron.py, so
/// that spikes agree bit for bit. Returns (H_t, S_t, V_{t-1}).
fn ref_forward(
    kind: NeuronKind,
    s: &NeuronSpec,
    w: f32,
    xs: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let k = (1.0 / (1.0 + (-(w as f64)).exp())) as f32;
    let tau = s.tau;
    let zero_reset = s.v_reset.is_none() || s.v_reset == Some(0.0);
    let vr = s.v_reset.unwrap_or(0.0);
    let mut v = vr;
    let (mut hs, mut ss, mut vs) = (vec![], vec![], vec![]);
    for &x in xs {
        vs.push(v);
        let h = match (kind, s.decay_input, zero_reset) {
            (NeuronKind::If, _, _) => v + x,
            (NeuronKind::Lif, true, true) => v + (x - v) / tau,
            (NeuronKind::Lif, true, false) => v + (x - (v - vr)) / tau,
            (NeuronKind::Lif, false, true) => v * ((1.0 - 1.0 / tau as f64) as f32) + x,
            (NeuronKind::Lif, false, false) => v - (v - vr) / tau + x,
            (NeuronKind::Plif, true, true) => v + (x - v) * k,
            (NeuronKind::Plif, true, false) => v + (x - (v - vr)) * k,
            (NeuronKind::Plif, false, true) => v * (1.0 - k) + x,
            (NeuronKind::Plif, false, false) => v - (v - vr) * k + x,
        };
        let spike = if h - s.v_threshold >= 0.0 { 1.0f32 } else { 0.0 };
        v = match s.v_reset {
            Some(r) => (1.0 - spike) * h + spike * r,
            None => h - spike * s.v_threshold,
        };
        hs.push(h);
        ss.push(spike);
    }
    (hs, ss, vs)
}

/// Reverse-mode by hand, in f64, over one neuron's tape: returns (dL/dX_t, dL/dw, sum of the
/// magnitudes of dL/dw's terms for a tolerance scale).
fn ref_backward(
    kind: NeuronKind,
    s: &NeuronSpec,
    w: f32,
    xs: &[f32],
    tape: &(Vec<f32>, Vec<f32>, Vec<f32>),
    gout: &[f32],
) -> (Vec<f64>, f64, f64) {
    let (hs, ss, vs) = tape;
    let k = 1.0 / (1.0 + (-(w as f64)).exp());
    let tau = s.tau as f64;
    let vth = s.v_threshold as f64;
    let vr = s.v_reset.unwrap_or(0.0) as f64;
    let n = xs.len();
    let mut gx = vec![0.0; n];
    let mut g_v_next = 0.0; // dL/dV_t from the future
    let (mut gk, mut gk_scale) = (0.0, 0.0);
    for t in (0..n).rev() {
        let h = hs[t] as f64;
        let spike = ss[t] as f64;
        let mut g_s = gout[t] as f64;
        let mut g_h;
        match s.v_reset {
            Some(_) => {
                // V = (1 - S) H + S vr
                g_h = g_v_next * (1.0 - spike);
                if !s.detach_reset {
                    g_s += g_v_next * (vr - h);
                }
            }
            None => {
                // V = H - S vth
                g_h = g_v_next;
                if !s.detach_reset {
                    g_s -= g_v_next * vth;
                }
            }
        }
        g_h += g_s * sg_ref(&s.surrogate, h - vth);
        let v_prev = vs[t] as f64;
        let x = xs[t] as f64;
        let (dx, dv, dk) = match (kind, s.decay_input) {
            (NeuronKind::If, _) => (1.0, 1.0, 0.0),
            (NeuronKind::Lif, true) => (1.0 / tau, 1.0 - 1.0 / tau, 0.0),
            (NeuronKind::Lif, false) => (1.0, 1.0 - 1.0 / tau, 0.0),
            (NeuronKind::Plif, true) => (k, 1.0 - k, x - (v_prev - vr)),
            (NeuronKind::Plif, false) => (1.0, 1.0 - k, -(v_prev - vr)),
        };
        gx[t] = g_h * dx;
        g_v_next = g_h * dv;
        gk += g_h * dk;
        gk_scale += (g_h * dk).abs();
    }
    let dsig = k * (1.0 - k);
    (gx, gk * dsig, gk_scale * dsig)
}

#[test]
fn bptt_matches_a_scalar_f64_reference_for_every_configuration() {
    // 3 * 1000 elements per step: several chunks and a ragged last one.
    let (t_len, n, c) = (6, 3, 1000);
    let numel = n * c;
    let mut rng = Rng::new(11);
    let x: Vec<f32> = (0..t_len * numel).map(|_| rng.uniform_range(-1.0, 3.0)).collect();
    // Biased so that the w gradient, a sum over 18000 terms, does not cancel to nothing.
    let gout: Vec<f32> = (0..t_len * numel).map(|_| rng.normal() + 0.3).collect();
    let shape = [t_len, n, c];
    for (kind, s) in configs() {
        let what = format!("{kind:?} {s:?}");
        let mut l = NeuronLayer::new("ref", kind, &s).unwrap();
        if kind == NeuronKind::Plif {
            // Away from the initial value, so a w-gradient wrongly taken at w = 0 would show.
            let mut ps = Vec::new();
            l.params(&mut ps);
            ps[0].value.data_mut()[0] = 0.3;
        }
        let w = if kind == NeuronKind::Plif { 0.3 } else { 0.0 };
        let input = Tensor::from_vec(&shape, x.clone()).unwrap();
        let mut out = Tensor::default();
        l.forward(&input, &mut out, true).unwrap();
        let g = Tensor::from_vec(&shape, gout.clone()).unwrap();
        let mut gin = Tensor::default();
        l.backward(&input, &out, &g, &mut gin).unwrap();
        let charges = l.charge_trace(&input).unwrap();
        let w_grad = {
            let mut ps = Vec::new();
            l.params(&mut ps);
            ps.first().map_or(0.0, |p| p.grad.data()[0] as f64)
        };

        let (mut gw_ref, mut gw_scale, mut spikes) = (0.0, 0.0, 0usize);
        let mut max_gx = 0.0f64;
        let mut refs = Vec::with_capacity(numel);
        for i in 0..numel {
            let xs: Vec<f32> = (0..t_len).map(|t| x[t * numel + i]).collect();
            let gs: Vec<f32> = (0..t_len).map(|t| gout[t * numel + i]).collect();
            let tape = ref_forward(kind, &s, w, &xs);
            for t in 0..t_len {
                assert_eq!(out.data()[t * numel + i], tape.1[t], "{what}: spike t={t} i={i}");
                assert_eq!(charges.data()[t * numel + i], tape.0[t], "{what}: H t={t} i={i}");
            }
            spikes += tape.1.iter().filter(|&&v| v == 1.0).count();
            let (gx, gw, scale) = ref_backward(kind, &s, w, &xs, &tape, &gs);
            gw_ref += gw;
            gw_scale += scale;
            max_gx = gx.iter().fold(max_gx, |m, v| m.max(v.abs()));
            refs.push(gx);
        }
        assert!(
            spikes > numel / 4 && spikes < t_len * numel * 3 / 4,
            "{what}: degenerate test, {spikes} spikes"
        );
        for (i, gx) in refs.iter().enumerate() {
            for (t, &want) in gx.iter().enumerate() {
                let got = gin.data()[t * numel + i] as f64;
                assert!(
                    (got - want).abs() <= 1e-4 * want.abs() + 1e-6 * max_gx,
                    "{what}: dL/dX t={t} i={i}: got {got}, want {want}"
                );
            }
        }
        assert!(
            (w_grad - gw_ref).abs() <= 1e-4 * gw_ref.abs() + 1e-6 * gw_scale,
            "{what}: dL/dw got {w_grad}, want {gw_ref}"
        );
        if kind == NeuronKind::Plif {
            assert!(gw_ref.abs() > 1e-3 * gw_scale, "{what}: w gradient too small to test");
        }
    }
}

// ---------------------------------------------------------------- smooth forward, finite differences

/// The neuron with the Heaviside replaced by the surrogate's primitive, in f64. With `frozen`,
/// the spike inside the reset is that constant instead (what `detach_reset` means), so finite
/// differences of this function are the detached gradient. Returns (loss, H, S).
#[allow(clippy::too_many_arguments)]
fn smooth_forward(
    kind: NeuronKind,
    s: &NeuronSpec,
    sg: &Surrogate,
    w: f64,
    x: &[f64],
    t_len: usize,
    c: &[f64],
    frozen: Option<&[f64]>,
) -> (f64, Vec<f64>, Vec<f64>) {
    let numel = x.len() / t_len;
    let k = 1.0 / (1.0 + (-w).exp());
    let tau = s.tau as f64;
    let vth = s.v_threshold as f64;
    let vr = s.v_reset.unwrap_or(0.0) as f64;
    let (mut hs, mut ss) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    let mut loss = 0.0;
    for i in 0..numel {
        let mut v = vr;
        for t in 0..t_len {
            let j = t * numel + i;
            let xi = x[j];
            let h = match (kind, s.decay_input) {
                (NeuronKind::If, _) => v + xi,
                (NeuronKind::Lif, true) => v + (xi - (v - vr)) / tau,
                (NeuronKind::Lif, false) => v - (v - vr) / tau + xi,
                (NeuronKind::Plif, true) => v + (xi - (v - vr)) * k,
                (NeuronKind::Plif, false) => v - (v - vr) * k + xi,
            };
            let spike = sg.primitive(h - vth);
            let r = frozen.map_or(spike, |f| f[j]);
            v = match s.v_reset {
                Some(_) => (1.0 - r) * h + r * vr,
                None => h - r * vth,
            };
            hs[j] = h;
            ss[j] = spike;
            loss += c[j] * spike;
        }
    }
    (loss, hs, ss)
}

#[test]
fn bptt_is_the_exact_gradient_of_the_smoothed_neuron() {
    let (t_len, numel) = (8, 4);
    let mut rng = Rng::new(5);
    for (kind, s) in configs() {
        let what = format!("{kind:?} {s:?}");
        let l = NeuronLayer::new("fd", kind, &s).unwrap();
        let sg = l.surrogate();
        let w = if kind == NeuronKind::Plif { -0.2f32 } else { 0.0 };
        let mut l = l;
        if kind == NeuronKind::Plif {
            let mut ps = Vec::new();
            l.params(&mut ps);
            ps[0].value.data_mut()[0] = w;
        }
        let d = l.dynamics();
        // Inputs near the threshold region so the surrogate's slope is not negligible, even
        // for SuperSpike's narrow one.
        let x: Vec<f64> = (0..t_len * numel).map(|_| rng.uniform_range(0.0, 1.6) as f64).collect();
        let c: Vec<f64> = (0..t_len * numel).map(|_| rng.normal() as f64).collect();
        let (_, h, sp) = smooth_forward(kind, &s, &sg, w as f64, &x, t_len, &c, None);
        let frozen = s.detach_reset.then_some(sp.as_slice());
        let f32s = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        let mut gin = vec![0.0f32; x.len()];
        let gw = kernel::backward_given(
            &d,
            sg,
            &f32s(&x),
            &f32s(&h),
            &f32s(&sp),
            &f32s(&c),
            t_len,
            &mut gin,
        );

        let loss = |x: &[f64], w: f64| smooth_forward(kind, &s, &sg, w, x, t_len, &c, frozen).0;
        let eps = 1e-6;
        let mut fds = Vec::new();
        for j in 0..x.len() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[j] += eps;
            xm[j] -= eps;
            fds.push((loss(&xp, w as f64) - loss(&xm, w as f64)) / (2.0 * eps));
        }
        let scale = fds.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(scale > 1e-3, "{what}: gradients vanish, test is void");
        for (j, fd) in fds.iter().enumerate() {
            let got = gin[j] as f64;
            assert!(
                (got - fd).abs() <= 1e-3 * fd.abs() + 1e-4 * scale,
                "{what}: dL/dX[{j}] BPTT {got} vs finite difference {fd}"
            );
        }
        if kind == NeuronKind::Plif {
            let fd = (loss(&x, w as f64 + eps) - loss(&x, w as f64 - eps)) / (2.0 * eps);
            assert!(fd.abs() > 1e-4, "{what}: w gradient vanishes, test is void");
            assert!(
                (gw - fd).abs() <= 1e-3 * fd.abs() + 1e-5,
                "{what}: dL/dw BPTT {gw} vs finite difference {fd}"
            );
        } else {
            assert_eq!(gw, 0.0);
        }
    }
}

// ---------------------------------------------------------------- contract, determinism, errors

#[test]
fn backward_overwrites_grad_input_and_accumulates_w_grad() {
    let s = spec(2.0, true, Some(0.0), false, SurrogateSpec::Sigmoid { alpha: 4.0 });
    let mut l = NeuronLayer::new("p", NeuronKind::Plif, &s).unwrap();
    let mut rng = Rng::new(3);
    let shape = [5, 2, 7];
    let x =
        Tensor::from_vec(&shape, (0..70).map(|_| rng.uniform_range(-0.5, 2.5)).collect()).unwrap();
    let g = Tensor::from_vec(&shape, (0..70).map(|_| rng.normal()).collect()).unwrap();
    let mut out = Tensor::default();
    l.forward(&x, &mut out, true).unwrap();
    let mut gin = Tensor::full(&[3], f32::NAN);
    l.backward(&x, &out, &g, &mut gin).unwrap();
    assert_eq!(gin.shape(), &shape);
    assert!(gin.data().iter().all(|v| v.is_finite()));
    let first_gin = gin.clone();
    let grad_of = |l: &mut NeuronLayer| {
        let mut ps = Vec::new();
        l.params(&mut ps);
        ps[0].grad.data()[0]
    };
    let g1 = grad_of(&mut l);
    assert!(g1 != 0.0);
    gin.fill(f32::NAN);
    l.backward(&x, &out, &g, &mut gin).unwrap();
    assert_eq!(gin, first_gin);
    assert_eq!(grad_of(&mut l), 2.0 * g1);
}

#[test]
fn results_are_bitwise_identical_across_runs_and_thread_counts() {
    let s = spec(2.0, true, Some(0.0), false, SurrogateSpec::Atan { alpha: 2.0 });
    let shape = [4, 8, 20_000];
    let total: usize = shape.iter().product();
    let mut rng = Rng::new(9);
    let x = Tensor::from_vec(&shape, (0..total).map(|_| rng.uniform_range(-1.0, 3.0)).collect())
        .unwrap();
    let g = Tensor::from_vec(&shape, (0..total).map(|_| rng.normal()).collect()).unwrap();
    let once = || {
        let mut l = NeuronLayer::new("p", NeuronKind::Plif, &s).unwrap();
        let (mut out, mut gin) = (Tensor::default(), Tensor::default());
        l.forward(&x, &mut out, true).unwrap();
        l.backward(&x, &out, &g, &mut gin).unwrap();
        let mut ps = Vec::new();
        l.params(&mut ps);
        (out, gin, ps[0].grad.data()[0].to_bits(), l.firing_rate())
    };
    let base = once();
    assert_eq!(base, once());
    for threads in [1, 3] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        assert_eq!(base, pool.install(once), "{threads} threads");
    }
}

#[test]
fn spec_errors_name_the_layer() {
    let bad = |kind, s: NeuronSpec| {
        let e = NeuronLayer::new("layers.7", kind, &s).err().expect("must fail");
        assert_eq!(e.code(), "ERR_SPEC", "{e}");
        assert!(e.to_string().contains("layers.7"), "{e}");
    };
    let d = NeuronSpec::default();
    for tau in [1.0, 0.5, -2.0, f32::NAN, f32::INFINITY] {
        bad(NeuronKind::Lif, NeuronSpec { tau, ..d.clone() });
        bad(NeuronKind::Plif, NeuronSpec { tau, ..d.clone() });
    }
    bad(NeuronKind::If, NeuronSpec { v_threshold: f32::NAN, ..d.clone() });
    bad(NeuronKind::If, NeuronSpec { v_reset: Some(f32::INFINITY), ..d.clone() });
    bad(
        NeuronKind::Lif,
        NeuronSpec { surrogate: SurrogateSpec::Sigmoid { alpha: 0.0 }, ..d.clone() },
    );
    // IF has no time constant, so its tau is not checked.
    assert!(NeuronLayer::new("ok", NeuronKind::If, &NeuronSpec { tau: 0.5, ..d }).is_ok());
}

#[test]
fn shape_and_state_errors_name_the_layer() {
    let mut l = NeuronLayer::new("layers.2", NeuronKind::Lif, &NeuronSpec::default()).unwrap();
    assert_eq!(l.name(), "layers.2 (lif)");
    let e = l.output_shape(&[5]).unwrap_err();
    assert_eq!(e.code(), "ERR_SHAPE");
    assert!(e.to_string().contains("layers.2"));
    assert_eq!(l.output_shape(&[4, 2, 3, 5, 5]).unwrap(), vec![4, 2, 3, 5, 5]);

    let x = Tensor::zeros(&[6]);
    let mut out = Tensor::default();
    let e = l.forward(&x, &mut out, true).unwrap_err();
    assert!(e.to_string().contains("layers.2") && e.code() == "ERR_SHAPE", "{e}");

    let x = Tensor::full(&[2, 3], 0.7);
    let mut gin = Tensor::default();
    let e = l.backward(&x, &x, &x, &mut gin).unwrap_err();
    assert!(e.to_string().contains("layers.2") && e.code() == "ERR_STATE", "{e}");

    l.forward(&x, &mut out, false).unwrap();
    assert_eq!(l.backward(&x, &out, &x, &mut gin).unwrap_err().code(), "ERR_STATE");

    l.forward(&x, &mut out, true).unwrap();
    let wrong = Tensor::zeros(&[3, 2]);
    let e = l.backward(&x, &out, &wrong, &mut gin).unwrap_err();
    assert!(e.to_string().contains("layers.2") && e.code() == "ERR_SHAPE", "{e}");
    l.backward(&x, &out, &x, &mut gin).unwrap();
}

#[test]
fn non_finite_plif_weight_is_reported_by_name() {
    let mut l = NeuronLayer::new("layers.9", NeuronKind::Plif, &NeuronSpec::default()).unwrap();
    {
        let mut ps = Vec::new();
        l.params(&mut ps);
        ps[0].value.data_mut()[0] = f32::NAN;
    }
    let x = Tensor::zeros(&[2, 1]);
    let e = l.forward(&x, &mut Tensor::default(), true).unwrap_err();
    assert_eq!(e.code(), "ERR_NON_FINITE");
    assert!(e.to_string().contains("layers.9.w"), "{e}");
}

#[test]
fn empty_batches_are_fine() {
    let mut l = NeuronLayer::new("n", NeuronKind::Lif, &NeuronSpec::default()).unwrap();
    let x = Tensor::zeros(&[4, 0, 3]);
    let mut out = Tensor::default();
    l.forward(&x, &mut out, true).unwrap();
    assert_eq!(out.shape(), &[4, 0, 3]);
    let mut gin = Tensor::default();
    l.backward(&x, &out, &x, &mut gin).unwrap();
    assert_eq!(gin.shape(), &[4, 0, 3]);
    assert_eq!(l.firing_rate(), Some(0.0));
}

/// Throughput check, run by hand: `cargo test --release -p dualstream-core neuron_throughput -- --ignored --nocapture`.
#[test]
#[ignore]
fn neuron_throughput() {
    let shape = [16, 32, 64, 32, 32];
    let total: usize = shape.iter().product();
    let mut rng = Rng::new(1);
    let x = Tensor::from_vec(&shape, (0..total).map(|_| rng.uniform_range(-1.0, 3.0)).collect())
        .unwrap();
    let g = Tensor::from_vec(&shape, (0..total).map(|_| rng.normal()).collect()).unwrap();
    // A plain parallel copy of the same size, to read the numbers below against the machine.
    let mut y = vec![0.0f32; total];
    let t0 = std::time::Instant::now();
    for _ in 0..5 {
        use rayon::prelude::*;
        y.par_chunks_mut(1 << 16)
            .zip(x.data().par_chunks(1 << 16))
            .for_each(|(a, b)| a.copy_from_slice(b));
    }
    let copy = t0.elapsed().as_secs_f64() / 5.0;
    eprintln!("copy baseline: {:.1} ms ({:.2} ns/elem)", copy * 1e3, copy * 1e9 / total as f64);
    for (kind, sg) in [
        (NeuronKind::If, SurrogateSpec::Atan { alpha: 2.0 }),
        (NeuronKind::Lif, SurrogateSpec::Atan { alpha: 2.0 }),
        (NeuronKind::Plif, SurrogateSpec::Atan { alpha: 2.0 }),
        (NeuronKind::Plif, SurrogateSpec::Sigmoid { alpha: 4.0 }),
    ] {
        let s = NeuronSpec { surrogate: sg, ..NeuronSpec::default() };
        let mut l = NeuronLayer::new("b", kind, &s).unwrap();
        let (mut out, mut gin) = (Tensor::default(), Tensor::default());
        l.forward(&x, &mut out, true).unwrap();
        l.backward(&x, &out, &g, &mut gin).unwrap();
        let reps = 5;
        let t0 = std::time::Instant::now();
        for _ in 0..reps {
            l.forward(&x, &mut out, true).unwrap();
        }
        let fwd = t0.elapsed().as_secs_f64() / reps as f64;
        let t0 = std::time::Instant::now();
        for _ in 0..reps {
            l.forward(&x, &mut out, false).unwrap();
        }
        let inf = t0.elapsed().as_secs_f64() / reps as f64;
        eprintln!("  inference forward {:.2} ns/elem", inf * 1e9 / total as f64);
        l.forward(&x, &mut out, true).unwrap();
        let t0 = std::time::Instant::now();
        for _ in 0..reps {
            l.backward(&x, &out, &g, &mut gin).unwrap();
        }
        let bwd = t0.elapsed().as_secs_f64() / reps as f64;
        eprintln!(
            "{kind:?} {sg:?}: {total} elements, forward {:.1} ms ({:.2} ns/elem), backward {:.1} ms ({:.2} ns/elem)",
            fwd * 1e3,
            fwd * 1e9 / total as f64,
            bwd * 1e3,
            bwd * 1e9 / total as f64
        );
    }
}

#[test]
#[ignore]
fn neuron_in_cache_compute() {
    use dualstream_core::neuron::kernel;
    let (t_len, numel) = (8, 1024);
    let mut rng = Rng::new(1);
    let x: Vec<f32> = (0..t_len * numel).map(|_| rng.uniform_range(-1.0, 3.0)).collect();
    let g: Vec<f32> = (0..t_len * numel).map(|_| rng.normal()).collect();
    for kind in [NeuronKind::If, NeuronKind::Lif, NeuronKind::Plif] {
        let l = NeuronLayer::new("b", kind, &NeuronSpec::default()).unwrap();
        let d = l.dynamics();
        let (mut out, mut gin) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        let reps = 20000;
        let t0 = std::time::Instant::now();
        for _ in 0..reps {
            kernel::forward(&d, &x, t_len, &mut out);
        }
        let f = t0.elapsed().as_secs_f64() * 1e9 / (reps * x.len()) as f64;
        let t0 = std::time::Instant::now();
        for _ in 0..reps {
            kernel::backward(&d, l.surrogate(), &x, &g, t_len, &mut gin);
        }
        let b = t0.elapsed().as_secs_f64() * 1e9 / (reps * x.len()) as f64;
        eprintln!("{kind:?}: in-cache forward {f:.3} ns/elem, backward {b:.3} ns/elem");
    }
}
