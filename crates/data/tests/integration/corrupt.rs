//! Bad input: every case must fail with ERR_FORMAT naming the file and the byte offset (or CSV
//! row) where the problem starts, never panic.

use crate::common::{assert_names, lz4_aedat4, random_events, refused, write, TempDir};
use dualstream_data::aedat4;
use dualstream_data::cifar::{self, CifarImages, CifarKind};
use dualstream_data::{aedat2, aedat3, idx, nmnist, EventStream};

#[test]
fn nbin_truncated_at_several_offsets() {
    let dir = TempDir::new("bad-nbin");
    let good = dir.path("good.bin");
    nmnist::write_nbin(&good, &random_events(34, 34, 10_000, 7, 30)).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    // Inside the first event, mid-file, and inside the last event (also past the 40 KB chunk).
    for cut in [3usize, 24_997, 49_999, bytes.len() - 1] {
        refused(&dir, &format!("cut{cut}.bin"), &bytes[..cut], |p| nmnist::read_nbin(p, 34, 34))
            .at(&format!("byte {}", cut / 5 * 5), "5-byte event");
    }
}

#[test]
fn nbin_event_outside_sensor() {
    let dir = TempDir::new("bad-nbin2");
    refused(&dir, "big.bin", &[1, 1, 0, 0, 1, 34, 2, 0, 0, 2], |p| nmnist::read_nbin(p, 34, 34))
        .at("byte 5", "x=34");
}

