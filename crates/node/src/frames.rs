//! Binding of dualstream-data's frames, frame cache, synthetic events and batch pipeline. Each
//! heavy call copies its typed arrays in and runs on the libuv pool (AsyncTask), so a DataLoader
//! can prepare the next batches while the current one trains.
use std::path::PathBuf;

use dualstream_core::{Error, Tensor};
use dualstream_data::frame_cache::{read_frames_file, write_frames_file, CacheKey, FrameCache};
use dualstream_data::frames::integrate;
use dualstream_data::pipeline::{prepare_batch, FrameSpec, PipelineSpec, Sample, SyntheticSpec};
use dualstream_data::synthetic::saccade_events;
use dualstream_data::EventStream;
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::data::{events_from_js, events_to_js, task, DataPromise, NativeEvents};
use crate::{js_error, parse_json, Result};

#[napi(object)]
pub struct NativeFrames {
    pub shape: Vec<u32>,
    pub data: Float32Array,
}

fn frames_to_js(t: Tensor) -> NativeFrames {
    NativeFrames {
        shape: t.shape().iter().map(|&d| d as u32).collect(),
        data: Float32Array::new(t.into_vec()),
    }
}

/// Frames `[T, 2, H, W]` (OFF, ON counts) of a stream; `frames_json` is a FrameSpec
/// (`{"split":"number","frames":16,"downscale":2}`, `"time"`, or `"duration"` with `durationUs`).
#[napi(ts_return_type = "Promise<NativeFrames>")]
pub fn integrate_events(
    events: NativeEvents,
    frames_json: String,
) -> Result<DataPromise<Tensor, NativeFrames>> {
    let spec: FrameSpec = parse_json("frames", &frames_json)?;
    let events = events_from_js("integrateEvents events", &events)?;
    Ok(task("integrateEvents", frames_to_js, move || integrate(&events, &spec.options())))
}

/// N-MNIST-style events of a grey image (values in [0, 1], `height x width`); `options_json` is a
/// SyntheticSpec (threshold, eps, stepUs, margin, saccadeUs; all optional).
#[napi(ts_return_type = "Promise<NativeEvents>")]
pub fn synthetic_events(
    image: Float32Array,
    height: u32,
    width: u32,
    options_json: String,
) -> Result<DataPromise<EventStream, NativeEvents>> {
    let spec: SyntheticSpec = parse_json("synthetic options", &options_json)?;
    if image.len() != (height as usize) * (width as usize) {
        return Err(js_error(
            "ERR_ARG",
            format!(
                "syntheticEvents image: expected {height} x {width} = {} values, received {}",
                height * width,
                image.len()
            ),
        ));
    }
    let (image, height, width) = (image.to_vec(), height as usize, width as usize);
    Ok(task("syntheticEvents", events_to_js, move || {
        saccade_events(&image, height, width, &spec.options())
    }))
}

/// One sample of a batch: either events, an image `[C, H, W]` (or ready frames `[T, C, H, W]`)
/// with its shape, or a JPEG/PNG file decoded while the batch is prepared.
#[napi(object)]
pub struct NativeSample {
    pub events: Option<NativeEvents>,
    pub image: Option<Float32Array>,
    pub shape: Option<Vec<u32>>,
    pub file: Option<String>,
}

