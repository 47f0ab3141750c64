//! Surrogate gradients: the forward pass fires with the Heaviside step, the backward pass
//! pretends the step was a smooth function whose derivative is `grad`.
//!
//! Formulas follow docs/dual-stream-training.md (SpikingJelly's Sigmoid, ATan,
//! PiecewiseQuadratic and Norse's SuperSpike). Each also has a `primitive`, the smooth function
//! whose derivative `grad` is; tests use it to check `grad` and to check BPTT on a smoothed
//! forward.
use crate::error::{Error, Result};
use crate::spec::SurrogateSpec;
use std::f32::consts::PI;

/// A surrogate function with its validated hyper-parameter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Surrogate {
    /// `sg'(x) = alpha s (1 - s)`, `s = sigmoid(alpha x)`.
    Sigmoid { alpha: f32 },
    /// `sg'(x) = (alpha / 2) / (1 + (pi/2 alpha x)^2)`.
    Atan { alpha: f32 },
    /// `sg'(x) = max(0, alpha - alpha^2 |x|)`.
    PiecewiseQuadratic { alpha: f32 },
    /// Fast sigmoid: `sg'(x) = 1 / (alpha |x| + 1)^2`.
    SuperSpike { alpha: f32 },
    /// `sg'(x) = alpha / sqrt(pi) exp(-(alpha x)^2)`.
    Erf { alpha: f32 },
    /// `sg'(x) = alpha / (2 (1 + alpha |x|)^2)`.
    SoftSign { alpha: f32 },
    /// `sg'(x) = alpha / 2 exp(-alpha |x|)`.
    PiecewiseExp { alpha: f32 },
    /// `sg'(x) = 1 / (2 w)` for `|x| < w`, else `c` (SpikingJelly's PiecewiseLeakyReLU).
    PiecewiseLeakyRelu { w: f32, c: f32 },
}

impl Surrogate {
    /// Validates the spec; `at` names the layer in the error.
    pub fn from_spec(at: &str, spec: &SurrogateSpec) -> Result<Self> {
        let (name, alpha, s) = match *spec {
            SurrogateSpec::Sigmoid { alpha } => ("sigmoid", alpha, Surrogate::Sigmoid { alpha }),
            SurrogateSpec::Atan { alpha } => ("atan", alpha, Surrogate::Atan { alpha }),
            SurrogateSpec::PiecewiseQuadratic { alpha } => {
                ("piecewiseQuadratic", alpha, Surrogate::PiecewiseQuadratic { alpha })
            }
            SurrogateSpec::SuperSpike { alpha } => {
                ("superSpike", alpha, Surrogate::SuperSpike { alpha })
            }
            SurrogateSpec::Erf { alpha } => ("erf", alpha, Surrogate::Erf { alpha }),
            SurrogateSpec::SoftSign { alpha } => ("softSign", alpha, Surrogate::SoftSign { alpha }),
            SurrogateSpec::PiecewiseExp { alpha } => {
                ("piecewiseExp", alpha, Surrogate::PiecewiseExp { alpha })
            }
            SurrogateSpec::PiecewiseLeakyRelu { w, c } => {
                if !(c.is_finite() && c >= 0.0) {
                    return Err(Error::spec(
                        at,
                        format!("surrogate piecewiseLeakyRelu: c must be finite and >= 0, got {c}"),
                    ));
                }
                ("piecewiseLeakyRelu (w)", w, Surrogate::PiecewiseLeakyRelu { w, c })
            }
        };
        if !(alpha.is_finite() && alpha > 0.0) {
            return Err(Error::spec(
                at,
                format!("surrogate {name}: alpha must be finite and > 0, got {alpha}"),
            ));
        }
        Ok(s)
    }

    pub fn alpha(&self) -> f32 {
        match *self {
            Surrogate::Sigmoid { alpha }
            | Surrogate::Atan { alpha }
            | Surrogate::PiecewiseQuadratic { alpha }
            | Surrogate::SuperSpike { alpha }
            | Surrogate::Erf { alpha }
            | Surrogate::SoftSign { alpha }
            | Surrogate::PiecewiseExp { alpha } => alpha,
            // The width parameter plays alpha's role (1/w is the sharpness).
            Surrogate::PiecewiseLeakyRelu { w, .. } => 1.0 / w,
        }
    }

    /// The forward firing function: 1 where `x >= 0` (SpikingJelly's `heaviside`).
    #[inline(always)]
    pub fn heaviside(x: f32) -> f32 {
        if x >= 0.0 {
            1.0
        } else {
            0.0
        }
    }

