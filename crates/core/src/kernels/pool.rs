//! Max and average pooling on `[planes, H, W]` (planes = B*C), one plane per task.
use rayon::prelude::*;

/// Pooling window geometry for one input size (PyTorch floor mode, no dilation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeom {
    pub h: usize,
    pub w: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub oh: usize,
    pub ow: usize,
}

impl PoolGeom {
    /// `None` if the window does not fit in the padded input or a size is zero. The caller
    /// checks PyTorch's `padding <= kernel / 2`, which keeps every window partly inside.
    pub fn new(
        h: usize,
        w: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Option<Self> {
        if kernel.contains(&0) || stride.contains(&0) || h == 0 || w == 0 {
            return None;
        }
        let oh = super::conv::out_size(h, kernel[0], stride[0], padding[0], 1)?;
        let ow = super::conv::out_size(w, kernel[1], stride[1], padding[1], 1)?;
        Some(PoolGeom { h, w, kernel, stride, padding, oh, ow })
    }

    /// Clipped input window `[y0, y1) x [x0, x1)` of output `(oy, ox)`.
    fn window(&self, oy: usize, ox: usize) -> (usize, usize, usize, usize) {
        let y = (oy * self.stride[0]) as isize - self.padding[0] as isize;
        let x = (ox * self.stride[1]) as isize - self.padding[1] as isize;
        let clip = |v: isize, n: usize| v.clamp(0, n as isize) as usize;
        (
            clip(y, self.h),
            clip(y + self.kernel[0] as isize, self.h),
            clip(x, self.w),
            clip(x + self.kernel[1] as isize, self.w),
        )
    }
}

/// Max over each window (padding acts as -inf); `argmax` receives the in-plane index of the
/// first maximum (NaN wins, as in PyTorch). Overwrites `y` and `argmax`.
pub fn maxpool2d_forward(g: &PoolGeom, x: &[f32], y: &mut [f32], argmax: &mut [u32]) {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    let halving = g.kernel == [2, 2] && g.stride == [2, 2] && g.padding == [0, 0];
    y.par_chunks_mut(ohw).zip(argmax.par_chunks_mut(ohw)).zip(x.par_chunks(hw)).for_each(
        |((ys, am), xs)| {
            if halving {
                maxpool_2x2_plane(g, xs, ys, am);
            } else {
                maxpool_plane(g, xs, ys, am);
            }
        },
    );
}

/// Any window geometry, one plane.
fn maxpool_plane(g: &PoolGeom, xs: &[f32], ys: &mut [f32], am: &mut [u32]) {
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let (y0, y1, x0, x1) = g.window(oy, ox);
            let mut best = f32::NEG_INFINITY;
            let mut at = y0 * g.w + x0;
            for iy in y0..y1 {
                for ix in x0..x1 {
                    let v = xs[iy * g.w + ix];
                    if v > best || v.is_nan() {
                        best = v;
                        at = iy * g.w + ix;
                        if v.is_nan() {
                            break;
                        }
                    }
                }
                if best.is_nan() {
                    break;
                }
            }
            ys[oy * g.ow + ox] = best;
            am[oy * g.ow + ox] = at as u32;
        }
    }
}

/// The 2x2, stride-2, unpadded window of every network here, without the generic window
/// bookkeeping (the generic loop cost 2-3x the time of the convolution before it on 64x64
/// maps). Same rule: the first maximum in row-major order wins, a NaN wins over everything.
fn maxpool_2x2_plane(g: &PoolGeom, xs: &[f32], ys: &mut [f32], am: &mut [u32]) {
    let w = g.w;
    for oy in 0..g.oh {
        let (top, bottom) = (&xs[2 * oy * w..][..w], &xs[(2 * oy + 1) * w..][..w]);
        let (yr, ar) = (&mut ys[oy * g.ow..][..g.ow], &mut am[oy * g.ow..][..g.ow]);
        for ox in 0..g.ow {
            let i = 2 * ox;
            let (mut best, mut at) = (top[i], 2 * oy * w + i);
            for (v, k) in [(top[i + 1], at + 1), (bottom[i], at + w), (bottom[i + 1], at + w + 1)] {
                if !best.is_nan() && (v > best || v.is_nan()) {
                    best = v;
                    at = k;
                }
            }
            yr[ox] = best;
            ar[ox] = at as u32;
        }
    }
}

