//! Tests of `dualstream_core::neuron::surrogate`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `neuron::surrogate` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::neuron::surrogate::*;
    pub use dualstream_core::spec::SurrogateSpec;
    pub use std::f32::consts::PI;
}
fn all(alpha_scale: f32) -> Vec<Surrogate> {
    vec![
        Surrogate::Sigmoid { alpha: 4.0 * alpha_scale },
        Surrogate::Atan { alpha: 2.0 * alpha_scale },
        Surrogate::PiecewiseQuadratic { alpha: 1.0 * alpha_scale },
        Surrogate::SuperSpike { alpha: 100.0 * alpha_scale },
        Surrogate::Erf { alpha: 2.0 * alpha_scale },
        Surrogate::SoftSign { alpha: 2.0 * alpha_scale },
        Surrogate::PiecewiseExp { alpha: 1.0 * alpha_scale },
        Surrogate::PiecewiseLeakyRelu { w: 0.8 / alpha_scale, c: 0.01 },
    ]
}

/// Sigmoid's `(1 - s) s alpha` is evaluated in f32 like SpikingJelly does, so in the tails,
/// where `1 - s` cancels, it is only accurate to a few ulps of `s` times alpha.
fn f32_floor(sg: &Surrogate) -> f64 {
    match sg {
        Surrogate::Sigmoid { alpha } => *alpha as f64 * 2.5e-7,
        _ => 1e-9,
    }
}

const POINTS: [f32; 12] =
    [-2.5, -0.9, -0.37, -0.11, -0.004, 0.0, 0.003, 0.05, 0.26, 0.61, 0.93, 3.0];

#[test]
fn grad_is_the_derivative_of_the_primitive() {
    for scale in [1.0f32, 0.5, 1.7] {
        for sg in all(scale) {
            for &x in &POINTS {
                let xd = x as f64;
                if let Surrogate::PiecewiseQuadratic { alpha } = sg {
                    // The primitive has kinks at +-1/alpha and 0 where FD is not the derivative.
                    let k = 1.0 / alpha as f64;
                    if (xd.abs() - k).abs() < 1e-3 || xd == 0.0 {
                        continue;
                    }
                }
                if let Surrogate::SuperSpike { .. }
                | Surrogate::SoftSign { .. }
                | Surrogate::PiecewiseExp { .. } = sg
                {
                    if xd == 0.0 {
                        continue;
                    }
                }
                if let Surrogate::PiecewiseLeakyRelu { w, .. } = sg {
                    if (xd.abs() - w as f64).abs() < 1e-3 {
                        continue;
                    }
                }
                // Step small relative to the surrogate's width (SuperSpike is 1/alpha wide).
                let eps = 1e-4 / sg.alpha() as f64;
                let fd = (sg.primitive(xd + eps) - sg.primitive(xd - eps)) / (2.0 * eps);
                let g = sg.grad(x) as f64;
                assert!(
                    (g - fd).abs() <= 1e-4 * fd.abs() + f32_floor(&sg),
                    "{sg:?} at {x}: grad {g} vs finite difference {fd}"
                );
            }
        }
    }
}

#[test]
fn grad_matches_the_spec_formulas() {
    use std::f64::consts::PI;
    for &x in &POINTS {
        let xd = x as f64;
        let a = 4.0;
        let s = 1.0 / (1.0 + (-a * xd).exp());
        let want = a * s * (1.0 - s);
        let sg = Surrogate::Sigmoid { alpha: 4.0 };
        let got = sg.grad(x) as f64;
        assert!((got - want).abs() <= 1e-6 * want + f32_floor(&sg), "sigmoid {x}: {got} vs {want}");

        let a = 2.0;
        let want = (a / 2.0) / (1.0 + (PI / 2.0 * a * xd).powi(2));
        let got = Surrogate::Atan { alpha: 2.0 }.grad(x) as f64;
        assert!((got - want).abs() <= 1e-6 * want, "atan {x}: {got} vs {want}");

        let a = 1.0;
        let want = (a - a * a * xd.abs()).max(0.0);
        let got = Surrogate::PiecewiseQuadratic { alpha: 1.0 }.grad(x) as f64;
        assert!((got - want).abs() <= 1e-6, "pq {x}: {got} vs {want}");

        let a = 100.0;
        let want = 1.0 / (a * xd.abs() + 1.0).powi(2);
        let got = Surrogate::SuperSpike { alpha: 100.0 }.grad(x) as f64;
        assert!((got - want).abs() <= 1e-6 * want, "superspike {x}: {got} vs {want}");
    }
    // Values a reader can check by hand.
    assert_eq!(Surrogate::Sigmoid { alpha: 4.0 }.grad(0.0), 1.0);
    assert_eq!(Surrogate::Atan { alpha: 2.0 }.grad(0.0), 1.0);
    assert_eq!(Surrogate::PiecewiseQuadratic { alpha: 1.0 }.grad(0.5), 0.5);
    assert_eq!(Surrogate::PiecewiseQuadratic { alpha: 1.0 }.grad(-1.5), 0.0);
    assert_eq!(Surrogate::SuperSpike { alpha: 100.0 }.grad(0.01), 0.25);
    let far = Surrogate::Sigmoid { alpha: 4.0 }.grad(-1e4);
    assert_eq!(far, 0.0, "saturated sigmoid must give 0, not NaN");
}

