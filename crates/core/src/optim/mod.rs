//! Optimizers (SGD, Adam, AdamW), learning-rate schedules and the weight average (EMA).
//!
//! The updates follow PyTorch's `torch.optim` formulas step for step (same order of
//! operations, f32 element arithmetic, f64 scalar coefficients) so that a run can be checked
//! against PyTorch/SpikingJelly reference values. The learning rate is not owned by the
//! optimizer: the trainer asks the schedule for it and passes it to every `step`.
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layer::Param;
use crate::tensor::Tensor;

#[doc(hidden)]
pub mod adam;
pub mod ema;
pub mod schedule;
#[doc(hidden)]
pub mod sgd;

pub use adam::Adam;
pub use ema::{Ema, EmaSpec};
pub use schedule::ScheduleSpec;
pub use sgd::Sgd;

/// An optimizer with per-parameter state (moment buffers, step count).
///
/// `params` must be the same list, in the same order, at every step: state is matched to a
/// parameter by its index and checked against its name and shape.
pub trait Optimizer: Send {
    /// `"sgd"`, `"adam"` or `"adamW"`, as in the spec.
    fn kind(&self) -> &'static str;

    /// One update of every parameter from its `grad`, with this step's learning rate.
    fn step(&mut self, params: &mut [&mut Param], lr: f32) -> Result<()>;

    /// Everything needed to resume: keys are `"{index}/{param name}/{slot}"` for per-parameter
    /// buffers (e.g. `0/layers.0.weight/exp_avg`) and `"step"` for the step count.
    fn state(&self) -> Vec<(String, Tensor)>;

    /// Replaces the state with one returned by `state()` of an optimizer of the same kind.
    /// Names and shapes are checked against the parameters at the next `step`.
    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()>;
}

/// JSON description of an optimizer, e.g. `{"type": "sgd", "lr": 0.1, "momentum": 0.9}`.
/// `lr` is the base learning rate that schedules scale.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum OptimizerSpec {
    Sgd {
        lr: f32,
        #[serde(default)]
        momentum: f32,
        #[serde(default)]
        dampening: f32,
        #[serde(default)]
        nesterov: bool,
        #[serde(default)]
        weight_decay: f32,
    },
    Adam {
        /// PyTorch's default.
        #[serde(default = "default_adam_lr")]
        lr: f32,
        #[serde(default = "default_betas")]
        betas: [f32; 2],
        #[serde(default = "default_eps")]
        eps: f32,
        #[serde(default)]
        weight_decay: f32,
    },
    /// Adam with decoupled weight decay (Loshchilov & Hutter).
    #[serde(alias = "adamw")]
    AdamW {
        #[serde(default = "default_adam_lr")]
        lr: f32,
        #[serde(default = "default_betas")]
        betas: [f32; 2],
        #[serde(default = "default_eps")]
        eps: f32,
        #[serde(default = "default_adamw_decay")]
        weight_decay: f32,
    },
}

fn default_adam_lr() -> f32 {
    1e-3
}
fn default_betas() -> [f32; 2] {
    [0.9, 0.999]
}
fn default_eps() -> f32 {
    1e-8
}
fn default_adamw_decay() -> f32 {
    0.01
}

impl OptimizerSpec {
    /// The base learning rate.
    pub fn lr(&self) -> f32 {
        match self {
            OptimizerSpec::Sgd { lr, .. }
            | OptimizerSpec::Adam { lr, .. }
            | OptimizerSpec::AdamW { lr, .. } => *lr,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            OptimizerSpec::Sgd { .. } => "sgd",
            OptimizerSpec::Adam { .. } => "adam",
            OptimizerSpec::AdamW { .. } => "adamW",
        }
    }

    /// Checks every hyper-parameter; errors name it as written in JSON.
    pub fn validate(&self) -> Result<()> {
        match *self {
            OptimizerSpec::Sgd { lr, momentum, dampening, nesterov, weight_decay } => {
                check_lr(lr)?;
                check_range("optimizer.momentum", momentum, 0.0, 1.0, false)?;
                check_range("optimizer.dampening", dampening, 0.0, 1.0, true)?;
                check_weight_decay(weight_decay)?;
                if nesterov && (momentum <= 0.0 || dampening != 0.0) {
                    return Err(Error::value(
                        "optimizer.nesterov",
                        "nesterov only with momentum > 0 and dampening 0",
                        format!("momentum {momentum}, dampening {dampening}"),
                    ));
                }
                Ok(())
            }
            OptimizerSpec::Adam { lr, betas, eps, weight_decay }
            | OptimizerSpec::AdamW { lr, betas, eps, weight_decay } => {
                check_lr(lr)?;
                check_range("optimizer.betas[0]", betas[0], 0.0, 1.0, false)?;
                check_range("optimizer.betas[1]", betas[1], 0.0, 1.0, false)?;
                // PyTorch accepts eps = 0, but then a parameter whose gradient is still exactly
                // zero divides 0 by 0; refusing it up front is kinder than a NaN model.
                if !(eps.is_finite() && eps > 0.0) {
                    return Err(Error::value("optimizer.eps", "a finite number > 0", eps));
                }
                check_weight_decay(weight_decay)
            }
        }
    }

