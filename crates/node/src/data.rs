//! Dataset readers and writers of dualstream-data for JavaScript. Every file operation runs on
//! the libuv thread pool (AsyncTask) and resolves to typed arrays: t as Float64Array (exact
//! microseconds up to 2^53), x / y as Uint16Array, p as Uint8Array. Dataset folders open
//! synchronously (a directory listing and the label files) and read samples asynchronously.
use std::path::PathBuf;
use std::sync::Arc;

use dualstream_data::aedat4::WriteCompression;
use dualstream_data::cifar::{CifarImages, CifarKind};
use dualstream_data::datasets::{self, EventDataset, ImageDataset, Split};
use dualstream_data::idx::{IdxArray, IdxData};
use dualstream_data::{aedat2, aedat3, aedat4, cifar, idx, image_folder, nmnist, EventStream};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::{coded, guarded, js_error, Code, Coded, CodedTask, Result};

/// A Promise of a [`DataTask`]'s JS value.
pub type DataPromise<T, J> = AsyncTask<Coded<DataTask<T, J>>>;

/// Runs `work` on the thread pool, then `finish` turns its result into a JS value.
pub struct DataTask<T: Send + 'static, J> {
    what: &'static str,
    work: Option<Box<dyn FnOnce() -> dualstream_core::Result<T> + Send>>,
    finish: fn(T) -> J,
}

pub(crate) fn task<T: Send + 'static, J>(
    what: &'static str,
    finish: fn(T) -> J,
    work: impl FnOnce() -> dualstream_core::Result<T> + Send + 'static,
) -> DataPromise<T, J>
where
    DataTask<T, J>: CodedTask,
{
    coded(DataTask { what, work: Some(Box::new(work)), finish })
}

impl<T: Send + 'static, J: ToNapiValue + TypeName> CodedTask for DataTask<T, J> {
    type Output = T;
    type JsValue = J;
    fn compute(&mut self) -> Result<T> {
        let work = self
            .work
            .take()
            .ok_or_else(|| js_error("ERR_INTERNAL", format!("{}: task ran twice", self.what)))?;
        guarded(self.what, work)
    }
    fn resolve(&mut self, _env: Env, output: T) -> Result<J> {
        Ok((self.finish)(output))
    }
}

/// Events in file order, struct of arrays. `t` is in microseconds (exact up to 2^53), `p` is 0
/// (OFF) or 1 (ON), the SpikingJelly convention; `width` x `height` is the sensor.
#[napi(object)]
pub struct NativeEvents {
    pub width: u32,
    pub height: u32,
    /// Microseconds.
    pub t: Float64Array,
    pub x: Uint16Array,
    pub y: Uint16Array,
    /// 0 = OFF, 1 = ON.
    pub p: Uint8Array,
}

pub(crate) fn events_from_js(what: &str, e: &NativeEvents) -> Result<EventStream> {
    let n = e.t.len();
    if e.x.len() != n || e.y.len() != n || e.p.len() != n {
        return Err(js_error(
            "ERR_ARG",
            format!(
                "{what}: expected t, x, y and p of the same length, received {}, {}, {}, {}",
                n,
                e.x.len(),
                e.y.len(),
                e.p.len()
            ),
        ));
    }
    if e.width == 0 || e.height == 0 || e.width > u16::MAX as u32 || e.height > u16::MAX as u32 {
        return Err(js_error(
            "ERR_ARG",
            format!(
                "{what}: expected a sensor size in [1, 65535], received {} x {}",
                e.width, e.height
            ),
        ));
    }
    let mut s = EventStream::new(e.width as u16, e.height as u16);
    s.t = Vec::with_capacity(n);
    for (k, &t) in e.t.iter().enumerate() {
        if !t.is_finite() || t.fract() != 0.0 || t.abs() > 9.0e15 {
            return Err(js_error(
                "ERR_ARG",
                format!("{what}: t[{k}] must be an integer number of microseconds, received {t}"),
            ));
        }
        s.t.push(t as i64);
    }
    s.x = e.x.to_vec();
    s.y = e.y.to_vec();
    s.p = e.p.to_vec();
    Ok(s)
}

pub(crate) fn events_to_js(s: EventStream) -> NativeEvents {
    NativeEvents {
        width: s.width as u32,
        height: s.height as u32,
        t: Float64Array::new(s.t.iter().map(|&t| t as f64).collect()),
        x: Uint16Array::new(s.x),
        y: Uint16Array::new(s.y),
        p: Uint8Array::new(s.p),
    }
}

