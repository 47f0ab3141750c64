//! Pooling layers against finite differences, hand-computed windows and PyTorch's rules.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `nn::pool` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::error::Error;
    pub use dualstream_core::layer::{Layer, Visitor};
    pub use dualstream_core::neuron::SpikePool;
    pub use dualstream_core::nn::pool::*;
    pub use dualstream_core::nn::shape_layer::{MeanMap, ShapeMap};
    pub use dualstream_core::spec::PoolSpec;
    pub use dualstream_core::tensor::Tensor;
}
use crate::unit::nn_gradcheck::{check_gradients, random_tensor};
use dualstream_core::rng::Rng;

fn pool(k: usize, s: Option<usize>, p: usize) -> PoolSpec {
    PoolSpec {
        kernel_size: [k, k],
        stride: s.map(|s| [s, s]),
        padding: [p, p],
        ceil_mode: false,
        count_include_pad: true,
    }
}

/// Distinct values at least 0.1 apart, so that no finite-difference step changes an argmax.
fn tie_free(rng: &mut Rng, shape: &[usize]) -> Tensor {
    let n = dualstream_core::tensor::numel(shape);
    let mut v: Vec<f32> = (0..n).map(|i| i as f32 * 0.1 - n as f32 * 0.05).collect();
    rng.shuffle(&mut v);
    Tensor::from_vec(shape, v).unwrap()
}

#[test]
fn maxpool_gradients_match_finite_differences() {
    let mut rng = Rng::new(41);
    for (i, (spec, h, w)) in
        [(pool(2, None, 0), 4, 5), (pool(3, Some(2), 1), 5, 6), (pool(3, Some(1), 1), 3, 4)]
            .iter()
            .enumerate()
    {
        let mp = MaxPool2d::new(&format!("layers.{i}"), spec).unwrap();
        let x = tie_free(&mut rng, &[2, 2, 2, *h, *w]);
        check_gradients(&mp, &x, 3, 1e-3, 1e-3, 1e-3);
    }
}

#[test]
fn maxpool_pads_with_negative_infinity_and_picks_the_first_maximum() {
    let mut mp = MaxPool2d::new("mp", &pool(2, Some(2), 1)).unwrap();
    let x = Tensor::from_vec(&[1, 1, 1, 2, 2], vec![-5.0, -3.0, -3.0, -7.0]).unwrap();
    let mut y = Tensor::default();
    mp.forward(&x, &mut y, true).unwrap();
    assert_eq!(y.shape(), &[1, 1, 1, 2, 2]);
    assert_eq!(y.data(), &[-5.0, -3.0, -3.0, -7.0]);
    let mut mp = MaxPool2d::new("mp", &pool(2, None, 0)).unwrap();
    let x = Tensor::from_vec(&[1, 1, 1, 2, 2], vec![1.0, 2.0, 2.0, 0.0]).unwrap();
    mp.forward(&x, &mut y, true).unwrap();
    let mut gx = Tensor::default();
    mp.backward(&x, &y, &Tensor::full(&[1, 1, 1, 1, 1], 1.0), &mut gx).unwrap();
    assert_eq!(gx.data(), &[0.0, 1.0, 0.0, 0.0]);
}

#[test]
fn avgpool_counts_padding_and_gradients_match() {
    let mut ap = AvgPool2d::new("ap", &pool(2, Some(2), 1)).unwrap();
    let x = Tensor::from_vec(&[1, 1, 1, 2, 2], vec![4.0, 8.0, 12.0, 16.0]).unwrap();
    let mut y = Tensor::default();
    ap.forward(&x, &mut y, true).unwrap();
    assert_eq!(y.data(), &[1.0, 2.0, 3.0, 4.0]);
    let mut rng = Rng::new(42);
    for (i, (spec, h, w)) in
        [(pool(2, None, 0), 4, 5), (pool(3, Some(2), 1), 5, 6)].iter().enumerate()
    {
        let ap = AvgPool2d::new(&format!("layers.{i}"), spec).unwrap();
        let x = random_tensor(&mut rng, &[2, 2, 3, *h, *w]);
        check_gradients(&ap, &x, 3, 1e-2, 1e-3, 1e-3);
    }
}

