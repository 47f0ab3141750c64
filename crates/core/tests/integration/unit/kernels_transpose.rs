//! Tests of `dualstream_core::kernels::transpose`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `kernels::transpose` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::kernels::transpose::*;
}
const SHAPES: [(usize, usize, usize); 10] = [
    (1, 1, 1),
    (7, 3, 8),
    (8, 8, 8),
    (9, 8, 8),
    (14, 32, 32),
    (28, 32, 32),
    (29, 33, 40),
    (64, 17, 24),
    (16, 64, 64),
    (3, 9, 9),
];

#[test]
fn cells_become_planes_for_every_remainder() {
    for (n, c, pitch) in SHAPES {
        let cells: Vec<f32> = (0..n * pitch).map(|i| i as f32 * 0.5 - 3.0).collect();
        let bias: Vec<f32> = (0..c).map(|k| k as f32 * 0.25 - 1.0).collect();
        for with_bias in [false, true] {
            let stride = n + 5;
            let mut planes = vec![f32::NAN; c * stride];
            let b = with_bias.then_some(&bias[..]);
            cells_to_planes(&cells, pitch, n, c, b, &mut planes, stride);
            for co in 0..c {
                for p in 0..n {
                    let want = cells[p * pitch + co] + if with_bias { bias[co] } else { 0.0 };
                    assert_eq!(
                        planes[co * stride + p].to_bits(),
                        want.to_bits(),
                        "n {n} c {c} pitch {pitch} co {co} p {p}"
                    );
                }
                assert!(
                    planes[co * stride + n..(co + 1) * stride].iter().all(|v| v.is_nan()),
                    "gap written"
                );
            }
        }
    }
}

#[test]
fn planes_become_cells_and_the_rest_of_each_cell_is_kept() {
    for (n, c, pitch) in SHAPES {
        let stride = n + 3;
        let planes: Vec<f32> = (0..c * stride).map(|i| i as f32 * 0.25 + 1.0).collect();
        let mut cells = vec![f32::NAN; n * pitch];
        planes_to_cells(&planes, stride, n, c, &mut cells, pitch);
        for p in 0..n {
            for co in 0..pitch {
                let got = cells[p * pitch + co];
                if co < c {
                    assert_eq!(
                        got.to_bits(),
                        planes[co * stride + p].to_bits(),
                        "n {n} c {c} pitch {pitch} p {p} co {co}"
                    );
                } else {
                    assert!(got.is_nan(), "padding of cell {p} written");
                }
            }
        }
    }
}
