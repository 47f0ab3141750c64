//! Tests of `dualstream_core::kernels::pool_argmax`: the packed argmax (each window's maximum
//! as its index inside the window) against the in-plane layout of `kernels::pool`.
use dualstream_core::kernels::geometry::PoolGeom;
use dualstream_core::kernels::pool::{maxpool2d_backward, maxpool2d_forward};
use dualstream_core::kernels::pool_argmax::{
    maxpool2d_backward_packed, maxpool2d_forward_packed, pack_plane, packs, unpack_plane,
};
use dualstream_core::rng::Rng;

/// `(h, w, kernel, stride, padding, ceil)`.
type Geometry = (usize, usize, [usize; 2], [usize; 2], [usize; 2], bool);

/// The halving window, odd sizes, padding, ceil-mode partial windows, overlapping and
/// non-square windows, and the largest window that packs.
const GEOMETRIES: [Geometry; 10] = [
    (8, 8, [2, 2], [2, 2], [0, 0], false),
    (7, 9, [2, 2], [2, 2], [0, 0], false),
    (7, 9, [2, 2], [2, 2], [0, 0], true),
    (9, 11, [3, 3], [2, 2], [1, 1], false),
    (6, 6, [3, 3], [1, 1], [1, 1], true),
    (10, 7, [2, 3], [3, 2], [1, 1], true),
    (5, 5, [1, 1], [1, 1], [0, 0], false),
    (12, 13, [4, 4], [3, 3], [2, 2], true),
    (16, 16, [16, 16], [16, 16], [0, 0], false),
    (33, 20, [16, 16], [8, 4], [8, 8], true),
];

/// Planes of ties (spike values), normal values and NaNs.
fn planes(rng: &mut Rng, g: &PoolGeom, planes: usize) -> Vec<f32> {
    (0..planes * g.h * g.w)
        .map(|_| match rng.uniform() {
            u if u < 0.02 => f32::NAN,
            u if u < 0.5 => (rng.uniform() < 0.2) as u8 as f32,
            _ => rng.normal(),
        })
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

#[test]
fn packed_argmax_unpacks_to_the_in_plane_argmax() {
    let mut rng = Rng::new(5);
    for (h, w, k, s, p, ceil) in GEOMETRIES {
        let g = PoolGeom::with_ceil_mode(h, w, k, s, p, ceil).unwrap();
        assert!(packs(&g));
        let ohw = g.oh * g.ow;
        let x = planes(&mut rng, &g, 3);
        let (mut y, mut am) = (vec![0.0; 3 * ohw], vec![0u32; 3 * ohw]);
        maxpool2d_forward(&g, &x, &mut y, &mut am);
        for plane in am.chunks_exact(ohw) {
            let mut packed = vec![0u8; ohw];
            pack_plane(&g, plane, &mut packed);
            assert!(packed.iter().all(|&r| (r as usize) < k[0] * k[1]), "{g:?}");
            let mut back = vec![7u32; ohw];
            unpack_plane(&g, &packed, &mut back);
            assert_eq!(back, plane, "{g:?}");
        }
    }
}

#[test]
fn packed_pooling_gives_the_in_plane_layouts_values_and_gradients() {
    let mut rng = Rng::new(6);
    for (h, w, k, s, p, ceil) in GEOMETRIES {
        let g = PoolGeom::with_ceil_mode(h, w, k, s, p, ceil).unwrap();
        let (ohw, n) = (g.oh * g.ow, 4);
        let x = planes(&mut rng, &g, n);
        let (mut want, mut am) = (vec![0.0; n * ohw], vec![0u32; n * ohw]);
        maxpool2d_forward(&g, &x, &mut want, &mut am);
        let (mut got, mut packed) = (vec![7.0; n * ohw], vec![9u8; n * ohw]);
        maxpool2d_forward_packed(&g, &x, &mut got, &mut packed);
        assert_eq!(bits(&got), bits(&want), "{g:?}: values");
        // Gradients with -0.0 among them: the scatter's bits, overlapping windows adding up.
        let dy: Vec<f32> =
            (0..n * ohw).map(|i| if i % 7 == 0 { -0.0 } else { rng.normal() }).collect();
        let (mut dx_want, mut dx_got) = (vec![0.0; n * h * w], vec![3.0; n * h * w]);
        maxpool2d_backward(&g, &dy, &am, &mut dx_want);
        maxpool2d_backward_packed(&g, &dy, &packed, &mut dx_got);
        assert_eq!(bits(&dx_got), bits(&dx_want), "{g:?}: gradients");
    }
}