    /// `sg'(x)`, the derivative used in place of the Heaviside's.
    #[inline]
    pub fn grad(&self, x: f32) -> f32 {
        match *self {
            Surrogate::Sigmoid { alpha } => SigmoidSg::new(alpha).grad(x),
            Surrogate::Atan { alpha } => AtanSg::new(alpha).grad(x),
            Surrogate::PiecewiseQuadratic { alpha } => PiecewiseQuadraticSg::new(alpha).grad(x),
            Surrogate::SuperSpike { alpha } => SuperSpikeSg::new(alpha).grad(x),
            Surrogate::Erf { alpha } => ErfSg::new(alpha).grad(x),
            Surrogate::SoftSign { alpha } => SoftSignSg::new(alpha).grad(x),
            Surrogate::PiecewiseExp { alpha } => PiecewiseExpSg::new(alpha).grad(x),
            Surrogate::PiecewiseLeakyRelu { w, c } => PiecewiseLeakyReluSg::new(w, c).grad(x),
        }
    }

    /// The smooth function whose derivative is `grad` (f64, for checks): sigmoid(alpha x);
    /// atan(pi/2 alpha x)/pi + 1/2; the piecewise quadratic that rises from 0 at -1/alpha to 1
    /// at 1/alpha; x / (1 + alpha |x|).
    pub fn primitive(&self, x: f64) -> f64 {
        let a = self.alpha() as f64;
        match *self {
            Surrogate::Sigmoid { .. } => 1.0 / (1.0 + (-a * x).exp()),
            Surrogate::Atan { .. } => {
                (std::f64::consts::FRAC_PI_2 * a * x).atan() / std::f64::consts::PI + 0.5
            }
            Surrogate::PiecewiseQuadratic { .. } => {
                if x < -1.0 / a {
                    0.0
                } else if x > 1.0 / a {
                    1.0
                } else {
                    -0.5 * a * a * x.abs() * x + a * x + 0.5
                }
            }
            Surrogate::SuperSpike { .. } => x / (1.0 + a * x.abs()),
            Surrogate::Erf { .. } => 0.5 * (1.0 + erf(a * x)),
            Surrogate::SoftSign { .. } => 0.5 * (a * x / (1.0 + a * x.abs()) + 1.0),
            Surrogate::PiecewiseExp { .. } => {
                if x < 0.0 {
                    0.5 * (a * x).exp()
                } else {
                    1.0 - 0.5 * (-a * x).exp()
                }
            }
            Surrogate::PiecewiseLeakyRelu { w, c } => {
                let (w, c) = (w as f64, c as f64);
                if x.abs() < w {
                    x / (2.0 * w) + 0.5
                } else if x < 0.0 {
                    c * (x + w)
                } else {
                    c * (x - w) + 1.0
                }
            }
        }
    }
}

/// One surrogate derivative as a concrete type, so the fused backward kernel is monomorphised
/// per surrogate and its inner loop carries no dispatch.
pub(crate) trait SgFn: Copy + Send + Sync {
    fn grad(self, x: f32) -> f32;
}

#[derive(Clone, Copy)]
pub(crate) struct SigmoidSg {
    alpha: f32,
}
impl SigmoidSg {
    #[doc(hidden)]
    pub fn new(alpha: f32) -> Self {
        SigmoidSg { alpha }
    }
}
impl SgFn for SigmoidSg {
    #[inline(always)]
    fn grad(self, x: f32) -> f32 {
        // exp overflows to inf for very negative alpha x, giving s = 0 and a zero gradient.
        let s = 1.0 / (1.0 + exp_lanes(-self.alpha * x));
        (1.0 - s) * s * self.alpha
    }
}

/// `e^x` in plain f32 arithmetic that vectorises (a call to the library's `expf` keeps a
/// backward block's lane loop scalar): Cody-Waite reduction `x = n ln 2 + r` and Cephes'
/// degree-5 polynomial for `e^r`, within 1 ulp of the exact value; `2^n` is built in the
/// exponent bits. Overflows to infinity above `ln(f32::MAX)`, stops at the smallest normal
/// `e^x` (about 1.2e-38) below `ln(f32::MIN_POSITIVE)`, and keeps NaN. No FMA contraction,
/// so every instruction-set copy of a kernel gives the same bits.
#[doc(hidden)]
#[inline(always)]
pub fn exp_lanes(x: f32) -> f32 {
    // Largest argument whose 2^n is a finite f32, and smallest whose 2^n is normal.
    const HI: f32 = 88.376_26;
    const LO: f32 = -87.336_55;
    // Adding 1.5 * 2^23 rounds to an integer, left in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // NaN passes through (clamp keeps it).
    let xc = x.clamp(LO, HI);
    let t = xc * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let y = p * (r * r) + r + 1.0;
    let k = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let two_n = f32::from_bits((k.wrapping_add(127) as u32) << 23);
    if x > HI {
        f32::INFINITY
    } else {
        y * two_n
    }
}