fn aedat3_file(dir: &TempDir) -> (std::path::PathBuf, Vec<u8>) {
    let path = dir.path("good.aedat");
    aedat3::write_aedat3(&path, &random_events(128, 128, 100, 8, 100)).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

#[test]
fn aedat3_corruptions() {
    let dir = TempDir::new("bad-aedat3");
    let (_, bytes) = aedat3_file(&dir);
    let header_end = bytes.windows(14).position(|w| w == b"#!END-HEADER\r\n").unwrap() + 14;

    let mut b = bytes.clone();
    b[11] = b'0'; // #!AER-DAT3.1 -> #!AER-DAT2.1
    b[10] = b'2';
    refused(&dir, "version.aedat", &b, |p| aedat3::read_aedat3(p, 128, 128))
        .at("byte 0", "#!AER-DAT3.1");

    let path = dir.path("no-end.aedat");
    write(&path, &bytes[..header_end - 14]);
    assert_names(
        &aedat3::read_aedat3(&path, 128, 128).unwrap_err(),
        &path,
        &format!("byte {}", header_end - 14),
    );

    // Inside the packet header, then inside the event data.
    for (cut, at) in
        [(header_end + 10, header_end), (header_end + 28 + 8 * 50 + 3, header_end + 28)]
    {
        let path = dir.path(&format!("cut{cut}.aedat"));
        write(&path, &bytes[..cut]);
        assert_names(
            &aedat3::read_aedat3(&path, 128, 128).unwrap_err(),
            &path,
            &format!("byte {at}"),
        );
    }

    // The same file read as a 64x64 sensor: the first event outside it is named.
    let path = dir.path("good.aedat");
    let events = aedat3::read_aedat3(&path, 128, 128).unwrap();
    let first_out = events.x.iter().zip(&events.y).position(|(&x, &y)| x >= 64 || y >= 64).unwrap();
    let err = aedat3::read_aedat3(&path, 64, 64).unwrap_err();
    assert_names(&err, &path, &format!("byte {}", header_end + 28 + 8 * first_out));
}

#[test]
fn gesture_label_errors_name_the_row() {
    let dir = TempDir::new("bad-labels");
    let cases: [(&str, &str, &str); 5] = [
        ("class,start,end\n1,0,10\n", "row 1", "header"),
        ("class,startTime_usec,endTime_usec\n1,0,10\n12,5,9\n", "row 3", "class in 1..11"),
        ("class,startTime_usec,endTime_usec\n0,5,9\n", "row 2", "class in 1..11"),
        (
            "class,startTime_usec,endTime_usec\n1,0,10\n2,20,20\n",
            "row 3",
            "startTime_usec < endTime_usec",
        ),
        ("class,startTime_usec,endTime_usec\n1,0,10\n\n4,abc,9\n", "row 4", "three integers"),
    ];
    for (k, (text, at, what)) in cases.iter().enumerate() {
        refused(&dir, &format!("l{k}_labels.csv"), text.as_bytes(), aedat3::read_gesture_labels)
            .at(at, what);
    }
}

#[test]
fn label_windows_outside_or_empty() {
    let dir = TempDir::new("bad-windows");
    let path = dir.path("u_labels.csv");
    write(&path, b"class,startTime_usec,endTime_usec\n1,100,200\n2,300,400\n3,1000,2000\n");
    let windows = aedat3::read_gesture_labels(&path).unwrap();
    let mut events = EventStream::new(128, 128);
    for t in [150, 160, 500, 600] {
        events.push(t, 0, 0, 0);
    }
    assert_eq!(aedat3::cut_window(&events, &windows[0], &path).unwrap().len(), 2);
    let empty = aedat3::cut_window(&events, &windows[1], &path).unwrap_err();
    assert_names(&empty, &path, "row 3");
    assert!(empty.to_string().contains("found none"), "{empty}");
    let outside = aedat3::cut_window(&events, &windows[2], &path).unwrap_err();
    assert_names(&outside, &path, "row 4");
    assert!(outside.to_string().contains("overlapping the recording (150..=600 us)"), "{outside}");
}

#[test]
fn aedat2_corruptions() {
    let dir = TempDir::new("bad-aedat2");
    let good = dir.path("good.aedat");
    aedat2::write_aedat2(&good, &random_events(128, 128, 50, 9, 100), None).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let data = aedat2::read_aedat2_header(&good).unwrap().data_offset as usize;

    let path = dir.path("magic.aedat");
    let mut b = bytes.clone();
    b[9] = b'3';
    write(&path, &b);
    assert_names(&aedat2::read_aedat2(&path).unwrap_err(), &path, "byte 0");

    let path = dir.path("nohdr.aedat");
    write(&path, &bytes[data..]);
    assert_names(&aedat2::read_aedat2(&path).unwrap_err(), &path, "byte 0");

    for cut in [data + 5, data + 8 * 20 + 7] {
        let path = dir.path(&format!("cut{cut}.aedat"));
        write(&path, &bytes[..cut]);
        assert_names(
            &aedat2::read_aedat2(&path).unwrap_err(),
            &path,
            &format!("byte {}", data + (cut - data) / 8 * 8),
        );
    }

    // A DAVIS-style address (bits above 15 set) is not a DVS128 event.
    let mut b = bytes.clone();
    b[data + 8 * 3] = 0x40;
    refused(&dir, "davis.aedat", &b, aedat2::read_aedat2)
        .at(&format!("byte {}", data + 24), "DVS128 address");
}

#[test]
fn aedat4_corruptions() {
    let dir = TempDir::new("bad-aedat4");
    let (bytes, first_packet) = lz4_aedat4(&dir, &random_events(320, 240, 600, 10, 100), 200);

    let case = |name: &str, b: &[u8], at: usize, what: &str| {
        refused(&dir, name, b, aedat4::read_aedat4).at(&format!("byte {at}"), what)
    };
    let mut b = bytes.clone();
    b[11] = b'3';
    case("version.aedat4", &b, 0, "#!AER-DAT4.0");
    let mut b = bytes.clone();
    b[18 + 4] = b'X'; // IOHE -> XOHE
    case("ident.aedat4", &b, 18, "identifier IOHE");
    let mut b = bytes.clone();
    b[18 + 28] = 9; // compression code
    case("compression.aedat4", &b, 18, "compression type 0..4");
    case("short-header.aedat4", &bytes[..18 + 100], 18, "IOHeader flatbuffer");
    case(
        "cut-packet-header.aedat4",
        &bytes[..first_packet + 6],
        first_packet + 4,
        "int32 size of a packet",
    );
    case("cut-packet.aedat4", &bytes[..first_packet + 40], first_packet + 8, "a packet");
    let mut b = bytes.clone();
    b[first_packet + 8] ^= 0xFF; // damage the LZ4 frame magic
    case("lz4.aedat4", &b, first_packet + 8, "Lz4-compressed packet");
    let mut b = bytes.clone();
    b[first_packet + 40] ^= 0xFF; // damage the compressed data: the frame checksum catches it
    case("lz4-data.aedat4", &b, first_packet + 8, "Lz4-compressed packet");
    // Shrink the declared sensor (same XML length): 320 -> 032.
    let at = bytes.windows(9).position(|w| w == b"int\">320<").unwrap() + 5;
    let mut b = bytes.clone();
    b[at..at + 3].copy_from_slice(b"032");
    case("sensor.aedat4", &b, first_packet + 8, "inside the 32x240 sensor");
}

#[test]
fn cifar_corruptions() {
    let dir = TempDir::new("bad-cifar");
    let images = CifarImages {
        kind: CifarKind::Cifar10,
        pixels: vec![7; 3 * 3072],
        labels: vec![1, 2, 3],
        coarse_labels: vec![],
    };
    let good = dir.path("b.bin");
    cifar::write_cifar(&good, &images).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let path = dir.path("cut.bin");
    write(&path, &bytes[..3073 + 100]);
    assert_names(&cifar::read_cifar(&path, CifarKind::Cifar10).unwrap_err(), &path, "byte 3073");
    assert_names(
        &cifar::cifar_record_count(&path, CifarKind::Cifar10).unwrap_err(),
        &path,
        "byte 3073",
    );
    let path = dir.path("label.bin");
    let mut b = bytes.clone();
    b[2 * 3073] = 10;
    write(&path, &b);
    let err = cifar::read_cifar(&path, CifarKind::Cifar10).unwrap_err();
    assert_names(&err, &path, "byte 6146");
    assert_names(
        &cifar::read_cifar_record(&path, CifarKind::Cifar10, 2).unwrap_err(),
        &path,
        "byte 6146",
    );
    // A CIFAR-10 file is not a whole number of CIFAR-100 records.
    assert_names(&cifar::read_cifar(&good, CifarKind::Cifar100).unwrap_err(), &good, "byte 6148");
}

#[test]
fn idx_corruptions() {
    let dir = TempDir::new("bad-idx");
    let case = |name: &str, b: &[u8], at: usize| {
        let path = dir.path(name);
        write(&path, b);
        assert_names(&idx::read_idx(&path).unwrap_err(), &path, &format!("byte {at}"));
    };
    case("magic.idx", &[1, 0, 8, 1, 0, 0, 0, 1, 5], 0);
    case("type.idx", &[0, 0, 7, 1, 0, 0, 0, 1, 5], 0);
    case("dims.idx", &[0, 0, 8, 2, 0, 0, 0, 1, 0], 8);
    case("huge.idx", &[0, 0, 8, 2, 255, 255, 255, 255, 255, 255, 255, 255], 4);
    case("data.idx", &[0, 0, 0x0B, 1, 0, 0, 0, 3, 0, 1, 0, 2, 9], 12);
    case("extra.idx", &[0, 0, 8, 1, 0, 0, 0, 1, 5, 6], 9);
}

#[test]
fn failed_write_leaves_nothing() {
    let dir = TempDir::new("atomic");
    let mut events = random_events(34, 34, 100, 11, 10);
    events.t[50] = -1; // the writer fails half-way through
    let path = dir.path("x.bin");
    assert!(nmnist::write_nbin(&path, &events).is_err());
    assert!(dir.entries().is_empty(), "left behind: {:?}", dir.entries());
    // An existing file survives a failed overwrite.
    write(&path, b"old");
    assert!(nmnist::write_nbin(&path, &events).is_err());
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
    assert_eq!(dir.entries(), ["x.bin"]);
}
