//! Tests of `dualstream_core::kernels::spike_linear`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `kernels::spike_linear` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::kernels::spike_linear::*;
}
use dualstream_core::kernels::gemm::gemm;
use dualstream_core::rng::Rng;

fn close(a: &[f32], b: &[f32], what: &str) {
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{what}: element {i}: {x} vs {y}");
    }
}

/// Random weights `w` (`fo x fi`), bias and output gradient (`rows x fo`) of a linear, and
/// `w^T` (`fi x fo`) as the event kernels read it.
struct Problem {
    w: Vec<f32>,
    b: Vec<f32>,
    dy: Vec<f32>,
    wt: Vec<f32>,
}

fn problem(rng: &mut Rng, rows: usize, fi: usize, fo: usize) -> Problem {
    let w: Vec<f32> = (0..fo * fi).map(|_| rng.normal()).collect();
    let b: Vec<f32> = (0..fo).map(|_| rng.normal()).collect();
    let dy: Vec<f32> = (0..rows * fo).map(|_| rng.normal()).collect();
    let mut wt = vec![0.0; fi * fo];
    for o in 0..fo {
        for i in 0..fi {
            wt[i * fo + o] = w[o * fi + i];
        }
    }
    Problem { w, b, dy, wt }
}

#[test]
fn event_linear_matches_the_gemm_at_every_density_and_odd_sizes() {
    let mut rng = Rng::new(31);
    for &(rows, fi, fo) in &[(1, 1, 1), (7, 13, 5), (64, 64, 192), (33, 130, 17)] {
        for density in [0.0, 0.05, 0.2, 0.6, 1.0] {
            let x = rng.spikes(rows * fi, density);
            let Problem { w, b, dy, wt } = problem(&mut rng, rows, fi, fo);
            let what = format!("{rows}x{fi}->{fo} at {density}");
            let mut s = EventScratch::default();
            for bias in [None, Some(&b[..])] {
                let mut y = vec![f32::NAN; rows * fo];
                assert!(linear_forward_spikes(&x, fi, &wt, fo, bias, &mut y, 1.0, &mut s));
                let mut want = vec![0.0; rows * fo];
                if let Some(b) = bias {
                    want.chunks_exact_mut(fo).for_each(|r| r.copy_from_slice(b));
                }
                gemm(rows, fo, fi, 1.0, &x, false, &w, true, 1.0, &mut want);
                close(&y, &want, &what);
            }
            // The weight gradient, split into two ranges of inputs.
            let mut dwt = vec![f32::NAN; fi * fo];
            let half = fi / 2;
            let (lo, hi) = dwt.split_at_mut(half * fo);
            assert!(linear_weight_grad_spikes(&x, fi, &dy, fo, 0, lo));
            assert!(linear_weight_grad_spikes(&x, fi, &dy, fo, half, hi));
            let mut want = vec![0.0; fi * fo];
            gemm(fi, fo, rows, 1.0, &x, true, &dy, false, 0.0, &mut want);
            close(&dwt, &want, &format!("weight gradient {what}"));
            assert_eq!(spike_density(&x), Some(x.iter().sum::<f32>() / x.len() as f32), "{what}");
        }
    }
}

#[test]
fn event_linear_declines_dense_or_real_valued_blocks() {
    let mut rng = Rng::new(32);
    let (rows, fi, fo) = (8, 16, 4);
    let wt = vec![1.0; fi * fo];
    let mut y = vec![0.0; rows * fo];
    let mut s = EventScratch::default();
    let dense = rng.spikes(rows * fi, 0.9);
    assert!(!linear_forward_spikes(&dense, fi, &wt, fo, None, &mut y, 0.2, &mut s));
    let mut real = rng.spikes(rows * fi, 0.1);
    real[5] = 0.5;
    assert!(!linear_forward_spikes(&real, fi, &wt, fo, None, &mut y, 1.0, &mut s));
    assert!(!linear_weight_grad_spikes(&real, fi, &y, fo, 0, &mut vec![0.0; fi * fo]));
    assert_eq!(spike_density(&real), None);
}

