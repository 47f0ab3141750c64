//! Stochastic gradient descent with momentum, as `torch.optim.SGD`.
use super::{check_step_lr, for_chunks, Entry, Optimizer, SlotStore};
use crate::error::Result;
use crate::layer::Param;
use crate::tensor::Tensor;

const AT: &str = "optimizer (sgd)";

/// PyTorch's update, per parameter:
/// `g = grad + wd * p` (decay parameters only);
/// with momentum, `buf = g` on the first step, then `buf = momentum * buf + (1 - dampening) * g`,
/// and `g = g + momentum * buf` (Nesterov) or `g = buf`; finally `p -= lr * g`.
#[derive(Clone, Debug)]
pub struct Sgd {
    momentum: f32,
    dampening: f32,
    nesterov: bool,
    weight_decay: f32,
    store: SlotStore,
}

impl Sgd {
    /// Values are assumed valid (see `OptimizerSpec::build`, which checks them).
    pub fn new(momentum: f32, dampening: f32, nesterov: bool, weight_decay: f32) -> Self {
        Sgd {
            momentum,
            dampening,
            nesterov,
            weight_decay,
            store: SlotStore::new(&["momentum_buffer"]),
        }
    }
}

impl Optimizer for Sgd {
    fn kind(&self) -> &'static str {
        "sgd"
    }

    fn step(&mut self, params: &mut [&mut Param], lr: f32) -> Result<()> {
        check_step_lr(AT, lr)?;
        self.store.check(AT, params)?;
        let (momentum, nesterov) = (self.momentum, self.nesterov);
        let keep = 1.0 - self.dampening;
        for (p, slot) in params.iter_mut().zip(self.store.entries.iter_mut()) {
            let wd = if p.decay { self.weight_decay } else { 0.0 };
            let Param { name, value, grad, .. } = &mut **p;
            if momentum == 0.0 {
                for_chunks(value.data_mut(), grad.data(), &mut [], &mut [], |v, g, _, _| {
                    for (v, &g) in v.iter_mut().zip(g) {
                        let d = g + wd * *v;
                        *v += -lr * d;
                    }
                });
                continue;
            }
            // No buffer yet: PyTorch starts it at the (decayed) gradient itself, without the
            // dampening factor, which the `first` branch reproduces.
            let first = slot.is_none();
            let entry = slot.get_or_insert_with(|| Entry {
                name: name.clone(),
                bufs: vec![Tensor::zeros(value.shape())],
            });
            let buf = entry.bufs[0].data_mut();
            for_chunks(value.data_mut(), grad.data(), buf, &mut [], |v, g, b, _| {
                for ((v, &g), b) in v.iter_mut().zip(g).zip(b.iter_mut()) {
                    let d = g + wd * *v;
                    *b = if first { d } else { *b * momentum + keep * d };
                    let d = if nesterov { d + momentum * *b } else { *b };
                    *v += -lr * d;
                }
            });
        }
        Ok(())
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.store.export(&mut out);
        out
    }

    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        let mut store = self.store.clone();
        let rest = store.import(AT, state)?;
        // SGD keeps no step count: a "step" key means the state is some other optimizer's.
        if let Some((key, _)) = rest.first() {
            return Err(crate::error::Error::value(
                format!("{AT}.load_state"),
                "keys \"{index}/{name}/momentum_buffer\"",
                format!("\"{key}\""),
            ));
        }
        self.store = store;
        Ok(())
    }
}
