//! The fused BN + neuron kernels over a window of time steps `[t0, t0 + len)` of a `T`-step
//! sequence. What the whole-sequence kernels ([`super::forward_bn`], [`super::backward_bn`])
//! keep in registers over all steps is carried across windows in per-element arrays: forward,
//! the charge `H` of the step before the window (from which the membrane potential follows);
//! backward, `dL/dV` flowing back into the window and the per-element sums over time. A
//! sequence then runs window after window (forward in time order, backward in reverse) with
//! only window-sized activations live, and every element sees the same operations in the same
//! order as in one call over all steps: the spikes, `dL/dy`, the BN sums and `dL/dw` are the
//! same bits ([`window_sums`] adds the per-element sums up per channel and over the fixed
//! chunks of [`CHUNK`] elements exactly as the whole-sequence backward does).
use super::super::surrogate::Surrogate;
use super::{
    check_bn_layout, for_runs, neuron_step, with_charge, Charge, Consts, Dynamics, SharedMut,
    WithCharge, CHUNK,
};
use crate::kernels::batch_norm::{sum_as_f64, ChannelAffine};
use crate::kernels::tasks::{map_tasks, sum_tasks};

/// The membrane potential after a step whose charge was `hv`, as the forward leaves it.
#[inline(always)]
fn v_after<const HARD: bool>(hv: f32, v_th: f32, v_rest: f32) -> f32 {
    let mut v = 0.0;
    // A step of charge `hv` from any state: `neuron_step` applies the reset to it.
    let charged = |_: f32, _: f32| hv;
    neuron_step::<_, HARD>(&charged, v_th, v_rest, 0.0, &mut v);
    v
}

/// `V_{t-1}` as the backward rebuilds it from `H_{t-1}` (the spike its Heaviside).
#[inline(always)]
fn v_prev_of<const HARD: bool>(hp: f32, v_th: f32, v_rest: f32) -> f32 {
    let sp = if hp - v_th >= 0.0 { 1.0f32 } else { 0.0 };
    if HARD {
        (1.0 - sp) * hp + sp * v_rest
    } else {
        hp - sp * v_th
    }
}

/// The affine of element `e`'s channel (identity without a BN).
#[inline(always)]
fn lane(bn: Option<&ChannelAffine>, mean: Option<&[f32]>, e: usize) -> (f32, f32, f32) {
    match bn {
        Some(bn) => {
            let c = bn.channel(e);
            (bn.scale[c], bn.shift[c], mean.map_or(0.0, |m| m[c]))
        }
        None => (1.0, 0.0, 0.0),
    }
}

/// Forward of the window: `x` (`[len, numel]`, the BN's input with `bn`) into spikes `out`.
/// `h` (`[numel]`) holds on entry the charge of the step before the window (not read when
/// `first`, the window starting at step 0) and on exit that of the window's last step.
/// Returns the number of spikes.
#[doc(hidden)]
pub fn forward_window(
    d: &Dynamics,
    x: &[f32],
    bn: Option<ChannelAffine>,
    len: usize,
    first: bool,
    h: &mut [f32],
    out: &mut [f32],
) -> u64 {
    assert_eq!(x.len(), out.len());
    assert_eq!(h.len() * len, x.len(), "forward_window: one state per element");
    if x.is_empty() {
        return 0;
    }
    check_bn_layout(bn.as_ref(), h.len());
    with_charge(d, ForwardWindow { consts: Consts::of(d), x, bn, len, first, h, out })
}

struct ForwardWindow<'a> {
    consts: Consts,
    x: &'a [f32],
    bn: Option<ChannelAffine<'a>>,
    len: usize,
    first: bool,
    h: &'a mut [f32],
    out: &'a mut [f32],
}

/// The charge equation behind one indirect call: the window kernels run only in the memory-lean
/// mode's chunked backward, not a hot path, so they are compiled once per reset kind instead of
/// once per charge equation, reset and surrogate (the per-step operations, and so the bits, are
/// the same either way).
type DynCharge<'c> = &'c (dyn Fn(f32, f32) -> f32 + Sync);

impl WithCharge for ForwardWindow<'_> {
    type Out = u64;
    fn run<C: Fn(f32, f32) -> f32 + Copy + Send + Sync + 'static, const HARD: bool>(
        self,
        charge: C,
    ) -> u64 {
        forward_body::<HARD>(self, &charge)
    }
}

