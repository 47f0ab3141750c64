//! Seeded augmentations of frames `[T, C, H, W]` and images `[C, H, W]`. Each takes the random
//! generator explicitly, so a (seed, sample) pair always gives the same result.
//! Spatial transforms apply the same crop/flip to every plane of a sample (all time steps and
//! channels), as torchvision does when it is handed a whole frame sequence.

use dualstream_core::rng::Rng;
use dualstream_core::{Error, Result, Tensor};

use crate::resample::{resize_window_antialiased, spatial, with_spatial, zero_padded_window};

/// Keeps `keep` of the T frames, chosen uniformly without replacement, in their original order
/// (SpikingJelly's `random_temporal_delete`, time-major).
pub fn random_temporal_delete(x: &Tensor, keep: usize, rng: &mut Rng) -> Result<Tensor> {
    let s = x.shape();
    if s.is_empty() || keep == 0 || keep > s[0] {
        return Err(Error::value(
            "randomTemporalDelete keep",
            format!("an integer in [1, T] for frames of shape {s:?}"),
            keep,
        ));
    }
    let t = s[0];
    let mut idx: Vec<usize> = (0..t).collect();
    rng.shuffle(&mut idx);
    let mut chosen = idx[..keep].to_vec();
    chosen.sort_unstable();
    let step = x.numel() / t;
    let mut out = Vec::with_capacity(keep * step);
    for &i in &chosen {
        out.extend_from_slice(&x.data()[i * step..(i + 1) * step]);
    }
    let mut shape = s.to_vec();
    shape[0] = keep;
    Tensor::from_vec(&shape, out)
}

/// Pads every plane with `padding` zeros on each side and cuts a random `out_h x out_w` window
/// (torchvision's `RandomCrop(size, padding)`).
pub fn random_crop(
    x: &Tensor,
    out_h: usize,
    out_w: usize,
    padding: usize,
    rng: &mut Rng,
) -> Result<Tensor> {
    let (planes, h, w) = spatial(x, "randomCrop input")?;
    let (ph, pw) = (h + 2 * padding, w + 2 * padding);
    if out_h == 0 || out_w == 0 || out_h > ph || out_w > pw {
        return Err(Error::value(
            "randomCrop size",
            format!("a size within the padded {ph}x{pw} input"),
            format!("{out_h}x{out_w}"),
        ));
    }
    let top = rng.below(ph - out_h + 1) as isize - padding as isize;
    let left = rng.below(pw - out_w + 1) as isize - padding as isize;
    zero_padded_window(x, (planes, h, w), (top, left), (out_h, out_w))
}

/// Mirrors every plane left-right with probability `p`.
pub fn random_horizontal_flip(x: &Tensor, p: f32, rng: &mut Rng) -> Result<Tensor> {
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::value("horizontalFlip p", "a probability in [0, 1]", p));
    }
    let (_, _, w) = spatial(x, "horizontalFlip input")?;
    let mut out = x.clone();
    if rng.uniform() < p {
        for row in out.data_mut().chunks_exact_mut(w) {
            row.reverse();
        }
    }
    Ok(out)
}

