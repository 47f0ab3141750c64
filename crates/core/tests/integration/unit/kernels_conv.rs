//! Tests of `dualstream_core::kernels::conv`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `kernels::conv` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::kernels::conv::*;
    pub use dualstream_core::kernels::geometry::ConvGeom;
    pub use rayon::prelude::*;
}
use dualstream_core::rng::Rng;

fn randv(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.normal()).collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{what}[{i}]: got {a}, want {b}");
    }
}

/// Random geometries, including the awkward ones (stride > kernel, padding wider than the
/// dilated kernel's reach, odd sizes, groups, depthwise, pointwise).
fn random_geom(rng: &mut Rng) -> ConvGeom {
    loop {
        let groups = [1, 1, 2, 3][rng.below(4)];
        let depthwise = rng.below(4) == 0;
        let (c_in, c_out, groups) = if depthwise {
            let c = 1 + rng.below(5);
            (c, c * (1 + rng.below(2)), c)
        } else {
            (groups * (1 + rng.below(3)), groups * (1 + rng.below(3)), groups)
        };
        let k = [1 + rng.below(4), 1 + rng.below(4)];
        let s = [1 + rng.below(3), 1 + rng.below(3)];
        let p = [rng.below(3), rng.below(3)];
        let d = [1 + rng.below(2), 1 + rng.below(2)];
        let (h, w) = (1 + rng.below(9), 1 + rng.below(9));
        if let Some(g) = ConvGeom::new(c_in, c_out, h, w, k, s, p, d, groups) {
            return g;
        }
    }
}

#[test]
fn fast_conv_matches_reference_on_random_shapes() {
    let mut rng = Rng::new(11);
    for case in 0..300 {
        let g = random_geom(&mut rng);
        let batch = 1 + rng.below(5);
        let x = randv(&mut rng, batch * g.in_size());
        let w = randv(&mut rng, g.weight_len());
        let bias = randv(&mut rng, g.c_out);
        let use_bias = rng.below(2) == 0;
        let bias_opt = if use_bias { Some(&bias[..]) } else { None };
        let mut y = vec![f32::NAN; batch * g.out_size()];
        conv2d_forward(&g, &x, &w, bias_opt, &mut y);
        let want = conv2d_reference(&g, &x, &w, bias_opt);
        assert_close(&format!("case {case} {g:?} forward"), &y, &want, 1e-4);

        let dy = randv(&mut rng, y.len());
        let (rdx, rdw, rdb) = conv2d_reference_backward(&g, &x, &w, &dy);
        let mut dx = vec![f32::NAN; x.len()];
        conv2d_backward_data(&g, &dy, &w, &mut dx);
        assert_close(&format!("case {case} {g:?} dx"), &dx, &rdx, 1e-4);
        dx.fill(f32::NAN);
        conv2d_backward_data_col2im(&g, &dy, &w, &mut dx);
        assert_close(&format!("case {case} {g:?} dx col2im"), &dx, &rdx, 1e-4);

        // Gradients accumulate: start from a known non-zero value.
        let mut dw = vec![1.0; w.len()];
        let mut db = vec![1.0; g.c_out];
        conv2d_backward_weight(&g, &x, &dy, &mut dw, use_bias.then_some(&mut db[..]));
        let rdw1: Vec<f32> = rdw.iter().map(|v| v + 1.0).collect();
        assert_close(&format!("case {case} {g:?} dw"), &dw, &rdw1, 1e-4);
        if use_bias {
            let rdb1: Vec<f32> = rdb.iter().map(|v| v + 1.0).collect();
            assert_close(&format!("case {case} {g:?} db"), &db, &rdb1, 1e-4);
        } else {
            assert!(db.iter().all(|&v| v == 1.0));
        }
    }
}

#[test]
fn banded_forward_on_large_maps_matches_reference() {
    // Maps above BAND_MIN_PIXELS run in bands of rows; the sizes leave a partial last band.
    let mut rng = Rng::new(23);
    for (c_in, c_out, h, w, s, groups) in
        [(3, 4, 37, 45, 1, 1), (4, 6, 41, 33, 1, 2), (2, 3, 72, 72, 2, 1), (16, 16, 36, 36, 1, 1)]
    {
        let g = ConvGeom::new(c_in, c_out, h, w, [3, 3], [s, s], [1, 1], [1, 1], groups).unwrap();
        assert!(
            g.ohw() > BAND_MIN_PIXELS && !g.oh.is_multiple_of((BAND_PIXELS / g.ow).max(1)),
            "{g:?}"
        );
        let x = randv(&mut rng, 2 * g.in_size());
        let wt = randv(&mut rng, g.weight_len());
        let bias = randv(&mut rng, g.c_out);
        let mut y = vec![f32::NAN; 2 * g.out_size()];
        conv2d_forward(&g, &x, &wt, Some(&bias), &mut y);
        assert_close(
            &format!("{g:?} forward"),
            &y,
            &conv2d_reference(&g, &x, &wt, Some(&bias)),
            1e-4,
        );
        let dy = randv(&mut rng, y.len());
        let (rdx, _, _) = conv2d_reference_backward(&g, &x, &wt, &dy);
        let mut dx = vec![f32::NAN; x.len()];
        conv2d_backward_data(&g, &dy, &wt, &mut dx);
        assert_close(&format!("{g:?} dx"), &dx, &rdx, 1e-4);
    }
}

