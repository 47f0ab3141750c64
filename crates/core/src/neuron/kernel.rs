//! Fused multi-step neuron kernels over a time-major `[T, numel]` layout.
//!
//! Every element's time loop is independent, so the elements are cut into fixed-size chunks
//! processed in parallel. Inside a chunk they go in register blocks of [`LANES`] elements with
//! the time loop inside: a block's state (`V_t` forward; `dL/dV_t` and the per-element sums
//! backward) stays in registers over all steps, and each step costs only its loads and stores
//! of the `[T, numel]` rows.
//!
//! The chunk size is a constant, not derived from the thread count, so that the PLIF `w`
//! gradient and the fused BN's sums (summed per chunk, then over chunks in order) are
//! bit-identical on any machine.
//!
//! Forward stores nothing for backward: writing `H_t` to memory cost more than the whole
//! spike pass (measured: 2.2 vs 1.0 ns per element and step on the 2-core CI box), so backward
//! recomputes the `H_t` of each group of blocks (bit-identical, same code) into a per-thread
//! scratch just before the group runs back over time, and derives `S_t` from it. That also
//! saves a `[T, N, ...]` buffer per layer.
use super::surrogate::{
    AtanSg, ErfSg, PiecewiseExpSg, PiecewiseLeakyReluSg, PiecewiseQuadraticSg, SgFn, SigmoidSg,
    SoftSignSg, SuperSpikeSg, Surrogate,
};
use crate::kernels::batch_norm::{sum_as_f64, ChannelAffine};
use crate::kernels::connect::connect_in_place;
use crate::kernels::geometry::{ConvGeom, PoolGeom};
use crate::kernels::pool_argmax::{maxpool_2x2_spikes_plane_packed, unpool_plane_packed};
use crate::kernels::spike_conv::{conv2d_forward_spikes_by_time, EventBudget, StepSink};
use crate::kernels::tasks::{map_tasks, sum_tasks};
use crate::kernels::transpose::cells_to_planes;
use crate::spec::Connect;
use std::sync::atomic::{AtomicU64, Ordering};

#[doc(hidden)]
pub mod window;

/// Elements per parallel task (and per partial sum of the PLIF gradient).
#[doc(hidden)]
pub const CHUNK: usize = 1024;

/// The charge equation, written in the same operation order as SpikingJelly's so that a
/// membrane potential landing exactly on the threshold fires in both engines.
#[derive(Clone, Copy, Debug, PartialEq)]
#[doc(hidden)]
pub enum Charge {
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
            Charge::LifDecay0 { tau } | Charge::LifDecay { tau, .. } => {
                (1.0 / tau, 1.0 - 1.0 / tau)
            }
            Charge::LifNoDecay0 { tau, .. } | Charge::LifNoDecay { tau, .. } => {
                (1.0, 1.0 - 1.0 / tau)
            }
            Charge::PlifDecay0 { k } | Charge::PlifDecay { k, .. } => (k, 1.0 - k),
            Charge::PlifNoDecay0 { k } | Charge::PlifNoDecay { k, .. } => (1.0, 1.0 - k),
        }
    }
}

/// Everything the kernels need to know about one neuron layer.
#[derive(Clone, Copy, Debug, PartialEq)]
#[doc(hidden)]
pub struct Dynamics {
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
struct SharedMut<T = f32> {
    ptr: *mut T,
    len: usize,
}
// SAFETY: the pointer is only turned into slices through `range`, whose callers guarantee
// disjointness between tasks; the borrow it came from outlives the parallel section.
unsafe impl<T: Send> Send for SharedMut<T> {}
// SAFETY: as for Send: tasks write disjoint ranges only.
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    #[doc(hidden)]
    pub fn new(buf: &mut [T]) -> Self {
        SharedMut { ptr: buf.as_mut_ptr(), len: buf.len() }
    }
    /// The elements `[off, off + n)` of the buffer.
    ///
    /// # Safety
    /// No other live slice may overlap `[off, off + n)`.
    #[allow(clippy::mut_from_ref)]
    unsafe fn range(&self, off: usize, n: usize) -> &mut [T] {
        // SAFETY: in bounds by the assert; the caller keeps other slices off this range.
        unsafe {
            assert!(off + n <= self.len);
            std::slice::from_raw_parts_mut(self.ptr.add(off), n)
        }
    }
}

/// A fused BN's channels tile a time step of `numel` elements (channel-major planes of `hw`).
pub(super) fn check_bn_layout(bn: Option<&ChannelAffine>, numel: usize) {
    if let Some(bn) = bn {
        assert_eq!(numel % (bn.scale.len() * bn.hw), 0, "BN channels x HW must divide a time step");
    }
}

/// Runs all steps, writing spikes into `out` (`[T, numel]` like `x`). Returns the number of
/// spikes.
#[doc(hidden)]
pub fn forward(d: &Dynamics, x: &[f32], t_len: usize, out: &mut [f32]) -> u64 {
    forward_impl(d, x, None, t_len, out)
}

/// [`forward`] on `bn.apply(x)` (a BN's output) computed on the fly, element by element with
/// [`ChannelAffine::apply`], so the spikes are bit-identical to BN's `affine` pass followed by
/// [`forward`], but the BN output is never written to memory. `x` is `[T, N, C, HW]`.
#[doc(hidden)]
pub fn forward_bn(
    d: &Dynamics,
    x: &[f32],
    bn: ChannelAffine,
    t_len: usize,
    out: &mut [f32],
) -> u64 {
    forward_impl(d, x, Some(bn), t_len, out)
}

/// Calls `f(a, b, c)` for each run `[a, b)` of the chunk's elements `[i0, i0 + n)` (counted
/// from `i0`) that lie in one BN channel `c`; without a BN, once for the whole chunk.
#[inline(always)]
fn for_runs(
    bn: Option<&ChannelAffine>,
    i0: usize,
    n: usize,
    mut f: impl FnMut(usize, usize, usize),
) {
    // One call site, so that `f` is inlined into (and compiled for the instruction set of)
    // the kernel that calls this: a closure compiled on its own gets only the baseline SSE2.
    let mut a = 0;
    while a < n {
        let (b, c) = match bn {
            Some(bn) => ((((i0 + a) / bn.hw + 1) * bn.hw - i0).min(n), bn.channel(i0 + a)),
            None => (n, 0),
        };
        f(a, b, c);
        a = b;
    }
}

/// [`forward`] (with `bn`: [`forward_bn`]) on an input whose time steps are all `x`
/// (`[numel]`, a static input repeated over `t_len` steps, e.g. a conv of a directly encoded
/// image): `x` is read, not copied.
#[doc(hidden)]
pub fn forward_repeated(
    d: &Dynamics,
    x: &[f32],
    bn: Option<ChannelAffine>,
    t_len: usize,
    out: &mut [f32],
) -> u64 {
    assert_eq!(x.len() * t_len, out.len());
    if x.is_empty() || t_len == 0 {
        return 0;
    }
    check_bn_layout(bn.as_ref(), x.len());
    let out = Sink::Spikes(SharedMut::new(out));
    with_charge(d, Spikes { x, bn, t_len, numel: x.len(), x_step: 0, consts: Consts::of(d), out })
}

fn forward_impl(
    d: &Dynamics,
    x: &[f32],
    bn: Option<ChannelAffine>,
    t_len: usize,
    out: &mut [f32],
) -> u64 {
    assert_eq!(x.len(), out.len());
    if x.is_empty() || t_len == 0 {
        return 0;
    }
    let numel = x.len() / t_len;
    assert_eq!(numel * t_len, x.len());
    check_bn_layout(bn.as_ref(), numel);
    let out = Sink::Spikes(SharedMut::new(out));
    with_charge(d, Spikes { x, bn, t_len, numel, x_step: numel, consts: Consts::of(d), out })
}

/// `H_t` for all steps into `h` (`[T, numel]`), e.g. to inspect membrane potentials.
pub(crate) fn charge_trace(d: &Dynamics, x: &[f32], t_len: usize, h: &mut [f32]) {
    assert_eq!(x.len(), h.len());
    if x.is_empty() || t_len == 0 {
        return;
    }
    let numel = x.len() / t_len;
    let out = Sink::Charge(SharedMut::new(h));
    with_charge(d, Spikes { x, bn: None, t_len, numel, x_step: numel, consts: Consts::of(d), out });
}

#[derive(Clone, Copy)]
struct Consts {
    v_th: f32,
    v_rest: f32,
}

impl Consts {
    fn of(d: &Dynamics) -> Self {
        Consts { v_th: d.v_threshold, v_rest: d.v_rest() }
    }
}

/// Something to run with the charge equation and reset kind as compile-time parameters.
trait WithCharge {
    type Out;
    fn run<C: Fn(f32, f32) -> f32 + Copy + Send + Sync + 'static, const HARD: bool>(
        self,
        charge: C,
    ) -> Self::Out;
}

