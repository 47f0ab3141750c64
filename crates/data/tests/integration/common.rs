use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use dualstream_data::{aedat4, EventStream};

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "dualstream-data-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    /// Files left in the directory (to check that failed writes leave nothing behind).
    pub fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic pseudo-random events in time order (xorshift; no dependency).
pub fn random_events(width: u16, height: u16, n: usize, seed: u64, max_step: i64) -> EventStream {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut events = EventStream::new(width, height);
    let mut t = (next() % 1000) as i64;
    for _ in 0..n {
        t += (next() % (max_step as u64 + 1)) as i64;
        events.push(
            t,
            (next() % width as u64) as u16,
            (next() % height as u64) as u16,
            (next() % 2) as u8,
        );
    }
    events
}

/// Asserts `err` names `path` and the location `at` (e.g. "byte 1234" or "row 5").
pub fn assert_names(err: &dualstream_core::Error, path: &Path, at: &str) {
    let text = err.to_string();
    assert_eq!(err.code(), "ERR_FORMAT", "{text}");
    assert!(text.contains(&path.display().to_string()), "error does not name the file: {text}");
    assert!(text.contains(&format!("{at}:")), "error does not name {at}: {text}");
}

pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

/// A file that a reader refused: its path and the error.
pub struct Refused {
    pub path: PathBuf,
    pub err: dualstream_core::Error,
}

impl Refused {
    /// Checks that the error is ERR_FORMAT naming the file and `at`, and that it says `says`.
    pub fn at(&self, at: &str, says: &str) {
        assert_names(&self.err, &self.path, at);
        assert!(self.err.to_string().contains(says), "{}: {}", self.path.display(), self.err);
    }
}

/// Writes `bytes` as `name` in `dir` and reads the file back with `read`, which must fail.
pub fn refused<T>(
    dir: &TempDir,
    name: &str,
    bytes: &[u8],
    read: impl FnOnce(&Path) -> dualstream_core::Result<T>,
) -> Refused {
    let path = dir.path(name);
    write(&path, bytes);
    let Err(err) = read(&path) else { panic!("{name}: read without error") };
    Refused { path, err }
}

/// Writes `events` LZ4-compressed, `per_packet` events a packet, as `good.aedat4` in `dir`;
/// returns the file's bytes and the offset of its first packet (after the 18-byte preamble and
/// the IOHeader it sizes).
pub fn lz4_aedat4(dir: &TempDir, events: &EventStream, per_packet: usize) -> (Vec<u8>, usize) {
    let path = dir.path("good.aedat4");
    aedat4::write_aedat4(&path, events, aedat4::WriteCompression::Lz4, per_packet).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let header_len = i32::from_le_bytes(bytes[14..18].try_into().unwrap()) as usize;
    (bytes, 18 + header_len)
}