    pub fn build(&self) -> Result<Box<dyn Optimizer>> {
        self.validate()?;
        Ok(match *self {
            OptimizerSpec::Sgd { momentum, dampening, nesterov, weight_decay, .. } => {
                Box::new(Sgd::new(momentum, dampening, nesterov, weight_decay))
            }
            OptimizerSpec::Adam { betas, eps, weight_decay, .. } => {
                Box::new(Adam::new(betas, eps, weight_decay, false))
            }
            OptimizerSpec::AdamW { betas, eps, weight_decay, .. } => {
                Box::new(Adam::new(betas, eps, weight_decay, true))
            }
        })
    }
}

fn check_lr(lr: f32) -> Result<()> {
    if !(lr.is_finite() && lr > 0.0) {
        return Err(Error::value("optimizer.lr", "a finite number > 0", lr));
    }
    Ok(())
}

fn check_weight_decay(wd: f32) -> Result<()> {
    if !(wd.is_finite() && wd >= 0.0) {
        return Err(Error::value("optimizer.weightDecay", "a finite number >= 0", wd));
    }
    Ok(())
}

/// `[lo, hi)` or `[lo, hi]`; NaN fails both comparisons and is refused.
pub(crate) fn check_range(at: &str, v: f32, lo: f32, hi: f32, hi_inclusive: bool) -> Result<()> {
    let ok = v >= lo && if hi_inclusive { v <= hi } else { v < hi };
    if !ok {
        let close = if hi_inclusive { ']' } else { ')' };
        return Err(Error::value(at, format!("a number in [{lo}, {hi}{close}"), v));
    }
    Ok(())
}

/// The learning rate handed to `step` comes from a schedule, which may legitimately reach 0
/// (cosine to `minLr = 0`), so only negative and non-finite values are refused.
#[doc(hidden)]
pub fn check_step_lr(at: &str, lr: f32) -> Result<()> {
    if !(lr.is_finite() && lr >= 0.0) {
        return Err(Error::value(format!("{at}.step lr"), "a finite number >= 0", lr));
    }
    Ok(())
}

/// Below this many elements the update runs on the calling thread: spawning rayon tasks for a
/// bias vector costs more than the update itself.
#[doc(hidden)]
pub const PAR_MIN: usize = 1 << 15;
/// Chunk length for the parallel update. Each chunk is independent element-wise work, so the
/// result does not depend on how rayon schedules the chunks.
#[doc(hidden)]
pub const PAR_CHUNK: usize = 1 << 13;

/// Runs `f` over matching chunks of up to three mutable buffers (value and state) and the
/// gradient. Element-wise updates only: `f` must treat every index independently.
#[doc(hidden)]
pub fn for_chunks<F>(value: &mut [f32], grad: &[f32], a: &mut [f32], b: &mut [f32], f: F)
where
    F: Fn(&mut [f32], &[f32], &mut [f32], &mut [f32]) + Sync,
{
    let n = value.len();
    if n < PAR_MIN {
        return f(value, grad, a, b);
    }
    // Empty state buffers (SGD without momentum) become empty chunks so every job still
    // gets a tuple; `f` sees them empty.
    let chunks = n.div_ceil(PAR_CHUNK);
    let jobs: Vec<_> = value
        .chunks_mut(PAR_CHUNK)
        .zip(grad.chunks(PAR_CHUNK))
        .zip(split_or_empty(a, chunks).into_iter().zip(split_or_empty(b, chunks)))
        .collect();
    jobs.into_par_iter().for_each(|((v, g), (a, b))| f(v, g, a, b));
}

fn split_or_empty(s: &mut [f32], chunks: usize) -> Vec<&mut [f32]> {
    if s.is_empty() {
        (0..chunks).map(|_| <&mut [f32]>::default()).collect()
    } else {
        s.chunks_mut(PAR_CHUNK).collect()
    }
}

/// Per-parameter state buffers, indexed like the parameter list.
#[derive(Clone, Debug)]
#[doc(hidden)]
pub struct SlotStore {
    slots: &'static [&'static str],
    /// `None` until the parameter's first step (PyTorch creates state lazily too; SGD relies
    /// on it to initialise the momentum buffer with the raw gradient).
    entries: Vec<Option<Entry>>,
}

#[derive(Clone, Debug)]
#[doc(hidden)]
pub struct Entry {
    name: String,
    bufs: Vec<Tensor>,
}

