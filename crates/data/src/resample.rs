//! Antialiased bilinear resizing as Pillow does it (`Image.resize(..., BILINEAR)`, what
//! torchvision's `Resize` and `RandomResizedCrop` run on PIL images): a separable triangle
//! filter whose support widens with the downscale factor, so every source pixel under an output
//! pixel counts, weights renormalised at the edges. Upscaling reduces to plain bilinear with
//! half-pixel centres. Pillow rounds to 8 bits after each pass; this keeps floats (the results
//! differ by less than 1/255 per pass), and the checks against Pillow's output live in
//! crates/data/tests/integration/imagefolder.rs. Also the evaluation crop: torchvision's `Resize` (shorter
//! side) and `CenterCrop`.
use dualstream_core::{Error, Result, Tensor};

/// For each output index along one axis: the first source index and the normalised weights.
struct Coefficients {
    starts: Vec<usize>,
    weights: Vec<Vec<f32>>,
}

fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// Pillow's `precompute_coeffs` for `in_size` source samples onto `out_size` (bilinear filter,
/// support 1).
fn coefficients(in_size: usize, out_size: usize) -> Coefficients {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter_scale;
    let mut starts = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for o in 0..out_size {
        let centre = (o as f64 + 0.5) * scale;
        // Pillow truncates toward zero, then clamps.
        let lo = ((centre - support + 0.5) as i64).max(0) as usize;
        let hi = ((centre + support + 0.5) as i64).clamp(0, in_size as i64) as usize;
        let mut k: Vec<f64> =
            (lo..hi).map(|i| triangle((i as f64 - centre + 0.5) / filter_scale)).collect();
        let total: f64 = k.iter().sum();
        if total != 0.0 {
            k.iter_mut().for_each(|v| *v /= total);
        }
        starts.push(lo);
        weights.push(k.into_iter().map(|v| v as f32).collect());
    }
    Coefficients { starts, weights }
}

/// (planes, H, W) of `x` (`[..., H, W]`); `what` names it in the error.
#[doc(hidden)]
pub fn spatial(x: &Tensor, what: &str) -> Result<(usize, usize, usize)> {
    let s = x.shape();
    if s.len() < 2 || s.contains(&0) {
        return Err(Error::shape(what, "[..., H, W] with no empty dimension", s));
    }
    let (h, w) = (s[s.len() - 2], s[s.len() - 1]);
    Ok((x.numel() / (h * w), h, w))
}

/// A tensor of `x`'s shape but with `h x w` planes, holding `data`.
#[doc(hidden)]
pub fn with_spatial(x: &Tensor, h: usize, w: usize, data: Vec<f32>) -> Result<Tensor> {
    let mut shape = x.shape().to_vec();
    let n = shape.len();
    shape[n - 2] = h;
    shape[n - 1] = w;
    Tensor::from_vec(&shape, data)
}

/// Resizes the window `[top, top + ch) x [left, left + cw)` of every plane of `x` (`[..., H, W]`)
/// to `out_h x out_w` with Pillow's antialiased bilinear filter, as if the window had been
/// cropped first (torchvision's `resized_crop`).
pub fn resize_window_antialiased(
    x: &Tensor,
    window: (usize, usize, usize, usize),
    out_h: usize,
    out_w: usize,
) -> Result<Tensor> {
    resize_window_part(x, window, out_h, out_w, (0, 0, out_h, out_w))
}

/// The part `[row, row + rows) x [col, col + cols)` of `resize_window_antialiased(x, window,
/// out_h, out_w)`, computing only the source rows and output columns that part needs (a resize
/// followed by a crop inside it, as the evaluation transform does).
pub fn resize_window_part(
    x: &Tensor,
    (top, left, ch, cw): (usize, usize, usize, usize),
    out_h: usize,
    out_w: usize,
    (row, col, rows, cols): (usize, usize, usize, usize),
) -> Result<Tensor> {
    let (planes, h, w) = spatial(x, "resize input")?;
    if ch == 0 || cw == 0 || top + ch > h || left + cw > w || out_h == 0 || out_w == 0 {
        return Err(Error::value(
            "resize window",
            format!("a non-empty window inside the {h}x{w} input and a positive output size"),
            format!("{ch}x{cw} at ({top}, {left}) to {out_h}x{out_w}"),
        ));
    }
    if rows == 0 || cols == 0 || row + rows > out_h || col + cols > out_w {
        return Err(Error::value(
            "resize output part",
            format!("a non-empty part of the {out_h}x{out_w} output"),
            format!("{rows}x{cols} at ({row}, {col})"),
        ));
    }
    let cx = coefficients(cw, out_w);
    let cy = coefficients(ch, out_h);
    // Window rows the part's output rows read.
    let first = cy.starts[row];
    let last = (row..row + rows).map(|o| cy.starts[o] + cy.weights[o].len()).max().unwrap_or(first);
    // Horizontal pass over those rows, then vertical (Pillow's order).
    let mut rows_buf = vec![0f32; (last - first) * cols];
    let mut out = vec![0f32; planes * rows * cols];
    for p in 0..planes {
        let src = &x.data()[p * h * w..(p + 1) * h * w];
        for y in first..last {
            let line = &src[(top + y) * w + left..(top + y) * w + left + cw];
            let dst = &mut rows_buf[(y - first) * cols..(y - first + 1) * cols];
            for (j, d) in dst.iter_mut().enumerate() {
                let o = col + j;
                let s = cx.starts[o];
                *d = cx.weights[o].iter().zip(&line[s..]).map(|(k, v)| k * v).sum();
            }
        }
        let dst = &mut out[p * rows * cols..(p + 1) * rows * cols];
        for (i, o) in (row..row + rows).enumerate() {
            let (s, k) = (cy.starts[o], &cy.weights[o]);
            let out_row = &mut dst[i * cols..(i + 1) * cols];
            for (j, &kj) in k.iter().enumerate() {
                let srow = &rows_buf[(s + j - first) * cols..(s + j - first + 1) * cols];
                for (d, v) in out_row.iter_mut().zip(srow) {
                    *d += kj * v;
                }
            }
        }
    }
    with_spatial(x, rows, cols, out)
}

