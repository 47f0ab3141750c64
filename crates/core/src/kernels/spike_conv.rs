//! Event-driven convolution for binary spike inputs (`groups == 1`).
//!
//! With `x` in {0, 1}, `conv(x, W)` is a sum of weight rows over the active inputs: additions
//! only (the "AC" of the paper), and work proportional to the number of spikes instead of the
//! tensor size. Both kernels keep the weights (and gradient) in the layout
//! `[kh, kw, C_in, C_out_pad]` so that one active input contributes one contiguous run of
//! `C_out` floats, which the compiler turns into a few full-width vector adds.
//!
//! - Forward is input-stationary: per (input channel, tap) a block of up to 64 weights lives in
//!   registers and is added into a channels-last output grid at each active pixel's target.
//! - The weight gradient is weight-stationary: per (input channel, tap) a block of `dW` lives in
//!   registers while the channel's active pixels add their `dY` rows (`dY` transposed to
//!   channels-last once per sample).
//!
//! Active pixels come from a branch-free compaction of each channel plane; taps that fall
//! outside the output map to one extra zero (dump) row and column of the channels-last grids,
//! so the hot loops have no data-dependent branches.
//!
//! Both are compiled for AVX-512, AVX2 and the baseline, chosen at run time: the published
//! binary targets any x86-64 and cannot rely on `target-cpu`.
use super::conv::{wgrad_bias_leaf, wgrad_tree, WgradParts};
use super::geometry::ConvGeom;
use super::scratch::{Aligned, Scratch};
use super::simd::multiversion;
use super::transpose::{cells_to_planes, planes_to_cells, prefetch_planes};
use rayon::prelude::*;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Largest input density (active / total) at which the event-driven forward runs instead of
/// the direct 3x3 kernel (`kernels/conv3x3.rs`): below the lowest density at which the event
/// kernel stops winning on the measured shapes, with margin. The crossovers and how to
/// measure them (`cargo run --release -p dualstream-core --example conv_crossover`) are in
/// docs/performance.md.
pub const FORWARD_EVENT_MAX_DENSITY: f32 = 0.18;
/// The same where the dense forward runs as Winograd (`kernels/winograd.rs`,
/// [`super::winograd::wins`]), which does fewer multiplications and so wins at lower densities.
pub const FORWARD_EVENT_MAX_DENSITY_VS_WINOGRAD: f32 = 0.1;
/// The same for the weight gradient, where the event kernel keeps its lead to much higher
/// densities (same benchmark).
pub const WGRAD_EVENT_MAX_DENSITY: f32 = 0.6;

/// What one pass over an input says about it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpikeStats {
    /// Every value is exactly 0.0 or 1.0.
    pub binary: bool,
    /// Number of non-zero values (exact only when `binary`; a lower bound otherwise).
    pub active: usize,
    pub len: usize,
}

impl SpikeStats {
    pub fn density(&self) -> f32 {
        if self.len == 0 {
            0.0
        } else {
            self.active as f32 / self.len as f32
        }
    }
}

/// Elements per parallel chunk of [`spike_stats`]; small enough for a u32 counter.
#[doc(hidden)]
pub const STATS_CHUNK: usize = 32 * 1024;

/// Binary-ness and density of `x` in one parallel pass; stops early on real-valued input.
pub fn spike_stats(x: &[f32]) -> SpikeStats {
    let real = AtomicBool::new(false);
    let active = x
        .par_chunks(STATS_CHUNK)
        .map(|c| {
            if real.load(Ordering::Relaxed) {
                return 0;
            }
            let (mut active, mut other) = (0u32, 0u32);
            for &v in c {
                active += (v != 0.0) as u32;
                other += (v != 0.0 && v != 1.0) as u32;
            }
            if other != 0 {
                real.store(true, Ordering::Relaxed);
            }
            active as usize
        })
        .sum();
    SpikeStats { binary: !real.load(Ordering::Relaxed), active, len: x.len() }
}

/// Which kernel ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvPath {
    Dense,
    Events,
}

/// Geometries the event kernels handle (grouped convs would need per-group masks: dense).
pub fn supports_events(g: &ConvGeom) -> bool {
    g.groups == 1 && (g.oh + 1) * (g.ow + 1) < 1 << 31
}

/// Picks the kernel for input `x` from one pass over it: events only for binary input whose
/// density is at most `max_density`.
pub fn choose_path(g: &ConvGeom, x: &[f32], max_density: f32) -> ConvPath {
    if !supports_events(g) {
        return ConvPath::Dense;
    }
    path_for(spike_stats(x), max_density)
}

/// The kernel for an input with stats `s`: events only if it is binary and at most
/// `max_density` dense.
pub(crate) fn path_for(s: SpikeStats, max_density: f32) -> ConvPath {
    if s.binary && s.density() <= max_density {
        ConvPath::Events
    } else {
        ConvPath::Dense
    }
}

/// The crossover density of the forward for `g`: against Winograd where that is the dense kernel.
pub fn forward_event_max_density(g: &ConvGeom) -> f32 {
    if super::winograd::wins(g) {
        FORWARD_EVENT_MAX_DENSITY_VS_WINOGRAD
    } else {
        FORWARD_EVENT_MAX_DENSITY
    }
}

