//! Frames cached on disk, so a dataset is integrated once and later epochs (and runs) read the
//! frames back memory-mapped.
//!
//! File format (`.dsframes`, all integers little-endian):
//! ```text
//! offset  size  field
//!      0     8  magic  b"DSFRAMES"
//!      8     4  version (u32) = 1
//!     12     4  dtype (u32): 1 = f32
//!     16     4  ndim (u32) = 4
//!     20     4  key length in bytes (u32), K
//!     24    32  shape: 4 x u64, [T, 2, H, W]
//!     56     8  checksum (u64) of the data bytes (see `checksum`)
//!     64     K  the cache key, UTF-8 JSON (see `CacheKey::to_json`)
//!      D     -  data: T*2*H*W f32 values, row-major; D = 64 + K rounded up to a multiple of 64
//! ```
//! The file is exactly `D + 4 * numel` bytes long. The key stored in the file must equal the key
//! asked for (the file name is only a hash of it), so a hash collision or a stale file is a miss,
//! never wrong frames. Files are written to a temporary name, fsynced and renamed into place, so a
//! reader sees a whole file or none.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use dualstream_core::{Error, Result, Tensor};
use memmap2::Mmap;

use crate::file::{write_all, write_atomic};
use crate::frames::{integrate, FrameOptions};
use crate::EventStream;

pub const MAGIC: &[u8; 8] = b"DSFRAMES";
pub const VERSION: u32 = 1;
pub const DTYPE_F32: u32 = 1;
const HEADER_LEN: usize = 64;
const DATA_ALIGN: usize = 64;

/// Everything the frames of one sample depend on.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheKey {
    /// The source recording, as given (made absolute).
    pub source: String,
    pub source_size: u64,
    /// Modification time in nanoseconds since the Unix epoch.
    pub source_mtime_ns: u128,
    /// Which part of the source the frames come from, e.g. a labelled window `"t=1000..5000"`,
    /// or `""` for the whole file.
    pub part: String,
    pub options: FrameOptions,
}

impl CacheKey {
    /// The key of frames made from `source` (its size and modification time are read now).
    pub fn for_file(source: &Path, part: &str, options: FrameOptions) -> Result<CacheKey> {
        let shown = source.display().to_string();
        let meta = fs::metadata(source).map_err(|e| Error::io(&shown, e))?;
        let mtime = meta.modified().map_err(|e| Error::io(&shown, e))?;
        let mtime_ns =
            mtime.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let absolute = std::path::absolute(source).unwrap_or_else(|_| source.to_path_buf());
        Ok(CacheKey {
            source: absolute.display().to_string(),
            source_size: meta.len(),
            source_mtime_ns: mtime_ns,
            part: part.to_string(),
            options,
        })
    }

    /// The canonical text stored in the file header (fixed field order).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "format": VERSION,
            "source": self.source,
            "sourceSize": self.source_size,
            "sourceMtimeNs": self.source_mtime_ns.to_string(),
            "part": self.part,
            "split": self.options.split.describe(),
            "downscale": self.options.downscale,
        })
        .to_string()
    }

    /// File name inside the cache folder: a hash of the key.
    pub fn file_name(&self) -> String {
        format!("{:016x}.dsframes", checksum(self.to_json().as_bytes()))
    }
}

/// A 64-bit hash of bytes (FNV-1a over 8-byte words, then the tail): detects truncation and
/// bit rot in the data; not cryptographic.
pub fn checksum(bytes: &[u8]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01B3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        h = (h ^ u64::from_le_bytes(w.try_into().unwrap())).wrapping_mul(PRIME);
        h ^= h >> 29;
    }
    for &b in words.remainder() {
        h = (h ^ b as u64).wrapping_mul(PRIME);
    }
    h
}

fn data_offset(key_len: usize) -> usize {
    (HEADER_LEN + key_len).div_ceil(DATA_ALIGN) * DATA_ALIGN
}

/// Frames read from a cache file; the values stay in the mapped file.
pub struct MappedFrames {
    map: Mmap,
    offset: usize,
    shape: [usize; 4],
    key: String,
}

impl MappedFrames {
    pub fn shape(&self) -> &[usize; 4] {
        &self.shape
    }

    /// The stored cache key (JSON).
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn data(&self) -> &[f32] {
        let n = self.shape.iter().product::<usize>();
        let bytes = &self.map[self.offset..self.offset + 4 * n];
        // SAFETY: `open` checked the length; the map is page-aligned and `offset` is a multiple of
        // 64, so the pointer is aligned for f32; f32 has no invalid bit patterns; the file is
        // little-endian like every target we build for (see the compile_error below).
        unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const f32, n) }
    }

    pub fn to_tensor(&self) -> Tensor {
        Tensor::from_vec(&self.shape, self.data().to_vec()).expect("shape checked when opened")
    }
}

#[cfg(not(target_endian = "little"))]
compile_error!("frame cache files are little-endian and read in place");

fn corrupt(path: &Path, at: usize, expected: impl Into<String>) -> Error {
    Error::format(path.display().to_string(), format!("byte {at}"), expected)
}

