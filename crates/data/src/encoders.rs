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

#[cfg(test)]
mod tests {
    use super::*;

    fn image(values: &[f32]) -> Tensor {
        Tensor::from_vec(&[1, 1, values.len()], values.to_vec()).unwrap()
    }

    #[test]
    fn direct_repeats_the_image() {
        let x = image(&[0.2, 0.7]);
        let y = direct(&x, 3).unwrap();
        assert_eq!(y.shape(), &[3, 1, 1, 2]);
        assert_eq!(y.data(), &[0.2, 0.7, 0.2, 0.7, 0.2, 0.7]);
    }

    #[test]
    fn poisson_rates_match_intensity_and_are_seeded() {
        let x = image(&[0.0, 0.25, 0.9, 1.0, 1.7]);
        let t = 4000;
        let y = poisson(&x, t, &mut Rng::new(11)).unwrap();
        assert_eq!(y.data(), poisson(&x, t, &mut Rng::new(11)).unwrap().data());
        assert!(y.data().iter().all(|&v| v == 0.0 || v == 1.0));
        for (i, expected) in [0.0f32, 0.25, 0.9, 1.0, 1.0].iter().enumerate() {
            let rate = (0..t).map(|s| y.data()[s * 5 + i]).sum::<f32>() / t as f32;
            assert!((rate - expected).abs() < 0.025, "pixel {i}: rate {rate} vs {expected}");
        }
    }

    #[test]
    fn latency_spikes_once_earlier_for_brighter_pixels() {
        // T = 5: v = 1 -> step 0, 0.5 -> 2, 0.2 -> round(3.2) = 3, 0.01 -> round(3.96) = 4, 0 -> never.
        let x = image(&[1.0, 0.5, 0.2, 0.01, 0.0]);
        let y = latency(&x, 5).unwrap();
        let first: Vec<Option<usize>> =
            (0..5).map(|i| (0..5).find(|&t| y.data()[t * 5 + i] == 1.0)).collect();
        assert_eq!(first, vec![Some(0), Some(2), Some(3), Some(4), None]);
        assert_eq!(y.data().iter().sum::<f32>(), 4.0, "one spike per lit pixel");
        assert!(latency(&image(&[f32::NAN]), 3).is_err());
        assert!(direct(&x, 0).is_err());
    }
}