#[test]
fn backward_data_as_transposed_conv_matches_reference() {
    let mut rng = Rng::new(17);
    let mut taken = 0;
    for case in 0..40 {
        let groups = [1, 1, 2][rng.below(3)];
        let c_in = groups * [16, 20, 32][rng.below(3)];
        let c_out = groups * (1 + rng.below(9));
        let k = [1 + rng.below(4), 1 + rng.below(4)];
        let d = [1 + rng.below(2), 1 + rng.below(2)];
        let p = [rng.below(4), rng.below(4)];
        let (h, w) = (10 + rng.below(6), 10 + rng.below(6));
        let Some(g) = ConvGeom::new(c_in, c_out, h, w, k, [1, 1], p, d, groups) else {
            continue;
        };
        taken += transposed_geometry(&g).is_some() as usize;
        let batch = 1 + rng.below(3);
        let x = randv(&mut rng, batch * g.in_size());
        let wt = randv(&mut rng, g.weight_len());
        let dy = randv(&mut rng, batch * g.out_size());
        let (rdx, _, _) = conv2d_reference_backward(&g, &x, &wt, &dy);
        let mut dx = vec![f32::NAN; x.len()];
        conv2d_backward_data(&g, &dy, &wt, &mut dx);
        assert_close(&format!("case {case} {g:?}"), &dx, &rdx, 1e-4);
    }
    assert!(taken >= 10, "only {taken} cases took the transposed path");
}

#[test]
fn reference_conv_matches_a_hand_computed_case() {
    // 1x1x3x3 input 1..9, 2x2 kernel of ones, stride 1, no padding: sums of 2x2 windows.
    let g = ConvGeom::new(1, 1, 3, 3, [2, 2], [1, 1], [0, 0], [1, 1], 1).unwrap();
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let y = conv2d_reference(&g, &x, &[1.0; 4], Some(&[0.5]));
    assert_eq!(y, vec![12.5, 16.5, 24.5, 28.5]);
    // Padding 1, dilation 2: output (0,0) sees x[1][1] only (the others are padding).
    let g = ConvGeom::new(1, 1, 3, 3, [2, 2], [1, 1], [1, 1], [2, 2], 1).unwrap();
    let y = conv2d_reference(&g, &x, &[1.0; 4], None);
    assert_eq!((g.oh, g.ow), (3, 3));
    assert_eq!(y[0], 5.0);
}

#[test]
fn weight_gradient_is_bit_identical_across_runs_and_thread_counts() {
    let g = ConvGeom::new(6, 8, 11, 9, [3, 3], [2, 1], [1, 1], [1, 1], 2).unwrap();
    let batch = 37;
    let mut rng = Rng::new(5);
    let x = randv(&mut rng, batch * g.in_size());
    let dy = randv(&mut rng, batch * g.out_size());
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut dw = vec![0.0; g.weight_len()];
            let mut db = vec![0.0; g.c_out];
            conv2d_backward_weight(&g, &x, &dy, &mut dw, Some(&mut db));
            (dw, db)
        })
    };
    let first = run(4);
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    for threads in [4, 1, 2, 3, 8] {
        let again = run(threads);
        assert_eq!(bits(&first.0), bits(&again.0), "weight grad, {threads} threads");
        assert_eq!(bits(&first.1), bits(&again.1), "bias grad, {threads} threads");
    }
}

#[test]
fn geometry_rejects_degenerate_hyper_parameters() {
    assert!(ConvGeom::new(3, 4, 8, 8, [3, 3], [1, 1], [0, 0], [1, 1], 2).is_none());
    assert!(ConvGeom::new(4, 4, 8, 8, [0, 3], [1, 1], [0, 0], [1, 1], 1).is_none());
    assert!(ConvGeom::new(4, 4, 2, 2, [3, 3], [1, 1], [0, 0], [1, 1], 1).is_none());
    assert!(ConvGeom::new(4, 4, 8, 8, [3, 3], [0, 1], [0, 0], [1, 1], 1).is_none());
    let g = ConvGeom::new(4, 4, 2, 2, [3, 3], [1, 1], [1, 1], [1, 1], 4).unwrap();
    assert_eq!((g.oh, g.ow), (2, 2));
}

