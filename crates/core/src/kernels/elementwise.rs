//! Parallel element-wise passes and reductions over whole activation tensors, for the glue
//! between layers (residual joins, the accumulation stream, gradient norms, firing rates).
//! A serial loop over a `[T, N, C, H, W]` tensor runs on one core, and a single f64 running
//! sum is one long dependency chain; both cost more than the arithmetic here.
//!
//! Reductions cut the data into fixed chunks and sum each in `LANES` independent f64 lanes,
//! then add the chunk sums in order: the same result on any thread count.
use rayon::prelude::*;

/// Elements per parallel task.
#[doc(hidden)]
pub const CHUNK: usize = 1 << 14;
const LANES: usize = 8;

/// `sum(f(x))` in f64.
pub fn sum_map(x: &[f32], f: impl Fn(f32) -> f64 + Sync) -> f64 {
    let partial: Vec<f64> = x
        .par_chunks(CHUNK)
        .map(|c| {
            let mut lanes = [0.0f64; LANES];
            let rows = c.chunks_exact(LANES);
            let tail = rows.remainder();
            for row in rows {
                for l in 0..LANES {
                    lanes[l] += f(row[l]);
                }
            }
            for (l, &v) in tail.iter().enumerate() {
                lanes[l] += f(v);
            }
            lanes.iter().sum::<f64>()
        })
        .collect();
    partial.iter().sum()
}

/// The sum of all values.
pub fn sum(x: &[f32]) -> f64 {
    sum_map(x, |v| v as f64)
}

/// The Euclidean norm.
pub fn l2_norm(x: &[f32]) -> f64 {
    sum_map(x, |v| v as f64 * v as f64).sqrt()
}

// `sum(x^2)` of one piece in `LANES` f64 lanes, for passes that take a norm on the way. Called
// from rayon's closures (compiled for SSE2), so multiversioned: the lanes are the same, and so
// are the sums, in any instruction set.
super::simd::multiversion!(pub fn sum_of_squares_serial(x: &[f32]) -> f64 => sum_of_squares_body);

#[inline(always)]
fn sum_of_squares_body(x: &[f32]) -> f64 {
    let mut lanes = [0.0f64; LANES];
    let rows = x.chunks_exact(LANES);
    let tail = rows.remainder();
    for row in rows {
        for l in 0..LANES {
            lanes[l] += row[l] as f64 * row[l] as f64;
        }
    }
    for (l, &v) in tail.iter().enumerate() {
        lanes[l] += v as f64 * v as f64;
    }
    lanes.iter().sum()
}

/// `dst += src`.
pub fn add_assign(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len());
    dst.par_chunks_mut(CHUNK).zip(src.par_chunks(CHUNK)).for_each(|(d, s)| {
        for (d, &s) in d.iter_mut().zip(s) {
            *d += s;
        }
    });
}

/// [`add_assign`] that also returns `sum(src^2)` (per-chunk partials added in order).
pub fn add_assign_sum_of_squares(dst: &mut [f32], src: &[f32]) -> f64 {
    assert_eq!(dst.len(), src.len());
    let partial: Vec<f64> = dst
        .par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .map(|(d, s)| {
            for (d, &s) in d.iter_mut().zip(s) {
                *d += s;
            }
            sum_of_squares_serial(s)
        })
        .collect();
    partial.iter().sum()
}

/// `out = a + b`.
pub fn add(a: &[f32], b: &[f32], out: &mut [f32]) {
    assert!(a.len() == out.len() && b.len() == out.len());
    out.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK))).for_each(
        |(o, (a, b))| {
            for (o, (&a, &b)) in o.iter_mut().zip(a.iter().zip(b)) {
                *o = a + b;
            }
        },
    );
}