/// Forward through the event kernel where the input is fit for it (the decision of
/// [`choose_path`]), else the dense kernel. Says which ran and, where the call saw the whole
/// input, its [`SpikeStats`] (for the weight gradient's dispatch on the same input). Given
/// `moments` (`[B, C_out, 2]`), also fills in the output's per-plane moments for a batch norm
/// after it (`batch_norm::moments_of_sample`): the event kernel takes them from each sample
/// while it is in cache, which saves the statistics pass over the output.
///
/// With `measure_first` false the event kernel starts at once and gives up as soon as the
/// input proves unfit ([`EventBudget`]): no pass of its own, but an input well above the
/// crossover is found out only after the event kernel has done a good part of its work, and
/// then the dense kernel runs in full. With `measure_first` (for inputs that went dense last time) one pass measures the
/// input first. Either way the decision is the same.
pub fn conv2d_forward_auto(
    g: &ConvGeom,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    measure_first: bool,
    mut moments: Option<&mut [f64]>,
) -> (ConvPath, Option<SpikeStats>) {
    if !supports_events(g) {
        super::conv::conv2d_forward(g, x, weight, bias, y);
        return (ConvPath::Dense, None);
    }
    let stats = if measure_first {
        let s = spike_stats(x);
        if path_for(s, forward_event_max_density(g)) == ConvPath::Events {
            forward_spikes(g, x, weight, bias, y, None, moments);
            return (ConvPath::Events, Some(s));
        }
        Some(s)
    } else {
        let budget = forward_budget(g, x);
        forward_spikes(g, x, weight, bias, y, Some(&budget), moments.as_deref_mut());
        if !budget.exceeded() {
            return (ConvPath::Events, Some(budget.stats()));
        }
        None
    };
    super::conv::conv2d_forward(g, x, weight, bias, y);
    if let Some(m) = moments {
        crate::kernels::batch_norm::sample_moments(y, g.c_out, g.ohw(), m);
    }
    (ConvPath::Dense, stats)
}

/// The budget of the event-driven forward on `x`: its crossover density for `g`.
pub fn forward_budget(g: &ConvGeom, x: &[f32]) -> EventBudget {
    EventBudget::new(x.len(), forward_event_max_density(g))
}

/// Weight (and bias) gradient through whichever kernel [`choose_path`] picks for `x`; `known`
/// is `x`'s [`SpikeStats`] where the caller has them (from the forward on the same input), which
/// saves the pass that measures them.
pub fn conv2d_backward_weight_auto(
    g: &ConvGeom,
    x: &[f32],
    dy: &[f32],
    grad_weight: &mut [f32],
    grad_bias: Option<&mut [f32]>,
    known: Option<SpikeStats>,
) -> ConvPath {
    let path = match known {
        Some(s) if supports_events(g) && s.len == x.len() => path_for(s, WGRAD_EVENT_MAX_DENSITY),
        _ => choose_path(g, x, WGRAD_EVENT_MAX_DENSITY),
    };
    match path {
        ConvPath::Events => conv2d_backward_weight_spikes(g, x, dy, grad_weight, grad_bias),
        ConvPath::Dense => super::conv::conv2d_backward_weight(g, x, dy, grad_weight, grad_bias),
    }
    path
}

/// Output channels padded to whole 8-float vectors (the padding holds zeros).
fn cout_pad(g: &ConvGeom) -> usize {
    g.c_out.div_ceil(8) * 8
}

/// `[C_out, C_in, kh, kw]` -> `[kh, kw, C_in, C_out_pad]`.
fn weight_to_taps(g: &ConvGeom, weight: &[f32], out: &mut [f32]) {
    let cp = cout_pad(g);
    out.fill(0.0);
    for co in 0..g.c_out {
        for c in 0..g.c_in {
            for i in 0..g.kh {
                for j in 0..g.kw {
                    let t = (i * g.kw + j) * g.c_in + c;
                    out[t * cp + co] = weight[((co * g.c_in + c) * g.kh + i) * g.kw + j];
                }
            }
        }
    }
}

/// Channels-last grids kept per thread from one call to the next, by geometry `(oh, ow, cp)`
/// (which fixes where the dump row and column lie), so that a grid is zero-filled once rather
/// than once per rayon task (large maps' grids are hundreds of KB).
/// A grid goes back only in its pool's state; one left otherwise (a pass stopped by its
/// budget, a panic) is dropped.
type GridPool = RefCell<Vec<((usize, usize, usize), Aligned)>>;

/// Grids most recently used per pool and thread (a network's distinct conv geometries).
const GRIDS_KEPT: usize = 8;

thread_local! {
    /// Forward grids: every output cell zero (the dump row and column hold anything).
    static FWD_GRIDS: GridPool = const { RefCell::new(Vec::new()) };
    /// Weight-gradient dY grids: the dump row and column and the padding channels zero (the
    /// cells' `C_out` values hold anything).
    static DY_GRIDS: GridPool = const { RefCell::new(Vec::new()) };
}

/// A grid for `g` from `pool` (or a new zeroed one).
fn take_grid(pool: &'static std::thread::LocalKey<GridPool>, g: &ConvGeom, cp: usize) -> Aligned {
    let key = (g.oh, g.ow, cp);
    pool.with_borrow_mut(|v| v.iter().position(|(k, _)| *k == key).map(|i| v.swap_remove(i).1))
        .unwrap_or_else(|| Aligned::zeroed((g.oh + 1) * (g.ow + 1) * cp))
}

/// Returns a grid for `g` to `pool`, which must be in that pool's state.
fn put_grid(
    pool: &'static std::thread::LocalKey<GridPool>,
    g: &ConvGeom,
    cp: usize,
    grid: Aligned,
) {
    pool.with_borrow_mut(|v| {
        if v.len() >= GRIDS_KEPT {
            v.remove(0);
        }
        v.push(((g.oh, g.ow, cp), grid));
    });
}

