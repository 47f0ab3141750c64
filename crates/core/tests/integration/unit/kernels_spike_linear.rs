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

#[test]
fn event_linear_matches_the_gemm_at_every_density_and_odd_sizes() {
    let mut rng = Rng::new(31);
    for &(rows, fi, fo) in &[(1, 1, 1), (7, 13, 5), (64, 64, 192), (33, 130, 17)] {
        for density in [0.0, 0.05, 0.2, 0.6, 1.0] {
            let x = rng.spikes(rows * fi, density);
            let w: Vec<f32> = (0..fo * fi).map(|_| rng.normal()).collect();
            let b: Vec<f32> = (0..fo).map(|_| rng.normal()).collect();
            let dy: Vec<f32> = (0..rows * fo).map(|_| rng.normal()).collect();
            let mut wt = vec![0.0; fi * fo];
            for o in 0..fo {
                for i in 0..fi {
                    wt[i * fo + o] = w[o * fi + i];
                }
            }
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
