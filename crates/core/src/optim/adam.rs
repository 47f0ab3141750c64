//! Adam and AdamW, as `torch.optim.Adam` / `torch.optim.AdamW` (without amsgrad).
use super::{
    check_step_lr, for_chunks, step_from_tensor, step_to_tensor, Entry, Optimizer, SlotStore,
};
use crate::error::{Error, Result};
use crate::layer::Param;
use crate::tensor::Tensor;

/// PyTorch's update at step `t` (counted from 1), per parameter:
/// Adam adds `wd * p` to the gradient; AdamW instead first shrinks `p *= 1 - lr * wd`
/// (decay parameters only, in both cases). Then
/// `m = lerp(m, g, 1 - b1)`, `v = b2 * v + (1 - b2) * g * g`,
/// `p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`.
#[derive(Clone, Debug)]
pub struct Adam {
    betas: [f32; 2],
    eps: f32,
    weight_decay: f32,
    decoupled: bool,
    /// Steps taken; every parameter steps together, so one count serves all.
    #[doc(hidden)]
    pub step: u64,
    store: SlotStore,
}

impl Adam {
    /// `decoupled = true` gives AdamW. Values are assumed valid (see `OptimizerSpec::build`).
    pub fn new(betas: [f32; 2], eps: f32, weight_decay: f32, decoupled: bool) -> Self {
        Adam {
            betas,
            eps,
            weight_decay,
            decoupled,
            step: 0,
            store: SlotStore::new(&["exp_avg", "exp_avg_sq"]),
        }
    }

    fn at(&self) -> &'static str {
        if self.decoupled {
            "optimizer (adamW)"
        } else {
            "optimizer (adam)"
        }
    }
}

impl Optimizer for Adam {
    fn kind(&self) -> &'static str {
        if self.decoupled {
            "adamW"
        } else {
            "adam"
        }
    }

    fn step(&mut self, params: &mut [&mut Param], lr: f32) -> Result<()> {
        let at = self.at();
        check_step_lr(at, lr)?;
        self.store.check(at, params)?;
        self.step += 1;
        // Scalar coefficients in f64 like PyTorch's Python-float arithmetic, then used in f32.
        let t = self.step as f64;
        let (b1, b2) = (self.betas[0] as f64, self.betas[1] as f64);
        let step_size = (lr as f64 / (1.0 - b1.powf(t))) as f32;
        let bc2_sqrt = (1.0 - b2.powf(t)).sqrt() as f32;
        let w1 = (1.0 - b1) as f32;
        let (beta2, w2) = (self.betas[1], (1.0 - b2) as f32);
        let eps = self.eps;
        for (p, slot) in params.iter_mut().zip(self.store.entries.iter_mut()) {
            let wd = if p.decay { self.weight_decay } else { 0.0 };
            let (l2, shrink) = if self.decoupled {
                (0.0, (1.0 - lr as f64 * wd as f64) as f32)
            } else {
                (wd, 1.0)
            };
            let entry = slot.get_or_insert_with(|| Entry {
                name: p.name.clone(),
                bufs: vec![Tensor::zeros(p.value.shape()), Tensor::zeros(p.value.shape())],
            });
            let [m, v] = &mut entry.bufs[..] else { unreachable!("two Adam slots") };
            let Param { value, grad, .. } = &mut **p;
            for_chunks(value.data_mut(), grad.data(), m.data_mut(), v.data_mut(), |p, g, m, v| {
                for i in 0..p.len() {
                    let pi = p[i] * shrink;
                    let g = g[i] + l2 * pi;
                    // torch.lerp's form for weights below 0.5, which 1 - beta1 always is in practice.
                    m[i] =
                        if w1 < 0.5 { m[i] + w1 * (g - m[i]) } else { g - (g - m[i]) * (1.0 - w1) };
                    v[i] = v[i] * beta2 + w2 * g * g;
                    let denom = v[i].sqrt() / bc2_sqrt + eps;
                    // addcdiv evaluates value * t1 / t2 left to right.
                    p[i] = pi + -step_size * m[i] / denom;
                }
            });
        }
        Ok(())
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("step".to_string(), step_to_tensor(self.step))];
        self.store.export(&mut out);
        out
    }

    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        let at = self.at();
        let mut store = self.store.clone();
        let rest = store.import(at, state)?;
        let mut step = None;
        for (key, t) in rest {
            if key != "step" {
                return Err(Error::value(
                    format!("{at}.load_state"),
                    "keys \"{index}/{name}/{slot}\" or \"step\"",
                    format!("\"{key}\""),
                ));
            }
            step = Some(step_from_tensor(at, t)?);
        }
        // Moments without their step count would be bias-corrected as if fresh.
        let step = match step {
            Some(s) => s,
            None if store.entries.is_empty() => 0,
            None => return Err(Error::state(format!("{at}.load_state"), "missing \"step\"")),
        };
        self.store = store;
        self.step = step;
        Ok(())
    }
}
