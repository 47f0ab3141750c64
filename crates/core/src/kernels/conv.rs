//! 2-D convolution on a merged batch `[B, C, H, W]` (B = T*N): im2col + GEMM per sample,
//! samples in parallel. Weight layout `[C_out, C_in/groups, kh, kw]`, as in PyTorch.
//!
//! The weight gradient is a sum over samples; it is reduced over a binary tree whose shape
//! depends only on the batch size, so the result is bit-identical for any thread count.
use super::conv3x3;
use super::depthwise;
use super::gemm::{gemm, gemm_strided};
use super::geometry::ConvGeom;
use super::scratch::Scratch;
use super::winograd;
use rayon::prelude::*;

/// Range of output positions `o` whose input index `o*s + off - p` lies in `[0, n)`.
fn valid_range(n: usize, out: usize, s: usize, off: usize, p: usize) -> (usize, usize) {
    let lo = if p > off { (p - off).div_ceil(s) } else { 0 };
    let hi = if off > p + n - 1 { 0 } else { ((p + n - 1 - off) / s + 1).min(out) };
    (lo.min(hi), hi)
}

/// Unfolds one sample `[C_in, H, W]` into `col` `[C_in*kh*kw, OH*OW]` (row `(c*kh+i)*kw+j`).
fn im2col(g: &ConvGeom, x: &[f32], col: &mut [f32]) {
    im2col_rows(g, x, 0, g.oh, col);
}

/// [`im2col`] restricted to output rows `oy0..oy1`: `col` is `[C_in*kh*kw, (oy1-oy0)*OW]`.
fn im2col_rows(g: &ConvGeom, x: &[f32], oy0: usize, oy1: usize, col: &mut [f32]) {
    let (h, w, ow) = (g.h, g.w, g.ow);
    let [sh, sw] = g.stride;
    let [ph, pw] = g.padding;
    let [dh, dw] = g.dilation;
    let mut rows = col.chunks_exact_mut((oy1 - oy0) * ow);
    for c in 0..g.c_in {
        let plane = &x[c * h * w..(c + 1) * h * w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = rows.next().expect("col sized by geometry");
                let (lo, hi) = valid_range(w, ow, sw, j * dw, pw);
                for oy in oy0..oy1 {
                    let dst = &mut row[(oy - oy0) * ow..(oy - oy0 + 1) * ow];
                    let iy = (oy * sh + i * dh) as isize - ph as isize;
                    if iy < 0 || iy >= h as isize {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &plane[iy as usize * w..(iy as usize + 1) * w];
                    dst[..lo].fill(0.0);
                    dst[hi..].fill(0.0);
                    if hi == lo {
                        continue;
                    }
                    if sw == 1 {
                        let start = lo + j * dw - pw;
                        dst[lo..hi].copy_from_slice(&src[start..start + (hi - lo)]);
                    } else {
                        for (ox, d) in (lo..hi).zip(dst[lo..hi].iter_mut()) {
                            *d = src[ox * sw + j * dw - pw];
                        }
                    }
                }
            }
        }
    }
}

/// Adjoint of [`im2col`]: accumulates `col` into `dx` (which the caller zeroes).
fn col2im(g: &ConvGeom, col: &[f32], dx: &mut [f32]) {
    let (h, w, oh, ow) = (g.h, g.w, g.oh, g.ow);
    let [sh, sw] = g.stride;
    let [ph, pw] = g.padding;
    let [dh, dw] = g.dilation;
    let mut rows = col.chunks_exact(g.ohw());
    for c in 0..g.c_in {
        let plane = &mut dx[c * h * w..(c + 1) * h * w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = rows.next().expect("col sized by geometry");
                let (lo, hi) = valid_range(w, ow, sw, j * dw, pw);
                for oy in 0..oh {
                    let iy = (oy * sh + i * dh) as isize - ph as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let src = &row[oy * ow..(oy + 1) * ow];
                    let dst = &mut plane[iy as usize * w..(iy as usize + 1) * w];
                    for ox in lo..hi {
                        dst[ox * sw + j * dw - pw] += src[ox];
                    }
                }
            }
        }
    }
}