/// Time-step ranges `[T, N]` planes at a time: runs of `lens` steps that cut no leaf of the
/// reduction tree over `t_len * n` planes, as `WgradParts` needs.
fn step_ranges(t_len: usize, n: usize, lens: &[usize]) -> Option<Vec<(usize, usize)>> {
    let mut out = Vec::new();
    let (mut t, mut k) = (0, 0);
    while t < t_len {
        let len = lens[k % lens.len()].min(t_len - t);
        if t > 0 && wgrad_cuts_leaf(t_len * n, t * n) {
            return None;
        }
        out.push((t * n, (t + len) * n));
        t += len;
        k += 1;
    }
    Some(out)
}

/// The weight gradient collected over ranges of time steps (last range first, as a backward
/// over time chunks runs), dense kernel and event kernel, against the whole batch: the same
/// bits, with and without bias, added onto a gradient that already holds values.
#[test]
fn backward_weight_over_step_ranges_matches_the_whole_batch() {
    use dualstream_core::kernels::spike_conv::{
        conv2d_backward_weight_spikes, conv2d_backward_weight_spikes_finish,
        conv2d_backward_weight_spikes_range,
    };
    let mut rng = Rng::new(71);
    let g = ConvGeom::new(4, 6, 9, 7, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
    let mut tried = 0;
    for (t_len, n) in [(16, 8), (7, 2), (5, 3), (16, 1), (3, 1), (9, 4)] {
        let planes = t_len * n;
        let x: Vec<f32> =
            (0..planes * g.in_size()).map(|_| (rng.uniform() < 0.2) as u8 as f32).collect();
        let dy = randv(&mut rng, planes * g.out_size());
        let start_w = randv(&mut rng, g.weight_len());
        let start_b = randv(&mut rng, g.c_out);
        for lens in [&[2usize][..], &[4], &[3, 2], &[1], &[5]] {
            let Some(ranges) = step_ranges(t_len, n, lens) else { continue };
            tried += 1;
            for bias in [false, true] {
                for events in [false, true] {
                    let (mut dw, mut db) = (start_w.clone(), start_b.clone());
                    let (mut cw, mut cb) = (start_w.clone(), start_b.clone());
                    let mut parts = WgradParts::new(planes);
                    for &(a, b) in ranges.iter().rev() {
                        let xs = &x[a * g.in_size()..b * g.in_size()];
                        let dys = &dy[a * g.out_size()..b * g.out_size()];
                        if events {
                            conv2d_backward_weight_spikes_range(&g, xs, dys, a, bias, &mut parts);
                        } else {
                            conv2d_backward_weight_range(&g, xs, dys, a, bias, &mut parts);
                        }
                    }
                    let cb_ref = bias.then_some(&mut cb[..]);
                    let db_ref = bias.then_some(&mut db[..]);
                    if events {
                        conv2d_backward_weight_spikes(&g, &x, &dy, &mut dw, db_ref);
                        conv2d_backward_weight_spikes_finish(&g, &parts, &mut cw, cb_ref);
                    } else {
                        conv2d_backward_weight(&g, &x, &dy, &mut dw, db_ref);
                        conv2d_backward_weight_finish(&g, &parts, &mut cw, cb_ref);
                    }
                    let what = format!("T {t_len} N {n} lens {lens:?} bias {bias} events {events}");
                    assert!(cw.iter().zip(&dw).all(|(a, b)| a.to_bits() == b.to_bits()), "{what}");
                    assert!(cb.iter().zip(&db).all(|(a, b)| a.to_bits() == b.to_bits()), "{what}");
                }
            }
        }
    }
    assert!(tried >= 15, "only {tried} splits cut no leaf");
}

/// A leaf of two planes is cut by a boundary between them, a node boundary is not.
#[test]
fn wgrad_leaf_cuts() {
    // 15 planes: 0..7 | 7..15; 0..3 | 3..7; 3..5 | 5..7: plane 4 is inside the leaf 3..5.
    assert!(wgrad_cuts_leaf(15, 4));
    assert!(!wgrad_cuts_leaf(15, 3) && !wgrad_cuts_leaf(15, 7) && !wgrad_cuts_leaf(15, 5));
    assert!((1..16).all(|t| !wgrad_cuts_leaf(128, 8 * t)));
    assert!(!wgrad_cuts_leaf(128, 0) && !wgrad_cuts_leaf(128, 128));
}
