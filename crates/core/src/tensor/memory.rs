//! The bytes the engine's buffers hold — f32 tensors, bit-packed spike maps and the work-buffer
//! pool — counted as their allocations grow and are freed, with their high-water mark. They
//! are what a training step's memory consists of, so a step's peak can be read from them
//! (`crate::training_memory`) instead of from the process's resident size.
use std::sync::atomic::{AtomicIsize, Ordering};

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

/// An allocation of `from` bytes became one of `to` bytes (0 for none).
#[inline]
pub(crate) fn resized(from: usize, to: usize) {
    if from == to {
        return;
    }
    let live = LIVE.fetch_add(to as isize - from as isize, Ordering::Relaxed) + to as isize
        - from as isize;
    if to > from {
        PEAK.fetch_max(live, Ordering::Relaxed);
    }
}

/// Bytes held now by the engine's buffers, in every model of the process.
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed).max(0) as usize
}

/// The most bytes held at once since the last [`reset_peak`].
pub fn peak_bytes() -> usize {
    PEAK.load(Ordering::Relaxed).max(0) as usize
}

/// Starts a new high-water mark from what is held now.
pub fn reset_peak() {
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
}
