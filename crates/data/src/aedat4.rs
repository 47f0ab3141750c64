//! AEDAT 4.0 (iniVation DV): the line `#!AER-DAT4.0\r\n`, an `int32` size and an IOHeader
//! flatbuffer (compression, data table position, an XML info node listing the streams), then
//! packets `int32 streamId, int32 size, size bytes`, each a flatbuffer compressed as the header
//! says (LZ4 frame or Zstd frame, or none). Polarity packets (`EVTS`) hold a vector of 16-byte
//! events `{int64 t, int16 x, int16 y, bool on}`; other streams (IMU, triggers, frames) are
//! skipped. Packets end at the data table (or at the end of the file without one). The
//! flatbuffers are read by hand: only the few fields above are needed.
use std::io::BufRead;
use std::path::Path;

use dualstream_core::{Error, Result};

use crate::file::{display, read_capped, write_all, write_atomic, Source};
use crate::EventStream;

const VERSION_LINE: &[u8] = b"#!AER-DAT4.0\r\n";
const EVENT_BYTES: usize = 16;
/// Guards allocations against a corrupt size field: no real packet or header comes close.
const MAX_BLOCK_BYTES: i32 = 1 << 30;
/// A packet decompresses to at most this many times its compressed size (LZ4 cannot exceed
/// 255x; event packets compress 3-10x), and never past the allocation limit: a Zstd bomb is
/// refused after this much output instead of filling memory.
const MAX_EXPANSION: u64 = 256;
/// Small packets may expand further (flatbuffer padding of a few events).
const MIN_DECOMPRESSED_CAP: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Lz4,
    Lz4High,
    Zstd,
    ZstdHigh,
}

