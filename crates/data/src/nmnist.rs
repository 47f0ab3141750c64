//! N-MNIST / N-Caltech101 `.bin` files (Orchard et al. 2015): 5 bytes per event, x = byte 0,
//! y = byte 1, polarity = bit 7 of byte 2 (1 = ON), timestamp = the other 23 bits of bytes 2..4,
//! big-endian, in microseconds.
//!
//! Overflow markers: the original MATLAB reader treats an event with y = 240 as a timestamp
//! overflow marker (a leftover of 13-bit timestamps): it adds 2^13 us to the timestamps of every
//! later event and is not itself an event. We do the same (no real N-MNIST file is long enough to
//! contain one), and the writer emits markers when a timestamp does not fit in 23 bits.
use std::io::BufRead;
use std::path::Path;

use dualstream_core::{Error, Result};

use crate::file::{display, write_all, write_atomic, Source};
use crate::EventStream;

pub const NMNIST_WIDTH: u16 = 34;
pub const NMNIST_HEIGHT: u16 = 34;
pub const NCALTECH101_WIDTH: u16 = 240;
pub const NCALTECH101_HEIGHT: u16 = 180;

const EVENT_BYTES: usize = 5;
const OVERFLOW_MARKER_Y: u8 = 240;
const OVERFLOW_STEP_US: i64 = 1 << 13;
const MAX_TIMESTAMP: i64 = (1 << 23) - 1;

/// Reads a `.bin` file of a `width` x `height` sensor (34x34 for N-MNIST).
pub fn read_nbin(path: &Path, width: u16, height: u16) -> Result<EventStream> {
    read_nbin_from(Source::open(path)?, width, height)
}

pub fn read_nbin_from<R: BufRead>(
    mut src: Source<R>,
    width: u16,
    height: u16,
) -> Result<EventStream> {
    let mut events = EventStream::new(width, height);
    let mut chunk = vec![0u8; EVENT_BYTES * 8192];
    let mut overflow = 0i64;
    loop {
        let chunk_start = src.offset();
        let got = src.fill(&mut chunk)?;
        let whole = got / EVENT_BYTES * EVENT_BYTES;
        for (k, e) in chunk[..whole].chunks_exact(EVENT_BYTES).enumerate() {
            let (x, y) = (e[0], e[1]);
            if y == OVERFLOW_MARKER_Y {
                overflow += OVERFLOW_STEP_US;
                continue;
            }
            if x as u16 >= width || y as u16 >= height {
                return Err(src.error_at(
                    chunk_start + (k * EVENT_BYTES) as u64,
                    format!("an event inside the {width}x{height} sensor (x < {width}, y < {height}), found x={x}, y={y}"),
                ));
            }
            let t = ((e[2] as i64 & 0x7F) << 16 | (e[3] as i64) << 8 | e[4] as i64) + overflow;
            events.push(t, x as u16, y as u16, e[2] >> 7);
        }
        if got < chunk.len() {
            if got != whole {
                return Err(src.error_at(
                    chunk_start + whole as u64,
                    format!("a 5-byte event, but the file ends after {} bytes of it", got - whole),
                ));
            }
            return Ok(events);
        }
    }
}

/// Writes `events` as a `.bin` file. Timestamps must be non-negative; past 2^23 - 1 us they must
/// be in time order, since overflow markers can only add time.
pub fn write_nbin(path: &Path, events: &EventStream) -> Result<()> {
    events.check_writable(path, "N-MNIST .bin", 256, OVERFLOW_MARKER_Y as u32)?;
    write_atomic(path, |w| {
        let mut overflow = 0i64;
        let mut buf = Vec::with_capacity(EVENT_BYTES * 4096);
        for i in 0..events.len() {
            let t = events.t[i];
            if t < overflow {
                return Err(Error::value(
                    format!("writing N-MNIST .bin {}", display(path)),
                    format!("timestamps >= {overflow} us (in time order once past 2^23 us, and never negative)"),
                    format!("event {i}: t={t}"),
                ));
            }
            while t - overflow > MAX_TIMESTAMP {
                buf.extend_from_slice(&[0, OVERFLOW_MARKER_Y, 0, 0, 0]);
                overflow += OVERFLOW_STEP_US;
            }
            let rel = t - overflow;
            buf.extend_from_slice(&[
                events.x[i] as u8,
                events.y[i] as u8,
                (events.p[i] << 7) | (rel >> 16) as u8,
                (rel >> 8) as u8,
                rel as u8,
            ]);
            if buf.len() >= EVENT_BYTES * 4000 {
                write_all(w, &buf, path)?;
                buf.clear();
            }
        }
        write_all(w, &buf, path)
    })
}