fn with_charge<V: WithCharge>(d: &Dynamics, v: V) -> V::Out {
    fn reset<V: WithCharge, C: Fn(f32, f32) -> f32 + Copy + Send + Sync + 'static>(
        hard: bool,
        v: V,
        c: C,
    ) -> V::Out {
        if hard {
            v.run::<C, true>(c)
        } else {
            v.run::<C, false>(c)
        }
    }
    let hard = d.v_reset.is_some();
    match d.charge {
        Charge::If => reset(hard, v, |x, v| v + x),
        // Dividing by a power of two and multiplying by its reciprocal round the same exact
        // value, so they give the same bits; the division's latency (3-4 times a multiply's)
        // bounded the register-blocked loops, whose chain over time runs through it.
        Charge::LifDecay0 { tau } => match exact_reciprocal(tau) {
            Some(r) => reset(hard, v, move |x, v| v + (x - v) * r),
            None => reset(hard, v, move |x, v| v + (x - v) / tau),
        },
        Charge::LifDecay { tau, v_reset } => match exact_reciprocal(tau) {
            Some(r) => reset(hard, v, move |x, v| v + (x - (v - v_reset)) * r),
            None => reset(hard, v, move |x, v| v + (x - (v - v_reset)) / tau),
        },
        Charge::LifNoDecay0 { keep, .. } => reset(hard, v, move |x, v| v * keep + x),
        Charge::LifNoDecay { tau, v_reset } => match exact_reciprocal(tau) {
            Some(r) => reset(hard, v, move |x, v| v - (v - v_reset) * r + x),
            None => reset(hard, v, move |x, v| v - (v - v_reset) / tau + x),
        },
        Charge::PlifDecay0 { k } => reset(hard, v, move |x, v| v + (x - v) * k),
        Charge::PlifDecay { k, v_reset } => reset(hard, v, move |x, v| v + (x - (v - v_reset)) * k),
        Charge::PlifNoDecay0 { k } => {
            let keep = 1.0 - k;
            reset(hard, v, move |x, v| v * keep + x)
        }
        Charge::PlifNoDecay { k, v_reset } => reset(hard, v, move |x, v| v - (v - v_reset) * k + x),
    }
}

/// `1 / tau` where it is exact (`tau` a power of two, both normal numbers): then `a / tau` and
/// `a * (1 / tau)` are the same correctly rounded value for every `a`.
fn exact_reciprocal(tau: f32) -> Option<f32> {
    let r = 1.0 / tau;
    (tau.is_normal() && tau.to_bits() & 0x007f_ffff == 0 && r.is_normal()).then_some(r)
}

/// What a forward writes into its `[T, numel]` output: spikes, or `H_t` (to inspect).
#[derive(Clone, Copy)]
enum Sink {
    Spikes(SharedMut),
    Charge(SharedMut),
}

/// One time step of one neuron (charge, fire, reset), the only place the equations of the
/// forward live: returns `(H_t, S_t)` and leaves `V_t` in `v`.
#[inline(always)]
fn neuron_step<C: Fn(f32, f32) -> f32, const HARD: bool>(
    charge: &C,
    v_th: f32,
    v_rest: f32,
    x: f32,
    v: &mut f32,
) -> (f32, f32) {
    let hv = charge(x, *v);
    let fired = hv - v_th >= 0.0;
    let s = if fired { 1.0f32 } else { 0.0 };
    *v = if HARD {
        if fired {
            v_rest
        } else {
            hv
        }
    } else {
        hv - s * v_th
    };
    (hv, s)
}

/// The forward time loop over elements `[i0, i0 + n)`; returns the spike count. The elements
/// go in blocks of [`LANES`] whose membrane potentials stay in registers over all `T` steps
/// (the rest one at a time), so each step costs one load of `x` and one store. Element `e`
/// of step `t` goes to `sink[t * dst_stride + e - dst_origin]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn chunk_forward<C: Fn(f32, f32) -> f32, const HARD: bool>(
    charge: C,
    k: Consts,
    x: &[f32],
    t_len: usize,
    dst_stride: usize,
    dst_origin: usize,
    x_step: usize,
    i0: usize,
    n: usize,
    bn: Option<&ChannelAffine>,
    sink: Sink,
) -> u64 {
    let (dst, spikes) = match sink {
        Sink::Spikes(out) => (out, true),
        Sink::Charge(h) => (h, false),
    };
    let rows = BlockRows { x, t_len, x_step, dst, stride: dst_stride };
    let i0d = i0 - dst_origin;
    macro_rules! blocks {
        ($bn:literal, $spikes:literal) => {{
            let mut planes = bn.map(|bn| PlaneCursor::at(bn, i0));
            let (mut count, mut count_one) = ([0.0f32; LANES], [0.0f32; 1]);
            let whole = n - n % LANES;
            for j in (0..whole).step_by(LANES) {
                let (sc, sh, _) = lanes_of::<LANES>(bn, None, &mut planes);
                block_forward::<C, HARD, $bn, $spikes, LANES>(
                    &charge,
                    k,
                    &rows,
                    &sc,
                    &sh,
                    i0 + j,
                    i0d + j,
                    &mut count,
                );
            }
            for j in whole..n {
                let (sc, sh, _) = lanes_of::<1>(bn, None, &mut planes);
                block_forward::<C, HARD, $bn, $spikes, 1>(
                    &charge,
                    k,
                    &rows,
                    &sc,
                    &sh,
                    i0 + j,
                    i0d + j,
                    &mut count_one,
                );
            }
            // Per-lane counts are small integers (at most T per element of the chunk): their
            // f32 sums are exact. Integer lanes, so the sum vectorises.
            count.iter().map(|&c| c as u32 as u64).sum::<u64>() + count_one[0] as u64
        }};
    }
    match (bn.is_some(), spikes) {
        (true, true) => blocks!(true, true),
        (true, false) => blocks!(true, false),
        (false, true) => blocks!(false, true),
        (false, false) => blocks!(false, false),
    }
}

/// Elements per register block of the neuron loops. With T inside, a block's state
/// (`V_t`; backward `dL/dV_t` and the BN sums) stays in registers instead of making a round
/// trip through a chunk-sized array at every step; 32 lanes give the out-of-order core enough
/// independent work beside each lane's serial chain over time.
const LANES: usize = 32;

/// Where a forward block reads (`x[t * x_step + e ..]`) and writes (`dst[t * stride + d ..]`).
struct BlockRows<'a> {
    x: &'a [f32],
    t_len: usize,
    x_step: usize,
    dst: SharedMut,
    stride: usize,
}

/// Walks the planes of a BN's `[B, C, HW]` layout block after block, so that each lane's
/// channel costs no division.
struct PlaneCursor {
    /// The channel of the next element, and how many elements of its plane are left.
    c: usize,
    left: usize,
}

impl PlaneCursor {
    fn at(bn: &ChannelAffine, e: usize) -> Self {
        PlaneCursor { c: bn.channel(e), left: bn.hw - e % bn.hw }
    }
}

/// Each lane's BN scale, shift and mean (when given) for the next `LW` elements of `planes`
/// (identity without a BN); a block may straddle planes.
#[inline(always)]
fn lanes_of<const LW: usize>(
    bn: Option<&ChannelAffine>,
    mean: Option<&[f32]>,
    planes: &mut Option<PlaneCursor>,
) -> ([f32; LW], [f32; LW], [f32; LW]) {
    let (Some(bn), Some(p)) = (bn, planes.as_mut()) else {
        return ([1.0; LW], [0.0; LW], [0.0; LW]);
    };
    let pick = |c: usize| (bn.scale[c], bn.shift[c], mean.map_or(0.0, |m| m[c]));
    let channels = bn.scale.len();
    if bn.hw == 1 && p.c + LW <= channels {
        // Channels last (planes of one value): the lanes are `LW` consecutive channels.
        let lanes_at = |v: &[f32]| -> [f32; LW] { v[p.c..p.c + LW].try_into().unwrap() };
        let lanes = (lanes_at(bn.scale), lanes_at(bn.shift), mean.map_or([0.0; LW], lanes_at));
        p.c = if p.c + LW == channels { 0 } else { p.c + LW };
        return lanes;
    }
    let lanes = if p.left >= LW {
        p.left -= LW;
        let (a, b, m) = pick(p.c);
        ([a; LW], [b; LW], [m; LW])
    } else {
        let (mut sc, mut sh, mut mu) = ([0.0; LW], [0.0; LW], [0.0; LW]);
        for l in 0..LW {
            if p.left == 0 {
                p.c = (p.c + 1) % bn.scale.len();
                p.left = bn.hw;
            }
            (sc[l], sh[l], mu[l]) = pick(p.c);
            p.left -= 1;
        }
        (sc, sh, mu)
    };
    // Stepped onto the next plane.
    if p.left == 0 {
        p.c = (p.c + 1) % bn.scale.len();
        p.left = bn.hw;
    }
    lanes
}

/// One block of `LW` elements (from `e` in `x`, from `d` in `dst`) through all steps: spikes
/// (`SPIKES`, counted into `count`) or `H_t` into the rows of `r.dst`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block_forward<
    C: Fn(f32, f32) -> f32,
    const HARD: bool,
    const BN: bool,
    const SPIKES: bool,
    const LW: usize,
>(
    charge: &C,
    k: Consts,
    r: &BlockRows,
    sc: &[f32; LW],
    sh: &[f32; LW],
    e: usize,
    d: usize,
    count: &mut [f32; LW],
) {
    let Consts { v_th, v_rest } = k;
    let mut v = [v_rest; LW];
    // Both streams' rows are checked once here, not at every step.
    let xr = RowsOf::of(r.x, e, r.x_step);
    xr.check(r.t_len, LW);
    let dst = RowsOf::shared(r.dst, d, r.stride);
    dst.check(r.t_len, LW);
    for t in 0..r.t_len {
        // SAFETY: checked above.
        let xs = unsafe { xr.lanes::<LW>(t) };
        // The lanes work on local arrays (the output is written after them): through the
        // shared pointer the loop could not be shown free of aliasing and ran scalar.
        let mut os = [0.0f32; LW];
        for l in 0..LW {
            let xin = if BN { ChannelAffine::apply(xs[l], sc[l], sh[l]) } else { xs[l] };
            let (hv, s) = neuron_step::<C, HARD>(charge, v_th, v_rest, xin, &mut v[l]);
            os[l] = if SPIKES { s } else { hv };
            if SPIKES {
                count[l] += s;
            }
        }
        // SAFETY: checked above; these elements belong to this task alone, in every row.
        unsafe { dst.store(t, os) };
    }
}

