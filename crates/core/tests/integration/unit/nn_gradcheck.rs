//! Finite-difference gradient checks shared by the layer tests.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `nn` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::nn::*;
    pub use dualstream_core::rng::Rng;
}
use dualstream_core::layer::Layer;
use dualstream_core::layer::Walk;
use dualstream_core::rng::Rng;
use dualstream_core::tensor::Tensor;

pub(crate) fn random_tensor(rng: &mut Rng, shape: &[usize]) -> Tensor {
    let n = dualstream_core::tensor::numel(shape);
    Tensor::from_vec(shape, (0..n).map(|_| rng.normal()).collect()).unwrap()
}

/// `sum(layer(x) * g)` in f64, on a fresh clone so that every evaluation starts from the same
/// state (same dropout stream, same running statistics).
fn loss<L: Layer + Clone>(layer: &L, x: &Tensor, g: &Tensor) -> f64 {
    let mut l = layer.clone();
    let mut out = Tensor::default();
    l.forward(x, &mut out, true).unwrap();
    out.data().iter().zip(g.data()).map(|(&o, &w)| o as f64 * w as f64).sum()
}

fn compare(what: &str, analytic: f64, numeric: f64, atol: f64, rtol: f64) {
    assert!(
        (analytic - numeric).abs() <= atol + rtol * numeric.abs(),
        "{what}: analytic {analytic}, numeric {numeric}"
    );
}

/// Checks the input gradient and every parameter gradient of a training-mode layer by central
/// differences on `loss = sum(output * grad_output)` with a random `grad_output`. Also checks
/// that `backward` adds into parameter gradients (they start at 0.5) and overwrites
/// `grad_input` (it starts as NaN).
pub(crate) fn check_gradients<L: Layer + Clone>(
    layer: &L,
    input: &Tensor,
    seed: u64,
    eps: f32,
    atol: f64,
    rtol: f64,
) {
    let mut rng = Rng::new(seed);
    let mut l = layer.clone();
    let mut out = Tensor::default();
    l.forward(input, &mut out, true).unwrap();
    let gout = random_tensor(&mut rng, out.shape());
    {
        let mut ps = Vec::new();
        l.params(&mut ps);
        for p in ps {
            p.grad.fill(0.5);
        }
    }
    let mut gin = Tensor::full(input.shape(), f32::NAN);
    l.backward(input, &out, &gout, &mut gin).unwrap();
    assert_eq!(gin.shape(), input.shape(), "grad_input shape");

    for i in 0..input.numel() {
        let mut xp = input.clone();
        xp.data_mut()[i] += eps;
        let mut xm = input.clone();
        xm.data_mut()[i] -= eps;
        let numeric = (loss(layer, &xp, &gout) - loss(layer, &xm, &gout)) / (2.0 * eps as f64);
        compare(&format!("{} input[{i}]", layer.name()), gin.data()[i] as f64, numeric, atol, rtol);
    }

    let mut analytic: Vec<(String, Vec<f32>)> = Vec::new();
    {
        let mut ps = Vec::new();
        l.params(&mut ps);
        for p in ps {
            analytic.push((p.name.clone(), p.grad.data().iter().map(|g| g - 0.5).collect()));
        }
    }
    for (pi, (pname, grads)) in analytic.iter().enumerate() {
        for (j, &a) in grads.iter().enumerate() {
            let perturbed = |delta: f32| {
                let mut lp = layer.clone();
                {
                    let mut ps = Vec::new();
                    lp.params(&mut ps);
                    ps.into_iter().nth(pi).unwrap().value.data_mut()[j] += delta;
                }
                loss(&lp, input, &gout)
            };
            let numeric = (perturbed(eps) - perturbed(-eps)) / (2.0 * eps as f64);
            compare(&format!("{pname}[{j}]"), a as f64, numeric, atol, rtol);
        }
    }
}