#[test]
fn heaviside_fires_at_zero_and_above() {
    assert_eq!(Surrogate::heaviside(0.0), 1.0);
    assert_eq!(Surrogate::heaviside(1e-30), 1.0);
    assert_eq!(Surrogate::heaviside(-1e-30), 0.0);
    assert_eq!(Surrogate::heaviside(-3.0), 0.0);
}

#[test]
fn spec_alpha_is_validated_and_errors_name_the_layer() {
    for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let e = Surrogate::from_spec("layers.4", &SurrogateSpec::Atan { alpha: bad }).unwrap_err();
        assert_eq!(e.code(), "ERR_SPEC");
        assert!(e.to_string().contains("layers.4"), "{e}");
    }
    let s = Surrogate::from_spec("x", &SurrogateSpec::SuperSpike { alpha: 100.0 }).unwrap();
    assert_eq!(s, Surrogate::SuperSpike { alpha: 100.0 });
    assert_eq!(
        Surrogate::from_spec("x", &SurrogateSpec::default()).unwrap(),
        Surrogate::Atan { alpha: 2.0 }
    );
}

#[test]
fn vectorisable_exp_is_within_one_ulp_of_the_exact_value() {
    // Every 2^-12 over the range where e^x is a normal f32, and the ends.
    let (lo, hi) = (-87.33f32, 88.37f32);
    let steps = ((hi - lo) * 4096.0) as usize;
    let mut worst = 0.0f64;
    for i in 0..=steps {
        let x = lo + i as f32 / 4096.0;
        let want = (x as f64).exp();
        let got = exp_lanes(x) as f64;
        let ulp = f32::EPSILON as f64 * (want as f32) as f64;
        worst = worst.max((got - want).abs() / ulp);
    }
    assert!(worst <= 1.0, "worst error {worst} ulp");
    assert_eq!(exp_lanes(0.0), 1.0);
    assert_eq!(exp_lanes(89.0), f32::INFINITY);
    assert_eq!(exp_lanes(f32::INFINITY), f32::INFINITY);
    assert!(exp_lanes(f32::NAN).is_nan());
    // Below the normal range it stops at about the smallest normal value instead of going
    // through the subnormals to 0.
    let tiny = exp_lanes(-1e4);
    assert!(tiny > 0.0 && tiny <= 1.2e-38, "{tiny}");
}

#[test]
fn sigmoid_grad_stays_within_rounding_of_the_library_exp() {
    // The same formula on the library's expf: the vectorisable exp moves it by a few ulps of
    // `s`, hence by at most about alpha * 2^-22 in the tails where `1 - s` cancels.
    for alpha in [1.0f32, 4.0, 10.0] {
        let sg = Surrogate::Sigmoid { alpha };
        for i in -40_000..=40_000 {
            let x = i as f32 * 5e-4;
            let s = 1.0 / (1.0 + (-alpha * x).exp());
            let want = (1.0 - s) * s * alpha;
            let got = sg.grad(x);
            let bound = 4.0 * f32::EPSILON * want + alpha * 2.5e-7;
            assert!((got - want).abs() <= bound, "alpha {alpha} at {x}: {got} vs {want}");
        }
    }
}
