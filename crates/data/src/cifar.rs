//! CIFAR-10 / CIFAR-100 binary version: records of label byte(s) then 3,072 pixels (32x32, the
//! R plane, then G, then B). CIFAR-10 has one label byte (0..9); CIFAR-100 two, coarse (0..19)
//! then fine (0..99). Records have a fixed size, so one image can be read by seeking.
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use dualstream_core::{Error, Result};

use crate::file::{display, write_all, write_atomic, Source};

pub const CIFAR_PIXELS: usize = 3 * 32 * 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarKind {
    Cifar10,
    Cifar100,
}

impl CifarKind {
    pub fn label_bytes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 1,
            CifarKind::Cifar100 => 2,
        }
    }
    pub fn record_bytes(self) -> usize {
        self.label_bytes() + CIFAR_PIXELS
    }
    pub fn name(self) -> &'static str {
        match self {
            CifarKind::Cifar10 => "CIFAR-10",
            CifarKind::Cifar100 => "CIFAR-100",
        }
    }
    /// (fine) label count.
    pub fn classes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 10,
            CifarKind::Cifar100 => 100,
        }
    }
}

/// Images of one batch file. `labels` are CIFAR-10's labels or CIFAR-100's fine labels;
/// `coarse_labels` is empty for CIFAR-10.
#[derive(Debug, Clone, PartialEq)]
pub struct CifarImages {
    pub kind: CifarKind,
    /// `len * 3072` bytes, each image as its file stores it (R, G, B planes of 32x32).
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
    pub coarse_labels: Vec<u8>,
}

impl CifarImages {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// One record: (pixels, label, coarse label for CIFAR-100).
pub type CifarRecord = (Vec<u8>, u8, Option<u8>);

fn check_labels(
    kind: CifarKind,
    record: &[u8],
    offset: u64,
    path: &str,
) -> Result<(u8, Option<u8>)> {
    let bad = |what: &str, v: u8, max: usize| {
        Error::format(
            path,
            format!("byte {offset}"),
            format!("a {} {what} label in 0..{}, found {v}", kind.name(), max - 1),
        )
    };
    match kind {
        CifarKind::Cifar10 if record[0] >= 10 => Err(bad("", record[0], 10)),
        CifarKind::Cifar10 => Ok((record[0], None)),
        CifarKind::Cifar100 if record[0] >= 20 => Err(bad("coarse", record[0], 20)),
        CifarKind::Cifar100 if record[1] >= 100 => Err(bad("fine", record[1], 100)),
        CifarKind::Cifar100 => Ok((record[1], Some(record[0]))),
    }
}

pub fn read_cifar(path: &Path, kind: CifarKind) -> Result<CifarImages> {
    read_cifar_from(Source::open(path)?, kind)
}

pub fn read_cifar_from<R: std::io::BufRead>(
    mut src: Source<R>,
    kind: CifarKind,
) -> Result<CifarImages> {
    let mut images =
        CifarImages { kind, pixels: Vec::new(), labels: Vec::new(), coarse_labels: Vec::new() };
    let mut record = vec![0u8; kind.record_bytes()];
    loop {
        let start = src.offset();
        let got = src.fill(&mut record)?;
        if got == 0 {
            break;
        }
        if got < record.len() {
            return Err(src.error_at(
                start,
                format!(
                    "a {}-byte {} record, but the file ends after {got} bytes of it",
                    record.len(),
                    kind.name()
                ),
            ));
        }
        let (label, coarse) = check_labels(kind, &record, start, src.name())?;
        images.labels.push(label);
        images.coarse_labels.extend(coarse);
        images.pixels.extend_from_slice(&record[kind.label_bytes()..]);
    }
    if images.is_empty() {
        return Err(src.error_at(
            0,
            format!(
                "at least one {}-byte {} record, found an empty file",
                record.len(),
                kind.name()
            ),
        ));
    }
    Ok(images)
}

/// Records in a batch file, from its size (which must be a whole number of records).
pub fn cifar_record_count(path: &Path, kind: CifarKind) -> Result<usize> {
    let len = std::fs::metadata(path).map_err(|e| Error::io(display(path), e))?.len();
    let record = kind.record_bytes() as u64;
    if len == 0 || len % record != 0 {
        return Err(Error::format(
            display(path),
            format!("byte {}", len / record * record),
            format!(
                "a whole number of {record}-byte {} records, found a file of {len} bytes",
                kind.name()
            ),
        ));
    }
    Ok((len / record) as usize)
}

/// Record `index` of a batch file, read by seeking.
pub fn read_cifar_record(path: &Path, kind: CifarKind, index: usize) -> Result<CifarRecord> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(display(path), e))?;
    let offset = (index * kind.record_bytes()) as u64;
    let mut record = vec![0u8; kind.record_bytes()];
    file.seek(SeekFrom::Start(offset)).and_then(|_| file.read_exact(&mut record)).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::format(
                display(path),
                format!("byte {offset}"),
                format!("record {index}, but the file ends first"),
            )
        } else {
            Error::io(display(path), e)
        }
    })?;
    let (label, coarse) = check_labels(kind, &record, offset, &display(path))?;
    Ok((record[kind.label_bytes()..].to_vec(), label, coarse))
}

pub fn write_cifar(path: &Path, images: &CifarImages) -> Result<()> {
    let kind = images.kind;
    let at = format!("writing {} {}", kind.name(), display(path));
    let n = images.len();
    let coarse_expected = if kind == CifarKind::Cifar100 { n } else { 0 };
    if images.pixels.len() != n * CIFAR_PIXELS || images.coarse_labels.len() != coarse_expected {
        return Err(Error::value(
            at,
            format!("{CIFAR_PIXELS} pixels per label and {coarse_expected} coarse labels"),
            format!(
                "{} pixels, {} labels, {} coarse labels",
                images.pixels.len(),
                n,
                images.coarse_labels.len()
            ),
        ));
    }
    for i in 0..n {
        let coarse_bad = kind == CifarKind::Cifar100 && images.coarse_labels[i] >= 20;
        if images.labels[i] as usize >= kind.classes() || coarse_bad {
            return Err(Error::value(
                at,
                format!("labels below {} (coarse below 20)", kind.classes()),
                format!("image {i}"),
            ));
        }
    }
    write_atomic(path, |w| {
        for i in 0..n {
            if kind == CifarKind::Cifar100 {
                write_all(w, &[images.coarse_labels[i]], path)?;
            }
            write_all(w, &[images.labels[i]], path)?;
            write_all(w, &images.pixels[i * CIFAR_PIXELS..(i + 1) * CIFAR_PIXELS], path)?;
        }
        Ok(())
    })
}