impl Compression {
    fn from_code(code: i32) -> Option<Self> {
        Some(match code {
            0 => Compression::None,
            1 => Compression::Lz4,
            2 => Compression::Lz4High,
            3 => Compression::Zstd,
            4 => Compression::ZstdHigh,
            _ => return None,
        })
    }
    fn code(self) -> i32 {
        self as i32
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    pub id: i32,
    /// Flatbuffer identifier of the stream's packets: `EVTS` for polarity events, `IMUS`, ...
    pub type_identifier: String,
    pub width: Option<u16>,
    pub height: Option<u16>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Aedat4Info {
    pub compression: Compression,
    /// Byte offset of the file data table, -1 when the file has none.
    pub data_table_position: i64,
    pub streams: Vec<StreamInfo>,
    /// How many polarity packets were read.
    pub event_packets: usize,
}

/// Reads every polarity event of the first event stream (the sensor size comes from its info).
pub fn read_aedat4(path: &Path) -> Result<(Aedat4Info, EventStream)> {
    read_aedat4_from(Source::open(path)?)
}

pub fn read_aedat4_from<R: BufRead>(mut src: Source<R>) -> Result<(Aedat4Info, EventStream)> {
    let mut version = [0u8; VERSION_LINE.len()];
    let got = src.fill(&mut version)?;
    if version[..got] != *VERSION_LINE {
        return Err(src.error_at(
            0,
            format!(
                "the version line #!AER-DAT4.0, found {:?}",
                String::from_utf8_lossy(&version[..got])
            ),
        ));
    }
    let size_at = src.offset();
    let header_size = read_i32(&mut src, "the int32 size of the IOHeader")?;
    if !(8..=MAX_BLOCK_BYTES).contains(&header_size) {
        return Err(src
            .error_at(size_at, format!("an IOHeader size of 8..2^30 bytes, found {header_size}")));
    }
    let header_start = src.offset();
    let header = src.read_vec(header_size as u64, "the IOHeader flatbuffer")?;
    let mut info = parse_io_header(&header, &src, header_start)?;
    let stream =
        info.streams.iter().find(|s| s.type_identifier == "EVTS").cloned().ok_or_else(|| {
            src.error_at(
                header_start,
                "an info node declaring a polarity event stream (typeIdentifier EVTS)",
            )
        })?;
    let (width, height) = match (stream.width, stream.height) {
        (Some(w), Some(h)) => (w, h),
        _ => {
            return Err(src
                .error_at(header_start, format!("sizeX and sizeY for event stream {}", stream.id)))
        }
    };
    let mut events = EventStream::new(width, height);
    let end = (info.data_table_position >= 0).then_some(info.data_table_position as u64);
    let mut plain = Vec::new();
    loop {
        let packet_start = src.offset();
        if end.is_some_and(|e| packet_start >= e) || src.at_end()? {
            break;
        }
        let stream_id = read_i32(&mut src, "a packet header (int32 stream id, int32 size)")?;
        let size = read_i32(&mut src, "the int32 size of a packet")?;
        if !(1..=MAX_BLOCK_BYTES).contains(&size) {
            return Err(src.error_at(
                packet_start + 4,
                format!("a packet size of 1..2^30 bytes, found {size}"),
            ));
        }
        if !info.streams.iter().any(|s| s.id == stream_id) {
            return Err(src.error_at(
                packet_start,
                format!(
                    "a packet of a stream the header declares ({}), found stream id {stream_id}",
                    declared_ids(&info.streams)
                ),
            ));
        }
        if stream_id != stream.id {
            src.skip(size as u64, &format!("a packet of stream {stream_id}"))?;
            continue;
        }
        let data_start = src.offset();
        let packet = src.read_vec(size as u64, "a packet")?;
        let body = match info.compression {
            Compression::None => &packet[..],
            compression => {
                plain.clear();
                decompress(compression, &packet, &mut plain).map_err(|e| {
                    src.error_at(data_start, format!("a {compression:?}-compressed packet ({e})"))
                })?;
                &plain[..]
            }
        };
        read_event_packet(body, &mut events).map_err(|what| src.error_at(data_start, what))?;
        info.event_packets += 1;
    }
    Ok((info, events))
}

fn read_i32<R: BufRead>(src: &mut Source<R>, what: &str) -> Result<i32> {
    let mut b = [0u8; 4];
    src.read_exact(&mut b, what)?;
    Ok(i32::from_le_bytes(b))
}

fn declared_ids(streams: &[StreamInfo]) -> String {
    let ids: Vec<String> = streams.iter().map(|s| s.id.to_string()).collect();
    format!("ids {}", ids.join(", "))
}

/// The most bytes a `compressed`-byte packet may decompress to.
fn decompressed_cap(compressed: usize) -> u64 {
    (compressed as u64)
        .saturating_mul(MAX_EXPANSION)
        .max(MIN_DECOMPRESSED_CAP)
        .min(dualstream_core::limits::max_bytes())
}

fn decompress(compression: Compression, packet: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
    let cap = decompressed_cap(packet.len());
    let got = match compression {
        Compression::None => {
            out.extend_from_slice(packet);
            return Ok(());
        }
        Compression::Lz4 | Compression::Lz4High => {
            read_capped(&mut lz4_flex::frame::FrameDecoder::new(packet), cap + 1, out)?
        }
        Compression::Zstd | Compression::ZstdHigh => {
            let mut input = packet;
            let mut decoder = ruzstd::StreamingDecoder::new(&mut input)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
            read_capped(&mut decoder, cap + 1, out)?
        }
    };
    if got as u64 > cap {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "it decompresses past {cap} bytes, {MAX_EXPANSION} times its {} compressed bytes or the allocation limit",
                packet.len()
            ),
        ));
    }
    Ok(())
}

/// A bounds-checked view of a flatbuffer: every read that would leave the buffer is an error
/// describing what was being read, never a panic.
struct Flat<'a> {
    buf: &'a [u8],
}

