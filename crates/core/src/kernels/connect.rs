//! The element-wise functions `g(S, O)` that join a residual branch's spikes `S` with the
//! shortcut `O` (SEW and dual-stream blocks), with their partial derivatives.
use rayon::prelude::*;

use super::elementwise::sum_of_squares_serial;
use super::simd::multiversion;
use crate::spec::Connect;

#[doc(hidden)]
pub const CHUNK: usize = 1 << 14;

impl Connect {
    #[inline]
    pub fn apply(self, s: f32, o: f32) -> f32 {
        match self {
            Connect::Add => s + o,
            Connect::And => s * o,
            Connect::Iand => (1.0 - s) * o,
            Connect::Or => s + o - s * o,
            Connect::Xor => s + o - 2.0 * s * o,
        }
    }

    /// (dg/dS, dg/dO) at (s, o).
    #[inline]
    pub fn partials(self, s: f32, o: f32) -> (f32, f32) {
        match self {
            Connect::Add => (1.0, 1.0),
            Connect::And => (o, s),
            Connect::Iand => (-o, 1.0 - s),
            Connect::Or => (1.0 - o, 1.0 - s),
            Connect::Xor => (1.0 - 2.0 * o, 1.0 - 2.0 * s),
        }
    }

    /// Whether `g` maps spikes to spikes (everything but ADD).
    pub fn keeps_spikes(self) -> bool {
        self != Connect::Add
    }

    /// Whether the partials depend on `(s, o)`: ADD's are constants, so its backward reads
    /// neither path output's values, only the gradient.
    pub fn partials_read_values(self) -> bool {
        self != Connect::Add
    }
}

/// Expands `$body` once per connect function with `$g` bound to it as a constant, so that the
/// element loops carry no per-element `match` and vectorise (measured by
/// `examples/connect_join`: the generic loops ran at about half the memory floor's speed).
macro_rules! for_each_connect {
    ($value:expr, $g:ident => $body:expr) => {
        for_each_connect!(@arms $value, $g => $body; Add, And, Iand, Or, Xor)
    };
    (@arms $value:expr, $g:ident => $body:expr; $($variant:ident),*) => {
        match $value {
            $(Connect::$variant => {
                const $g: Connect = Connect::$variant;
                $body
            })*
        }
    };
}

/// Writes `out = g(s, o)` and returns the sum of `out`, taken in the same pass so that the
/// block's output rate needs no second read of the tensor. With `accumulate = (A, A')`, a
/// dual-stream block's accumulation stream `A' = A + S` is written in the same pass too (S
/// read once). The per-chunk partial sums are added in chunk order: the same numbers
/// whatever the thread count.
pub fn connect_forward(
    g: Connect,
    s: &[f32],
    o: &[f32],
    out: &mut [f32],
    accumulate: Option<(&[f32], &mut [f32])>,
) -> f64 {
    assert!(s.len() == out.len() && o.len() == out.len());
    let partial: Vec<f64> = match accumulate {
        None => out
            .par_chunks_mut(CHUNK)
            .zip(s.par_chunks(CHUNK).zip(o.par_chunks(CHUNK)))
            .map(|(out, (s, o))| forward_piece(g, s, o, out, None))
            .collect(),
        Some((a, a_out)) => {
            assert!(a.len() == out.len() && a_out.len() == out.len());
            out.par_chunks_mut(CHUNK)
                .zip(a_out.par_chunks_mut(CHUNK))
                .zip(s.par_chunks(CHUNK).zip(o.par_chunks(CHUNK).zip(a.par_chunks(CHUNK))))
                .map(|((out, a_out), (s, (o, a)))| forward_piece(g, s, o, out, Some((a, a_out))))
                .collect()
        }
    };
    partial.iter().sum()
}

// The per-chunk bodies run inside rayon's closures, which are compiled for the baseline
// (SSE2): each is multiversioned so that its loops get AVX2 or AVX-512.
multiversion!(fn forward_piece(g: Connect, s: &[f32], o: &[f32], out: &mut [f32], accumulate: Option<(&[f32], &mut [f32])>) -> f64 => forward_piece_body);

