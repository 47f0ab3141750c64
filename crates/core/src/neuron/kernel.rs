//! Fused multi-step neuron kernels over a time-major `[T, numel]` layout.
//!
//! Every element's time loop is independent, so the elements are cut into fixed-size chunks
//! processed in parallel; inside a chunk the loop runs over time outside and over the chunk's
//! contiguous elements inside, so the inner loop vectorises and the state (`V_t` forward,
//! `dL/dV_t` backward) lives in a stack array instead of a tensor per step.
//!
//! The chunk size is a constant, not derived from the thread count, so that the PLIF `w`
//! gradient (summed per chunk, then over chunks in order) is bit-identical on any machine.
use super::surrogate::{AtanSg, PiecewiseQuadraticSg, SgFn, SigmoidSg, SuperSpikeSg, Surrogate};
use rayon::prelude::*;

/// Elements per parallel task (and per partial sum of the PLIF gradient).
pub(crate) const CHUNK: usize = 1024;

/// The charge equation, written in the same operation order as SpikingJelly's so that a
/// membrane potential landing exactly on the threshold fires in both engines.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Charge {
    /// `H = V + X`
    If,
    /// `H = V + (X - V) / tau` (V_reset 0 or soft reset)
    LifDecay0 { tau: f32 },
    /// `H = V + (X - (V - V_reset)) / tau`
    LifDecay { tau: f32, v_reset: f32 },
    /// `H = V * keep + X`, `keep = 1 - 1/tau` (V_reset 0 or soft reset)
    LifNoDecay0 { tau: f32, keep: f32 },
    /// `H = V - (V - V_reset) / tau + X`
    LifNoDecay { tau: f32, v_reset: f32 },
    /// `H = V + (X - V) * k`, `k = sigmoid(w)`
    PlifDecay0 { k: f32 },
    /// `H = V + (X - (V - V_reset)) * k`
    PlifDecay { k: f32, v_reset: f32 },
    /// `H = V * (1 - k) + X`
    PlifNoDecay0 { k: f32 },
    /// `H = V - (V - V_reset) * k + X`
    PlifNoDecay { k: f32, v_reset: f32 },
}

impl Charge {
    /// `(dH/dX, dH/dV_{t-1})`.
    fn partials(self) -> (f32, f32) {
        match self {
            Charge::If => (1.0, 1.0),
            Charge::LifDecay0 { tau } | Charge::LifDecay { tau, .. } => (1.0 / tau, 1.0 - 1.0 / tau),
            Charge::LifNoDecay0 { tau, .. } | Charge::LifNoDecay { tau, .. } => (1.0, 1.0 - 1.0 / tau),
            Charge::PlifDecay0 { k } | Charge::PlifDecay { k, .. } => (k, 1.0 - k),
            Charge::PlifNoDecay0 { k } | Charge::PlifNoDecay { k, .. } => (1.0, 1.0 - k),
        }
    }
}

/// Everything the kernels need to know about one neuron layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Dynamics {
    pub charge: Charge,
    pub v_threshold: f32,
    /// `Some`: hard reset to this value; `None`: soft reset.
    pub v_reset: Option<f32>,
    pub detach_reset: bool,
}

impl Dynamics {
    /// `V_0`, and the value every formula uses as `V_reset` (0 under soft reset).
    fn v_rest(&self) -> f32 {
        self.v_reset.unwrap_or(0.0)
    }
}

/// Lets parallel tasks write disjoint ranges of one `[T, numel]` buffer, whose per-chunk
/// pieces (one range per time step) are not contiguous and so cannot be split safely.
#[derive(Clone, Copy)]
struct SharedMut {
    ptr: *mut f32,
    len: usize,
}
// SAFETY: the pointer is only turned into slices through `range`, whose callers guarantee
// disjointness between tasks; the borrow it came from outlives the parallel section.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    fn new(buf: &mut [f32]) -> Self {
        SharedMut { ptr: buf.as_mut_ptr(), len: buf.len() }
    }
    /// SAFETY: no other live slice may overlap `[off, off + n)`.
    #[allow(clippy::mut_from_ref)]
    unsafe fn range(&self, off: usize, n: usize) -> &mut [f32] {
        assert!(off + n <= self.len);
        std::slice::from_raw_parts_mut(self.ptr.add(off), n)
    }
}