/// Bilinear sample of a `h x w` plane at fractional (y, x) in pixel-centre coordinates (pixel
/// (i, j) sits at (i, j)); points outside the plane read as 0 (the black background).
pub fn bilinear(plane: &[f32], h: usize, w: usize, y: f32, x: f32) -> f32 {
    let (y0, x0) = (y.floor(), x.floor());
    let (fy, fx) = (y - y0, x - x0);
    let (y0, x0) = (y0 as isize, x0 as isize);
    let at = |yy: isize, xx: isize| -> f32 {
        if yy < 0 || xx < 0 || yy >= h as isize || xx >= w as isize {
            0.0
        } else {
            plane[yy as usize * w + xx as usize]
        }
    };
    let top = at(y0, x0) * (1.0 - fx) + at(y0, x0 + 1) * fx;
    let bottom = at(y0 + 1, x0) * (1.0 - fx) + at(y0 + 1, x0 + 1) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// Turns every plane by `degrees` (counter-clockwise as displayed, rows running down) and
/// scales it by `scale` about its centre `((h - 1) / 2, (w - 1) / 2)`, then shifts it by
/// `(dy, dx)` pixels; each output pixel is a bilinear sample of the input, 0 outside it.
/// `affine(x, 0.0, (dy, dx), 1.0)` with whole-pixel shifts moves pixels exactly.
pub fn affine(x: &Tensor, degrees: f32, (dy, dx): (f32, f32), scale: f32) -> Result<Tensor> {
    let (planes, h, w) = spatial(x, "affine input")?;
    if !(scale.is_finite() && scale > 0.0 && degrees.is_finite()) {
        return Err(Error::value(
            "affine scale/degrees",
            "a finite angle and a positive finite scale",
            format!("{degrees} degrees, scale {scale}"),
        ));
    }
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (cy, cx) = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
    let inv = 1.0 / scale;
    let mut out = vec![0f32; x.numel()];
    for p in 0..planes {
        let src = &x.data()[p * h * w..(p + 1) * h * w];
        for oy in 0..h {
            let v = (oy as f32 - cy - dy) * inv;
            for ox in 0..w {
                let u = (ox as f32 - cx - dx) * inv;
                // The inverse of (u, v) -> (u cos + v sin, v cos - u sin).
                let (sx, sy) = (cx + u * cos - v * sin, cy + u * sin + v * cos);
                out[(p * h + oy) * w + ox] = bilinear(src, h, w, sy, sx);
            }
        }
    }
    Tensor::from_vec(x.shape(), out)
}

/// torchvision's `RandomAffine(degrees, translate, scale)` without shear: an angle uniform in
/// `[-degrees, degrees]`, whole-pixel shifts uniform within `translate.0 * w` across and
/// `translate.1 * h` down (rounded), and a scale uniform in `scale`; every plane of the sample
/// (all time steps and channels) gets the same draw.
pub fn random_affine(
    x: &Tensor,
    degrees: f32,
    translate: (f32, f32),
    scale: (f32, f32),
    rng: &mut Rng,
) -> Result<Tensor> {
    let (_, h, w) = spatial(x, "randomAffine input")?;
    if !(degrees.is_finite() && degrees >= 0.0) {
        return Err(Error::value("randomAffine degrees", "a finite angle >= 0", degrees));
    }
    if !((0.0..=1.0).contains(&translate.0) && (0.0..=1.0).contains(&translate.1)) {
        return Err(Error::value(
            "randomAffine translate",
            "fractions [across, down] in [0, 1]",
            format!("{translate:?}"),
        ));
    }
    if !(scale.0 > 0.0 && scale.0 <= scale.1 && scale.1.is_finite()) {
        return Err(Error::value(
            "randomAffine scale",
            "0 < min <= max, finite",
            format!("{scale:?}"),
        ));
    }
    let angle = rng.uniform_range(-degrees, degrees);
    let (max_dx, max_dy) = (translate.0 * w as f32, translate.1 * h as f32);
    let dx = rng.uniform_range(-max_dx, max_dx).round();
    let dy = rng.uniform_range(-max_dy, max_dy).round();
    let s = rng.uniform_range(scale.0, scale.1);
    affine(x, angle, (dy, dx), s)
}

/// Resizes the `[top, top + ch) x [left, left + cw)` window of every plane to `out_h x out_w`
/// by bilinear interpolation (half-pixel centres, edges clamped, like `align_corners=False`).
fn resize_window(
    x: &Tensor,
    (top, left, ch, cw): (usize, usize, usize, usize),
    out_h: usize,
    out_w: usize,
) -> Result<Tensor> {
    let (planes, h, w) = spatial(x, "resize input")?;
    let (sy, sx) = (ch as f32 / out_h as f32, cw as f32 / out_w as f32);
    let mut out = vec![0f32; planes * out_h * out_w];
    for p in 0..planes {
        let src = &x.data()[p * h * w..(p + 1) * h * w];
        for oy in 0..out_h {
            let y = ((oy as f32 + 0.5) * sy - 0.5).clamp(0.0, (ch - 1) as f32) + top as f32;
            for ox in 0..out_w {
                let xx = ((ox as f32 + 0.5) * sx - 0.5).clamp(0.0, (cw - 1) as f32) + left as f32;
                out[(p * out_h + oy) * out_w + ox] = bilinear(src, h, w, y, xx);
            }
        }
    }
    with_spatial(x, out_h, out_w, out)
}

/// torchvision's `RandomResizedCrop`: up to 10 tries of a window with area fraction in `scale`
/// and aspect ratio (log-uniform) in `ratio` that fits; else the centre crop at the nearest
/// allowed ratio. The window is resized to `out_h x out_w` bilinearly; `antialias` uses
/// Pillow's filter (what torchvision runs on PIL images), else plain bilinear sampling.
pub fn random_resized_crop(
    x: &Tensor,
    out_h: usize,
    out_w: usize,
    scale: (f32, f32),
    ratio: (f32, f32),
    antialias: bool,
    rng: &mut Rng,
) -> Result<Tensor> {
    let (_, h, w) = spatial(x, "randomResizedCrop input")?;
    if out_h == 0 || out_w == 0 {
        return Err(Error::value(
            "randomResizedCrop size",
            "a positive size",
            format!("{out_h}x{out_w}"),
        ));
    }
    if !(scale.0 > 0.0 && scale.0 <= scale.1 && scale.1 <= 1.0) {
        return Err(Error::value(
            "randomResizedCrop scale",
            "0 < min <= max <= 1",
            format!("{scale:?}"),
        ));
    }
    if !(ratio.0 > 0.0 && ratio.0 <= ratio.1) {
        return Err(Error::value(
            "randomResizedCrop ratio",
            "0 < min <= max",
            format!("{ratio:?}"),
        ));
    }
    let window = random_resized_crop_window(h, w, scale, ratio, rng);
    if antialias {
        resize_window_antialiased(x, window, out_h, out_w)
    } else {
        resize_window(x, window, out_h, out_w)
    }
}

/// The window `(top, left, height, width)` `RandomResizedCrop` draws in an `h x w` image.
pub fn random_resized_crop_window(
    h: usize,
    w: usize,
    scale: (f32, f32),
    ratio: (f32, f32),
    rng: &mut Rng,
) -> (usize, usize, usize, usize) {
    let area = (h * w) as f32;
    let (log_lo, log_hi) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target = area * rng.uniform_range(scale.0, scale.1);
        let aspect = rng.uniform_range(log_lo, log_hi).exp();
        let cw = (target * aspect).sqrt().round() as usize;
        let ch = (target / aspect).sqrt().round() as usize;
        if cw > 0 && ch > 0 && cw <= w && ch <= h {
            let top = rng.below(h - ch + 1);
            let left = rng.below(w - cw + 1);
            return (top, left, ch, cw);
        }
    }
    let in_ratio = w as f32 / h as f32;
    let (ch, cw) = if in_ratio < ratio.0 {
        (((w as f32) / ratio.0).round() as usize, w)
    } else if in_ratio > ratio.1 {
        (h, ((h as f32) * ratio.1).round() as usize)
    } else {
        (h, w)
    };
    let (ch, cw) = (ch.clamp(1, h), cw.clamp(1, w));
    ((h - ch) / 2, (w - cw) / 2, ch, cw)
}