#[derive(Clone, Copy)]
pub(crate) struct AtanSg {
    half_alpha: f32,
    slope: f32,
}
impl AtanSg {
    #[doc(hidden)]
    pub fn new(alpha: f32) -> Self {
        AtanSg { half_alpha: alpha / 2.0, slope: PI / 2.0 * alpha }
    }
}
impl SgFn for AtanSg {
    #[inline(always)]
    fn grad(self, x: f32) -> f32 {
        let u = self.slope * x;
        self.half_alpha / (1.0 + u * u)
    }
}

#[derive(Clone, Copy)]
pub(crate) struct PiecewiseQuadraticSg {
    alpha: f32,
    alpha2: f32,
}
impl PiecewiseQuadraticSg {
    #[doc(hidden)]
    pub fn new(alpha: f32) -> Self {
        PiecewiseQuadraticSg { alpha, alpha2: alpha * alpha }
    }
}
impl SgFn for PiecewiseQuadraticSg {
    #[inline(always)]
    fn grad(self, x: f32) -> f32 {
        (self.alpha - self.alpha2 * x.abs()).max(0.0)
    }
}

#[derive(Clone, Copy)]
pub(crate) struct SuperSpikeSg {
    alpha: f32,
}
impl SuperSpikeSg {
    #[doc(hidden)]
    pub fn new(alpha: f32) -> Self {
        SuperSpikeSg { alpha }
    }
}
impl SgFn for SuperSpikeSg {
    #[inline(always)]
    fn grad(self, x: f32) -> f32 {
        let d = self.alpha * x.abs() + 1.0;
        1.0 / (d * d)
    }
}

#[derive(Clone, Copy)]
pub(crate) struct ErfSg {
    alpha: f32,
    scale: f32,
}
impl ErfSg {
    #[doc(hidden)]
    pub fn new(alpha: f32) -> Self {
        ErfSg { alpha, scale: alpha / PI.sqrt() }
    }
}
impl SgFn for ErfSg {
    #[inline(always)]
    fn grad(self, x: f32) -> f32 {
        let u = x * self.alpha;
        (-(u * u)).exp() * self.scale
    }
}

#[derive(Clone, Copy)]
pub(crate) struct SoftSignSg {
    alpha: f32,
}
impl SoftSignSg {
    #[doc(hidden)]
    pub fn new(alpha: f32) -> Self {
        SoftSignSg { alpha }
    }
}
impl SgFn for SoftSignSg {
    #[inline(always)]
    fn grad(self, x: f32) -> f32 {
        // SpikingJelly's order: 1 / (2 alpha (1/alpha + |x|)^2).
        let d = 1.0 / self.alpha + x.abs();
        1.0 / (2.0 * self.alpha * (d * d))
    }
}

#[derive(Clone, Copy)]
pub(crate) struct PiecewiseExpSg {
    alpha: f32,
}
impl PiecewiseExpSg {
    #[doc(hidden)]
    pub fn new(alpha: f32) -> Self {
        PiecewiseExpSg { alpha }
    }
}
impl SgFn for PiecewiseExpSg {
    #[inline(always)]
    fn grad(self, x: f32) -> f32 {
        self.alpha / 2.0 * (-self.alpha * x.abs()).exp()
    }
}

#[derive(Clone, Copy)]
pub(crate) struct PiecewiseLeakyReluSg {
    w: f32,
    inside: f32,
    c: f32,
}
impl PiecewiseLeakyReluSg {
    #[doc(hidden)]
    pub fn new(w: f32, c: f32) -> Self {
        PiecewiseLeakyReluSg { w, inside: 1.0 / (2.0 * w), c }
    }
}
impl SgFn for PiecewiseLeakyReluSg {
    #[inline(always)]
    fn grad(self, x: f32) -> f32 {
        if x.abs() < self.w {
            self.inside
        } else {
            self.c
        }
    }
}

/// The error function in f64 for `primitive` (the checks' reference): its Taylor series near 0,
/// the continued fraction of erfc beyond |x| = 2.5; both to ~1e-15.
fn erf(x: f64) -> f64 {
    if x.abs() < 2.5 {
        // sum_n (-1)^n x^(2n+1) / (n! (2n+1)), times 2/sqrt(pi).
        let (mut term, mut sum, x2) = (x, x, x * x);
        for n in 1..200 {
            term *= -x2 / n as f64;
            let add = term / (2 * n + 1) as f64;
            sum += add;
            if add.abs() < 1e-17 {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // erfc(|x|) by Lentz's continued fraction.
        let z = x.abs();
        let mut f = z;
        let (mut c, mut d) = (z, 0.0f64);
        for k in 1..300 {
            let a = k as f64 / 2.0;
            d = z + a * d;
            c = z + a / c;
            d = 1.0 / d;
            let delta = c * d;
            f *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        let erfc = (-z * z).exp() / (f * std::f64::consts::PI.sqrt());
        x.signum() * (1.0 - erfc)
    }
}
