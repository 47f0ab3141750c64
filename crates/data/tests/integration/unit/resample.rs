//! Tests of `dualstream_data::resample`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `resample` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::Tensor;
    pub use dualstream_data::resample::*;
}
/// The values 0, 1, 2, ... laid out in `shape`.
pub(crate) fn ramp(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec(shape, (0..n).map(|v| v as f32).collect()).unwrap()
}

#[test]
fn same_size_is_the_identity_and_halving_averages_pairs() {
    let x = ramp(&[2, 3, 4]);
    assert_eq!(resize(&x, 3, 4).unwrap().data(), x.data());
    // 1x4 -> 1x2: support 2 around centres 1 and 3 -> weights (.25,.75,.75,.25)/2 clipped.
    let x = Tensor::from_vec(&[1, 1, 4], vec![0., 4., 8., 12.]).unwrap();
    let y = resize(&x, 1, 2).unwrap();
    // Output 0: centre 1.0, source 0..3 weights tri((i-0.5)/2) = .75,.75,.25 -> (0*.75+4*.75+8*.25)/1.75.
    assert!((y.data()[0] - 5.0 / 1.75).abs() < 1e-5, "{:?}", y.data());
    assert!((y.data()[1] - (4.0 * 0.25 + 8.0 * 0.75 + 12.0 * 0.75) / 1.75).abs() < 1e-5);
}

#[test]
fn a_part_of_a_resize_equals_cropping_the_whole_resize() {
    let n = 3 * 37 * 53;
    let x = Tensor::from_vec(&[3, 37, 53], (0..n).map(|v| ((v * 7919) % 255) as f32).collect())
        .unwrap();
    for (oh, ow, crop) in [(20, 29, 16), (50, 71, 44), (37, 53, 37), (9, 13, 9)] {
        let whole = center_crop(&resize(&x, oh, ow).unwrap(), crop, crop).unwrap();
        let fused = resize_center_crop(&x, oh, ow, crop, crop).unwrap();
        assert_eq!(fused.shape(), whole.shape());
        assert_eq!(fused.data(), whole.data(), "{oh}x{ow} crop {crop}");
    }
    // A crop larger than the resized image pads, as CenterCrop does.
    let padded = resize_center_crop(&x, 10, 12, 14, 14).unwrap();
    assert_eq!(padded.shape(), &[3, 14, 14]);
}

#[test]
fn shorter_side_and_centre_crop_follow_torchvision() {
    assert_eq!(shorter_side_size(375, 500, 256), (256, 341));
    assert_eq!(shorter_side_size(500, 375, 256), (341, 256));
    assert_eq!(shorter_side_size(256, 256, 224), (224, 224));
    // round(1.5) = 2 and round(0.5) = 0 (halves to even).
    assert_eq!(half_round_even(3), 2);
    assert_eq!(half_round_even(1), 0);
    assert_eq!(half_round_even(5), 2);
    assert_eq!(half_round_even(4), 2);
    let x = ramp(&[1, 4, 5]);
    let y = center_crop(&x, 2, 2).unwrap();
    // top = round(1.0) = 1, left = round(1.5) = 2.
    assert_eq!(y.data(), &[7., 8., 12., 13.]);
    let y = center_crop(&x, 6, 5).unwrap();
    assert_eq!(&y.data()[..5], &[0.; 5]);
    assert_eq!(&y.data()[5..10], &[0., 1., 2., 3., 4.]);
}