impl SlotStore {
    #[doc(hidden)]
    pub fn new(slots: &'static [&'static str]) -> Self {
        SlotStore { slots, entries: Vec::new() }
    }

    /// Checks that the parameters still match the stored state (same count where state exists,
    /// same names and shapes) and that every gradient has its value's shape.
    fn check(&mut self, at: &str, params: &[&mut Param]) -> Result<()> {
        for p in params.iter() {
            if p.grad.shape() != p.value.shape() {
                return Err(Error::shape(
                    format!("{at}: gradient of {}", p.name),
                    format!("{:?} (the parameter's shape)", p.value.shape()),
                    p.grad.shape(),
                ));
            }
        }
        if self.entries.iter().any(Option::is_some) && self.entries.len() != params.len() {
            return Err(Error::state(
                at,
                format!(
                    "the optimizer holds state for {} parameters but step got {}",
                    self.entries.len(),
                    params.len()
                ),
            ));
        }
        for (i, (e, p)) in self.entries.iter().zip(params.iter()).enumerate() {
            if let Some(e) = e {
                if e.name != p.name {
                    return Err(Error::state(
                        at,
                        format!("state of parameter {i} belongs to {}, not {}", e.name, p.name),
                    ));
                }
                for (slot, buf) in self.slots.iter().zip(&e.bufs) {
                    if buf.shape() != p.value.shape() {
                        return Err(Error::shape(
                            format!("{at}: state {slot} of {}", p.name),
                            format!("{:?} (the parameter's shape)", p.value.shape()),
                            buf.shape(),
                        ));
                    }
                }
            }
        }
        self.entries.resize_with(params.len(), || None);
        Ok(())
    }

    fn export(&self, out: &mut Vec<(String, Tensor)>) {
        for (i, e) in self.entries.iter().enumerate() {
            if let Some(e) = e {
                for (slot, buf) in self.slots.iter().zip(&e.bufs) {
                    out.push((format!("{i}/{}/{slot}", e.name), buf.clone()));
                }
            }
        }
    }

    /// Reads back every `"{i}/{name}/{slot}"` key; other keys are left to the caller, which
    /// gets them back. A parameter must come with all of its slots.
    fn import<'s>(
        &mut self,
        at: &str,
        state: &'s [(String, Tensor)],
    ) -> Result<Vec<&'s (String, Tensor)>> {
        let mut entries: Vec<Option<Entry>> = Vec::new();
        let mut rest = Vec::new();
        for item in state {
            let key = &item.0;
            let Some((idx, tail)) = key.split_once('/') else {
                rest.push(item);
                continue;
            };
            let bad = || {
                Error::value(
                    format!("{at}.load_state"),
                    "keys \"{index}/{name}/{slot}\" or \"step\"",
                    format!("\"{key}\""),
                )
            };
            let i: usize = idx.parse().map_err(|_| bad())?;
            let (name, slot) = tail.rsplit_once('/').ok_or_else(bad)?;
            let s = self.slots.iter().position(|x| *x == slot).ok_or_else(|| {
                Error::value(
                    format!("{at}.load_state: \"{key}\""),
                    format!("a slot among {:?}", self.slots),
                    format!("\"{slot}\""),
                )
            })?;
            if entries.len() <= i {
                entries.resize_with(i + 1, || None);
            }
            let e = entries[i].get_or_insert_with(|| Entry {
                name: name.to_string(),
                bufs: vec![Tensor::default(); self.slots.len()],
            });
            if e.name != name {
                return Err(Error::state(
                    format!("{at}.load_state"),
                    format!("parameter {i} is named both {} and {name}", e.name),
                ));
            }
            e.bufs[s] = item.1.clone();
        }
        // A missing slot would silently restart that moment from zero: refuse it. Empty
        // (default) tensors mark slots that were never given.
        for (i, e) in entries.iter().enumerate() {
            if let Some(e) = e {
                for (slot, buf) in self.slots.iter().zip(&e.bufs) {
                    if buf.shape().is_empty() {
                        return Err(Error::state(
                            format!("{at}.load_state"),
                            format!("missing \"{i}/{}/{slot}\"", e.name),
                        ));
                    }
                }
            }
        }
        self.entries = entries;
        Ok(rest)
    }
}

/// Step counts are stored as two exact f32 integers (low 24 bits, the rest), since a single
/// f32 would stop counting exactly after 2^24 steps.
#[doc(hidden)]
pub fn step_to_tensor(step: u64) -> Tensor {
    let lo = (step & 0xFF_FFFF) as f32;
    let hi = (step >> 24) as f32;
    Tensor::from_vec(&[2], vec![lo, hi]).expect("2 values for shape [2]")
}

#[doc(hidden)]
pub fn step_from_tensor(at: &str, t: &Tensor) -> Result<u64> {
    let d = t.data();
    let ok = t.shape() == [2]
        && d.iter().all(|v| v.is_finite() && *v >= 0.0 && v.fract() == 0.0)
        && d[0] < (1u64 << 24) as f32
        && d[1] < (1u64 << 24) as f32;
    if !ok {
        return Err(Error::value(
            format!("{at}.load_state: \"step\""),
            "a [2] tensor of integers [low 24 bits, high bits]",
            format!("{:?} {:?}", t.shape(), d),
        ));
    }
    Ok(d[0] as u64 | ((d[1] as u64) << 24))
}
