//! Direct 3x3 kernel (`kernels/conv3x3.rs`) vs Winograd F(2x2, 3x3) (`kernels/winograd.rs`) on
//! the reference workload shapes: median time and GFLOP/s-equivalent (direct-conv FLOPs / time)
//! of each, run alternately (A, B, A, B, ...) in one process, and the Winograd error against
//! `conv2d_reference` on realistic data (dY of a spiking net ~ N(0, 1e-3), kaiming-uniform
//! weights), from which the dispatch in `kernels/conv.rs` is chosen.
//!
//! `cargo run --release -p dualstream-core --example conv_winograd [reps]`
use dualstream_core::kernels::conv::conv2d_reference;
use dualstream_core::kernels::conv3x3::conv3x3_forward;
use dualstream_core::kernels::geometry::ConvGeom;
use dualstream_core::kernels::winograd::winograd_forward;
use dualstream_core::rng::Rng;
use std::time::Instant;

mod timing;
use timing::ab;

/// `profile C H`: Winograd in a loop on `[128, C, H, H]`, for `perf record`.
fn profile(c: usize, hw: usize) {
    let g = ConvGeom::new(c, c, hw, hw, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
    let mut rng = Rng::new(1);
    let w: Vec<f32> = (0..g.weight_len()).map(|_| rng.normal()).collect();
    let x: Vec<f32> = (0..128 * g.in_size()).map(|_| rng.normal()).collect();
    let mut y = vec![0.0; 128 * g.out_size()];
    let t = Instant::now();
    for _ in 0..50 {
        winograd_forward(&g, &x, &w, None, &mut y);
    }
    let bits = y.iter().fold(0u64, |h, v| h.rotate_left(5) ^ u64::from(v.to_bits()));
    println!("{:.3} ms per call (output bits {bits:016x})", t.elapsed().as_secs_f64() * 1e3 / 50.0);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("profile") {
        return profile(args[2].parse().unwrap(), args[3].parse().unwrap());
    }
    let reps: usize = args.get(1).map_or(9, |s| s.parse().unwrap());
    let shapes = [
        // (label, batch T*N, C_in, C_out, H=W)
        ("W1 conv 32", 128, 32, 32, 28),
        ("W1 conv 64", 128, 64, 64, 14),
        ("W1 stem fwd 1->32", 128, 1, 32, 28),
        ("W2 64x64", 64, 32, 32, 64),
        ("W2 32x32", 64, 32, 32, 32),
        ("W2 16x16", 64, 32, 32, 16),
        ("W2 8x8", 64, 32, 32, 8),
        ("W2 4x4", 64, 32, 32, 4),
        ("W2 2x2", 64, 32, 32, 2),
        ("W2 stem fwd 2->32", 64, 2, 32, 64),
        ("CLI 14x14", 256, 32, 32, 14),
        ("CLI 7x7", 256, 32, 32, 7),
        ("CLI 7x7 64", 256, 64, 64, 7),
        ("few channels 8", 128, 8, 8, 28),
        ("16 channels", 128, 16, 16, 28),
        ("16 channels 14x14", 128, 16, 16, 14),
        ("16->32", 128, 16, 32, 28),
        ("32->16", 128, 32, 16, 28),
        ("12 channels", 128, 12, 12, 28),
        ("few channels 4->32", 128, 4, 32, 28),
    ];
    println!("threads: {}", rayon::current_num_threads());
    println!("| shape | [B, C_in->C_out, H, W] | direct ms | winograd ms | direct GFLOP/s | winograd GFLOP/s-eq | winograd/direct time | max abs err | max rel err | direct max abs err |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut rng = Rng::new(1);
    for (label, batch, cin, cout, hw) in shapes {
        let g = ConvGeom::new(cin, cout, hw, hw, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
        let bound = 1.0 / ((cin * 9) as f32).sqrt();
        let w: Vec<f32> =
            (0..g.weight_len()).map(|_| bound * (2.0 * rng.uniform() - 1.0)).collect();
        let x: Vec<f32> = (0..batch * g.in_size()).map(|_| 1e-3 * rng.normal()).collect();
        let (mut y, mut y2) = (vec![0.0; batch * g.out_size()], vec![0.0; batch * g.out_size()]);
        let (d, wi) = ab(
            reps,
            || conv3x3_forward(&g, &x, &w, None, &mut y),
            || winograd_forward(&g, &x, &w, None, &mut y2),
        );
        // Error on the first few samples (the f64 reference is slow).
        let ns = batch.min(4);
        let want = conv2d_reference(&g, &x[..ns * g.in_size()], &w, None);
        let (mut abs, mut rel) = (0.0f64, 0.0f64);
        let direct_abs = y.iter().zip(&want).fold(0.0f64, |m, (a, b)| m.max((a - b).abs() as f64));
        let ymax = want.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
        for (a, b) in y2.iter().zip(&want) {
            let e = (a - b).abs() as f64;
            abs = abs.max(e);
            // Relative to the element, for elements not near a cancellation to zero.
            if b.abs() as f64 > 1e-3 * ymax {
                rel = rel.max(e / b.abs() as f64);
            }
        }
        let flops = 2.0 * (batch * g.weight_len() * g.ohw()) as f64;
        println!(
            "| {label} | [{batch}, {cin}->{cout}, {hw}, {hw}] | {:.2} | {:.2} | {:.0} | {:.0} | {:.2} | {:.1e} | {:.1e} | {:.1e} |",
            d * 1e3,
            wi * 1e3,
            flops / d / 1e9,
            flops / wi / 1e9,
            wi / d,
            abs,
            rel,
            direct_abs
        );
    }
}