thread_local! {
    /// Per-thread active-pixel lists; they only grow, so steady state allocates nothing.
    static ACTIVE: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// Where each input pixel lands through each kernel tap, shared by both kernels:
/// `targets[(i * kw + j) * h * w + iy * w + ix]` is the pixel `oy * (ow + 1) + ox` of the
/// channels-last grids that input `(iy, ix)` feeds through tap `(i, j)`, or a pixel of their
/// extra zero/dump row or column when it feeds none, so the hot loops never test bounds.
fn tap_targets(g: &ConvGeom) -> Vec<u32> {
    let mut t = Vec::with_capacity(g.kh * g.kw * g.h * g.w);
    for i in 0..g.kh {
        for j in 0..g.kw {
            for iy in 0..g.h {
                let oy = tap_target(iy, i, g.stride[0], g.padding[0], g.dilation[0], g.oh);
                for ix in 0..g.w {
                    let ox = tap_target(ix, j, g.stride[1], g.padding[1], g.dilation[1], g.ow);
                    t.push(oy * (g.ow as u32 + 1) + ox);
                }
            }
        }
    }
    t
}

/// Channel `c`'s active pixels (flat `iy * w + ix`, ascending) into `act` (at least `h * w`
/// long); returns how many, and whether every value of the plane is 0 or 1. The test of 64
/// values at a time vectorises, and the loop over the set bits runs once per spike, so
/// silence costs almost nothing.
#[inline(always)]
fn active_pixels(g: &ConvGeom, x: &[f32], c: usize, act: &mut [u32]) -> (usize, bool) {
    let hw = g.h * g.w;
    let plane = &x[c * hw..(c + 1) * hw];
    let (mut n, mut other) = (0, 0u64);
    let mut emit = |k: usize, mut m: u64| {
        while m != 0 {
            act[n] = (k * 64 + m.trailing_zeros() as usize) as u32;
            n += 1;
            m &= m - 1;
        }
    };
    let mut chunks = plane.chunks_exact(64);
    for (k, chunk) in chunks.by_ref().enumerate() {
        let (m, o) = nonzero_and_other_bits(chunk.try_into().expect("chunks of 64"));
        other |= o;
        emit(k, m);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        // Zeros past the plane's end set no bit.
        let mut last = [0.0f32; 64];
        last[..rest.len()].copy_from_slice(rest);
        let (m, o) = nonzero_and_other_bits(&last);
        other |= o;
        emit(hw / 64, m);
    }
    (n, other == 0)
}

/// Bit `b` set where `x[b] != 0`, and (second) where `x[b]` is neither 0 nor 1. A fixed length
/// lets LLVM turn each into vector compares and mask moves (`vcmpps` into mask registers on
/// AVX-512); over a slice of any length it built the masks one lane at a time.
#[inline(always)]
fn nonzero_and_other_bits(x: &[f32; 64]) -> (u64, u64) {
    let (mut m, mut o) = (0u64, 0u64);
    for (b, &v) in x.iter().enumerate() {
        m |= ((v != 0.0) as u64) << b;
        o |= (((v != 0.0) & (v != 1.0)) as u64) << b;
    }
    (m, o)
}

/// Lets the event-driven forward decide its own dispatch while it runs, instead of a separate
/// pass over the input to measure it first ([`choose_path`]; on inference-sized inputs that
/// pass cost as much as a quarter of the convolution): the kernel reports each channel plane's
/// spike count, and stops as soon as the input proves non-binary or denser than the
/// crossover, for the dense kernel to run instead. The decision is exactly
/// [`choose_path`]'s: non-binary or `active / len > max_density` over the whole input.
pub struct EventBudget {
    len: usize,
    max_density: f32,
    active: AtomicUsize,
    exceeded: AtomicBool,
}

impl EventBudget {
    pub fn new(len: usize, max_density: f32) -> Self {
        EventBudget {
            len,
            max_density,
            active: AtomicUsize::new(0),
            exceeded: AtomicBool::new(false),
        }
    }

    /// Whether the input turned out unfit for the event kernel.
    pub fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::Relaxed)
    }

    /// The whole input's stats, once a pass finished without the budget being exceeded (every
    /// plane was counted, and all were binary).
    fn stats(&self) -> SpikeStats {
        assert!(!self.exceeded(), "EventBudget::stats: the pass stopped early");
        SpikeStats { binary: true, active: self.active.load(Ordering::Relaxed), len: self.len }
    }

    /// Counts a plane's spikes; false once the input is unfit (the callers stop then).
    fn take(&self, active: usize, binary: bool) -> bool {
        let total = self.active.fetch_add(active, Ordering::Relaxed) + active;
        let stats = SpikeStats { binary, active: total, len: self.len };
        if !binary || stats.density() > self.max_density {
            self.exceeded.store(true, Ordering::Relaxed);
        }
        !self.exceeded()
    }
}

/// Everything the per-sample forward needs besides the sample.
struct Fwd<'a> {
    g: &'a ConvGeom,
    /// Weights `[kh, kw, C_in, cp]`.
    wt: &'a [f32],
    /// Bias, or None.
    bias: Option<&'a [f32]>,
    cp: usize,
    /// See [`tap_targets`].
    targets: &'a [u32],
    /// Where the pass checks its own dispatch, or None to take every non-zero as a spike.
    budget: Option<&'a EventBudget>,
}

/// What both forward drivers set up per call: the input checked, the weights as tap rows and
/// the tap targets.
struct FwdPlan {
    batch: usize,
    cp: usize,
    wt: Scratch,
    targets: Vec<u32>,
}

