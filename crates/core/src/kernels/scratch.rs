//! A process-wide pool of f32 work buffers (im2col columns, partial weight gradients).
//!
//! Why a shared pool rather than buffers inside each layer: an im2col buffer can be tens of
//! megabytes, one is needed per concurrently running task, and layers run one after another.
//! A pool sized by peak concurrency serves every layer, where per-layer buffers would multiply
//! that memory by the depth of the network. Buffers only grow, so once the largest layer has
//! run, taking a buffer allocates nothing.
use crate::tensor::{memory, Tensor};
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

static POOL: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// `len` floats of a `Vec` starting on a 64-byte boundary: a 64-byte vector stored across two
/// cache lines costs two stores (the event-driven convolution's additions into its
/// channels-last grid, whole 32-float cells, all straddled lines from malloc's 16-byte
/// alignment).
pub struct Aligned {
    buf: Vec<f32>,
    /// Where the aligned slice starts in `buf`.
    off: usize,
    len: usize,
}

/// Floats per 64-byte cache line: the most a buffer's start moves to be aligned.
const LINE: usize = 16;

impl Aligned {
    /// `len` aligned floats of `buf`, grown (with zeros) if it is too short.
    fn within(mut buf: Vec<f32>, len: usize) -> Aligned {
        if buf.len() < len + LINE {
            let capacity = buf.capacity();
            buf.resize(len + LINE, 0.0);
            memory::resized(capacity * 4, buf.capacity() * 4);
        }
        let off = buf.as_ptr().align_offset(64).min(LINE);
        Aligned { buf, off, len }
    }

    /// A zero-filled buffer of its own, outside the pool: for buffers a kernel keeps in a
    /// known state between calls.
    pub fn zeroed(len: usize) -> Aligned {
        Aligned::within(Vec::new(), len)
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        memory::resized(self.buf.capacity() * 4, 0);
    }
}

impl Deref for Aligned {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.buf[self.off..self.off + self.len]
    }
}

impl DerefMut for Aligned {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

/// A buffer of `len` floats borrowed from the pool, [`Aligned`]; contents are unspecified
/// (callers overwrite). Returned to the pool on drop.
pub struct Scratch(Aligned);

impl Scratch {
    pub fn take(len: usize) -> Scratch {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        // Prefer the largest buffer so small requests do not force small buffers to grow.
        let best = (0..pool.len()).max_by_key(|&i| pool[i].capacity());
        let buf = best.map(|i| pool.swap_remove(i)).unwrap_or_default();
        drop(pool);
        Scratch(Aligned::within(buf, len))
    }

    /// Like [`Scratch::take`], zero-filled.
    pub fn zeroed(len: usize) -> Scratch {
        let mut s = Scratch::take(len);
        s.fill(0.0);
        s
    }
}

impl Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.0.buf);
        POOL.lock().unwrap_or_else(|e| e.into_inner()).push(buf);
    }
}

static TENSORS: Mutex<Vec<Tensor>> = Mutex::new(Vec::new());

/// Borrows `K` work tensors (largest first; shapes and contents unspecified) for the length of
/// one call of a container layer, and returns them to a process-wide pool afterwards. A
/// sequence nested in a block then shares its buffers with every other block at the same
/// depth instead of keeping its own for the life of the model.
#[doc(hidden)]
pub fn with_tensors<const K: usize, R>(f: impl FnOnce(&mut [Tensor; K]) -> R) -> R {
    let mut held: [Tensor; K] = {
        let mut pool = TENSORS.lock().unwrap_or_else(|e| e.into_inner());
        pool.sort_by_key(|t| t.capacity());
        std::array::from_fn(|_| pool.pop().unwrap_or_default())
    };
    let r = f(&mut held);
    TENSORS.lock().unwrap_or_else(|e| e.into_inner()).extend(held);
    r
}

/// Hands `tensor` to the pool of [`with_tensors`] while its holder does not need it (a
/// container's idle work buffer during a nested call, which then borrows it); the holder takes
/// a buffer back with [`reclaim_tensor`] afterwards.
pub(crate) fn lend_tensor(tensor: Tensor) {
    TENSORS.lock().unwrap_or_else(|e| e.into_inner()).push(tensor);
}

/// The largest tensor of the pool (empty if there is none), for a holder that lent one.
pub(crate) fn reclaim_tensor() -> Tensor {
    let mut pool = TENSORS.lock().unwrap_or_else(|e| e.into_inner());
    let largest = (0..pool.len()).max_by_key(|&i| pool[i].capacity());
    largest.map(|i| pool.swap_remove(i)).unwrap_or_default()
}

/// The smallest tensor of the pool (empty if there is none), for a holder that lent one more
/// than it takes back as its own: the pool keeps its count.
pub(crate) fn reclaim_smallest_tensor() -> Tensor {
    let mut pool = TENSORS.lock().unwrap_or_else(|e| e.into_inner());
    let smallest = (0..pool.len()).min_by_key(|&i| pool[i].capacity());
    smallest.map(|i| pool.swap_remove(i)).unwrap_or_default()
}

/// Frees the allocations of the tensors idle in the pool of [`with_tensors`], keeping their
/// count (each is left an empty tensor, which its next borrower grows): for a pass that holds
/// no such buffer and wants their memory meanwhile (`Sequential`'s packed segments).
pub(crate) fn empty_idle_tensors() {
    let mut pool = TENSORS.lock().unwrap_or_else(|e| e.into_inner());
    pool.iter_mut().for_each(|t| *t = Tensor::default());
}

/// Frees the idle buffers of both pools (the next calls allocate them again): a measurement of
/// what a step holds (`crate::training_memory`) must not count buffers that earlier, larger
/// steps left in the pools.
pub fn release_pools() {
    let idle: Vec<Vec<f32>> = std::mem::take(&mut *POOL.lock().unwrap_or_else(|e| e.into_inner()));
    for buf in &idle {
        memory::resized(buf.capacity() * 4, 0);
    }
    drop(idle);
    let tensors = std::mem::take(&mut *TENSORS.lock().unwrap_or_else(|e| e.into_inner()));
    drop(tensors);
}
