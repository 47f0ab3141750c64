//! Tests of `dualstream_core::kernels::spike_conv`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `kernels::spike_conv` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::kernels::geometry::ConvGeom;
    pub use dualstream_core::kernels::spike_conv::*;
    pub use rayon::prelude::*;
}
use dualstream_core::kernels::conv::{
    conv2d_backward_weight, conv2d_reference, conv2d_reference_backward,
};
use dualstream_core::rng::Rng;

fn spikes(rng: &mut Rng, n: usize, density: f32) -> Vec<f32> {
    rng.spikes(n, density)
}

fn randv(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.normal()).collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{what}[{i}]: got {a}, want {b}");
    }
}

/// Random groups-1 geometries: odd sizes, stride > kernel, wide padding, dilation, and
/// channel counts that cross the 8/16/32/64-float blocks and the 64-channel mask word.
/// Shapes the event kernels are tested on: odd channel counts, every stride/padding/dilation.
pub(crate) fn random_geom(rng: &mut Rng) -> ConvGeom {
    loop {
        let c_in = [1, 3, 8, 31, 64, 65, 70][rng.below(7)];
        let c_out = [1, 5, 8, 16, 24, 33, 64, 72, 130][rng.below(9)];
        let k = [1 + rng.below(4), 1 + rng.below(4)];
        let s = [1 + rng.below(3), 1 + rng.below(3)];
        let p = [rng.below(3), rng.below(3)];
        let d = [1 + rng.below(2), 1 + rng.below(2)];
        let (h, w) = (1 + rng.below(9), 1 + rng.below(9));
        if let Some(g) = ConvGeom::new(c_in, c_out, h, w, k, s, p, d, 1) {
            return g;
        }
    }
}

#[test]
fn event_kernels_match_the_reference_at_every_density() {
    let mut rng = Rng::new(21);
    for case in 0..120 {
        let g = random_geom(&mut rng);
        let batch = 1 + rng.below(5);
        for density in [0.0, 0.01, 0.1, 0.5, 1.0] {
            let x = spikes(&mut rng, batch * g.in_size(), density);
            let w = randv(&mut rng, g.weight_len());
            let bias = randv(&mut rng, g.c_out);
            let use_bias = rng.below(2) == 0;
            let bias_opt = use_bias.then_some(&bias[..]);
            let what = format!("case {case} density {density} {g:?}");

            let mut y = vec![f32::NAN; batch * g.out_size()];
            conv2d_forward_spikes(&g, &x, &w, bias_opt, &mut y);
            assert_close(
                &format!("{what} forward"),
                &y,
                &conv2d_reference(&g, &x, &w, bias_opt),
                1e-4,
            );

            let dy = randv(&mut rng, y.len());
            let (_, rdw, rdb) = conv2d_reference_backward(&g, &x, &w, &dy);
            let mut dw = vec![1.0; w.len()];
            let mut db = vec![1.0; g.c_out];
            conv2d_backward_weight_spikes(&g, &x, &dy, &mut dw, use_bias.then_some(&mut db[..]));
            let plus1 = |v: &[f32]| v.iter().map(|a| a + 1.0).collect::<Vec<_>>();
            assert_close(&format!("{what} dw"), &dw, &plus1(&rdw), 1e-4);
            if use_bias {
                assert_close(&format!("{what} db"), &db, &plus1(&rdb), 1e-4);
            } else {
                assert!(db.iter().all(|&v| v == 1.0));
            }
        }
    }
}