/// `(x - mean[c]) / std[c]` over the channel axis, the third from last (`[C, H, W]` or
/// `[T, C, H, W]`).
pub fn normalize(x: &Tensor, mean: &[f32], std: &[f32]) -> Result<Tensor> {
    let s = x.shape();
    if s.len() < 3 {
        return Err(Error::shape("normalize input", "[..., C, H, W]", s));
    }
    let c = s[s.len() - 3];
    if mean.len() != c || std.len() != c {
        return Err(Error::value(
            "normalize mean/std",
            format!("{c} values each (one per channel of shape {s:?})"),
            format!("{} and {}", mean.len(), std.len()),
        ));
    }
    if let Some(bad) = std.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
        return Err(Error::value("normalize std", "positive finite values", bad));
    }
    let plane = s[s.len() - 1] * s[s.len() - 2];
    let mut out = x.clone();
    for (k, chunk) in out.data_mut().chunks_exact_mut(plane).enumerate() {
        let ch = k % c;
        let (m, inv) = (mean[ch], 1.0 / std[ch]);
        for v in chunk {
            *v = (*v - m) * inv;
        }
    }
    Ok(out)
}

/// torchvision's Gaussian kernel for `sigma`: `int(8 sigma + 1)` taps, made odd, weights
/// `exp(-i^2 / (2 sigma^2))` for i in `-(k-1)/2 ..= (k-1)/2`, summing to 1 (`ElasticTransform`
/// and `gaussian_blur`'s `_get_gaussian_kernel1d`).
pub fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    let mut taps = (8.0 * sigma as f64 + 1.0) as usize;
    if taps.is_multiple_of(2) {
        taps += 1;
    }
    let half = (taps / 2) as f64;
    let sigma = sigma as f64;
    let weights: Vec<f64> =
        (0..taps).map(|i| (-((i as f64 - half) / sigma).powi(2) / 2.0).exp()).collect();
    let sum: f64 = weights.iter().sum();
    weights.iter().map(|v| (v / sum) as f32).collect()
}

