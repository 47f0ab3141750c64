//! Tests of `dualstream_core::kernels::conv3x3`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `kernels::conv3x3` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::kernels::conv3x3::*;
    pub use dualstream_core::kernels::geometry::ConvGeom;
    pub use rayon::prelude::*;
}
use dualstream_core::kernels::conv::{
    conv2d_backward_data, conv2d_reference, conv2d_reference_backward,
};
use dualstream_core::rng::Rng;

fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{what}[{i}]: got {a}, want {b}");
    }
}

/// Inputs at a given density of ones (spike maps) or, for density `None`, normal values.
fn input(rng: &mut Rng, n: usize, density: Option<f32>) -> Vec<f32> {
    (0..n)
        .map(|_| match density {
            Some(d) => (rng.uniform() < d) as u8 as f32,
            None => rng.normal(),
        })
        .collect()
}

#[test]
fn direct_conv_matches_reference_forward_and_backward_data() {
    if !simd_available() {
        eprintln!("no AVX2/FMA on this CPU: the direct 3x3 kernel is never used");
        return;
    }
    let mut rng = Rng::new(29);
    let densities = [Some(0.0), Some(0.01), Some(0.1), Some(0.5), Some(1.0), None];
    for case in 0..60 {
        // Channel counts off the tile size, widths off and on the 16-pixel tile, tiny maps.
        let c_in = 1 + rng.below(13);
        let c_out = 1 + rng.below(11);
        let (h, w) = (1 + rng.below(20), 1 + rng.below(40));
        let g = ConvGeom::new(c_in, c_out, h, w, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
        assert!(applies(&g));
        let batch = 1 + rng.below(4);
        let density = densities[case % densities.len()];
        let x = input(&mut rng, batch * g.in_size(), density);
        let wt = input(&mut rng, g.weight_len(), None);
        let bias = input(&mut rng, g.c_out, None);
        let bias_opt = (case % 2 == 0).then_some(&bias[..]);
        let mut y = vec![f32::NAN; batch * g.out_size()];
        conv3x3_forward(&g, &x, &wt, bias_opt, &mut y);
        assert_close(
            &format!("case {case} {g:?} forward"),
            &y,
            &conv2d_reference(&g, &x, &wt, bias_opt),
            1e-4,
        );

        let dy = input(&mut rng, y.len(), None);
        let (rdx, _, _) = conv2d_reference_backward(&g, &x, &wt, &dy);
        let mut dx = vec![f32::NAN; x.len()];
        conv2d_backward_data(&g, &dy, &wt, &mut dx);
        assert_close(&format!("case {case} {g:?} dx"), &dx, &rdx, 1e-4);
    }
}

#[test]
fn direct_conv_is_bit_identical_across_thread_counts() {
    if !simd_available() {
        return;
    }
    let g = ConvGeom::new(7, 9, 13, 21, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
    let mut rng = Rng::new(31);
    let x = input(&mut rng, 11 * g.in_size(), None);
    let wt = input(&mut rng, g.weight_len(), None);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut y = vec![0.0; 11 * g.out_size()];
            conv3x3_forward(&g, &x, &wt, None, &mut y);
            y.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        })
    };
    let first = run(1);
    for threads in [2, 3, 4] {
        assert_eq!(first, run(threads), "{threads} threads");
    }
}
