//! Encoders turning a static image `[C, H, W]` with values in [0, 1] into a `[T, C, H, W]` input
//! sequence.
//!
//! - direct: the image itself at every step (the stem's conv + neuron does the spike encoding);
//! - Poisson rate: at every step each pixel spikes independently with probability `clamp(v, 0, 1)`;
//! - latency (time to first spike): a pixel with value v > 0 spikes once, at step
//!   `round((1 - clamp(v, 0, 1)) * (T - 1))` — the brightest pixels at step 0, a pixel of value
//!   just above 0 at step T - 1 — and never again; pixels with v <= 0 never spike. The mapping is
//!   linear in intensity, so T steps resolve T intensity levels.

use dualstream_core::rng::Rng;
use dualstream_core::{Error, Result, Tensor};

fn check(image: &Tensor, time_steps: usize, what: &str) -> Result<()> {
    if image.shape().len() != 3 {
        return Err(Error::shape(format!("{what} encoder image"), "[C, H, W]", image.shape()));
    }
    if time_steps == 0 {
        return Err(Error::value(format!("{what} encoder timeSteps"), "a positive integer", 0));
    }
    if let Some((i, v)) = image.data().iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::NonFinite { at: format!("{what} encoder image"), index: i, value: *v });
    }
    Ok(())
}

fn with_time(image: &Tensor, time_steps: usize, data: Vec<f32>) -> Result<Tensor> {
    let mut shape = vec![time_steps];
    shape.extend_from_slice(image.shape());
    Tensor::from_vec(&shape, data)
}

pub fn direct(image: &Tensor, time_steps: usize) -> Result<Tensor> {
    check(image, time_steps, "direct")?;
    let data = image.data().repeat(time_steps);
    with_time(image, time_steps, data)
}

pub fn poisson(image: &Tensor, time_steps: usize, rng: &mut Rng) -> Result<Tensor> {
    check(image, time_steps, "poisson")?;
    let mut data = Vec::with_capacity(time_steps * image.numel());
    for _ in 0..time_steps {
        data.extend(image.data().iter().map(|&v| (rng.uniform() < v.clamp(0.0, 1.0)) as u8 as f32));
    }
    with_time(image, time_steps, data)
}

/// The step at which a pixel of value `v` spikes under latency coding, if it spikes.
pub fn latency_step(v: f32, time_steps: usize) -> Option<usize> {
    (v > 0.0).then(|| ((1.0 - v.min(1.0)) * (time_steps - 1) as f32).round() as usize)
}

pub fn latency(image: &Tensor, time_steps: usize) -> Result<Tensor> {
    check(image, time_steps, "latency")?;
    let n = image.numel();
    let mut data = vec![0f32; time_steps * n];
    for (i, &v) in image.data().iter().enumerate() {
        if let Some(t) = latency_step(v, time_steps) {
            data[t * n + i] = 1.0;
        }
    }
    with_time(image, time_steps, data)
}