/// `y[b] = conv(x[b], weight) + bias` for every sample; overwrites `y` (`[B, C_out, OH, OW]`).
pub fn conv2d_forward(
    g: &ConvGeom,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    let batch = x.len() / g.in_size();
    assert_eq!(x.len(), batch * g.in_size(), "conv2d_forward: input length");
    assert_eq!(y.len(), batch * g.out_size(), "conv2d_forward: output length");
    assert_eq!(weight.len(), g.weight_len(), "conv2d_forward: weight length");
    if let Some(b) = bias {
        assert_eq!(b.len(), g.c_out, "conv2d_forward: bias length");
    }
    if winograd::wins(g) {
        return winograd::winograd_forward(g, x, weight, bias, y);
    }
    if conv3x3::applies(g) {
        return conv3x3::conv3x3_forward(g, x, weight, bias, y);
    }
    if depthwise::applies(g) {
        return depthwise::forward(g, x, weight, bias, y);
    }
    conv2d_forward_gemm(g, x, weight, bias, y)
}

/// [`conv2d_forward`] as im2col + GEMM, for any geometry.
#[doc(hidden)]
pub fn conv2d_forward_gemm(
    g: &ConvGeom,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    let (cout_g, k_g, ohw) = (g.cout_g(), g.k_g(), g.ohw());
    let pointwise = g.pointwise();
    // Output rows per band: on large maps the band's im2col block stays in L2 (K x ~256
    // floats) instead of streaming the sample's whole unfolded input (288 x 4096 floats = 4.7 MB
    // on 64x64) through memory; each band is one GEMM writing its columns of Y in place.
    // Small maps run as one band (the whole map); `examples/conv_band` measures the choice.
    let band = if pointwise || g.ohw() <= BAND_MIN_PIXELS {
        g.oh
    } else {
        (BAND_PIXELS / g.ow).clamp(1, g.oh)
    };
    y.par_chunks_mut(g.out_size()).zip(x.par_chunks(g.in_size())).for_each_init(
        || Scratch::take(if pointwise { 0 } else { g.k_g() * g.groups * band * g.ow }),
        |col, (ys, xs)| {
            let beta = match bias {
                Some(b) => {
                    for (row, &bv) in ys.chunks_exact_mut(ohw).zip(b) {
                        row.fill(bv);
                    }
                    1.0
                }
                None => 0.0,
            };
            for oy0 in (0..g.oh).step_by(band) {
                let oy1 = (oy0 + band).min(g.oh);
                let npix = (oy1 - oy0) * g.ow;
                let cols: &[f32] = if pointwise {
                    xs
                } else {
                    im2col_rows(g, xs, oy0, oy1, col);
                    &col[..g.k_g() * g.groups * npix]
                };
                for grp in 0..g.groups {
                    gemm_strided(
                        cout_g,
                        npix,
                        k_g,
                        1.0,
                        &weight[grp * cout_g * k_g..(grp + 1) * cout_g * k_g],
                        k_g,
                        1,
                        &cols[grp * k_g * npix..(grp + 1) * k_g * npix],
                        npix,
                        1,
                        beta,
                        &mut ys[grp * cout_g * ohw + oy0 * g.ow..],
                        ohw,
                        1,
                    );
                }
            }
        },
    );
}

/// Output pixels per im2col band of [`conv2d_forward`], on maps larger than [`BAND_MIN_PIXELS`].
#[doc(hidden)]
pub const BAND_PIXELS: usize = 256;
#[doc(hidden)]
pub const BAND_MIN_PIXELS: usize = 1024;

