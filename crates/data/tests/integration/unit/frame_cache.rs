//! Tests of `dualstream_data::frame_cache`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `frame_cache` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::{Error, Tensor};
    pub use dualstream_data::frame_cache::*;
    pub use dualstream_data::frames::{integrate, FrameOptions};
    pub use dualstream_data::EventStream;
    pub use std::fs;
    pub use std::path::{Path, PathBuf};
}
use dualstream_data::frames::Split;

fn temp_dir(name: &str) -> PathBuf {
    let d =
        std::env::temp_dir().join(format!("dualstream-frame-cache-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn sample_events() -> EventStream {
    let mut s = EventStream::new(4, 3);
    for k in 0..20u16 {
        s.push(k as i64 * 10, k % 4, k % 3, (k % 2) as u8);
    }
    s
}

/// The sample events as `frames` frames, written to `dir/sample.dsframes` under `key`.
fn write_sample(dir: &Path, frames: usize, key: &str) -> (PathBuf, Tensor) {
    let split = Split::Number { frames };
    let frames = integrate(&sample_events(), &FrameOptions::new(split)).unwrap();
    let path = dir.join("sample.dsframes");
    write_frames_file(&path, key, &frames).unwrap();
    (path, frames)
}

#[test]
fn write_then_read_round_trips_and_leaves_no_temp_file() {
    let dir = temp_dir("roundtrip");
    let (path, frames) = write_sample(&dir, 3, "{\"k\":1}");
    let back = read_frames_file(&path).unwrap();
    assert_eq!(back.shape(), &[3, 2, 3, 4]);
    assert_eq!(back.data(), frames.data());
    assert_eq!(back.key(), "{\"k\":1}");
    let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "{names:?}");
    // The header is laid out as documented.
    let bytes = fs::read(&path).unwrap();
    assert_eq!(&bytes[..8], b"DSFRAMES");
    assert_eq!(u32::from_le_bytes(bytes[20..24].try_into().unwrap()), 7);
    assert_eq!(u64::from_le_bytes(bytes[48..56].try_into().unwrap()), 4);
    assert_eq!(bytes.len(), 128 + 4 * 3 * 2 * 3 * 4);
}

#[test]
fn damaged_files_give_format_errors_with_offsets() {
    let (path, _) = write_sample(&temp_dir("damaged"), 2, "key");
    let good = fs::read(&path).unwrap();
    let check = |bytes: &[u8], needle: &str| {
        fs::write(&path, bytes).unwrap();
        let err = read_frames_file(&path).err().expect("damaged file must not open");
        assert_eq!(err.code(), "ERR_FORMAT");
        let msg = err.to_string();
        assert!(msg.contains(needle), "{msg} should contain {needle}");
    };
    check(&good[..good.len() - 3], "bytes for shape");
    check(&good[..10], "64-byte header");
    let mut bad = good.clone();
    bad[0] = b'X';
    check(&bad, "byte 0");
    let mut bad = good.clone();
    bad[8] = 9;
    check(&bad, "version 1");
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x40;
    check(&bad, "checksum");
    let mut bad = good.clone();
    bad[24] = 200; // T = 200: length no longer matches
    check(&bad, "byte");
}

#[test]
fn cache_key_covers_every_parameter_and_the_source_identity() {
    let dir = temp_dir("key");
    let src = dir.join("rec.bin");
    fs::write(&src, b"0123456789").unwrap();
    let base =
        CacheKey::for_file(&src, "", FrameOptions::new(Split::Number { frames: 8 })).unwrap();
    let variants = [
        CacheKey::for_file(&src, "", FrameOptions::new(Split::Number { frames: 16 })).unwrap(),
        CacheKey::for_file(&src, "", FrameOptions::new(Split::Time { frames: 8 })).unwrap(),
        CacheKey::for_file(
            &src,
            "",
            FrameOptions::new(Split::Number { frames: 8 }).with_downscale(2),
        )
        .unwrap(),
        CacheKey::for_file(&src, "t=0..10", FrameOptions::new(Split::Number { frames: 8 }))
            .unwrap(),
        CacheKey { source_size: 11, ..base.clone() },
        CacheKey { source_mtime_ns: base.source_mtime_ns + 1, ..base.clone() },
        CacheKey { source: format!("{}x", base.source), ..base.clone() },
    ];
    for v in &variants {
        assert_ne!(v.file_name(), base.file_name(), "{v:?}");
    }
    assert!(std::path::Path::new(&base.source).is_absolute());
}

#[test]
fn get_or_build_hits_then_rebuilds_damaged_or_stale_files() {
    let dir = temp_dir("build");
    let src = dir.join("rec.bin");
    fs::write(&src, b"abc").unwrap();
    let cache = FrameCache::new(dir.join("cache")).unwrap();
    let key = CacheKey::for_file(&src, "", FrameOptions::new(Split::Number { frames: 4 })).unwrap();
    let expected = integrate(&sample_events(), &key.options).unwrap();
    let (f, o) = cache.get_or_build(&key, || Ok(sample_events())).unwrap();
    assert_eq!((o, f.data()), (CacheOutcome::Built, expected.data()));
    let (f, o) = cache.get_or_build(&key, || panic!("a hit must not load the source")).unwrap();
    assert_eq!((o, f.data()), (CacheOutcome::Hit, expected.data()));
    // Truncate: rebuilt, not a crash.
    let path = cache.path_for(&key);
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert!(cache.lookup(&key).is_err());
    let (f, o) = cache.get_or_build(&key, || Ok(sample_events())).unwrap();
    assert_eq!((o, f.data()), (CacheOutcome::Rebuilt, expected.data()));
    // Another key under the same name (a collision or an old file): a miss, then rebuilt.
    write_frames_file(&path, "{\"other\":true}", &expected).unwrap();
    assert!(cache.lookup(&key).unwrap().is_none());
    let (_, o) = cache.get_or_build(&key, || Ok(sample_events())).unwrap();
    assert_eq!(o, CacheOutcome::Rebuilt);
    // A load error passes through and leaves no file.
    let key2 = CacheKey { part: "other".into(), ..key.clone() };
    let err = cache
        .get_or_build(&key2, || Err(Error::format("rec.bin", "byte 3", "an event")))
        .err()
        .unwrap();
    assert_eq!(err.code(), "ERR_FORMAT");
    assert!(!cache.path_for(&key2).exists());
}