impl<'a> Flat<'a> {
    fn bytes(&self, at: usize, n: usize, what: &str) -> std::result::Result<&'a [u8], String> {
        at.checked_add(n).and_then(|end| self.buf.get(at..end)).ok_or_else(|| {
            format!("{what} inside the {}-byte flatbuffer (at {at}, {n} bytes)", self.buf.len())
        })
    }
    fn u16(&self, at: usize, what: &str) -> std::result::Result<u16, String> {
        Ok(u16::from_le_bytes(self.bytes(at, 2, what)?.try_into().unwrap()))
    }
    fn u32(&self, at: usize, what: &str) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.bytes(at, 4, what)?.try_into().unwrap()))
    }
    /// The root table after checking the 4-byte file identifier. DV writes packets as
    /// size-prefixed flatbuffers (a u32 length first) and the IOHeader without one; both are
    /// recognised by where the identifier sits, and the view is rebased past the prefix.
    fn root(&mut self, identifier: &[u8; 4]) -> std::result::Result<usize, String> {
        if self.buf.get(8..12) == Some(&identifier[..])
            && self.buf.get(4..8) != Some(&identifier[..])
        {
            let size = self.u32(0, "the size prefix")? as usize;
            if size != self.buf.len() - 4 {
                return Err(format!("a size prefix of {} bytes, found {size}", self.buf.len() - 4));
            }
            self.buf = &self.buf[4..];
        }
        let id = self.bytes(4, 4, "a file identifier")?;
        if id != identifier {
            return Err(format!(
                "a flatbuffer with identifier {}, found {:?}",
                String::from_utf8_lossy(identifier),
                String::from_utf8_lossy(id)
            ));
        }
        Ok(self.u32(0, "the root offset")? as usize)
    }
    /// Absolute position of field `index` of the table at `table`, `None` when absent.
    fn field(&self, table: usize, index: usize) -> std::result::Result<Option<usize>, String> {
        let soffset = self.u32(table, "a table")? as i32 as i64;
        let vtable = table as i64 - soffset;
        if vtable < 0 {
            return Err(format!("a vtable inside the flatbuffer, found offset {vtable}"));
        }
        let vtable = vtable as usize;
        let vtable_size = self.u16(vtable, "a vtable")? as usize;
        let slot = 4 + 2 * index;
        if slot + 2 > vtable_size {
            return Ok(None);
        }
        let offset = self.u16(vtable + slot, "a vtable entry")? as usize;
        Ok((offset != 0).then_some(table + offset))
    }
    /// Follows the uoffset stored at `at`.
    fn follow(&self, at: usize, what: &str) -> std::result::Result<usize, String> {
        Ok(at + self.u32(at, what)? as usize)
    }
}

fn parse_io_header<R: BufRead>(
    buf: &[u8],
    src: &Source<R>,
    header_start: u64,
) -> Result<Aedat4Info> {
    let bad = |what: String| src.error_at(header_start, format!("an IOHeader flatbuffer: {what}"));
    let mut flat = Flat { buf };
    let table = flat.root(b"IOHE").map_err(bad)?;
    let compression_code = match flat.field(table, 0).map_err(bad)? {
        Some(at) => flat.u32(at, "the compression field").map_err(bad)? as i32,
        None => 0,
    };
    let compression = Compression::from_code(compression_code)
        .ok_or_else(|| bad(format!("a compression type 0..4 (none, LZ4, LZ4 high, Zstd, Zstd high), found {compression_code}")))?;
    let data_table_position = match flat.field(table, 1).map_err(bad)? {
        Some(at) => i64::from_le_bytes(
            flat.bytes(at, 8, "the data table position").map_err(bad)?.try_into().unwrap(),
        ),
        None => -1,
    };
    let info_node = match flat.field(table, 2).map_err(bad)? {
        Some(at) => {
            let string = flat.follow(at, "the info node offset").map_err(bad)?;
            let len = flat.u32(string, "the info node length").map_err(bad)? as usize;
            String::from_utf8_lossy(flat.bytes(string + 4, len, "the info node text").map_err(bad)?)
                .into_owned()
        }
        None => String::new(),
    };
    Ok(Aedat4Info {
        compression,
        data_table_position,
        streams: parse_streams(&info_node),
        event_packets: 0,
    })
}