/// Opens and checks a cache file: magic, version, dtype, shape, length and checksum. Any
/// mismatch is an `ERR_FORMAT` naming the byte offset.
pub fn read_frames_file(path: &Path) -> Result<MappedFrames> {
    let shown = path.display().to_string();
    let file = File::open(path).map_err(|e| Error::io(&shown, e))?;
    // SAFETY: cache files are only ever replaced by rename, never written in place, so the
    // mapped bytes do not change under us.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(&shown, e))?;
    if map.len() < HEADER_LEN {
        return Err(corrupt(
            path,
            map.len(),
            format!("a {HEADER_LEN}-byte header (file is {} bytes)", map.len()),
        ));
    }
    if &map[0..8] != MAGIC {
        return Err(corrupt(path, 0, "the magic \"DSFRAMES\" of a dualstream frame cache"));
    }
    let u32_at = |o: usize| u32::from_le_bytes(map[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(map[o..o + 8].try_into().unwrap());
    let version = u32_at(8);
    if version != VERSION {
        return Err(corrupt(path, 8, format!("format version {VERSION}, found {version}")));
    }
    let dtype = u32_at(12);
    if dtype != DTYPE_F32 {
        return Err(corrupt(path, 12, format!("dtype {DTYPE_F32} (f32), found {dtype}")));
    }
    let ndim = u32_at(16);
    if ndim != 4 {
        return Err(corrupt(path, 16, format!("4 dimensions [T, 2, H, W], found {ndim}")));
    }
    let key_len = u32_at(20) as usize;
    let mut shape = [0usize; 4];
    let mut numel: u128 = 1;
    for (i, d) in shape.iter_mut().enumerate() {
        let v = u64_at(24 + 8 * i);
        *d = usize::try_from(v)
            .map_err(|_| corrupt(path, 24 + 8 * i, "a dimension that fits in memory"))?;
        numel *= v as u128;
    }
    if shape[1] != 2 {
        return Err(corrupt(path, 32, format!("2 polarity channels, found {}", shape[1])));
    }
    let offset = data_offset(key_len);
    let expected_len = offset as u128 + 4 * numel;
    if map.len() as u128 != expected_len {
        return Err(corrupt(
            path,
            map.len().min(expected_len as usize),
            format!(
                "{expected_len} bytes for shape {shape:?} and a {key_len}-byte key, found {} bytes",
                map.len()
            ),
        ));
    }
    let key = std::str::from_utf8(&map[HEADER_LEN..HEADER_LEN + key_len])
        .map_err(|e| corrupt(path, HEADER_LEN + e.valid_up_to(), "a UTF-8 cache key"))?
        .to_string();
    let stored = u64_at(56);
    let actual = checksum(&map[offset..]);
    if stored != actual {
        return Err(corrupt(
            path,
            offset,
            format!("data matching the header checksum {stored:016x}, found {actual:016x}"),
        ));
    }
    Ok(MappedFrames { map, offset, shape, key })
}

/// Writes `frames` (`[T, 2, H, W]`) with `key` to `path` atomically: a temporary file in the same
/// folder, fsync, rename (`file::write_atomic`). Nothing is left behind on failure.
pub fn write_frames_file(path: &Path, key: &str, frames: &Tensor) -> Result<()> {
    let shape = frames.shape();
    if shape.len() != 4 || shape[1] != 2 {
        return Err(Error::shape("frame cache write", "[T, 2, H, W]", shape));
    }
    let data: Vec<u8> = frames.data().iter().flat_map(|v| v.to_le_bytes()).collect();
    let offset = data_offset(key.len());
    let mut bytes = Vec::with_capacity(offset + data.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    bytes.extend_from_slice(&DTYPE_F32.to_le_bytes());
    bytes.extend_from_slice(&4u32.to_le_bytes());
    bytes.extend_from_slice(&(key.len() as u32).to_le_bytes());
    for &d in shape {
        bytes.extend_from_slice(&(d as u64).to_le_bytes());
    }
    bytes.extend_from_slice(&checksum(&data).to_le_bytes());
    bytes.extend_from_slice(key.as_bytes());
    bytes.resize(offset, 0);
    bytes.extend_from_slice(&data);
    write_atomic(path, |w| write_all(w, &bytes, path))
}

/// A folder of frame caches.
pub struct FrameCache {
    dir: PathBuf,
}

/// Where `FrameCache::get_or_build` found its frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Built,
    /// A file was there but unreadable (its error is dropped): it was rebuilt and replaced.
    Rebuilt,
}

impl FrameCache {
    pub fn new(dir: impl Into<PathBuf>) -> Result<FrameCache> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
        Ok(FrameCache { dir })
    }

    pub fn path_for(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(key.file_name())
    }

    /// The cached frames for `key`, or `None` when there is no file or it holds another key.
    /// A damaged file is an error.
    pub fn lookup(&self, key: &CacheKey) -> Result<Option<MappedFrames>> {
        let path = self.path_for(key);
        if !path.exists() {
            return Ok(None);
        }
        let frames = read_frames_file(&path)?;
        Ok((frames.key() == key.to_json()).then_some(frames))
    }

    /// Cached frames for `key`, integrating `load()`'s events on a miss. A damaged or stale file
    /// is rebuilt.
    pub fn get_or_build(
        &self,
        key: &CacheKey,
        load: impl FnOnce() -> Result<EventStream>,
    ) -> Result<(MappedFrames, CacheOutcome)> {
        let outcome = match self.lookup(key) {
            Ok(Some(frames)) => return Ok((frames, CacheOutcome::Hit)),
            Ok(None) if self.path_for(key).exists() => CacheOutcome::Rebuilt,
            Ok(None) => CacheOutcome::Built,
            Err(_) => CacheOutcome::Rebuilt,
        };
        let frames = integrate(&load()?, &key.options)?;
        let path = self.path_for(key);
        write_frames_file(&path, &key.to_json(), &frames)?;
        Ok((read_frames_file(&path)?, outcome))
    }
}