impl FwdPlan {
    #[doc(hidden)]
    pub fn new(what: &str, g: &ConvGeom, x: &[f32], weight: &[f32]) -> Self {
        assert!(supports_events(g), "{what}: unsupported geometry {g:?}");
        let batch = x.len() / g.in_size();
        assert_eq!(x.len(), batch * g.in_size(), "{what}: input length");
        assert_eq!(weight.len(), g.weight_len(), "{what}: weight length");
        let cp = cout_pad(g);
        let mut wt = Scratch::take(g.kh * g.kw * g.c_in * cp);
        weight_to_taps(g, weight, &mut wt);
        FwdPlan { batch, cp, wt, targets: tap_targets(g) }
    }

    fn fwd<'a>(
        &'a self,
        g: &'a ConvGeom,
        bias: Option<&'a [f32]>,
        budget: Option<&'a EventBudget>,
    ) -> Fwd<'a> {
        Fwd { g, wt: &self.wt, bias, cp: self.cp, targets: &self.targets, budget }
    }
}

/// `y = conv(x, weight) + bias` for binary `x` (values other than 0 count as 1); same
/// contract as [`super::conv::conv2d_forward`].
///
/// Input-stationary: each active input adds its tap's weight row (held in registers) into a
/// channels-last output grid, one load and one store per vector. Not an output-stationary
/// gather from per-pixel channel masks: its loop over the set bits of each tap's mask is short
/// and unpredictable, so branch misses would dominate.
pub fn conv2d_forward_spikes(
    g: &ConvGeom,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    forward_spikes(g, x, weight, bias, y, None, None);
}

/// [`conv2d_forward_spikes`] that gives up (returns false, `y` unfinished) as soon as `x`
/// proves unfit for the event kernel by `budget`.
pub fn conv2d_forward_spikes_within(
    g: &ConvGeom,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    budget: &EventBudget,
) -> bool {
    forward_spikes(g, x, weight, bias, y, Some(budget), None);
    !budget.exceeded()
}

pub(crate) fn forward_spikes(
    g: &ConvGeom,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    budget: Option<&EventBudget>,
    moments: Option<&mut [f64]>,
) {
    let plan = FwdPlan::new("conv2d_forward_spikes", g, x, weight);
    assert_eq!(y.len(), plan.batch * g.out_size(), "conv2d_forward_spikes: output length");
    if let Some(b) = bias {
        assert_eq!(b.len(), g.c_out, "conv2d_forward_spikes: bias length");
    }
    let (p, cp) = (plan.fwd(g, bias, budget), plan.cp);
    // One slot of moments per sample (a placeholder of one value each when none are wanted).
    let mut unwanted = Vec::new();
    let (moments, per_sample) = match moments {
        Some(m) if g.c_out > 0 => {
            assert_eq!(m.len(), plan.batch * 2 * g.c_out, "conv2d_forward_spikes: moments length");
            (m, 2 * g.c_out)
        }
        _ => {
            unwanted.resize(plan.batch, 0.0);
            (&mut unwanted[..], 1)
        }
    };
    let want = per_sample > 1;
    let samples = y.par_chunks_mut(g.out_size()).zip(x.par_chunks(g.in_size()));
    samples.zip(moments.par_chunks_mut(per_sample)).for_each(|((ys, xs), ms)| {
        let mut grid = take_grid(&FWD_GRIDS, g, cp);
        ACTIVE.with_borrow_mut(|act| fwd_sample(&p, xs, ys, &mut grid, act));
        if want && !budget.is_some_and(EventBudget::exceeded) {
            // The sample's output was just written: its planes are still in cache.
            crate::kernels::batch_norm::moments_of_sample(ys, g.c_out, g.ohw(), ms);
        }
        // A sample stopped by the budget leaves its grid dirty.
        if !budget.is_some_and(EventBudget::exceeded) {
            put_grid(&FWD_GRIDS, g, cp, grid);
        }
    });
}

/// What [`conv2d_forward_spikes_by_time`] hands each sample's output to.
pub trait StepSink: Sync {
    /// Carried across one batch index's time steps (e.g. membrane potentials).
    type State: Send;
    fn state(&self) -> Self::State;
    /// Takes sample `(t, n)`'s output, bias not added, in the channels-last `grid`: output
    /// pixel `(oy, ox)`'s `C_out` values start at `(oy * (ow + 1) + ox) * pitch`. The sink
    /// must leave those `oh * ow` cells zero (the next sample adds into them). Returns a count
    /// the driver sums (e.g. spikes).
    fn step(
        &self,
        state: &mut Self::State,
        t: usize,
        n: usize,
        grid: &mut [f32],
        pitch: usize,
    ) -> u64;
}

/// The event-driven forward of a time-major `[T, N, C_in, H, W]` spike input, handing each
/// sample's output to `sink` while it is still in cache instead of writing `y`: parallel over
/// `N`, each batch index's steps in time order. Lets a spiking neuron consume the convolution
/// in the same pass (inference), saving the write and re-read of the whole pre-activation.
/// Returns the sum of the sink's counts, or None if `x` proved unfit by `budget` (the sink
/// has then seen only some samples).
pub fn conv2d_forward_spikes_by_time<S: StepSink>(
    g: &ConvGeom,
    x: &[f32],
    weight: &[f32],
    t_len: usize,
    sink: &S,
    budget: &EventBudget,
) -> Option<u64> {
    let plan = FwdPlan::new("conv2d_forward_spikes_by_time", g, x, weight);
    let batch = plan.batch;
    assert!(
        t_len > 0 && batch.is_multiple_of(t_len),
        "conv2d_forward_spikes_by_time: {batch} samples for T = {t_len}"
    );
    let n_len = batch / t_len;
    let (p, cp) = (plan.fwd(g, None, Some(budget)), plan.cp);
    let total = (0..n_len)
        .into_par_iter()
        .map(|n| {
            let mut grid = take_grid(&FWD_GRIDS, g, cp);
            let mut state = sink.state();
            let mut total = 0;
            for t in 0..t_len {
                let xs = &x[(t * n_len + n) * g.in_size()..][..g.in_size()];
                ACTIVE.with_borrow_mut(|act| fwd_grid(&p, xs, &mut grid, act));
                if budget.exceeded() {
                    break;
                }
                total += sink.step(&mut state, t, n, &mut grid, cp);
            }
            // A pass stopped by the budget leaves its grid dirty.
            if !budget.exceeded() {
                put_grid(&FWD_GRIDS, g, cp, grid);
            }
            total
        })
        .sum();
    (!budget.exceeded()).then_some(total)
}