#[inline(always)]
fn forward_piece_body(
    g: Connect,
    s: &[f32],
    o: &[f32],
    out: &mut [f32],
    accumulate: Option<(&[f32], &mut [f32])>,
) -> f64 {
    for_each_connect!(g, G => {
        // Eight running sums so the adds vectorise instead of forming one dependency chain;
        // exact for spike counts (integers far below 2^24).
        let mut lanes = [0.0f32; 8];
        let whole = out.len() - out.len() % 8;
        match accumulate {
            None => {
                for (y, (a, b)) in out.chunks_exact_mut(8).zip(s.chunks_exact(8).zip(o.chunks_exact(8))) {
                    for l in 0..8 {
                        y[l] = G.apply(a[l], b[l]);
                        lanes[l] += y[l];
                    }
                }
            }
            Some((acc, acc_out)) => {
                for ((y, z), (a, (b, c))) in out
                    .chunks_exact_mut(8)
                    .zip(acc_out.chunks_exact_mut(8))
                    .zip(s.chunks_exact(8).zip(o.chunks_exact(8).zip(acc.chunks_exact(8))))
                {
                    for l in 0..8 {
                        y[l] = G.apply(a[l], b[l]);
                        lanes[l] += y[l];
                        z[l] = c[l] + a[l];
                    }
                }
                for i in whole..out.len() {
                    acc_out[i] = acc[i] + s[i];
                }
            }
        }
        for (l, i) in (whole..out.len()).enumerate() {
            out[i] = G.apply(s[i], o[i]);
            lanes[l] += out[i];
        }
        lanes.iter().map(|&v| v as f64).sum::<f64>()
    })
}

/// `s_out = g(s_out, o)` in place, serially (a sample the inference's fused conv and neuron
/// just wrote, still in cache); returns the sum of the result, in eight f32 lanes as
/// [`connect_forward`] takes it: exact, so the same total, for spike maps (up to 2^27 elements).
pub(crate) fn connect_in_place(g: Connect, s_out: &mut [f32], o: &[f32]) -> f64 {
    in_place_body(g, s_out, o)
}

/// [`connect_forward`] with `out` in place of `s` (`s_out = g(s_out, o)`), on every thread:
/// the same values and the same sum, chunk by chunk, as [`connect_forward`] writing a third
/// buffer.
pub fn connect_forward_in_place(g: Connect, s_out: &mut [f32], o: &[f32]) -> f64 {
    assert_eq!(s_out.len(), o.len());
    let partial: Vec<f64> = s_out
        .par_chunks_mut(CHUNK)
        .zip(o.par_chunks(CHUNK))
        .map(|(s_out, o)| in_place_piece(g, s_out, o))
        .collect();
    partial.iter().sum()
}

multiversion!(fn in_place_piece(g: Connect, s_out: &mut [f32], o: &[f32]) -> f64 => in_place_body);

#[inline(always)]
fn in_place_body(g: Connect, s_out: &mut [f32], o: &[f32]) -> f64 {
    assert_eq!(s_out.len(), o.len());
    for_each_connect!(g, G => {
        let mut lanes = [0.0f32; 8];
        let mut rows = s_out.chunks_exact_mut(8).zip(o.chunks_exact(8));
        for (y, b) in &mut rows {
            // Through a local array: read and written in place, the lanes ran scalar.
            let a: [f32; 8] = (*y).try_into().unwrap();
            let mut r = [0.0f32; 8];
            for l in 0..8 {
                r[l] = G.apply(a[l], b[l]);
                lanes[l] += r[l];
            }
            y.copy_from_slice(&r);
        }
        let tail = s_out.len() - s_out.len() % 8;
        for (l, (y, &b)) in s_out[tail..].iter_mut().zip(&o[tail..]).enumerate() {
            *y = G.apply(*y, b);
            lanes[l] += *y;
        }
        lanes.iter().map(|&v| v as f64).sum::<f64>()
    })
}

/// The gradient of S alone (the first half of [`connect_backward`]): `grad_s = grad * dg/dS`,
/// plus `also` where given (a dual-stream block's `dL/dA'`: `A' = A + S`, so `dA'/dS = 1`), in
/// one pass. Returns the sums of squares of `grad` and of `also` (0 without), taken chunk by
/// chunk while they are in cache (a dual-stream trunk reports their norms), the partial sums
/// added in chunk order: the same on any thread count.
pub fn connect_backward_s(
    g: Connect,
    s: &[f32],
    o: &[f32],
    grad: &[f32],
    also: Option<&[f32]>,
    grad_s: &mut [f32],
) -> (f64, f64) {
    assert!(s.len() == grad_s.len() && o.len() == grad_s.len() && grad.len() == grad_s.len());
    assert!(also.is_none_or(|a| a.len() == grad_s.len()));
    let partial: Vec<(f64, f64)> = grad_s
        .par_chunks_mut(CHUNK)
        .zip(s.par_chunks(CHUNK).zip(o.par_chunks(CHUNK).zip(grad.par_chunks(CHUNK))))
        .enumerate()
        .map(|(c, (gs, (s, (o, grad))))| {
            let also = also.map(|a| &a[c * CHUNK..][..gs.len()]);
            backward_s_piece(g, s, o, grad, also, gs)
        })
        .collect();
    partial.iter().fold((0.0, 0.0), |(x, y), &(a, b)| (x + a, y + b))
}

