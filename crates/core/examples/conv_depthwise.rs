//! Depthwise convolution: the direct kernels (`kernels/depthwise.rs`, which `kernels::conv`
//! dispatches to) against the grouped im2col + GEMM path, forward, backward-data and
//! backward-weight, alternating the two per repetition; median ms and the ratio.
//!
//! `cargo run --release -p dualstream-core --example conv_depthwise [reps]`
//!
//! The first shape is the dual-stream AAP projection of the downsampling block
//! (`docs/recipes/dsnn-32-64-t2.json`, batch 64 x T 2).
use dualstream_core::kernels::conv::{
    conv2d_backward_data, conv2d_backward_data_col2im, conv2d_backward_weight,
    conv2d_backward_weight_gemm, conv2d_forward, conv2d_forward_gemm,
};
use dualstream_core::kernels::geometry::ConvGeom;
use dualstream_core::rng::Rng;
use std::time::Instant;

/// A pass by name, run by the direct kernel (`true`) or the GEMM path.
type Pass<'a> = (&'static str, Box<dyn FnMut(bool) + 'a>);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn ms(f: &mut dyn FnMut()) -> f64 {
    let s = Instant::now();
    f();
    s.elapsed().as_secs_f64() * 1e3
}

fn main() {
    let reps: usize = std::env::args().nth(1).map_or(21, |s| s.parse().unwrap());
    println!("| shape [B, C, H, W] k s | pass | GEMM ms | direct ms | ratio |");
    println!("|---|---|---|---|---|");
    for (b, c, h, k, s) in [(128usize, 32usize, 14usize, 3usize, 2usize), (128, 32, 28, 3, 1)] {
        let g = ConvGeom::new(c, c, h, h, [k, k], [s, s], [1, 1], [1, 1], c).unwrap();
        let mut rng = Rng::new(1);
        let mut randv = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal()).collect() };
        let (x, w, dy) = (randv(b * g.in_size()), randv(g.weight_len()), randv(b * g.out_size()));
        let (mut y, mut dx, mut gw) = (vec![0.0; dy.len()], vec![0.0; x.len()], vec![0.0; w.len()]);
        let mut passes: [Pass; 3] = [
            (
                "forward",
                Box::new(|d| match d {
                    true => conv2d_forward(&g, &x, &w, None, &mut y),
                    false => conv2d_forward_gemm(&g, &x, &w, None, &mut y),
                }),
            ),
            (
                "backward-data",
                Box::new(|d| match d {
                    true => conv2d_backward_data(&g, &dy, &w, &mut dx),
                    false => conv2d_backward_data_col2im(&g, &dy, &w, &mut dx),
                }),
            ),
            (
                "backward-weight",
                Box::new(|d| match d {
                    true => conv2d_backward_weight(&g, &x, &dy, &mut gw, None),
                    false => conv2d_backward_weight_gemm(&g, &x, &dy, &mut gw, None),
                }),
            ),
        ];
        for (name, f) in passes.iter_mut() {
            f(false);
            f(true);
            let (mut tg, mut td) = (Vec::new(), Vec::new());
            for _ in 0..reps {
                tg.push(ms(&mut || f(false)));
                td.push(ms(&mut || f(true)));
            }
            let (mg, md) = (median(tg), median(td));
            println!(
                "| [{b}, {c}, {h}, {h}] {k} {s} | {name} | {mg:.3} | {md:.3} | {:.1}x |",
                mg / md
            );
        }
    }
}
