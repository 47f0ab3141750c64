//! An exponential moving average of a model's weights, as
//! `torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))` keeps
//! it: the parameters, and with `buffers` the BN running statistics too (`use_buffers=True`).
//!
//! The first update copies the values; every later one moves the average towards them:
//! `average = decay * average + (1 - decay) * value`, computed the way `torch.lerp` does on a
//! CPU with a scalar weight `w = 1 - decay` (f64, then rounded to f32): `fma(w, value -
//! average, average)` when `|w| < 0.5`, else `fma(w - 1, value - average, value)`, so that the
//! bits match PyTorch's (scripts/reference/ema_fixture.py writes the reference values).
//!
//! A warm-up of the decay is offered, off by default as in PyTorch's `get_ema_multi_avg_fn`:
//! with `warmup`, the update after `n` earlier ones uses `min(decay, (1 + n) / (10 + n))`
//! (TensorFlow's `ExponentialMovingAverage` with `num_updates`, timm's older ModelEma). Without
//! it the initial weights and BN statistics keep a share of `decay^n` for long: at 0.999 still
//! 15 % after 1,900 steps, and a running variance that starts at 1 against a data variance of
//! 0.01 then silences the spiking layers; with it that share is gone within tens of steps.
//!
//! Without `buffers` (the default, as PyTorch's `use_buffers=False`, without its `update_bn`
//! pass) the BN running statistics are left out: the model keeps the trained ones. A spiking
//! network needs that: the average of running variances is larger than the variance the averaged weights
//! give (the weights shrink under weight decay), BN then scales the inputs of the spiking
//! layers down and fewer neurons reach the threshold.
//!
//! The average lives beside the model; [`Ema::show`] swaps it with the trained weights (an
//! exchange of buffers, no copy) so that evaluation, export and checkpoints see it, and swaps
//! back before the next training step.
use super::{for_chunks, step_from_tensor, step_to_tensor};
use crate::error::{check_finite, Error, Result};
use crate::kernels::simd::multiversion;
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};

const AT: &str = "ema";

/// JSON description of the average, e.g. `{"decay": 0.999}`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmaSpec {
    /// Weight of the old average at each update, in `[0, 1)`; 0 keeps the last values.
    pub decay: f64,
    /// Use `min(decay, (1 + n) / (10 + n))` at the update after `n` earlier ones.
    #[serde(default)]
    pub warmup: bool,
    /// Average the BN running statistics too (PyTorch's `use_buffers=True`); false (the
    /// default): the model keeps the trained statistics beside the averaged parameters.
    #[serde(default)]
    pub buffers: bool,
}

impl EmaSpec {
    pub fn validate(&self) -> Result<()> {
        // 1 would keep the first copy for ever; NaN fails both comparisons.
        if !(self.decay >= 0.0 && self.decay < 1.0) {
            return Err(Error::value("ema.decay", "a number in [0, 1)", self.decay));
        }
        Ok(())
    }
}

/// Visits the averaged tensors of a model in a stable order, calling the given function with
/// each one's name and value (`Model::for_each_averaged`).
pub type Walker<'w> = &'w mut dyn FnMut(&mut dyn FnMut(&str, &mut Tensor));

#[derive(Clone, Debug)]
pub struct Ema {
    decay: f64,
    warmup: bool,
    buffers: bool,
    /// Updates so far (PyTorch's `n_averaged`).
    count: u64,
    /// One tensor per averaged model tensor, in walk order: the average, or while `shown`,
    /// the trained weights.
    slots: Vec<(String, Tensor)>,
    /// The model carries the average (and `slots` the trained weights).
    shown: bool,
}

impl Ema {
    pub fn new(spec: &EmaSpec) -> Result<Ema> {
        spec.validate()?;
        Ok(Ema {
            decay: spec.decay,
            warmup: spec.warmup,
            buffers: spec.buffers,
            count: 0,
            slots: Vec::new(),
            shown: false,
        })
    }

    /// Whether the BN running statistics are averaged (walk the model with them).
    pub fn buffers(&self) -> bool {
        self.buffers
    }

    /// The decay of the next update (the warm-up applied).
    pub fn decay(&self) -> f64 {
        let n = self.count as f64;
        if self.warmup {
            self.decay.min((1.0 + n) / (10.0 + n))
        } else {
            self.decay
        }
    }

    /// Updates so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether the model carries the average now.
    pub fn shown(&self) -> bool {
        self.shown
    }

    /// One update from the trained weights the model carries (call with `shown` false).
    pub fn update(&mut self, walk: Walker) -> Result<()> {
        if self.shown {
            return Err(Error::state(AT, "the model carries the average: show(false) first"));
        }
        if self.count == 0 {
            self.slots.clear();
            walk(&mut |name, value| self.slots.push((name.to_string(), value.clone())));
        } else {
            let w = (1.0 - self.decay()) as f32;
            self.pair(walk, |slot, value| blend_tensor(slot.data_mut(), value.data(), w))?;
        }
        self.count += 1;
        Ok(())
    }