/// Index `i` of a line of `n` values mirrored about its end values without repeating them
/// (torch's `reflect` padding: -1 reads 1, n reads n - 2), repeated for reaches beyond `n`.
fn reflect(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    (if m >= n as isize { period - m } else { m }) as usize
}

/// Blurs an `h x w` plane with `kernel` across then down, reflecting at the borders: the
/// separable form of torchvision's `gaussian_blur` (reflect padding, then the outer-product
/// kernel). Each tap is added to a whole row at once, so the inner loops run over contiguous
/// pixels and vectorise.
pub fn blur_reflect(plane: &[f32], h: usize, w: usize, kernel: &[f32]) -> Vec<f32> {
    let half = (kernel.len() / 2) as isize;
    // Source index of each padded position, across and down (reflect divides: once per call).
    let across_at: Vec<usize> =
        (0..w + kernel.len() - 1).map(|k| reflect(k as isize - half, w)).collect();
    let down_at: Vec<usize> =
        (0..h + kernel.len() - 1).map(|k| reflect(k as isize - half, h)).collect();
    let mut line = vec![0f32; across_at.len()];
    let mut across = vec![0f32; h * w];
    for (row, dst) in plane.chunks_exact(w).zip(across.chunks_exact_mut(w)) {
        for (v, &k) in line.iter_mut().zip(&across_at) {
            *v = row[k];
        }
        for (t, &kt) in kernel.iter().enumerate() {
            for (d, s) in dst.iter_mut().zip(&line[t..t + w]) {
                *d += kt * s;
            }
        }
    }
    let mut out = vec![0f32; h * w];
    for (y, dst) in out.chunks_exact_mut(w).enumerate() {
        for (&kt, &sy) in kernel.iter().zip(&down_at[y..]) {
            for (d, s) in dst.iter_mut().zip(&across[sy * w..(sy + 1) * w]) {
                *d += kt * s;
            }
        }
    }
    out
}

/// The pixel displacements `(dy, dx)` of torchvision's `ElasticTransform(alpha, sigma)` from its
/// noise planes (uniform in [-1, 1), `h x w` each): each is blurred by the Gaussian of std
/// `sigma` (none for `sigma` 0) and scaled by `alpha / size`, in the [-1, 1] grid coordinates
/// of `grid_sample`, which is `alpha / 2` in pixels.
pub fn elastic_displacement(
    noise_y: &[f32],
    noise_x: &[f32],
    h: usize,
    w: usize,
    alpha: f32,
    sigma: f32,
) -> (Vec<f32>, Vec<f32>) {
    let scale = alpha / 2.0;
    let smooth = |noise: &[f32]| -> Vec<f32> {
        let blurred = if sigma > 0.0 {
            blur_reflect(noise, h, w, &gaussian_kernel(sigma))
        } else {
            noise.to_vec()
        };
        blurred.iter().map(|v| v * scale).collect()
    };
    (smooth(noise_y), smooth(noise_x))
}

/// `x.floor()` for the finite, moderate coordinates of a displacement field, without the libm
/// call baseline x86-64 makes for `floor`.
fn floor(x: f32) -> isize {
    let t = x as isize;
    if (t as f32) > x {
        t - 1
    } else {
        t
    }
}

