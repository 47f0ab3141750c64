//! Tests of `dualstream_core::nn::conv2d`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `nn::conv2d` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::error::Error;
    pub use dualstream_core::kernels::spike_conv::ConvPath;
    pub use dualstream_core::layer::{Layer, Visitor, VisitorMut};
    pub use dualstream_core::nn::conv2d::*;
    pub use dualstream_core::rng::Rng;
    pub use dualstream_core::spec::Conv2dSpec;
    pub use dualstream_core::tensor::Tensor;
}
use crate::unit::nn_gradcheck::{check_gradients, random_tensor};
use dualstream_core::layer::Walk;

fn spec(cin: usize, cout: usize, k: usize) -> Conv2dSpec {
    Conv2dSpec {
        in_channels: cin,
        out_channels: cout,
        kernel_size: [k, k],
        stride: [1, 1],
        padding: [0, 0],
        dilation: [1, 1],
        groups: 1,
        bias: true,
    }
}

#[test]
fn gradients_match_finite_differences_for_all_hyper_parameters() {
    let cases = [
        ("plain+bias", spec(2, 3, 3), 5, 5),
        ("stride2 pad1", Conv2dSpec { stride: [2, 2], padding: [1, 1], ..spec(2, 3, 3) }, 6, 5),
        (
            "dilation2 pad2 nobias",
            Conv2dSpec { dilation: [2, 2], padding: [2, 1], bias: false, ..spec(2, 2, 3) },
            5,
            6,
        ),
        ("groups2", Conv2dSpec { groups: 2, padding: [1, 1], ..spec(4, 6, 3) }, 4, 4),
        (
            "depthwise s2 nobias",
            Conv2dSpec { groups: 3, stride: [2, 2], padding: [1, 1], bias: false, ..spec(3, 3, 3) },
            5,
            5,
        ),
        ("pointwise", spec(3, 2, 1), 3, 4),
        ("rect kernel", Conv2dSpec { kernel_size: [2, 3], stride: [1, 2], ..spec(2, 2, 1) }, 4, 5),
    ];
    for (i, (what, s, h, w)) in cases.iter().enumerate() {
        let mut rng = Rng::new(100 + i as u64);
        let conv = Conv2d::new(&format!("layers.{i}"), s, &mut rng).unwrap();
        let x = random_tensor(&mut rng, &[2, 2, s.in_channels, *h, *w]);
        eprintln!("conv case {what}");
        check_gradients(&conv, &x, 7 + i as u64, 1e-2, 2e-3, 2e-3);
    }
}

/// `[T, ...]` repeating one random step.
fn repeated_input(rng: &mut Rng, t_len: usize, step: &[usize]) -> Tensor {
    let one = random_tensor(rng, step);
    let data = (0..t_len).flat_map(|_| one.data().iter().copied()).collect();
    Tensor::from_vec(&[&[t_len][..], step].concat(), data).unwrap()
}

/// A padded 3x3 stem `c_in -> c_out` and an input repeating one `step` over `t_len` steps.
fn stem_on_repeated_input(
    seed: u64,
    c_in: usize,
    c_out: usize,
    t_len: usize,
    step: &[usize],
) -> (Rng, Conv2d, Tensor) {
    let mut rng = Rng::new(seed);
    let s = Conv2dSpec { padding: [1, 1], ..spec(c_in, c_out, 3) };
    let conv = Conv2d::new("stem", &s, &mut rng).unwrap();
    let x = repeated_input(&mut rng, t_len, step);
    (rng, conv, x)
}