    /// Puts the average into the model (`on`) or the trained weights back (`!on`), by
    /// exchanging the tensors. Before the first update there is no average and nothing moves.
    pub fn show(&mut self, on: bool, walk: Walker) -> Result<()> {
        if on == self.shown || self.count == 0 {
            return Ok(());
        }
        self.pair(walk, std::mem::swap)?;
        self.shown = on;
        Ok(())
    }

    /// Runs `f` on every slot and the model tensor it belongs to, after checking both lists
    /// match (names, shapes, count) so that a mismatch changes nothing.
    fn pair(&mut self, walk: Walker, mut f: impl FnMut(&mut Tensor, &mut Tensor)) -> Result<()> {
        let mut i = 0;
        let mut bad: Option<Error> = None;
        walk(&mut |name, value| {
            if bad.is_none() {
                bad = match self.slots.get(i) {
                    None => Some(Error::state(AT, format!("no average of {name}"))),
                    Some((n, _)) if n != name => {
                        Some(Error::state(AT, format!("average {i} belongs to {n}, not {name}")))
                    }
                    Some((n, t)) if t.shape() != value.shape() => Some(Error::shape(
                        format!("{AT}: average of {n}"),
                        format!("{:?} (the tensor's shape)", value.shape()),
                        t.shape(),
                    )),
                    Some(_) => None,
                };
            }
            i += 1;
        });
        if let Some(e) = bad {
            return Err(e);
        }
        if i != self.slots.len() {
            return Err(Error::state(
                AT,
                format!("the average holds {} tensors but the model has {i}", self.slots.len()),
            ));
        }
        let mut slots = self.slots.iter_mut();
        walk(&mut |_, value| {
            let (_, slot) = slots.next().expect("counted above");
            f(slot, value);
        });
        Ok(())
    }

    /// What resuming needs: `count` (two exact f32 integers), `shown` (`[1]`, 0 or 1) and each
    /// slot as `slot/<name>`.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let shown = Tensor::from_vec(&[1], vec![self.shown as u8 as f32]).expect("[1]");
        let mut out =
            vec![("count".to_string(), step_to_tensor(self.count)), ("shown".into(), shown)];
        out.extend(self.slots.iter().map(|(n, t)| (format!("slot/{n}"), t.clone())));
        out
    }

    /// Restores a `state()`; all or nothing. Names and shapes are checked against the model at
    /// the next `update` or `show`.
    pub fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        let (mut count, mut shown, mut slots) = (None, None, Vec::new());
        for (key, t) in state {
            if key == "count" {
                count = Some(step_from_tensor(AT, t)?);
            } else if key == "shown" {
                shown = match t.data() {
                    [v] if *v == 0.0 || *v == 1.0 => Some(*v == 1.0),
                    d => {
                        return Err(Error::value(
                            format!("{AT}.load_state: \"shown\""),
                            "[0] or [1]",
                            format!("{d:?}"),
                        ))
                    }
                };
            } else if let Some(name) = key.strip_prefix("slot/") {
                check_finite(&format!("{AT} tensor {key}"), t.data())?;
                slots.push((name.to_string(), t.clone()));
            } else {
                return Err(Error::value(
                    format!("{AT}.load_state"),
                    "keys \"count\", \"shown\" or \"slot/{name}\"",
                    format!("\"{key}\""),
                ));
            }
        }
        let (Some(count), Some(shown)) = (count, shown) else {
            return Err(Error::state(format!("{AT}.load_state"), "needs \"count\" and \"shown\""));
        };
        if (count == 0) != slots.is_empty() || (count == 0 && shown) {
            return Err(Error::state(
                format!("{AT}.load_state"),
                format!("{} averaged tensors after {count} updates", slots.len()),
            ));
        }
        *self = Ema { count, slots, shown, ..*self };
        Ok(())
    }
}

/// `blend` on whole tensors, in parallel for large ones (element-wise, so the same bits).
fn blend_tensor(average: &mut [f32], value: &[f32], w: f32) {
    for_chunks(average, value, &mut [], &mut [], |a, v, _, _| blend(a, v, w));
}

multiversion!(pub fn blend(average: &mut [f32], value: &[f32], w: f32) => blend_body);

/// `average = lerp(average, value, w)` in `torch.lerp`'s two forms (ATen's `lerp_vec`): the
/// one anchored at the nearer end is the more accurate.
#[inline(always)]
fn blend_body(average: &mut [f32], value: &[f32], w: f32) {
    if w.abs() < 0.5 {
        for (a, &v) in average.iter_mut().zip(value) {
            *a = w.mul_add(v - *a, *a);
        }
    } else {
        let c = w - 1.0;
        for (a, &v) in average.iter_mut().zip(value) {
            *a = c.mul_add(v - *a, v);
        }
    }
}
