//! One batch of training input from raw samples: events are integrated into frames, images are
//! transformed then encoded, and the samples are stacked time-major, `[T, N, C, H, W]` (or
//! `[N, C, H, W]` for images without an encoder). The spec is plain JSON so the TypeScript
//! loader describes it once and sends it with each batch.
//!
//! Randomness: sample j of a batch draws from `Rng::new(seeds[j])`, so the result does not depend
//! on which thread prepared which sample, nor on the batch the sample landed in.

use std::path::PathBuf;

use dualstream_core::rng::Rng;
use dualstream_core::{Error, Result, Tensor};
use rayon::prelude::*;
use serde::Deserialize;

use crate::encoders;
use crate::frames::{integrate, FrameOptions, Split};
use crate::image_decode::{read_image, RgbImage};
use crate::resample;
use crate::synthetic::{saccade_events, SaccadeOptions};
use crate::transforms;
use crate::EventStream;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "split", rename_all = "camelCase", deny_unknown_fields)]
pub enum FrameSpec {
    Number {
        frames: usize,
        #[serde(default = "one")]
        downscale: u16,
    },
    Time {
        frames: usize,
        #[serde(default = "one")]
        downscale: u16,
    },
    Duration {
        #[serde(rename = "durationUs")]
        duration_us: i64,
        #[serde(default = "one")]
        downscale: u16,
    },
}

fn one() -> u16 {
    1
}