/// Runs all steps: writes spikes into `out` and, when given, `H_t` into `h` (both
/// `[T, numel]` like `x`). Returns the number of spikes.
pub(crate) fn forward(d: &Dynamics, x: &[f32], t_len: usize, out: &mut [f32], h: Option<&mut [f32]>) -> u64 {
    assert_eq!(x.len(), out.len());
    if x.is_empty() || t_len == 0 {
        return 0;
    }
    let numel = x.len() / t_len;
    assert_eq!(numel * t_len, x.len());
    let out = SharedMut::new(out);
    let h = h.map(|h| {
        assert_eq!(h.len(), x.len());
        SharedMut::new(h)
    });
    let ctx = FwdCtx { x, t_len, numel, v_th: d.v_threshold, v_rest: d.v_rest(), out, h };
    let hard = d.v_reset.is_some();
    match d.charge {
        Charge::If => ctx.run_reset(hard, |x, v| v + x),
        Charge::LifDecay0 { tau } => ctx.run_reset(hard, move |x, v| v + (x - v) / tau),
        Charge::LifDecay { tau, v_reset } => ctx.run_reset(hard, move |x, v| v + (x - (v - v_reset)) / tau),
        Charge::LifNoDecay0 { keep, .. } => ctx.run_reset(hard, move |x, v| v * keep + x),
        Charge::LifNoDecay { tau, v_reset } => ctx.run_reset(hard, move |x, v| v - (v - v_reset) / tau + x),
        Charge::PlifDecay0 { k } => ctx.run_reset(hard, move |x, v| v + (x - v) * k),
        Charge::PlifDecay { k, v_reset } => ctx.run_reset(hard, move |x, v| v + (x - (v - v_reset)) * k),
        Charge::PlifNoDecay0 { k } => {
            let keep = 1.0 - k;
            ctx.run_reset(hard, move |x, v| v * keep + x)
        }
        Charge::PlifNoDecay { k, v_reset } => ctx.run_reset(hard, move |x, v| v - (v - v_reset) * k + x),
    }
}

struct FwdCtx<'a> {
    x: &'a [f32],
    t_len: usize,
    numel: usize,
    v_th: f32,
    v_rest: f32,
    out: SharedMut,
    h: Option<SharedMut>,
}

impl FwdCtx<'_> {
    fn run_reset<C: Fn(f32, f32) -> f32 + Sync + Copy>(&self, hard: bool, charge: C) -> u64 {
        match (hard, self.h.is_some()) {
            (true, true) => self.run::<C, true, true>(charge),
            (true, false) => self.run::<C, true, false>(charge),
            (false, true) => self.run::<C, false, true>(charge),
            (false, false) => self.run::<C, false, false>(charge),
        }
    }

    fn run<C: Fn(f32, f32) -> f32 + Sync + Copy, const HARD: bool, const STORE: bool>(
        &self,
        charge: C,
    ) -> u64 {
        let (numel, v_th, v_rest) = (self.numel, self.v_th, self.v_rest);
        (0..numel.div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| {
                let i0 = c * CHUNK;
                let n = CHUNK.min(numel - i0);
                let mut v_buf = [v_rest; CHUNK];
                let mut count_buf = [0.0f32; CHUNK];
                let (v, count) = (&mut v_buf[..n], &mut count_buf[..n]);
                for t in 0..self.t_len {
                    let off = t * numel + i0;
                    let xs = &self.x[off..off + n];
                    // SAFETY: chunk c alone touches elements [i0, i0 + n) of every row.
                    let os = unsafe { self.out.range(off, n) };
                    // Zipped iterators carry the equal lengths, so the loop has no bounds
                    // checks and vectorises; the two arms differ only in storing H.
                    macro_rules! step {
                        ($x:expr, $v:expr, $o:expr, $k:expr) => {{
                            let hv = charge($x, *$v);
                            let fired = hv - v_th >= 0.0;
                            let s = if fired { 1.0 } else { 0.0 };
                            *$o = s;
                            *$k += s;
                            *$v = if HARD {
                                if fired {
                                    v_rest
                                } else {
                                    hv
                                }
                            } else {
                                hv - s * v_th
                            };
                            hv
                        }};
                    }
                    let lanes = xs.iter().zip(v.iter_mut()).zip(os.iter_mut()).zip(count.iter_mut());
                    match (STORE, &self.h) {
                        (true, Some(h)) => {
                            // SAFETY: as for `out`.
                            let hs = unsafe { h.range(off, n) };
                            for ((((&x, v), o), k), hslot) in lanes.zip(hs.iter_mut()) {
                                *hslot = step!(x, v, o, k);
                            }
                        }
                        _ => {
                            for (((&x, v), o), k) in lanes {
                                step!(x, v, o, k);
                            }
                        }
                    }
                }
                // Per-element counts are small integers, exact in f32.
                count.iter().map(|&k| k as u64).sum::<u64>()
            })
            .sum()
    }
}