/// Which copy of the time loops runs: SSE (the baseline), AVX2 (8 lanes instead of 4) or
/// AVX-512 (twice the vector registers, so a block's backward state, four arrays of 32 lanes,
/// does not spill to the stack). All are the same Rust code without FMA contraction, so they
/// give the same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Width {
    Sse,
    Avx2,
    Avx512,
}

impl Width {
    /// The widest copy this CPU runs and [`WIDEST`] allows, read once per kernel call and
    /// handed to its tasks.
    fn widest() -> Width {
        #[cfg(target_arch = "x86_64")]
        {
            use crate::kernels::simd::{has, Feature};
            let widest = WIDEST.load(std::sync::atomic::Ordering::Relaxed);
            if widest == WIDEST_ANY && has(Feature::Avx512f) && has(Feature::Avx512vl) {
                return Width::Avx512;
            }
            if widest != WIDEST_SSE && has(Feature::Avx2) {
                return Width::Avx2;
            }
        }
        Width::Sse
    }

    /// Whether the AVX2 copy may run (an AVX-512 CPU has AVX2).
    fn avx2(self) -> bool {
        self != Width::Sse
    }
}

/// Tests: the widest copy of the loops allowed to run ([`WIDEST_ANY`], [`WIDEST_AVX2`] or
/// [`WIDEST_SSE`]), so each copy can be checked on a CPU that has them all. Global (the loops
/// run on rayon's threads); changing it cannot disturb other tests, since every copy must give
/// the same bits.
#[doc(hidden)]
pub static WIDEST: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(WIDEST_ANY);
#[doc(hidden)]
pub const WIDEST_ANY: u8 = 0;
#[doc(hidden)]
pub const WIDEST_AVX2: u8 = 1;
#[doc(hidden)]
pub const WIDEST_SSE: u8 = 2;

/// Defines `$avx512` and `$avx2` (methods with `self` first): `$body` compiled for AVX-512 and
/// for AVX2, for generic functions, which `kernels::simd::multiversion` does not take. Callers
/// pick one by [`Width`].
macro_rules! wide_copies {
    ($avx512:ident, $avx2:ident, [$($generics:tt)*], $body:ident::<$($targ:tt),*>($($a:ident: $t:ty),*) $(-> $ret:ty)?) => {
        /// # Safety
        /// Only call where [`Width::widest`] is AVX-512.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512vl,avx2")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $avx512<$($generics)*>($($a: $t),*) $(-> $ret)? {
            $body::<$($targ),*>($($a),*)
        }

        /// # Safety
        /// Only call where [`Width::avx2`] holds.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $avx2<$($generics)*>($($a: $t),*) $(-> $ret)? {
            $body::<$($targ),*>($($a),*)
        }
    };
    (self $avx512:ident, $avx2:ident, [$($generics:tt)*], $body:ident::<$($targ:tt),*>($($a:ident: $t:ty),*) $(-> $ret:ty)?) => {
        /// # Safety
        /// Only call where [`Width::widest`] is AVX-512.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512vl,avx2")]
        unsafe fn $avx512<$($generics)*>(&self, $($a: $t),*) $(-> $ret)? {
            self.$body::<$($targ),*>($($a),*)
        }

        /// # Safety
        /// Only call where [`Width::avx2`] holds.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn $avx2<$($generics)*>(&self, $($a: $t),*) $(-> $ret)? {
            self.$body::<$($targ),*>($($a),*)
        }
    };
}

wide_copies!(chunk_forward_avx512, chunk_forward_avx2, [C: Fn(f32, f32) -> f32, const HARD: bool], chunk_forward::<C, HARD>(
    charge: C, k: Consts, x: &[f32], t_len: usize, dst_stride: usize, dst_origin: usize, x_step: usize, i0: usize, n: usize, bn: Option<&ChannelAffine>, sink: Sink
) -> u64);

/// [`chunk_forward`] through its `width` copy.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn chunk_forward_dispatch<C: Fn(f32, f32) -> f32, const HARD: bool>(
    charge: C,
    k: Consts,
    x: &[f32],
    t_len: usize,
    dst_stride: usize,
    dst_origin: usize,
    x_step: usize,
    i0: usize,
    n: usize,
    bn: Option<&ChannelAffine>,
    sink: Sink,
    width: Width,
) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if width == Width::Avx512 {
        // SAFETY: AVX-512 was detected.
        return unsafe {
            chunk_forward_avx512::<C, HARD>(
                charge, k, x, t_len, dst_stride, dst_origin, x_step, i0, n, bn, sink,
            )
        };
    }
    #[cfg(target_arch = "x86_64")]
    if width.avx2() {
        // SAFETY: AVX2 was detected.
        return unsafe {
            chunk_forward_avx2::<C, HARD>(
                charge, k, x, t_len, dst_stride, dst_origin, x_step, i0, n, bn, sink,
            )
        };
    }
    chunk_forward::<C, HARD>(charge, k, x, t_len, dst_stride, dst_origin, x_step, i0, n, bn, sink)
}

struct Spikes<'a> {
    x: &'a [f32],
    bn: Option<ChannelAffine<'a>>,
    t_len: usize,
    numel: usize,
    /// Distance between `x`'s time steps: `numel`, or 0 for one step repeated.
    x_step: usize,
    consts: Consts,
    out: Sink,
}

impl WithCharge for Spikes<'_> {
    type Out = u64;
    fn run<C: Fn(f32, f32) -> f32 + Copy + Send + Sync + 'static, const HARD: bool>(
        self,
        charge: C,
    ) -> u64 {
        let Spikes { x, bn, t_len, numel, x_step, consts, out } = self;
        let width = Width::widest();
        sum_tasks(numel.div_ceil(CHUNK), &|c| {
            let i0 = c * CHUNK;
            let n = CHUNK.min(numel - i0);
            chunk_forward_dispatch::<C, HARD>(
                charge,
                consts,
                x,
                t_len,
                numel,
                0,
                x_step,
                i0,
                n,
                bn.as_ref(),
                out,
                width,
            )
        })
    }
}

/// [`forward_bn`] (or [`forward_repeated`] with a BN, `x_step` 0) followed by a 2x2, stride-2
/// max pool over each `[H, W]` plane (`pool`), the spikes never leaving cache: groups of
/// whole planes run through the neuron into a per-thread scratch, which is pooled at once.
/// Writes the pooled spikes into `out` (`[T, planes, OH, OW]`) and each window's argmax
/// (packed, as [`crate::kernels::pool_argmax::maxpool2d_forward_packed`] gives it) into `argmax`:
/// the same values as the two passes. Returns the number of spikes before pooling.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_bn_pooled(
    d: &Dynamics,
    x: &[f32],
    bn: ChannelAffine,
    t_len: usize,
    x_step: usize,
    pool: &PoolGeom,
    out: &mut [f32],
    argmax: &mut [u8],
) -> u64 {
    let (hw, ohw) = (pool.h * pool.w, pool.oh * pool.ow);
    let numel = if x_step == 0 { x.len() } else { x.len() / t_len.max(1) };
    assert!(x_step == 0 || x_step == numel);
    assert_eq!(numel % hw, 0, "forward_bn_pooled: planes of {hw}");
    assert!(pool.kernel == [2, 2] && pool.stride == [2, 2] && pool.padding == [0, 0]);
    check_bn_layout(Some(&bn), numel);
    assert!(out.len() == t_len * (numel / hw) * ohw && argmax.len() == out.len());
    if numel == 0 || t_len == 0 {
        return 0;
    }
    let run = PooledSpikes {
        x,
        bn,
        t_len,
        numel,
        x_step,
        pool: *pool,
        consts: Consts::of(d),
        out: SharedMut::new(out),
        argmax: argmax.as_mut_ptr() as usize,
    };
    with_charge(d, run)
}

struct PooledSpikes<'a> {
    x: &'a [f32],
    bn: ChannelAffine<'a>,
    t_len: usize,
    numel: usize,
    x_step: usize,
    pool: PoolGeom,
    consts: Consts,
    out: SharedMut,
    /// Address of the `[T, planes, OH, OW]` argmax array (written like `out`, by plane groups).
    argmax: usize,
}

