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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> ScheduleSpec {
        let s: ScheduleSpec = serde_json::from_str(json).unwrap();
        s.validate().unwrap();
        s
    }

    fn close(a: f32, b: f64) -> bool {
        (a as f64 - b).abs() < 1e-6 * b.abs().max(1.0)
    }

    /// `s` gives `lr` at each `(step, lr)` from the base rate `base`.
    fn assert_rates(s: &ScheduleSpec, base: f32, rates: &[(usize, f64)]) {
        for &(step, lr) in rates {
            assert!(close(s.lr_at(base, step), lr), "step {step}: {}", s.lr_at(base, step));
        }
    }

    #[test]
    fn constant() {
        let s = parse(r#"{"type":"constant"}"#);
        assert_eq!(s, ScheduleSpec::default());
        for k in [0, 1, 1000] {
            assert_eq!(s.lr_at(0.1, k), 0.1);
        }
    }

    #[test]
    fn cosine_closed_form() {
        let s = parse(r#"{"type":"cosine","totalSteps":100}"#);
        assert!(close(s.lr_at(0.1, 0), 0.1));
        assert!(close(s.lr_at(0.1, 50), 0.05));
        // cos(pi/4): 0.1 * (1 + sqrt(2)/2) / 2
        assert!(close(s.lr_at(0.1, 25), 0.1 * (1.0 + 0.5f64.sqrt()) / 2.0));
        assert!(close(s.lr_at(0.1, 100), 0.0));
        assert!(close(s.lr_at(0.1, 150), 0.0), "stays at the minimum past the end");

        let s = parse(r#"{"type":"cosine","totalSteps":10,"minLr":0.01}"#);
        assert!(close(s.lr_at(0.1, 0), 0.1));
        assert!(close(s.lr_at(0.1, 5), 0.055));
        assert!(close(s.lr_at(0.1, 10), 0.01));
        assert!(s.lr_at(0.1, 3) > s.lr_at(0.1, 4));
    }

    #[test]
    fn step_decay_boundaries() {
        let s = parse(r#"{"type":"step","stepSize":30,"gamma":0.5}"#);
        assert_rates(&s, 0.2, &[(0, 0.2), (29, 0.2), (30, 0.1), (59, 0.1), (60, 0.05)]);
        let s = parse(r#"{"type":"step","stepSize":2}"#);
        assert!(close(s.lr_at(1.0, 5), 0.01));
    }

    #[test]
    fn warmup_ramp_then_main_schedule() {
        let s = parse(r#"{"type":"cosine","totalSteps":14,"warmupSteps":4}"#);
        // Linear from 0.1 * base: factors 0.1, 0.325, 0.55, 0.775, then the cosine from base.
        for (k, f) in [(0, 0.1), (1, 0.325), (2, 0.55), (3, 0.775)] {
            assert!(close(s.lr_at(2.0, k), 2.0 * f), "step {k}: {}", s.lr_at(2.0, k));
        }
        assert!(close(s.lr_at(2.0, 4), 2.0));
        assert!(close(s.lr_at(2.0, 9), 1.0), "half-way through the 10 cosine steps");
        assert!(close(s.lr_at(2.0, 14), 0.0));

        let s = parse(
            r#"{"type":"step","stepSize":3,"gamma":0.1,"warmupSteps":2,"warmupStartFactor":0.5}"#,
        );
        assert_rates(&s, 1.0, &[(0, 0.5), (1, 0.75), (2, 1.0), (4, 1.0), (5, 0.1)]);

        let s = parse(r#"{"type":"constant","warmupSteps":10}"#);
        assert!(close(s.lr_at(1.0, 5), 0.55));
        assert!(close(s.lr_at(1.0, 10), 1.0));
    }

    #[test]
    fn invalid_specs() {
        let err = |json: &str| {
            let s: ScheduleSpec = serde_json::from_str(json).unwrap();
            s.validate().unwrap_err().to_string()
        };
        assert_eq!(
            err(r#"{"type":"cosine","totalSteps":5,"warmupSteps":5}"#),
            "schedule.totalSteps: expected an integer > warmupSteps (5), got 5"
        );
        assert!(err(r#"{"type":"cosine","totalSteps":0}"#).starts_with("schedule.totalSteps:"));
        assert!(
            err(r#"{"type":"cosine","totalSteps":5,"minLr":-1}"#).starts_with("schedule.minLr:")
        );
        assert!(err(r#"{"type":"step","stepSize":0}"#).starts_with("schedule.stepSize:"));
        assert!(err(r#"{"type":"step","stepSize":1,"gamma":0}"#).starts_with("schedule.gamma:"));
        assert!(err(r#"{"type":"step","stepSize":1,"gamma":1.5}"#).starts_with("schedule.gamma:"));
        assert!(err(r#"{"type":"constant","warmupStartFactor":0}"#)
            .starts_with("schedule.warmupStartFactor:"));
        assert!(serde_json::from_str::<ScheduleSpec>(
            r#"{"type":"cosine","totalSteps":5,"min_lr":0}"#
        )
        .is_err());
        assert!(serde_json::from_str::<ScheduleSpec>(r#"{"type":"step"}"#).is_err());
        assert!(serde_json::from_str::<ScheduleSpec>(r#"{"type":"linear"}"#).is_err());
    }
}