/// Backpropagation through time for one sequence of states: `x`, `h` (`H_t`), `s` (`S_t`) and
/// `gout` (`dL/dS_t`) are `[T, numel]`; `gin` receives `dL/dX_t`. Returns `dL/dw` for PLIF
/// (0 otherwise), which the caller adds to the parameter's gradient.
///
/// `s` is read as a real number, not a flag: the formulas are those of the reset written with
/// `S_t` (`V = H (1 - S) + V_reset S` or `V = H - V_th S`), which also lets tests drive this
/// kernel with a smooth stand-in for the spikes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    d: &Dynamics,
    surrogate: Surrogate,
    x: &[f32],
    h: &[f32],
    s: &[f32],
    gout: &[f32],
    t_len: usize,
    gin: &mut [f32],
) -> f64 {
    let len = x.len();
    assert!(h.len() == len && s.len() == len && gout.len() == len && gin.len() == len);
    if len == 0 || t_len == 0 {
        return 0.0;
    }
    let numel = len / t_len;
    assert_eq!(numel * t_len, len);
    let (ax, av) = d.charge.partials();
    let (plif_k, w_mode) = match d.charge {
        Charge::PlifDecay0 { k } | Charge::PlifDecay { k, .. } => (k, W_DECAY),
        Charge::PlifNoDecay0 { k } | Charge::PlifNoDecay { k, .. } => (k, W_NO_DECAY),
        _ => (0.0, W_NONE),
    };
    let ctx = BwdCtx {
        x,
        h,
        s,
        gout,
        t_len,
        numel,
        v_th: d.v_threshold,
        v_rest: d.v_rest(),
        ax,
        av,
        gin: SharedMut::new(gin),
    };
    let dk = match surrogate {
        Surrogate::Sigmoid { alpha } => ctx.dispatch(SigmoidSg::new(alpha), d, w_mode),
        Surrogate::Atan { alpha } => ctx.dispatch(AtanSg::new(alpha), d, w_mode),
        Surrogate::PiecewiseQuadratic { alpha } => ctx.dispatch(PiecewiseQuadraticSg::new(alpha), d, w_mode),
        Surrogate::SuperSpike { alpha } => ctx.dispatch(SuperSpikeSg::new(alpha), d, w_mode),
    };
    if w_mode == W_NONE {
        0.0
    } else {
        // Chain through k = sigmoid(w): dk/dw = k (1 - k).
        let k = plif_k as f64;
        dk * k * (1.0 - k)
    }
}

const W_NONE: u8 = 0;
const W_DECAY: u8 = 1;
const W_NO_DECAY: u8 = 2;