impl WithCharge for PooledSpikes<'_> {
    type Out = u64;
    fn run<C: Fn(f32, f32) -> f32 + Copy + Send + Sync + 'static, const HARD: bool>(
        self,
        charge: C,
    ) -> u64 {
        let PooledSpikes { x, bn, t_len, numel, x_step, pool, consts, out, argmax } = self;
        let (hw, ohw) = (pool.h * pool.w, pool.oh * pool.ow);
        let planes = numel / hw;
        let group = planes_per_block_multiple(hw).min(planes);
        let pooled_step = planes * ohw;
        let width = Width::widest();
        sum_tasks(planes.div_ceil(group), &|gi| {
            let p0 = gi * group;
            let gp = group.min(planes - p0);
            let len = gp * hw;
            POOL_SCRATCH.with(|cell| {
                // No rayon call happens inside, so this thread cannot re-enter here.
                let mut scratch = cell.borrow_mut();
                if scratch.len() < t_len * len {
                    scratch.resize(t_len * len, 0.0);
                }
                let scratch = &mut scratch[..t_len * len];
                let sink = Sink::Spikes(SharedMut::new(scratch));
                let i0 = p0 * hw;
                let spikes = chunk_forward_dispatch::<C, HARD>(
                    charge,
                    consts,
                    x,
                    t_len,
                    len,
                    i0,
                    x_step,
                    i0,
                    len,
                    Some(&bn),
                    sink,
                    width,
                );
                for t in 0..t_len {
                    for q in 0..gp {
                        let at = t * pooled_step + (p0 + q) * ohw;
                        // SAFETY: the pooled planes p0..p0 + gp of every step belong to this
                        // task alone; `argmax` has `out`'s length (asserted by the caller).
                        let (ys, am) = unsafe {
                            (
                                out.range(at, ohw),
                                std::slice::from_raw_parts_mut((argmax as *mut u8).add(at), ohw),
                            )
                        };
                        maxpool_2x2_spikes_plane_packed(
                            &pool,
                            &scratch[t * len + q * hw..][..hw],
                            ys,
                            am,
                        );
                    }
                }
                spikes
            })
        })
    }
}

/// The fewest whole `[H, W]` planes (`hw` elements each) that fill register blocks exactly
/// (one plane of 28x28 does not): the unit of work of the pooled passes, whose tasks must
/// hold whole pooling windows.
fn planes_per_block_multiple(hw: usize) -> usize {
    fn gcd(a: usize, b: usize) -> usize {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    LANES / gcd(hw, LANES)
}

/// Inference: the neuron layer run on `conv(x, weight) + bias` for a binary `[T, N, C_in, H, W]`
/// spike input, through the event-driven convolution of `crate::kernels::spike_conv`, each
/// sample's pre-activation consumed in cache (never written); spikes into `out`
/// (`[T, N, C_out, OH, OW]`), bit-identical to the convolution's output fed to [`forward`].
/// With `join = Some((g, o))` (`o` shaped as `out`), `out` gets a residual block's output
/// `g(spikes, o)` instead of the spikes, each sample joined while it is in L2: the block's join
/// then needs no pass of its own over the spikes, the shortcut and its output.
/// Returns the number of spikes (before any join) and the sum of `out` when joined, or None
/// (`out` unfinished) if `x` proved unfit for the event kernel by `budget`.
#[allow(clippy::too_many_arguments)]
#[doc(hidden)]
pub fn forward_conv_events(
    d: &Dynamics,
    g: &ConvGeom,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    t_len: usize,
    out: &mut [f32],
    budget: &EventBudget,
    join: Option<(Connect, &[f32])>,
) -> Option<(u64, Option<f64>)> {
    let batch = x.len() / g.in_size();
    assert_eq!(out.len(), batch * g.out_size(), "forward_conv_events: output length");
    let bias = bias.map_or_else(|| vec![0.0; g.c_out], <[f32]>::to_vec);
    assert_eq!(bias.len(), g.c_out, "forward_conv_events: bias length");
    if let Some((_, o)) = join {
        assert_eq!(o.len(), out.len(), "forward_conv_events: shortcut length");
    }
    // One slot per sample, summed in sample order afterwards: the same total on any thread count.
    let sums: Vec<AtomicU64> =
        if join.is_some() { (0..batch).map(|_| AtomicU64::new(0)).collect() } else { Vec::new() };
    let join = join.map(|(connect, shortcut)| SampleJoin { connect, shortcut, sums: &sums });
    let spikes = with_charge(
        d,
        ConvSpikes {
            g,
            x,
            weight,
            bias,
            t_len,
            consts: Consts::of(d),
            out: SharedMut::new(out),
            budget,
            join,
        },
    )?;
    let joined = join.map(|_| sums.iter().map(|s| f64::from_bits(s.load(Ordering::Relaxed))).sum());
    Some((spikes, joined))
}

/// A residual join applied to each sample the sink writes (see [`forward_conv_events`]).
#[derive(Clone, Copy)]
struct SampleJoin<'a> {
    connect: Connect,
    /// The shortcut, laid out as the output.
    shortcut: &'a [f32],
    /// Per sample, the sum of its joined output (f64 bits).
    sums: &'a [AtomicU64],
}

struct ConvSpikes<'a> {
    g: &'a ConvGeom,
    x: &'a [f32],
    weight: &'a [f32],
    bias: Vec<f32>,
    t_len: usize,
    consts: Consts,
    out: SharedMut,
    budget: &'a EventBudget,
    join: Option<SampleJoin<'a>>,
}

impl WithCharge for ConvSpikes<'_> {
    type Out = Option<u64>;
    fn run<C: Fn(f32, f32) -> f32 + Copy + Send + Sync + 'static, const HARD: bool>(
        self,
        charge: C,
    ) -> Option<u64> {
        let ConvSpikes { g, x, weight, bias, t_len, consts, out, budget, join } = self;
        let n_len = x.len() / g.in_size() / t_len.max(1);
        let avx2 = Width::widest().avx2();
        let sink = GridNeuron::<C, HARD> {
            charge,
            consts,
            bias,
            oh: g.oh,
            ow: g.ow,
            n_len,
            out,
            join,
            avx2,
        };
        conv2d_forward_spikes_by_time(g, x, weight, t_len, &sink, budget)
    }
}

/// The neuron as a [`StepSink`]: membrane potentials per batch index in the grid's
/// channels-last order, so the step runs over contiguous vectors; the spikes go back into the
/// grid and from there to the NCHW output.
struct GridNeuron<'a, C, const HARD: bool> {
    charge: C,
    consts: Consts,
    bias: Vec<f32>,
    oh: usize,
    ow: usize,
    n_len: usize,
    out: SharedMut,
    join: Option<SampleJoin<'a>>,
    /// The step runs its AVX2 copy.
    avx2: bool,
}

impl<C: Fn(f32, f32) -> f32 + Copy + Send + Sync, const HARD: bool> StepSink
    for GridNeuron<'_, C, HARD>
{
    type State = Vec<f32>;
    fn state(&self) -> Vec<f32> {
        vec![self.consts.v_rest; self.oh * self.ow * self.bias.len()]
    }
    fn step(&self, v: &mut Vec<f32>, t: usize, n: usize, grid: &mut [f32], pitch: usize) -> u64 {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: AVX2 was detected.
            return unsafe { self.step_avx2(v, t, n, grid, pitch) };
        }
        self.step_body(v, t, n, grid, pitch)
    }
}

impl<C: Fn(f32, f32) -> f32 + Copy + Send + Sync, const HARD: bool> GridNeuron<'_, C, HARD> {
    /// # Safety
    /// Only call when `self.avx2`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn step_avx2(
        &self,
        v: &mut [f32],
        t: usize,
        n: usize,
        grid: &mut [f32],
        pitch: usize,
    ) -> u64 {
        self.step_body(v, t, n, grid, pitch)
    }

    #[inline(always)]
    fn step_body(&self, v: &mut [f32], t: usize, n: usize, grid: &mut [f32], pitch: usize) -> u64 {
        let Consts { v_th, v_rest } = self.consts;
        let (c_out, oh, ow) = (self.bias.len(), self.oh, self.ow);
        let ohw = oh * ow;
        let sample = t * self.n_len + n;
        // SAFETY: sample (t, n) belongs to this batch index's task alone.
        let dst = unsafe { self.out.range(sample * c_out * ohw, c_out * ohw) };
        // An integer count: a running f32 sum would keep the loop from vectorising.
        let mut count = 0u32;
        // Row by row, so that the transposition to NCHW reads a row of the grid still in L1.
        for oy in 0..oh {
            let row = &mut grid[oy * (ow + 1) * pitch..][..ow * pitch];
            for (ox, cell) in row.chunks_exact_mut(pitch).enumerate() {
                let vs = &mut v[(oy * ow + ox) * c_out..][..c_out];
                for ((g, v), &b) in cell[..c_out].iter_mut().zip(vs.iter_mut()).zip(&self.bias) {
                    let (_, s) = neuron_step::<C, HARD>(&self.charge, v_th, v_rest, *g + b, v);
                    *g = s;
                    count += (s != 0.0) as u32;
                }
            }
            cells_to_planes(row, pitch, ow, c_out, None, &mut dst[oy * ow..], ohw);
            row.fill(0.0);
        }
        if let Some(j) = &self.join {
            // The whole sample at once, while it is in L2 (512 KB at 64x64 with 32 channels):
            // one sequential stream each, where joining row by row read the shortcut as one
            // stream per channel and made calls too short to vectorise on small maps.
            let joined = connect_in_place(
                j.connect,
                dst,
                &j.shortcut[sample * c_out * ohw..][..c_out * ohw],
            );
            j.sums[sample].store(joined.to_bits(), Ordering::Relaxed);
        }
        count as u64
    }
}

/// Recomputes the `H_t` of a group of backward blocks: `(x, t_len, x_step, e, n, bn,
/// scratch)` writes those of the `n` elements from `e` into `scratch` (`[T, n]`) through the
/// forward's own code ([`chunk_forward`]), with the BN's affine when fused. One call per group
/// of blocks, not per block: the call and the forward's set-up are paid once per group.
type RecomputeFn = Box<
    dyn Fn(&[f32], usize, usize, usize, usize, Option<&ChannelAffine>, &mut [f32]) + Send + Sync,
>;

struct Recompute {
    consts: Consts,
    width: Width,
}