fn ceil(spec: PoolSpec) -> PoolSpec {
    PoolSpec { ceil_mode: true, ..spec }
}

fn without_padding_in_divisor(spec: PoolSpec) -> PoolSpec {
    PoolSpec { count_include_pad: false, ..spec }
}

#[test]
fn ceil_mode_keeps_the_partial_last_window_and_its_gradients_match() {
    // 3x3 input 1..9, 2x2 windows: the ceil mode adds the windows over the last column and
    // row; their divisor is the part inside the input (padding 0: the padded input is the input).
    let x = Tensor::from_vec(&[1, 1, 1, 3, 3], (1..=9).map(|v| v as f32).collect()).unwrap();
    let mut y = Tensor::default();
    let mut ap = AvgPool2d::new("ap", &ceil(pool(2, None, 0))).unwrap();
    ap.forward(&x, &mut y, true).unwrap();
    assert_eq!(y.shape(), &[1, 1, 1, 2, 2]);
    assert_eq!(y.data(), &[3.0, 4.5, 7.5, 9.0]);
    let mut mp = MaxPool2d::new("mp", &ceil(pool(2, None, 0))).unwrap();
    assert!(!mp.halves(), "a partial window is not the fused 2x2 case");
    mp.forward(&x, &mut y, true).unwrap();
    assert_eq!(y.data(), &[5.0, 6.0, 8.0, 9.0]);
    let mut rng = Rng::new(44);
    for (i, (spec, h, w)) in [
        (ceil(pool(2, None, 0)), 5, 5),
        (ceil(pool(3, Some(2), 1)), 6, 5),
        (ceil(pool(2, Some(2), 1)), 5, 4),
    ]
    .iter()
    .enumerate()
    {
        let mp = MaxPool2d::new(&format!("layers.{i}"), spec).unwrap();
        check_gradients(&mp, &tie_free(&mut rng, &[2, 2, 2, *h, *w]), 3, 1e-3, 1e-3, 1e-3);
        for spec in [spec.clone(), without_padding_in_divisor(spec.clone())] {
            let ap = AvgPool2d::new(&format!("layers.{i}"), &spec).unwrap();
            check_gradients(&ap, &random_tensor(&mut rng, &[2, 2, 3, *h, *w]), 3, 1e-2, 1e-3, 1e-3);
        }
    }
}

#[test]
fn average_pooling_without_padding_in_the_divisor_averages_the_input_values_only() {
    // 3x3 windows, stride 2, padding 1 on 3x3 input 1..9: the corner windows hold 4 values.
    let x = Tensor::from_vec(&[1, 1, 1, 3, 3], (1..=9).map(|v| v as f32).collect()).unwrap();
    let mut y = Tensor::default();
    let spec = pool(3, Some(2), 1);
    AvgPool2d::new("ap", &without_padding_in_divisor(spec.clone()))
        .unwrap()
        .forward(&x, &mut y, true)
        .unwrap();
    assert_eq!(y.data(), &[3.0, 4.0, 6.0, 7.0]);
    AvgPool2d::new("ap", &spec).unwrap().forward(&x, &mut y, true).unwrap();
    assert_eq!(y.data(), &[12.0 / 9.0, 16.0 / 9.0, 24.0 / 9.0, 28.0 / 9.0]);
    let err = MaxPool2d::new("layers.3", &without_padding_in_divisor(spec)).unwrap_err();
    assert!(matches!(err, Error::Spec { .. }) && err.to_string().contains("layers.3"), "{err}");
}

#[test]
fn global_avg_pool_means_and_gradients() {
    let mut gap = GlobalAvgPool::new("gap");
    let mut rng = Rng::new(43);
    let x = random_tensor(&mut rng, &[2, 3, 4, 2, 3]);
    let mut y = Tensor::default();
    gap.forward(&x, &mut y, true).unwrap();
    assert_eq!(y.shape(), &[2, 3, 4]);
    let want: f32 = x.data()[6..12].iter().sum::<f32>() / 6.0;
    assert!((y.data()[1] - want).abs() < 1e-6);
    check_gradients(&gap, &x, 3, 1e-2, 1e-3, 1e-3);
}

