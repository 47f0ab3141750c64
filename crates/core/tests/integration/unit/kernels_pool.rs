//! Tests of `dualstream_core::kernels::pool`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `kernels::pool` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::kernels::geometry::PoolGeom;
    pub use dualstream_core::kernels::pool::*;
    pub use rayon::prelude::*;
}
#[test]
fn values_only_pooling_equals_the_argmax_kernel_bit_for_bit() {
    let mut rng = dualstream_core::rng::Rng::new(8);
    for (h, w, k, s) in [
        (4, 4, 2, 2),
        (5, 7, 2, 2),
        (9, 9, 2, 2),
        (2, 3, 2, 2),
        (7, 6, 3, 2),
        (6, 6, 2, 1),
        (28, 28, 2, 2),
        (13, 13, 2, 2),
        (6, 33, 2, 2),
    ] {
        for (ceil, density) in [(false, 0.0), (false, 0.1), (false, 1.0), (true, 0.1)] {
            let g = PoolGeom::with_ceil_mode(h, w, [k, k], [s, s], [0, 0], ceil).unwrap();
            let x: Vec<f32> = (0..5 * h * w)
                .map(|_| match rng.uniform() {
                    u if u < 0.03 => f32::NAN,
                    u if u < 0.6 => (rng.uniform() < density) as u8 as f32,
                    _ => rng.normal(),
                })
                .collect();
            let n = 5 * g.oh * g.ow;
            let (mut want, mut argmax, mut got) = (vec![0.0; n], vec![0; n], vec![7.0; n]);
            maxpool2d_forward(&g, &x, &mut want, &mut argmax);
            maxpool2d_values(&g, &x, &mut got);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{h}x{w} window {k} stride {s} density {density}");
        }
    }
}

#[test]
fn the_row_pass_matches_the_generic_window_loop_bit_for_bit() {
    let mut rng = dualstream_core::rng::Rng::new(9);
    for (h, w, k, s, p, ceil) in [
        (28, 28, 3, 2, 1, false),
        (14, 14, 3, 2, 1, false),
        (7, 9, 3, 2, 1, true),
        (6, 6, 2, 1, 0, false),
        (5, 8, 3, 3, 1, true),
        (9, 4, 2, 2, 1, false),
        (3, 3, 3, 1, 1, false),
        (1, 5, 3, 2, 1, false),
    ] {
        let g = PoolGeom::with_ceil_mode(h, w, [k, k], [s, s], [p, p], ceil).unwrap();
        for (density, nan) in [(0.0, false), (0.2, false), (1.0, false), (0.2, true)] {
            // Spike ties, real values, infinities and (in one plane of four) NaNs.
            let x: Vec<f32> = (0..4 * h * w)
                .map(|i| match rng.uniform() {
                    u if u < 0.05 && nan && i < h * w => f32::NAN,
                    u if u < 0.08 => f32::NEG_INFINITY,
                    u if u < 0.6 => (rng.uniform() < density) as u8 as f32,
                    _ => rng.normal(),
                })
                .collect();
            let n = 4 * g.oh * g.ow;
            let (mut want, mut want_at) = (vec![0.0; n], vec![0; n]);
            let (mut got, mut got_at) = (vec![7.0; n], vec![7; n]);
            let (ohw, hw) = (g.oh * g.ow, h * w);
            for q in 0..4 {
                let (xs, r) = (&x[q * hw..(q + 1) * hw], q * ohw..(q + 1) * ohw);
                maxpool_plane(&g, xs, &mut want[r.clone()], &mut want_at[r.clone()]);
                maxpool_window_plane(&g, xs, &mut got[r.clone()], &mut got_at[r]);
            }
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            let what = format!("{h}x{w} window {k} stride {s} padding {p} ceil {ceil}");
            assert_eq!((bits(&got), &got_at), (bits(&want), &want_at), "{what} {density}");
        }
    }
}

#[test]
fn the_spike_pool_matches_the_generic_window_loop_on_spike_maps() {
    let mut rng = dualstream_core::rng::Rng::new(6);
    for (h, w) in
        [(4, 4), (5, 7), (2, 2), (9, 9), (28, 28), (14, 14), (13, 13), (7, 7), (3, 35), (6, 33)]
    {
        let g = PoolGeom::new(h, w, [2, 2], [2, 2], [0, 0]).unwrap();
        let (ohw, hw) = (g.oh * g.ow, h * w);
        for density in [0.0, 0.01, 0.1, 0.5, 1.0] {
            let x: Vec<f32> = (0..2 * hw).map(|_| (rng.uniform() < density) as u8 as f32).collect();
            let run = |pool: fn(&PoolGeom, &[f32], &mut [f32], &mut [u32])| {
                let (mut y, mut a) = (vec![7.0; 2 * ohw], vec![7; 2 * ohw]);
                for p in 0..2 {
                    let r = p * ohw..(p + 1) * ohw;
                    pool(&g, &x[p * hw..(p + 1) * hw], &mut y[r.clone()], &mut a[r]);
                }
                (y.iter().map(|f| f.to_bits()).collect::<Vec<_>>(), a)
            };
            let want = run(maxpool_plane);
            assert_eq!(run(maxpool_2x2_spikes_plane), want, "{h}x{w} at density {density}");
            assert_eq!(
                run(maxpool_2x2_spikes_plane_scalar),
                want,
                "scalar, {h}x{w} at density {density}"
            );
        }
    }
}

