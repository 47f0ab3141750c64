//! Tests of `dualstream_core::kernels::depthwise`, through `kernels::conv`'s dispatch: the
//! same bits as the im2col + GEMM path, and gradients that match finite differences.
use dualstream_core::kernels::conv::{
    conv2d_backward_data, conv2d_backward_data_col2im, conv2d_backward_weight,
    conv2d_backward_weight_gemm, conv2d_forward, conv2d_forward_gemm,
};
use dualstream_core::kernels::depthwise;
use dualstream_core::kernels::geometry::ConvGeom;
use dualstream_core::rng::Rng;

fn randv(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.normal()).collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// `(channels, h, w, kernel, stride, padding, dilation)`.
type Shape = (usize, usize, usize, [usize; 2], usize, usize, usize);

/// Stride 1/2/3, padding 0/1/2, kernels 1/3/5 and non-square, dilation, odd sizes, and
/// outputs over 256 pixels (several depth blocks of sgemm's sum).
const SHAPES: [Shape; 12] = [
    (32, 14, 14, [3, 3], 2, 1, 1),
    (32, 14, 14, [3, 3], 1, 1, 1),
    (3, 7, 9, [3, 3], 1, 0, 1),
    (2, 9, 7, [3, 3], 2, 0, 1),
    (4, 11, 13, [5, 5], 1, 2, 1),
    (5, 11, 10, [5, 5], 2, 1, 1),
    (3, 5, 6, [1, 1], 2, 0, 1),
    (2, 6, 5, [1, 1], 1, 1, 1),
    (3, 13, 11, [3, 3], 1, 2, 2),
    (2, 12, 12, [3, 2], 3, 1, 2),
    (2, 23, 25, [3, 3], 1, 1, 1),
    (3, 40, 37, [3, 3], 2, 1, 1),
];

fn geom(s: Shape) -> ConvGeom {
    let (c, h, w, k, st, p, d) = s;
    ConvGeom::new(c, c, h, w, k, [st, st], [p, p], [d, d], c).expect("valid shape")
}

#[test]
fn every_depthwise_shape_takes_the_direct_kernel() {
    for s in SHAPES {
        assert!(depthwise::applies(&geom(s)), "{s:?}");
    }
    // Channel multipliers, plain grouped convs and one-channel convs stay on the GEMM path.
    let off = [(2, 4, 2), (4, 4, 2), (1, 1, 1), (4, 4, 1)];
    for (ci, co, gr) in off {
        let g = ConvGeom::new(ci, co, 8, 8, [3, 3], [1, 1], [1, 1], [1, 1], gr).unwrap();
        assert!(!depthwise::applies(&g), "{g:?}");
    }
}

#[test]
fn depthwise_is_bit_identical_to_the_gemm_path() {
    let mut rng = Rng::new(7);
    for (case, s) in SHAPES.into_iter().enumerate() {
        let g = geom(s);
        for batch in 1..=5 {
            let x = randv(&mut rng, batch * g.in_size());
            let w = randv(&mut rng, g.weight_len());
            let bias = randv(&mut rng, g.c_out);
            let dy = randv(&mut rng, batch * g.out_size());
            for b in [None, Some(&bias[..])] {
                let mut got = vec![f32::NAN; dy.len()];
                let mut want = vec![f32::NAN; dy.len()];
                conv2d_forward(&g, &x, &w, b, &mut got);
                conv2d_forward_gemm(&g, &x, &w, b, &mut want);
                assert_eq!(bits(&got), bits(&want), "case {case} {g:?} b{batch} forward");
            }
            let mut got = vec![f32::NAN; x.len()];
            let mut want = vec![f32::NAN; x.len()];
            conv2d_backward_data(&g, &dy, &w, &mut got);
            conv2d_backward_data_col2im(&g, &dy, &w, &mut want);
            assert_eq!(bits(&got), bits(&want), "case {case} {g:?} b{batch} dx");

            // Accumulated into a non-zero gradient, with and without the bias.
            let init = randv(&mut rng, w.len() + g.c_out);
            let (mut gw, mut gb) = (init[..w.len()].to_vec(), init[w.len()..].to_vec());
            let (mut ww, mut wb) = (gw.clone(), gb.clone());
            conv2d_backward_weight(&g, &x, &dy, &mut gw, Some(&mut gb));
            conv2d_backward_weight_gemm(&g, &x, &dy, &mut ww, Some(&mut wb));
            assert_eq!(bits(&gw), bits(&ww), "case {case} {g:?} b{batch} dw");
            assert_eq!(bits(&gb), bits(&wb), "case {case} {g:?} b{batch} db");
            conv2d_backward_weight(&g, &x, &dy, &mut gw, None);
            conv2d_backward_weight_gemm(&g, &x, &dy, &mut ww, None);
            assert_eq!(bits(&gw), bits(&ww), "case {case} {g:?} b{batch} dw, no bias");
        }
    }
}

/// `sum(r * conv(x, w))` in f64.
fn loss(g: &ConvGeom, x: &[f32], w: &[f32], r: &[f32]) -> f64 {
    let mut y = vec![0.0; r.len()];
    conv2d_forward(g, x, w, None, &mut y);
    y.iter().zip(r).map(|(&a, &b)| a as f64 * b as f64).sum()
}

#[test]
fn depthwise_gradients_match_finite_differences() {
    let mut rng = Rng::new(3);
    for s in [SHAPES[0], SHAPES[3], SHAPES[4], SHAPES[8], SHAPES[9]] {
        let g = geom(s);
        let batch = 2;
        let x = randv(&mut rng, batch * g.in_size());
        let w = randv(&mut rng, g.weight_len());
        let r = randv(&mut rng, batch * g.out_size());
        let mut dx = vec![0.0; x.len()];
        conv2d_backward_data(&g, &r, &w, &mut dx);
        let mut dw = vec![0.0; w.len()];
        conv2d_backward_weight(&g, &x, &r, &mut dw, None);
        // The loss is linear in each argument, so a central difference with a wide step is
        // exact but for rounding.
        let eps = 0.5f32;
        let fd = |xp: &[f32], wp: &[f32], xm: &[f32], wm: &[f32]| {
            (loss(&g, xp, wp, &r) - loss(&g, xm, wm, &r)) / (2.0 * eps as f64)
        };
        for i in (0..x.len()).step_by(7) {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[i] += eps;
            xm[i] -= eps;
            let want = fd(&xp, &w, &xm, &w);
            assert!((dx[i] as f64 - want).abs() <= 1e-4 * (1.0 + want.abs()), "{g:?} dx[{i}]");
        }
        for i in 0..w.len() {
            let (mut wp, mut wm) = (w.clone(), w.clone());
            wp[i] += eps;
            wm[i] -= eps;
            let want = fd(&x, &wp, &x, &wm);
            assert!((dw[i] as f64 - want).abs() <= 1e-4 * (1.0 + want.abs()), "{g:?} dw[{i}]");
        }
    }
}