/// Gradient with respect to the input; overwrites `dx` (`[B, C_in, H, W]`).
///
/// For stride 1 (not pointwise) this is itself a convolution, of `dY` with the flipped,
/// channel-swapped kernel: im2col of `dY` and one GEMM with the long reduction
/// `C_out*kh*kw`, instead of a GEMM with the short reduction `C_out` followed by the col2im
/// scatter-add. `examples/conv_crossover` measured it 0.7-0.9x the time of GEMM+col2im on
/// 14x14 and 28x28 outputs with 32 input channels, but 1.3x on 7x7 (too few output pixels)
/// and 9x on the stem's 1 input channel (a one-row GEMM), hence the floors
/// [`TRANSPOSED_MIN_PIXELS`] and [`TRANSPOSED_MIN_CHANNELS`].
pub fn conv2d_backward_data(g: &ConvGeom, dy: &[f32], weight: &[f32], dx: &mut [f32]) {
    // A 3x3 stride-1 padding-1 conv is its own transposed geometry; the direct kernel (or
    // Winograd where it wins) beats both GEMM forms on every size, so the floors below do not
    // apply to it.
    if conv3x3::applies(g) {
        let mut wf = Scratch::take(g.weight_len());
        flip_kernel(g, weight, &mut wf);
        let gt = ConvGeom { c_in: g.c_out, c_out: g.c_in, ..*g };
        if winograd::wins(&gt) {
            return winograd::winograd_forward(&gt, dy, &wf, None, dx);
        }
        return conv3x3::conv3x3_forward(&gt, dy, &wf, None, dx);
    }
    if depthwise::applies(g) {
        return depthwise::backward_data(g, dy, weight, dx);
    }
    match transposed_geometry(g) {
        Some(gt) => {
            let mut wf = Scratch::take(g.weight_len());
            flip_kernel(g, weight, &mut wf);
            conv2d_forward(&gt, dy, &wf, None, dx);
        }
        None => conv2d_backward_data_col2im(g, dy, weight, dx),
    }
}

/// Output pixels below which backward-data stays GEMM+col2im (see [`conv2d_backward_data`]).
const TRANSPOSED_MIN_PIXELS: usize = 100;
/// Input channels per group below which backward-data stays GEMM+col2im.
const TRANSPOSED_MIN_CHANNELS: usize = 16;

/// The convolution that maps `dY` to `dX` when that is one: stride 1, padding `d*(k-1) - p`
/// (so `p <= d*(k-1)`), same dilation and groups, output size `H x W`.
#[doc(hidden)]
pub fn transposed_geometry(g: &ConvGeom) -> Option<ConvGeom> {
    if g.stride != [1, 1]
        || g.pointwise()
        || g.ohw() < TRANSPOSED_MIN_PIXELS
        || g.cin_g() < TRANSPOSED_MIN_CHANNELS
    {
        return None;
    }
    let pad = |k: usize, p: usize, d: usize| (d * (k - 1)).checked_sub(p);
    let ph = pad(g.kh, g.padding[0], g.dilation[0])?;
    let pw = pad(g.kw, g.padding[1], g.dilation[1])?;
    let gt = ConvGeom::new(
        g.c_out,
        g.c_in,
        g.oh,
        g.ow,
        [g.kh, g.kw],
        [1, 1],
        [ph, pw],
        g.dilation,
        g.groups,
    )?;
    (gt.oh == g.h && gt.ow == g.w).then_some(gt)
}

/// `[C_out, C_in/g, kh, kw]` -> `[C_in, C_out/g, kh, kw]` with both spatial axes reversed.
fn flip_kernel(g: &ConvGeom, weight: &[f32], out: &mut [f32]) {
    let (cin_g, cout_g, kk) = (g.cin_g(), g.cout_g(), g.kh * g.kw);
    for grp in 0..g.groups {
        for col in 0..cout_g {
            for cl in 0..cin_g {
                let src = &weight[((grp * cout_g + col) * cin_g + cl) * kk..][..kk];
                let dst = &mut out[((grp * cin_g + cl) * cout_g + col) * kk..][..kk];
                for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                    *d = *s;
                }
            }
        }
    }
}

