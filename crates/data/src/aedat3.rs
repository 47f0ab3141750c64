//! AEDAT 3.1 (cAER / DVS128 Gesture) and the DVS128 Gesture `*_labels.csv` files.
//!
//! Layout: ASCII header lines starting with `#`, the first `#!AER-DAT3.1`, the last
//! `#!END-HEADER`; then little-endian packets, each a 28-byte header `int16 type, int16 source,
//! int32 eventSize, int32 tsOffset, int32 tsOverflow, int32 capacity, int32 number, int32 valid`
//! followed by `capacity * eventSize` bytes. Polarity events (type 1) are `uint32 data, int32 ts`
//! with polarity = bit 1, y = bits 2..16, x = bits 17..31, t = `tsOverflow << 31 | ts`. Other
//! packet types are skipped. Like SpikingJelly, every one of the `capacity` events is read (the
//! validity bit 0 is not consulted; cAER writes only valid events).
use std::io::{BufRead, BufReader};
use std::path::Path;

use dualstream_core::{Error, Result};

use crate::file::{clip, display, write_all, write_atomic, Source};
use crate::EventStream;

pub const DVS128_SIZE: u16 = 128;
const PACKET_HEADER_BYTES: usize = 28;
const POLARITY_EVENT: i16 = 1;
const POLARITY_EVENT_BYTES: usize = 8;
const MAX_HEADER_LINE: usize = 1 << 16;

/// Reads the polarity events of an AEDAT 3.x file from a `width` x `height` sensor (128x128 for
/// DVS128 Gesture; the format does not store the sensor size).
pub fn read_aedat3(path: &Path, width: u16, height: u16) -> Result<EventStream> {
    read_aedat3_from(Source::open(path)?, width, height)
}

pub fn read_aedat3_from<R: BufRead>(
    mut src: Source<R>,
    width: u16,
    height: u16,
) -> Result<EventStream> {
    read_header(&mut src)?;
    let mut events = EventStream::new(width, height);
    let mut header = [0u8; PACKET_HEADER_BYTES];
    loop {
        let packet_start = src.offset();
        if src.at_end()? {
            return Ok(events);
        }
        src.read_exact(&mut header, "a 28-byte packet header")?;
        let i32_at = |k: usize| i32::from_le_bytes(header[k..k + 4].try_into().unwrap());
        let kind = i16::from_le_bytes([header[0], header[1]]);
        let (event_size, ts_overflow, capacity) = (i32_at(4), i32_at(12), i32_at(20));
        if event_size <= 0 || capacity < 0 || ts_overflow < 0 {
            return Err(src.error_at(
                packet_start,
                format!("a packet header with eventSize > 0, capacity >= 0 and tsOverflow >= 0, found {event_size}, {capacity}, {ts_overflow}"),
            ));
        }
        // Both factors are below 2^31, so the product cannot overflow a u64.
        let bytes = event_size as u64 * capacity as u64;
        if kind != POLARITY_EVENT {
            src.skip(bytes, &format!("the data of a type-{kind} packet"))?;
            continue;
        }
        if (event_size as usize) < POLARITY_EVENT_BYTES {
            return Err(src.error_at(
                packet_start + 4,
                format!("eventSize >= 8 for a polarity packet, found {event_size}"),
            ));
        }
        let data_start = src.offset();
        let data = src.read_vec(bytes, "the events of a polarity packet")?;
        let high = (ts_overflow as i64) << 31;
        for (k, e) in data.chunks_exact(event_size as usize).enumerate() {
            let word = u32::from_le_bytes(e[0..4].try_into().unwrap());
            let ts = i32::from_le_bytes(e[4..8].try_into().unwrap());
            let x = (word >> 17) & 0x7FFF;
            let y = (word >> 2) & 0x7FFF;
            if x >= width as u32 || y >= height as u32 || ts < 0 {
                return Err(src.error_at(
                    data_start + (k * event_size as usize) as u64,
                    format!("a polarity event inside the {width}x{height} sensor with a timestamp >= 0, found x={x}, y={y}, ts={ts}"),
                ));
            }
            events.push(high | ts as i64, x as u16, y as u16, ((word >> 1) & 1) as u8);
        }
    }
}

fn read_header<R: BufRead>(src: &mut Source<R>) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let start = src.offset();
        let Some(line) = src.read_line(MAX_HEADER_LINE, "a header line")? else {
            return Err(src.error_at(
                start,
                "a header ending with the line #!END-HEADER, but the file ends first",
            ));
        };
        let text = String::from_utf8_lossy(&line).into_owned();
        if lines.is_empty() && !text.starts_with("#!AER-DAT3.") {
            return Err(src.error_at(
                0,
                format!("the AEDAT 3 version line #!AER-DAT3.1, found {:?}", clip(&text)),
            ));
        }
        if !text.starts_with('#') {
            return Err(src.error_at(
                start,
                format!("a header line starting with #, found {:?}", clip(&text)),
            ));
        }
        if text == "#!END-HEADER" {
            return Ok(lines);
        }
        lines.push(text);
    }
}

