//! Per-layer wall-clock timing for benchmarks (`examples/workload_profile.rs`). Off by default:
//! then each layer call costs one relaxed atomic load. When on, every `Sequential` (blocks
//! included, so the figures nest) adds each layer's forward and backward time under its name.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

static ON: AtomicBool = AtomicBool::new(false);
static TIMES: Mutex<BTreeMap<String, LayerTime>> = Mutex::new(BTreeMap::new());

/// Accumulated time of one layer since the last `take`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LayerTime {
    pub forward_s: f64,
    pub backward_s: f64,
    pub forward_calls: u64,
    pub backward_calls: u64,
}

pub fn set_enabled(on: bool) {
    ON.store(on, Ordering::Relaxed);
}

/// Returns the times gathered so far (keyed by layer name) and starts again from zero.
pub fn take() -> BTreeMap<String, LayerTime> {
    std::mem::take(&mut *TIMES.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The start time of a timed call when profiling is on, None (one relaxed load) when off.
#[inline]
pub(crate) fn start() -> Option<Instant> {
    ON.load(Ordering::Relaxed).then(Instant::now)
}

/// Times one kernel call inside a layer under `key` (e.g. `kernel: conv backward-data`), so the
/// profile can split a layer's time between its kernels.
#[inline]
pub(crate) fn span<R>(key: &str, f: impl FnOnce() -> R) -> R {
    if !ON.load(Ordering::Relaxed) {
        return f();
    }
    let start = Instant::now();
    let r = f();
    add(key, false, start.elapsed().as_secs_f64());
    r
}

/// Adds `dt` seconds to `name`'s forward (or backward) time.
pub(crate) fn add(name: &str, backward: bool, dt: f64) {
    let mut times = TIMES.lock().unwrap_or_else(|e| e.into_inner());
    let e = times.entry(name.to_string()).or_default();
    if backward {
        e.backward_s += dt;
        e.backward_calls += 1;
    } else {
        e.forward_s += dt;
        e.forward_calls += 1;
    }
}
