//! Tests of `dualstream_core::kernels::batch_norm`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `kernels::batch_norm` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::kernels::batch_norm::*;
    pub use rayon::prelude::*;
}
use dualstream_core::rng::Rng;

/// Two-pass f64 statistics, element by element: the plain reference.
fn reference(x: &[f32], dy: &[f32], c: usize, hw: usize) -> Vec<[f64; 4]> {
    (0..c)
        .map(|ch| {
            let vals: Vec<(f64, f64)> = channel(x, ch, c, hw)
                .zip(channel(dy, ch, c, hw))
                .flat_map(|(a, b)| a.iter().zip(b).map(|(&u, &v)| (u as f64, v as f64)))
                .collect();
            let n = vals.len() as f64;
            let mu = vals.iter().map(|v| v.0).sum::<f64>() / n;
            let var = vals.iter().map(|v| (v.0 - mu) * (v.0 - mu)).sum::<f64>() / n;
            let mu32 = mu as f32 as f64;
            let sd = vals.iter().map(|v| v.1).sum::<f64>();
            let sdx = vals.iter().map(|v| v.1 * (v.0 - mu32)).sum::<f64>();
            [mu, var, sd, sdx]
        })
        .collect()
}

#[test]
fn avx2_lanes_give_the_plain_loops_bits() {
    #[cfg(target_arch = "x86_64")]
    if dualstream_core::kernels::simd::has(dualstream_core::kernels::simd::Feature::Avx2) {
        let mut rng = Rng::new(5);
        let a: Vec<f32> = (0..8 * 37).map(|_| rng.normal()).collect();
        let b: Vec<f32> = (0..a.len()).map(|_| rng.normal()).collect();
        let k = 0.37;
        let pair_grad = |x: f64, y: f64| (y, y * (x - k));
        let pair_stats = |x: f64, _: f64| ((x - k), (x - k) * (x - k));
        let mut plain = [[0.0f64; LANES]; 4];
        let mut simd = [[0.0f64; LANES]; 4];
        let [p0, p1, p2, p3] = &mut plain;
        lanes_plain(&a, &b, &pair_grad, p0, p1);
        lanes_plain(&a, &b, &pair_stats, p2, p3);
        let [s0, s1, s2, s3] = &mut simd;
        // SAFETY: AVX2 is present; the lengths are whole lanes.
        unsafe {
            lanes_avx2::<true>(&a, &b, k, s0, s1);
            lanes_avx2::<false>(&a, &b, k, s2, s3);
        }
        let bits =
            |v: &[[f64; LANES]; 4]| v.iter().flatten().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&plain), bits(&simd));
    }
}

#[test]
fn one_pass_lane_sums_match_the_two_pass_reference() {
    let mut rng = Rng::new(3);
    for (case, (b, c, hw)) in
        [(1, 1, 1), (2, 3, 7), (5, 4, 33), (3, 2, 64), (2, 5, 250)].into_iter().enumerate()
    {
        for kind in 0..4 {
            // spikes at 10 %, spikes at 100 %, normal values, a large mean with small spread
            let x: Vec<f32> = (0..b * c * hw)
                .map(|_| match kind {
                    0 => (rng.uniform() < 0.1) as u8 as f32,
                    1 => 1.0,
                    2 => rng.normal(),
                    _ => 1000.0 + 0.01 * rng.normal(),
                })
                .collect();
            let dy: Vec<f32> = (0..x.len()).map(|_| rng.normal()).collect();
            let (mut mean, mut var) = (vec![0.0; c], vec![0.0; c]);
            channel_stats(&x, c, hw, &mut mean, &mut var);
            let (mut sd, mut sdx) = (vec![0.0; c], vec![0.0; c]);
            backward_sums(&x, &dy, c, hw, &mean, &mut sd, &mut sdx);
            for (ch, want) in reference(&x, &dy, c, hw).iter().enumerate() {
                let what = format!("case {case} kind {kind} channel {ch}");
                assert!(
                    (mean[ch] as f64 - want[0]).abs() <= 1e-6 * want[0].abs().max(1.0),
                    "{what} mean"
                );
                assert!(
                    (var[ch] as f64 - want[1]).abs() <= 1e-5 * want[1].max(1e-6),
                    "{what} var {} vs {}",
                    var[ch],
                    want[1]
                );
                assert!((sd[ch] - want[2]).abs() <= 1e-9 * want[2].abs().max(1.0), "{what} sum dy");
                assert!(
                    (sdx[ch] - want[3]).abs() <= 1e-9 * want[3].abs().max(1.0),
                    "{what} sum dy xc"
                );
            }
        }
    }
}