#[test]
fn a_repeated_input_is_convolved_once_with_the_same_results() {
    // The second map's step output (2 x 5 x 90 x 80) is longer than the pieces the copy to
    // the other steps runs in, and not a multiple of them.
    for (seed, (h, w)) in [(6usize, 7usize), (90, 80)].into_iter().enumerate() {
        let (mut rng, conv, x) = stem_on_repeated_input(21 + seed as u64, 3, 5, 3, &[2, 3, h, w]);
        let mut fast = conv.clone();
        let mut y = Tensor::default();
        fast.forward(&x, &mut y, true).unwrap();
        assert!(fast.repeated);
        let gy = random_tensor(&mut rng, y.shape());
        let mut gx = Tensor::default();
        fast.backward(&x, &y, &gy, &mut gx).unwrap();
        // Reference: each step on its own (T = 1 never counts as repeated), gradients added up.
        let mut plain = conv.clone();
        let (step_in, step_out) = (x.numel() / 3, y.numel() / 3);
        for t in 0..3 {
            let xt =
                Tensor::from_vec(&[1, 2, 3, h, w], x.data()[t * step_in..][..step_in].to_vec())
                    .unwrap();
            let gyt =
                Tensor::from_vec(&[1, 2, 5, h, w], gy.data()[t * step_out..][..step_out].to_vec())
                    .unwrap();
            let (mut yt, mut gxt) = (Tensor::default(), Tensor::default());
            plain.forward(&xt, &mut yt, true).unwrap();
            assert!(!plain.repeated);
            assert_eq!(yt.data(), &y.data()[t * step_out..][..step_out], "{h}x{w} step {t} output");
            plain.backward(&xt, &yt, &gyt, &mut gxt).unwrap();
            assert_eq!(
                gxt.data(),
                &gx.data()[t * step_in..][..step_in],
                "{h}x{w} step {t} input gradient"
            );
        }
        let close = |a: &Tensor, b: &Tensor, what: &str| {
            for (u, v) in a.data().iter().zip(b.data()) {
                assert!((u - v).abs() <= 1e-5 * v.abs().max(1.0), "{h}x{w} {what}: {u} vs {v}");
            }
        };
        close(&fast.weight.grad, &plain.weight.grad, "weight gradient");
        close(
            &fast.bias.as_ref().unwrap().grad,
            &plain.bias.as_ref().unwrap().grad,
            "bias gradient",
        );
    }
}

#[test]
fn an_input_repeats_one_step_only_where_every_step_has_its_bits() {
    // Step sizes around the comparison block (64 values) and its remainder.
    for step in [1, 63, 64, 65, 130] {
        let mut rng = Rng::new(step as u64);
        let one: Vec<f32> = (0..step).map(|_| rng.normal()).collect();
        let steps = |t: usize| Tensor::from_vec(&[t, step], one.repeat(t)).unwrap();
        assert!(repeats_one_step(&steps(4)), "{step}");
        assert!(!repeats_one_step(&steps(1)), "one step does not repeat");
        for at in [0, step / 2, step - 1] {
            let mut x = steps(3);
            x.data_mut()[2 * step + at] = 0.5;
            assert!(!repeats_one_step(&x), "a changed value at {at} of step {step}");
            // 0.0 == -0.0, but a zero of the other sign is not the same input.
            let mut zeros = one.clone();
            zeros[at] = 0.0;
            let mut x = Tensor::from_vec(&[3, step], zeros.repeat(3)).unwrap();
            assert!(repeats_one_step(&x), "zeros at {at} of step {step}");
            x.data_mut()[step + at] = -0.0;
            assert!(!repeats_one_step(&x), "a signed zero at {at} of step {step}");
        }
        // Same bits, NaN included, repeat.
        let mut nan = one.clone();
        nan[step - 1] = f32::NAN;
        let x = Tensor::from_vec(&[3, step], nan.repeat(3)).unwrap();
        assert!(repeats_one_step(&x), "NaN at the end of step {step}");
    }
}

#[test]
fn repeated_input_gradients_match_finite_differences() {
    let (_, conv, x) = stem_on_repeated_input(22, 2, 3, 4, &[2, 2, 5, 5]);
    check_gradients(&conv, &x, 23, 1e-2, 2e-3, 2e-3);
}

#[test]
fn init_follows_pytorch_bounds_and_param_names() {
    let mut rng = Rng::new(1);
    let mut c =
        Conv2d::new("layers.3", &Conv2dSpec { groups: 2, ..spec(4, 8, 3) }, &mut rng).unwrap();
    let bound = 1.0 / ((2 * 9) as f32).sqrt();
    assert_eq!(c.weight().value.shape(), &[8, 2, 3, 3]);
    assert!(c.weight().value.data().iter().all(|v| v.abs() <= bound));
    let max = c.weight().value.data().iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(max > 0.8 * bound, "weights should fill the range");
    assert!(c.bias().unwrap().value.data().iter().all(|v| v.abs() <= bound));
    let mut ps = Vec::new();
    c.params(&mut ps);
    let names: Vec<_> = ps.iter().map(|p| (p.name.clone(), p.decay)).collect();
    assert_eq!(
        names,
        vec![("layers.3.weight".to_string(), true), ("layers.3.bias".to_string(), false)]
    );
}