impl WithCharge for Recompute {
    type Out = RecomputeFn;
    fn run<C: Fn(f32, f32) -> f32 + Copy + Send + Sync + 'static, const HARD: bool>(
        self,
        charge: C,
    ) -> RecomputeFn {
        let (consts, width) = (self.consts, self.width);
        Box::new(move |x, t_len, x_step, e, n, bn, scratch| {
            assert_eq!(scratch.len(), t_len * n);
            let sink = Sink::Charge(SharedMut::new(scratch));
            chunk_forward_dispatch::<C, HARD>(
                charge, consts, x, t_len, n, e, x_step, e, n, bn, sink, width,
            );
        })
    }
}

thread_local! {
    /// Per-thread spikes of one plane group of [`forward_bn_pooled`], before pooling.
    static POOL_SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Per-thread backward scratch, kept across calls: a chunk's per-element sums, then a
    /// group's `[T, group]` charges (and a pooled chunk's expanded gradient).
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The chunk records of a backward call ([`BwdCtx::partials`]), on the calling thread.
    static PARTIALS: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Backpropagation through time: `x` and `gout` (`dL/dS_t`) are `[T, numel]`; `gin` receives
/// `dL/dX_t`. Returns `dL/dw` for PLIF (0 otherwise), which the caller adds to the
/// parameter's gradient. `H_t` and `S_t` are recomputed from `x`.
#[doc(hidden)]
pub fn backward(
    d: &Dynamics,
    surrogate: Surrogate,
    x: &[f32],
    gout: &[f32],
    t_len: usize,
    gin: &mut [f32],
) -> f64 {
    backward_impl(d, surrogate, x, None, None, Some(gout), None, t_len, false, gin)
}

/// What the backward of a fused BN + neuron pair needs of the BN (the affine and mean its
/// forward used), and where it leaves the BN's per-channel gradient sums.
#[doc(hidden)]
pub struct BnGrad<'a> {
    pub affine: ChannelAffine<'a>,
    pub mean: &'a [f32],
    /// Overwritten with `sum(dL/dy)` per channel.
    pub sum_dy: &'a mut [f64],
    /// Overwritten with `sum(dL/dy * (x - mean))` per channel.
    pub sum_dy_xc: &'a mut [f64],
}

/// Backward of [`forward_bn`]: `x` is the BN's input, the neuron's input `y` (the BN output)
/// is recomputed from it on the fly; `gin` receives `dL/dy`, and `bn`'s sums are filled in the
/// same pass (per element in f64 over time inside each fixed chunk, then per channel over the
/// chunk, then over chunks in order: the same result on any number of threads). Returns
/// `dL/dw` for PLIF as [`backward`] does.
#[allow(clippy::too_many_arguments)]
#[doc(hidden)]
pub fn backward_bn(
    d: &Dynamics,
    surrogate: Surrogate,
    x: &[f32],
    bn: BnGrad,
    gout: &[f32],
    t_len: usize,
    gin: &mut [f32],
) -> f64 {
    backward_impl(d, surrogate, x, None, Some(bn), Some(gout), None, t_len, false, gin)
}

/// [`backward_bn`] with `dL/dy` written over `dL/dS` (`grad` holds the latter on entry): each
/// line is read and rewritten in cache instead of a third stream fetched to be overwritten.
pub(crate) fn backward_bn_in_place(
    d: &Dynamics,
    surrogate: Surrogate,
    x: &[f32],
    bn: BnGrad,
    t_len: usize,
    grad: &mut [f32],
) -> f64 {
    backward_impl(d, surrogate, x, None, Some(bn), None, None, t_len, false, grad)
}

/// Backward of [`forward_repeated`] with a BN: `x` (`[numel]`) is the BN input of every step,
/// `gout` (`[T, numel]`) is `dL/dS_t`, and `gin` (`[numel]`) receives `sum_t dL/dy_t`, the
/// gradient of the one step every time step repeats. `bn`'s sums run over all steps, as in
/// [`backward_bn`].
pub(crate) fn backward_bn_repeated(
    d: &Dynamics,
    surrogate: Surrogate,
    x: &[f32],
    bn: BnGrad,
    gout: &[f32],
    t_len: usize,
    gin: &mut [f32],
) -> f64 {
    backward_impl(d, surrogate, x, None, Some(bn), Some(gout), None, t_len, true, gin)
}

/// Backward of [`forward_bn_pooled`] (after the pool's own backward, which it does in cache):
/// `pooled_grad` is the pool output's gradient (`[T, planes, OH, OW]`), `argmax` the pool's;
/// `x_step` 0 for a repeated input (`gin` is then one step and receives the sum over time, as
/// in [`backward_bn_repeated`]), else `x.len() / t_len` (as in [`backward_bn`]). The same
/// values as the pool's backward followed by those.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_bn_pooled(
    d: &Dynamics,
    surrogate: Surrogate,
    x: &[f32],
    bn: BnGrad,
    pooled_grad: &[f32],
    pool: &PoolGeom,
    argmax: &[u8],
    t_len: usize,
    x_step: usize,
    gin: &mut [f32],
) -> f64 {
    assert_eq!(
        pooled_grad.len(),
        argmax.len(),
        "backward_bn_pooled: one argmax per pooled gradient"
    );
    backward_impl(
        d,
        surrogate,
        x,
        None,
        Some(bn),
        Some(pooled_grad),
        Some((pool, argmax)),
        t_len,
        x_step == 0,
        gin,
    )
}

/// Backward on given `H_t` and `S_t` instead of recomputed ones. `s` is read as a real number,
/// not a flag: the formulas are those of the reset written with `S_t`
/// (`V = H (1 - S) + V_reset S` or `V = H - V_th S`), so tests can drive the same BPTT code
/// with a smooth stand-in for the spikes.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn backward_given(
    d: &Dynamics,
    surrogate: Surrogate,
    x: &[f32],
    h: &[f32],
    s: &[f32],
    gout: &[f32],
    t_len: usize,
    gin: &mut [f32],
) -> f64 {
    assert!(h.len() == x.len() && s.len() == x.len());
    backward_impl(d, surrogate, x, Some((h, s)), None, Some(gout), None, t_len, false, gin)
}