fn forward_body<const HARD: bool>(w: ForwardWindow, charge: DynCharge) -> u64 {
    let Consts { v_th, v_rest } = w.consts;
    let (x, bn, len, first) = (w.x, w.bn.as_ref(), w.len, w.first);
    let numel = w.h.len();
    let out = SharedMut::new(w.out);
    let h = SharedMut::new(w.h);
    sum_tasks(numel.div_ceil(CHUNK), &|c| {
        let i0 = c * CHUNK;
        // SAFETY: chunk c of the states belongs to this task alone.
        let hs = unsafe { h.range(i0, CHUNK.min(numel - i0)) };
        let mut count = 0u64;
        for (j, hv_out) in hs.iter_mut().enumerate() {
            let e = i0 + j;
            let (sc, sh, _) = lane(bn, None, e);
            let mut v = if first { v_rest } else { v_after::<HARD>(*hv_out, v_th, v_rest) };
            for t in 0..len {
                let xv = x[t * numel + e];
                let xin = if bn.is_some() { ChannelAffine::apply(xv, sc, sh) } else { xv };
                let (hv, s) = neuron_step::<_, HARD>(&charge, v_th, v_rest, xin, &mut v);
                // SAFETY: element e of each row belongs to this task alone.
                unsafe { out.range(t * numel + e, 1)[0] = s };
                count += s as u64;
                *hv_out = hv;
            }
        }
        count
    })
}

/// What the backward carries from one window to the one before it, per element: `dL/dV` of
/// the step before the later window, and the sums over the steps done so far of the PLIF
/// gradient's and the BN sums' terms (in f32, as the whole-sequence kernel sums them). A
/// pass that needs no sums (they were taken by an earlier pass over the same windows) carries
/// `dL/dV` alone ([`WindowCarry::flow_only`]): the sums' arrays are then empty.
#[doc(hidden)]
#[derive(Clone, Debug, Default)]
pub struct WindowCarry {
    pub gv: Vec<f32>,
    pub wacc: Vec<f32>,
    pub acc_dy: Vec<f32>,
    pub acc_dyx: Vec<f32>,
}

impl WindowCarry {
    /// The carry before the last window's backward: nothing flows back yet.
    pub fn new(numel: usize) -> Self {
        WindowCarry {
            gv: vec![0.0; numel],
            wacc: vec![0.0; numel],
            acc_dy: vec![0.0; numel],
            acc_dyx: vec![0.0; numel],
        }
    }

    /// A carry of `dL/dV` alone, for a backward whose [`window_sums`] are not wanted: a
    /// quarter of the memory, the same `dL/dy` bits (no sum feeds back into them).
    pub fn flow_only(numel: usize) -> Self {
        WindowCarry { gv: vec![0.0; numel], ..Default::default() }
    }

    /// Whether the carry keeps the per-element sums.
    fn sums(&self) -> bool {
        !self.acc_dy.is_empty()
    }

    /// Bytes of the four arrays.
    pub fn bytes(&self) -> usize {
        4 * (self.gv.len() + self.wacc.len() + self.acc_dy.len() + self.acc_dyx.len())
    }
}

