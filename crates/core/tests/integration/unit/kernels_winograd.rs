//! Tests of `dualstream_core::kernels::winograd`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `kernels::winograd` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::kernels::geometry::ConvGeom;
    pub use dualstream_core::kernels::winograd::plan::{Plan, Tile};
    pub use dualstream_core::kernels::winograd::*;
    pub use rayon::prelude::*;
}
use dualstream_core::kernels::conv::conv2d_reference;
use dualstream_core::rng::Rng;

/// Inputs at a given density of ones (spike maps) or, for density `None`, normal values
/// scaled by `scale`.
fn input(rng: &mut Rng, n: usize, density: Option<f32>, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| match density {
            Some(d) => (rng.uniform() < d) as u8 as f32,
            None => scale * rng.normal(),
        })
        .collect()
}

/// Kaiming-uniform weights, as `nn::Conv2d` initialises them: U(-1/sqrt(fan_in), ..).
fn kaiming(rng: &mut Rng, g: &ConvGeom) -> Vec<f32> {
    let bound = 1.0 / ((g.c_in * 9) as f32).sqrt();
    (0..g.weight_len()).map(|_| bound * (2.0 * rng.uniform() - 1.0)).collect()
}

/// Per output element, the magnitude a transform-based conv's rounding error scales with:
/// `sum_ci (sum of |x| over the 4x4 input patch of the element's 2x2 tile) * (sum of the
/// 9 |w|)`. Not the element's own `sum |x| |w|`: the transformed weights mix all 9 taps and
/// the transformed inputs all 16 patch values, whose contributions cancel in exact
/// arithmetic but not their rounding errors (a lone spike next to the element still costs
/// rounding on the element).
fn error_scale(g: &ConvGeom, x: &[f32], w: &[f32]) -> Vec<f32> {
    let batch = x.len() / g.in_size();
    let (h, wd) = (g.h as isize, g.w as isize);
    // The output tile the kernel uses for g, and its input patch (tile + 2).
    let m = if f4_wins(g) { 4 } else { 2 };
    let mut out = vec![0.0f32; batch * g.out_size()];
    for b in 0..batch {
        for co in 0..g.c_out {
            for oy in 0..g.h {
                for ox in 0..g.w {
                    let (y0, x0) = ((oy / m * m) as isize - 1, (ox / m * m) as isize - 1);
                    let span = m as isize + 2;
                    let mut s = 0.0f64;
                    for ci in 0..g.c_in {
                        let mut patch = 0.0f64;
                        for iy in (y0..y0 + span).filter(|&v| v >= 0 && v < h) {
                            for ix in (x0..x0 + span).filter(|&v| v >= 0 && v < wd) {
                                patch += x
                                    [((b * g.c_in + ci) * g.h + iy as usize) * g.w + ix as usize]
                                    .abs() as f64;
                            }
                        }
                        let k: f64 =
                            w[(co * g.c_in + ci) * 9..][..9].iter().map(|v| v.abs() as f64).sum();
                        s += patch * k;
                    }
                    out[((b * g.c_out + co) * g.h + oy) * g.w + ox] = s as f32;
                }
            }
        }
    }
    out
}

/// Largest `|got - want| / error_scale` over the elements (0 where the scale is 0, which
/// must then be exact).
fn scaled_error(g: &ConvGeom, x: &[f32], w: &[f32], got: &[f32], want: &[f32]) -> f32 {
    let scale = error_scale(g, x, w);
    let mut worst = 0.0f32;
    for (i, ((a, b), s)) in got.iter().zip(want).zip(&scale).enumerate() {
        let e = (a - b).abs();
        if *s == 0.0 {
            assert!(e == 0.0, "element {i}: got {a}, want {b} with an all-zero patch");
        } else {
            worst = worst.max(e / s);
        }
    }
    worst
}

/// Bound on [`scaled_error`]: in exact arithmetic every intermediate (transformed input
/// and weight, GEMM product, output sum) is at most its share of the scale (coefficients
/// 0, +-1 and 1/2; the products summed into one output of the output transform add up to at
/// most the scale). Rounding: 2 steps in the input transform, 2 in the weight transform,
/// `C_in` in the GEMM's accumulation, 3 in the output transform, each at most eps/2 of
/// the running magnitude: `eps * (C_in + 8)` in the worst case. Measured: below 0.5 eps.
fn tolerance(g: &ConvGeom) -> f32 {
    let t = (g.c_in + 8) as f32 * f32::EPSILON;
    // F(4x4, 3x3)'s transforms scale values by up to 10 (B^T's row sums) and 19 (A^T's)
    // before their rounding, against F(2x2)'s 2 and 3; measured below 8 eps where F(2x2)
    // stays below 0.5 eps (`WINOGRAD_ERRORS=1 cargo test ... -- --nocapture` prints them).
    if f4_wins(g) {
        t * 16.0
    } else {
        t
    }
}