#[allow(clippy::too_many_arguments)]
fn backward_impl(
    d: &Dynamics,
    surrogate: Surrogate,
    x: &[f32],
    given: Option<(&[f32], &[f32])>,
    bn: Option<BnGrad>,
    gout: Option<&[f32]>,
    pooled: Option<(&PoolGeom, &[u8])>,
    t_len: usize,
    repeated: bool,
    gin: &mut [f32],
) -> f64 {
    // Repeated: `x` and `gin` are one step, `gout` all of them.
    let len = if repeated { x.len() * t_len } else { x.len() };
    // Without `gout`, `gin` holds dL/dS on entry (in place; with a BN only). Pooled, `gout` is
    // the pool output's gradient.
    let pooled_len = |p: &PoolGeom| len / (p.h * p.w) * p.oh * p.ow;
    assert!(
        gout.is_none_or(|g| g.len() == pooled.map_or(len, |(p, _)| pooled_len(p)))
            && gin.len() == x.len()
    );
    assert!(pooled.is_none() || gout.is_some(), "a pooled backward reads the pool's gradient");
    assert!(gout.is_some() || bn.is_some(), "in-place backward is for the BN-fused pair");
    assert!(
        !repeated || (gout.is_some() && given.is_none()),
        "a repeated input's backward reads dL/dS from `gout`"
    );
    assert!(
        given.is_none() || (bn.is_none() && gout.is_some() && pooled.is_none()),
        "a backward on given charges has no BN or pool and reads dL/dS from `gout`"
    );
    let (bn_in, bn_out) = match bn {
        Some(BnGrad { affine, mean, sum_dy, sum_dy_xc }) => {
            sum_dy.fill(0.0);
            sum_dy_xc.fill(0.0);
            (Some((affine, mean)), Some((sum_dy, sum_dy_xc)))
        }
        None => (None, None),
    };
    if len == 0 || t_len == 0 {
        return 0.0;
    }
    let numel = len / t_len;
    assert_eq!(numel * t_len, len);
    check_bn_layout(bn_in.as_ref().map(|(bn, _)| bn), numel);
    let (ax, av) = d.charge.partials();
    let (plif_k, w_mode) = match d.charge {
        Charge::PlifDecay0 { k } | Charge::PlifDecay { k, .. } => (k, W_DECAY),
        Charge::PlifNoDecay0 { k } | Charge::PlifNoDecay { k, .. } => (k, W_NO_DECAY),
        _ => (0.0, W_NONE),
    };
    let pooled = pooled.map(|(geom, argmax)| {
        let hw = geom.h * geom.w;
        assert_eq!(numel % hw, 0, "pooled backward: planes of {hw}");
        // At least CHUNK elements per chunk.
        let unit = planes_per_block_multiple(hw);
        let group = unit * CHUNK.div_ceil(hw * unit);
        Pooled { geom: *geom, argmax, group: group.min(numel / hw).max(1) }
    });
    let width = Width::widest();
    let chunk_len = pooled.as_ref().map_or(CHUNK, |p| p.group * p.geom.h * p.geom.w);
    // Room for the channel runs of one chunk: channels last, one per channel it holds, else
    // at most one per plane it touches.
    let slot_len = match &bn_in {
        Some((bn, _)) if bn.hw == 1 => bn.scale.len().min(chunk_len),
        Some((bn, _)) => chunk_len / bn.hw + 2,
        None => 0,
    };
    let chunks = numel.div_ceil(chunk_len);
    let record = 2 + 3 * slot_len;
    // Kept on this thread across calls (taken out, so a nested call finds it empty): its size
    // is the same every step, and a fresh one would be a fresh mapping to fault in.
    let mut partials = PARTIALS.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
    if partials.len() < chunks * record {
        partials.resize(chunks * record, 0.0);
    }
    let ctx = BwdCtx {
        x,
        x_step: if repeated { 0 } else { numel },
        gout,
        pooled,
        t_len,
        numel,
        consts: Consts::of(d),
        ax,
        av,
        gin: SharedMut::new(gin),
        given,
        bn: bn_in,
        recompute: with_charge(d, Recompute { consts: Consts::of(d), width }),
        width,
        chunk_len,
        slot_len,
        partials: SharedMut::new(&mut partials[..chunks * record]),
    };
    match surrogate {
        Surrogate::Sigmoid { alpha } => ctx.dispatch(SigmoidSg::new(alpha), d, w_mode),
        Surrogate::Atan { alpha } => ctx.dispatch(AtanSg::new(alpha), d, w_mode),
        Surrogate::PiecewiseQuadratic { alpha } => {
            ctx.dispatch(PiecewiseQuadraticSg::new(alpha), d, w_mode)
        }
        Surrogate::SuperSpike { alpha } => ctx.dispatch(SuperSpikeSg::new(alpha), d, w_mode),
        Surrogate::Erf { alpha } => ctx.dispatch(ErfSg::new(alpha), d, w_mode),
        Surrogate::SoftSign { alpha } => ctx.dispatch(SoftSignSg::new(alpha), d, w_mode),
        Surrogate::PiecewiseExp { alpha } => ctx.dispatch(PiecewiseExpSg::new(alpha), d, w_mode),
        Surrogate::PiecewiseLeakyRelu { w, c } => {
            ctx.dispatch(PiecewiseLeakyReluSg::new(w, c), d, w_mode)
        }
    };
    let records = partials[..chunks * record].chunks_exact(record);
    if let Some((sum_dy, sum_dy_xc)) = bn_out {
        for rec in records.clone() {
            let runs = rec[1] as usize;
            let (chs, rest) = rec[2..].split_at(slot_len);
            let (dys, dyxs) = rest.split_at(slot_len);
            for ((&c, &a), &b) in chs[..runs].iter().zip(&dys[..runs]).zip(&dyxs[..runs]) {
                sum_dy[c as usize] += a;
                sum_dy_xc[c as usize] += b;
            }
        }
    }
    let dk: f64 = records.map(|rec| rec[0]).sum();
    PARTIALS.with(|cell| *cell.borrow_mut() = partials);
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
    /// Distance between `x`'s time steps: `numel`, or 0 for one step repeated (`gin` is then
    /// one step too and receives the sum over time).
    x_step: usize,
    /// dL/dS, or None when it is read from `gin` (in place); with `pooled`, the pool output's
    /// gradient, from which each chunk expands its dL/dS.
    gout: Option<&'a [f32]>,
    pooled: Option<Pooled<'a>>,
    t_len: usize,
    numel: usize,
    consts: Consts,
    ax: f32,
    av: f32,
    gin: SharedMut,
    given: Option<(&'a [f32], &'a [f32])>,
    /// Fused with a BN: its affine (`x` is then the BN input) and mean.
    bn: Option<(ChannelAffine<'a>, &'a [f32])>,
    recompute: RecomputeFn,
    width: Width,
    /// Elements per chunk: [`CHUNK`], or whole planes when a pool's gradient is expanded.
    chunk_len: usize,
    /// Channel runs per chunk record (see [`BwdCtx::chunk`]).
    slot_len: usize,
    /// One record of `2 + 3 slot_len` values per chunk, in chunk order: `dL/dk`, the number of
    /// channel runs, then their channels, `sum dy` and `sum dy (x - mean)`.
    partials: SharedMut<f64>,
}

/// A 2x2 max pool after the neuron ([`backward_bn_pooled`]): its geometry, argmax, and the
/// planes per chunk.
struct Pooled<'a> {
    geom: PoolGeom,
    argmax: &'a [u8],
    group: usize,
}

/// Where a block reads dL/dS_t: `data[t * stride + e - origin..]` for element `e`.
#[derive(Clone, Copy)]
struct GoutRows<'a> {
    data: &'a [f32],
    origin: usize,
    stride: usize,
}

/// Where a backward block gets `H_t` (and `S_t`): recomputed from `x` into a `[T, group]`
/// scratch just before its group of blocks, or (tests) given `[T, numel]` arrays. The second
/// scratch (`[T, group]`, or `[T, n]` for given arrays) receives the surrogate gradient of every
/// charge of the group.
enum Charges<'a> {
    #[cfg_attr(not(test), allow(dead_code))]
    Given(&'a [f32], &'a [f32], &'a mut [f32]),
    Recomputed(&'a mut [f32], &'a mut [f32]),
}

/// Rows of a `[T, ...]` array as seen by one block: row t is `data[off + t * stride..][..n]`.
/// Held as a pointer, so that a block checks its bounds once ([`RowsOf::check`]) rather than
/// at every load of every step, and so that a recomputed scratch can take a block's
/// gradients in rows it has finished reading.
#[derive(Clone, Copy)]
struct RowsOf<'a> {
    ptr: *mut f32,
    len: usize,
    off: usize,
    stride: usize,
    /// The rows may be written (a recomputed scratch, borrowed mutably).
    writable: bool,
    _data: std::marker::PhantomData<&'a [f32]>,
}

impl<'a> RowsOf<'a> {
    fn of(data: &'a [f32], off: usize, stride: usize) -> Self {
        let (ptr, len) = (data.as_ptr() as *mut f32, data.len());
        RowsOf { ptr, len, off, stride, writable: false, _data: std::marker::PhantomData }
    }

    fn of_mut(data: &'a mut [f32], off: usize, stride: usize) -> Self {
        let (ptr, len) = (data.as_mut_ptr(), data.len());
        RowsOf { ptr, len, off, stride, writable: true, _data: std::marker::PhantomData }
    }

    /// Asserts that rows `0..t_len` of `n` elements lie inside the data.
    #[inline(always)]
    fn check(&self, t_len: usize, n: usize) {
        assert!(t_len == 0 || self.off + (t_len - 1) * self.stride + n <= self.len);
    }

    /// Row `t`'s first `LW` elements.
    ///
    /// # Safety
    /// [`Self::check`] passed for `t_len > t` and `n >= LW`.
    #[inline(always)]
    unsafe fn lanes<const LW: usize>(&self, t: usize) -> [f32; LW] {
        // SAFETY: in bounds by the caller's check.
        unsafe { self.ptr.add(self.off + t * self.stride).cast::<[f32; LW]>().read_unaligned() }
    }

    /// Writes `v` over row `t`'s first `LW` elements.
    ///
    /// # Safety
    /// As [`Self::lanes`]; the rows are writable and no one else accesses these elements.
    #[inline(always)]
    unsafe fn store<const LW: usize>(&self, t: usize, v: [f32; LW]) {
        debug_assert!(self.writable);
        // SAFETY: as the caller guarantees.
        unsafe { self.ptr.add(self.off + t * self.stride).cast::<[f32; LW]>().write_unaligned(v) }
    }

    /// Rows of a buffer that parallel tasks share (see [`SharedMut`]).
    fn shared(buf: SharedMut, off: usize, stride: usize) -> Self {
        let (ptr, len) = (buf.ptr, buf.len);
        RowsOf { ptr, len, off, stride, writable: true, _data: std::marker::PhantomData }
    }

    /// The same rows from `j` elements further.
    #[inline(always)]
    fn at(self, j: usize) -> Self {
        RowsOf { off: self.off + j, ..self }
    }
}

/// Lanes of a backward register block in the AVX2 and SSE copies. A block's state is four
/// arrays (`dL/dV_t`, the two BN sums, the BN mean): at [`LANES`] lanes that is 16 AVX2
/// registers, all there are, and the state and the surrogate's temporaries went through the
/// stack at every step. At 16 lanes the state stays in registers; at 8 LLVM unrolls the lane
/// loop fully before vectorising it and leaves it scalar.
const BACK_LANES: usize = 16;

/// Elements whose `H_t` one recompute writes: a multiple of [`LANES`] whose `[T, group]`
/// charges fit in 8 KiB, so they are still in L1 when the group's blocks read them.
fn recompute_group(t_len: usize) -> usize {
    (2048 / t_len.max(1) / LANES * LANES).max(LANES)
}

