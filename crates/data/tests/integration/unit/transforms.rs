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

/// torchvision's values for elastic distortion and random erasing, written by
/// scripts/reference/transforms_fixture.py.
fn torchvision() -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/transforms-torchvision.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn num(v: &serde_json::Value) -> f32 {
    v.as_f64().unwrap() as f32
}

fn close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{what}[{i}]: {g} against torchvision's {w}");
    }
}

#[test]
fn gaussian_kernel_and_reflected_blur_match_torchvision() {
    let r = torchvision();
    for k in r["kernels"].as_array().unwrap() {
        let sigma = num(&k["sigma"]);
        close(
            &gaussian_kernel(sigma),
            &floats(&k["kernel"]),
            1e-7,
            &format!("kernel sigma {sigma}"),
        );
    }
    for b in r["blurs"].as_array().unwrap() {
        let (h, w, sigma) = (
            b["height"].as_u64().unwrap() as usize,
            b["width"].as_u64().unwrap() as usize,
            num(&b["sigma"]),
        );
        let got = blur_reflect(&floats(&b["noise"]), h, w, &gaussian_kernel(sigma));
        close(&got, &floats(&b["blurred"]), 2e-6, &format!("blur {h}x{w} sigma {sigma}"));
    }
}

#[test]
fn elastic_matches_torchvision_for_its_noise() {
    for e in torchvision()["elastic"].as_array().unwrap() {
        let shape: Vec<usize> =
            e["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let (h, w) = (shape[2], shape[3]);
        let (alpha, sigma) = (num(&e["alpha"]), num(&e["sigma"]));
        let what = format!("{shape:?} alpha {alpha} sigma {sigma}");
        let (dy, dx) =
            elastic_displacement(&floats(&e["noiseY"]), &floats(&e["noiseX"]), h, w, alpha, sigma);
        close(&dx, &floats(&e["dxPixels"]), 2e-5, &format!("{what}: dx"));
        close(&dy, &floats(&e["dyPixels"]), 2e-5, &format!("{what}: dy"));
        let frames = Tensor::from_vec(&shape, floats(&e["frames"])).unwrap();
        let out = elastic_warp(&frames, &dy, &dx).unwrap();
        close(out.data(), &floats(&e["out"]), 2e-5, &format!("{what}: frames"));
    }
}

#[test]
fn erase_and_erasing_box_sizes_match_torchvision() {
    let r = torchvision();
    let frames = Tensor::from_vec(&[2, 3, 12, 10], floats(&r["eraseFrames"])).unwrap();
    for e in r["erases"].as_array().unwrap() {
        let b: Vec<usize> =
            e["box"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let out = erase(&frames, (b[0], b[1], b[2], b[3]), &floats(&e["value"])).unwrap();
        assert_eq!(out.data(), floats(&e["out"]).as_slice(), "box {b:?}");
    }
    let boxes = &r["erasingBoxes"];
    let (h, w) =
        (boxes["height"].as_u64().unwrap() as usize, boxes["width"].as_u64().unwrap() as usize);
    let mut after_a_miss = 0;
    for case in boxes["cases"].as_array().unwrap() {
        let tries = case["tries"].as_array().unwrap();
        let fit = tries
            .iter()
            .enumerate()
            .find_map(|(k, t)| erasing_box_size(h, w, num(&t[0]), num(&t[1])).map(|s| (k, s)));
        let (k, (bh, bw)) = fit.expect("torchvision found a box");
        after_a_miss += (k > 0) as usize;
        assert_eq!(
            [bh as u64, bw as u64],
            [case["size"][0].as_u64().unwrap(), case["size"][1].as_u64().unwrap()]
        );
    }
    assert!(after_a_miss >= 5, "the cases include boxes found after misses: {after_a_miss}");
}

#[test]
fn random_elastic_is_seeded_the_same_for_every_plane_and_checks_arguments() {
    let one = ramp(&[1, 1, 14, 12]);
    let mut planes = Vec::new();
    for _ in 0..6 {
        planes.extend_from_slice(one.data());
    }
    let x = Tensor::from_vec(&[3, 2, 14, 12], planes).unwrap();
    let a = random_elastic(&x, 40.0, 2.0, 1.0, &mut Rng::new(5)).unwrap();
    let b = random_elastic(&x, 40.0, 2.0, 1.0, &mut Rng::new(5)).unwrap();
    let c = random_elastic(&x, 40.0, 2.0, 1.0, &mut Rng::new(6)).unwrap();
    assert_eq!(a.data(), b.data());
    assert_ne!(a.data(), c.data());
    assert_ne!(a.data(), x.data());
    let alone = random_elastic(&one, 40.0, 2.0, 1.0, &mut Rng::new(5)).unwrap();
    for plane in a.data().chunks(14 * 12) {
        assert_eq!(plane, alone.data(), "one field for every time step and channel");
    }
    // alpha 0 moves nothing; p 0 never applies.
    assert_eq!(random_elastic(&x, 0.0, 2.0, 1.0, &mut Rng::new(5)).unwrap().data(), x.data());
    assert_eq!(random_elastic(&x, 40.0, 2.0, 0.0, &mut Rng::new(5)).unwrap().data(), x.data());
    // p 0.5 applies about half the time.
    let applied = (0..400)
        .filter(|&s| {
            random_elastic(&one, 40.0, 2.0, 0.5, &mut Rng::new(s)).unwrap().data() != one.data()
        })
        .count();
    assert!((160..240).contains(&applied), "{applied} of 400");
    let r = &mut Rng::new(0);
    let msg = |e: dualstream_core::Error| e.to_string();
    assert!(msg(random_elastic(&x, -1.0, 2.0, 1.0, r).unwrap_err()).contains("elastic alpha"));
    assert!(msg(random_elastic(&x, 1.0, f32::NAN, 1.0, r).unwrap_err()).contains("elastic sigma"));
    assert!(msg(random_elastic(&x, 1.0, 2.0, 1.5, r).unwrap_err()).contains("elastic p"));
    assert!(elastic_warp(&x, &[0.0; 3], &[0.0; 3]).is_err());
}

#[test]
fn random_erasing_is_seeded_one_box_for_all_time_steps_and_checks_arguments() {
    let x = ramp(&[3, 2, 16, 16]);
    let x = Tensor::from_vec(x.shape(), x.data().iter().map(|v| v + 1.0).collect()).unwrap();
    let value = EraseValue::Constant(vec![0.0]);
    let run = |s: u64, p: f32| {
        random_erasing(&x, p, (0.02, 0.33), (0.3, 3.3), &value, &mut Rng::new(s)).unwrap()
    };
    assert_eq!(run(9, 1.0).data(), run(9, 1.0).data());
    let mut erased = 0;
    for s in 0..200 {
        let y = run(s, 1.0);
        let zeros: Vec<Vec<usize>> = y
            .data()
            .chunks(256)
            .map(|p| p.iter().enumerate().filter(|(_, v)| **v == 0.0).map(|(i, _)| i).collect())
            .collect();
        assert!(zeros.iter().all(|z| z == &zeros[0]), "seed {s}: the same box in every plane");
        let n = zeros[0].len();
        assert!(n <= (0.33f32 * 256.0).ceil() as usize + 16, "seed {s}: {n} pixels");
        erased += (n > 0) as usize;
    }
    assert!(erased > 190, "{erased} of 200 erased with p = 1");
    assert_eq!(run(3, 0.0).data(), x.data());
    let half = (0..400).filter(|&s| run(s, 0.5).data() != x.data()).count();
    assert!((160..240).contains(&half), "{half} of 400");
    // Random values: normal noise, the same in every time step.
    let y = random_erasing(&x, 1.0, (0.1, 0.3), (0.5, 2.0), &EraseValue::Random, &mut Rng::new(1))
        .unwrap();
    let planes: Vec<&[f32]> = y.data().chunks(256).collect();
    let before: Vec<&[f32]> = x.data().chunks(256).collect();
    let boxed: Vec<usize> = (0..256).filter(|&i| planes[0][i] != before[0][i]).collect();
    assert!(!boxed.is_empty());
    // Plane t * C + c: channel 0 at time steps 0, 1 and 2 hold the same noise, channel 1 its own.
    for &i in &boxed {
        assert_eq!(planes[0][i], planes[2][i]);
        assert_eq!(planes[0][i], planes[4][i]);
        assert_eq!(planes[1][i], planes[3][i]);
        assert_ne!(planes[0][i], planes[1][i]);
    }
    let r = &mut Rng::new(0);
    let msg = |e: dualstream_core::Error| e.to_string();
    let c0 = EraseValue::Constant(vec![0.0]);
    assert!(msg(random_erasing(&x, 2.0, (0.02, 0.33), (0.3, 3.3), &c0, r).unwrap_err())
        .contains("randomErasing p"));
    assert!(msg(random_erasing(&x, 0.5, (0.4, 0.3), (0.3, 3.3), &c0, r).unwrap_err())
        .contains("randomErasing scale"));
    assert!(msg(random_erasing(&x, 0.5, (0.02, 0.33), (0.0, 3.3), &c0, r).unwrap_err())
        .contains("randomErasing ratio"));
    let three = EraseValue::Constant(vec![0.0; 3]);
    assert!(msg(random_erasing(&x, 0.5, (0.02, 0.33), (0.3, 3.3), &three, r).unwrap_err())
        .contains("randomErasing value"));
    assert!(erase(&x, (10, 10, 8, 2), &[0.0]).is_err());
}