#[test]
fn the_2x2_unpool_gives_the_scatter_bits() {
    let mut rng = dualstream_core::rng::Rng::new(7);
    for (h, w) in
        [(4, 4), (5, 7), (2, 2), (9, 9), (28, 28), (14, 14), (13, 13), (7, 7), (3, 35), (6, 33)]
    {
        let g = PoolGeom::new(h, w, [2, 2], [2, 2], [0, 0]).unwrap();
        let (ohw, hw) = (g.oh * g.ow, h * w);
        let x: Vec<f32> =
            (0..2 * hw).map(|_| (rng.uniform() < 0.3) as u8 as f32 + rng.normal()).collect();
        let (mut y, mut am) = (vec![0.0; 2 * ohw], vec![0; 2 * ohw]);
        maxpool2d_forward(&g, &x, &mut y, &mut am);
        // Signed zeros and a NaN among the gradients.
        let dy: Vec<f32> = (0..2 * ohw)
            .map(|i| match i % 11 {
                3 => -0.0,
                5 => 0.0,
                7 if i == 7 => f32::NAN,
                _ => rng.normal(),
            })
            .collect();
        let (mut want, mut got) = (vec![9.0; 2 * hw], vec![9.0; 2 * hw]);
        for p in 0..2 {
            let (r, ro) = (p * hw..(p + 1) * hw, p * ohw..(p + 1) * ohw);
            unpool_plane(&dy[ro.clone()], &am[ro.clone()], &mut want[r.clone()]);
            maxpool_2x2_unpool_plane(&g, &dy[ro.clone()], &am[ro], &mut got[r]);
        }
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want), "{h}x{w}");
    }
}

#[test]
fn the_2x2_path_matches_the_generic_window_loop_with_ties_and_nans() {
    let mut rng = dualstream_core::rng::Rng::new(5);
    for (h, w) in [
        (4, 4),
        (5, 7),
        (8, 3),
        (2, 2),
        (9, 9),
        (28, 28),
        (14, 14),
        (13, 13),
        (7, 7),
        (3, 35),
        (6, 33),
    ] {
        let g = PoolGeom::new(h, w, [2, 2], [2, 2], [0, 0]).unwrap();
        for density in [0.0, 0.01, 0.1, 0.5, 1.0] {
            // Spike maps (many ties) mixed with real values and a few NaNs.
            let x: Vec<f32> = (0..3 * h * w)
                .map(|_| match rng.uniform() {
                    u if u < 0.03 => f32::NAN,
                    u if u < 0.6 => (rng.uniform() < density) as u8 as f32,
                    _ => rng.normal(),
                })
                .collect();
            let (ohw, hw) = (g.oh * g.ow, h * w);
            let (mut y1, mut a1) = (vec![0.0; 3 * ohw], vec![0; 3 * ohw]);
            let (mut y2, mut a2) = (vec![0.0; 3 * ohw], vec![0; 3 * ohw]);
            for p in 0..3 {
                let (xs, r) = (&x[p * hw..(p + 1) * hw], p * ohw..(p + 1) * ohw);
                maxpool_2x2_plane(&g, xs, &mut y1[r.clone()], &mut a1[r.clone()]);
                maxpool_plane(&g, xs, &mut y2[r.clone()], &mut a2[r]);
            }
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!((bits(&y1), &a1), (bits(&y2), &a2), "{h}x{w} at density {density}");
            let (mut y3, mut a3) = (vec![0.0; 3 * ohw], vec![0; 3 * ohw]);
            for p in 0..3 {
                let r = p * ohw..(p + 1) * ohw;
                maxpool_2x2_plane_scalar(
                    &g,
                    &x[p * hw..(p + 1) * hw],
                    &mut y3[r.clone()],
                    &mut a3[r],
                );
            }
            assert_eq!((bits(&y3), &a3), (bits(&y2), &a2), "scalar, {h}x{w} at density {density}");
        }
    }
}