multiversion!(fn fwd_sample(p: &Fwd, x: &[f32], y: &mut [f32], grid: &mut [f32], act: &mut Vec<u32>) => fwd_sample_body);
multiversion!(fn fwd_grid(p: &Fwd, x: &[f32], grid: &mut [f32], act: &mut Vec<u32>) => fwd_grid_body);

#[inline(always)]
fn fwd_sample_body(p: &Fwd, x: &[f32], y: &mut [f32], grid: &mut [f32], act: &mut Vec<u32>) {
    fwd_grid_body(p, x, grid, act);
    if p.budget.is_some_and(EventBudget::exceeded) {
        return;
    }
    let g = p.g;
    // Channels-last grid -> NCHW output, adding the bias on the way, and the grid zeroed
    // again while it is in L1 (see `fwd_grid_body`).
    for oy in 0..g.oh {
        let row = &mut grid[oy * (g.ow + 1) * p.cp..][..g.ow * p.cp];
        cells_to_planes(row, p.cp, g.ow, g.c_out, p.bias, &mut y[oy * g.ow..], g.ohw());
        row.fill(0.0);
    }
}

/// One sample's output, without bias, added into the channels-last `grid` (see
/// [`StepSink::step`]), whose output cells must be zero: whoever reads a row of them zeroes
/// it again while it is in L1, instead of a fill of the whole grid per sample (a memory pass
/// as large as the output, since the grids of large maps outgrow L2). The dump row and column
/// are never read, so never zeroed.
#[inline(always)]
fn fwd_grid_body(p: &Fwd, x: &[f32], grid: &mut [f32], act: &mut Vec<u32>) {
    let g = p.g;
    let (hw, cp) = (g.h * g.w, p.cp);
    if p.budget.is_some_and(EventBudget::exceeded) {
        return;
    }
    act.resize(hw, 0);
    for c in 0..g.c_in {
        let (n, binary) = active_pixels(g, x, c, act);
        if p.budget.is_some_and(|b| !b.take(n, binary)) {
            return;
        }
        if n == 0 {
            continue;
        }
        let act = &act[..n];
        for tap in 0..g.kh * g.kw {
            let targets = &p.targets[tap * hw..(tap + 1) * hw];
            let wrow = &p.wt[(tap * g.c_in + c) * cp..][..cp];
            let mut cb = 0;
            while cb < cp {
                cb += match cp - cb {
                    r if r >= 64 => fwd_block::<64>(act, targets, wrow, grid, cp, cb),
                    r if r >= 32 => fwd_block::<32>(act, targets, wrow, grid, cp, cb),
                    r if r >= 16 => fwd_block::<16>(act, targets, wrow, grid, cp, cb),
                    _ => fwd_block::<8>(act, targets, wrow, grid, cp, cb),
                };
            }
        }
    }
}

/// `grid[target pixel, cb..cb+CB] += wrow[cb..cb+CB]` for every active pixel; returns `CB`.
#[inline(always)]
fn fwd_block<const CB: usize>(
    act: &[u32],
    targets: &[u32],
    wrow: &[f32],
    grid: &mut [f32],
    cp: usize,
    cb: usize,
) -> usize {
    let wv: [f32; CB] = wrow[cb..cb + CB].try_into().unwrap();
    for &a in act {
        let at = targets[a as usize] as usize * cp + cb;
        let dst: &mut [f32; CB] = (&mut grid[at..at + CB]).try_into().unwrap();
        for k in 0..CB {
            dst[k] += wv[k];
        }
    }
    CB
}

/// Everything the per-sample weight gradient needs besides the sample.
struct Wg<'a> {
    g: &'a ConvGeom,
    cp: usize,
    /// See [`tap_targets`].
    targets: &'a [u32],
}

impl Wg<'_> {
    /// Length of the tap-major weight gradient, `C_out` padded to `cp`.
    fn wlen(&self) -> usize {
        self.g.kh * self.g.kw * self.g.c_in * self.cp
    }
}

/// Output index fed by input index `n` through kernel offset `k`, or `out` if none.
fn tap_target(n: usize, k: usize, s: usize, p: usize, d: usize, out: usize) -> u32 {
    let t = (n + p) as isize - (k * d) as isize;
    if t >= 0 && (t as usize).is_multiple_of(s) && (t as usize) / s < out {
        (t as usize / s) as u32
    } else {
        out as u32
    }
}