/// Writes `events` (a sensor of at most 32768x32768) as AEDAT 3.1 polarity packets.
pub fn write_aedat3(path: &Path, events: &EventStream) -> Result<()> {
    events.check_writable(path, "AEDAT 3.1", 1 << 15, 1 << 15)?;
    if let Some(i) = events.t.iter().position(|&t| t < 0) {
        return Err(Error::value(
            format!("writing AEDAT 3.1 {}", display(path)),
            "timestamps >= 0",
            format!("event {i}: t={}", events.t[i]),
        ));
    }
    const PER_PACKET: usize = 4096;
    write_atomic(path, |w| {
        let header = format!(
            "#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: dualstream {}x{}\r\n#!END-HEADER\r\n",
            events.width, events.height
        );
        write_all(w, header.as_bytes(), path)?;
        let mut start = 0;
        let mut packet =
            Vec::with_capacity(PACKET_HEADER_BYTES + PER_PACKET * POLARITY_EVENT_BYTES);
        while start < events.len() {
            // Every event of a packet shares the packet's tsOverflow.
            let overflow = events.t[start] >> 31;
            let mut end = start;
            while end < events.len() && end - start < PER_PACKET && events.t[end] >> 31 == overflow
            {
                end += 1;
            }
            let n = (end - start) as i32;
            packet.clear();
            for v in [POLARITY_EVENT, 1] {
                packet.extend_from_slice(&v.to_le_bytes());
            }
            for v in [POLARITY_EVENT_BYTES as i32, 4, overflow as i32, n, n, n] {
                packet.extend_from_slice(&v.to_le_bytes());
            }
            for i in start..end {
                let word = (events.x[i] as u32) << 17
                    | (events.y[i] as u32) << 2
                    | (events.p[i] as u32) << 1
                    | 1;
                packet.extend_from_slice(&word.to_le_bytes());
                packet.extend_from_slice(&((events.t[i] & 0x7FFF_FFFF) as i32).to_le_bytes());
            }
            write_all(w, &packet, path)?;
            start = end;
        }
        Ok(())
    })
}

/// One labelled window of a DVS128 Gesture recording: events with `start <= t < end` (as
/// SpikingJelly cuts them). `class` is the file's 1..11; `label` is `class - 1`, 0..10.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelWindow {
    pub class: u8,
    pub label: usize,
    pub start: i64,
    pub end: i64,
    /// Row of the CSV file, counting the header as row 1.
    pub row: usize,
}

pub const GESTURE_CLASSES: usize = 11;
const LABELS_HEADER: &str = "class,startTime_usec,endTime_usec";

/// Reads a `*_labels.csv` (`class,startTime_usec,endTime_usec`, classes 1..11).
pub fn read_gesture_labels(path: &Path) -> Result<Vec<LabelWindow>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(display(path), e))?;
    let name = display(path);
    let bad =
        |row: usize, expected: String| Error::format(name.clone(), format!("row {row}"), expected);
    let mut windows = Vec::new();
    for (i, line) in BufReader::new(file).split(b'\n').enumerate() {
        let row = i + 1;
        let line = line.map_err(|e| Error::io(name.clone(), e))?;
        let Ok(line) = std::str::from_utf8(&line) else {
            return Err(bad(row, "a line of UTF-8 text, found bytes that are not UTF-8".into()));
        };
        let line = line.trim();
        if row == 1 {
            if line != LABELS_HEADER {
                return Err(bad(
                    row,
                    format!("the header {LABELS_HEADER}, found {:?}", clip(line)),
                ));
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let parsed = (fields.len() == 3)
            .then(|| {
                Some((
                    fields[0].parse::<u8>().ok()?,
                    fields[1].parse::<i64>().ok()?,
                    fields[2].parse::<i64>().ok()?,
                ))
            })
            .flatten();
        let Some((class, start, end)) = parsed else {
            return Err(bad(
                row,
                format!("three integers class,startTime_usec,endTime_usec, found {:?}", clip(line)),
            ));
        };
        if !(1..=GESTURE_CLASSES as u8).contains(&class) {
            return Err(bad(row, format!("a class in 1..{GESTURE_CLASSES}, found {class}")));
        }
        if start < 0 || end <= start {
            return Err(bad(
                row,
                format!("0 <= startTime_usec < endTime_usec, found {start} and {end}"),
            ));
        }
        windows.push(LabelWindow { class, label: class as usize - 1, start, end, row });
    }
    if windows.is_empty() {
        return Err(bad(2, "at least one labelled window after the header".into()));
    }
    Ok(windows)
}

pub fn write_gesture_labels(path: &Path, windows: &[LabelWindow]) -> Result<()> {
    write_atomic(path, |w| {
        let mut text = format!("{LABELS_HEADER}\n");
        for win in windows {
            text.push_str(&format!("{},{},{}\n", win.class, win.start, win.end));
        }
        write_all(w, text.as_bytes(), path)
    })
}

/// The events of one labelled window, selected by timestamp like SpikingJelly's mask (so the
/// recording need not be sorted). A window that does not overlap the recording, or that holds no event, is an error naming the CSV row.
pub fn cut_window(
    events: &EventStream,
    window: &LabelWindow,
    labels_path: &Path,
) -> Result<EventStream> {
    let at = format!("row {}", window.row);
    let (Some(&first), Some(&last)) = (events.t.iter().min(), events.t.iter().max()) else {
        return Err(Error::format(
            display(labels_path),
            at,
            "a window inside the recording, but the recording has no event",
        ));
    };
    if window.end <= first || window.start > last {
        return Err(Error::format(
            display(labels_path),
            at,
            format!(
                "a window overlapping the recording ({first}..={last} us), found {}..{} us",
                window.start, window.end
            ),
        ));
    }
    let mut cut = EventStream::new(events.width, events.height);
    for i in 0..events.len() {
        if events.t[i] >= window.start && events.t[i] < window.end {
            cut.push(events.t[i], events.x[i], events.y[i], events.p[i]);
        }
    }
    if cut.is_empty() {
        return Err(Error::format(
            display(labels_path),
            at,
            format!(
                "at least one event in the window {}..{} us, found none",
                window.start, window.end
            ),
        ));
    }
    Ok(cut)
}