/// Moves every plane's pixel (i, j) to read the input at (i + dy, j + dx), bilinearly, as
/// torchvision's `elastic` does with its default `fill=0`: the sample is weighted by the share of
/// its four neighbours that lie inside the plane (`grid_sample` of a mask of ones), so outside
/// reads 0 and pixels near the border fade as in torchvision. The same field serves every
/// plane (all time steps and channels).
pub fn elastic_warp(x: &Tensor, dy: &[f32], dx: &[f32]) -> Result<Tensor> {
    let (_, h, w) = spatial(x, "elastic input")?;
    if dy.len() != h * w || dx.len() != h * w {
        return Err(Error::value(
            "elastic displacement",
            format!("{} values per axis ({h}x{w})", h * w),
            format!("{} and {}", dy.len(), dx.len()),
        ));
    }
    // Per output pixel: the four source indices and their weights, 0 outside the plane, each
    // already multiplied by the in-plane share.
    let mut taps = Vec::with_capacity(h * w);
    for i in 0..h {
        for j in 0..w {
            let (sy, sx) = (i as f32 + dy[i * w + j], j as f32 + dx[i * w + j]);
            let (y0, x0) = (floor(sy), floor(sx));
            let (fy, fx) = (sy - y0 as f32, sx - x0 as f32);
            let corners = [
                (y0, x0, (1.0 - fy) * (1.0 - fx)),
                (y0, x0 + 1, (1.0 - fy) * fx),
                (y0 + 1, x0, fy * (1.0 - fx)),
                (y0 + 1, x0 + 1, fy * fx),
            ];
            let mut tap = [(0usize, 0f32); 4];
            let mut inside = 0f32;
            for (t, &(yy, xx, wt)) in tap.iter_mut().zip(&corners) {
                if yy >= 0 && xx >= 0 && yy < h as isize && xx < w as isize {
                    *t = (yy as usize * w + xx as usize, wt);
                    inside += wt;
                }
            }
            for t in &mut tap {
                t.1 *= inside;
            }
            taps.push(tap);
        }
    }
    let mut out = vec![0f32; x.numel()];
    for (src, dst) in x.data().chunks_exact(h * w).zip(out.chunks_exact_mut(h * w)) {
        for (o, tap) in dst.iter_mut().zip(&taps) {
            *o = tap.iter().map(|&(k, wt)| src[k] * wt).sum();
        }
    }
    Tensor::from_vec(x.shape(), out)
}

/// torchvision's `ElasticTransform(alpha, sigma)` applied with probability `p`: uniform(-1, 1)
/// noise per pixel and axis (the across plane drawn first, as torchvision does), blurred and
/// scaled by [`elastic_displacement`], then [`elastic_warp`]; every plane of the sample gets
/// the same field.
pub fn random_elastic(x: &Tensor, alpha: f32, sigma: f32, p: f32, rng: &mut Rng) -> Result<Tensor> {
    let (_, h, w) = spatial(x, "elastic input")?;
    if !(alpha.is_finite() && alpha >= 0.0) {
        return Err(Error::value("elastic alpha", "a finite magnitude >= 0", alpha));
    }
    if !(sigma.is_finite() && sigma >= 0.0) {
        return Err(Error::value("elastic sigma", "a finite std >= 0 (in pixels)", sigma));
    }
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::value("elastic p", "a probability in [0, 1]", p));
    }
    if rng.uniform() >= p {
        return Ok(x.clone());
    }
    let noise_x: Vec<f32> = (0..h * w).map(|_| rng.uniform_range(-1.0, 1.0)).collect();
    let noise_y: Vec<f32> = (0..h * w).map(|_| rng.uniform_range(-1.0, 1.0)).collect();
    let (dy, dx) = elastic_displacement(&noise_y, &noise_x, h, w, alpha, sigma);
    elastic_warp(x, &dy, &dx)
}

/// What `RandomErasing` writes into its box.
#[derive(Debug, Clone, PartialEq)]
pub enum EraseValue {
    /// One value for every channel, or one per channel.
    Constant(Vec<f32>),
    /// Standard normal noise per channel and pixel of the box (torchvision's `value="random"`).
    Random,
}

/// The box `RandomErasing` makes of one try: area fraction `area_fraction` of the `h x w`
/// picture and aspect ratio (height / width) `aspect`, sides rounded half to even as Python's
/// `round`; `None` unless it fits strictly inside (torchvision's `h < img_h and w < img_w`).
pub fn erasing_box_size(
    h: usize,
    w: usize,
    area_fraction: f32,
    aspect: f32,
) -> Option<(usize, usize)> {
    let area = (h * w) as f64 * area_fraction as f64;
    let bh = (area * aspect as f64).sqrt().round_ties_even();
    let bw = (area / aspect as f64).sqrt().round_ties_even();
    (bh < h as f64 && bw < w as f64).then_some((bh as usize, bw as usize))
}