/// ADDS the weight (and bias) gradient for binary `x`; same contract, and the same
/// thread-count-independent reduction tree, as [`super::conv::conv2d_backward_weight`].
pub fn conv2d_backward_weight_spikes(
    g: &ConvGeom,
    x: &[f32],
    dy: &[f32],
    grad_weight: &mut [f32],
    grad_bias: Option<&mut [f32]>,
) {
    assert!(supports_events(g), "conv2d_backward_weight_spikes: unsupported geometry {g:?}");
    let batch = x.len() / g.in_size();
    assert_eq!(x.len(), batch * g.in_size(), "conv2d_backward_weight_spikes: input length");
    assert_eq!(dy.len(), batch * g.out_size(), "conv2d_backward_weight_spikes: grad_output length");
    assert_eq!(grad_weight.len(), g.weight_len(), "conv2d_backward_weight_spikes: weight length");
    if batch == 0 {
        return;
    }
    let cp = cout_pad(g);
    let targets = tap_targets(g);
    let p = Wg { g, cp, targets: &targets };
    let with_bias = grad_bias.is_some();
    let mut total = Scratch::take(p.wlen() + if with_bias { g.c_out } else { 0 });
    wgrad_tree(
        batch,
        &|lo, hi, out: &mut [f32]| wgrad_leaf(&p, x, dy, 0, with_bias, lo, hi, out),
        &mut total,
    );
    add_tap_major(g, cp, &total, grad_weight, grad_bias);
}

/// The weight (and bias) gradient of planes `lo..hi` of the batch, `x` and `dy` holding the
/// planes from `a` on, written into `out` (tap-major weights padded to `cp` output channels,
/// then the bias): a leaf of the reduction tree.
#[allow(clippy::too_many_arguments)]
fn wgrad_leaf(
    p: &Wg,
    x: &[f32],
    dy: &[f32],
    a: usize,
    with_bias: bool,
    lo: usize,
    hi: usize,
    out: &mut [f32],
) {
    let g = p.g;
    let (ow_, ob) = out.split_at_mut(p.wlen());
    // Each sample overwrites only its cells' C_out values (see wgrad_sample_body).
    let mut dyt = take_grid(&DY_GRIDS, g, p.cp);
    ACTIVE.with_borrow_mut(|act| {
        for s in lo..hi {
            let k = s - a;
            let xs = &x[k * g.in_size()..(k + 1) * g.in_size()];
            let dys = &dy[k * g.out_size()..(k + 1) * g.out_size()];
            wgrad_sample(p, xs, dys, ow_, &mut dyt, act, s == lo);
            if with_bias {
                wgrad_bias_leaf(g, dys, ob, s == lo);
            }
        }
    });
    put_grid(&DY_GRIDS, g, p.cp, dyt);
}

/// Adds the tap-major sum `total` (see [`wgrad_leaf`]) to the `[C_out, C_in, kh, kw]` weight
/// gradient and the bias gradient.
fn add_tap_major(
    g: &ConvGeom,
    cp: usize,
    total: &[f32],
    grad_weight: &mut [f32],
    grad_bias: Option<&mut [f32]>,
) {
    let (tw, tb) = total.split_at(g.kh * g.kw * g.c_in * cp);
    for co in 0..g.c_out {
        for c in 0..g.c_in {
            for i in 0..g.kh {
                for j in 0..g.kw {
                    let t = (i * g.kw + j) * g.c_in + c;
                    grad_weight[((co * g.c_in + c) * g.kh + i) * g.kw + j] += tw[t * cp + co];
                }
            }
        }
    }
    if let Some(gb) = grad_bias {
        assert_eq!(gb.len(), g.c_out, "conv2d_backward_weight_spikes: bias length");
        for (d, s) in gb.iter_mut().zip(tb) {
            *d += *s;
        }
    }
}

/// [`conv2d_backward_weight_spikes`] of planes `[a, a + x.len() / in_size)` of the batch
/// `parts` is over (`x` and `dy` those planes), into `parts` (see `conv::WgradParts`);
/// [`conv2d_backward_weight_spikes_finish`] adds the sum.
#[doc(hidden)]
pub fn conv2d_backward_weight_spikes_range(
    g: &ConvGeom,
    x: &[f32],
    dy: &[f32],
    a: usize,
    with_bias: bool,
    parts: &mut WgradParts,
) {
    assert!(supports_events(g), "conv2d_backward_weight_spikes_range: unsupported geometry {g:?}");
    let planes = x.len() / g.in_size();
    assert_eq!(x.len(), planes * g.in_size(), "conv2d_backward_weight_spikes_range: input");
    assert_eq!(dy.len(), planes * g.out_size(), "conv2d_backward_weight_spikes_range: grad");
    let cp = cout_pad(g);
    let targets = tap_targets(g);
    let p = Wg { g, cp, targets: &targets };
    let len = p.wlen() + if with_bias { g.c_out } else { 0 };
    parts.add_range(a, a + planes, len, &|lo, hi, out: &mut [f32]| {
        wgrad_leaf(&p, x, dy, a, with_bias, lo, hi, out)
    });
}

/// ADDS the weight (and bias) gradient that [`conv2d_backward_weight_spikes_range`]
/// collected.
#[doc(hidden)]
pub fn conv2d_backward_weight_spikes_finish(
    g: &ConvGeom,
    parts: &WgradParts,
    grad_weight: &mut [f32],
    grad_bias: Option<&mut [f32]>,
) {
    if parts.batch() == 0 {
        return;
    }
    let cp = cout_pad(g);
    let mut total =
        Scratch::take(g.kh * g.kw * g.c_in * cp + if grad_bias.is_some() { g.c_out } else { 0 });
    parts.finish(&mut total);
    add_tap_major(g, cp, &total, grad_weight, grad_bias);
}

/// Rows of `dY` that [`wgrad_sample`] prefetches ahead of its transposition into cells.
const PREFETCH_ROWS: usize = 4;

