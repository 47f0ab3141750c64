//! Inverted dropout with one mask per forward shared by all T steps (SpikingJelly's multi-step
//! Dropout): a dropped unit stays silent for the whole sequence instead of flickering.
use crate::error::{Error, Result};
use crate::layer::check_grad_output;
use crate::layer::{Buffer, Layer, VisitorMut};
use crate::rng::Rng;
use crate::tensor::Tensor;
use rayon::prelude::*;

#[derive(Clone, Debug)]
pub struct Dropout {
    label: String,
    p: f32,
    /// The mask generator's position as 16 exact 16-bit pieces in f32: a buffer, so a
    /// checkpoint keeps it and a resumed run draws the masks an uninterrupted one would.
    rng_state: Tensor,
    rng_state_name: String,
    /// `[N, ...]` mask of 0 or 1/(1-p) from the last training forward.
    mask: Vec<f32>,
    /// Input shape of the last forward and whether it applied `mask`.
    last: Option<(Vec<usize>, bool)>,
}

impl Dropout {
    pub fn new(name: &str, spec: &crate::spec::DropoutSpec, rng: Rng) -> Result<Self> {
        let label = format!("{name} (dropout)");
        if !(0.0..1.0).contains(&spec.p) {
            return Err(Error::value(&label, "p in [0, 1)", spec.p));
        }
        Ok(Dropout {
            label,
            p: spec.p,
            rng_state: rng_to_tensor(&rng),
            rng_state_name: format!("{name}.rng_state"),
            mask: Vec::new(),
            last: None,
        })
    }

    fn check_input(&self, input: &[usize]) -> Result<()> {
        if input.len() < 3 {
            return Err(Error::shape(
                &self.label,
                "[T, N, ...] with at least one feature dimension",
                input,
            ));
        }
        Ok(())
    }
}

fn rng_to_tensor(rng: &Rng) -> Tensor {
    let pieces = rng
        .words()
        .iter()
        .flat_map(|w| (0..4).map(move |k| ((w >> (16 * k)) & 0xFFFF) as f32))
        .collect();
    Tensor::from_vec(&[16], pieces).expect("16 values for shape [16]")
}

fn rng_from_tensor(at: &str, t: &Tensor) -> Result<Rng> {
    let d = t.data();
    if t.shape() != [16] || !d.iter().all(|v| v.fract() == 0.0 && (0.0..65536.0).contains(v)) {
        return Err(Error::value(
            format!("{at}.rng_state"),
            "16 integers in [0, 65535]",
            format!("{:?}", d),
        ));
    }
    let mut words = [0u64; 4];
    for (i, v) in d.iter().enumerate() {
        words[i / 4] |= (*v as u64) << (16 * (i % 4));
    }
    Ok(Rng::from_words(words))
}

/// `out[t] = inp[t] * mask` for every step `t` (each a chunk of `mask.len()` values).
fn apply_mask(inp: &[f32], mask: &[f32], out: &mut [f32]) {
    out.par_chunks_mut(mask.len()).zip(inp.par_chunks(mask.len())).for_each(|(o, i)| {
        for ((o, &i), &m) in o.iter_mut().zip(i).zip(mask) {
            *o = i * m;
        }
    });
}

impl Layer for Dropout {
    fn name(&self) -> &str {
        &self.label
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.check_input(input).map(|()| input.to_vec())
    }

    fn forward(&mut self, input: &Tensor, output: &mut Tensor, training: bool) -> Result<()> {
        self.check_input(input.shape())?;
        output.resize_for_overwrite(input.shape());
        let masked = training && self.p > 0.0 && input.numel() > 0;
        if masked {
            let per_step = input.numel() / input.shape()[0];
            let (p, scale) = (self.p, 1.0 / (1.0 - self.p));
            self.mask.resize(per_step, 0.0);
            let mut rng = rng_from_tensor(&self.label, &self.rng_state)?;
            for m in &mut self.mask {
                *m = if rng.uniform() < p { 0.0 } else { scale };
            }
            self.rng_state = rng_to_tensor(&rng);
            apply_mask(input.data(), &self.mask, output.data_mut());
        } else {
            output.data_mut().copy_from_slice(input.data());
        }
        self.last = Some((input.shape().to_vec(), masked));
        Ok(())
    }

    fn backward(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        grad_input: &mut Tensor,
    ) -> Result<()> {
        let masked = match &self.last {
            Some((shape, masked)) if shape == input.shape() => *masked,
            _ => {
                return Err(Error::state(
                    &self.label,
                    "backward needs a forward on the same input shape first",
                ))
            }
        };
        check_grad_output(&self.label, output.shape(), grad_output.shape())?;
        check_grad_output(&self.label, input.shape(), grad_output.shape())?;
        grad_input.resize_for_overwrite(input.shape());
        if masked {
            apply_mask(grad_output.data(), &self.mask, grad_input.data_mut());
        } else {
            grad_input.data_mut().copy_from_slice(grad_output.data());
        }
        Ok(())
    }