/// Integrates / transforms / encodes a batch of samples and stacks it (`[T, N, C, H, W]` for
/// sequences, `[N, C, H, W]` for plain images). `seeds[j]` seeds sample j's augmentation.
#[napi(ts_return_type = "Promise<NativeFrames>")]
pub fn prepare_batch_native(
    samples: Vec<NativeSample>,
    spec_json: String,
    seeds: Vec<u32>,
) -> Result<DataPromise<Tensor, NativeFrames>> {
    let spec: PipelineSpec = parse_json("data pipeline", &spec_json)?;
    let mut out = Vec::with_capacity(samples.len());
    for (j, s) in samples.iter().enumerate() {
        out.push(match (&s.events, &s.image) {
            (None, None) if s.file.is_some() => {
                Sample::ImageFile(std::path::PathBuf::from(s.file.as_deref().unwrap_or_default()))
            }
            (Some(e), None) if s.file.is_none() => {
                Sample::Events(events_from_js(&format!("batch sample {j} events"), e)?)
            }
            (None, Some(img)) if s.file.is_none() => {
                let shape: Vec<usize> =
                    s.shape.as_deref().unwrap_or(&[]).iter().map(|&d| d as usize).collect();
                let t = Tensor::from_vec(&shape, img.to_vec()).map_err(|_| {
                    js_error(
                        "ERR_ARG",
                        format!(
                            "batch sample {j}: image of {} values does not match shape {shape:?}",
                            img.len()
                        ),
                    )
                })?;
                if shape.len() == 4 {
                    Sample::Frames(t)
                } else {
                    Sample::Image(t)
                }
            }
            _ => {
                return Err(js_error(
                    "ERR_ARG",
                    format!("batch sample {j}: expected exactly one of events, image or file"),
                ))
            }
        });
    }
    // Two uint32 halves would be nicer, but JS seeds are uint32 throughout the package.
    let seeds: Vec<u64> = seeds.into_iter().map(u64::from).collect();
    Ok(task("prepareBatch", frames_to_js, move || prepare_batch(&out, &spec, &seeds)))
}

#[napi(object)]
pub struct CacheLookup {
    /// `hit`, `miss` (no file, or a file of another key) or `damaged` (unreadable; rebuild it).
    pub status: String,
    pub frames: Option<NativeFrames>,
    pub reason: Option<String>,
}

/// A cache lookup's status, frames (on a hit) and reason (when damaged).
type LookupOutcome = (String, Option<Tensor>, Option<String>);

fn cache_key(source: &str, part: &str, frames: &FrameSpec) -> dualstream_core::Result<CacheKey> {
    CacheKey::for_file(&PathBuf::from(source), part, frames.options())
}

/// Looks up the cached frames of `source` (+ `part`, e.g. a labelled window) in `dir`.
#[napi(ts_return_type = "Promise<CacheLookup>")]
pub fn frame_cache_lookup(
    dir: String,
    source: String,
    part: String,
    frames_json: String,
) -> Result<DataPromise<LookupOutcome, CacheLookup>> {
    let spec: FrameSpec = parse_json("frames", &frames_json)?;
    let found = |(status, frames, reason): LookupOutcome| CacheLookup {
        status,
        frames: frames.map(frames_to_js),
        reason,
    };
    Ok(task("frameCacheLookup", found, move || {
        let cache = FrameCache::new(&dir)?;
        let key = cache_key(&source, &part, &spec)?;
        Ok(match cache.lookup(&key) {
            Ok(Some(f)) => ("hit".into(), Some(f.to_tensor()), None),
            Ok(None) => ("miss".into(), None, None),
            Err(e) => ("damaged".into(), None, Some(format!("[{}] {e}", e.code()))),
        })
    }))
}

/// Integrates `events` (read from `source`) and stores the frames in `dir` atomically.
#[napi(ts_return_type = "Promise<NativeFrames>")]
pub fn frame_cache_build(
    dir: String,
    source: String,
    part: String,
    frames_json: String,
    events: NativeEvents,
) -> Result<DataPromise<Tensor, NativeFrames>> {
    let spec: FrameSpec = parse_json("frames", &frames_json)?;
    let events = events_from_js("frameCacheBuild events", &events)?;
    Ok(task("frameCacheBuild", frames_to_js, move || {
        let cache = FrameCache::new(&dir)?;
        let key = cache_key(&source, &part, &spec)?;
        let frames = integrate(&events, &key.options)?;
        let path = cache.path_for(&key);
        write_frames_file(&path, &key.to_json(), &frames)?;
        // Read back through the mapped file, so what is returned is what later hits will see.
        let back = read_frames_file(&path)?;
        if back.data() != frames.data() {
            return Err(Error::state(
                "frameCacheBuild",
                "the cache file read back differs from the frames written",
            ));
        }
        Ok(frames)
    }))
}