multiversion!(fn wgrad_sample(p: &Wg, x: &[f32], dy: &[f32], out: &mut [f32], dyt: &mut [f32], act: &mut Vec<u32>, first: bool) => wgrad_sample_body);

#[inline(always)]
fn wgrad_sample_body(
    p: &Wg,
    x: &[f32],
    dy: &[f32],
    out: &mut [f32],
    dyt: &mut [f32],
    act: &mut Vec<u32>,
    first: bool,
) {
    let g = p.g;
    let (hw, cp, ow1) = (g.h * g.w, p.cp, g.ow + 1);
    // dY channels-last with a zero row `oh` and zero column `ow` for taps that hit nothing:
    // those and the padding channels stay as the caller zeroed them, so only the cells'
    // C_out values are written, not a fill of the whole grid per sample.
    // The rows PREFETCH_ROWS on are prefetched while a row is transposed.
    prefetch_planes(dy, g.ohw(), g.ohw().min(PREFETCH_ROWS * g.ow), g.c_out);
    for oy in 0..g.oh {
        if oy + PREFETCH_ROWS < g.oh {
            prefetch_planes(&dy[(oy + PREFETCH_ROWS) * g.ow..], g.ohw(), g.ow, g.c_out);
        }
        planes_to_cells(&dy[oy * g.ow..], g.ohw(), g.ow, g.c_out, &mut dyt[oy * ow1 * cp..], cp);
    }
    act.resize(hw, 0);
    #[cfg(target_arch = "x86_64")]
    let nine_taps_avx512 = g.kh * g.kw == 9 && super::simd::simd() == super::simd::Simd::Avx512;
    #[cfg(target_arch = "x86_64")]
    let nine_taps_avx2 = g.kh * g.kw == 9 && super::simd::simd() == super::simd::Simd::Avx2;
    #[cfg(not(target_arch = "x86_64"))]
    let nine_taps_avx2 = false;
    // A leaf's first sample writes its sums: the AVX2 3x3 kernel starts them from zero in
    // registers (the same bits as adding to a zeroed buffer), which saves a pass over the
    // leaf's gradient; the other kernels add to a buffer zeroed here.
    let writes = first && nine_taps_avx2;
    if first && !writes {
        out.fill(0.0);
    }
    for c in 0..g.c_in {
        let (n, _) = active_pixels(g, x, c, act);
        if n == 0 {
            if writes {
                for tap in 0..9 {
                    out[(tap * g.c_in + c) * cp..][..cp].fill(0.0);
                }
            }
            continue;
        }
        let act = &act[..n];
        // 3x3 kernels on AVX-512: all nine taps' blocks of 32 output channels per pass over
        // the active pixels (see wgrad_taps9_avx512); what is left, tap by tap.
        let mut first = 0;
        #[cfg(target_arch = "x86_64")]
        if nine_taps_avx512 {
            assert!(p.targets.len() >= 9 * hw && dyt.len() >= (g.oh + 1) * (g.ow + 1) * cp);
            while first + 32 <= cp {
                // SAFETY: AVX-512F is present (checked above); every target is a cell of the
                // (oh + 1) x (ow + 1) grid of cp floats each (asserted), act holds pixels < hw.
                unsafe {
                    wgrad_taps9_avx512(act, p.targets, hw, dyt, cp, first, out, c * cp, g.c_in * cp)
                };
                first += 32;
            }
        }
        #[cfg(target_arch = "x86_64")]
        if nine_taps_avx2 {
            assert!(p.targets.len() >= 9 * hw && dyt.len() >= (g.oh + 1) * (g.ow + 1) * cp);
            // SAFETY: AVX2 is present (checked above); every target is a cell of the
            // (oh + 1) x (ow + 1) grid of cp floats each (asserted), act holds pixels < hw.
            unsafe {
                wgrad_taps9_avx2(act, p.targets, hw, dyt, cp, out, c * cp, g.c_in * cp, writes)
            };
            first = cp;
        }
        for tap in 0..g.kh * g.kw {
            let targets = &p.targets[tap * hw..(tap + 1) * hw];
            let dst = (tap * g.c_in + c) * cp;
            let mut cb = first;
            while cb < cp {
                let o = &mut out[dst + cb..dst + cp];
                cb += match cp - cb {
                    r if r >= 64 => wgrad_block::<64>(act, targets, dyt, cp, cb, o),
                    r if r >= 32 => wgrad_block::<32>(act, targets, dyt, cp, cb, o),
                    r if r >= 16 => wgrad_block::<16>(act, targets, dyt, cp, cb, o),
                    _ => wgrad_block::<8>(act, targets, dyt, cp, cb, o),
                };
            }
        }
    }
}

