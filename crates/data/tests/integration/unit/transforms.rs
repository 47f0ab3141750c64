//! Tests of `dualstream_data::transforms`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `transforms` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::rng::Rng;
    pub use dualstream_core::Tensor;
    pub use dualstream_data::transforms::*;
}
use crate::unit::resample::ramp;

#[test]
fn temporal_delete_keeps_frames_in_order_and_is_seeded() {
    let x = ramp(&[8, 1, 1, 2]);
    let a = random_temporal_delete(&x, 5, &mut Rng::new(3)).unwrap();
    let b = random_temporal_delete(&x, 5, &mut Rng::new(3)).unwrap();
    assert_eq!(a.data(), b.data());
    assert_eq!(a.shape(), &[5, 1, 1, 2]);
    let frames: Vec<usize> = a
        .data()
        .chunks(2)
        .map(|c| {
            assert_eq!(c[1], c[0] + 1.0, "a frame stays whole");
            c[0] as usize / 2
        })
        .collect();
    assert!(frames.windows(2).all(|p| p[0] < p[1]), "{frames:?} in order, distinct");
    // Over many seeds every frame is kept sometimes, and each is kept 5/8 of the time.
    let mut kept = [0usize; 8];
    for s in 0..4000 {
        for c in random_temporal_delete(&x, 5, &mut Rng::new(s)).unwrap().data().chunks(2) {
            kept[c[0] as usize / 2] += 1;
        }
    }
    for k in kept {
        assert!((k as f32 / 4000.0 - 0.625).abs() < 0.03, "{kept:?}");
    }
    assert!(random_temporal_delete(&x, 9, &mut Rng::new(0)).is_err());
    assert!(random_temporal_delete(&x, 0, &mut Rng::new(0)).is_err());
}

#[test]
fn random_crop_is_a_shifted_window_with_zero_padding() {
    let x = ramp(&[2, 3, 3]);
    for seed in 0..50 {
        let y = random_crop(&x, 3, 3, 1, &mut Rng::new(seed)).unwrap();
        // Find the shift from the position of value 4 (the centre of plane 0), or infer it.
        let d = y.data();
        let mut shift = None;
        for dy in -1isize..=1 {
            for dx in -1isize..=1 {
                let ok = (0..2).all(|p| {
                    (0..3).all(|oy| {
                        (0..3).all(|ox| {
                            let (sy, sx) = (oy as isize + dy, ox as isize + dx);
                            let expect = if (0..3).contains(&sy) && (0..3).contains(&sx) {
                                (p * 9 + sy as usize * 3 + sx as usize) as f32
                            } else {
                                0.0
                            };
                            d[p * 9 + oy * 3 + ox] == expect
                        })
                    })
                });
                if ok {
                    shift = Some((dy, dx));
                }
            }
        }
        assert!(shift.is_some(), "seed {seed}: {d:?} is not a padded shift of the input");
    }
    let y = random_crop(&x, 2, 2, 0, &mut Rng::new(1)).unwrap();
    assert_eq!(y.shape(), &[2, 2, 2]);
    assert!(random_crop(&x, 6, 3, 1, &mut Rng::new(1)).is_err());
}

#[test]
fn horizontal_flip_mirrors_rows_with_probability_p() {
    let x = ramp(&[1, 2, 3]);
    let flipped = random_horizontal_flip(&x, 1.0, &mut Rng::new(0)).unwrap();
    assert_eq!(flipped.data(), &[2., 1., 0., 5., 4., 3.]);
    assert_eq!(random_horizontal_flip(&x, 0.0, &mut Rng::new(0)).unwrap().data(), x.data());
    let flips = (0..2000)
        .filter(|&s| random_horizontal_flip(&x, 0.5, &mut Rng::new(s)).unwrap().data()[0] == 2.0)
        .count();
    assert!((flips as f32 / 2000.0 - 0.5).abs() < 0.04, "{flips}");
}

#[test]
fn bilinear_interpolates_between_pixel_centres() {
    let p = [0.0, 1.0, 2.0, 3.0]; // 2x2
    assert_eq!(bilinear(&p, 2, 2, 0.0, 0.0), 0.0);
    assert_eq!(bilinear(&p, 2, 2, 0.5, 0.5), 1.5);
    assert_eq!(bilinear(&p, 2, 2, 0.0, 0.25), 0.25);
    assert_eq!(bilinear(&p, 2, 2, 1.0, 1.5), 1.5); // half of pixel (1,1) = 3, half outside = 0
}

#[test]
fn random_resized_crop_of_the_full_window_is_a_plain_resize() {
    // scale (1, 1) and ratio (1, 1) on a square image: the crop is the whole image.
    let x = ramp(&[1, 4, 4]);
    let y = random_resized_crop(&x, 4, 4, (1.0, 1.0), (1.0, 1.0), false, &mut Rng::new(5)).unwrap();
    assert_eq!(y.data(), x.data());
    // Downsizing 4x4 -> 2x2 averages each 2x2 block (half-pixel centres).
    let y = random_resized_crop(&x, 2, 2, (1.0, 1.0), (1.0, 1.0), false, &mut Rng::new(5)).unwrap();
    assert_eq!(y.data(), &[2.5, 4.5, 10.5, 12.5]);
    // A small crop stays inside the value range and has the output size.
    let y =
        random_resized_crop(&x, 3, 3, (0.1, 0.3), (0.75, 1.333), false, &mut Rng::new(9)).unwrap();
    assert_eq!(y.shape(), &[1, 3, 3]);
    assert!(y.data().iter().all(|&v| (0.0..=15.0).contains(&v)));
    assert!(random_resized_crop(&x, 2, 2, (0.0, 1.0), (1.0, 1.0), false, &mut Rng::new(0)).is_err());
}