/// An event file: the events plus what its header says.
#[napi(object)]
pub struct EventFile {
    pub events: NativeEvents,
    /// "nmnist" | "aedat2" | "aedat3" | "aedat4".
    pub format: String,
    /// AEDAT 2.0: `# Creation time: System.currentTimeMillis()`, when present.
    pub creation_time_ms: Option<f64>,
    /// AEDAT 4.0: "none" | "lz4" | "lz4-high" | "zstd" | "zstd-high".
    pub compression: Option<String>,
    /// AEDAT 4.0: polarity packets read.
    pub event_packets: Option<u32>,
}

fn compression_name(c: aedat4::Compression) -> &'static str {
    match c {
        aedat4::Compression::None => "none",
        aedat4::Compression::Lz4 => "lz4",
        aedat4::Compression::Lz4High => "lz4-high",
        aedat4::Compression::Zstd => "zstd",
        aedat4::Compression::ZstdHigh => "zstd-high",
    }
}

fn sensor(
    what: &str,
    width: Option<u32>,
    height: Option<u32>,
    default: (u16, u16),
) -> Result<(u16, u16)> {
    let w = width.unwrap_or(default.0 as u32);
    let h = height.unwrap_or(default.1 as u32);
    if w == 0 || h == 0 || w > u16::MAX as u32 || h > u16::MAX as u32 {
        return Err(js_error(
            "ERR_VALUE",
            format!("{what}: expected a sensor size in 1..65535, got {w}x{h}"),
        ));
    }
    Ok((w as u16, h as u16))
}

/// Reads an event file of `format` ("nmnist", "aedat2", "aedat3", "aedat4"). `width`/`height`
/// set the sensor of formats that do not store it (N-MNIST .bin: 34x34; AEDAT 3.1: 128x128).
#[napi(ts_return_type = "Promise<EventFile>")]
pub fn read_event_file(
    path: String,
    format: String,
    width: Option<u32>,
    height: Option<u32>,
) -> Result<DataPromise<EventFile, EventFile>> {
    let file = PathBuf::from(&path);
    let what = "readEvents";
    match format.as_str() {
        "nmnist" => {
            let (w, h) = sensor(what, width, height, (nmnist::NMNIST_WIDTH, nmnist::NMNIST_HEIGHT))?;
            Ok(task(what, |f| f, move || {
                let events = nmnist::read_nbin(&file, w, h)?;
                Ok(EventFile { events: events_to_js(events), format: "nmnist".into(), creation_time_ms: None, compression: None, event_packets: None })
            }))
        }
        "aedat3" => {
            let (w, h) = sensor(what, width, height, (aedat3::DVS128_SIZE, aedat3::DVS128_SIZE))?;
            Ok(task(what, |f| f, move || {
                let events = aedat3::read_aedat3(&file, w, h)?;
                Ok(EventFile { events: events_to_js(events), format: "aedat3".into(), creation_time_ms: None, compression: None, event_packets: None })
            }))
        }
        "aedat2" => Ok(task(what, |f| f, move || {
            let (header, events) = aedat2::read_aedat2(&file)?;
            Ok(EventFile {
                events: events_to_js(events),
                format: "aedat2".into(),
                creation_time_ms: header.creation_time_ms.map(|t| t as f64),
                compression: None,
                event_packets: None,
            })
        })),
        "aedat4" => Ok(task(what, |f| f, move || {
            let (info, events) = aedat4::read_aedat4(&file)?;
            Ok(EventFile {
                events: events_to_js(events),
                format: "aedat4".into(),
                creation_time_ms: None,
                compression: Some(compression_name(info.compression).into()),
                event_packets: Some(info.event_packets as u32),
            })
        })),
        other => Err(js_error("ERR_VALUE", format!("{what}: expected format \"nmnist\", \"aedat2\", \"aedat3\" or \"aedat4\", got {other:?}"))),
    }
}

#[napi(object)]
pub struct WriteEventOptions {
    /// AEDAT 2.0 header.
    pub creation_time_ms: Option<f64>,
    /// AEDAT 4.0: "lz4" (default) or "none".
    pub compression: Option<String>,
    /// AEDAT 4.0: events per packet (default 4096).
    pub events_per_packet: Option<u32>,
}