/// The streams of the info node: `<node name="N" path=".../outInfo/N/">` with attributes
/// `typeIdentifier` and, in its `info` child, `sizeX` / `sizeY`.
fn parse_streams(xml: &str) -> Vec<StreamInfo> {
    let mut starts = Vec::new();
    let mut rest = 0;
    while let Some(found) = xml[rest..].find("<node name=\"") {
        let at = rest + found;
        rest = at + 1;
        let name_start = at + "<node name=\"".len();
        let Some(name_len) = xml[name_start..].find('"') else { break };
        let name = &xml[name_start..name_start + name_len];
        let tag_end = xml[name_start..].find('>').map_or(xml.len(), |e| name_start + e);
        let tag = &xml[name_start..tag_end];
        if let Ok(id) = name.parse::<i32>() {
            if tag.contains(&format!("outInfo/{id}/\"")) {
                starts.push((at, id));
            }
        }
    }
    let attr = |section: &str, key: &str| -> Option<String> {
        let open = format!("key=\"{key}\"");
        let at = section.find(&open)? + open.len();
        let value_start = at + section[at..].find('>')? + 1;
        let value_end = value_start + section[value_start..].find('<')?;
        Some(section[value_start..value_end].trim().to_string())
    };
    starts
        .iter()
        .enumerate()
        .map(|(k, &(at, id))| {
            let section = &xml[at..starts.get(k + 1).map_or(xml.len(), |s| s.0)];
            StreamInfo {
                id,
                type_identifier: attr(section, "typeIdentifier").unwrap_or_default(),
                width: attr(section, "sizeX").and_then(|v| v.parse().ok()),
                height: attr(section, "sizeY").and_then(|v| v.parse().ok()),
            }
        })
        .collect()
}

fn read_event_packet(buf: &[u8], events: &mut EventStream) -> std::result::Result<(), String> {
    let mut flat = Flat { buf };
    let table = flat.root(b"EVTS")?;
    let Some(field) = flat.field(table, 0)? else { return Ok(()) };
    let vector = flat.follow(field, "the events vector offset")?;
    let n = flat.u32(vector, "the events vector length")? as usize;
    let data = flat.bytes(vector + 4, n.saturating_mul(EVENT_BYTES), "the events")?;
    let (width, height) = (events.width, events.height);
    for (k, e) in data.chunks_exact(EVENT_BYTES).enumerate() {
        let t = i64::from_le_bytes(e[0..8].try_into().unwrap());
        let x = i16::from_le_bytes([e[8], e[9]]);
        let y = i16::from_le_bytes([e[10], e[11]]);
        if x < 0 || y < 0 || x as u16 >= width || y as u16 >= height {
            return Err(format!(
                "events inside the {width}x{height} sensor; event {k} of this packet (decompressed byte {}) has x={x}, y={y}",
                vector + 4 + k * EVENT_BYTES
            ));
        }
        events.push(t, x as u16, y as u16, (e[12] != 0) as u8);
    }
    Ok(())
}

/// How the writer compresses packets (Zstd is read but not written: its pure-Rust encoder would
/// be a large dependency for no gain here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteCompression {
    None,
    Lz4,
}

/// Writes `events` as one polarity stream (id 0) of an AEDAT 4.0 file, in packets of at most
/// `events_per_packet` events, without a data table (data table position -1).
pub fn write_aedat4(
    path: &Path,
    events: &EventStream,
    compression: WriteCompression,
    events_per_packet: usize,
) -> Result<()> {
    events.check_writable(path, "AEDAT 4.0", i16::MAX as u32 + 1, i16::MAX as u32 + 1)?;
    if events_per_packet == 0 {
        return Err(Error::value(
            format!("writing AEDAT 4.0 {}", display(path)),
            "events_per_packet >= 1",
            0,
        ));
    }
    let compression = match compression {
        WriteCompression::None => Compression::None,
        WriteCompression::Lz4 => Compression::Lz4,
    };
    write_atomic(path, |w| {
        write_all(w, VERSION_LINE, path)?;
        let header = io_header(compression, &info_xml(events.width, events.height));
        write_all(w, &(header.len() as i32).to_le_bytes(), path)?;
        write_all(w, &header, path)?;
        let mut start = 0;
        while start < events.len() {
            let end = (start + events_per_packet).min(events.len());
            let plain = event_packet(events, start, end);
            let body = match compression {
                Compression::Lz4 => {
                    // A content checksum lets readers detect damaged packets (DV omits it).
                    let frame = lz4_flex::frame::FrameInfo::new().content_checksum(true);
                    let mut encoder =
                        lz4_flex::frame::FrameEncoder::with_frame_info(frame, Vec::new());
                    std::io::Write::write_all(&mut encoder, &plain)
                        .map_err(|e| Error::io(display(path), e))?;
                    encoder.finish().map_err(|e| Error::io(display(path), e.to_string()))?
                }
                _ => plain,
            };
            write_all(w, &0i32.to_le_bytes(), path)?;
            write_all(w, &(body.len() as i32).to_le_bytes(), path)?;
            write_all(w, &body, path)?;
            start = end;
        }
        Ok(())
    })
}

