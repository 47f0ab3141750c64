//! Image folders against Pillow and torchvision (fixture tree and reference values written by
//! scripts/reference/imagefolder_fixture.py; no Python needed here): torchvision's
//! `ImageFolder` sample order and labels, Pillow's decoded pixels, the evaluation transform
//! (Resize + CenterCrop) and fixed-window resized crops.
//!
//! Tolerances, in 8-bit steps, measured on these files: PNG decodes exactly (0). JPEG decoders
//! legitimately differ from libjpeg-turbo (Pillow's) in IDCT rounding and chroma upsampling:
//! grey and CMYK files within 1 per sample, full-resolution chroma (4:4:4) within 2, and 4:2:0
//! chroma (baseline and progressive) within 8 at sharp colour edges (+-2 elsewhere); the mean
//! difference stays below 0.5 for every file. Resampling: Pillow rounds to 8 bits after each of
//! its two passes while this code keeps floats, so on exactly decoded input the results differ
//! by at most 1 step; on JPEG input the bound is the decoder's plus 1, with a mean below 0.75.
use std::path::{Path, PathBuf};

use dualstream_core::rng::Rng;
use dualstream_core::Tensor;
use dualstream_data::image_decode::read_image;
use dualstream_data::image_folder::{open_split, ImageFolder};
use dualstream_data::pipeline::{prepare, prepare_batch, rgb_tensor, PipelineSpec, Sample};
use dualstream_data::resample::{
    center_crop, resize, resize_window_antialiased, shorter_side_size,
};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn reference() -> Value {
    let text = std::fs::read_to_string(fixtures().join("imagefolder.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn ints(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

/// `[3, H, W]` floats in [0, 1] as interleaved 8-bit-scale values, to compare with Pillow's HWC.
fn to_hwc_255(t: &Tensor) -> Vec<f32> {
    let (h, w) = (t.shape()[1], t.shape()[2]);
    let mut out = Vec::with_capacity(3 * h * w);
    for i in 0..h * w {
        for c in 0..3 {
            out.push(t.data()[c * h * w + i] * 255.0);
        }
    }
    out
}

fn decode_tolerance(file: &str, mode: &str) -> f32 {
    if file.ends_with(".png") {
        0.0
    } else if mode == "L" || mode == "CMYK" {
        1.0
    } else if file.contains("444") {
        2.0
    } else {
        // 4:2:0 chroma (Pillow's default, most photographs): upsampling differs at sharp
        // colour edges.
        8.0
    }
}

/// (max, mean) absolute difference.
fn diff(a: &[f32], b: &[f32]) -> (f32, f32) {
    assert_eq!(a.len(), b.len());
    let mut max = 0f32;
    let mut sum = 0f64;
    for (x, y) in a.iter().zip(b) {
        let d = (x - y).abs();
        max = max.max(d);
        sum += d as f64;
    }
    (max, (sum / a.len() as f64) as f32)
}

#[test]
fn listing_matches_torchvision_image_folder() {
    let doc = reference();
    let root = fixtures().join("imagefolder");
    for split in ["train", "val"] {
        let folder = open_split(&root, split == "train").unwrap();
        let expected = &doc["order"][split];
        let classes: Vec<String> = expected["classes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        assert_eq!(folder.classes(), classes.as_slice());
        let samples = expected["samples"].as_array().unwrap();
        assert_eq!(folder.len(), samples.len(), "{split}: notes.txt is skipped");
        for (i, s) in samples.iter().enumerate() {
            assert_eq!(folder.path(i), root.join(s[0].as_str().unwrap()), "{split} sample {i}");
            assert_eq!(folder.label(i) as u64, s[1].as_u64().unwrap(), "{split} sample {i}");
        }
    }
}

#[test]
fn decoding_matches_pillow() {
    let doc = reference();
    let root = fixtures().join("imagefolder");
    for im in doc["images"].as_array().unwrap() {
        let file = im["file"].as_str().unwrap();
        let mode = im["mode"].as_str().unwrap();
        let got = read_image(&root.join(file)).unwrap();
        assert_eq!(
            (got.width as u64, got.height as u64),
            (im["width"].as_u64().unwrap(), im["height"].as_u64().unwrap()),
            "{file}"
        );
        let pixels: Vec<f32> = got.pixels.iter().map(|&v| v as f32).collect();
        let (max, mean) = diff(&pixels, &ints(&im["rgb"]));
        let tol = decode_tolerance(file, mode);
        assert!(
            max <= tol && mean < 0.5,
            "{file} ({mode}): max {max} mean {mean}, tolerance {tol}"
        );
    }
}

#[test]
fn evaluation_transform_matches_torchvision() {
    let doc = reference();
    let root = fixtures().join("imagefolder");
    let (size, crop) =
        (doc["resize"].as_u64().unwrap() as usize, doc["crop"].as_u64().unwrap() as usize);
    for im in doc["images"].as_array().unwrap() {
        let file = im["file"].as_str().unwrap();
        let x = rgb_tensor(&read_image(&root.join(file)).unwrap()).unwrap();
        let (h, w) = shorter_side_size(x.shape()[1], x.shape()[2], size);
        let y = center_crop(&resize(&x, h, w).unwrap(), crop, crop).unwrap();
        let (max, mean) = diff(&to_hwc_255(&y), &ints(&im["evaluation"]));
        let tol = decode_tolerance(file, im["mode"].as_str().unwrap()) + 1.0;
        assert!(max <= tol + 1e-3 && mean < 0.75, "{file}: max {max} mean {mean}, tolerance {tol}");
        // The pipeline's spec runs the same steps, then Normalize with ImageNet's statistics.
        let spec: PipelineSpec = serde_json::from_str(&format!(
            r#"{{"transforms":[{{"kind":"resize","size":{size}}},{{"kind":"centerCrop","size":[{crop},{crop}]}},{{"kind":"normalize","mean":[0.485,0.456,0.406],"std":[0.229,0.224,0.225]}}]}}"#
        ))
        .unwrap();
        let z = prepare(&Sample::ImageFile(root.join(file)), &spec, &mut Rng::new(0)).unwrap();
        let (mean, std) = ([0.485f32, 0.456, 0.406], [0.229f32, 0.224, 0.225]);
        for (k, (&a, &b)) in z.data().iter().zip(y.data()).enumerate() {
            let c = k / (crop * crop);
            assert!((a - (b - mean[c]) / std[c]).abs() < 1e-5, "{file} value {k}");
        }
    }
}

#[test]
fn resized_crops_match_torchvision() {
    let doc = reference();
    let root = fixtures().join("imagefolder");
    let mut checked = 0;
    for im in doc["images"].as_array().unwrap() {
        let file = im["file"].as_str().unwrap();
        let x = rgb_tensor(&read_image(&root.join(file)).unwrap()).unwrap();
        let tol = decode_tolerance(file, im["mode"].as_str().unwrap()) + 1.0;
        for c in im["resizedCrops"].as_array().unwrap() {
            let g = |k: &str| c[k].as_u64().unwrap() as usize;
            let size = &c["size"];
            let (oh, ow) = (size[0].as_u64().unwrap() as usize, size[1].as_u64().unwrap() as usize);
            let y = resize_window_antialiased(
                &x,
                (g("top"), g("left"), g("height"), g("width")),
                oh,
                ow,
            )
            .unwrap();
            let (max, mean) = diff(&to_hwc_255(&y), &ints(&c["hwc"]));
            assert!(
                max <= tol + 1e-3 && mean < 0.75,
                "{file} crop {checked}: max {max} mean {mean}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 30);
}

#[test]
fn training_transform_is_seeded_per_sample() {
    let root = fixtures().join("imagefolder");
    let folder = ImageFolder::open(&root.join("train")).unwrap();
    let spec: PipelineSpec = serde_json::from_str(
        r#"{"transforms":[{"kind":"randomResizedCrop","size":[12,12],"antialias":true},{"kind":"horizontalFlip"},{"kind":"normalize","mean":[0.485,0.456,0.406],"std":[0.229,0.224,0.225]}],"encoder":{"kind":"direct","timeSteps":2}}"#,
    )
    .unwrap();
    let samples: Vec<Sample> =
        (0..folder.len()).map(|i| Sample::ImageFile(folder.path(i).to_path_buf())).collect();
    let seeds: Vec<u64> = (0..folder.len() as u64).collect();
    let a = prepare_batch(&samples, &spec, &seeds).unwrap();
    let b = prepare_batch(&samples, &spec, &seeds).unwrap();
    assert_eq!(a.shape(), &[2, folder.len(), 3, 12, 12]);
    assert_eq!(a.data(), b.data());
    let other: Vec<u64> = seeds.iter().map(|s| s + 100).collect();
    assert_ne!(a.data(), prepare_batch(&samples, &spec, &other).unwrap().data());
}

#[test]
fn broken_files_name_the_file() {
    let broken = fixtures().join("imagefolder-broken");
    for (name, says) in
        [("truncated.jpg", "JPEG"), ("text.jpg", "a JPEG or PNG image"), ("bad-data.png", "PNG")]
    {
        let err = read_image(&broken.join(name)).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.code(), "ERR_FORMAT", "{text}");
        assert!(text.contains(name) && text.contains(says), "{name}: {text}");
        // In a batch the error still names the file.
        let spec = PipelineSpec::default();
        let err = prepare_batch(&[Sample::ImageFile(broken.join(name))], &spec, &[0]).unwrap_err();
        assert!(err.to_string().contains(name), "{err}");
    }
    let err = read_image(&broken.join("missing.jpg")).unwrap_err();
    assert_eq!(err.code(), "ERR_IO");
}

#[test]
fn layout_errors_say_what_is_expected() {
    let tmp = std::env::temp_dir().join(format!("dualstream-imagefolder-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    for class in ["a", "b"] {
        std::fs::create_dir_all(tmp.join("train").join(class)).unwrap();
        std::fs::copy(
            fixtures().join("imagefolder/train/ant/nested/rgb.png"),
            tmp.join("train").join(class).join("x.png"),
        )
        .unwrap();
    }
    std::fs::create_dir_all(tmp.join("val/a")).unwrap();
    std::fs::copy(fixtures().join("imagefolder/train/ant/nested/rgb.png"), tmp.join("val/a/y.PNG"))
        .unwrap();
    assert_eq!(open_split(&tmp, true).unwrap().len(), 2);
    let err = open_split(&tmp, false).unwrap_err().to_string();
    assert!(err.contains("missing [\"b\"]"), "{err}");
    std::fs::create_dir_all(tmp.join("val/b")).unwrap();
    let err = open_split(&tmp, false).unwrap_err().to_string();
    assert!(err.contains("val/b") && err.contains("without any image"), "{err}");
    let err = open_split(&tmp.join("nowhere"), true).unwrap_err().to_string();
    assert!(err.contains("train"), "{err}");
    std::fs::remove_dir_all(&tmp).unwrap();
}