/// [`conv2d_backward_data`] as GEMM + col2im, for any geometry.
pub fn conv2d_backward_data_col2im(g: &ConvGeom, dy: &[f32], weight: &[f32], dx: &mut [f32]) {
    let batch = dy.len() / g.out_size();
    assert_eq!(dy.len(), batch * g.out_size(), "conv2d_backward_data: grad_output length");
    assert_eq!(dx.len(), batch * g.in_size(), "conv2d_backward_data: grad_input length");
    assert_eq!(weight.len(), g.weight_len(), "conv2d_backward_data: weight length");
    let (cout_g, k_g, ohw) = (g.cout_g(), g.k_g(), g.ohw());
    let pointwise = g.pointwise();
    dx.par_chunks_mut(g.in_size()).zip(dy.par_chunks(g.out_size())).for_each_init(
        || Scratch::take(if pointwise { 0 } else { g.col_len() }),
        |dcol, (dxs, dys)| {
            // Pointwise convs write W^T dY straight into dx: the column matrix is the input.
            let target: &mut [f32] = if pointwise { dxs } else { dcol };
            for grp in 0..g.groups {
                gemm(
                    k_g,
                    ohw,
                    cout_g,
                    1.0,
                    &weight[grp * cout_g * k_g..(grp + 1) * cout_g * k_g],
                    true,
                    &dys[grp * cout_g * ohw..(grp + 1) * cout_g * ohw],
                    false,
                    0.0,
                    &mut target[grp * k_g * ohw..(grp + 1) * k_g * ohw],
                );
            }
            if !pointwise {
                dxs.fill(0.0);
                col2im(g, dcol, dxs);
            }
        },
    );
}

/// Samples per leaf of the weight-gradient reduction tree. Fixed (never derived from the
/// thread count) so that the summation order, hence every bit of the result, is reproducible.
const WGRAD_LEAF: usize = 2;

/// ADDS the weight gradient (and, if given, the bias gradient) summed over the batch.
pub fn conv2d_backward_weight(
    g: &ConvGeom,
    x: &[f32],
    dy: &[f32],
    grad_weight: &mut [f32],
    grad_bias: Option<&mut [f32]>,
) {
    backward_weight_with(g, x, dy, grad_weight, grad_bias, false)
}

/// [`conv2d_backward_weight`] as im2col + GEMM, for any geometry.
#[doc(hidden)]
pub fn conv2d_backward_weight_gemm(
    g: &ConvGeom,
    x: &[f32],
    dy: &[f32],
    grad_weight: &mut [f32],
    grad_bias: Option<&mut [f32]>,
) {
    backward_weight_with(g, x, dy, grad_weight, grad_bias, true)
}

fn backward_weight_with(
    g: &ConvGeom,
    x: &[f32],
    dy: &[f32],
    grad_weight: &mut [f32],
    grad_bias: Option<&mut [f32]>,
    gemm_only: bool,
) {
    let batch = x.len() / g.in_size();
    assert_eq!(x.len(), batch * g.in_size(), "conv2d_backward_weight: input length");
    assert_eq!(dy.len(), batch * g.out_size(), "conv2d_backward_weight: grad_output length");
    assert_eq!(grad_weight.len(), g.weight_len(), "conv2d_backward_weight: weight length");
    if batch == 0 {
        return;
    }
    let with_bias = grad_bias.is_some();
    let len = g.weight_len() + if with_bias { g.c_out } else { 0 };
    let mut total = Scratch::take(len);
    let leaf = |lo, hi, out: &mut [f32]| match gemm_only {
        true => wgrad_leaf_gemm(g, x, dy, with_bias, lo, hi, out),
        false => wgrad_leaf(g, x, dy, with_bias, lo, hi, out),
    };
    wgrad_tree(batch, &leaf, &mut total);
    let (tw, tb) = total.split_at(g.weight_len());
    for (d, s) in grad_weight.iter_mut().zip(tw) {
        *d += *s;
    }
    if let Some(gb) = grad_bias {
        assert_eq!(gb.len(), g.c_out, "conv2d_backward_weight: bias length");
        for (d, s) in gb.iter_mut().zip(tb) {
            *d += *s;
        }
    }
}