/// torchvision's `RandomErasing` box: up to 10 tries of an area fraction uniform in `scale` and
/// an aspect ratio log-uniform in `ratio`; the first that fits is placed uniformly. `None`
/// when no try fits (torchvision then leaves the picture as it is).
pub fn random_erasing_box(
    h: usize,
    w: usize,
    scale: (f32, f32),
    ratio: (f32, f32),
    rng: &mut Rng,
) -> Option<(usize, usize, usize, usize)> {
    let (log_lo, log_hi) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let fraction = rng.uniform_range(scale.0, scale.1);
        let aspect = rng.uniform_range(log_lo, log_hi).exp();
        if let Some((bh, bw)) = erasing_box_size(h, w, fraction, aspect) {
            let top = rng.below(h - bh + 1);
            let left = rng.below(w - bw + 1);
            return Some((top, left, bh, bw));
        }
    }
    None
}

/// The number of channels of a picture, the third from last axis (1 for a bare `[H, W]`).
fn channels(x: &Tensor) -> usize {
    let s = x.shape();
    if s.len() >= 3 {
        s[s.len() - 3]
    } else {
        1
    }
}

/// Writes `values` into the `(top, left, height, width)` box of every plane: one value for all
/// channels, one per channel, or `C x height x width` values (one box of noise), repeated
/// over the leading axes (time steps). torchvision's `erase`.
pub fn erase(
    x: &Tensor,
    (top, left, bh, bw): (usize, usize, usize, usize),
    values: &[f32],
) -> Result<Tensor> {
    let (_, h, w) = spatial(x, "erase input")?;
    let c = channels(x);
    if top + bh > h || left + bw > w {
        return Err(Error::value(
            "erase box",
            format!("a box inside the {h}x{w} picture"),
            format!("top {top}, left {left}, {bh}x{bw}"),
        ));
    }
    let per_value = if values.len() == 1 {
        0
    } else if values.len() == c {
        1
    } else if values.len() == c * bh * bw {
        bh * bw
    } else {
        return Err(Error::value(
            "erase value",
            format!("1 value, {c} (one per channel) or {} (channels x box)", c * bh * bw),
            values.len(),
        ));
    };
    let mut out = x.clone();
    for (p, plane) in out.data_mut().chunks_exact_mut(h * w).enumerate() {
        let ch = p % c;
        for y in 0..bh {
            for xx in 0..bw {
                let v = match per_value {
                    0 => values[0],
                    1 => values[ch],
                    _ => values[ch * bh * bw + y * bw + xx],
                };
                plane[(top + y) * w + left + xx] = v;
            }
        }
    }
    Ok(out)
}

/// torchvision's `RandomErasing(p, scale, ratio, value)`: with probability `p`, one box from
/// [`random_erasing_box`] is overwritten with `value` in every plane of the sample (all time
/// steps and channels get the same box; `Random` noise is drawn once per channel).
pub fn random_erasing(
    x: &Tensor,
    p: f32,
    scale: (f32, f32),
    ratio: (f32, f32),
    value: &EraseValue,
    rng: &mut Rng,
) -> Result<Tensor> {
    let (_, h, w) = spatial(x, "randomErasing input")?;
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::value("randomErasing p", "a probability in [0, 1]", p));
    }
    if !(scale.0 >= 0.0 && scale.0 <= scale.1 && scale.1 <= 1.0) {
        return Err(Error::value(
            "randomErasing scale",
            "area fractions [min, max] with 0 <= min <= max <= 1",
            format!("{scale:?}"),
        ));
    }
    if !(ratio.0 > 0.0 && ratio.0 <= ratio.1 && ratio.1.is_finite()) {
        return Err(Error::value(
            "randomErasing ratio",
            "aspect ratios [min, max] with 0 < min <= max, finite",
            format!("{ratio:?}"),
        ));
    }
    let c = channels(x);
    if let EraseValue::Constant(v) = value {
        if v.len() != 1 && v.len() != c {
            return Err(Error::value(
                "randomErasing value",
                format!("one value or {c} (one per channel)"),
                format!("{} values", v.len()),
            ));
        }
    }
    if rng.uniform() >= p {
        return Ok(x.clone());
    }
    let Some(b) = random_erasing_box(h, w, scale, ratio, rng) else {
        return Ok(x.clone());
    };
    match value {
        EraseValue::Constant(v) => erase(x, b, v),
        EraseValue::Random => {
            let noise: Vec<f32> = (0..c * b.2 * b.3).map(|_| rng.normal()).collect();
            erase(x, b, &noise)
        }
    }
}
