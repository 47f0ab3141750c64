//! The one size policy of the engine and the readers: every allocation whose size comes from a
//! file or a model spec is computed with overflow-checked products and compared with a limit
//! before anything is allocated. A failed allocation aborts the process (Rust cannot unwind
//! from it), so sizes are refused while they are still numbers.
//!
//! The limit applies to one allocation (one tensor, one decoded file region), not to the sum of
//! all of them. Its default is [`DEFAULT_MAX_BYTES`]; the environment variable
//! [`MAX_BYTES_ENV`] (read once) or [`set_max_bytes`] change it.
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

/// 4 GiB: far above any tensor or file region of the supported datasets and models (the
/// largest, a CIFAR training set decoded to f32, is 0.6 GB), far below what aborts a process.
pub const DEFAULT_MAX_BYTES: u64 = 4 << 30;
/// Bytes, a positive integer (e.g. `DUALSTREAM_MAX_ALLOC_BYTES=17179869184` for 16 GiB).
pub const MAX_BYTES_ENV: &str = "DUALSTREAM_MAX_ALLOC_BYTES";

/// 0 until the environment has been read.
static MAX_BYTES: AtomicU64 = AtomicU64::new(0);

/// The largest allocation a file or a spec may ask for, in bytes.
pub fn max_bytes() -> u64 {
    match MAX_BYTES.load(Ordering::Relaxed) {
        0 => {
            let limit = std::env::var(MAX_BYTES_ENV)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|&v| v > 0)
                .unwrap_or(DEFAULT_MAX_BYTES);
            MAX_BYTES.store(limit, Ordering::Relaxed);
            limit
        }
        limit => limit,
    }
}

/// Sets the limit for this process (0 restores the default / environment value).
pub fn set_max_bytes(bytes: u64) {
    MAX_BYTES.store(bytes, Ordering::Relaxed);
}

/// How the limit is named in error messages.
pub fn describe_limit() -> String {
    format!("the allocation limit of {} bytes (set {MAX_BYTES_ENV} to change it)", max_bytes())
}

/// The product of `dims`, or `None` when it overflows `usize`.
pub fn product(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// `count * elem_bytes` when it fits the limit (and `usize`), else `None`.
pub fn bytes_within_limit(count: usize, elem_bytes: usize) -> Option<usize> {
    count.checked_mul(elem_bytes).filter(|&b| b as u64 <= max_bytes())
}

/// The element count of a `dims`-shaped array of `elem_bytes`-byte values, when the whole array
/// fits the limit; otherwise a `Value` error at `at` naming the shape and the limit.
pub fn check_elements(at: &str, what: &str, dims: &[usize], elem_bytes: usize) -> Result<usize> {
    match product(dims).filter(|&n| bytes_within_limit(n, elem_bytes).is_some()) {
        Some(n) => Ok(n),
        None => Err(Error::value(
            at,
            format!("{what} within {}", describe_limit()),
            format!("{dims:?} x {elem_bytes} bytes ({})", describe_bytes(dims, elem_bytes)),
        )),
    }
}

fn describe_bytes(dims: &[usize], elem_bytes: usize) -> String {
    let total = dims.iter().fold(elem_bytes as f64, |acc, &d| acc * d as f64);
    format!("{total:.3e} bytes")
}

/// A zero-filled vector of `n` values, allocated fallibly: `None` when the system refuses the
/// memory (the caller names what it was for).
pub fn try_zeroed<T: Clone + Default>(n: usize) -> Option<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).ok()?;
    v.resize(n, T::default());
    Some(v)
}
