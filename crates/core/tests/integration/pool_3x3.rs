//! The 3x3, stride-2, padding-1 max pool of Spikformer's patch splitting (a separable kernel)
//! against the generic window loop: the same values and argmax bit for bit, over odd and even
//! sizes, spike maps full of ties, real values with infinities and signed zeros, and padding
//! edges; planes holding a NaN keep the generic loop's rule.
use dualstream_core::kernels::geometry::PoolGeom;
use dualstream_core::kernels::pool::{maxpool2d_forward, maxpool2d_values, maxpool_window_loop};
use dualstream_core::rng::Rng;

const PLANES: usize = 3;

/// `PLANES` planes of `h x w`: spikes of `density` (ties), normal values, `-inf`, `+inf` and
/// `-0.0`; with `nan`, a few NaNs in the first plane.
fn planes(rng: &mut Rng, h: usize, w: usize, density: f32, nan: bool) -> Vec<f32> {
    (0..PLANES * h * w)
        .map(|i| match rng.uniform() {
            u if nan && u < 0.04 && i < h * w => f32::NAN,
            u if u < 0.06 => f32::NEG_INFINITY,
            u if u < 0.08 => -0.0,
            u if u < 0.09 => f32::INFINITY,
            u if u < 0.6 => (rng.uniform() < density) as u8 as f32,
            _ => rng.normal(),
        })
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

#[test]
fn the_3x3_stride_2_pool_gives_the_window_loops_values_and_argmax() {
    let mut rng = Rng::new(21);
    let sizes = [
        (28, 28),
        (14, 14),
        (7, 7),
        (1, 1),
        (1, 2),
        (2, 1),
        (2, 2),
        (3, 3),
        (4, 4),
        (5, 8),
        (8, 5),
        (13, 6),
        (6, 13),
        (16, 17),
        (17, 16),
        (9, 30),
        (32, 32),
        (3, 34),
    ];
    for (h, w) in sizes {
        let g = PoolGeom::new(h, w, [3, 3], [2, 2], [1, 1]).unwrap();
        let (hw, ohw) = (h * w, g.oh * g.ow);
        for (density, nan) in [(0.0, false), (0.2, false), (1.0, false), (0.3, true)] {
            let x = planes(&mut rng, h, w, density, nan);
            let (mut want, mut want_at) = (vec![0.0; PLANES * ohw], vec![0u32; PLANES * ohw]);
            for p in 0..PLANES {
                let r = p * ohw..(p + 1) * ohw;
                maxpool_window_loop(
                    &g,
                    &x[p * hw..(p + 1) * hw],
                    &mut want[r.clone()],
                    &mut want_at[r],
                );
            }
            let (mut got, mut got_at) = (vec![7.0; PLANES * ohw], vec![7u32; PLANES * ohw]);
            maxpool2d_forward(&g, &x, &mut got, &mut got_at);
            let what = format!("{h}x{w} density {density} nan {nan}");
            assert_eq!(bits(&got), bits(&want), "{what}: values");
            assert_eq!(got_at, want_at, "{what}: argmax");
            let mut values = vec![7.0; PLANES * ohw];
            maxpool2d_values(&g, &x, &mut values);
            assert_eq!(bits(&values), bits(&want), "{what}: values without argmax");
        }
    }
}

#[test]
fn the_3x3_stride_2_pool_takes_the_first_of_tied_maxima_in_row_major_order() {
    // Every window of a constant plane ties: the argmax is the window's first input value,
    // the padding taking no part (row 0 and column 0 have no padded neighbour above/left).
    for (h, w) in [(6, 6), (7, 5), (5, 10)] {
        let g = PoolGeom::new(h, w, [3, 3], [2, 2], [1, 1]).unwrap();
        for value in [0.0, 1.0, f32::NEG_INFINITY] {
            let x = vec![value; h * w];
            let (mut y, mut at) = (vec![7.0; g.oh * g.ow], vec![7u32; g.oh * g.ow]);
            maxpool2d_forward(&g, &x, &mut y, &mut at);
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let first = (2 * oy).saturating_sub(1) * w + (2 * ox).saturating_sub(1);
                    assert_eq!(at[oy * g.ow + ox] as usize, first, "{h}x{w} of {value}");
                    assert_eq!(y[oy * g.ow + ox].to_bits(), value.to_bits());
                }
            }
        }
    }
}
