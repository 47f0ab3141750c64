//! Learning-rate schedules, evaluated in closed form per optimizer step (not per epoch).
//!
//! `step` counts optimizer updates from 0: `lr_at(base, k)` is the rate of the (k+1)-th
//! update, which is what PyTorch gives when `scheduler.step()` follows every `optimizer.step()`.
//!
//! Warm-up (any schedule): over the first `warmupSteps` updates the rate rises linearly from
//! `warmupStartFactor * base` towards `base` (PyTorch `LinearLR(start_factor, 1.0,
//! total_iters=warmupSteps)`); the main schedule then starts from its own step 0, as with
//! `SequentialLR(..., milestones=[warmupSteps])`. `warmupStartFactor` defaults to 0.1: a tenth
//! of the base rate is a common, gentle start, whereas PyTorch's LinearLR default (1/3) is
//! arbitrary for this purpose.
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum ScheduleSpec {
    /// The base rate throughout.
    Constant {
        #[serde(default)]
        warmup_steps: usize,
        #[serde(default = "default_warmup_start")]
        warmup_start_factor: f32,
    },
    /// `CosineAnnealingLR(T_max = totalSteps - warmupSteps, eta_min = minLr)`. After
    /// `totalSteps` the rate stays at `minLr`; PyTorch's closed form would climb back up, which
    /// is never what training past the planned length wants.
    Cosine {
        /// Total updates, warm-up included.
        total_steps: usize,
        #[serde(default)]
        min_lr: f32,
        #[serde(default)]
        warmup_steps: usize,
        #[serde(default = "default_warmup_start")]
        warmup_start_factor: f32,
    },
    /// `StepLR`: multiply by `gamma` (in (0, 1]) every `stepSize` updates.
    Step {
        step_size: usize,
        /// PyTorch's default.
        #[serde(default = "default_gamma")]
        gamma: f32,
        #[serde(default)]
        warmup_steps: usize,
        #[serde(default = "default_warmup_start")]
        warmup_start_factor: f32,
    },
}

fn default_warmup_start() -> f32 {
    0.1
}
fn default_gamma() -> f32 {
    0.1
}

impl Default for ScheduleSpec {
    fn default() -> Self {
        ScheduleSpec::Constant { warmup_steps: 0, warmup_start_factor: default_warmup_start() }
    }
}

impl ScheduleSpec {
    fn warmup(&self) -> (usize, f32) {
        match *self {
            ScheduleSpec::Constant { warmup_steps, warmup_start_factor }
            | ScheduleSpec::Cosine { warmup_steps, warmup_start_factor, .. }
            | ScheduleSpec::Step { warmup_steps, warmup_start_factor, .. } => {
                (warmup_steps, warmup_start_factor)
            }
        }
    }

    /// Checks every field; errors name it as written in JSON.
    pub fn validate(&self) -> Result<()> {
        let (warmup_steps, start) = self.warmup();
        if !(start > 0.0 && start <= 1.0) {
            return Err(Error::value("schedule.warmupStartFactor", "a number in (0, 1]", start));
        }
        match *self {
            ScheduleSpec::Constant { .. } => Ok(()),
            ScheduleSpec::Cosine { total_steps, min_lr, .. } => {
                if total_steps <= warmup_steps {
                    return Err(Error::value(
                        "schedule.totalSteps",
                        format!("an integer > warmupSteps ({warmup_steps})"),
                        total_steps,
                    ));
                }
                if !(min_lr.is_finite() && min_lr >= 0.0) {
                    return Err(Error::value("schedule.minLr", "a finite number >= 0", min_lr));
                }
                Ok(())
            }
            ScheduleSpec::Step { step_size, gamma, .. } => {
                if step_size == 0 {
                    return Err(Error::value("schedule.stepSize", "an integer >= 1", step_size));
                }
                // A growing rate (gamma > 1) is almost surely a typo for its inverse.
                if !(gamma > 0.0 && gamma <= 1.0) {
                    return Err(Error::value("schedule.gamma", "a number in (0, 1]", gamma));
                }
                Ok(())
            }
        }
    }

    /// The learning rate of update number `step` (from 0). Assumes a validated spec.
    pub fn lr_at(&self, base_lr: f32, step: usize) -> f32 {
        let base = base_lr as f64;
        let (warmup_steps, start) = self.warmup();
        if step < warmup_steps {
            let start = start as f64;
            return (base * (start + (1.0 - start) * step as f64 / warmup_steps as f64)) as f32;
        }
        let s = step - warmup_steps;
        let lr = match *self {
            ScheduleSpec::Constant { .. } => base,
            ScheduleSpec::Cosine { total_steps, min_lr, .. } => {
                let span = total_steps.saturating_sub(warmup_steps).max(1);
                let min = min_lr as f64;
                if s >= span {
                    min
                } else {
                    let phase = std::f64::consts::PI * s as f64 / span as f64;
                    min + (base - min) * (1.0 + phase.cos()) / 2.0
                }
            }
            ScheduleSpec::Step { step_size, gamma, .. } => {
                let k = (s / step_size.max(1)) as i32;
                base * (gamma as f64).powi(k)
            }
        };
        lr as f32
    }
}