multiversion!(fn backward_s_piece(g: Connect, s: &[f32], o: &[f32], grad: &[f32], also: Option<&[f32]>, grad_s: &mut [f32]) -> (f64, f64) => backward_s_piece_body);

#[inline(always)]
fn backward_s_piece_body(
    g: Connect,
    s: &[f32],
    o: &[f32],
    grad: &[f32],
    also: Option<&[f32]>,
    grad_s: &mut [f32],
) -> (f64, f64) {
    for_each_connect!(g, G => match also {
        None => {
            for (d, ((&a, &b), &e)) in grad_s.iter_mut().zip(s.iter().zip(o).zip(grad)) {
                *d = e * G.partials(a, b).0;
            }
        }
        Some(also) => {
            for (d, ((&a, &b), (&e, &f))) in grad_s.iter_mut().zip(s.iter().zip(o).zip(grad.iter().zip(also))) {
                *d = e * G.partials(a, b).0 + f;
            }
        }
    });
    let also_sq = also.map_or(0.0, sum_of_squares_serial);
    (sum_of_squares_serial(grad), also_sq)
}

/// ADDS the gradient of O into `acc` (the second half of [`connect_backward`], for an identity
/// shortcut whose gradient joins the branch's input gradient: no buffer of its own), and
/// `also` after it where given (a dual-stream block whose two streams start from one input:
/// the accumulation stream's gradient joins there too).
pub fn connect_backward_add_o(
    g: Connect,
    s: &[f32],
    o: &[f32],
    grad: &[f32],
    also: Option<&[f32]>,
    acc: &mut [f32],
) {
    assert!(s.len() == acc.len() && o.len() == acc.len() && grad.len() == acc.len());
    assert!(also.is_none_or(|a| a.len() == acc.len()));
    acc.par_chunks_mut(CHUNK)
        .zip(s.par_chunks(CHUNK).zip(o.par_chunks(CHUNK).zip(grad.par_chunks(CHUNK))))
        .enumerate()
        .for_each(|(c, (acc, (s, (o, grad))))| {
            let also = also.map(|a| &a[c * CHUNK..][..acc.len()]);
            add_o_piece(g, s, o, grad, also, acc)
        })
}

multiversion!(fn add_o_piece(g: Connect, s: &[f32], o: &[f32], grad: &[f32], also: Option<&[f32]>, acc: &mut [f32]) => add_o_piece_body);

#[inline(always)]
fn add_o_piece_body(
    g: Connect,
    s: &[f32],
    o: &[f32],
    grad: &[f32],
    also: Option<&[f32]>,
    acc: &mut [f32],
) {
    for_each_connect!(g, G => match also {
        None => {
            for (d, ((&a, &b), &e)) in acc.iter_mut().zip(s.iter().zip(o).zip(grad)) {
                *d += e * G.partials(a, b).1;
            }
        }
        Some(also) => {
            for (d, ((&a, &b), (&e, &f))) in acc.iter_mut().zip(s.iter().zip(o).zip(grad.iter().zip(also))) {
                *d = *d + e * G.partials(a, b).1 + f;
            }
        }
    })
}

/// Splits `grad` into the gradients of S and O.
pub fn connect_backward(
    g: Connect,
    s: &[f32],
    o: &[f32],
    grad: &[f32],
    grad_s: &mut [f32],
    grad_o: &mut [f32],
) {
    let n = grad_s.len();
    assert!(s.len() == n && o.len() == n && grad.len() == n && grad_o.len() == n);
    for_each_connect!(g, G => grad_s
    .par_chunks_mut(CHUNK)
    .zip(grad_o.par_chunks_mut(CHUNK))
    .zip(s.par_chunks(CHUNK).zip(o.par_chunks(CHUNK).zip(grad.par_chunks(CHUNK))))
    .for_each(|((gs, go), (s, (o, grad)))| {
        for ((ds, dn), ((&a, &b), &e)) in gs.iter_mut().zip(go.iter_mut()).zip(s.iter().zip(o).zip(grad)) {
            let (ps, po) = G.partials(a, b);
            *ds = e * ps;
            *dn = e * po;
        }
    }))
}