impl FrameSpec {
    pub fn options(&self) -> FrameOptions {
        match *self {
            FrameSpec::Number { frames, downscale } => {
                FrameOptions::new(Split::Number { frames }).with_downscale(downscale)
            }
            FrameSpec::Time { frames, downscale } => {
                FrameOptions::new(Split::Time { frames }).with_downscale(downscale)
            }
            FrameSpec::Duration { duration_us, downscale } => {
                FrameOptions::new(Split::Duration { duration_us }).with_downscale(downscale)
            }
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum EncoderSpec {
    #[serde(rename_all = "camelCase")]
    Direct { time_steps: usize },
    #[serde(rename_all = "camelCase")]
    Poisson { time_steps: usize },
    #[serde(rename_all = "camelCase")]
    Latency { time_steps: usize },
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum TransformSpec {
    TemporalDelete {
        keep: usize,
    },
    RandomCrop {
        size: [usize; 2],
        #[serde(default)]
        padding: usize,
    },
    HorizontalFlip {
        #[serde(default = "half")]
        p: f32,
    },
    RandomResizedCrop {
        size: [usize; 2],
        #[serde(default = "default_scale")]
        scale: [f32; 2],
        #[serde(default = "default_ratio")]
        ratio: [f32; 2],
        /// Pillow's antialiased filter (torchvision on PIL images) instead of plain bilinear.
        #[serde(default)]
        antialias: bool,
    },
    /// torchvision's `RandomAffine` without shear: rotation, whole-pixel shift, scale.
    RandomAffine {
        degrees: f32,
        #[serde(default)]
        translate: [f32; 2],
        #[serde(default = "unit_scale")]
        scale: [f32; 2],
    },
    /// torchvision's `ElasticTransform(alpha, sigma)`, applied with probability `p`.
    Elastic {
        alpha: f32,
        sigma: f32,
        #[serde(default = "always")]
        p: f32,
    },
    /// torchvision's `RandomErasing(p, scale, ratio, value)`.
    RandomErasing {
        #[serde(default = "half")]
        p: f32,
        #[serde(default = "erasing_scale")]
        scale: [f32; 2],
        #[serde(default = "erasing_ratio")]
        ratio: [f32; 2],
        #[serde(default)]
        value: EraseValueSpec,
    },
    /// torchvision's `Resize` (antialiased bilinear): a number sets the shorter side.
    Resize {
        size: ResizeSize,
    },
    CenterCrop {
        size: [usize; 2],
    },
    Normalize {
        mean: Vec<f32>,
        std: Vec<f32>,
    },
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum ResizeSize {
    ShorterSide(usize),
    HeightWidth([usize; 2]),
}

/// `randomErasing`'s value: a number, one number per channel, or `"random"` (normal noise).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum EraseValueSpec {
    Constant(f32),
    PerChannel(Vec<f32>),
    Named(String),
}

impl Default for EraseValueSpec {
    fn default() -> Self {
        EraseValueSpec::Constant(0.0)
    }
}

impl EraseValueSpec {
    pub fn value(&self) -> Result<transforms::EraseValue> {
        match self {
            EraseValueSpec::Constant(v) => Ok(transforms::EraseValue::Constant(vec![*v])),
            EraseValueSpec::PerChannel(v) => Ok(transforms::EraseValue::Constant(v.clone())),
            EraseValueSpec::Named(name) if name == "random" => Ok(transforms::EraseValue::Random),
            EraseValueSpec::Named(name) => Err(Error::value(
                "randomErasing value",
                "a number, one number per channel, or \"random\"",
                format!("{name:?}"),
            )),
        }
    }
}

fn half() -> f32 {
    0.5
}
fn always() -> f32 {
    1.0
}
fn erasing_scale() -> [f32; 2] {
    [0.02, 0.33]
}
fn erasing_ratio() -> [f32; 2] {
    [0.3, 3.3]
}
fn default_scale() -> [f32; 2] {
    [0.08, 1.0]
}
fn unit_scale() -> [f32; 2] {
    [1.0, 1.0]
}
fn default_ratio() -> [f32; 2] {
    [0.75, 4.0 / 3.0]
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyntheticSpec {
    #[serde(default = "default_threshold")]
    pub threshold: f32,
    #[serde(default = "default_eps")]
    pub eps: f32,
    #[serde(default = "default_step")]
    pub step_us: i64,
    #[serde(default = "default_margin")]
    pub margin: usize,
    #[serde(default = "default_saccade")]
    pub saccade_us: i64,
}

fn default_threshold() -> f32 {
    SaccadeOptions::default().model.threshold
}
fn default_eps() -> f32 {
    SaccadeOptions::default().model.eps
}
fn default_step() -> i64 {
    SaccadeOptions::default().model.step_us
}
fn default_margin() -> usize {
    SaccadeOptions::default().margin
}
fn default_saccade() -> i64 {
    SaccadeOptions::default().saccade_us
}

impl SyntheticSpec {
    pub fn options(&self) -> SaccadeOptions {
        let mut o = SaccadeOptions {
            margin: self.margin,
            saccade_us: self.saccade_us,
            ..Default::default()
        };
        o.model.threshold = self.threshold;
        o.model.eps = self.eps;
        o.model.step_us = self.step_us;
        o
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipelineSpec {
    /// How events become frames; needed when a batch holds event samples.
    pub frames: Option<FrameSpec>,
    /// Images only: turn grey images into events first (N-MNIST-style saccades), then frames.
    pub synthetic: Option<SyntheticSpec>,
    /// Images only (without `synthetic`): how a `[C, H, W]` image becomes `[T, C, H, W]`.
    pub encoder: Option<EncoderSpec>,
    /// Applied in order: to frames after integration, to images before encoding.
    #[serde(default)]
    pub transforms: Vec<TransformSpec>,
}

pub enum Sample {
    Events(EventStream),
    /// `[C, H, W]`.
    Image(Tensor),
    /// Frames made earlier (e.g. read from a frame cache), `[T, C, H, W]`: only transformed.
    Frames(Tensor),
    /// A JPEG or PNG file, decoded to RGB `[3, H, W]` in [0, 1] (byte / 255), then as `Image`.
    ImageFile(PathBuf),
}

/// An RGB image as a `[3, H, W]` tensor of byte / 255 (torchvision's `ToTensor`).
pub fn rgb_tensor(image: &RgbImage) -> Result<Tensor> {
    let plane = image.width * image.height;
    let mut data = vec![0f32; 3 * plane];
    for (i, px) in image.pixels.chunks_exact(3).enumerate() {
        for c in 0..3 {
            data[c * plane + i] = px[c] as f32 / 255.0;
        }
    }
    Tensor::from_vec(&[3, image.height, image.width], data)
}

fn apply(t: &TransformSpec, x: &Tensor, rng: &mut Rng, is_sequence: bool) -> Result<Tensor> {
    match t {
        TransformSpec::TemporalDelete { keep } => {
            if !is_sequence {
                return Err(Error::value(
                    "temporalDelete",
                    "frames [T, C, H, W] (events, or an image after synthetic events)",
                    "an image [C, H, W]",
                ));
            }
            transforms::random_temporal_delete(x, *keep, rng)
        }
        TransformSpec::RandomCrop { size, padding } => {
            transforms::random_crop(x, size[0], size[1], *padding, rng)
        }
        TransformSpec::HorizontalFlip { p } => transforms::random_horizontal_flip(x, *p, rng),
        TransformSpec::RandomResizedCrop { size, scale, ratio, antialias } => {
            transforms::random_resized_crop(
                x,
                size[0],
                size[1],
                (scale[0], scale[1]),
                (ratio[0], ratio[1]),
                *antialias,
                rng,
            )
        }
        TransformSpec::RandomAffine { degrees, translate, scale } => transforms::random_affine(
            x,
            *degrees,
            (translate[0], translate[1]),
            (scale[0], scale[1]),
            rng,
        ),
        TransformSpec::Elastic { alpha, sigma, p } => {
            transforms::random_elastic(x, *alpha, *sigma, *p, rng)
        }
        TransformSpec::RandomErasing { p, scale, ratio, value } => transforms::random_erasing(
            x,
            *p,
            (scale[0], scale[1]),
            (ratio[0], ratio[1]),
            &value.value()?,
            rng,
        ),
        TransformSpec::Resize { size } => {
            let (oh, ow) = resize_size(x, size)?;
            resample::resize(x, oh, ow)
        }
        TransformSpec::CenterCrop { size } => resample::center_crop(x, size[0], size[1]),
        TransformSpec::Normalize { mean, std } => transforms::normalize(x, mean, std),
    }
}

/// The output size of a `resize` transform on `x`.
fn resize_size(x: &Tensor, size: &ResizeSize) -> Result<(usize, usize)> {
    let s = x.shape();
    if s.len() < 2 || s[s.len() - 1] == 0 || s[s.len() - 2] == 0 {
        return Err(Error::shape("resize input", "[..., H, W], not empty", s));
    }
    let (h, w) = (s[s.len() - 2], s[s.len() - 1]);
    let (oh, ow) = match *size {
        ResizeSize::ShorterSide(n) => resample::shorter_side_size(h, w, n),
        ResizeSize::HeightWidth([oh, ow]) => (oh, ow),
    };
    if oh == 0 || ow == 0 {
        return Err(Error::value(
            "resize size",
            "a positive size",
            format!("{oh}x{ow} for a {h}x{w} input"),
        ));
    }
    Ok((oh, ow))
}

/// Frames for a stream: the spec's frames, then its transforms.
fn prepare_events(events: &EventStream, spec: &PipelineSpec, rng: &mut Rng) -> Result<Tensor> {
    let frames = spec.frames.as_ref().ok_or_else(|| {
        Error::value(
            "data pipeline frames",
            "a frames spec (split by number, time or duration) for event samples",
            "none",
        )
    })?;
    let mut x = integrate(events, &frames.options())?;
    for t in &spec.transforms {
        x = apply(t, &x, rng, true)?;
    }
    Ok(x)
}

/// One sample, ready for the model: `[T, C, H, W]`, or `[C, H, W]` for an image without encoder.
pub fn prepare(sample: &Sample, spec: &PipelineSpec, rng: &mut Rng) -> Result<Tensor> {
    match sample {
        Sample::Events(events) => prepare_events(events, spec, rng),
        Sample::Frames(frames) => {
            if frames.shape().len() != 4 {
                return Err(Error::shape(
                    "data pipeline frames sample",
                    "[T, C, H, W]",
                    frames.shape(),
                ));
            }
            let mut x = frames.clone();
            for t in &spec.transforms {
                x = apply(t, &x, rng, true)?;
            }
            Ok(x)
        }
        Sample::ImageFile(path) => {
            let image = rgb_tensor(&read_image(path)?)?;
            prepare(&Sample::Image(image), spec, rng)
        }
        Sample::Image(image) => {
            if image.shape().len() != 3 {
                return Err(Error::shape("data pipeline image", "[C, H, W]", image.shape()));
            }
            if let Some(syn) = &spec.synthetic {
                let s = image.shape();
                if s[0] != 1 {
                    return Err(Error::shape("synthetic events image", "[1, H, W] (grey)", s));
                }
                let events = saccade_events(image.data(), s[1], s[2], &syn.options())?;
                return prepare_events(&events, spec, rng);
            }
            let mut x = image.clone();
            let mut i = 0;
            while i < spec.transforms.len() {
                // Resize then CenterCrop (the evaluation transform): only the crop is computed.
                if let (
                    TransformSpec::Resize { size },
                    Some(TransformSpec::CenterCrop { size: crop }),
                ) = (&spec.transforms[i], spec.transforms.get(i + 1))
                {
                    let (oh, ow) = resize_size(&x, size)?;
                    x = resample::resize_center_crop(&x, oh, ow, crop[0], crop[1])?;
                    i += 2;
                    continue;
                }
                x = apply(&spec.transforms[i], &x, rng, false)?;
                i += 1;
            }
            match &spec.encoder {
                None => Ok(x),
                Some(EncoderSpec::Direct { time_steps }) => encoders::direct(&x, *time_steps),
                Some(EncoderSpec::Poisson { time_steps }) => {
                    encoders::poisson(&x, *time_steps, rng)
                }
                Some(EncoderSpec::Latency { time_steps }) => encoders::latency(&x, *time_steps),
            }
        }
    }
}

/// Prepares every sample (in parallel) and stacks them: `[T, N, C, H, W]` for sequences,
/// `[N, C, H, W]` for plain images. All samples must come out the same shape.
pub fn prepare_batch(samples: &[Sample], spec: &PipelineSpec, seeds: &[u64]) -> Result<Tensor> {
    if samples.is_empty() || seeds.len() != samples.len() {
        return Err(Error::value(
            "data pipeline batch",
            "at least one sample and one seed per sample",
            format!("{} samples and {} seeds", samples.len(), seeds.len()),
        ));
    }
    let prepared: Vec<Tensor> = samples
        .par_iter()
        .zip(seeds.par_iter())
        .enumerate()
        .map(|(j, (s, &seed))| {
            prepare(s, spec, &mut Rng::new(seed)).map_err(|e| match e {
                Error::Value { at, expected, got } => {
                    Error::Value { at: format!("batch sample {j}: {at}"), expected, got }
                }
                other => other,
            })
        })
        .collect::<Result<_>>()?;
    let shape = prepared[0].shape().to_vec();
    if let Some((j, t)) = prepared.iter().enumerate().find(|(_, t)| t.shape() != shape.as_slice()) {
        return Err(Error::shape(
            format!("data pipeline batch sample {j} (sample 0 has shape {shape:?}; split by number or time for a fixed T)"),
            format!("{shape:?}"),
            t.shape(),
        ));
    }
    let n = prepared.len();
    if shape.len() == 4 {
        let (t_len, step) = (shape[0], shape[1] * shape[2] * shape[3]);
        let mut out = vec![0f32; t_len * n * step];
        for (j, x) in prepared.iter().enumerate() {
            for t in 0..t_len {
                out[(t * n + j) * step..(t * n + j + 1) * step]
                    .copy_from_slice(&x.data()[t * step..(t + 1) * step]);
            }
        }
        Tensor::from_vec(&[t_len, n, shape[1], shape[2], shape[3]], out)
    } else {
        let mut out = Vec::with_capacity(n * prepared[0].numel());
        for x in &prepared {
            out.extend_from_slice(x.data());
        }
        let mut full = vec![n];
        full.extend_from_slice(&shape);
        Tensor::from_vec(&full, out)
    }
}
