//! Sizes read from a file are checked against the allocation limit and against the bytes really
//! there before anything is allocated: each of these files once asked for gigabytes (and
//! aborted the process) or was read silently wrong. Each must fail with ERR_FORMAT naming the
//! file and the byte offset.

use crate::common::{assert_names, lz4_aedat4, random_events, refused, write, TempDir};
use dualstream_data::aedat4::{self, WriteCompression};
use dualstream_data::{aedat3, idx, EventStream};

fn header_end(bytes: &[u8]) -> usize {
    bytes.windows(14).position(|w| w == b"#!END-HEADER\r\n").unwrap() + 14
}

#[test]
fn aedat3_packet_sizes_past_the_file_allocate_nothing_and_name_the_packet() {
    let dir = TempDir::new("hostile-aedat3");
    let good = dir.path("good.aedat");
    aedat3::write_aedat3(&good, &random_events(128, 128, 6000, 3, 100)).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let first = header_end(&bytes);
    // One flipped byte in eventSize asks for 8.7 TB; capacity near 2^31 with eventSize 8 for
    // 16 GiB; a value that fits the limit but not the file.
    for (name, at, value) in [
        ("size.aedat", 4, 0x7FFF_FF08i32),
        ("capacity.aedat", 20, 0x7FFF_FFFF),
        ("capacity-small.aedat", 20, 1 << 26),
    ] {
        let mut b = bytes.clone();
        b[first + at..first + at + 4].copy_from_slice(&value.to_le_bytes());
        refused(&dir, name, &b, |p| aedat3::read_aedat3(p, 128, 128))
            .at(&format!("byte {}", first + 28), "polarity packet");
    }
}

#[test]
fn idx_headers_claiming_more_than_the_file_holds_are_refused() {
    let dir = TempDir::new("hostile-idx");
    // 28 bytes: magic f64 2-d, [65536, 65536] (32 GiB), then 16 bytes of data.
    let mut b = vec![0, 0, 0x0E, 2];
    b.extend_from_slice(&65536u32.to_be_bytes());
    b.extend_from_slice(&65536u32.to_be_bytes());
    b.extend_from_slice(&[0; 16]);
    refused(&dir, "huge.idx", &b, idx::read_idx).at("byte 4", "allocation limit");
    // Within the limit but past the end of the file: the values present are counted.
    let mut b = vec![0, 0, 0x08, 1];
    b.extend_from_slice(&(1u32 << 30).to_be_bytes());
    b.extend_from_slice(&[7; 10]);
    refused(&dir, "short.idx", &b, idx::read_idx).at("byte 18", "ends after 10 of them");
}

/// An AEDAT 4.0 file with no packet, its compression field set to `code`.
fn empty_aedat4(dir: &TempDir, code: u8) -> Vec<u8> {
    let path = dir.path("empty.aedat4");
    aedat4::write_aedat4(&path, &EventStream::new(64, 48), WriteCompression::None, 100).unwrap();
    let mut b = std::fs::read(&path).unwrap();
    b[18 + 28] = code;
    b
}

fn packet(stream: i32, body: &[u8]) -> Vec<u8> {
    let mut p = stream.to_le_bytes().to_vec();
    p.extend_from_slice(&(body.len() as i32).to_le_bytes());
    p.extend_from_slice(body);
    p
}

/// A Zstd frame of `blocks` RLE blocks, each 128 KiB of zeros from 4 bytes.
fn zstd_bomb(blocks: usize) -> Vec<u8> {
    let mut f = 0xFD2F_B528u32.to_le_bytes().to_vec();
    f.push(0x00); // no content size, not single-segment: a window descriptor follows
    f.push(7 << 3); // window 2^17
    for k in 0..blocks {
        let last = (k + 1 == blocks) as u32;
        let header = (128 * 1024) << 3 | 1 << 1 | last;
        f.extend_from_slice(&header.to_le_bytes()[..3]);
        f.push(0);
    }
    f
}

#[test]
fn aedat4_zstd_bombs_stop_at_the_expansion_cap() {
    let dir = TempDir::new("hostile-zstd");
    let mut b = empty_aedat4(&dir, 3);
    let first = b.len();
    // 32 KB of RLE blocks would expand to 1 GiB.
    b.extend_from_slice(&packet(0, &zstd_bomb(8192)));
    refused(&dir, "bomb.aedat4", &b, aedat4::read_aedat4)
        .at(&format!("byte {}", first + 8), "decompresses past");
}

#[test]
fn aedat4_packet_sizes_past_the_file_allocate_nothing() {
    let dir = TempDir::new("hostile-aedat4-size");
    let mut b = empty_aedat4(&dir, 0);
    let first = b.len();
    b.extend_from_slice(&0i32.to_le_bytes());
    b.extend_from_slice(&(1i32 << 30).to_le_bytes());
    b.extend_from_slice(&[0; 100]);
    refused(&dir, "size.aedat4", &b, aedat4::read_aedat4)
        .at(&format!("byte {}", first + 8), "ends after 100 of them");
}

#[test]
fn aedat4_packets_of_undeclared_streams_are_a_format_error() {
    let dir = TempDir::new("hostile-aedat4-stream");
    let (bytes, first) = lz4_aedat4(&dir, &random_events(64, 48, 300, 4, 100), 100);
    let second =
        first + 8 + i32::from_le_bytes(bytes[first + 4..first + 8].try_into().unwrap()) as usize;
    let mut b = bytes.clone();
    b[second] = 7;
    refused(&dir, "stream.aedat4", &b, aedat4::read_aedat4)
        .at(&format!("byte {second}"), "found stream id 7");
}

#[test]
fn gesture_labels_that_are_not_utf8_name_the_row() {
    let dir = TempDir::new("hostile-labels");
    refused(
        &dir,
        "user01_natural_labels.csv",
        b"class,startTime_usec,endTime_usec\n1,0,100\n2,\xff\xfe,300\n",
        aedat3::read_gesture_labels,
    )
    .at("row 3", "UTF-8");
}

#[test]
fn a_broken_gesture_trial_is_parsed_once_for_all_its_windows() {
    use dualstream_data::datasets::{DvsGesture, EventDataset, Split};
    let dir = TempDir::new("hostile-gesture");
    let aedat = dir.path("user01_natural.aedat");
    write(&aedat, b"#!AER-DAT3.1\r\n#!END-HEADER\r\n\x01\x00");
    let labels = "class,startTime_usec,endTime_usec\n1,0,100\n2,100,200\n3,200,300\n";
    write(&dir.path("user01_natural_labels.csv"), labels.as_bytes());
    write(&dir.path("trials_to_train.txt"), b"user01_natural.aedat\n");
    let set = DvsGesture::open(&dir.0, Split::Train).unwrap();
    let first = set.get(0).unwrap_err();
    assert_names(&first, &aedat, "byte 28");
    // The file is repaired on disk, yet the trial's other windows give the same error: the
    // failure was kept, not re-parsed for every window.
    aedat3::write_aedat3(&aedat, &random_events(128, 128, 100, 1, 3)).unwrap();
    assert_eq!(set.get(1).unwrap_err(), first);
    assert_eq!(set.get(2).unwrap_err(), first);
}