/// [`wgrad_block`] for the nine taps of a 3x3 kernel at once, 32 output channels from `cb`:
/// tap `t`'s `out[base + t * tap_stride + cb..][..32]` += the sum over active pixels of
/// `dYt[its target cell, cb..cb + 32]`. One tap's sum is a chain of dependent adds (one per
/// active pixel, each waiting for the last, ~4 cycles): nine taps' sums side by side, in 18
/// registers, keep both adders busy instead. (Portable code for this kept the sums on the
/// stack.) Each sum adds the pixels in the same order: the bits are [`wgrad_block`]'s.
///
/// # Safety
/// AVX-512F must be present; `targets` must hold `9 * hw` cells below `dyt.len() / cp` and
/// `act` pixels below `hw`; `cb + 32 <= cp`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn wgrad_taps9_avx512(
    act: &[u32],
    targets: &[u32],
    hw: usize,
    dyt: &[f32],
    cp: usize,
    cb: usize,
    out: &mut [f32],
    base: usize,
    tap_stride: usize,
) {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        use std::arch::x86_64::*;
        let at = |t: usize| base + t * tap_stride + cb;
        assert!(cb + 32 <= cp && at(8) + 32 <= out.len());
        let o = out.as_mut_ptr();
        let mut lo: [__m512; 9] = crate::kernels::simd::array_of(|t| _mm512_loadu_ps(o.add(at(t))));
        let mut hi: [__m512; 9] =
            crate::kernels::simd::array_of(|t| _mm512_loadu_ps(o.add(at(t) + 16)));
        let d = dyt.as_ptr().add(cb);
        for &a in act {
            for t in 0..9 {
                let from = *targets.get_unchecked(t * hw + a as usize) as usize * cp;
                lo[t] = _mm512_add_ps(lo[t], _mm512_loadu_ps(d.add(from)));
                hi[t] = _mm512_add_ps(hi[t], _mm512_loadu_ps(d.add(from + 16)));
            }
        }
        for t in 0..9 {
            _mm512_storeu_ps(o.add(at(t)), lo[t]);
            _mm512_storeu_ps(o.add(at(t) + 16), hi[t]);
        }
    }
}

/// [`wgrad_taps9_avx512`] in AVX2 for all `cp` output channels (a multiple of 8): sixteen
/// registers hold twelve sums at most, so blocks of 32 channels run three taps per pass over the
/// active pixels (three passes), blocks of 16 six and three taps, a last block of 8 all nine.
/// Each sum adds the pixels in the same order: the bits are [`wgrad_block`]'s. With `write`
/// the sums start from zero and overwrite `out` instead of adding to it.
///
/// # Safety
/// AVX2 must be present; `targets` must hold `9 * hw` cells below `dyt.len() / cp` and
/// `act` pixels below `hw`; `cp` a multiple of 8.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn wgrad_taps9_avx2(
    act: &[u32],
    targets: &[u32],
    hw: usize,
    dyt: &[f32],
    cp: usize,
    out: &mut [f32],
    base: usize,
    tap_stride: usize,
    write: bool,
) {
    // SAFETY: the caller keeps this function's `# Safety` contract.
    unsafe {
        assert!(cp.is_multiple_of(8) && base + 8 * tap_stride + cp <= out.len());
        let out = out.as_mut_ptr();
        let at = WgradTaps { act, targets, hw, dyt, cp, out, base, tap_stride, write };
        let mut cb = 0;
        while cb + 32 <= cp {
            for tap0 in [0, 3, 6] {
                at.sum::<3, 4>(tap0, cb);
            }
            cb += 32;
        }
        if cb + 16 <= cp {
            at.sum::<6, 2>(0, cb);
            at.sum::<3, 2>(6, cb);
            cb += 16;
        }
        if cb + 8 <= cp {
            at.sum::<9, 1>(0, cb);
        }
    }
}

/// What [`wgrad_taps9_avx2`]'s passes share.
#[cfg(target_arch = "x86_64")]
struct WgradTaps<'a> {
    act: &'a [u32],
    targets: &'a [u32],
    hw: usize,
    dyt: &'a [f32],
    cp: usize,
    out: *mut f32,
    base: usize,
    tap_stride: usize,
    write: bool,
}

#[cfg(target_arch = "x86_64")]
impl WgradTaps<'_> {
    /// Taps `tap0..tap0 + T`, channels `cb..cb + 8 * V`: `T * V` sums in registers over one
    /// pass of the active pixels.
    ///
    /// # Safety
    /// Inlined into [`wgrad_taps9_avx2`], whose contract covers every access.
    #[inline(always)]
    unsafe fn sum<const T: usize, const V: usize>(&self, tap0: usize, cb: usize) {
        // SAFETY: the caller keeps this function's `# Safety` contract.
        unsafe {
            use crate::kernels::simd::array_of;
            use std::arch::x86_64::*;
            let o = self.out.add(self.base + cb);
            let at = |t: usize, k: usize| o.add((tap0 + t) * self.tap_stride + 8 * k);
            let start =
                |t, k| if self.write { _mm256_setzero_ps() } else { _mm256_loadu_ps(at(t, k)) };
            let mut acc: [[__m256; V]; T] = array_of(|t| array_of(|k| start(t, k)));
            let d = self.dyt.as_ptr().add(cb);
            let tg = self.targets.as_ptr().add(tap0 * self.hw);
            for &a in self.act {
                for (t, sums) in acc.iter_mut().enumerate() {
                    let from = *tg.add(t * self.hw + a as usize) as usize * self.cp;
                    for (k, s) in sums.iter_mut().enumerate() {
                        *s = _mm256_add_ps(*s, _mm256_loadu_ps(d.add(from + 8 * k)));
                    }
                }
            }
            for (t, sums) in acc.iter().enumerate() {
                for (k, s) in sums.iter().enumerate() {
                    _mm256_storeu_ps(at(t, k), *s);
                }
            }
        }
    }
}

/// `out[..CB] += sum over active pixels of dYt[target pixel, cb..cb+CB]`; returns `CB`.
#[inline(always)]
fn wgrad_block<const CB: usize>(
    act: &[u32],
    targets: &[u32],
    dyt: &[f32],
    cp: usize,
    cb: usize,
    out: &mut [f32],
) -> usize {
    let mut acc: [f32; CB] = out[..CB].try_into().unwrap();
    for &a in act {
        let at = targets[a as usize] as usize * cp + cb;
        let src: &[f32; CB] = dyt[at..at + CB].try_into().unwrap();
        for k in 0..CB {
            acc[k] += src[k];
        }
    }
    out[..CB].copy_from_slice(&acc);
    CB
}