/// Writes an event file atomically (temp file, fsync, rename).
#[napi(ts_return_type = "Promise<void>")]
pub fn write_event_file(
    path: String,
    format: String,
    events: NativeEvents,
    options: Option<WriteEventOptions>,
) -> Result<DataPromise<(), ()>> {
    let what = "writeEvents";
    let events = events_from_js(what, &events)?;
    let file = PathBuf::from(&path);
    let options = options.unwrap_or(WriteEventOptions {
        creation_time_ms: None,
        compression: None,
        events_per_packet: None,
    });
    let done = |(): ()| ();
    match format.as_str() {
        "nmnist" => Ok(task(what, done, move || nmnist::write_nbin(&file, &events))),
        "aedat3" => Ok(task(what, done, move || aedat3::write_aedat3(&file, &events))),
        "aedat2" => {
            let created = options.creation_time_ms.map(|t| t as i64);
            Ok(task(what, done, move || aedat2::write_aedat2(&file, &events, created)))
        }
        "aedat4" => {
            let compression = match options.compression.as_deref() {
                None | Some("lz4") => WriteCompression::Lz4,
                Some("none") => WriteCompression::None,
                Some(other) => return Err(js_error("ERR_VALUE", format!("{what}: expected compression \"lz4\" or \"none\", got {other:?}"))),
            };
            let per_packet = options.events_per_packet.unwrap_or(4096) as usize;
            Ok(task(what, done, move || aedat4::write_aedat4(&file, &events, compression, per_packet)))
        }
        other => Err(js_error("ERR_VALUE", format!("{what}: expected format \"nmnist\", \"aedat2\", \"aedat3\" or \"aedat4\", got {other:?}"))),
    }
}

/// One labelled window of a DVS128 Gesture recording (`start <= t < end`).
#[napi(object)]
pub struct GestureWindow {
    /// 1..11 as in the CSV.
    pub class: u32,
    /// class - 1, 0..10.
    pub label: u32,
    pub start: f64,
    pub end: f64,
    /// CSV row, the header being row 1.
    pub row: u32,
}

/// Reads a DVS128 Gesture `*_labels.csv`.
#[napi(ts_return_type = "Promise<GestureWindow[]>")]
pub fn read_gesture_labels(
    path: String,
) -> DataPromise<Vec<aedat3::LabelWindow>, Vec<GestureWindow>> {
    task(
        "readGestureLabels",
        |windows| {
            windows
                .into_iter()
                .map(|w| GestureWindow {
                    class: w.class as u32,
                    label: w.label as u32,
                    start: w.start as f64,
                    end: w.end as f64,
                    row: w.row as u32,
                })
                .collect()
        },
        move || aedat3::read_gesture_labels(&PathBuf::from(path)),
    )
}

/// A CIFAR binary batch: `count` images of 3x32x32 bytes (R, G, B planes).
#[napi(object)]
pub struct CifarBatch {
    pub count: u32,
    /// count x 3072 bytes, each image as R, G, B planes of 32x32.
    pub pixels: Uint8Array,
    /// CIFAR-10 labels or CIFAR-100 fine labels.
    pub labels: Uint8Array,
    /// CIFAR-100 coarse labels; empty for CIFAR-10.
    pub coarse_labels: Uint8Array,
}

fn cifar_kind(what: &str, kind: &str) -> Result<CifarKind> {
    match kind {
        "cifar10" => Ok(CifarKind::Cifar10),
        "cifar100" => Ok(CifarKind::Cifar100),
        other => Err(js_error(
            "ERR_VALUE",
            format!("{what}: expected \"cifar10\" or \"cifar100\", got {other:?}"),
        )),
    }
}

/// Reads a whole CIFAR-10 / CIFAR-100 binary batch file.
#[napi(ts_return_type = "Promise<CifarBatch>")]
pub fn read_cifar_batch(
    path: String,
    kind: String,
) -> Result<DataPromise<CifarImages, CifarBatch>> {
    let kind = cifar_kind("readCifarBatch", &kind)?;
    Ok(task(
        "readCifarBatch",
        |b| CifarBatch {
            count: b.len() as u32,
            pixels: Uint8Array::new(b.pixels),
            labels: Uint8Array::new(b.labels),
            coarse_labels: Uint8Array::new(b.coarse_labels),
        },
        move || cifar::read_cifar(&PathBuf::from(path), kind),
    ))
}

#[napi(ts_return_type = "Promise<void>")]
pub fn write_cifar_batch(
    path: String,
    kind: String,
    pixels: Uint8Array,
    labels: Uint8Array,
    coarse_labels: Option<Uint8Array>,
) -> Result<DataPromise<(), ()>> {
    let kind = cifar_kind("writeCifarBatch", &kind)?;
    let images = CifarImages {
        kind,
        pixels: pixels.to_vec(),
        labels: labels.to_vec(),
        coarse_labels: coarse_labels.map(|c| c.to_vec()).unwrap_or_default(),
    };
    Ok(task(
        "writeCifarBatch",
        |(): ()| (),
        move || cifar::write_cifar(&PathBuf::from(path), &images),
    ))
}