/// A leaf of the weight-gradient reduction: WRITES (not adds) the gradient of samples
/// `lo..hi` into its buffer.
pub(crate) type WgradLeaf<'a> = dyn Fn(usize, usize, &mut [f32]) + Sync + 'a;

/// Sums `leaf` over `0..batch` into `out` (overwritten) along a binary tree whose shape depends
/// only on `batch`.
#[doc(hidden)]
pub fn wgrad_tree(batch: usize, leaf: &WgradLeaf, out: &mut [f32]) {
    wgrad_node(leaf, 0, batch, out);
}

fn wgrad_node(leaf: &WgradLeaf, lo: usize, hi: usize, out: &mut [f32]) {
    if hi - lo <= WGRAD_LEAF {
        leaf(lo, hi, out);
        return;
    }
    let mid = lo + (hi - lo) / 2;
    let mut right = Scratch::take(out.len());
    rayon::join(|| wgrad_node(leaf, lo, mid, out), || wgrad_node(leaf, mid, hi, &mut right));
    for (o, r) in out.iter_mut().zip(right.iter()) {
        *o += *r;
    }
}

/// The reduction tree of [`wgrad_tree`] computed over ranges of its planes one after the
/// other (e.g. chunks of time steps whose activations are not all live at once): each range
/// computes the largest nodes that lie inside it, in the tree's own order, and
/// [`WgradParts::finish`] merges them up the tree as [`wgrad_tree`] does, so the sum has the
/// same bits. A range must not cut a leaf ([`wgrad_cuts_leaf`]).
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct WgradParts {
    batch: usize,
    /// `(lo, hi, sum of leaf over lo..hi)` of the nodes computed so far.
    nodes: Vec<(usize, usize, Vec<f32>)>,
}

/// Whether a range boundary at plane `at` falls inside a leaf of the tree over `batch`.
#[doc(hidden)]
pub fn wgrad_cuts_leaf(batch: usize, at: usize) -> bool {
    let (mut lo, mut hi) = (0, batch);
    loop {
        if at <= lo || at >= hi {
            return false;
        }
        if hi - lo <= WGRAD_LEAF {
            return true;
        }
        let mid = lo + (hi - lo) / 2;
        if at < mid {
            hi = mid;
        } else {
            lo = mid;
        }
    }
}

impl WgradParts {
    pub fn new(batch: usize) -> Self {
        WgradParts { batch, nodes: Vec::new() }
    }

    /// The planes of the batch.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The nodes inside planes `[a, b)` whose parent is not: `leaf` (planes numbered over the
    /// whole batch) summed over each, `len` values.
    pub fn add_range(&mut self, a: usize, b: usize, len: usize, leaf: &WgradLeaf) {
        self.collect(0, self.batch, a, b, len, leaf);
    }

    fn collect(&mut self, lo: usize, hi: usize, a: usize, b: usize, len: usize, leaf: &WgradLeaf) {
        if lo >= b || hi <= a || lo == hi {
            return;
        }
        if a <= lo && hi <= b {
            let mut out = vec![0.0; len];
            wgrad_node(leaf, lo, hi, &mut out);
            self.nodes.push((lo, hi, out));
            return;
        }
        assert!(hi - lo > WGRAD_LEAF, "WgradParts: a range cuts the leaf {lo}..{hi}");
        let mid = lo + (hi - lo) / 2;
        self.collect(lo, mid, a, b, len, leaf);
        self.collect(mid, hi, a, b, len, leaf);
    }

    /// The sum over all planes into `out` (overwritten), once every plane's range was added.
    pub fn finish(&self, out: &mut [f32]) {
        if self.batch > 0 {
            self.merge(0, self.batch, out);
        }
    }

