//! Geometry shared by the convolution and pooling kernels: shapes, hyper-parameters and the
//! output sizes they imply (PyTorch's floor formula).

/// Shapes and hyper-parameters of one convolution, with the derived output size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    pub c_in: usize,
    pub c_out: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
    pub oh: usize,
    pub ow: usize,
}

impl ConvGeom {
    /// `None` when the hyper-parameters are degenerate (zero sizes, groups not dividing the
    /// channels) or the dilated kernel does not fit in the padded input.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        c_in: usize,
        c_out: usize,
        h: usize,
        w: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
        groups: usize,
    ) -> Option<ConvGeom> {
        let [kh, kw] = kernel;
        if c_in == 0 || c_out == 0 || kh == 0 || kw == 0 || groups == 0 {
            return None;
        }
        if stride.contains(&0) || dilation.contains(&0) {
            return None;
        }
        if !c_in.is_multiple_of(groups) || !c_out.is_multiple_of(groups) {
            return None;
        }
        let oh = out_size(h, kh, stride[0], padding[0], dilation[0])?;
        let ow = out_size(w, kw, stride[1], padding[1], dilation[1])?;
        Some(ConvGeom { c_in, c_out, h, w, kh, kw, stride, padding, dilation, groups, oh, ow })
    }

    pub fn cin_g(&self) -> usize {
        self.c_in / self.groups
    }
    pub fn cout_g(&self) -> usize {
        self.c_out / self.groups
    }
    /// Reduction length of one group's GEMM: `C_in/groups * kh * kw`.
    pub fn k_g(&self) -> usize {
        self.cin_g() * self.kh * self.kw
    }
    pub fn ohw(&self) -> usize {
        self.oh * self.ow
    }
    pub fn in_size(&self) -> usize {
        self.c_in * self.h * self.w
    }
    pub fn out_size(&self) -> usize {
        self.c_out * self.ohw()
    }
    pub fn weight_len(&self) -> usize {
        self.c_out * self.k_g()
    }
    pub(crate) fn col_len(&self) -> usize {
        self.c_in * self.kh * self.kw * self.ohw()
    }
    /// A 1x1, stride-1, unpadded conv reads the input itself as its column matrix.
    pub(crate) fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == [1, 1] && self.padding == [0, 0]
    }
}

/// Output length of one spatial axis (PyTorch's floor formula); `None` if nothing fits.
pub fn out_size(n: usize, k: usize, s: usize, p: usize, d: usize) -> Option<usize> {
    let span = d * (k - 1) + 1;
    if n + 2 * p < span || s == 0 {
        return None;
    }
    Some((n + 2 * p - span) / s + 1)
}

/// Output length of one pooling axis. In `ceil_mode` (PyTorch's rule) a last partial window
/// is kept when it starts inside the input or its left padding.
pub fn pool_out_size(n: usize, k: usize, s: usize, p: usize, ceil_mode: bool) -> Option<usize> {
    let floor = out_size(n, k, s, p, 1)?;
    if !ceil_mode || (n + 2 * p - k).is_multiple_of(s) || floor * s >= n + p {
        return Some(floor);
    }
    Some(floor + 1)
}

/// Pooling window geometry for one input size (no dilation).
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
    /// Floor mode; see [`PoolGeom::with_ceil_mode`].
    pub fn new(
        h: usize,
        w: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Option<Self> {
        Self::with_ceil_mode(h, w, kernel, stride, padding, false)
    }

    /// `None` if the window does not fit in the padded input or a size is zero. The caller
    /// checks PyTorch's `padding <= kernel / 2`, which keeps every window partly inside.
    pub fn with_ceil_mode(
        h: usize,
        w: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        ceil_mode: bool,
    ) -> Option<Self> {
        if kernel.contains(&0) || stride.contains(&0) || h == 0 || w == 0 {
            return None;
        }
        let oh = pool_out_size(h, kernel[0], stride[0], padding[0], ceil_mode)?;
        let ow = pool_out_size(w, kernel[1], stride[1], padding[1], ceil_mode)?;
        Some(PoolGeom { h, w, kernel, stride, padding, oh, ow })
    }

    /// The unpadded 2x2, stride-2 window whose outputs all lie inside the input (the fast
    /// paths' case; a ceil-mode last partial window is not).
    #[doc(hidden)]
    pub fn halving(&self) -> bool {
        self.kernel == [2, 2]
            && self.stride == [2, 2]
            && self.padding == [0, 0]
            && 2 * self.oh <= self.h
            && 2 * self.ow <= self.w
    }

    /// Clipped input window `[y0, y1) x [x0, x1)` of output `(oy, ox)`.
    #[doc(hidden)]
    pub fn window(&self, oy: usize, ox: usize) -> (usize, usize, usize, usize) {
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

    /// The divisor of average pooling at output `(oy, ox)`: with `count_include_pad` the window
    /// clipped to the padded input (PyTorch's rule, the kernel area except for a ceil-mode
    /// last window), else the number of input values in it.
    #[doc(hidden)]
    pub fn divisor(&self, oy: usize, ox: usize, count_include_pad: bool) -> usize {
        if !count_include_pad {
            let (y0, y1, x0, x1) = self.window(oy, ox);
            return (y1 - y0) * (x1 - x0);
        }
        let span = |o: usize, axis: usize, n: usize| {
            let start = o * self.stride[axis];
            (start + self.kernel[axis]).min(n + 2 * self.padding[axis]) - start
        };
        span(oy, 0, self.h) * span(ox, 1, self.w)
    }
}