/// Backward of [`forward_window`]: `x` is the window's BN input (`[len, numel]`), `bn` the
/// affine and mean the forward used; `grad` holds `dL/dS` of the window's steps on entry and
/// `dL/dy` (the BN output's gradient; the neuron input's without a BN) on exit. `h_before`:
/// the charge of the step before the window (None for the window at step 0). Windows run
/// from the last to the first with one `carry`; [`window_sums`] then gives the BN sums and
/// `dL/dw`.
#[allow(clippy::too_many_arguments)]
#[doc(hidden)]
pub fn backward_window(
    d: &Dynamics,
    surrogate: Surrogate,
    x: &[f32],
    bn: Option<(ChannelAffine, &[f32])>,
    len: usize,
    h_before: Option<&[f32]>,
    grad: &mut [f32],
    carry: &mut WindowCarry,
) {
    let numel = carry.gv.len();
    let sums = carry.sums();
    assert!(!sums || [&carry.wacc, &carry.acc_dy, &carry.acc_dyx].iter().all(|a| a.len() == numel));
    assert_eq!(x.len(), numel * len, "backward_window: x is [len, numel]");
    assert_eq!(grad.len(), x.len(), "backward_window: grad is [len, numel]");
    assert!(h_before.is_none_or(|h| h.len() == numel));
    if numel == 0 || len == 0 {
        return;
    }
    check_bn_layout(bn.as_ref().map(|(a, _)| a), numel);
    let (ax, av) = d.charge.partials();
    let plif = !matches!(w_mode(d), WMode::None);
    let pass = BackwardWindow {
        surrogate,
        consts: Consts::of(d),
        ax,
        av,
        decay_input: matches!(w_mode(d), WMode::Decay),
        plif,
        detach: d.detach_reset,
        x,
        bn,
        len,
        numel,
        h_before,
        grad: SharedMut::new(grad),
        sums,
        carry,
    };
    with_charge(d, pass);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum WMode {
    None,
    Decay,
    NoDecay,
}

/// Whether the charge has a learnable decay (PLIF), and whether the input decays with it;
/// and `k = sigmoid(w)`.
fn w_mode(d: &Dynamics) -> WMode {
    match d.charge {
        Charge::PlifDecay0 { .. } | Charge::PlifDecay { .. } => WMode::Decay,
        Charge::PlifNoDecay0 { .. } | Charge::PlifNoDecay { .. } => WMode::NoDecay,
        _ => WMode::None,
    }
}

fn plif_k(d: &Dynamics) -> f32 {
    match d.charge {
        Charge::PlifDecay0 { k }
        | Charge::PlifDecay { k, .. }
        | Charge::PlifNoDecay0 { k }
        | Charge::PlifNoDecay { k, .. } => k,
        _ => 0.0,
    }
}

struct BackwardWindow<'a> {
    surrogate: Surrogate,
    consts: Consts,
    ax: f32,
    av: f32,
    decay_input: bool,
    plif: bool,
    detach: bool,
    x: &'a [f32],
    bn: Option<(ChannelAffine<'a>, &'a [f32])>,
    len: usize,
    numel: usize,
    h_before: Option<&'a [f32]>,
    grad: SharedMut,
    /// Whether `carry` keeps the sums (else they are computed and dropped).
    sums: bool,
    carry: &'a mut WindowCarry,
}

impl WithCharge for BackwardWindow<'_> {
    type Out = ();
    fn run<C: Fn(f32, f32) -> f32 + Copy + Send + Sync + 'static, const HARD: bool>(
        self,
        charge: C,
    ) {
        backward_body::<HARD>(self, &charge)
    }
}

fn backward_body<const HARD: bool>(pass: BackwardWindow, charge: DynCharge) {
    let BackwardWindow {
        surrogate,
        consts,
        ax,
        av,
        decay_input,
        plif,
        detach,
        x,
        bn,
        len,
        numel,
        h_before,
        grad,
        sums,
        carry,
    } = pass;
    let Consts { v_th, v_rest } = consts;
    let (affine, mean) = match &bn {
        Some((a, m)) => (Some(a), Some(*m)),
        None => (None, None),
    };
    let WindowCarry { gv, wacc, acc_dy, acc_dyx } = carry;
    let (gv, wacc) = (SharedMut::new(gv), SharedMut::new(wacc));
    let (acc_dy, acc_dyx) = (SharedMut::new(acc_dy), SharedMut::new(acc_dyx));
    map_tasks(numel.div_ceil(CHUNK), &|c| {
        let i0 = c * CHUNK;
        let n = CHUNK.min(numel - i0);
        // SAFETY: chunk c of the carried arrays belongs to this task alone.
        let gvs = unsafe { gv.range(i0, n) };
        // Without sums in the carry they start at 0 in each window and are dropped after it.
        let (waccs, dys, dyxs): (&mut [f32], &mut [f32], &mut [f32]) = if sums {
            // SAFETY: as above.
            unsafe { (wacc.range(i0, n), acc_dy.range(i0, n), acc_dyx.range(i0, n)) }
        } else {
            (&mut [], &mut [], &mut [])
        };
        let mut hs = vec![0.0f32; len];
        for j in 0..n {
            let e = i0 + j;
            let (sc, sh, mu) = lane(affine, mean, e);
            let hb = h_before.map(|h| h[e]);
            // The window's charges, recomputed as the forward made them.
            let mut v = hb.map_or(v_rest, |h| v_after::<HARD>(h, v_th, v_rest));
            for (t, ht) in hs.iter_mut().enumerate() {
                let xv = x[t * numel + e];
                let xin = if affine.is_some() { ChannelAffine::apply(xv, sc, sh) } else { xv };
                *ht = neuron_step::<_, HARD>(&charge, v_th, v_rest, xin, &mut v).0;
            }
            let (mut gvl, mut wa, mut ady, mut adyx) =
                if sums { (gvs[j], waccs[j], dys[j], dyxs[j]) } else { (gvs[j], 0.0, 0.0, 0.0) };
            for t in (0..len).rev() {
                let hv = hs[t];
                let u = hv - v_th;
                let sv = if u >= 0.0 { 1.0f32 } else { 0.0 };
                let sg = surrogate.grad(hv - v_th);
                // SAFETY: element e of each row belongs to this task alone.
                let slot = unsafe { &mut grad.range(t * numel + e, 1)[0] };
                let go = *slot;
                let (dv_dh, dv_ds) = if HARD { (1.0 - sv, v_rest - hv) } else { (1.0, -v_th) };
                let gs = if detach { go } else { go + gvl * dv_ds };
                let gh = gvl * dv_dh + gs * sg;
                let gx = gh * ax;
                *slot = gx;
                gvl = gh * av;
                let xv = x[t * numel + e];
                if affine.is_some() {
                    ady += gx;
                    adyx += gx * (xv - mu);
                }
                if plif {
                    let v_prev = if t > 0 {
                        v_prev_of::<HARD>(hs[t - 1], v_th, v_rest)
                    } else {
                        hb.map_or(v_rest, |h| v_prev_of::<HARD>(h, v_th, v_rest))
                    };
                    let xin = if affine.is_some() { ChannelAffine::apply(xv, sc, sh) } else { xv };
                    let dh_dk =
                        if decay_input { xin - (v_prev - v_rest) } else { -(v_prev - v_rest) };
                    wa += gh * dh_dk;
                }
            }
            gvs[j] = gvl;
            if sums {
                (waccs[j], dys[j], dyxs[j]) = (wa, ady, adyx);
            }
        }
    });
}

