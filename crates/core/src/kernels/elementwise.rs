//! Parallel element-wise passes and reductions over whole activation tensors, for the glue
//! between layers (residual joins, the accumulation stream, gradient norms, firing rates).
//! A serial loop over a `[T, N, C, H, W]` tensor runs on one core, and a single f64 running
//! sum is one long dependency chain; both cost more than the arithmetic here.
//!
//! Reductions cut the data into fixed chunks and sum each in `LANES` independent f64 lanes,
//! then add the chunk sums in order: the same result on any thread count.
use rayon::prelude::*;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn reductions_match_plain_sums_and_do_not_depend_on_the_thread_count() {
        let mut rng = Rng::new(4);
        for n in [0usize, 1, 7, 8, 9, CHUNK - 1, CHUNK, 3 * CHUNK + 5] {
            let x: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
            let plain: f64 = x.iter().map(|&v| v as f64).sum();
            let squares: f64 = x.iter().map(|&v| v as f64 * v as f64).sum();
            assert!((sum(&x) - plain).abs() <= 1e-9 * (1.0 + plain.abs()), "sum of {n}");
            assert!(
                (l2_norm(&x) - squares.sqrt()).abs() <= 1e-9 * (1.0 + squares.sqrt()),
                "norm of {n}"
            );
            let on = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| (sum(&x).to_bits(), l2_norm(&x).to_bits()))
            };
            assert!((2..=4).all(|t| on(t) == on(1)), "thread count changed the sums of {n}");
        }
    }

    #[test]
    fn element_wise_adds_are_exact() {
        let mut rng = Rng::new(5);
        let n = 2 * CHUNK + 3;
        let a: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
        let b: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
        let mut out = vec![f32::NAN; n];
        add(&a, &b, &mut out);
        let mut acc = a.clone();
        add_assign(&mut acc, &b);
        let mut acc_too = a.clone();
        let squares = add_assign_sum_of_squares(&mut acc_too, &b);
        assert_eq!(acc_too, acc);
        let want: f64 = b.iter().map(|&v| v as f64 * v as f64).sum();
        assert!((squares - want).abs() <= 1e-12 * want, "sum of squares {squares} vs {want}");
        for i in 0..n {
            assert_eq!(out[i], a[i] + b[i]);
            assert_eq!(acc[i], a[i] + b[i]);
        }
    }
}
