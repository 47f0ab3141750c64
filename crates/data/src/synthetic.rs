//! Synthetic event-camera recordings of static images, made the way N-MNIST was recorded: the
//! image moves (sub-pixel, bilinear) along three saccades forming a triangle, and a model DVS
//! pixel emits events when its log intensity changes by a threshold (the ESIM / v2e model).
//!
//! The pixel model: each pixel keeps a reference level `L_ref`, set to its log intensity
//! `L = ln(I + eps)` at the start. Rendering the moving image every `step_us` gives a new `L`;
//! while `L - L_ref >= C` the pixel emits an ON event and raises `L_ref` by C, while
//! `L_ref - L >= C` an OFF event and lowers it by C. Each event's timestamp is where the level
//! `L_ref ± C` is crossed when L is interpolated linearly between the two renders, so events are
//! not quantised to the render step. No noise, no refractory period: a given image and options
//! always give the same events.
//!
//! The N-MNIST layout: a 28 x 28 image sits in a 34 x 34 sensor (3 pixels of margin each side)
//! and its offset moves (-3, 3) -> (0, -3) -> (3, 3) -> (-3, 3) in pixels, 100 ms per saccade.

use dualstream_core::{Error, Result};

use crate::transforms::bilinear;
use crate::EventStream;

#[derive(Debug, Clone, PartialEq)]
pub struct DvsModel {
    /// Contrast threshold C in log intensity (both polarities).
    pub threshold: f32,
    /// Offset of the logarithm, `ln(I + eps)`: keeps black finite and sets how much a dark edge counts.
    pub eps: f32,
    /// Time between two renders of the moving image, microseconds.
    pub step_us: i64,
}

impl Default for DvsModel {
    fn default() -> Self {
        DvsModel { threshold: 0.25, eps: 0.1, step_us: 1000 }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SaccadeOptions {
    pub model: DvsModel,
    /// Pixels of sensor around the image on each side (N-MNIST: 3, giving 34 x 34 for 28 x 28).
    pub margin: usize,
    /// Duration of one saccade, microseconds.
    pub saccade_us: i64,
}

impl Default for SaccadeOptions {
    fn default() -> Self {
        SaccadeOptions { model: DvsModel::default(), margin: 3, saccade_us: 100_000 }
    }
}

/// The three-saccade triangle: offsets of the image from its centred position, in pixels, at
/// the corners; the path returns to its start.
pub fn saccade_corners(margin: usize) -> [(f32, f32); 4] {
    let m = margin as f32;
    [(-m, m), (0.0, -m), (m, m), (-m, m)]
}

/// Events of a grey image (`h x w`, values in [0, 1], row-major) placed on a `sensor_h x sensor_w`
/// sensor with its top-left corner at `path[i]` (x, y; fractional) at time `i * segment_us`,
/// moving linearly between the points.
#[allow(clippy::too_many_arguments)] // the image, the sensor, the path and the DVS model
pub fn events_from_motion(
    image: &[f32],
    h: usize,
    w: usize,
    sensor_w: u16,
    sensor_h: u16,
    path: &[(f32, f32)],
    segment_us: i64,
    model: &DvsModel,
) -> Result<EventStream> {
    if image.len() != h * w || h == 0 || w == 0 {
        return Err(Error::value(
            "synthetic events image",
            format!("{h} x {w} = {} values", h * w),
            image.len(),
        ));
    }
    if let Some((i, v)) = image.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::NonFinite { at: "synthetic events image".into(), index: i, value: *v });
    }
    if path.len() < 2 || path.iter().any(|p| !(p.0.is_finite() && p.1.is_finite())) {
        return Err(Error::value(
            "synthetic events path",
            "at least two finite (x, y) points",
            path.len(),
        ));
    }
    if !(model.threshold > 0.0 && model.threshold.is_finite()) {
        return Err(Error::value(
            "synthetic events threshold",
            "a positive log-intensity contrast",
            model.threshold,
        ));
    }
    if !(model.eps > 0.0 && model.eps.is_finite()) {
        return Err(Error::value(
            "synthetic events eps",
            "a positive offset of the logarithm",
            model.eps,
        ));
    }
    if model.step_us <= 0 || segment_us <= 0 || segment_us % model.step_us != 0 {
        return Err(Error::value(
            "synthetic events timing",
            "positive step_us dividing segment_us",
            format!("step_us {} and segment_us {segment_us}", model.step_us),
        ));
    }
    let (sw, sh) = (sensor_w as usize, sensor_h as usize);
    // Most of a sensor sees black background; skipping the logarithm there halves the cost.
    let log_black = model.eps.ln();
    let render = |ox: f32, oy: f32, out: &mut [f32]| {
        for v in 0..sh {
            for u in 0..sw {
                let i = bilinear(image, h, w, v as f32 - oy, u as f32 - ox);
                out[v * sw + u] = if i > 0.0 { (i + model.eps).ln() } else { log_black };
            }
        }
    };
    let c = model.threshold;
    let mut previous = vec![0f32; sw * sh];
    render(path[0].0, path[0].1, &mut previous);
    let mut reference = previous.clone();
    let mut current = vec![0f32; sw * sh];
    let mut out = EventStream::new(sensor_w, sensor_h);
    // (t, pixel, polarity) of one render step, sorted before they join the stream.
    let mut step_events: Vec<(i64, usize, u8)> = Vec::new();
    let steps_per_segment = segment_us / model.step_us;
    let mut t_prev = 0i64;
    for seg in 0..path.len() - 1 {
        let (a, b) = (path[seg], path[seg + 1]);
        for s in 1..=steps_per_segment {
            let f = s as f32 / steps_per_segment as f32;
            render(a.0 + (b.0 - a.0) * f, a.1 + (b.1 - a.1) * f, &mut current);
            let t_now = t_prev + model.step_us;
            step_events.clear();
            for k in 0..sw * sh {
                let (l0, l1) = (previous[k], current[k]);
                let r = &mut reference[k];
                let mut emit = |level: f32, p: u8| {
                    let frac = ((level - l0) / (l1 - l0)).clamp(0.0, 1.0);
                    step_events.push((t_prev + (frac * model.step_us as f32).round() as i64, k, p));
                };
                while l1 - *r >= c {
                    *r += c;
                    emit(*r, 1);
                }
                while *r - l1 >= c {
                    *r -= c;
                    emit(*r, 0);
                }
            }
            step_events.sort_by_key(|&(t, k, _)| (t, k));
            for &(t, k, p) in &step_events {
                out.push(t, (k % sw) as u16, (k / sw) as u16, p);
            }
            std::mem::swap(&mut previous, &mut current);
            t_prev = t_now;
        }
    }
    Ok(out)
}

/// N-MNIST-style recording of a grey `h x w` image: a `(w + 2 margin) x (h + 2 margin)` sensor and
/// three saccades along `saccade_corners`.
pub fn saccade_events(
    image: &[f32],
    h: usize,
    w: usize,
    options: &SaccadeOptions,
) -> Result<EventStream> {
    let m = options.margin;
    let (sw, sh) = (w + 2 * m, h + 2 * m);
    if sw > u16::MAX as usize || sh > u16::MAX as usize {
        return Err(Error::value(
            "synthetic events sensor",
            "at most 65535 pixels a side",
            format!("{sw} x {sh}"),
        ));
    }
    let path: Vec<(f32, f32)> =
        saccade_corners(m).iter().map(|&(dx, dy)| (m as f32 + dx, m as f32 + dy)).collect();
    events_from_motion(image, h, w, sw as u16, sh as u16, &path, options.saccade_us, &options.model)
}