/// Routes each output gradient to its window's argmax; overwrites `dx`.
pub fn maxpool2d_backward(g: &PoolGeom, dy: &[f32], argmax: &[u32], dx: &mut [f32]) {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    dx.par_chunks_mut(hw).zip(dy.par_chunks(ohw).zip(argmax.par_chunks(ohw))).for_each(
        |(dxs, (dys, am))| {
            dxs.fill(0.0);
            for (&d, &i) in dys.iter().zip(am) {
                dxs[i as usize] += d;
            }
        },
    );
}

/// Window mean with the padding counted in the divisor (`count_include_pad = true`), which in
/// floor mode is always `kh * kw`. Overwrites `y`.
pub fn avgpool2d_forward(g: &PoolGeom, x: &[f32], y: &mut [f32]) {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    let inv = 1.0 / (g.kernel[0] * g.kernel[1]) as f32;
    y.par_chunks_mut(ohw).zip(x.par_chunks(hw)).for_each(|(ys, xs)| {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let (y0, y1, x0, x1) = g.window(oy, ox);
                let mut s = 0.0f32;
                for iy in y0..y1 {
                    s += xs[iy * g.w + x0..iy * g.w + x1].iter().sum::<f32>();
                }
                ys[oy * g.ow + ox] = s * inv;
            }
        }
    });
}

/// Adjoint of [`avgpool2d_forward`]; overwrites `dx`.
pub fn avgpool2d_backward(g: &PoolGeom, dy: &[f32], dx: &mut [f32]) {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    let inv = 1.0 / (g.kernel[0] * g.kernel[1]) as f32;
    dx.par_chunks_mut(hw).zip(dy.par_chunks(ohw)).for_each(|(dxs, dys)| {
        dxs.fill(0.0);
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let (y0, y1, x0, x1) = g.window(oy, ox);
                let d = dys[oy * g.ow + ox] * inv;
                for iy in y0..y1 {
                    for v in &mut dxs[iy * g.w + x0..iy * g.w + x1] {
                        *v += d;
                    }
                }
            }
        }
    });
}

/// Mean of each plane of `hw` values: `[planes, hw] -> [planes]`.
pub fn global_avg_forward(x: &[f32], hw: usize, y: &mut [f32]) {
    let inv = 1.0 / hw as f64;
    y.par_iter_mut().zip(x.par_chunks(hw)).for_each(|(o, xs)| {
        *o = (xs.iter().map(|&v| v as f64).sum::<f64>() * inv) as f32;
    });
}

/// Spreads each plane's gradient evenly; overwrites `dx`.
pub fn global_avg_backward(dy: &[f32], hw: usize, dx: &mut [f32]) {
    let inv = 1.0 / hw as f32;
    dx.par_chunks_mut(hw).zip(dy.par_iter()).for_each(|(dxs, &d)| dxs.fill(d * inv));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_2x2_path_matches_the_generic_window_loop_with_ties_and_nans() {
        let mut rng = crate::rng::Rng::new(5);
        for (h, w) in [(4, 4), (5, 7), (8, 3), (2, 2), (9, 9)] {
            let g = PoolGeom::new(h, w, [2, 2], [2, 2], [0, 0]).unwrap();
            for density in [0.0, 0.01, 0.1, 0.5, 1.0] {
                // Spike maps (many ties) mixed with real values and a few NaNs.
                let x: Vec<f32> = (0..3 * h * w)
                    .map(|_| match rng.uniform() {
                        u if u < 0.03 => f32::NAN,
                        u if u < 0.6 => (rng.uniform() < density) as u8 as f32,
                        _ => rng.normal(),
                    })
                    .collect();
                let (ohw, hw) = (g.oh * g.ow, h * w);
                let (mut y1, mut a1) = (vec![0.0; 3 * ohw], vec![0; 3 * ohw]);
                let (mut y2, mut a2) = (vec![0.0; 3 * ohw], vec![0; 3 * ohw]);
                for p in 0..3 {
                    let (xs, r) = (&x[p * hw..(p + 1) * hw], p * ohw..(p + 1) * ohw);
                    maxpool_2x2_plane(&g, xs, &mut y1[r.clone()], &mut a1[r.clone()]);
                    maxpool_plane(&g, xs, &mut y2[r.clone()], &mut a2[r]);
                }
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!((bits(&y1), &a1), (bits(&y2), &a2), "{h}x{w} at density {density}");
            }
        }
    }
}
