//! The argmax a max pool keeps for its backward, one byte per output: each window's maximum
//! as its index inside the window (`dy * kw + dx`, row-major over the kernel, the padding
//! counted), not as its index in the plane (four bytes). The plane kernels of
//! [`super::pool`] still find the in-plane index; it goes through a per-thread plane of
//! `u32` (in cache) and is packed on the way out, and unpacked again before the unpool, so
//! the values and gradients are those of the in-plane layout bit for bit.
use std::cell::RefCell;

use rayon::prelude::*;

use super::geometry::PoolGeom;
use super::pool::{maxpool_2x2_spikes_plane, maxpool_any_plane, unpool_any_plane};

/// The largest window whose index fits the packed argmax's byte.
pub const MAX_WINDOW: usize = 256;

/// Whether `g`'s windows fit the packed argmax.
pub fn packs(g: &PoolGeom) -> bool {
    g.kernel[0] * g.kernel[1] <= MAX_WINDOW
}

thread_local! {
    /// One plane of in-plane argmax indices between a plane kernel and its packing.
    static PLANE: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's in-plane argmax scratch of `len` entries (values unspecified).
/// No rayon call may happen inside `f` (the scratch is borrowed meanwhile).
fn with_indices<R>(len: usize, f: impl FnOnce(&mut [u32]) -> R) -> R {
    PLANE.with(|cell| {
        let plane = &mut *cell.borrow_mut();
        if plane.len() < len {
            plane.resize(len, 0);
        }
        f(&mut plane[..len])
    })
}

/// The top-left corner of output `(oy, ox)`'s window, padding included (may be negative).
#[inline(always)]
fn corner(g: &PoolGeom, oy: usize, ox: usize) -> (isize, isize) {
    (
        (oy * g.stride[0]) as isize - g.padding[0] as isize,
        (ox * g.stride[1]) as isize - g.padding[1] as isize,
    )
}

/// One plane's in-plane argmax `am` as window indices into `packed`.
pub fn pack_plane(g: &PoolGeom, am: &[u32], packed: &mut [u8]) {
    assert!(packs(g) && am.len() == g.oh * g.ow && packed.len() == am.len());
    if g.halving() {
        // The window's top-left corner is (2 oy, 2 ox): the offset is 0, 1, w or w + 1.
        for (oy, (ar, pr)) in am.chunks_exact(g.ow).zip(packed.chunks_exact_mut(g.ow)).enumerate() {
            let mut base = 2 * oy * g.w;
            for (&i, p) in ar.iter().zip(pr) {
                let off = i as usize - base;
                let below = (off >= g.w) as usize;
                *p = (2 * below + off - below * g.w) as u8;
                base += 2;
            }
        }
        return;
    }
    let kw = g.kernel[1] as isize;
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let (y0, x0) = corner(g, oy, ox);
            let i = am[oy * g.ow + ox] as usize;
            let (iy, ix) = ((i / g.w) as isize, (i % g.w) as isize);
            packed[oy * g.ow + ox] = ((iy - y0) * kw + (ix - x0)) as u8;
        }
    }
}

/// Inverse of [`pack_plane`]: the in-plane argmax of one plane into `am`.
pub fn unpack_plane(g: &PoolGeom, packed: &[u8], am: &mut [u32]) {
    assert!(packs(g) && am.len() == g.oh * g.ow && packed.len() == am.len());
    let kw = g.kernel[1];
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let (y0, x0) = corner(g, oy, ox);
            let r = packed[oy * g.ow + ox] as usize;
            let (iy, ix) = (y0 + (r / kw) as isize, x0 + (r % kw) as isize);
            am[oy * g.ow + ox] = (iy as usize * g.w + ix as usize) as u32;
        }
    }
}

/// [`maxpool_any_plane`] keeping the packed argmax.
pub(crate) fn maxpool_plane_packed(g: &PoolGeom, xs: &[f32], ys: &mut [f32], packed: &mut [u8]) {
    with_indices(packed.len(), |am| {
        maxpool_any_plane(g, xs, ys, am);
        pack_plane(g, am, packed);
    })
}

/// [`maxpool_2x2_spikes_plane`] keeping the packed argmax.
pub(crate) fn maxpool_2x2_spikes_plane_packed(
    g: &PoolGeom,
    xs: &[f32],
    ys: &mut [f32],
    packed: &mut [u8],
) {
    with_indices(packed.len(), |am| {
        maxpool_2x2_spikes_plane(g, xs, ys, am);
        pack_plane(g, am, packed);
    })
}

/// [`unpool_any_plane`] from the packed argmax.
pub(crate) fn unpool_plane_packed(g: &PoolGeom, dy: &[f32], packed: &[u8], dx: &mut [f32]) {
    with_indices(packed.len(), |am| {
        unpack_plane(g, packed, am);
        unpool_any_plane(g, dy, am, dx);
    })
}

/// [`super::pool::maxpool2d_forward`] keeping the packed argmax: the same values, and the
/// same argmax once unpacked.
pub fn maxpool2d_forward_packed(g: &PoolGeom, x: &[f32], y: &mut [f32], argmax: &mut [u8]) {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    y.par_chunks_mut(ohw)
        .zip(argmax.par_chunks_mut(ohw))
        .zip(x.par_chunks(hw))
        .for_each(|((ys, am), xs)| maxpool_plane_packed(g, xs, ys, am));
}

/// [`super::pool::maxpool2d_backward`] from the packed argmax; overwrites `dx`.
pub fn maxpool2d_backward_packed(g: &PoolGeom, dy: &[f32], argmax: &[u8], dx: &mut [f32]) {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    dx.par_chunks_mut(hw)
        .zip(dy.par_chunks(ohw).zip(argmax.par_chunks(ohw)))
        .for_each(|(dxs, (dys, am))| unpool_plane_packed(g, dys, am, dxs));
}