impl BwdCtx<'_> {
    fn dispatch<G: SgFn>(&self, g: G, d: &Dynamics, w_mode: u8) {
        macro_rules! by_bn {
            ($hard:literal, $detach:literal, $w:expr) => {
                match self.bn.is_some() {
                    true => self.run::<G, $hard, $detach, { $w }, true>(g),
                    false => self.run::<G, $hard, $detach, { $w }, false>(g),
                }
            };
        }
        macro_rules! by_w {
            ($hard:literal, $detach:literal) => {
                match w_mode {
                    W_DECAY => by_bn!($hard, $detach, W_DECAY),
                    W_NO_DECAY => by_bn!($hard, $detach, W_NO_DECAY),
                    _ => by_bn!($hard, $detach, W_NONE),
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

    /// Every chunk's backward, its record into `self.partials`. A task takes several
    /// consecutive chunks when there are many; each chunk still sums on its own, so the
    /// results do not depend on how chunks are grouped into tasks.
    fn run<G: SgFn, const HARD: bool, const DETACH: bool, const W: u8, const BN: bool>(
        &self,
        g: G,
    ) {
        let (numel, chunk_len) = (self.numel, self.chunk_len);
        let chunks = numel.div_ceil(chunk_len);
        let per_task = (chunks / (8 * rayon::current_num_threads())).max(1);
        let record = 2 + 3 * self.slot_len;
        map_tasks(chunks.div_ceil(per_task), &|task| {
            for c in task * per_task..((task + 1) * per_task).min(chunks) {
                let i0 = c * chunk_len;
                let n = chunk_len.min(numel - i0);
                // SAFETY: chunk c's record belongs to this task alone.
                let rec = unsafe { self.partials.range(c * record, record) };
                self.chunk_task::<G, HARD, DETACH, W, BN>(g, i0, n, rec);
            }
        });
    }

    /// One chunk of [`Self::run`], through the copy of [`Self::chunk`] that `self.width` says.
    #[inline(always)]
    fn chunk_task<G: SgFn, const HARD: bool, const DETACH: bool, const W: u8, const BN: bool>(
        &self,
        g: G,
        i0: usize,
        n: usize,
        rec: &mut [f64],
    ) {
        let (numel, t_len, chunk_len) = (self.numel, self.t_len, self.chunk_len);
        let gout = |data| GoutRows { data, origin: 0, stride: numel };
        // Given charges come without a BN (`backward_impl` checks), so only the variants
        // without one compile this path: in the others it would be a copy of the chunk body
        // (which is inlined) that never runs.
        if let (false, Some((h, s))) = (BN, self.given) {
            let (mut sums, mut sg) = (vec![0.0; 3 * chunk_len], vec![0.0; t_len * n]);
            return self.chunk::<G, HARD, DETACH, W, true, false, LANES>(
                g,
                Charges::Given(h, s, &mut sg),
                &mut sums,
                i0,
                n,
                self.gout.map(gout),
                rec,
            );
        }
        SCRATCH.with(|cell| {
            // No rayon call happens inside, so this thread cannot re-enter here.
            let mut scratch = cell.borrow_mut();
            // Left as the last chunk wrote it: every element is written before it is read, so
            // the sums need no zeroing per chunk.
            let group = recompute_group(t_len).min(n.next_multiple_of(LANES));
            let expanded_len = if self.pooled.is_some() { t_len * chunk_len } else { 0 };
            let len = 3 * chunk_len + 2 * t_len * group + expanded_len;
            if scratch.len() < len {
                scratch.resize(len, 0.0);
            }
            let (sums, rest) = scratch.split_at_mut(3 * chunk_len);
            let (h, rest) = rest.split_at_mut(t_len * group);
            let (sg, expanded) = rest.split_at_mut(t_len * group);
            let h = Charges::Recomputed(h, sg);
            let rows = match &self.pooled {
                Some(p) => Some(self.expand_pooled(p, i0, n, &mut expanded[..t_len * n])),
                None => self.gout.map(gout),
            };
            #[cfg(target_arch = "x86_64")]
            if self.width == Width::Avx512 {
                // SAFETY: AVX-512 was detected.
                return unsafe {
                    self.chunk_avx512::<G, HARD, DETACH, W, BN>(g, h, sums, i0, n, rows, rec)
                };
            }
            #[cfg(target_arch = "x86_64")]
            if self.width.avx2() {
                // SAFETY: AVX2 was detected.
                return unsafe {
                    self.chunk_avx2::<G, HARD, DETACH, W, BN>(g, h, sums, i0, n, rows, rec)
                };
            }
            self.chunk::<G, HARD, DETACH, W, false, BN, BACK_LANES>(g, h, sums, i0, n, rows, rec)
        })
    }

    /// dL/dS of the chunk's elements `[i0, i0 + n)` (whole planes) for every step, from the
    /// pool output's gradient: each window's gradient goes to its argmax, as the pool's own
    /// backward routes it (`kernels::pool::maxpool2d_backward`), into `expanded` (`[T, n]`).
    fn expand_pooled<'s>(
        &self,
        p: &Pooled,
        i0: usize,
        n: usize,
        expanded: &'s mut [f32],
    ) -> GoutRows<'s> {
        let (hw, ohw) = (p.geom.h * p.geom.w, p.geom.oh * p.geom.ow);
        let (planes, p0) = (self.numel / hw, i0 / hw);
        let pooled = self.gout.expect("a pooled backward reads the pool's gradient");
        for t in 0..self.t_len {
            for (q, dst) in expanded[t * n..][..n].chunks_exact_mut(hw).enumerate() {
                let at = (t * planes + p0 + q) * ohw;
                unpool_plane_packed(&p.geom, &pooled[at..][..ohw], &p.argmax[at..][..ohw], dst);
            }
        }
        GoutRows { data: expanded, origin: i0, stride: n }
    }

    /// [`Self::chunk`] on recomputed spikes, compiled for AVX-512 (blocks of [`LANES`]: 32
    /// registers hold their state) and for AVX2 (blocks of [`BACK_LANES`]).
    ///
    /// # Safety
    /// Only call where [`Width::widest`] is AVX-512.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,avx2")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn chunk_avx512<
        G: SgFn,
        const HARD: bool,
        const DETACH: bool,
        const W: u8,
        const BN: bool,
    >(
        &self,
        g: G,
        h: Charges,
        sums: &mut [f32],
        i0: usize,
        n: usize,
        rows: Option<GoutRows>,
        rec: &mut [f64],
    ) {
        self.chunk::<G, HARD, DETACH, W, false, BN, LANES>(g, h, sums, i0, n, rows, rec)
    }

    /// See [`Self::chunk_avx512`].
    ///
    /// # Safety
    /// Only call where [`Width::avx2`] holds.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn chunk_avx2<
        G: SgFn,
        const HARD: bool,
        const DETACH: bool,
        const W: u8,
        const BN: bool,
    >(
        &self,
        g: G,
        h: Charges,
        sums: &mut [f32],
        i0: usize,
        n: usize,
        rows: Option<GoutRows>,
        rec: &mut [f64],
    ) {
        self.chunk::<G, HARD, DETACH, W, false, BN, BACK_LANES>(g, h, sums, i0, n, rows, rec)
    }

    /// The backward of elements `[i0, i0 + n)`, in groups whose `H_t` is recomputed at once,
    /// each run back over time in register blocks of `LB` elements (the rest one at a time).
    /// The per-element sums over time are then added up per BN channel and over the chunk
    /// exactly as one loop over the chunk would, into the chunk's record `rec`: `dL/dk`, the
    /// number of channel runs, and `slot_len` entries each of their channels and two sums.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn chunk<
        G: SgFn,
        const HARD: bool,
        const DETACH: bool,
        const W: u8,
        const GIVEN_S: bool,
        const BN: bool,
        const LB: usize,
    >(
        &self,
        g: G,
        mut charges: Charges,
        sums: &mut [f32],
        i0: usize,
        n: usize,
        rows: Option<GoutRows>,
        rec: &mut [f64],
    ) {
        // Per element: the PLIF gradient's and (with a BN) the BN sums' terms over time, in
        // f32 (T terms: f64 lanes would halve the vector width of the fused pass);
        // then over elements and chunks in f64.
        let cap = sums.len() / 3;
        let (wacc, rest) = sums[..3 * cap].split_at_mut(cap);
        let (acc_dy, acc_dyx) = rest.split_at_mut(cap);
        let (affine, mean) = match &self.bn {
            Some((affine, mean)) if BN => (Some(affine), Some(*mean)),
            _ => (None, None),
        };
        let (numel, t_len) = (self.numel, self.t_len);
        let group = match &charges {
            Charges::Given(..) => n,
            Charges::Recomputed(scratch, _) => scratch.len() / t_len,
        };
        let v_th = self.consts.v_th;
        let mut planes = affine.map(|bn| PlaneCursor::at(bn, i0));
        let mut g0 = 0;
        while g0 < n {
            let gn = group.min(n - g0);
            // The surrogate gradients of the group's charges, in one pass over them: with no
            // state beside them, its constants stay in registers (inside the blocks, the
            // blocks' state left too few, and they were reloaded at every step).
            let (h, s, sg) = match &mut charges {
                Charges::Given(h, s, sg) => {
                    let sg = &mut sg[..t_len * gn];
                    for (t, row) in sg.chunks_exact_mut(gn).enumerate() {
                        let hs = &h[t * numel + i0 + g0..][..gn];
                        for (o, &hv) in row.iter_mut().zip(hs) {
                            *o = g.grad(hv - v_th);
                        }
                    }
                    let (h, s) = (RowsOf::of(h, i0 + g0, numel), RowsOf::of(s, i0 + g0, numel));
                    (h, s, RowsOf::of(sg, 0, gn))
                }
                Charges::Recomputed(scratch, sg) => {
                    let scratch = &mut scratch[..t_len * gn];
                    (self.recompute)(self.x, t_len, self.x_step, i0 + g0, gn, affine, scratch);
                    let sg = &mut sg[..t_len * gn];
                    for (o, &hv) in sg.iter_mut().zip(scratch.iter()) {
                        *o = g.grad(hv - v_th);
                    }
                    let h = RowsOf::of_mut(scratch, 0, gn);
                    (h, h, RowsOf::of(sg, 0, gn))
                }
            };
            let whole = gn - gn % LB;
            for j in (0..whole).step_by(LB) {
                let lanes = lanes_of::<LB>(affine, mean, &mut planes);
                let out = BlockSums::<LB>::at(wacc, acc_dy, acc_dyx, g0 + j);
                self.block::<HARD, DETACH, W, GIVEN_S, BN, LB>(
                    (h.at(j), s.at(j), sg.at(j)),
                    i0 + g0 + j,
                    lanes,
                    out,
                    rows,
                );
            }
            for j in whole..gn {
                let lanes = lanes_of::<1>(affine, mean, &mut planes);
                let out = BlockSums::<1>::at(wacc, acc_dy, acc_dyx, g0 + j);
                self.block::<HARD, DETACH, W, GIVEN_S, BN, 1>(
                    (h.at(j), s.at(j), sg.at(j)),
                    i0 + g0 + j,
                    lanes,
                    out,
                    rows,
                );
            }
            g0 += gn;
        }
        let dk = if W == W_NONE { 0.0 } else { sum_as_f64(&wacc[..n]) };
        let slot_len = self.slot_len;
        let (head, entries) = rec.split_at_mut(2);
        let (chs, rest) = entries.split_at_mut(slot_len);
        let (dys, dyxs) = rest.split_at_mut(slot_len);
        let mut runs = 0;
        match affine {
            Some(bn) if bn.hw == 1 => {
                // Channels last: one entry per channel of the chunk (the sum over its elements,
                // which lie `channels` apart, in element order), taken row by row so that the
                // channels' sums run side by side in vector lanes.
                let channels = bn.scale.len();
                runs = channels.min(n);
                let mut c = i0 % channels;
                for ch in &mut chs[..runs] {
                    *ch = c as f64;
                    c = if c + 1 == channels { 0 } else { c + 1 };
                }
                dys[..runs].fill(0.0);
                dyxs[..runs].fill(0.0);
                for r in (0..n).step_by(channels) {
                    let len = channels.min(n - r);
                    let (a, b) = (&acc_dy[r..r + len], &acc_dyx[r..r + len]);
                    for ((dy, dyx), (&a, &b)) in
                        dys[..len].iter_mut().zip(&mut dyxs[..len]).zip(a.iter().zip(b))
                    {
                        *dy += a as f64;
                        *dyx += b as f64;
                    }
                }
            }
            Some(bn) => for_runs(Some(bn), i0, n, |a, b, ch| {
                chs[runs] = ch as f64;
                dys[runs] = sum_as_f64(&acc_dy[a..b]);
                dyxs[runs] = sum_as_f64(&acc_dyx[a..b]);
                runs += 1;
            }),
            None => {}
        }
        head[0] = dk;
        head[1] = runs as f64;
    }

    /// Reverse time loop over the `LW` elements from `e`, their state in registers. Without
    /// `GIVEN_S` the spikes are the Heaviside of the charge, exactly as forward fired them.
    /// `sgr` holds the surrogate gradient of each charge. With `BN`, `self.x` is the BN input.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn block<
        const HARD: bool,
        const DETACH: bool,
        const W: u8,
        const GIVEN_S: bool,
        const BN: bool,
        const LW: usize,
    >(
        &self,
        (h, s, sgr): (RowsOf, RowsOf, RowsOf),
        e: usize,
        (sc, sh, mu): ([f32; LW], [f32; LW], [f32; LW]),
        out: BlockSums<LW>,
        rows: Option<GoutRows>,
    ) {
        let Consts { v_th, v_rest } = self.consts;
        let (ax, av, numel, t_len) = (self.ax, self.av, self.numel, self.t_len);
        let spike = |u: f32| if u >= 0.0 { 1.0f32 } else { 0.0 };
        // dL/dV_t flowing back from step t+1; V_T feeds nothing, hence 0.
        let mut gv = [0.0f32; LW];
        let (mut wacc, mut acc_dy, mut acc_dyx) = ([0.0f32; LW], [0.0f32; LW], [0.0f32; LW]);
        // Every stream's rows are checked once here; the time loop then loads and stores
        // through pointers, without a bounds check per row.
        h.check(t_len, LW);
        sgr.check(t_len, LW);
        if GIVEN_S {
            s.check(t_len, LW);
        }
        let gin = RowsOf::shared(self.gin, e, numel);
        gin.check(if self.x_step == 0 { 1 } else { t_len }, LW);
        // dL/dS_t: from `rows`, or in place from `gin` (no `rows`), read just before its
        // element is overwritten. A pointer chosen once per block, not a compile-time
        // parameter: the time loop is the same code either way, and a parameter would compile
        // every BN variant twice.
        let gout = match rows {
            Some(r) => RowsOf::of(r.data, e - r.origin, r.stride),
            None => gin,
        };
        gout.check(t_len, LW);
        let xr = RowsOf::of(self.x, e, self.x_step);
        if W != W_NONE || BN {
            xr.check(t_len, LW);
        }
        // A repeated input's gradient is dL/dX_t summed over time: each step's goes into the
        // row of `h` just read (no later step reads it), and the rows are summed afterwards in
        // the order the steps ran. So the time loop stores every step's gradient the same way.
        let summed = self.x_step == 0 && t_len > 1;
        let dst = if summed {
            assert!(h.writable, "a repeated input's backward recomputes its charges");
            h
        } else {
            gin
        };
        for t in (0..t_len).rev() {
            // SAFETY: every row read or written below was checked above.
            let (hs, sgs, ss, gos, xs) = unsafe {
                (
                    h.lanes::<LW>(t),
                    sgr.lanes::<LW>(t),
                    if GIVEN_S { s.lanes::<LW>(t) } else { [0.0; LW] },
                    gout.lanes::<LW>(t),
                    if W != W_NONE || BN { xr.lanes::<LW>(t) } else { [0.0; LW] },
                )
            };
            // PLIF needs V_{t-1}, rebuilt from the previous step's H and S (V_rest at t = 0).
            let (hp, sp) = match (W != W_NONE, t > 0) {
                // SAFETY: as above.
                (true, true) => unsafe {
                    (h.lanes::<LW>(t - 1), if GIVEN_S { s.lanes::<LW>(t - 1) } else { [0.0; LW] })
                },
                _ => ([0.0; LW], [0.0; LW]),
            };
            // The lanes work on local arrays only (`gxs` is stored after them): through the
            // shared pointer, the loop could not be shown free of aliasing and ran scalar.
            let mut gxs = [0.0f32; LW];
            for l in 0..LW {
                let hv = hs[l];
                let u = hv - v_th;
                let sv = if GIVEN_S { ss[l] } else { spike(u) };
                let gvi = gv[l];
                let sg = sgs[l];
                // V_t = H_t (1 - S_t) + V_reset S_t  or  V_t = H_t - V_th S_t.
                let (dv_dh, dv_ds) = if HARD { (1.0 - sv, v_rest - hv) } else { (1.0, -v_th) };
                let go = gos[l];
                let gs = if DETACH { go } else { go + gvi * dv_ds };
                let gh = gvi * dv_dh + gs * sg;
                let gx = gh * ax;
                gxs[l] = gx;
                gv[l] = gh * av;
                if BN {
                    acc_dy[l] += gx;
                    acc_dyx[l] += gx * (xs[l] - mu[l]);
                }
                if W != W_NONE {
                    let v_prev = if t == 0 {
                        v_rest
                    } else {
                        let (hpv, spv) = (hp[l], if GIVEN_S { sp[l] } else { spike(hp[l] - v_th) });
                        if HARD {
                            (1.0 - spv) * hpv + spv * v_rest
                        } else {
                            hpv - spv * v_th
                        }
                    };
                    // The neuron's input: the BN output, recomputed exactly as forward did.
                    let xin = if BN { ChannelAffine::apply(xs[l], sc[l], sh[l]) } else { xs[l] };
                    let dh_dk =
                        if W == W_DECAY { xin - (v_prev - v_rest) } else { -(v_prev - v_rest) };
                    wacc[l] += gh * dh_dk;
                }
            }
            // SAFETY: checked above; these elements belong to this task alone, in every row
            // (of `gin`, or of this thread's scratch).
            unsafe { dst.store(t, gxs) };
        }
        if summed {
            let mut gx_sum = [0.0f32; LW];
            for t in (0..t_len).rev() {
                // SAFETY: as above.
                let gxs = unsafe { dst.lanes::<LW>(t) };
                for l in 0..LW {
                    gx_sum[l] += gxs[l];
                }
            }
            // SAFETY: as above (`gin` is one step).
            unsafe { gin.store(0, gx_sum) };
        }
        out.wacc.copy_from_slice(&wacc);
        out.acc_dy.copy_from_slice(&acc_dy);
        out.acc_dyx.copy_from_slice(&acc_dyx);
    }
}

/// Where a block leaves its per-element sums over time (see [`BwdCtx::chunk`]).
struct BlockSums<'a, const LW: usize> {
    wacc: &'a mut [f32; LW],
    acc_dy: &'a mut [f32; LW],
    acc_dyx: &'a mut [f32; LW],
}

impl<'a, const LW: usize> BlockSums<'a, LW> {
    #[inline(always)]
    fn at(wacc: &'a mut [f32], acc_dy: &'a mut [f32], acc_dyx: &'a mut [f32], j: usize) -> Self {
        BlockSums {
            wacc: (&mut wacc[j..j + LW]).try_into().unwrap(),
            acc_dy: (&mut acc_dy[j..j + LW]).try_into().unwrap(),
            acc_dyx: (&mut acc_dyx[j..j + LW]).try_into().unwrap(),
        }
    }
}
