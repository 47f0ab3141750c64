//! Event-driven fully connected products for binary spike inputs `X` (`rows x in`):
//!
//! - forward `Y = X W^T (+ b)`: each spike of a row adds one row of `W^T` (`in x out`), an
//!   accumulation per spike (the paper's AC) instead of `in` multiply-adds per output;
//! - weight gradient `dW += dY^T X`: each spike `(r, i)` adds row `r` of `dY` to row `i` of
//!   `dW^T`.
//!
//! Both sum in another order than the GEMM, so they agree with it within float rounding. Each
//! reports `false` (writing nothing) when its block is not binary or denser than the crossover,
//! and the caller runs the GEMM.

use crate::tensor::spike_bits::pack_word;

/// Fraction of active inputs up to which the event forward beats the GEMM (measured by
/// `cargo run --release -p dualstream-core --example attention_crossover`, linear rows).
pub const FORWARD_MAX_DENSITY: f32 = 0.2;
/// The same for the weight gradient.
pub const WEIGHT_GRAD_MAX_DENSITY: f32 = 0.2;

/// Appends to `active` the column of every one in the `rows x cols` block `x` and to `starts`
/// each row's end offset; `false` as soon as a value is not 0 or 1 or the ones exceed
/// `max_ones`. Each row is read 64 values at a time into a mask whose set bits are the ones.
fn active_columns(
    x: &[f32],
    cols: usize,
    max_ones: usize,
    active: &mut Vec<u32>,
    starts: &mut Vec<usize>,
) -> bool {
    active.clear();
    starts.clear();
    starts.push(0);
    for row in x.chunks_exact(cols) {
        for (part, values) in row.chunks(64).enumerate() {
            let (mut mask, binary) = pack_word(values);
            if !binary {
                return false;
            }
            while mask != 0 {
                active.push((64 * part) as u32 + mask.trailing_zeros());
                mask &= mask - 1;
            }
        }
        if active.len() > max_ones {
            return false;
        }
        starts.push(active.len());
    }
    true
}

/// Per-thread buffers of the event kernels.
#[derive(Default)]
pub struct EventScratch {
    active: Vec<u32>,
    starts: Vec<usize>,
}

/// `y = x w^T (+ bias)` for the `rows x fi` spike block `x` and `wt = w^T` (`fi x fo`), each
/// spike adding a row of `wt`. `false` (nothing written) if `x` is not binary or has more than
/// `max_density` active inputs.
#[allow(clippy::too_many_arguments)]
pub fn linear_forward_spikes(
    x: &[f32],
    fi: usize,
    wt: &[f32],
    fo: usize,
    bias: Option<&[f32]>,
    y: &mut [f32],
    max_density: f32,
    s: &mut EventScratch,
) -> bool {
    let max_ones = (max_density * x.len() as f32) as usize;
    if !active_columns(x, fi, max_ones, &mut s.active, &mut s.starts) {
        return false;
    }
    for (r, out) in y.chunks_exact_mut(fo).enumerate() {
        match bias {
            Some(b) => out.copy_from_slice(b),
            None => out.fill(0.0),
        }
        for &i in &s.active[s.starts[r]..s.starts[r + 1]] {
            let i = i as usize;
            for (o, &w) in out.iter_mut().zip(&wt[i * fo..(i + 1) * fo]) {
                *o += w;
            }
        }
    }
    true
}

/// `dwt[i - i0, :] = sum over spikes (r, i) of x of dy[r, :]` for the inputs `i0..i0 + n` of
/// the `rows x fi` spike matrix `x`, with `dy` `rows x fo`; rows are summed in order, so the
/// result does not depend on how the inputs are split among threads. `false` if the columns are
/// not binary (`dwt` then holds garbage).
pub fn linear_weight_grad_spikes(
    x: &[f32],
    fi: usize,
    dy: &[f32],
    fo: usize,
    i0: usize,
    dwt: &mut [f32],
) -> bool {
    let n = dwt.len() / fo;
    dwt.fill(0.0);
    for (row, g) in x.chunks_exact(fi).zip(dy.chunks_exact(fo)) {
        for (part, values) in row[i0..i0 + n].chunks(64).enumerate() {
            let (mut mask, binary) = pack_word(values);
            if !binary {
                return false;
            }
            while mask != 0 {
                let k = 64 * part + mask.trailing_zeros() as usize;
                mask &= mask - 1;
                for (a, &d) in dwt[k * fo..(k + 1) * fo].iter_mut().zip(g) {
                    *a += d;
                }
            }
        }
    }
    true
}

/// Fraction of ones in `x`, or `None` if a value is neither 0 nor 1.
pub fn spike_density(x: &[f32]) -> Option<f32> {
    // Branch-free counts over blocks (they vectorise), stopping after the first block that
    // holds another value.
    let mut ones = 0usize;
    for block in x.chunks(1024) {
        let (mut block_ones, mut other) = (0u32, 0u32);
        for &v in block {
            block_ones += (v == 1.0) as u32;
            other += ((v != 0.0) & (v != 1.0)) as u32;
        }
        if other > 0 {
            return None;
        }
        ones += block_ones as usize;
    }
    Some(if x.is_empty() { 0.0 } else { ones as f32 / x.len() as f32 })
}
