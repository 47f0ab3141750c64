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
        visitor.buffer(Buffer {
            name: self.rng_state_name.clone(),
            value: &mut self.rng_state,
            averaged: false,
        });
    }
}