fn info_xml(width: u16, height: u16) -> String {
    format!(
        "<dv version=\"2.0\">\n    <node name=\"outInfo\" path=\"/mainloop/Recorder/outInfo/\">\n        <node name=\"0\" path=\"/mainloop/Recorder/outInfo/0/\">\n            <attr key=\"compression\" type=\"string\">LZ4</attr>\n            <attr key=\"originalOutputName\" type=\"string\">events</attr>\n            <attr key=\"typeIdentifier\" type=\"string\">EVTS</attr>\n            <node name=\"info\" path=\"/mainloop/Recorder/outInfo/0/info/\">\n                <attr key=\"sizeX\" type=\"int\">{width}</attr>\n                <attr key=\"sizeY\" type=\"int\">{height}</attr>\n                <attr key=\"source\" type=\"string\">dualstream</attr>\n            </node>\n        </node>\n    </node>\n</dv>\n"
    )
}

/// IOHeader flatbuffer: root offset, "IOHE", a vtable for 3 fields, the table
/// {compression: int32, dataTablePosition: int64, infoNode: string}, then the string.
fn io_header(compression: Compression, xml: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&24u32.to_le_bytes());
    b.extend_from_slice(b"IOHE");
    for v in [10u16, 20, 4, 8, 16, 0] {
        b.extend_from_slice(&v.to_le_bytes()); // vtable at 8 (10 bytes + 2 padding)
    }
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&16i32.to_le_bytes()); // table at 24; vtable = 24 - 16
    b.extend_from_slice(&compression.code().to_le_bytes());
    b.extend_from_slice(&(-1i64).to_le_bytes());
    b.extend_from_slice(&4u32.to_le_bytes()); // string at 40 + 4
    b.extend_from_slice(&(xml.len() as u32).to_le_bytes());
    b.extend_from_slice(xml.as_bytes());
    b.push(0);
    while b.len() % 4 != 0 {
        b.push(0);
    }
    b
}

/// Size-prefixed EventPacket flatbuffer, as DV writes it: size, then (offsets from after the
/// size) root offset, "EVTS", vtable for 1 field, the table {elements}, the vector of 16-byte
/// events, 8-byte aligned.
fn event_packet(events: &EventStream, start: usize, end: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(36 + (end - start) * EVENT_BYTES);
    b.extend_from_slice(&((32 + (end - start) * EVENT_BYTES) as u32).to_le_bytes());
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(b"EVTS");
    for v in [6u16, 8, 4, 0] {
        b.extend_from_slice(&v.to_le_bytes()); // vtable at 8
    }
    b.extend_from_slice(&8i32.to_le_bytes()); // table at 16; vtable = 16 - 8
    b.extend_from_slice(&8u32.to_le_bytes()); // vector length at 20 + 8 = 28
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&((end - start) as u32).to_le_bytes());
    for i in start..end {
        b.extend_from_slice(&events.t[i].to_le_bytes());
        b.extend_from_slice(&(events.x[i] as i16).to_le_bytes());
        b.extend_from_slice(&(events.y[i] as i16).to_le_bytes());
        b.extend_from_slice(&[events.p[i], 0, 0, 0]);
    }
    b
}
