//! Event-driven vs dense GEMM for the attention's spike x counts product `Y = s S M` (S a
//! binary L x D matrix, M the D x D counts of `K^T V`), and the packed vs dense count product,
//! on the heads of the benchmark Spikformers; then the event-driven vs GEMM linear on spike
//! rows (forward and weight gradient), at spike densities 0..100 %: prints time ratios, from
//! which `EVENT_MAX_DENSITY` in `kernels/spike_attention.rs` and the constants of
//! `kernels/spike_linear.rs` are taken.
//!
//! `cargo run --release -p dualstream-core --example attention_crossover [reps]`
//!
//! The two kernels of a pair run alternately (A, B, A, B, ...), so a neighbour's load on a
//! shared machine hits both alike; the ratio is the figure to read.
use dualstream_core::kernels::gemm::{gemm, gemm_strided};
use dualstream_core::kernels::spike_attention::{
    and_popcount, pack_rows, spikes_times_matrix, words_for,
};
use dualstream_core::kernels::spike_linear::{
    linear_forward_spikes, linear_weight_grad_spikes, EventScratch,
};
use dualstream_core::rng::Rng;

mod timing;
use timing::ab;

/// Heads per timed call: enough work to time one call reliably.
const HEADS: usize = 256;

fn main() {
    let reps: usize = std::env::args().nth(1).map_or(15, |s| s.parse().unwrap());
    let mut rng = Rng::new(1);
    println!("| L x D | density | event/dense (S M) | packed/dense (K^T V) |");
    println!("|---|---|---|---|");
    // (tokens, head channels): small Spikformer (49 x 16), Spikformer-4-384 (64 x 32), wider.
    for (l, d) in [(49, 16), (64, 32), (64, 64)] {
        for density in [0.02, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0] {
            let s: Vec<f32> = rng.spikes(HEADS * l * d, density);
            let v: Vec<f32> = rng.spikes(HEADS * l * d, density);
            let m: Vec<f32> = (0..d * d).map(|_| (rng.uniform() * 20.0).floor()).collect();
            let mut packed = vec![0u64; HEADS * l * words_for(d)];
            let (mut y, mut y_dense) = (vec![0.0f32; l * d], vec![0.0f32; l * d]);
            let mut acc = vec![0.0f32; d];
            let (event, dense) = ab(
                reps,
                || {
                    for h in 0..HEADS {
                        let sh = &s[h * l * d..(h + 1) * l * d];
                        let p = &mut packed[h * l * words_for(d)..];
                        pack_rows(sh, l, d, d, 1, p).unwrap();
                        spikes_times_matrix(p, l, d, &m, d, d, 0.125, &mut y, d, &mut acc);
                    }
                },
                || {
                    for h in 0..HEADS {
                        let sh = &s[h * l * d..(h + 1) * l * d];
                        gemm_strided(l, d, d, 0.125, sh, d, 1, &m, d, 1, 0.0, &mut y_dense, d, 1);
                    }
                },
            );
            // K^T V: columns of two L x D spike matrices packed along the tokens.
            let (mut ka, mut vb) = (vec![0u64; d * words_for(l)], vec![0u64; d * words_for(l)]);
            let (mut counts, mut counts_dense) = (vec![0.0f32; d * d], vec![0.0f32; d * d]);
            let (pop, gemm) = ab(
                reps,
                || {
                    for h in 0..HEADS {
                        let (kh, vh) = (&s[h * l * d..], &v[h * l * d..]);
                        pack_rows(kh, d, l, 1, d, &mut ka).unwrap();
                        pack_rows(vh, d, l, 1, d, &mut vb).unwrap();
                        and_popcount(&ka, &vb, d, d, words_for(l), &mut counts, d);
                    }
                },
                || {
                    for h in 0..HEADS {
                        let (kh, vh) = (&s[h * l * d..], &v[h * l * d..]);
                        gemm_strided(
                            d,
                            d,
                            l,
                            1.0,
                            kh,
                            1,
                            d,
                            vh,
                            d,
                            1,
                            0.0,
                            &mut counts_dense,
                            d,
                            1,
                        );
                    }
                },
            );
            println!(
                "| {l} x {d} | {:.0} % | {:.2} | {:.2} |",
                density * 100.0,
                event / dense,
                pop / gemm
            );
        }
    }
    println!();
    println!("| rows x in -> out | density | event/GEMM forward | event/GEMM weight gradient |");
    println!("|---|---|---|---|");
    // One parallel block of 64 rows (forward) and a step's rows (weight gradient); the
    // small Spikformer's q/k/v (64 -> 192) and MLP (128 -> 64), and Spikformer-4-384's fc1.
    for (fi, fo) in [(64, 192), (128, 64), (384, 1536)] {
        for density in [0.02, 0.1, 0.2, 0.3, 0.5] {
            let rows = 64;
            let x = rng.spikes(rows * fi, density);
            let w: Vec<f32> = (0..fo * fi).map(|_| rng.normal()).collect();
            let dy: Vec<f32> = (0..rows * fo).map(|_| rng.normal()).collect();
            let (mut y, mut y_dense) = (vec![0.0f32; rows * fo], vec![0.0f32; rows * fo]);
            let mut s = EventScratch::default();
            let (mut dwt, mut dw) = (vec![0.0f32; fi * fo], vec![0.0f32; fi * fo]);
            let (event, dense) = ab(
                reps,
                || assert!(linear_forward_spikes(&x, fi, &w, fo, None, &mut y, 1.0, &mut s)),
                || gemm(rows, fo, fi, 1.0, &x, false, &w, true, 0.0, &mut y_dense),
            );
            let (event_w, dense_w) = ab(
                reps,
                || assert!(linear_weight_grad_spikes(&x, fi, &dy, fo, 0, &mut dwt)),
                || gemm(fo, fi, rows, 1.0, &dy, true, &x, false, 1.0, &mut dw),
            );
            println!(
                "| {rows} x {fi} -> {fo} | {:.0} % | {:.2} | {:.2} |",
                density * 100.0,
                event / dense,
                event_w / dense_w
            );
        }
    }
}
