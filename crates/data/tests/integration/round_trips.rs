//! Writer -> reader round trips for every format, plus hand-computed decodings of single
//! events, so a writer and reader that agree on a wrong layout cannot both pass.

use crate::common::{random_events, write, TempDir};
use dualstream_data::aedat4::{self, Compression, WriteCompression};
use dualstream_data::cifar::{self, CifarImages, CifarKind};
use dualstream_data::idx::{self, IdxArray, IdxData};
use dualstream_data::{aedat2, aedat3, nmnist, EventStream};

#[test]
fn nbin_round_trip_with_overflow_markers() {
    let dir = TempDir::new("nbin");
    // Steps of up to 10 ms reach well past 2^23 us (8.4 s): the writer must emit markers.
    let events = random_events(34, 34, 3000, 1, 10_000);
    assert!(*events.t.last().unwrap() > 1 << 23);
    let path = dir.path("a.bin");
    nmnist::write_nbin(&path, &events).unwrap();
    let back = nmnist::read_nbin(&path, 34, 34).unwrap();
    assert_eq!(back, events);
    let markers = (std::fs::metadata(&path).unwrap().len() / 5) as usize - events.len();
    let needed = ((*events.t.last().unwrap() - ((1 << 23) - 1)) as f64 / 8192.0).ceil() as usize;
    assert_eq!(markers, needed);
    assert_eq!(dir.entries(), ["a.bin"], "no temp file left behind");
}

#[test]
fn nbin_hand_made_bytes() {
    let dir = TempDir::new("nbin-hand");
    let path = dir.path("h.bin");
    // x=3, y=4, ON, t=0x010203; then an overflow marker (y=240); then x=0, y=33, OFF, t=5.
    write(&path, &[3, 4, 0x81, 0x02, 0x03, 0, 240, 0, 0, 0, 0, 33, 0x00, 0x00, 0x05]);
    let e = nmnist::read_nbin(&path, 34, 34).unwrap();
    assert_eq!(e.t, [0x010203, 8192 + 5]);
    assert_eq!((e.x, e.y, e.p), (vec![3, 0], vec![4, 33], vec![1, 0]));
}

#[test]
fn aedat3_round_trip_across_ts_overflow() {
    let dir = TempDir::new("aedat3");
    let mut events = random_events(128, 128, 10_000, 2, 400_000);
    // Shift so the stream crosses 2^31 us: packets must split where tsOverflow changes.
    let shift = (1i64 << 31) - events.t[5000];
    events.t.iter_mut().for_each(|t| *t += shift);
    let path = dir.path("g.aedat");
    aedat3::write_aedat3(&path, &events).unwrap();
    assert_eq!(aedat3::read_aedat3(&path, 128, 128).unwrap(), events);
}

#[test]
fn aedat3_hand_made_packets_and_skipped_types() {
    let dir = TempDir::new("aedat3-hand");
    let mut bytes = b"#!AER-DAT3.1\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n".to_vec();
    let header = |kind: i16, size: i32, overflow: i32, n: i32| {
        let mut h = Vec::new();
        h.extend_from_slice(&kind.to_le_bytes());
        h.extend_from_slice(&1i16.to_le_bytes());
        for v in [size, 4, overflow, n, n, n] {
            h.extend_from_slice(&v.to_le_bytes());
        }
        h
    };
    // A special-event packet (type 0, 8-byte events) to skip.
    bytes.extend(header(0, 8, 0, 2));
    bytes.extend([0xAA; 16]);
    // A polarity packet with tsOverflow 1 and 12-byte events (4 padding bytes each).
    bytes.extend(header(1, 12, 1, 1));
    let word: u32 = 100 << 17 | 7 << 2 | 1 << 1 | 1;
    bytes.extend(word.to_le_bytes());
    bytes.extend(1234i32.to_le_bytes());
    bytes.extend([0; 4]);
    let path = dir.path("h.aedat");
    write(&path, &bytes);
    let e = aedat3::read_aedat3(&path, 128, 128).unwrap();
    assert_eq!((e.t, e.x, e.y, e.p), (vec![(1i64 << 31) + 1234], vec![100], vec![7], vec![1]));
}