struct BwdCtx<'a> {
    x: &'a [f32],
    h: &'a [f32],
    s: &'a [f32],
    gout: &'a [f32],
    t_len: usize,
    numel: usize,
    v_th: f32,
    v_rest: f32,
    ax: f32,
    av: f32,
    gin: SharedMut,
}

impl BwdCtx<'_> {
    fn dispatch<G: SgFn>(&self, g: G, d: &Dynamics, w_mode: u8) -> f64 {
        macro_rules! by_w {
            ($hard:literal, $detach:literal) => {
                match w_mode {
                    W_DECAY => self.run::<G, $hard, $detach, W_DECAY>(g),
                    W_NO_DECAY => self.run::<G, $hard, $detach, W_NO_DECAY>(g),
                    _ => self.run::<G, $hard, $detach, W_NONE>(g),
                }
            };
        }
        match (d.v_reset.is_some(), d.detach_reset) {
            (true, true) => by_w!(true, true),
            (true, false) => by_w!(true, false),
            (false, true) => by_w!(false, true),
            (false, false) => by_w!(false, false),
        }
    }

    /// Returns `dL/dk` (PLIF) as the in-order sum of per-chunk partials.
    fn run<G: SgFn, const HARD: bool, const DETACH: bool, const W: u8>(&self, g: G) -> f64 {
        let (numel, v_th, v_rest, ax, av) = (self.numel, self.v_th, self.v_rest, self.ax, self.av);
        let partials: Vec<f64> = (0..numel.div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| {
                let i0 = c * CHUNK;
                let n = CHUNK.min(numel - i0);
                // dL/dV_t flowing back from step t+1; V_T feeds nothing, hence 0.
                let mut gv_buf = [0.0f32; CHUNK];
                let mut wacc_buf = [0.0f32; CHUNK];
                let (gv, wacc) = (&mut gv_buf[..n], &mut wacc_buf[..n]);
                for t in (0..self.t_len).rev() {
                    let off = t * numel + i0;
                    let hs = &self.h[off..off + n];
                    let ss = &self.s[off..off + n];
                    let gos = &self.gout[off..off + n];
                    // SAFETY: chunk c alone touches elements [i0, i0 + n) of every row.
                    let gis = unsafe { self.gin.range(off, n) };
                    // PLIF needs V_{t-1}, rebuilt from the previous step's H and S rather than stored.
                    let (xs, hp, sp): (&[f32], &[f32], &[f32]) = if W != W_NONE && t > 0 {
                        let p = off - numel;
                        (&self.x[off..off + n], &self.h[p..p + n], &self.s[p..p + n])
                    } else if W != W_NONE {
                        (&self.x[off..off + n], &[], &[])
                    } else {
                        (&[], &[], &[])
                    };
                    for i in 0..n {
                        let hv = hs[i];
                        let sv = ss[i];
                        let gvi = gv[i];
                        let sg = g.grad(hv - v_th);
                        // V_t = H_t (1 - S_t) + V_reset S_t  or  V_t = H_t - V_th S_t.
                        let (dv_dh, dv_ds) = if HARD { (1.0 - sv, v_rest - hv) } else { (1.0, -v_th) };
                        let gs = if DETACH { gos[i] } else { gos[i] + gvi * dv_ds };
                        let gh = gvi * dv_dh + gs * sg;
                        gis[i] = gh * ax;
                        gv[i] = gh * av;
                        if W != W_NONE {
                            let v_prev = if t == 0 {
                                v_rest
                            } else if HARD {
                                (1.0 - sp[i]) * hp[i] + sp[i] * v_rest
                            } else {
                                hp[i] - sp[i] * v_th
                            };
                            let dh_dk =
                                if W == W_DECAY { xs[i] - (v_prev - v_rest) } else { -(v_prev - v_rest) };
                            wacc[i] += gh * dh_dk;
                        }
                    }
                }
                if W == W_NONE {
                    0.0
                } else {
                    wacc.iter().map(|&a| a as f64).sum::<f64>()
                }
            })
            .collect();
        partials.iter().sum()
    }
}