#[napi(object)]
pub struct IdxFile {
    pub dims: Vec<u32>,
    /// "u8" | "i8" | "i16" | "i32" | "f32" | "f64".
    pub dtype: String,
    /// The values as little-endian bytes (the layout of the typed array of `dtype`).
    pub bytes: Uint8Array,
}

/// Reads an IDX file (plain or gzip'd).
#[napi(ts_return_type = "Promise<IdxFile>")]
pub fn read_idx_file(path: String) -> DataPromise<IdxArray, IdxFile> {
    task(
        "readIdx",
        |a| IdxFile {
            dims: a.dims.iter().map(|&d| d as u32).collect(),
            dtype: a.data.dtype().into(),
            bytes: Uint8Array::new(a.data.to_le_bytes()),
        },
        move || idx::read_idx(&PathBuf::from(path)),
    )
}

/// Writes an uncompressed IDX file from little-endian bytes of `dtype`.
#[napi(ts_return_type = "Promise<void>")]
pub fn write_idx_file(
    path: String,
    dims: Vec<u32>,
    dtype: String,
    bytes: Uint8Array,
) -> Result<DataPromise<(), ()>> {
    let b = bytes.to_vec();
    let size = match dtype.as_str() {
        "u8" | "i8" => 1,
        "i16" => 2,
        "i32" | "f32" => 4,
        "f64" => 8,
        other => {
            return Err(js_error(
                "ERR_VALUE",
                format!("writeIdx: expected dtype u8, i8, i16, i32, f32 or f64, got {other:?}"),
            ))
        }
    };
    if !b.len().is_multiple_of(size) {
        return Err(js_error(
            "ERR_VALUE",
            format!("writeIdx: expected a multiple of {size} bytes for {dtype}, got {}", b.len()),
        ));
    }
    let data = match dtype.as_str() {
        "u8" => IdxData::U8(b),
        "i8" => IdxData::I8(b.into_iter().map(|v| v as i8).collect()),
        "i16" => {
            IdxData::I16(b.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect())
        }
        "i32" => IdxData::I32(
            b.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect(),
        ),
        "f32" => IdxData::F32(
            b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
        ),
        _ => IdxData::F64(
            b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
        ),
    };
    let array = IdxArray { dims: dims.iter().map(|&d| d as usize).collect(), data };
    Ok(task("writeIdx", |(): ()| (), move || idx::write_idx(&PathBuf::from(path), &array)))
}

/// The error for a dataset `kind` that is none of `expected`.
fn unknown_kind(what: &str, expected: &str, other: &str) -> napi::Error<Code> {
    js_error("ERR_VALUE", format!("{what}: expected {expected}, got {other:?}"))
}

fn split_of(what: &str, split: &str) -> Result<Split> {
    match split {
        "train" => Ok(Split::Train),
        "test" => Ok(Split::Test),
        other => Err(js_error(
            "ERR_VALUE",
            format!("{what}: expected split \"train\" or \"test\", got {other:?}"),
        )),
    }
}

#[napi(object)]
pub struct EventSample {
    pub events: NativeEvents,
    pub label: u32,
}

/// An event-camera dataset folder: "dvsgesture", "cifar10dvs" or "nmnist".
#[napi]
pub struct NativeEventDataset {
    inner: Arc<dyn EventDataset>,
}

#[napi]
impl NativeEventDataset {
    #[napi(factory)]
    pub fn open(kind: String, root: String, split: String) -> Result<Self> {
        let what = "openEventDataset";
        let split = split_of(what, &split)?;
        let root = PathBuf::from(root);
        let inner: Arc<dyn EventDataset> = match kind.as_str() {
            "dvsgesture" => Arc::new(guarded(what, || datasets::DvsGesture::open(&root, split))?),
            "cifar10dvs" => Arc::new(guarded(what, || datasets::Cifar10Dvs::open(&root, split))?),
            "nmnist" => Arc::new(guarded(what, || datasets::NMnist::open(&root, split))?),
            other => {
                return Err(unknown_kind(
                    what,
                    "\"dvsgesture\", \"cifar10dvs\" or \"nmnist\"",
                    other,
                ))
            }
        };
        Ok(NativeEventDataset { inner })
    }

    /// The label of every sample, in index order (as many as there are samples).
    #[napi]
    pub fn labels(&self) -> Vec<u32> {
        (0..self.inner.len()).map(|i| self.inner.label(i) as u32).collect()
    }