#[test]
fn gesture_labels_round_trip_and_cut() {
    let dir = TempDir::new("labels");
    let mut events = EventStream::new(128, 128);
    for t in [10, 20, 30, 40, 50] {
        events.push(t, 1, 2, 1);
    }
    let windows = vec![
        aedat3::LabelWindow { class: 3, label: 2, start: 15, end: 40, row: 2 },
        aedat3::LabelWindow { class: 11, label: 10, start: 50, end: 60, row: 3 },
    ];
    let path = dir.path("u_labels.csv");
    aedat3::write_gesture_labels(&path, &windows).unwrap();
    let back = aedat3::read_gesture_labels(&path).unwrap();
    assert_eq!(back, windows);
    // start <= t < end, as SpikingJelly selects.
    assert_eq!(aedat3::cut_window(&events, &back[0], &path).unwrap().t, [20, 30]);
    assert_eq!(aedat3::cut_window(&events, &back[1], &path).unwrap().t, [50]);
}

#[test]
fn aedat2_round_trip_and_spikingjelly_mapping() {
    let dir = TempDir::new("aedat2");
    let events = random_events(128, 128, 5000, 3, 1000);
    let path = dir.path("c.aedat");
    aedat2::write_aedat2(&path, &events, Some(1_600_000_000_123)).unwrap();
    let (header, back) = aedat2::read_aedat2(&path).unwrap();
    assert_eq!(back, events);
    assert_eq!((header.version, header.creation_time_ms), (2, Some(1_600_000_000_123)));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), header.data_offset + 8 * 5000);

    // Raw DVS128 address x=5, y=10, p=1 -> x' = 127 - 10, y' = 127 - 5, p' = 0.
    let hand = dir.path("hand.aedat");
    let mut bytes = b"#!AER-DAT2.0\r\n# hand made\r\n".to_vec();
    bytes.extend((10u32 << 8 | 5 << 1 | 1).to_be_bytes());
    bytes.extend(0xFFFF_FFF0u32.to_be_bytes());
    write(&hand, &bytes);
    let (_, e) = aedat2::read_aedat2(&hand).unwrap();
    assert_eq!((e.x, e.y, e.p, e.t), (vec![117], vec![122], vec![0], vec![0xFFFF_FFF0]));
}

fn aedat4_round_trip(compression: WriteCompression, expected: Compression) {
    let dir = TempDir::new("aedat4");
    let mut events = random_events(320, 240, 20_000, 4, 50);
    events.t.iter_mut().for_each(|t| *t += 1_700_000_000_000_000);
    let path = dir.path("d.aedat4");
    aedat4::write_aedat4(&path, &events, compression, 3000).unwrap();
    let (info, back) = aedat4::read_aedat4(&path).unwrap();
    assert_eq!(back, events);
    assert_eq!(info.compression, expected);
    assert_eq!(info.event_packets, 7);
    assert_eq!(info.data_table_position, -1);
}

#[test]
fn aedat4_round_trip_lz4() {
    aedat4_round_trip(WriteCompression::Lz4, Compression::Lz4);
}

#[test]
fn aedat4_round_trip_uncompressed() {
    aedat4_round_trip(WriteCompression::None, Compression::None);
}

/// A Zstd frame holding `data` in one raw block (valid Zstd; no Zstd encoder needed).
fn zstd_raw_frame(data: &[u8]) -> Vec<u8> {
    assert!((256..65_792).contains(&data.len()) && data.len() < 128 * 1024);
    let mut f = vec![0x28, 0xB5, 0x2F, 0xFD, 0x60];
    f.extend(((data.len() - 256) as u16).to_le_bytes());
    let block = (data.len() as u32) << 3 | 1;
    f.extend(&block.to_le_bytes()[..3]);
    f.extend_from_slice(data);
    f
}

#[test]
fn aedat4_zstd_packets() {
    let dir = TempDir::new("aedat4-zstd");
    let events = random_events(64, 48, 200, 5, 10);
    let plain_path = dir.path("plain.aedat4");
    aedat4::write_aedat4(&plain_path, &events, WriteCompression::None, 50).unwrap();
    // Re-pack: compression code 3 (Zstd) and every packet wrapped in a Zstd frame.
    let bytes = std::fs::read(&plain_path).unwrap();
    let header_len = i32::from_le_bytes(bytes[14..18].try_into().unwrap()) as usize;
    let mut out = bytes[..18 + header_len].to_vec();
    assert_eq!(out[18 + 28..18 + 32], [0, 0, 0, 0], "compression field of our IOHeader layout");
    out[18 + 28] = 3;
    let mut pos = 18 + header_len;
    while pos < bytes.len() {
        let size = i32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let frame = zstd_raw_frame(&bytes[pos + 8..pos + 8 + size]);
        out.extend_from_slice(&bytes[pos..pos + 4]);
        out.extend((frame.len() as i32).to_le_bytes());
        out.extend(frame);
        pos += 8 + size;
    }
    let path = dir.path("zstd.aedat4");
    write(&path, &out);
    let (info, back) = aedat4::read_aedat4(&path).unwrap();
    assert_eq!(info.compression, Compression::Zstd);
    assert_eq!(info.event_packets, 4);
    assert_eq!(back, events);
}