    fn visit_mut<'a>(&'a mut self, visitor: &mut dyn VisitorMut<'a>) {
        visitor.buffer(Buffer { name: self.rng_state_name.clone(), value: &mut self.rng_state });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::Walk;
    use crate::nn::gradcheck::{check_gradients, random_tensor};
    use crate::spec::DropoutSpec;

    #[test]
    fn one_mask_is_shared_by_all_time_steps_and_scaled() {
        let mut d = Dropout::new("layers.1", &DropoutSpec { p: 0.4 }, Rng::new(61)).unwrap();
        let (t, n, f) = (5, 7, 300);
        let x = Tensor::full(&[t, n, f], 1.0);
        let mut y = Tensor::default();
        d.forward(&x, &mut y, true).unwrap();
        let step = n * f;
        for s in 1..t {
            assert_eq!(
                &y.data()[..step],
                &y.data()[s * step..(s + 1) * step],
                "step {s} mask differs"
            );
        }
        let kept = y.data()[..step].iter().filter(|&&v| v != 0.0).count();
        assert!(y.data().iter().all(|&v| v == 0.0 || (v - 1.0 / 0.6).abs() < 1e-6));
        let rate = kept as f32 / step as f32;
        assert!((rate - 0.6).abs() < 0.03, "keep rate {rate}");
        // The mask is not shared across samples or features.
        assert!(y.data()[..f] != y.data()[f..2 * f]);
        // A new forward draws a new mask.
        let first = y.clone();
        d.forward(&x, &mut y, true).unwrap();
        assert_ne!(first, y);
    }

    #[test]
    fn gradients_use_the_forward_mask() {
        let mut rng = Rng::new(62);
        let d = Dropout::new("layers.1", &DropoutSpec { p: 0.5 }, Rng::new(63)).unwrap();
        let x = random_tensor(&mut rng, &[3, 2, 2, 3]);
        check_gradients(&d, &x, 1, 1e-2, 1e-3, 1e-3);
    }

    #[test]
    fn the_generator_position_is_a_buffer_that_continues_the_mask_stream() {
        let mut a = Dropout::new("layers.1", &DropoutSpec { p: 0.5 }, Rng::new(5)).unwrap();
        let x = Tensor::full(&[2, 3, 40], 1.0);
        let mut y = Tensor::default();
        a.forward(&x, &mut y, true).unwrap();
        let mut saved = Vec::new();
        a.buffers(&mut saved);
        assert_eq!(saved[0].name, "layers.1.rng_state");
        let position = saved[0].value.clone();
        drop(saved);
        a.forward(&x, &mut y, true).unwrap();
        let next = y.clone();
        // Another seed, then the saved position: the same next mask.
        let mut b = Dropout::new("layers.1", &DropoutSpec { p: 0.5 }, Rng::new(99)).unwrap();
        let mut slots = Vec::new();
        b.buffers(&mut slots);
        slots[0].value.copy_from(&position);
        drop(slots);
        b.forward(&x, &mut y, true).unwrap();
        assert_eq!(y, next);
        let mut slots = Vec::new();
        b.buffers(&mut slots);
        slots[0].value.data_mut()[3] = 0.5;
        drop(slots);
        let err = b.forward(&x, &mut y, true).unwrap_err();
        assert!(err.to_string().contains("layers.1 (dropout).rng_state"), "{err}");
    }

    #[test]
    fn eval_and_p_zero_are_identity() {
        let mut rng = Rng::new(64);
        let x = random_tensor(&mut rng, &[2, 3, 4]);
        let mut y = Tensor::default();
        let mut d = Dropout::new("d", &DropoutSpec { p: 0.5 }, Rng::new(1)).unwrap();
        d.forward(&x, &mut y, false).unwrap();
        assert_eq!(x, y);
        let mut gx = Tensor::default();
        d.backward(&x, &y, &x, &mut gx).unwrap();
        assert_eq!(gx, x);
        let mut d = Dropout::new("d", &DropoutSpec { p: 0.0 }, Rng::new(1)).unwrap();
        d.forward(&x, &mut y, true).unwrap();
        assert_eq!(x, y);
    }

    #[test]
    fn invalid_p_and_shapes_name_the_layer() {
        for p in [-0.1, 1.0, f32::NAN] {
            let err = Dropout::new("layers.2", &DropoutSpec { p }, Rng::new(1)).unwrap_err();
            assert!(
                matches!(err, Error::Value { .. })
                    && err.to_string().contains("layers.2 (dropout)"),
                "{err}"
            );
        }
        let d = Dropout::new("layers.2", &DropoutSpec { p: 0.1 }, Rng::new(1)).unwrap();
        let err = d.output_shape(&[4]).unwrap_err();
        assert!(matches!(err, Error::Shape { .. }) && err.to_string().contains("layers.2"));
        let mut d = d;
        let x = Tensor::zeros(&[1, 1, 2]);
        let mut gx = Tensor::default();
        assert_eq!(d.backward(&x, &x, &x, &mut gx).unwrap_err().code(), "ERR_STATE");
    }
}
