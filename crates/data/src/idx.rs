//! IDX files (the original MNIST / Fashion-MNIST distribution): magic `0, 0, type, ndims`, then
//! `ndims` big-endian u32 sizes, then the values big-endian. Gzip'd files (`*.gz`, as
//! distributed) are recognised by their magic bytes and decompressed on the fly (flate2, pure
//! Rust backend); byte offsets in errors then count bytes of the decompressed data.
use std::io::BufReader;
use std::path::Path;

use dualstream_core::{limits, Error, Result};

use crate::file::{display, write_all, write_atomic, Source};

#[derive(Debug, Clone, PartialEq)]
pub enum IdxData {
    U8(Vec<u8>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl IdxData {
    fn type_code(&self) -> u8 {
        match self {
            IdxData::U8(_) => 0x08,
            IdxData::I8(_) => 0x09,
            IdxData::I16(_) => 0x0B,
            IdxData::I32(_) => 0x0C,
            IdxData::F32(_) => 0x0D,
            IdxData::F64(_) => 0x0E,
        }
    }
    pub fn len(&self) -> usize {
        match self {
            IdxData::U8(v) => v.len(),
            IdxData::I8(v) => v.len(),
            IdxData::I16(v) => v.len(),
            IdxData::I32(v) => v.len(),
            IdxData::F32(v) => v.len(),
            IdxData::F64(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Name of the element type: "u8", "i8", "i16", "i32", "f32", "f64".
    pub fn dtype(&self) -> &'static str {
        match self {
            IdxData::U8(_) => "u8",
            IdxData::I8(_) => "i8",
            IdxData::I16(_) => "i16",
            IdxData::I32(_) => "i32",
            IdxData::F32(_) => "f32",
            IdxData::F64(_) => "f64",
        }
    }
    /// The values as little-endian bytes (the layout of a JS typed array).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        self.to_bytes(false)
    }

    /// The values as bytes, big-endian (the IDX file layout) or little-endian.
    fn to_bytes(&self, big_endian: bool) -> Vec<u8> {
        macro_rules! bytes {
            ($v:expr) => {
                if big_endian {
                    $v.iter().flat_map(|x| x.to_be_bytes()).collect()
                } else {
                    $v.iter().flat_map(|x| x.to_le_bytes()).collect()
                }
            };
        }
        match self {
            IdxData::U8(v) => v.clone(),
            IdxData::I8(v) => v.iter().map(|&x| x as u8).collect(),
            IdxData::I16(v) => bytes!(v),
            IdxData::I32(v) => bytes!(v),
            IdxData::F32(v) => bytes!(v),
            IdxData::F64(v) => bytes!(v),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: IdxData,
}

pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let mut magic = [0u8; 2];
    let file = std::fs::File::open(path).map_err(|e| Error::io(display(path), e))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let peeked =
        std::io::BufRead::fill_buf(&mut reader).map_err(|e| Error::io(display(path), e))?;
    magic[..peeked.len().min(2)].copy_from_slice(&peeked[..peeked.len().min(2)]);
    if magic == [0x1f, 0x8b] {
        let gz = flate2::read::GzDecoder::new(reader);
        let name = format!("{} (gzip, decompressed)", display(path));
        read_idx_from(Source::new(BufReader::with_capacity(1 << 16, gz), name))
    } else {
        read_idx_from(Source::new(reader, display(path)))
    }
}

pub fn read_idx_from<R: std::io::BufRead>(mut src: Source<R>) -> Result<IdxArray> {
    let mut magic = [0u8; 4];
    src.read_exact(&mut magic, "the IDX magic number")?;
    let elem = match magic[2] {
        0x08 | 0x09 => 1,
        0x0B => 2,
        0x0C | 0x0D => 4,
        0x0E => 8,
        _ => 0,
    };
    if magic[0] != 0 || magic[1] != 0 || elem == 0 || magic[3] == 0 {
        return Err(src.error_at(
            0,
            format!("the IDX magic 00 00 <type 08/09/0B/0C/0D/0E> <ndims >= 1>, found {:02x} {:02x} {:02x} {:02x}", magic[0], magic[1], magic[2], magic[3]),
        ));
    }
    let mut dims = Vec::with_capacity(magic[3] as usize);
    for _ in 0..magic[3] {
        let mut b = [0u8; 4];
        src.read_exact(&mut b, "a big-endian u32 dimension")?;
        dims.push(u32::from_be_bytes(b) as usize);
    }
    // A corrupt dimension field must not allocate: the size is checked against the limit, and
    // the values are read into a vector that grows only with the bytes really present.
    let count = limits::product(&dims).filter(|&c| limits::bytes_within_limit(c, elem).is_some());
    let Some(count) = count else {
        return Err(src.error_at(
            4,
            format!(
                "dimensions whose {elem}-byte values fit {}, found {dims:?}",
                limits::describe_limit()
            ),
        ));
    };
    let start = src.offset();
    let raw = src.read_up_to((count * elem) as u64)?;
    let got = raw.len();
    if got < count * elem {
        return Err(src.error_at(
            start + (got / elem * elem) as u64,
            format!("{count} values of {elem} bytes for dimensions {dims:?}, but the data ends after {} of them", got / elem),
        ));
    }
    if !src.at_end()? {
        return Err(src.error_at(
            src.offset(),
            format!("the end of the file after {count} values for dimensions {dims:?}"),
        ));
    }
    let data = match magic[2] {
        0x08 => IdxData::U8(raw),
        0x09 => IdxData::I8(raw.into_iter().map(|b| b as i8).collect()),
        0x0B => {
            IdxData::I16(raw.chunks_exact(2).map(|c| i16::from_be_bytes([c[0], c[1]])).collect())
        }
        0x0C => IdxData::I32(
            raw.chunks_exact(4).map(|c| i32::from_be_bytes(c.try_into().unwrap())).collect(),
        ),
        0x0D => IdxData::F32(
            raw.chunks_exact(4).map(|c| f32::from_be_bytes(c.try_into().unwrap())).collect(),
        ),
        _ => IdxData::F64(
            raw.chunks_exact(8).map(|c| f64::from_be_bytes(c.try_into().unwrap())).collect(),
        ),
    };
    Ok(IdxArray { dims, data })
}

/// Writes an uncompressed IDX file.
pub fn write_idx(path: &Path, array: &IdxArray) -> Result<()> {
    let count: usize = array.dims.iter().product();
    if array.dims.is_empty()
        || array.dims.len() > 255
        || count != array.data.len()
        || array.dims.iter().any(|&d| d > u32::MAX as usize)
    {
        return Err(Error::value(
            format!("writing IDX {}", display(path)),
            "1..255 dimensions (each < 2^32) whose product is the number of values",
            format!("dimensions {:?} for {} values", array.dims, array.data.len()),
        ));
    }
    write_atomic(path, |w| {
        write_all(w, &[0, 0, array.data.type_code(), array.dims.len() as u8], path)?;
        for &d in &array.dims {
            write_all(w, &(d as u32).to_be_bytes(), path)?;
        }
        write_all(w, &array.data.to_bytes(true), path)
    })
}