#[test]
fn event_kernels_match_dense_on_a_reference_workload_shape() {
    let g = ConvGeom::new(32, 32, 14, 14, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
    let batch = 16;
    let mut rng = Rng::new(8);
    let x = spikes(&mut rng, batch * g.in_size(), 0.05);
    let w = randv(&mut rng, g.weight_len());
    let dy = randv(&mut rng, batch * g.out_size());
    let mut ye = vec![0.0; dy.len()];
    conv2d_forward_spikes(&g, &x, &w, None, &mut ye);
    // Against the plain direct convolution: the dense dispatch runs this shape as
    // Winograd F(4x4), whose rounding (checked in `winograd.rs`) is coarser than 1e-5.
    assert_close("forward", &ye, &conv2d_reference(&g, &x, &w, None), 1e-5);
    let (mut we, mut wd) = (vec![0.0; w.len()], vec![0.0; w.len()]);
    conv2d_backward_weight_spikes(&g, &x, &dy, &mut we, None);
    conv2d_backward_weight(&g, &x, &dy, &mut wd, None);
    assert_close("dw", &we, &wd, 1e-4);
}

#[test]
fn event_kernels_are_bit_identical_across_runs_and_thread_counts() {
    let g = ConvGeom::new(40, 24, 11, 9, [3, 3], [2, 1], [1, 1], [1, 1], 1).unwrap();
    let batch = 37;
    let mut rng = Rng::new(5);
    let x = spikes(&mut rng, batch * g.in_size(), 0.1);
    let w = randv(&mut rng, g.weight_len());
    let dy = randv(&mut rng, batch * g.out_size());
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut y = vec![0.0; dy.len()];
            conv2d_forward_spikes(&g, &x, &w, None, &mut y);
            let mut dw = vec![0.0; g.weight_len()];
            let mut db = vec![0.0; g.c_out];
            conv2d_backward_weight_spikes(&g, &x, &dy, &mut dw, Some(&mut db));
            (y, dw, db)
        })
    };
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    let first = run(4);
    for threads in [4, 1, 2, 3, 8] {
        let again = run(threads);
        assert_eq!(bits(&first.0), bits(&again.0), "forward, {threads} threads");
        assert_eq!(bits(&first.1), bits(&again.1), "weight grad, {threads} threads");
        assert_eq!(bits(&first.2), bits(&again.2), "bias grad, {threads} threads");
    }
}