    fn merge(&self, lo: usize, hi: usize, out: &mut [f32]) {
        if let Some((_, _, sum)) = self.nodes.iter().find(|n| n.0 == lo && n.1 == hi) {
            out.copy_from_slice(sum);
            return;
        }
        assert!(hi - lo > WGRAD_LEAF, "WgradParts: planes {lo}..{hi} were not added");
        let mid = lo + (hi - lo) / 2;
        let mut right = Scratch::take(out.len());
        self.merge(lo, mid, out);
        self.merge(mid, hi, &mut right);
        for (o, r) in out.iter_mut().zip(right.iter()) {
            *o += *r;
        }
    }
}

/// [`conv2d_backward_weight`] of planes `[a, a + x.len() / in_size)` of the batch `parts` is
/// over (`x` and `dy` those planes), into `parts`; [`conv2d_backward_weight_finish`] adds
/// the sum.
#[doc(hidden)]
pub fn conv2d_backward_weight_range(
    g: &ConvGeom,
    x: &[f32],
    dy: &[f32],
    a: usize,
    with_bias: bool,
    parts: &mut WgradParts,
) {
    let planes = x.len() / g.in_size();
    assert_eq!(x.len(), planes * g.in_size(), "conv2d_backward_weight_range: input length");
    assert_eq!(dy.len(), planes * g.out_size(), "conv2d_backward_weight_range: grad length");
    let len = g.weight_len() + if with_bias { g.c_out } else { 0 };
    let leaf = |lo: usize, hi: usize, out: &mut [f32]| {
        wgrad_leaf(g, x, dy, with_bias, lo - a, hi - a, out)
    };
    parts.add_range(a, a + planes, len, &leaf);
}

/// ADDS the weight (and bias) gradient that [`conv2d_backward_weight_range`] collected.
#[doc(hidden)]
pub fn conv2d_backward_weight_finish(
    g: &ConvGeom,
    parts: &WgradParts,
    grad_weight: &mut [f32],
    grad_bias: Option<&mut [f32]>,
) {
    if parts.batch == 0 {
        return;
    }
    let len = g.weight_len() + if grad_bias.is_some() { g.c_out } else { 0 };
    let mut total = Scratch::take(len);
    parts.finish(&mut total);
    let (tw, tb) = total.split_at(g.weight_len());
    for (d, s) in grad_weight.iter_mut().zip(tw) {
        *d += *s;
    }
    if let Some(gb) = grad_bias {
        for (d, s) in gb.iter_mut().zip(tb) {
            *d += *s;
        }
    }
}

/// Bias gradient of one sample: writes (`first`) or adds the per-channel sums of `dys`.
#[doc(hidden)]
pub fn wgrad_bias_leaf(g: &ConvGeom, dys: &[f32], ob: &mut [f32], first: bool) {
    for (b, row) in ob.iter_mut().zip(dys.chunks_exact(g.ohw())) {
        let sum = row.iter().map(|&v| v as f64).sum::<f64>() as f32;
        *b = if first { sum } else { *b + sum };
    }
}

fn wgrad_leaf(
    g: &ConvGeom,
    x: &[f32],
    dy: &[f32],
    with_bias: bool,
    lo: usize,
    hi: usize,
    out: &mut [f32],
) {
    if depthwise::applies(g) {
        let (gw, gb) = out.split_at_mut(g.weight_len());
        depthwise::wgrad_leaf(g, x, dy, lo, hi, gw);
        if with_bias {
            for s in lo..hi {
                wgrad_bias_leaf(g, &dy[s * g.out_size()..][..g.out_size()], gb, s == lo);
            }
        }
        return;
    }
    wgrad_leaf_gemm(g, x, dy, with_bias, lo, hi, out)
}

