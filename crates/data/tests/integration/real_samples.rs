//! The parsers on optional real recordings in a `shared/data` folder next to the checkout's
//! folder (never copied into the repository). Each test prints a clear message and passes
//! without checking when a recording is absent.
use std::path::PathBuf;

use dualstream_data::{aedat2, aedat3, aedat4, nmnist};

fn sample(name: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    let path = dir.join(name);
    if path.exists() {
        Some(path)
    } else {
        eprintln!("SKIPPED: real sample {} is absent (expected at {})", name, path.display());
        None
    }
}

#[test]
fn nmnist_sample_facts() {
    let Some(path) = sample("nmnist-sample.bin") else { return };
    let events = nmnist::read_nbin(&path, 34, 34).unwrap();
    assert_eq!(events.len(), 4325);
    assert_eq!((events.width, events.height), (34, 34));
    assert!(events.x.iter().all(|&x| x < 34) && events.y.iter().all(|&y| y < 34));
    assert_eq!(*events.t.last().unwrap(), 311_175);
    // No overflow markers: the file is exactly 5 bytes per event.
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 4325 * 5);
    assert!(events.t.windows(2).all(|w| w[0] <= w[1]), "timestamps in order");
    let on = events.p.iter().filter(|&&p| p == 1).count();
    assert!(on > 0 && on < events.len(), "both polarities occur");
    // Any smaller sensor must reject it, naming the file and an offset.
    let err = nmnist::read_nbin(&path, 20, 20).unwrap_err().to_string();
    assert!(err.contains("nmnist-sample.bin, byte ") && err.contains("20x20"), "{err}");
}

#[test]
fn aedat4_sample_facts() {
    let Some(path) = sample("dvxplorer-sample.aedat4") else { return };
    let (info, events) = aedat4::read_aedat4(&path).unwrap();
    assert_eq!(info.compression, aedat4::Compression::Lz4);
    assert_eq!((events.width, events.height), (320, 240));
    assert_eq!(events.len(), 111_954);
    assert_eq!(info.event_packets, 59);
    let kinds: Vec<&str> = info.streams.iter().map(|s| s.type_identifier.as_str()).collect();
    assert_eq!(kinds, ["EVTS", "IMUS", "TRIG"]);
    assert!(info.data_table_position > 0);
    // Absolute microsecond timestamps (Unix epoch): the recording was made on 16 November 2020
    // (UTC) and spans a few seconds.
    let (first, last) = (events.t[0], *events.t.last().unwrap());
    assert!((1_605_484_800_000_000..1_605_571_200_000_000).contains(&first), "first t {first}");
    assert!(last - first > 0 && last - first < 60_000_000, "span {} us", last - first);
    assert!(events.t.windows(2).all(|w| w[0] <= w[1]), "timestamps in order");
    assert!(events.x.iter().all(|&x| x < 320) && events.y.iter().all(|&y| y < 240));
}

#[test]
fn aedat2_header_only_sample() {
    let Some(path) = sample("davis346-header-only.aedat") else { return };
    let (header, events) = aedat2::read_aedat2(&path).unwrap();
    assert_eq!(header.version, 2);
    assert_eq!(header.creation_time_ms, Some(1_695_355_587_880));
    assert_eq!(events.len(), 0);
    assert_eq!(header.data_offset, std::fs::metadata(&path).unwrap().len());
    assert!(header.lines.iter().any(|l| l.contains("Davis346red")));
}

#[test]
fn gesture_labels_sample() {
    let Some(path) = sample("dvsgesture-user01_natural_labels.csv") else { return };
    let windows = aedat3::read_gesture_labels(&path).unwrap();
    assert_eq!(windows.len(), 12);
    let classes: Vec<u8> = windows.iter().map(|w| w.class).collect();
    assert_eq!(classes, [1, 2, 3, 5, 4, 6, 7, 8, 8, 9, 10, 11]);
    assert_eq!(windows.iter().filter(|w| w.class == 8).count(), 2);
    assert!(windows.iter().all(|w| w.label == w.class as usize - 1 && w.start < w.end));
    assert_eq!((windows[0].start, windows[0].end, windows[0].row), (53_036_986, 59_508_469, 2));
    assert_eq!(
        (windows[11].start, windows[11].end, windows[11].row),
        (171_367_247, 177_991_967, 13)
    );
}

/// The full DVS128 Gesture release, when a developer points DUALSTREAM_DVSGESTURE at it (it is
/// far too large for the sample folder): the standard trials split gives 1,176 / 288 windows.
#[test]
fn dvs_gesture_full_release_split() {
    use dualstream_data::datasets::{DvsGesture, EventDataset, Split};
    let Some(root) = std::env::var_os("DUALSTREAM_DVSGESTURE") else {
        eprintln!("SKIPPED: set DUALSTREAM_DVSGESTURE to the DvsGesture folder to check the 1,176 / 288 split");
        return;
    };
    let root = PathBuf::from(root);
    let train = DvsGesture::open(&root, Split::Train).unwrap();
    let test = DvsGesture::open(&root, Split::Test).unwrap();
    assert_eq!((train.len(), test.len()), (1176, 288));
    let (events, label) = train.get(0).unwrap();
    assert!(!events.is_empty() && label < 11);
}