#[test]
fn affine_shifts_whole_pixels_exactly_and_turns_a_square_a_quarter() {
    let x = ramp(&[2, 4, 4]);
    // angle 0, scale 1: a shift by (1, -2) moves every pixel, zeros come in.
    let y = affine(&x, 0.0, (1.0, -2.0), 1.0).unwrap();
    for p in 0..2 {
        for oy in 0..4 {
            for ox in 0..4 {
                let (sy, sx) = (oy as isize - 1, ox as isize + 2);
                let expect = if (0..4).contains(&sy) && (0..4).contains(&sx) {
                    (p * 16 + sy as usize * 4 + sx as usize) as f32
                } else {
                    0.0
                };
                assert_eq!(y.data()[p * 16 + oy * 4 + ox], expect, "plane {p} ({oy}, {ox})");
            }
        }
    }
    assert_eq!(affine(&x, 0.0, (0.0, 0.0), 1.0).unwrap().data(), x.data());
    // 90 degrees counter-clockwise is numpy's rot90: out[i][j] = in[j][n - 1 - i], every plane.
    let y = affine(&x, 90.0, (0.0, 0.0), 1.0).unwrap();
    for p in 0..2 {
        for i in 0..4 {
            for j in 0..4 {
                let expect = (p * 16 + j * 4 + (3 - i)) as f32;
                let got = y.data()[p * 16 + i * 4 + j];
                assert!((got - expect).abs() < 1e-4, "plane {p} ({i}, {j}): {got} vs {expect}");
            }
        }
    }
    // Scale 2 about the centre of a 3x3 plane: the centre stays, the corner (0, 0) samples
    // (0.5, 0.5), the mean of pixels 0, 1, 3 and 4; the corner (2, 2) the mean of 4, 5, 7, 8.
    let c = ramp(&[1, 3, 3]);
    let y = affine(&c, 0.0, (0.0, 0.0), 2.0).unwrap();
    assert_eq!(y.data()[4], 4.0);
    assert_eq!(y.data()[0], 2.0);
    assert_eq!(y.data()[8], 6.0);
    assert!(affine(&x, 0.0, (0.0, 0.0), 0.0).is_err());
    assert!(affine(&x, f32::NAN, (0.0, 0.0), 1.0).is_err());
}

#[test]
fn random_affine_is_seeded_bounded_and_the_same_for_every_plane() {
    let x = ramp(&[3, 1, 5, 5]);
    let a = random_affine(&x, 15.0, (0.2, 0.2), (0.9, 1.1), &mut Rng::new(7)).unwrap();
    let b = random_affine(&x, 15.0, (0.2, 0.2), (0.9, 1.1), &mut Rng::new(7)).unwrap();
    assert_eq!(a.data(), b.data());
    assert_eq!(a.shape(), x.shape());
    // The same draw for every plane: plane p is plane 0's transform of plane 0 + 25 p, so
    // where the sampled window lies inside the input (weights summing to 1) the planes differ
    // by exactly 25 p; the affine of a constant plane tells where that holds.
    let ones = Tensor::from_vec(&[3, 1, 5, 5], vec![1.0; 75]).unwrap();
    let inside = random_affine(&ones, 15.0, (0.2, 0.2), (0.9, 1.1), &mut Rng::new(7)).unwrap();
    let d = a.data();
    let mut checked = 0;
    for p in 1..3 {
        for k in 0..25 {
            if (inside.data()[k] - 1.0).abs() < 1e-6 {
                assert!(
                    (d[p * 25 + k] - d[k] - 25.0 * p as f32).abs() < 1e-3,
                    "plane {p} pixel {k}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 0);
    // degrees 0, no translate, scale 1: the identity for every seed.
    for s in 0..20 {
        let y = random_affine(&x, 0.0, (0.0, 0.0), (1.0, 1.0), &mut Rng::new(s)).unwrap();
        assert_eq!(y.data(), x.data());
    }
    // Shifts only: whole pixels within the bound (0.2 * 5 = 1), so some seeds shift.
    let mut shifted = 0;
    for s in 0..50 {
        let y = random_affine(&x, 0.0, (0.2, 0.2), (1.0, 1.0), &mut Rng::new(s)).unwrap();
        let found = (-1isize..=1).any(|dy| {
            (-1isize..=1)
                .any(|dx| affine(&x, 0.0, (dy as f32, dx as f32), 1.0).unwrap().data() == y.data())
        });
        assert!(found, "seed {s}: not a whole-pixel shift of at most 1");
        shifted += (y.data() != x.data()) as usize;
    }
    assert!(shifted > 10, "{shifted}");
    let r = &mut Rng::new(0);
    assert!(random_affine(&x, -1.0, (0.0, 0.0), (1.0, 1.0), r).is_err());
    assert!(random_affine(&x, 10.0, (1.5, 0.0), (1.0, 1.0), r).is_err());
    assert!(random_affine(&x, 10.0, (0.0, 0.0), (1.2, 1.1), r).is_err());
}

#[test]
fn normalize_uses_each_channels_mean_and_std() {
    let x = Tensor::from_vec(&[2, 2, 1, 1], vec![1., 2., 3., 4.]).unwrap();
    let y = normalize(&x, &[1.0, 2.0], &[2.0, 0.5]).unwrap();
    assert_eq!(y.data(), &[0.0, 0.0, 1.0, 4.0]);
    assert!(normalize(&x, &[0.0], &[1.0]).is_err());
    assert!(normalize(&x, &[0.0, 0.0], &[1.0, 0.0]).is_err());
}