/// Values with many zeros: sums of two spike trains (0, 1, 2) or, with `real`, normal values.
fn sparse_values(rng: &mut Rng, n: usize, density: f32, real: bool) -> Vec<f32> {
    let a = rng.spikes(n, density / 2.0);
    let b = rng.spikes(n, density / 2.0);
    a.iter()
        .zip(&b)
        .map(|(&a, &b)| match (a + b, real) {
            (s, true) if s > 0.0 => rng.normal(),
            (s, _) => s,
        })
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn sparse_linear_in_the_gemm_order_equals_the_gemm_bit_for_bit() {
    let mut rng = Rng::new(33);
    let shapes =
        [(1, 1, 1), (9, 13, 5), (64, 64, 192), (37, 130, 72), (700, 24, 17), (513, 64, 64)];
    for &(rows, fi, fo) in &shapes {
        for density in [0.0, 0.1, 0.3, 0.45, 1.0] {
            for real in [false, true] {
                let x = sparse_values(&mut rng, rows * fi, density, real);
                let Problem { w, b, dy, wt } = problem(&mut rng, rows, fi, fo);
                let what = format!("{rows}x{fi}->{fo} at {density} (real values: {real})");
                let mut s = EventScratch::default();
                let binary = scan_nonzeros(&x, fi, x.len(), &mut s).unwrap();
                assert_eq!(binary, x.iter().all(|&v| v == 0.0 || v == 1.0), "{what}");
                for bias in [None, Some(&b[..])] {
                    let mut y = vec![f32::NAN; rows * fo];
                    linear_forward_sparse(&x, &s, &wt, fo, bias, Order::Gemm, &mut y);
                    let mut want = vec![0.0; rows * fo];
                    let beta = match bias {
                        Some(b) => {
                            want.chunks_exact_mut(fo).for_each(|r| r.copy_from_slice(b));
                            1.0
                        }
                        None => 0.0,
                    };
                    gemm(rows, fo, fi, 1.0, &x, false, &w, true, beta, &mut want);
                    assert_eq!(bits(&y), bits(&want), "forward {what}, bias {}", bias.is_some());
                }
                // dW += dY^T X from a nonzero gradient, as the layer accumulates it: the
                // sparse form on dW^T in two ranges of inputs, the GEMM on dW.
                let start: Vec<f32> = (0..fo * fi).map(|_| rng.normal()).collect();
                let mut dwt = vec![0.0; fi * fo];
                for o in 0..fo {
                    for i in 0..fi {
                        dwt[i * fo + o] = start[o * fi + i];
                    }
                }
                let half = fi / 2;
                let (lo, hi) = dwt.split_at_mut(half * fo);
                assert!(linear_weight_grad_sparse(
                    &x,
                    fi,
                    &dy,
                    fo,
                    0,
                    lo,
                    Order::Gemm,
                    false,
                    &mut s
                ));
                assert!(linear_weight_grad_sparse(
                    &x,
                    fi,
                    &dy,
                    fo,
                    half,
                    hi,
                    Order::Gemm,
                    false,
                    &mut s
                ));
                // The depth blocks on their own, then added in order.
                let mut blocks = vec![0.0; fi * fo];
                for o in 0..fo {
                    for i in 0..fi {
                        blocks[i * fo + o] = start[o * fi + i];
                    }
                }
                let mut part = vec![f32::NAN; fi * fo];
                for r0 in (0..rows).step_by(GEMM_DEPTH) {
                    let r1 = rows.min(r0 + GEMM_DEPTH);
                    let (xb, dyb) = (&x[r0 * fi..r1 * fi], &dy[r0 * fo..r1 * fo]);
                    linear_weight_grad_block(xb, fi, dyb, fo, &mut part, &mut s);
                    blocks.iter_mut().zip(&part).for_each(|(b, &p)| *b += p);
                }
                assert_eq!(bits(&blocks), bits(&dwt), "depth blocks {what}");
                let mut want = start.clone();
                gemm(fo, fi, rows, 1.0, &dy, true, &x, false, 1.0, &mut want);
                for o in 0..fo {
                    for i in 0..fi {
                        let (got, w) = (dwt[i * fo + o], want[o * fi + i]);
                        assert_eq!(got.to_bits(), w.to_bits(), "weight gradient {what} ({o}, {i})");
                    }
                }
            }
        }
    }
}

#[test]
fn sparse_linear_in_the_event_order_adds_the_bias_first_and_sums_all_rows() {
    let mut rng = Rng::new(34);
    let (rows, fi, fo) = (300, 40, 70);
    let x = rng.spikes(rows * fi, 0.15);
    let wt: Vec<f32> = (0..fi * fo).map(|_| rng.normal()).collect();
    let b: Vec<f32> = (0..fo).map(|_| rng.normal()).collect();
    let dy: Vec<f32> = (0..rows * fo).map(|_| rng.normal()).collect();
    let mut s = EventScratch::default();
    let mut y = vec![f32::NAN; rows * fo];
    assert!(linear_forward_spikes(&x, fi, &wt, fo, Some(&b), &mut y, 0.2, &mut s));
    let mut dwt = vec![f32::NAN; fi * fo];
    assert!(linear_weight_grad_spikes(&x, fi, &dy, fo, 0, &mut dwt));
    for r in 0..rows {
        for o in 0..fo {
            let mut want = b[o];
            for i in 0..fi {
                if x[r * fi + i] == 1.0 {
                    want += wt[i * fo + o];
                }
            }
            assert_eq!(y[r * fo + o].to_bits(), want.to_bits(), "forward ({r}, {o})");
        }
    }
    for i in 0..fi {
        for o in 0..fo {
            let mut want = 0.0f32;
            for r in 0..rows {
                if x[r * fi + i] == 1.0 {
                    want += dy[r * fo + o];
                }
            }
            assert_eq!(dwt[i * fo + o].to_bits(), want.to_bits(), "weight gradient ({i}, {o})");
        }
    }
}

#[test]
fn nonzero_density_counts_every_value_at_every_length() {
    let mut rng = Rng::new(35);
    for len in [0, 1, 7, 31, 32, 33, 100, 1000, 4099] {
        for kind in 0..4 {
            let mut x = sparse_values(&mut rng, len, 0.3, kind == 1);
            if kind >= 2 && len > 0 {
                // One non-binary value (a NaN counts as nonzero), first or last.
                let at = if kind == 2 { 0 } else { len - 1 };
                x[at] = if kind == 2 { f32::NAN } else { 2.0 };
            }
            let nonzero = x.iter().filter(|&&v| v != 0.0).count();
            let binary = x.iter().all(|&v| v == 0.0 || v == 1.0);
            let want = if len == 0 { 0.0 } else { nonzero as f32 / len as f32 };
            let (d, b) = nonzero_density(&x);
            assert_eq!((d.to_bits(), b), (want.to_bits(), binary), "length {len}, kind {kind}");
        }
    }
}