/// The output size of torchvision's `Resize(size)` for an `h x w` input: the shorter side
/// becomes `size`, the longer one `int(size * long / short)`.
pub fn shorter_side_size(h: usize, w: usize, size: usize) -> (usize, usize) {
    if h <= w {
        (size, (size as f64 * w as f64 / h as f64) as usize)
    } else {
        ((size as f64 * h as f64 / w as f64) as usize, size)
    }
}

/// torchvision's `Resize`: `out` is `(h, w)`, antialiased bilinear over the whole plane.
pub fn resize(x: &Tensor, out_h: usize, out_w: usize) -> Result<Tensor> {
    let (_, h, w) = spatial(x, "resize input")?;
    resize_window_antialiased(x, (0, 0, h, w), out_h, out_w)
}

/// Python's `round` of `d / 2` (halves to even), as torchvision's `center_crop` computes offsets.
#[doc(hidden)]
pub fn half_round_even(d: usize) -> usize {
    let (q, odd) = (d / 2, d % 2 == 1);
    if odd && q % 2 == 1 {
        q + 1
    } else {
        q
    }
}

/// `Resize` to `out_h x out_w` then `CenterCrop(crop_h, crop_w)`, computing only the crop when
/// it lies inside the resized image (the same values as the two steps, fewer operations).
pub fn resize_center_crop(
    x: &Tensor,
    out_h: usize,
    out_w: usize,
    crop_h: usize,
    crop_w: usize,
) -> Result<Tensor> {
    let (_, h, w) = spatial(x, "resize input")?;
    if crop_h == 0 || crop_w == 0 || crop_h > out_h || crop_w > out_w {
        return center_crop(&resize(x, out_h, out_w)?, crop_h, crop_w);
    }
    let (row, col) = (half_round_even(out_h - crop_h), half_round_even(out_w - crop_w));
    resize_window_part(x, (0, 0, h, w), out_h, out_w, (row, col, crop_h, crop_w))
}

/// torchvision's `CenterCrop`: zero padding first when the crop is larger than the input.
pub fn center_crop(x: &Tensor, out_h: usize, out_w: usize) -> Result<Tensor> {
    let (planes, h, w) = spatial(x, "centerCrop input")?;
    if out_h == 0 || out_w == 0 {
        return Err(Error::value("centerCrop size", "a positive size", format!("{out_h}x{out_w}")));
    }
    // Offsets of the crop in the (padded) input, possibly negative = padding.
    let offset = |n: usize, c: usize| -> isize {
        if c > n {
            -(((c - n) / 2) as isize)
        } else {
            half_round_even(n - c) as isize
        }
    };
    let (top, left) = (offset(h, out_h), offset(w, out_w));
    zero_padded_window(x, (planes, h, w), (top, left), (out_h, out_w))
}

/// The `out_h x out_w` window of every plane of `x` (`planes x h x w`) whose corner is at
/// (`top`, `left`); where the window leaves the plane it reads zeros (the padding).
#[doc(hidden)]
pub fn zero_padded_window(
    x: &Tensor,
    (planes, h, w): (usize, usize, usize),
    (top, left): (isize, isize),
    (out_h, out_w): (usize, usize),
) -> Result<Tensor> {
    let mut out = vec![0f32; planes * out_h * out_w];
    for p in 0..planes {
        let src = &x.data()[p * h * w..(p + 1) * h * w];
        for oy in 0..out_h {
            let sy = top + oy as isize;
            if sy < 0 || sy >= h as isize {
                continue;
            }
            for ox in 0..out_w {
                let sx = left + ox as isize;
                if sx >= 0 && sx < w as isize {
                    out[(p * out_h + oy) * out_w + ox] = src[sy as usize * w + sx as usize];
                }
            }
        }
    }
    with_spatial(x, out_h, out_w, out)
}