#[test]
fn winograd_matches_reference_forward_on_random_shapes_and_densities() {
    if !applies(&ConvGeom::new(1, 1, 1, 1, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap()) {
        eprintln!("no AVX2/FMA on this CPU: the Winograd kernel is never used");
        return;
    }
    let mut rng = Rng::new(41);
    let densities = [Some(0.0), Some(0.01), Some(0.1), Some(0.5), Some(1.0), None];
    let channels = [1, 3, 17, 32, 64, 5, 8];
    let mut f4_cases = 0;
    for case in 0..48 {
        let c_in = channels[rng.below(channels.len())];
        let c_out = channels[(case + rng.below(channels.len())) % channels.len()];
        // Every third case on a map large enough for F(4x4, 3x3).
        let (h, w) = if case % 3 == 0 {
            (F4_MIN_SIDE + rng.below(17), F4_MIN_SIDE + rng.below(17))
        } else {
            (1 + rng.below(30), 1 + rng.below(30))
        };
        let g = ConvGeom::new(c_in, c_out, h, w, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
        let batch = 1 + rng.below(5);
        let density = densities[case % densities.len()];
        let x = input(&mut rng, batch * g.in_size(), density, 1.0);
        let wt = kaiming(&mut rng, &g);
        let bias = input(&mut rng, g.c_out, None, 0.1);
        let bias_opt = (case % 2 == 0).then_some(&bias[..]);
        let mut y = vec![f32::NAN; batch * g.out_size()];
        winograd_forward(&g, &x, &wt, bias_opt, &mut y);
        let want = conv2d_reference(&g, &x, &wt, bias_opt);
        let e = scaled_error(&g, &x, &wt, &y, &want);
        if std::env::var("WINOGRAD_ERRORS").is_ok() {
            eprintln!("F(4x4) {} c_in {} error/eps {}", f4_wins(&g), g.c_in, e / f32::EPSILON);
        }
        assert!(e <= tolerance(&g), "case {case} {g:?} batch {batch}: scaled error {e}");
        f4_cases += f4_wins(&g) as usize;
    }
    assert!(f4_cases >= 5, "only {f4_cases} cases ran as F(4x4, 3x3)");
}

/// The backward-data pass as `conv2d_backward_data` runs it (Winograd on dY with the
/// flipped kernel where [`wins`] says so), against the reference gradient, with dY at a
/// spiking net's scale and spike-map inputs (the weight gradient is not involved).
#[test]
fn backward_data_through_winograd_matches_reference() {
    use dualstream_core::kernels::conv::{conv2d_backward_data, conv2d_reference_backward};
    if !applies(&ConvGeom::new(1, 1, 1, 1, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap()) {
        return;
    }
    let mut rng = Rng::new(47);
    let channels = [16, 17, 32, 64, 3, 1];
    let mut through_winograd = 0;
    for case in 0..30 {
        let c_in = channels[rng.below(channels.len())];
        let c_out = channels[rng.below(4)];
        let (h, w) = (1 + rng.below(30), 1 + rng.below(30));
        let g = ConvGeom::new(c_in, c_out, h, w, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
        let gt = ConvGeom { c_in: c_out, c_out: c_in, ..g };
        through_winograd += wins(&gt) as usize;
        let batch = 1 + rng.below(4);
        let x = input(&mut rng, batch * g.in_size(), Some(0.1), 1.0);
        let wt = kaiming(&mut rng, &g);
        let dy = input(&mut rng, batch * g.out_size(), None, 1e-3);
        let (want, _, _) = conv2d_reference_backward(&g, &x, &wt, &dy);
        let mut dx = vec![f32::NAN; x.len()];
        conv2d_backward_data(&g, &dy, &wt, &mut dx);
        // The same bound as forward, for the conv of dY with the flipped kernel.
        let mut wf = vec![0.0; wt.len()];
        for co in 0..c_out {
            for ci in 0..c_in {
                for tap in 0..9 {
                    wf[(ci * c_out + co) * 9 + 8 - tap] = wt[(co * c_in + ci) * 9 + tap];
                }
            }
        }
        let e = scaled_error(&gt, &dy, &wf, &dx, &want);
        assert!(e <= tolerance(&gt), "case {case} {g:?}: scaled error {e}");
    }
    assert!(through_winograd >= 10, "only {through_winograd} cases ran through Winograd");
}

/// Rows wider than one output-transform step (`OUT_CHUNK` tiles) and taller maps split
/// into several bands within one sample.
#[test]
fn wide_tall_and_odd_shapes_match_reference() {
    let mut rng = Rng::new(53);
    // The last two: bands of 49 tiles (a last group of 8 lanes, `register_tile_narrow`)
    // with an odd number of output-channel blocks (9 channels: the last pairs with itself).
    let shapes = [
        (32, 32, 3, 2 * OUT_CHUNK + 37, 2),
        (64, 17, 45, 33, 1),
        (64, 9, 14, 14, 3),
        (17, 9, 28, 28, 2),
    ];
    for (c_in, c_out, h, w, batch) in shapes {
        let g = ConvGeom::new(c_in, c_out, h, w, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
        if !applies(&g) {
            return;
        }
        let x = input(&mut rng, batch * g.in_size(), None, 1.0);
        let wt = kaiming(&mut rng, &g);
        let mut y = vec![f32::NAN; batch * g.out_size()];
        winograd_forward(&g, &x, &wt, None, &mut y);
        let e = scaled_error(&g, &x, &wt, &y, &conv2d_reference(&g, &x, &wt, None));
        assert!(e <= tolerance(&g), "{g:?}: scaled error {e}");
    }
}

#[test]
fn paired_tile_rows_match_reference() {
    // Maps 13-16 wide and high run F(4x4), maps 7-8 wide F(2x2), two tile rows per eight
    // lanes; a band may hold an odd number of tile rows (its last row pairs with itself) and
    // pairs may straddle two samples. Real-valued inputs and spike maps, with and without bias.
    let mut rng = Rng::new(61);
    let f4 = [(32, 64, 14, 14, 5), (64, 32, 13, 16, 3), (17, 40, 15, 13, 7), (16, 32, 16, 16, 1)];
    let f2 = [(32, 32, 7, 7, 5), (24, 40, 8, 7, 3), (40, 16, 7, 8, 9), (32, 32, 5, 8, 2)];
    for (c_in, c_out, h, w, batch) in f4.into_iter().chain(f2) {
        let g = ConvGeom::new(c_in, c_out, h, w, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
        if !applies(&g) {
            return;
        }
        let tile = if f4_wins(&g) { Tile::F4 } else { Tile::F2 };
        assert!(pairs_tile_rows(&Plan::new(&g, batch, tile)), "{g:?}");
        for (k, density) in [None, Some(0.2)].into_iter().enumerate() {
            let x = input(&mut rng, batch * g.in_size(), density, 1.0);
            let wt = kaiming(&mut rng, &g);
            let bias = input(&mut rng, g.c_out, None, 0.1);
            let bias = (k == 1).then_some(&bias[..]);
            let mut y = vec![f32::NAN; batch * g.out_size()];
            winograd_forward(&g, &x, &wt, bias, &mut y);
            let e = scaled_error(&g, &x, &wt, &y, &conv2d_reference(&g, &x, &wt, bias));
            assert!(e <= tolerance(&g), "{g:?} batch {batch}: scaled error {e}");
        }
    }
}

#[test]
fn winograd_matches_a_hand_computed_case() {
    let g = ConvGeom::new(1, 1, 3, 3, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
    if !applies(&g) {
        return;
    }
    // x = 1..9 row-major, kernel all ones except centre 2: y = (3x3 window sum) + centre.
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let mut k = vec![1.0f32; 9];
    k[4] = 2.0;
    let mut y = vec![0.0; 9];
    winograd_forward(&g, &x, &k, Some(&[0.5]), &mut y);
    let want = [
        12.0 + 1.0,
        21.0 + 2.0,
        16.0 + 3.0,
        27.0 + 4.0,
        45.0 + 5.0,
        33.0 + 6.0,
        24.0 + 7.0,
        39.0 + 8.0,
        28.0 + 9.0,
    ];
    for (a, b) in y.iter().zip(want) {
        assert_eq!(*a, b + 0.5);
    }
}

#[test]
fn winograd_is_bit_identical_across_thread_counts() {
    let mut rng = Rng::new(43);
    for (c_in, c_out, h, w, batch) in [(7, 9, 13, 21, 11), (32, 32, 7, 7, 20), (3, 17, 30, 29, 3)] {
        let g = ConvGeom::new(c_in, c_out, h, w, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
        if !applies(&g) {
            return;
        }
        let x = input(&mut rng, batch * g.in_size(), None, 1.0);
        let wt = kaiming(&mut rng, &g);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let mut y = vec![0.0; batch * g.out_size()];
                winograd_forward(&g, &x, &wt, None, &mut y);
                y.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            })
        };
        let first = run(1);
        for threads in [2, 3, 4] {
            assert_eq!(first, run(threads), "{g:?}: {threads} threads");
        }
        // A sample's result does not depend on the rest of the batch (the banding).
        let mut one = vec![0.0; g.out_size()];
        winograd_forward(&g, &x[..g.in_size()], &wt, None, &mut one);
        let one: Vec<u32> = one.iter().map(|v| v.to_bits()).collect();
        assert_eq!(one[..], first[..g.out_size()], "{g:?}: first sample alone");
    }
}

#[test]
fn avx512_and_avx2_paths_give_the_same_bits() {
    // Register tiles: every lane remainder past the 32-tile steps (8, 16, 24), channel
    // blocks cut short (c_out 36, 44: a half block; 17: one row), F(2x2) and F(4x4), with
    // bias. Transforms in 16 lanes (maps four tiles wide): F(4x4) on 13-15 wide maps (16
    // keeps 8 lanes), F(2x2) on 7-8 wide ones, with groups of four tile rows that span
    // samples (5 and 11 rows high) or end early (a band's last tile rows); F(4x4) on maps
    // seven tiles wide (25-28) in pairs of tile rows, bands of an odd number of them.
    if !gemm_avx512()
        || !applies(&ConvGeom::new(16, 16, 8, 8, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap())
    {
        return;
    }
    let mut rng = Rng::new(67);
    let shapes = [
        (32, 32, 28, 28, 3),
        (64, 64, 14, 14, 5),
        (32, 32, 7, 7, 5),
        (20, 36, 9, 11, 3),
        (16, 44, 13, 16, 2),
        (48, 17, 10, 10, 4),
        (32, 32, 3, 3, 1),
        (32, 32, 13, 13, 3),
        (24, 40, 15, 15, 2),
        (32, 32, 8, 8, 3),
        (20, 32, 5, 7, 7),
        (32, 16, 11, 8, 3),
        (36, 20, 14, 14, 1),
        (64, 48, 28, 27, 2),
        (24, 40, 25, 26, 3),
        (32, 32, 26, 28, 2),
    ];
    for (c_in, c_out, h, w, batch) in shapes {
        let g = ConvGeom::new(c_in, c_out, h, w, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
        let x = input(&mut rng, batch * g.in_size(), None, 1.0);
        let wt = kaiming(&mut rng, &g);
        let bias = input(&mut rng, g.c_out, None, 0.1);
        let run = |wide: bool| {
            let mut y = vec![f32::NAN; batch * g.out_size()];
            forward_with(&g, &x, &wt, Some(&bias), &mut y, wide);
            y.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        let wide = run(true);
        let narrow = run(false);
        assert_eq!(wide, narrow, "{g:?} batch {batch}");
        let e =
            scaled_error(&g, &x, &wt, &f32s(&wide), &conv2d_reference(&g, &x, &wt, Some(&bias)));
        assert!(e <= tolerance(&g), "{g:?} batch {batch}: scaled error {e}");
    }
}

fn f32s(bits: &[u32]) -> Vec<f32> {
    bits.iter().map(|&b| f32::from_bits(b)).collect()
}

#[test]
fn a_sample_keeps_its_bits_in_every_register_tile_width() {
    // Bands of several samples run their lanes in 24-tile steps, then 16, then 8, where one
    // sample alone runs in other steps (16 and 8, or 24 and 8 at other offsets): each output
    // sums the same FMAs in input-channel order whichever tile holds it. Blocks cut short
    // (c_out 17: one row, 36: a half block), F(2x2) and F(4x4), with bias.
    let mut rng = Rng::new(71);
    let shapes = [
        (32, 32, 7, 7, 24),
        (64, 17, 7, 7, 32),
        (32, 36, 14, 14, 32),
        (16, 32, 28, 28, 16),
        (20, 24, 6, 9, 16),
    ];
    for (c_in, c_out, h, w, batch) in shapes {
        let g = ConvGeom::new(c_in, c_out, h, w, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
        if !applies(&g) {
            return;
        }
        let x = input(&mut rng, batch * g.in_size(), None, 1.0);
        let wt = kaiming(&mut rng, &g);
        let bias = input(&mut rng, g.c_out, None, 0.1);
        let mut y = vec![f32::NAN; batch * g.out_size()];
        winograd_forward(&g, &x, &wt, Some(&bias), &mut y);
        for s in 0..batch {
            let mut one = vec![f32::NAN; g.out_size()];
            winograd_forward(&g, &x[s * g.in_size()..][..g.in_size()], &wt, Some(&bias), &mut one);
            let want: Vec<u32> = one.iter().map(|v| v.to_bits()).collect();
            let got: Vec<u32> =
                y[s * g.out_size()..][..g.out_size()].iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, want, "{g:?} batch {batch}: sample {s}");
        }
    }
}
