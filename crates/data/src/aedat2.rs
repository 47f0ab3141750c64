//! AEDAT 2.0 (jAER), as CIFAR10-DVS is distributed: `#` header lines (the first
//! `#!AER-DAT2.0`), then big-endian `int32 address, int32 timestamp` pairs. DVS128 addresses:
//! polarity = bit 0, x = bits 1..7, y = bits 8..14.
//!
//! Orientation and polarity follow SpikingJelly's CIFAR10-DVS loader, so frames match models
//! trained there: x' = 127 - y, y' = 127 - x, p' = 1 - p. Timestamps are unsigned 32-bit
//! microseconds. An address with any of bits 16..31 set is not a DVS128 event (e.g. a DAVIS
//! file) and is an error; bit 15 (jAER's external-event flag) is ignored like SpikingJelly does.
use std::io::BufRead;
use std::path::Path;

use dualstream_core::{Error, Result};

use crate::file::{clip, display, write_all, write_atomic, Source};
use crate::EventStream;

pub const CIFAR10_DVS_SIZE: u16 = 128;
const EVENT_BYTES: usize = 8;
const MAX_HEADER_LINE: usize = 1 << 16;

#[derive(Debug, Clone, PartialEq)]
pub struct Aedat2Header {
    /// The major version of the `#!AER-DAT<major>.<minor>` line: 2.
    pub version: u32,
    /// From `# Creation time: System.currentTimeMillis() <ms>` when present.
    pub creation_time_ms: Option<i64>,
    /// Every header line, without its line ending.
    pub lines: Vec<String>,
    /// Where the events start.
    pub data_offset: u64,
}

pub fn read_aedat2(path: &Path) -> Result<(Aedat2Header, EventStream)> {
    read_aedat2_from(Source::open(path)?)
}

pub fn read_aedat2_from<R: BufRead>(mut src: Source<R>) -> Result<(Aedat2Header, EventStream)> {
    let header = read_header(&mut src)?;
    let mut events = EventStream::new(CIFAR10_DVS_SIZE, CIFAR10_DVS_SIZE);
    let mut chunk = vec![0u8; EVENT_BYTES * 8192];
    loop {
        let chunk_start = src.offset();
        let got = src.fill(&mut chunk)?;
        let whole = got / EVENT_BYTES * EVENT_BYTES;
        for (k, e) in chunk[..whole].chunks_exact(EVENT_BYTES).enumerate() {
            let address = u32::from_be_bytes(e[0..4].try_into().unwrap());
            if address >> 16 != 0 {
                return Err(src.error_at(
                    chunk_start + (k * EVENT_BYTES) as u64,
                    format!("a DVS128 address (bits 16..31 clear), found 0x{address:08x}"),
                ));
            }
            let t = u32::from_be_bytes(e[4..8].try_into().unwrap()) as i64;
            let (x, y, p) = ((address >> 1) & 0x7F, (address >> 8) & 0x7F, address & 1);
            events.push(t, (127 - y) as u16, (127 - x) as u16, (1 - p) as u8);
        }
        if got < chunk.len() {
            if got != whole {
                return Err(src.error_at(
                    chunk_start + whole as u64,
                    format!("an 8-byte event, but the file ends after {} bytes of it", got - whole),
                ));
            }
            return Ok((header, events));
        }
    }
}

/// Only the header (cheap: stops at the first event).
pub fn read_aedat2_header(path: &Path) -> Result<Aedat2Header> {
    read_header(&mut Source::open(path)?)
}

fn read_header<R: BufRead>(src: &mut Source<R>) -> Result<Aedat2Header> {
    let mut lines: Vec<String> = Vec::new();
    let mut creation_time_ms = None;
    let mut version = 0;
    while src.peek_byte()? == Some(b'#') {
        let start = src.offset();
        let line = src.read_line(MAX_HEADER_LINE, "a header line")?.unwrap_or_default();
        let text = String::from_utf8_lossy(&line).into_owned();
        if lines.is_empty() {
            version = parse_version(&text).ok_or_else(|| {
                src.error_at(
                    start,
                    format!("the version line #!AER-DAT2.0, found {:?}", clip(&text)),
                )
            })?;
        }
        if let Some(rest) = text.strip_prefix("# Creation time: System.currentTimeMillis()") {
            creation_time_ms = rest.trim().parse().ok();
        }
        lines.push(text);
    }
    if lines.is_empty() {
        let found = src.peek_byte()?;
        return Err(src.error_at(
            0,
            format!(
                "the version line #!AER-DAT2.0, found {}",
                found.map_or("an empty file".into(), |b| format!("byte 0x{b:02x}"))
            ),
        ));
    }
    Ok(Aedat2Header { version, creation_time_ms, lines, data_offset: src.offset() })
}

fn parse_version(line: &str) -> Option<u32> {
    let rest = line.strip_prefix("#!AER-DAT")?;
    let major: u32 = rest.split('.').next()?.trim().parse().ok()?;
    (major == 2).then_some(major)
}

/// Writes `events` (128x128, in SpikingJelly's orientation, timestamps 0..2^32 us) as a DVS128
/// AEDAT 2.0 file, undoing the orientation and polarity mapping so reading gives them back.
pub fn write_aedat2(
    path: &Path,
    events: &EventStream,
    creation_time_ms: Option<i64>,
) -> Result<()> {
    events.check_writable(
        path,
        "AEDAT 2.0 (DVS128)",
        CIFAR10_DVS_SIZE as u32,
        CIFAR10_DVS_SIZE as u32,
    )?;
    if let Some(i) = events.t.iter().position(|&t| !(0..1 << 32).contains(&t)) {
        return Err(Error::value(
            format!("writing AEDAT 2.0 {}", display(path)),
            "timestamps in 0..2^32 us",
            format!("event {i}: t={}", events.t[i]),
        ));
    }
    write_atomic(path, |w| {
        let mut header =
            String::from("#!AER-DAT2.0\r\n# This is a raw AE data file created by dualstream\r\n");
        header.push_str("# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event\r\n");
        header.push_str("# Timestamps tick is 1 us\r\n");
        if let Some(ms) = creation_time_ms {
            header.push_str(&format!("# Creation time: System.currentTimeMillis() {ms}\r\n"));
        }
        header.push_str("# AEChip: DVS128\r\n");
        write_all(w, header.as_bytes(), path)?;
        let mut buf = Vec::with_capacity(EVENT_BYTES * 4096);
        for i in 0..events.len() {
            let (x, y, p) =
                (127 - events.y[i] as u32, 127 - events.x[i] as u32, 1 - events.p[i] as u32);
            buf.extend_from_slice(&(y << 8 | x << 1 | p).to_be_bytes());
            buf.extend_from_slice(&(events.t[i] as u32).to_be_bytes());
            if buf.len() >= EVENT_BYTES * 4000 {
                write_all(w, &buf, path)?;
                buf.clear();
            }
        }
        write_all(w, &buf, path)
    })
}