#[test]
fn bad_inputs_and_specs_are_reported_with_the_layer_name() {
    let mut rng = Rng::new(1);
    let mut c = Conv2d::new("layers.3", &spec(32, 8, 3), &mut rng).unwrap();
    let mut out = Tensor::default();
    let err = c.forward(&Tensor::zeros(&[2, 4, 16, 8, 8]), &mut out, true).unwrap_err();
    assert_eq!(err.code(), "ERR_SHAPE");
    assert_eq!(
        err.to_string(),
        "layers.3 (conv2d): expected shape [T, N, 32, H, W], got [2, 4, 16, 8, 8]"
    );
    let err = c.output_shape(&[2, 32, 8, 8]).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }) && err.to_string().contains("layers.3 (conv2d)"));
    let err = c.output_shape(&[1, 1, 32, 2, 8]).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }) && err.to_string().contains("layers.3"));
    assert_eq!(c.output_shape(&[4, 2, 32, 8, 9]).unwrap(), vec![4, 2, 8, 6, 7]);

    let err =
        Conv2d::new("layers.1", &Conv2dSpec { groups: 3, ..spec(4, 6, 3) }, &mut rng).unwrap_err();
    assert!(
        matches!(err, Error::Spec { .. }) && err.to_string().contains("layers.1 (conv2d)"),
        "{err}"
    );
    let err = Conv2d::new("layers.1", &spec(4, 6, 0), &mut rng).unwrap_err();
    assert!(matches!(err, Error::Spec { .. }) && err.to_string().contains("layers.1"));
}

#[test]
fn dispatch_takes_events_for_sparse_spikes_and_dense_otherwise() {
    let mut rng = Rng::new(12);
    let s = Conv2dSpec { padding: [1, 1], ..spec(16, 16, 3) };
    let mut conv = Conv2d::new("c", &s, &mut rng).unwrap();
    let shape = [2, 3, 16, 9, 9];
    let n = dualstream_core::tensor::numel(&shape);
    let spikes = |rng: &mut Rng, d: f32| Tensor::from_vec(&shape, rng.spikes(n, d)).unwrap();
    let cases = [
        (spikes(&mut rng, 0.05), [ConvPath::Events, ConvPath::Events]),
        (spikes(&mut rng, 0.9), [ConvPath::Dense, ConvPath::Dense]),
        // After a dense step the input is measured first; the weight gradient's crossover
        // is higher, and it decides from what the forward measured.
        (spikes(&mut rng, 0.3), [ConvPath::Dense, ConvPath::Events]),
        (spikes(&mut rng, 0.05), [ConvPath::Events, ConvPath::Events]),
        (spikes(&mut rng, 0.3), [ConvPath::Dense, ConvPath::Events]),
        (random_tensor(&mut rng, &shape), [ConvPath::Dense, ConvPath::Dense]),
        (spikes(&mut rng, 0.05), [ConvPath::Events, ConvPath::Events]),
    ];
    for (x, want) in cases {
        let mut out = Tensor::default();
        conv.forward(&x, &mut out, true).unwrap();
        let gy = random_tensor(&mut rng, out.shape());
        let mut gin = Tensor::default();
        conv.backward(&x, &out, &gy, &mut gin).unwrap();
        assert_eq!(conv.last_paths(), want.map(Some));
    }
}

#[test]
fn backward_twice_gives_bit_identical_weight_gradients() {
    let mut rng = Rng::new(9);
    let s = Conv2dSpec { stride: [2, 2], padding: [1, 1], ..spec(8, 16, 3) };
    let mut conv = Conv2d::new("c", &s, &mut rng).unwrap();
    let x = random_tensor(&mut rng, &[4, 9, 8, 12, 12]);
    let mut out = Tensor::default();
    conv.forward(&x, &mut out, true).unwrap();
    let gy = random_tensor(&mut rng, out.shape());
    let mut gin = Tensor::default();
    let mut grads = Vec::new();
    for _ in 0..2 {
        conv.weight.grad.fill(0.0);
        conv.bias.as_mut().unwrap().grad.fill(0.0);
        conv.backward(&x, &out, &gy, &mut gin).unwrap();
        grads.push((
            conv.weight.grad.clone(),
            conv.bias.as_ref().unwrap().grad.clone(),
            gin.clone(),
        ));
    }
    let bits = |t: &Tensor| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&grads[0].0), bits(&grads[1].0));
    assert_eq!(bits(&grads[0].1), bits(&grads[1].1));
    assert_eq!(bits(&grads[0].2), bits(&grads[1].2));
}