/// After the first window's backward: the BN's per-channel sums (overwritten) and `dL/dw`
/// for PLIF (0 otherwise), added up from `carry`'s per-element sums as the whole-sequence
/// backward adds them (per channel run inside each chunk of [`CHUNK`] elements, then over the
/// chunks in order).
#[doc(hidden)]
pub fn window_sums(
    d: &Dynamics,
    bn: Option<&ChannelAffine>,
    carry: &WindowCarry,
    sum_dy: &mut [f64],
    sum_dy_xc: &mut [f64],
) -> f64 {
    assert!(carry.sums(), "window_sums: the carry keeps no sums");
    sum_dy.fill(0.0);
    sum_dy_xc.fill(0.0);
    let numel = carry.gv.len();
    let plif = w_mode(d) != WMode::None;
    let mut dks = Vec::with_capacity(numel.div_ceil(CHUNK));
    for i0 in (0..numel).step_by(CHUNK) {
        let n = CHUNK.min(numel - i0);
        dks.push(if plif { sum_as_f64(&carry.wacc[i0..i0 + n]) } else { 0.0 });
        let (acc_dy, acc_dyx) = (&carry.acc_dy[i0..i0 + n], &carry.acc_dyx[i0..i0 + n]);
        match bn {
            Some(bn) if bn.hw == 1 => {
                let channels = bn.scale.len();
                let runs = channels.min(n);
                let (mut dys, mut dyxs) = (vec![0.0f64; runs], vec![0.0f64; runs]);
                for r in (0..n).step_by(channels) {
                    let len = channels.min(n - r);
                    for k in 0..len {
                        dys[k] += acc_dy[r + k] as f64;
                        dyxs[k] += acc_dyx[r + k] as f64;
                    }
                }
                let mut c = i0 % channels;
                for k in 0..runs {
                    sum_dy[c] += dys[k];
                    sum_dy_xc[c] += dyxs[k];
                    c = if c + 1 == channels { 0 } else { c + 1 };
                }
            }
            Some(bn) => for_runs(Some(bn), i0, n, |a, b, ch| {
                let (dy, dyx) = (sum_as_f64(&acc_dy[a..b]), sum_as_f64(&acc_dyx[a..b]));
                sum_dy[ch] += dy;
                sum_dy_xc[ch] += dyx;
            }),
            None => {}
        }
    }
    let dk: f64 = dks.into_iter().sum();
    if plif {
        // Chain through k = sigmoid(w): dk/dw = k (1 - k).
        let k = plif_k(d) as f64;
        dk * k * (1.0 - k)
    } else {
        0.0
    }
}