#[test]
fn stats_and_dispatch_follow_binary_ness_and_density() {
    let g = ConvGeom::new(8, 8, 10, 10, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
    let mut rng = Rng::new(3);
    let n = 7 * g.in_size();
    let sparse = spikes(&mut rng, n, 0.05);
    let s = spike_stats(&sparse);
    assert!(s.binary);
    assert_eq!(s.active, sparse.iter().filter(|&&v| v == 1.0).count());
    assert_eq!(choose_path(&g, &sparse, FORWARD_EVENT_MAX_DENSITY), ConvPath::Events);
    assert_eq!(choose_path(&g, &sparse, WGRAD_EVENT_MAX_DENSITY), ConvPath::Events);
    let dense_spikes = spikes(&mut rng, n, 0.9);
    assert_eq!(choose_path(&g, &dense_spikes, FORWARD_EVENT_MAX_DENSITY), ConvPath::Dense);
    // One real value anywhere (here in a late chunk) sends the call to the dense kernel.
    let mut real = vec![0.0; 5 * STATS_CHUNK];
    real[4 * STATS_CHUNK + 3] = 0.5;
    assert!(!spike_stats(&real).binary);
    let g1 = ConvGeom::new(1, 8, 16, 16, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
    assert_eq!(choose_path(&g1, &real, 1.0), ConvPath::Dense);
    let x: Vec<f32> = (0..n).map(|_| rng.uniform()).collect();
    assert_eq!(choose_path(&g, &x, 1.0), ConvPath::Dense);
    // Grouped convs always run dense.
    let gg = ConvGeom::new(8, 8, 10, 10, [3, 3], [1, 1], [1, 1], [1, 1], 2).unwrap();
    assert_eq!(choose_path(&gg, &sparse, 1.0), ConvPath::Dense);
    assert_eq!(spike_stats(&[]).density(), 0.0);
}

#[test]
fn the_forward_decides_its_own_path_as_a_separate_stats_pass_would() {
    // Densities around the crossover (32-channel maps: Winograd's 10 %), a single
    // real value in the last sample's last plane, real inputs, silence.
    let g = ConvGeom::new(32, 16, 9, 9, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
    let max = forward_event_max_density(&g);
    let mut rng = Rng::new(8);
    let n = 12 * g.in_size();
    let weight = randv(&mut rng, g.weight_len());
    let mut late_real = spikes(&mut rng, n, 0.02);
    late_real[n - 2] = 0.5;
    let mut exactly_at = vec![0.0; n];
    let at = (max * n as f32) as usize;
    exactly_at.iter_mut().take(at).for_each(|v| *v = 1.0);
    let mut inputs = vec![
        ("silence", vec![0.0; n]),
        ("late real value", late_real),
        ("at the crossover", exactly_at),
    ];
    for density in [0.01, 0.08, 0.099, 0.102, 0.12, 0.5, 1.0] {
        inputs.push(("spikes", spikes(&mut rng, n, density)));
    }
    inputs.push(("real", (0..n).map(|_| rng.uniform()).collect()));
    let want_reference = |x: &[f32]| conv2d_reference(&g, x, &weight, None);
    for (what, x) in inputs {
        let mut y = vec![f32::NAN; 12 * g.out_size()];
        let stats = spike_stats(&x);
        let density = stats.density();
        for measure_first in [false, true] {
            y.fill(f32::NAN);
            let mut moments = vec![f64::NAN; 12 * g.c_out * 2];
            let (path, seen) = conv2d_forward_auto(
                &g,
                &x,
                &weight,
                None,
                &mut y,
                measure_first,
                Some(&mut moments),
            );
            assert_eq!(
                path,
                choose_path(&g, &x, max),
                "{what} at density {density}, measured first {measure_first}"
            );
            assert_close(what, &y, &want_reference(&x), 1e-4);
            // The output's moments, whichever kernel ran: exactly a BN's own pass over it.
            let mut want_moments = vec![0.0; moments.len()];
            dualstream_core::kernels::batch_norm::sample_moments(
                &y,
                g.c_out,
                g.ohw(),
                &mut want_moments,
            );
            assert_eq!(moments, want_moments, "{what}: moments ({path:?})");
            // Stats the call reports are those of the whole input.
            if let Some(seen) = seen {
                assert_eq!((seen.binary, seen.len), (stats.binary, stats.len), "{what}");
                if stats.binary {
                    assert_eq!(seen.active, stats.active, "{what}");
                }
            }
            assert!(
                measure_first || path == ConvPath::Dense || seen == Some(stats),
                "{what}: events without stats"
            );
        }
        // Grids are kept between calls: a pass the budget stopped must not leave one dirty.
        let sparse = spikes(&mut rng, n, 0.03);
        assert_eq!(
            conv2d_forward_auto(&g, &sparse, &weight, None, &mut y, false, None).0,
            ConvPath::Events
        );
        assert_close(&format!("sparse after {what}"), &y, &want_reference(&sparse), 1e-4);
    }
}

/// The event weight gradient of one sample, as the kernel sums it: for every weight, from
/// zero, the dY values its active input pixels reach, pixels in ascending order.
fn wgrad_in_pixel_order(g: &ConvGeom, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut dw = vec![0.0f32; g.weight_len()];
    let target = |n: usize, k: usize, s: usize, p: usize, d: usize, out: usize| {
        let t = (n + p).checked_sub(k * d)?;
        (t % s == 0 && t / s < out).then_some(t / s)
    };
    for co in 0..g.c_out {
        for c in 0..g.c_in {
            for i in 0..g.kh {
                for j in 0..g.kw {
                    let mut acc = 0.0f32;
                    for iy in 0..g.h {
                        let Some(oy) =
                            target(iy, i, g.stride[0], g.padding[0], g.dilation[0], g.oh)
                        else {
                            continue;
                        };
                        for ix in 0..g.w {
                            let ox = target(ix, j, g.stride[1], g.padding[1], g.dilation[1], g.ow);
                            if let (Some(ox), true) = (ox, x[(c * g.h + iy) * g.w + ix] != 0.0) {
                                acc += dy[(co * g.oh + oy) * g.ow + ox];
                            }
                        }
                    }
                    dw[((co * g.c_in + c) * g.kh + i) * g.kw + j] = acc;
                }
            }
        }
    }
    dw
}

#[test]
fn event_weight_gradient_sums_each_weight_in_pixel_order() {
    // The Spikformer stem's four convs at their measured input densities, a large map and
    // a strided one: each weight adds the dY values of its active pixels in ascending pixel
    // order, so one sample gives the scalar sum's bits. Any reordering of the kernel (bands
    // of rows, groups of channels or taps) must keep that order per weight.
    let mut rng = Rng::new(29);
    let shapes = [
        (32, 64, 14, 14, [1, 1], 0.3),
        (8, 16, 28, 28, [1, 1], 0.07),
        (16, 32, 28, 28, [1, 1], 0.05),
        (64, 64, 7, 7, [1, 1], 0.25),
        (20, 8, 64, 64, [1, 1], 0.2),
        (12, 40, 30, 22, [2, 1], 0.4),
        // Every split of the output channels into AVX2 blocks of 32, 16 and 8.
        (6, 24, 9, 11, [1, 1], 0.5),
        (5, 56, 8, 8, [1, 1], 0.6),
    ];
    for (c_in, c_out, h, w, stride, density) in shapes {
        let g = ConvGeom::new(c_in, c_out, h, w, [3, 3], stride, [1, 1], [1, 1], 1).unwrap();
        let x = spikes(&mut rng, g.in_size(), density);
        let dy = randv(&mut rng, g.out_size());
        let mut dw = vec![0.0; g.weight_len()];
        conv2d_backward_weight_spikes(&g, &x, &dy, &mut dw, None);
        let want = wgrad_in_pixel_order(&g, &x, &dy);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&dw), bits(&want), "{g:?} at density {density}");
    }
}