#[test]
fn cifar_round_trips() {
    let dir = TempDir::new("cifar");
    let n = 7;
    let pixels: Vec<u8> = (0..n * 3072).map(|i| (i * 31 % 251) as u8).collect();
    let c10 = CifarImages {
        kind: CifarKind::Cifar10,
        pixels: pixels.clone(),
        labels: vec![0, 9, 3, 4, 5, 6, 1],
        coarse_labels: vec![],
    };
    let p10 = dir.path("data_batch_1.bin");
    cifar::write_cifar(&p10, &c10).unwrap();
    assert_eq!(cifar::read_cifar(&p10, CifarKind::Cifar10).unwrap(), c10);
    assert_eq!(std::fs::metadata(&p10).unwrap().len(), 7 * 3073);
    let (img, label, coarse) = cifar::read_cifar_record(&p10, CifarKind::Cifar10, 2).unwrap();
    assert_eq!((&img[..], label, coarse), (&pixels[2 * 3072..3 * 3072], 3, None));
    // Byte layout: label byte, then the R plane: record 1 starts at 3073 with label 9.
    let raw = std::fs::read(&p10).unwrap();
    assert_eq!((raw[3073], raw[3074]), (9, pixels[3072]));

    let c100 = CifarImages {
        kind: CifarKind::Cifar100,
        pixels,
        labels: vec![99, 0, 5, 6, 7, 8, 9],
        coarse_labels: vec![19, 0, 1, 2, 3, 4, 5],
    };
    let p100 = dir.path("train.bin");
    cifar::write_cifar(&p100, &c100).unwrap();
    assert_eq!(cifar::read_cifar(&p100, CifarKind::Cifar100).unwrap(), c100);
    let raw = std::fs::read(&p100).unwrap();
    assert_eq!(&raw[..2], [19, 99], "coarse label byte first, then fine");
    assert_eq!(cifar::read_cifar_record(&p100, CifarKind::Cifar100, 0).unwrap().1, 99);
}

#[test]
fn idx_round_trips_plain_and_gzip() {
    let dir = TempDir::new("idx");
    let arrays = [
        IdxArray { dims: vec![3, 2, 2], data: IdxData::U8((0..12).collect()) },
        IdxArray { dims: vec![4], data: IdxData::I16(vec![-2, 300, 0, i16::MIN]) },
        IdxArray { dims: vec![2, 1], data: IdxData::F64(vec![1.5, -0.25]) },
        IdxArray { dims: vec![2], data: IdxData::F32(vec![3.25, -7.0]) },
        IdxArray { dims: vec![1], data: IdxData::I32(vec![-123_456]) },
        IdxArray { dims: vec![2], data: IdxData::I8(vec![-1, 1]) },
    ];
    for (k, array) in arrays.iter().enumerate() {
        let path = dir.path(&format!("a{k}.idx"));
        idx::write_idx(&path, array).unwrap();
        assert_eq!(&idx::read_idx(&path).unwrap(), array);
    }
    // Hand-made MNIST-style label file, gzip'd as distributed.
    let mut plain = vec![0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1];
    let gz_path = dir.path("labels-idx1-ubyte.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, &plain).unwrap();
    write(&gz_path, &enc.finish().unwrap());
    let back = idx::read_idx(&gz_path).unwrap();
    assert_eq!((back.dims, back.data), (vec![3], IdxData::U8(vec![7, 2, 1])));
    // Big-endian values: i16 0x0102 = 258.
    plain = vec![0, 0, 0x0B, 1, 0, 0, 0, 1, 1, 2];
    let be = dir.path("be.idx");
    write(&be, &plain);
    assert_eq!(idx::read_idx(&be).unwrap().data, IdxData::I16(vec![258]));
}