    #[napi]
    pub fn class_names(&self) -> Vec<String> {
        self.inner.class_names()
    }

    /// [width, height].
    #[napi]
    pub fn sensor_size(&self) -> Vec<u32> {
        let (w, h) = self.inner.sensor_size();
        vec![w as u32, h as u32]
    }

    #[napi(ts_return_type = "Promise<EventSample>")]
    pub fn get(&self, index: u32) -> DataPromise<(EventStream, usize), EventSample> {
        let inner = self.inner.clone();
        task(
            "EventDataset.get",
            |(e, label)| EventSample { events: events_to_js(e), label: label as u32 },
            move || inner.get(index as usize),
        )
    }
}

#[napi(object)]
pub struct ImageSample {
    /// channels x height x width bytes (planar).
    pub pixels: Uint8Array,
    pub label: u32,
}

/// An image dataset folder: "cifar10", "cifar100" or "idx" (MNIST / Fashion-MNIST originals).
#[napi]
pub struct NativeImageDataset {
    inner: Arc<dyn ImageDataset>,
}

#[napi]
impl NativeImageDataset {
    #[napi(factory)]
    pub fn open(kind: String, root: String, split: String) -> Result<Self> {
        let what = "openImageDataset";
        let split = split_of(what, &split)?;
        let root = PathBuf::from(root);
        let inner: Arc<dyn ImageDataset> = match kind.as_str() {
            "cifar10" => Arc::new(guarded(what, || {
                datasets::CifarFolder::open(&root, CifarKind::Cifar10, split)
            })?),
            "cifar100" => Arc::new(guarded(what, || {
                datasets::CifarFolder::open(&root, CifarKind::Cifar100, split)
            })?),
            "idx" => Arc::new(guarded(what, || datasets::IdxImages::open(&root, split))?),
            other => return Err(unknown_kind(what, "\"cifar10\", \"cifar100\" or \"idx\"", other)),
        };
        Ok(NativeImageDataset { inner })
    }

    /// The label of every image, in index order (as many as there are images).
    #[napi]
    pub fn labels(&self) -> Vec<u32> {
        self.inner.labels().iter().map(|&l| u32::from(l)).collect()
    }

    #[napi]
    pub fn class_names(&self) -> Vec<String> {
        self.inner.class_names()
    }

    /// [channels, height, width].
    #[napi]
    pub fn shape(&self) -> Vec<u32> {
        self.inner.shape().iter().map(|&d| d as u32).collect()
    }

    #[napi(ts_return_type = "Promise<ImageSample>")]
    pub fn get(&self, index: u32) -> DataPromise<(Vec<u8>, usize), ImageSample> {
        let inner = self.inner.clone();
        task(
            "ImageDataset.get",
            |(pixels, label)| ImageSample { pixels: Uint8Array::new(pixels), label: label as u32 },
            move || inner.get(index as usize),
        )
    }
}

/// A class-per-folder image dataset (ImageNet's layout): opening lists the files of a split
/// (`train/`, or `val/` / `test/` for "test") in torchvision's `ImageFolder` order; the batch
/// pipeline decodes them (`NativeSample.file`).
#[napi]
pub struct NativeImageFolder {
    inner: Arc<image_folder::ImageFolder>,
}

#[napi]
impl NativeImageFolder {
    #[napi(factory)]
    pub fn open(root: String, split: String) -> Result<Self> {
        let what = "openImageFolder";
        let train = split_of(what, &split)? == Split::Train;
        let root = PathBuf::from(root);
        let inner = guarded(what, || image_folder::open_split(&root, train))?;
        Ok(NativeImageFolder { inner: Arc::new(inner) })
    }

    #[napi(getter)]
    pub fn length(&self) -> u32 {
        self.inner.len() as u32
    }

    /// The folder the split was listed from.
    #[napi(getter)]
    pub fn folder(&self) -> String {
        self.inner.root().display().to_string()
    }

    #[napi]
    pub fn labels(&self) -> Vec<u32> {
        (0..self.inner.len()).map(|i| self.inner.label(i) as u32).collect()
    }

    #[napi]
    pub fn class_names(&self) -> Vec<String> {
        self.inner.classes().to_vec()
    }

    /// Path of sample `index`.
    #[napi]
    pub fn path(&self, index: u32) -> Result<String> {
        let i = index as usize;
        if i >= self.inner.len() {
            return Err(js_error(
                "ERR_VALUE",
                format!("ImageFolder.path: expected an index in 0..{}, got {i}", self.inner.len()),
            ));
        }
        Ok(self.inner.path(i).display().to_string())
    }
}
