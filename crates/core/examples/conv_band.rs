//! Dense convolution time and GFLOP/s on the reference workload shapes (the backward-data pass
//! of a 3x3 spiking conv runs as this dense convolution of dY), for the band size in
//! `kernels/conv.rs` and for the GFLOP/s figure in the README.
//!
//! `cargo run --release -p dualstream-core --example conv_band [reps]`
use dualstream_core::kernels::conv::conv2d_backward_data;
use dualstream_core::kernels::geometry::ConvGeom;
use dualstream_core::rng::Rng;
use std::time::Instant;

fn main() {
    let reps: usize = std::env::args().nth(1).map_or(7, |s| s.parse().unwrap());
    println!("| shape [B, C, H, W] | ms | GFLOP/s |");
    println!("|---|---|---|");
    for (b, c, h) in [(64usize, 32usize, 64usize), (64, 32, 32), (128, 32, 28), (128, 64, 14)] {
        let g = ConvGeom::new(c, c, h, h, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
        let mut rng = Rng::new(1);
        let dy: Vec<f32> = (0..b * g.out_size()).map(|_| rng.normal()).collect();
        let w: Vec<f32> = (0..g.weight_len()).map(|_| rng.normal()).collect();
        let mut dx = vec![0.0; b * g.in_size()];
        conv2d_backward_data(&g, &dy, &w, &mut dx);
        let mut t: Vec<f64> = (0..reps)
            .map(|_| {
                let s = Instant::now();
                conv2d_backward_data(&g, &dy, &w, &mut dx);
                s.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        t.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let flops = 2.0 * (b * g.weight_len() * g.ohw()) as f64;
        println!(
            "| [{b}, {c}, {h}, {h}] | {:.2} | {:.1} |",
            t[reps / 2],
            flops / t[reps / 2] / 1e6
        );
    }
}
