//! Tests of `dualstream_core::nn::linear`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `nn::linear` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::error::Error;
    pub use dualstream_core::layer::{Layer, Visitor, VisitorMut};
    pub use dualstream_core::nn::linear::*;
    pub use dualstream_core::rng::Rng;
    pub use dualstream_core::spec::LinearSpec;
    pub use dualstream_core::tensor::Tensor;
    pub use rayon::prelude::*;
}
use crate::unit::nn_gradcheck::{check_gradients, random_tensor};

#[test]
fn gradients_match_finite_differences() {
    for (i, bias) in [true, false].into_iter().enumerate() {
        let mut rng = Rng::new(20 + i as u64);
        let spec = LinearSpec { in_features: 7, out_features: 19, bias };
        let l = Linear::new("layers.9", &spec, &mut rng).unwrap();
        let x = random_tensor(&mut rng, &[3, 2, 7]);
        check_gradients(&l, &x, 3, 1e-2, 1e-3, 1e-3);
    }
}

#[test]
fn large_batch_matches_naive_and_is_deterministic() {
    // More rows than one parallel block and more outputs than one weight block.
    let mut rng = Rng::new(4);
    let spec = LinearSpec { in_features: 13, out_features: 37, bias: true };
    let mut l = Linear::new("fc", &spec, &mut rng).unwrap();
    let x = random_tensor(&mut rng, &[5, 41, 13]);
    let mut y = Tensor::default();
    l.forward(&x, &mut y, true).unwrap();
    let (w, b) = (l.weight.value.clone(), l.bias.as_ref().unwrap().value.clone());
    for r in 0..205 {
        for o in 0..37 {
            let want: f64 = b.data()[o] as f64
                + (0..13)
                    .map(|k| x.data()[r * 13 + k] as f64 * w.data()[o * 13 + k] as f64)
                    .sum::<f64>();
            assert!((y.data()[r * 37 + o] as f64 - want).abs() < 1e-4);
        }
    }
    let gy = random_tensor(&mut rng, y.shape());
    let mut gx = Tensor::default();
    l.backward(&x, &y, &gy, &mut gx).unwrap();
    for o in [0, 17, 36] {
        for k in [0, 12] {
            let want: f64 =
                (0..205).map(|r| gy.data()[r * 37 + o] as f64 * x.data()[r * 13 + k] as f64).sum();
            assert!((l.weight.grad.data()[o * 13 + k] as f64 - want).abs() < 1e-3);
        }
    }
    let first = l.weight.grad.clone();
    l.weight.grad.fill(0.0);
    l.backward(&x, &y, &gy, &mut gx).unwrap();
    assert_eq!(first, l.weight.grad);
}

#[test]
fn dense_products_equal_small_block_gemms_bit_for_bit() {
    // A real-valued token input over many blocks (rows not a multiple of the kernel's): the
    // layer's GEMMs, whatever rows each task takes, give the bits of one GEMM per 64 batch rows
    // (forward and input gradient) and per 16 weight rows (weight gradient).
    use dualstream_core::kernels::gemm::{gemm, gemm_strided};
    let mut rng = Rng::new(9);
    let (fi, fo) = (20, 100);
    let spec = LinearSpec { in_features: fi, out_features: fo, bias: true };
    let mut l = Linear::new("fc", &spec, &mut rng).unwrap();
    let x = random_tensor(&mut rng, &[2, 3, 301, fi]);
    let rows = 2 * 3 * 301;
    let mut y = Tensor::default();
    l.forward(&x, &mut y, true).unwrap();
    let (w, b) = (l.weight.value.data().to_vec(), l.bias.as_ref().unwrap().value.data().to_vec());
    let mut want = vec![0.0f32; rows * fo];
    for (yc, xc) in want.chunks_mut(64 * fo).zip(x.data().chunks(64 * fi)) {
        for row in yc.chunks_exact_mut(fo) {
            row.copy_from_slice(&b);
        }
        gemm(xc.len() / fi, fo, fi, 1.0, xc, false, &w, true, 1.0, yc);
    }
    assert_eq!(y.data(), &want[..], "forward");
    let gy = random_tensor(&mut rng, y.shape());
    let mut gx = Tensor::default();
    l.backward(&x, &y, &gy, &mut gx).unwrap();
    let mut want_gx = vec![0.0f32; rows * fi];
    for (dx, dy) in want_gx.chunks_mut(64 * fi).zip(gy.data().chunks(64 * fo)) {
        gemm(dy.len() / fo, fi, fo, 1.0, dy, false, &w, false, 0.0, dx);
    }
    assert_eq!(gx.data(), &want_gx[..], "input gradient");
    let mut want_gw = vec![0.0f32; fo * fi];
    for (blk, dw) in want_gw.chunks_mut(16 * fi).enumerate() {
        let (o0, n) = (blk * 16, dw.len() / fi);
        let dy = gy.data();
        gemm_strided(n, fi, rows, 1.0, &dy[o0..], 1, fo, x.data(), fi, 1, 1.0, dw, fi, 1);
    }
    assert_eq!(l.weight.grad.data(), &want_gw[..], "weight gradient");
}

#[test]
fn wrong_rank_or_features_name_the_layer() {
    let mut rng = Rng::new(1);
    let l = Linear::new(
        "layers.7",
        &LinearSpec { in_features: 10, out_features: 2, bias: true },
        &mut rng,
    )
    .unwrap();
    let err = l.output_shape(&[2, 3, 10, 1]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "layers.7 (linear): expected shape [T, N, 10] or tokens [T, N, L, 10], got [2, 3, 10, 1]"
    );
    assert_eq!(l.output_shape(&[2, 3, 5, 10]).unwrap(), vec![2, 3, 5, 2]);
    let err = l.output_shape(&[2, 3, 11]).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }) && err.to_string().contains("layers.7 (linear)"));
    let err = Linear::new(
        "layers.8",
        &LinearSpec { in_features: 0, out_features: 2, bias: true },
        &mut rng,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Spec { .. }) && err.to_string().contains("layers.8"));
}