fn wgrad_leaf_gemm(
    g: &ConvGeom,
    x: &[f32],
    dy: &[f32],
    with_bias: bool,
    lo: usize,
    hi: usize,
    out: &mut [f32],
) {
    let (cout_g, k_g, ohw) = (g.cout_g(), g.k_g(), g.ohw());
    let pointwise = g.pointwise();
    let mut col = Scratch::take(if pointwise { 0 } else { g.col_len() });
    let (ow_, ob) = out.split_at_mut(g.weight_len());
    for s in lo..hi {
        let xs = &x[s * g.in_size()..(s + 1) * g.in_size()];
        let dys = &dy[s * g.out_size()..(s + 1) * g.out_size()];
        let cols: &[f32] = if pointwise {
            xs
        } else {
            im2col(g, xs, &mut col);
            &col
        };
        let beta = if s == lo { 0.0 } else { 1.0 };
        for grp in 0..g.groups {
            gemm(
                cout_g,
                k_g,
                ohw,
                1.0,
                &dys[grp * cout_g * ohw..(grp + 1) * cout_g * ohw],
                false,
                &cols[grp * k_g * ohw..(grp + 1) * k_g * ohw],
                true,
                beta,
                &mut ow_[grp * cout_g * k_g..(grp + 1) * cout_g * k_g],
            );
        }
        if with_bias {
            wgrad_bias_leaf(g, dys, ob, s == lo);
        }
    }
}

/// Direct seven-loop convolution in f64 accumulation: slow, obviously correct, the yardstick
/// for the GEMM path here and for later event-driven kernels. Returns `[B, C_out, OH, OW]`.
pub fn conv2d_reference(g: &ConvGeom, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let batch = x.len() / g.in_size();
    let mut y = vec![0.0f32; batch * g.out_size()];
    for b in 0..batch {
        for co in 0..g.c_out {
            let grp = co / g.cout_g();
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let mut s = bias.map_or(0.0, |bv| bv[co] as f64);
                    for_each_tap(g, grp, oy, ox, |cl, i, j, iy, ix| {
                        let ci = grp * g.cin_g() + cl;
                        let xv = x[((b * g.c_in + ci) * g.h + iy) * g.w + ix];
                        let wv = weight[((co * g.cin_g() + cl) * g.kh + i) * g.kw + j];
                        s += xv as f64 * wv as f64;
                    });
                    y[((b * g.c_out + co) * g.oh + oy) * g.ow + ox] = s as f32;
                }
            }
        }
    }
    y
}

/// Direct-loop gradients of [`conv2d_reference`]: `(dx, dweight, dbias)` for `dy`.
pub fn conv2d_reference_backward(
    g: &ConvGeom,
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let batch = x.len() / g.in_size();
    let mut dx = vec![0.0f64; x.len()];
    let mut dw = vec![0.0f64; weight.len()];
    let mut db = vec![0.0f64; g.c_out];
    for b in 0..batch {
        for co in 0..g.c_out {
            let grp = co / g.cout_g();
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let d = dy[((b * g.c_out + co) * g.oh + oy) * g.ow + ox] as f64;
                    db[co] += d;
                    for_each_tap(g, grp, oy, ox, |cl, i, j, iy, ix| {
                        let xi = ((b * g.c_in + grp * g.cin_g() + cl) * g.h + iy) * g.w + ix;
                        let wi = ((co * g.cin_g() + cl) * g.kh + i) * g.kw + j;
                        dx[xi] += d * weight[wi] as f64;
                        dw[wi] += d * x[xi] as f64;
                    });
                }
            }
        }
    }
    let f = |v: Vec<f64>| v.into_iter().map(|a| a as f32).collect();
    (f(dx), f(dw), f(db))
}

/// Calls `f(c_local, i, j, iy, ix)` for every kernel tap of output `(oy, ox)` that lands
/// inside the input.
fn for_each_tap(
    g: &ConvGeom,
    _grp: usize,
    oy: usize,
    ox: usize,
    mut f: impl FnMut(usize, usize, usize, usize, usize),
) {
    for cl in 0..g.cin_g() {
        for i in 0..g.kh {
            let iy = (oy * g.stride[0] + i * g.dilation[0]) as isize - g.padding[0] as isize;
            if iy < 0 || iy >= g.h as isize {
                continue;
            }
            for j in 0..g.kw {
                let ix = (ox * g.stride[1] + j * g.dilation[1]) as isize - g.padding[1] as isize;
                if ix < 0 || ix >= g.w as isize {
                    continue;
                }
                f(cl, i, j, iy as usize, ix as usize);
            }
        }
    }
}