#[test]
fn errors_name_the_layer() {
    let mp = MaxPool2d::new("layers.6", &pool(2, None, 0)).unwrap();
    let err = mp.output_shape(&[2, 3, 8, 8]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "layers.6 (maxPool2d): expected shape [T, N, C, H, W], got [2, 3, 8, 8]"
    );
    let err = mp.output_shape(&[2, 3, 4, 1, 8]).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }) && err.to_string().contains("layers.6"));
    let err = AvgPool2d::new("layers.7", &pool(2, None, 0))
        .unwrap()
        .output_shape(&[1, 2, 3])
        .unwrap_err();
    assert!(err.to_string().contains("layers.7 (avgPool2d)"));
    let err = GlobalAvgPool::new("layers.8").output_shape(&[1, 2, 3]).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }) && err.to_string().contains("layers.8"));
    for bad in [pool(0, None, 0), pool(2, Some(0), 0), pool(2, None, 2)] {
        let err = MaxPool2d::new("layers.9", &bad).unwrap_err();
        assert!(matches!(err, Error::Spec { .. }) && err.to_string().contains("layers.9"), "{err}");
    }
    let mut mp = MaxPool2d::new("layers.6", &pool(2, None, 0)).unwrap();
    let x = Tensor::zeros(&[1, 1, 1, 2, 2]);
    let mut gx = Tensor::default();
    assert_eq!(mp.backward(&x, &x, &x, &mut gx).unwrap_err().code(), "ERR_STATE");
}

/// The layer keeps each window's argmax as one byte inside the window: its outputs and input
/// gradients are those of the in-plane `u32` argmax kernels bit for bit (ties, NaNs, padding,
/// overlapping and ceil-mode windows), and a window of more than 256 values is refused.
#[test]
fn maxpool_keeps_the_in_plane_layouts_outputs_and_gradients() {
    use dualstream_core::kernels::geometry::PoolGeom;
    use dualstream_core::kernels::pool::{maxpool2d_backward, maxpool2d_forward};
    let mut rng = Rng::new(43);
    for (k, s, p, ceil) in [(2, 2, 0, false), (3, 2, 1, false), (3, 1, 1, true), (4, 3, 2, true)] {
        let spec = PoolSpec { ceil_mode: ceil, ..pool(k, Some(s), p) };
        let mut mp = MaxPool2d::new("mp", &spec).unwrap();
        let shape = [3, 2, 3, 11, 9];
        let n = dualstream_core::tensor::numel(&shape);
        let v: Vec<f32> = (0..n)
            .map(|i| match i % 11 {
                0 => f32::NAN,
                1..=4 => (i % 3 == 0) as u8 as f32,
                _ => rng.normal(),
            })
            .collect();
        let x = Tensor::from_vec(&shape, v).unwrap();
        let mut y = Tensor::default();
        mp.forward(&x, &mut y, true).unwrap();
        let g = PoolGeom::with_ceil_mode(11, 9, [k, k], [s, s], [p, p], ceil).unwrap();
        let (mut want, mut am) = (vec![0.0; y.numel()], vec![0u32; y.numel()]);
        maxpool2d_forward(&g, x.data(), &mut want, &mut am);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(y.data()), bits(&want), "window {k} stride {s}");
        let dy: Vec<f32> =
            (0..y.numel()).map(|i| if i % 5 == 0 { -0.0 } else { rng.normal() }).collect();
        let dy = Tensor::from_vec(y.shape(), dy).unwrap();
        let mut dx = Tensor::default();
        mp.backward(&x, &y, &dy, &mut dx).unwrap();
        let mut dx_want = vec![0.0; n];
        maxpool2d_backward(&g, dy.data(), &am, &mut dx_want);
        assert_eq!(bits(dx.data()), bits(&dx_want), "window {k} stride {s}");
    }
    assert!(MaxPool2d::new("mp", &pool(16, None, 0)).is_ok());
    let err = MaxPool2d::new("mp", &PoolSpec { kernel_size: [16, 17], ..pool(16, None, 0) });
    assert!(err.unwrap_err().to_string().contains("more than 256 values"));
}
