//! Byte-level helpers shared by every parser and writer: a reader that knows its byte offset
//! (so format errors can name it), and atomic writes (temp file, fsync, rename) so a failed or
//! interrupted write never leaves a half-written file under the final name.
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use dualstream_core::{limits, Error, Result};

#[doc(hidden)]
pub fn display(path: &Path) -> String {
    path.display().to_string()
}

/// The start of a line found where something else was expected, short enough for a message.
pub(crate) fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}

/// A buffered reader over a file or any byte source, tracking how many bytes were consumed.
pub struct Source<R> {
    inner: R,
    offset: u64,
    name: String,
}

impl Source<BufReader<File>> {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(display(path), e))?;
        Ok(Source::new(BufReader::with_capacity(1 << 16, file), display(path)))
    }
}

impl<R: BufRead> Source<R> {
    pub fn new(inner: R, name: impl Into<String>) -> Self {
        Source { inner, offset: 0, name: name.into() }
    }

    /// The file name used in errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// A format error at byte `offset` of this file.
    pub fn error_at(&self, offset: u64, expected: impl Into<String>) -> Error {
        Error::format(self.name.clone(), format!("byte {offset}"), expected)
    }

    fn io_error(&self, err: std::io::Error) -> Error {
        Error::io(self.name.clone(), err)
    }

    /// Reads until `buf` is full or the input ends; returns how many bytes were read.
    pub fn fill(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_error(e)),
            }
        }
        self.offset += filled as u64;
        Ok(filled)
    }

    /// Reads exactly `buf.len()` bytes; a short read is a truncated file, reported at the offset
    /// where the missing item starts.
    pub fn read_exact(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        let start = self.offset;
        let got = self.fill(buf)?;
        if got < buf.len() {
            return Err(self.error_at(
                start,
                format!("{what} ({} bytes), but the file ends after {got} of them", buf.len()),
            ));
        }
        Ok(())
    }

    /// Reads the `n` bytes of `what` into a new vector. `n` comes from the file, so it is checked
    /// against the allocation limit first, and the vector grows with the bytes really read: a
    /// size field larger than the file costs no more memory than the file.
    pub fn read_vec(&mut self, n: u64, what: &str) -> Result<Vec<u8>> {
        let start = self.offset;
        if n > limits::max_bytes() {
            return Err(self.error_at(
                start,
                format!("{what} within {}, found a size of {n} bytes", limits::describe_limit()),
            ));
        }
        let out = self.read_up_to(n)?;
        let got = out.len();
        if (got as u64) < n {
            return Err(self.error_at(
                start,
                format!("{what} ({n} bytes), but the file ends after {got} of them"),
            ));
        }
        Ok(out)
    }

    /// Up to `n` bytes (fewer when the input ends first), in a vector that grows with the bytes
    /// read rather than being sized by `n` up front.
    pub fn read_up_to(&mut self, n: u64) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let got = read_capped(&mut self.inner, n, &mut out).map_err(|e| self.io_error(e))?;
        self.offset += got as u64;
        Ok(out)
    }

    /// True when no byte is left.
    pub fn at_end(&mut self) -> Result<bool> {
        let buf = self.inner.fill_buf().map_err(|e| Error::io(self.name.clone(), e))?;
        Ok(buf.is_empty())
    }

    pub fn peek_byte(&mut self) -> Result<Option<u8>> {
        let buf = self.inner.fill_buf().map_err(|e| Error::io(self.name.clone(), e))?;
        Ok(buf.first().copied())
    }

    /// Skips `n` bytes of a structure described by `what`, failing if the file ends first.
    pub fn skip(&mut self, n: u64, what: &str) -> Result<()> {
        let start = self.offset;
        let copied = std::io::copy(&mut (&mut self.inner).take(n), &mut std::io::sink())
            .map_err(|e| self.io_error(e))?;
        self.offset += copied;
        if copied < n {
            return Err(self.error_at(
                start,
                format!("{what} ({n} bytes), but the file ends after {copied} of them"),
            ));
        }
        Ok(())
    }

    /// One header line (up to and including `\n`, at most `max` bytes), without its line ending.
    /// `None` at the end of the input.
    pub fn read_line(&mut self, max: usize, what: &str) -> Result<Option<Vec<u8>>> {
        let start = self.offset;
        let mut line = Vec::new();
        let n = (&mut self.inner)
            .take(max as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| self.io_error(e))?;
        self.offset += n as u64;
        if n == 0 {
            return Ok(None);
        }
        if line.last() != Some(&b'\n') && n > max {
            return Err(self
                .error_at(start, format!("{what} of at most {max} bytes ending with a newline")));
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        Ok(Some(line))
    }
}

