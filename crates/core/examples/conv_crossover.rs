//! Dense (im2col + GEMM) vs event-driven convolution on the reference workload shapes, at
//! input densities 0..100 %: prints a table of median times and event/dense ratios, from which
//! the crossover constants in `kernels/spike_conv.rs` are taken.
//!
//! `cargo run --release -p dualstream-core --example conv_crossover [reps]`
//!
//! The two kernels of a pair run alternately in the same process (A, B, A, B, ...), so a
//! neighbour's load on a shared machine hits both alike; the ratio is the figure to read.
use dualstream_core::kernels::conv::{
    conv2d_backward_data, conv2d_backward_data_col2im, conv2d_backward_weight, conv2d_forward,
};
use dualstream_core::kernels::geometry::ConvGeom;
use dualstream_core::kernels::spike_conv::{
    conv2d_backward_weight_spikes, conv2d_forward_spikes, spike_stats,
};
use dualstream_core::rng::Rng;
use std::time::Instant;

mod timing;
use timing::ab;

/// `profile fwd|wgrad DENSITY`: runs one event kernel in a loop on the default net's conv2
/// shape, for `perf record`.
fn profile(kind: &str, density: f32) {
    let g = ConvGeom::new(32, 32, 14, 14, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
    let batch = 256;
    let mut rng = Rng::new(1);
    let w: Vec<f32> = (0..g.weight_len()).map(|_| rng.normal()).collect();
    let dy: Vec<f32> = (0..batch * g.out_size()).map(|_| rng.normal()).collect();
    let x: Vec<f32> =
        (0..batch * g.in_size()).map(|_| (rng.uniform() < density) as u8 as f32).collect();
    let mut y = vec![0.0; dy.len()];
    let mut dw = vec![0.0; w.len()];
    let t = Instant::now();
    for _ in 0..200 {
        match kind {
            "fwd" => conv2d_forward_spikes(&g, &x, &w, None, &mut y),
            _ => conv2d_backward_weight_spikes(&g, &x, &dy, &mut dw, None),
        }
    }
    println!("{kind} {density}: {:.3} ms per call", t.elapsed().as_secs_f64() * 1e3 / 200.0);
}

/// The stem (real-valued input, always dense): backward-data old vs new and the dense
/// forward/weight-gradient times, to see its share.
fn stem(reps: usize) {
    let g = ConvGeom::new(1, 32, 28, 28, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
    let batch = 256;
    let mut rng = Rng::new(2);
    let w: Vec<f32> = (0..g.weight_len()).map(|_| rng.normal()).collect();
    let x: Vec<f32> = (0..batch * g.in_size()).map(|_| rng.uniform()).collect();
    let dy: Vec<f32> = (0..batch * g.out_size()).map(|_| rng.normal()).collect();
    let (mut dx, mut dx2) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    let (old, new) = ab(
        reps,
        || conv2d_backward_data_col2im(&g, &dy, &w, &mut dx),
        || conv2d_backward_data(&g, &dy, &w, &mut dx2),
    );
    println!("stem backward data: col2im {:.2} ms, transposed {:.2} ms", old * 1e3, new * 1e3);
    let mut y = vec![0.0; dy.len()];
    let mut dw = vec![0.0; w.len()];
    let (f, wg) = ab(
        reps,
        || conv2d_forward(&g, &x, &w, None, &mut y),
        || conv2d_backward_weight(&g, &x, &dy, &mut dw, None),
    );
    println!("stem forward {:.2} ms, weight gradient {:.2} ms", f * 1e3, wg * 1e3);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("profile") {
        return profile(&args[2], args[3].parse().unwrap());
    }
    let reps: usize = args.get(1).map_or(7, |s| s.parse().unwrap());
    if args.get(2).map(String::as_str) == Some("stem") {
        return stem(reps);
    }
    // `conv_crossover REPS w2`: the large maps of workload W2 (events 64x64, T*N = 64) only.
    // `conv_crossover REPS cli`: the trunk convs of the CLI's default network, near the crossover.
    // `conv_crossover REPS w1`: the block convs of workload W1 (T*N = 128).
    let w2 = args.get(2).map(String::as_str) == Some("w2");
    let cli = args.get(2).map(String::as_str) == Some("cli");
    let w1 = args.get(2).map(String::as_str) == Some("w1");
    let shapes: &[(&str, usize, usize, usize, usize)] = if w1 {
        &[
            ("[128,32,28,28] 32->32 (W1)", 128, 32, 32, 28),
            ("[128,64,14,14] 64->64 (W1)", 128, 64, 64, 14),
        ]
    } else if w2 {
        &[
            ("[64,32,64,64] 32->32 (W2)", 64, 32, 32, 64),
            ("[64,32,32,32] 32->32 (W2)", 64, 32, 32, 32),
        ]
    } else if cli {
        &[
            ("[256,32,14,14] 32->32 (CLI)", 256, 32, 32, 14),
            ("[256,32,7,7] 32->32 (CLI)", 256, 32, 32, 7),
        ]
    } else {
        &[
            // (label, batch T*N, C_in, C_out, H=W)
            ("[128,32,14,14] 32->32", 128, 32, 32, 14),
            ("[256,32,14,14] 32->32 (default net conv2)", 256, 32, 32, 14),
            ("[256,32,28,28] 32->32", 256, 32, 32, 28),
            ("[64,64,7,7] 64->64", 64, 64, 64, 7),
        ]
    };
    let mut rng = Rng::new(1);
    println!("threads: {}", rayon::current_num_threads());
    println!(
        "| shape | density | fwd dense ms | fwd events ms | events/dense | wgrad dense ms | wgrad events ms | events/dense |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &(label, batch, cin, cout, hw) in shapes {
        let g = ConvGeom::new(cin, cout, hw, hw, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
        let w: Vec<f32> = (0..g.weight_len()).map(|_| rng.normal()).collect();
        let dy: Vec<f32> = (0..batch * g.out_size()).map(|_| rng.normal()).collect();
        let (mut y, mut y2) = (vec![0.0; dy.len()], vec![0.0; dy.len()]);
        let (mut dw, mut dw2) = (vec![0.0; w.len()], vec![0.0; w.len()]);
        // A third argument lists the densities instead: `conv_crossover 5 w2 0.01,0.03,0.05`.
        let listed: Option<Vec<f32>> = args.get(3).map(|s| {
            s.split(',').map(|d| d.parse().expect("densities: numbers like 0.05")).collect()
        });
        let densities: &[f32] = match &listed {
            Some(d) => d,
            None if w2 || cli || w1 => &[0.05, 0.10, 0.15, 0.20, 0.25],
            None => &[0.0, 0.01, 0.05, 0.10, 0.20, 0.35, 0.50, 1.0],
        };
        for &density in densities {
            let x: Vec<f32> =
                (0..batch * g.in_size()).map(|_| (rng.uniform() < density) as u8 as f32).collect();
            let (fd, fe) = ab(
                reps,
                || conv2d_forward(&g, &x, &w, None, &mut y),
                || conv2d_forward_spikes(&g, &x, &w, None, &mut y2),
            );
            let (wd, we) = ab(
                reps,
                || conv2d_backward_weight(&g, &x, &dy, &mut dw, None),
                || conv2d_backward_weight_spikes(&g, &x, &dy, &mut dw2, None),
            );
            println!(
                "| {label} | {:.0} % | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                density * 100.0,
                fd * 1e3,
                fe * 1e3,
                fe / fd,
                wd * 1e3,
                we * 1e3,
                we / wd
            );
        }
        // What dispatch itself costs: the one pass over the input.
        let x: Vec<f32> =
            (0..batch * g.in_size()).map(|_| (rng.uniform() < 0.05) as u8 as f32).collect();
        let (s, _) = ab(
            reps,
            || {
                std::hint::black_box(spike_stats(&x));
            },
            || {},
        );
        println!("| {label} | stats pass | {:.3} ms |", s * 1e3);
        let mut dx = vec![0.0; x.len()];
        let mut dx2 = vec![0.0; x.len()];
        let (old, new) = ab(
            reps,
            || conv2d_backward_data_col2im(&g, &dy, &w, &mut dx),
            || conv2d_backward_data(&g, &dy, &w, &mut dx2),
        );
        println!(
            "| {label} | backward data: GEMM+col2im {:.2} ms, as transposed conv {:.2} ms, ratio {:.2} |",
            old * 1e3,
            new * 1e3,
            new / old
        );
    }
}
