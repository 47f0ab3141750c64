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

use crate::data::{events_from_js, events_to_js, NativeEvents};
use crate::{coded, guarded, js_error, parse_json, Coded, CodedTask, Result};

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

pub struct IntegrateTask {
    events: EventStream,
    spec: FrameSpec,
}

impl CodedTask for IntegrateTask {
    type Output = Tensor;
    type JsValue = NativeFrames;
    fn compute(&mut self) -> Result<Tensor> {
        guarded("integrateEvents", || integrate(&self.events, &self.spec.options()))
    }
    fn resolve(&mut self, _env: Env, t: Tensor) -> Result<NativeFrames> {
        Ok(frames_to_js(t))
    }
}

/// Frames `[T, 2, H, W]` (OFF, ON counts) of a stream; `frames_json` is a FrameSpec
/// (`{"split":"number","frames":16,"downscale":2}`, `"time"`, or `"duration"` with `durationUs`).
#[napi(ts_return_type = "Promise<NativeFrames>")]
pub fn integrate_events(
    events: NativeEvents,
    frames_json: String,
) -> Result<AsyncTask<Coded<IntegrateTask>>> {
    let spec: FrameSpec = parse_json("frames", &frames_json)?;
    Ok(coded(IntegrateTask { events: events_from_js("integrateEvents events", &events)?, spec }))
}

pub struct SyntheticTask {
    image: Vec<f32>,
    height: usize,
    width: usize,
    spec: SyntheticSpec,
}

impl CodedTask for SyntheticTask {
    type Output = EventStream;
    type JsValue = NativeEvents;
    fn compute(&mut self) -> Result<EventStream> {
        guarded("syntheticEvents", || {
            saccade_events(&self.image, self.height, self.width, &self.spec.options())
        })
    }
    fn resolve(&mut self, _env: Env, s: EventStream) -> Result<NativeEvents> {
        Ok(events_to_js(s))
    }
}

/// N-MNIST-style events of a grey image (values in [0, 1], `height x width`); `options_json` is a
/// SyntheticSpec (threshold, eps, stepUs, margin, saccadeUs; all optional).
#[napi(ts_return_type = "Promise<NativeEvents>")]
pub fn synthetic_events(
    image: Float32Array,
    height: u32,
    width: u32,
    options_json: String,
) -> Result<AsyncTask<Coded<SyntheticTask>>> {
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
    Ok(coded(SyntheticTask {
        image: image.to_vec(),
        height: height as usize,
        width: width as usize,
        spec,
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

pub struct PrepareBatchTask {
    samples: Vec<Sample>,
    spec: PipelineSpec,
    seeds: Vec<u64>,
}

impl CodedTask for PrepareBatchTask {
    type Output = Tensor;
    type JsValue = NativeFrames;
    fn compute(&mut self) -> Result<Tensor> {
        guarded("prepareBatch", || prepare_batch(&self.samples, &self.spec, &self.seeds))
    }
    fn resolve(&mut self, _env: Env, t: Tensor) -> Result<NativeFrames> {
        Ok(frames_to_js(t))
    }
}

/// Integrates / transforms / encodes a batch of samples and stacks it (`[T, N, C, H, W]` for
/// sequences, `[N, C, H, W]` for plain images). `seeds[j]` seeds sample j's augmentation.
#[napi(ts_return_type = "Promise<NativeFrames>")]
pub fn prepare_batch_native(
    samples: Vec<NativeSample>,
    spec_json: String,
    seeds: Vec<u32>,
) -> Result<AsyncTask<Coded<PrepareBatchTask>>> {
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
    Ok(coded(PrepareBatchTask {
        samples: out,
        spec,
        seeds: seeds.into_iter().map(u64::from).collect(),
    }))
}

#[napi(object)]
pub struct CacheLookup {
    /// `hit`, `miss` (no file, or a file of another key) or `damaged` (unreadable; rebuild it).
    pub status: String,
    pub frames: Option<NativeFrames>,
    pub reason: Option<String>,
}

fn cache_key(source: &str, part: &str, frames: &FrameSpec) -> dualstream_core::Result<CacheKey> {
    CacheKey::for_file(&PathBuf::from(source), part, frames.options())
}

pub struct CacheLookupTask {
    dir: String,
    source: String,
    part: String,
    spec: FrameSpec,
}

impl CodedTask for CacheLookupTask {
    type Output = (String, Option<Tensor>, Option<String>);
    type JsValue = CacheLookup;
    fn compute(&mut self) -> Result<Self::Output> {
        guarded("frameCacheLookup", || {
            let cache = FrameCache::new(&self.dir)?;
            let key = cache_key(&self.source, &self.part, &self.spec)?;
            Ok(match cache.lookup(&key) {
                Ok(Some(f)) => ("hit".into(), Some(f.to_tensor()), None),
                Ok(None) => ("miss".into(), None, None),
                Err(e) => ("damaged".into(), None, Some(format!("[{}] {e}", e.code()))),
            })
        })
    }
    fn resolve(
        &mut self,
        _env: Env,
        (status, frames, reason): Self::Output,
    ) -> Result<CacheLookup> {
        Ok(CacheLookup { status, frames: frames.map(frames_to_js), reason })
    }
}

/// Looks up the cached frames of `source` (+ `part`, e.g. a labelled window) in `dir`.
#[napi(ts_return_type = "Promise<CacheLookup>")]
pub fn frame_cache_lookup(
    dir: String,
    source: String,
    part: String,
    frames_json: String,
) -> Result<AsyncTask<Coded<CacheLookupTask>>> {
    let spec: FrameSpec = parse_json("frames", &frames_json)?;
    Ok(coded(CacheLookupTask { dir, source, part, spec }))
}

pub struct CacheBuildTask {
    dir: String,
    source: String,
    part: String,
    spec: FrameSpec,
    events: EventStream,
}

impl CodedTask for CacheBuildTask {
    type Output = Tensor;
    type JsValue = NativeFrames;
    fn compute(&mut self) -> Result<Tensor> {
        guarded("frameCacheBuild", || {
            let cache = FrameCache::new(&self.dir)?;
            let key = cache_key(&self.source, &self.part, &self.spec)?;
            let frames = integrate(&self.events, &key.options)?;
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
        })
    }
    fn resolve(&mut self, _env: Env, t: Tensor) -> Result<NativeFrames> {
        Ok(frames_to_js(t))
    }
}

/// Integrates `events` (read from `source`) and stores the frames in `dir` atomically.
#[napi(ts_return_type = "Promise<NativeFrames>")]
pub fn frame_cache_build(
    dir: String,
    source: String,
    part: String,
    frames_json: String,
    events: NativeEvents,
) -> Result<AsyncTask<Coded<CacheBuildTask>>> {
    let spec: FrameSpec = parse_json("frames", &frames_json)?;
    let events = events_from_js("frameCacheBuild events", &events)?;
    Ok(coded(CacheBuildTask { dir, source, part, spec, events }))
}