/// Appends up to `cap` bytes of `reader` to `out` and returns how many. The vector's capacity
/// doubles with the data but never passes `out.len() + cap`, so a reader that yields less costs
/// less memory, and one that would yield more (a decompression bomb) stops at `cap`.
pub(crate) fn read_capped(
    reader: &mut impl Read,
    cap: u64,
    out: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let start = out.len();
    let end = start.saturating_add(usize::try_from(cap).unwrap_or(usize::MAX));
    loop {
        if out.len() == end {
            return Ok(out.len() - start);
        }
        if out.len() == out.capacity() {
            let want = (out.capacity() * 2).max(out.len() + 8192).min(end);
            out.try_reserve_exact(want - out.len())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::OutOfMemory, e.to_string()))?;
        }
        let filled = out.len();
        let room = out.capacity().min(end) - filled;
        out.resize(filled + room, 0);
        match reader.read(&mut out[filled..]) {
            Ok(0) => {
                out.truncate(filled);
                return Ok(filled - start);
            }
            Ok(n) => out.truncate(filled + n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => out.truncate(filled),
            Err(e) => {
                out.truncate(filled);
                return Err(e);
            }
        }
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `path` through `write` into a temporary file beside it, then fsyncs and renames it
/// into place. On any error the temporary file is removed and `path` is left untouched.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<&File>) -> Result<()>,
) -> Result<()> {
    let name = path.file_name().ok_or_else(|| {
        Error::io(display(path), "expected a file path, got a directory or an empty path")
    })?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let temp: PathBuf = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let file = File::create(&temp).map_err(|e| Error::io(display(path), e))?;
        {
            let mut writer = BufWriter::with_capacity(1 << 16, &file);
            write(&mut writer)?;
            writer.flush().map_err(|e| Error::io(display(path), e))?;
        }
        file.sync_all().map_err(|e| Error::io(display(path), e))?;
        std::fs::rename(&temp, path).map_err(|e| Error::io(display(path), e))?;
        // Makes the rename itself durable; not every filesystem allows fsync on a folder.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// `std::io::Write` errors of a writer, named by the file being written.
#[doc(hidden)]
pub fn write_all(w: &mut impl Write, bytes: &[u8], path: &Path) -> Result<()> {
    w.write_all(bytes).map_err(|e| Error::io(display(path), e))
}

use crate::EventStream;

impl EventStream {
    /// Checks what every writer needs: equal field lengths, polarities 0/1, and each event inside
    /// the declared sensor and inside `limit_x` x `limit_y` (what the format can encode).
    pub(crate) fn check_writable(
        &self,
        path: &Path,
        format: &str,
        limit_x: u32,
        limit_y: u32,
    ) -> Result<()> {
        let at = format!("writing {format} {}", display(path));
        let n = self.t.len();
        if self.x.len() != n || self.y.len() != n || self.p.len() != n {
            return Err(Error::value(
                at,
                "t, x, y and p of equal length",
                format!("lengths {}, {}, {}, {}", n, self.x.len(), self.y.len(), self.p.len()),
            ));
        }
        if self.width as u32 > limit_x || self.height as u32 > limit_y {
            return Err(Error::value(
                at,
                format!("a sensor of at most {limit_x}x{limit_y} ({format} cannot encode more)"),
                format!("{}x{}", self.width, self.height),
            ));
        }
        for i in 0..n {
            if self.x[i] >= self.width || self.y[i] >= self.height || self.p[i] > 1 {
                return Err(Error::value(
                    at,
                    format!("events with x < {}, y < {} and p 0 or 1", self.width, self.height),
                    format!("event {i}: x={}, y={}, p={}", self.x[i], self.y[i], self.p[i]),
                ));
            }
        }
        Ok(())
    }
}
