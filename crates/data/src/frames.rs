//! Event-to-frame integration: an `EventStream` becomes `[T, 2, H, W]` event counts, channel 0
//! OFF (p = 0), channel 1 ON (p != 0), the way SpikingJelly's `integrate_events_by_fixed_frames_number`
//! and `integrate_events_by_fixed_duration` build them, so frames made here train like frames
//! made there.
//!
//! Segments are index ranges `[lo, hi)` into the stream, chosen as SpikingJelly chooses them:
//! - by number: `d = N div T`, frame i takes `[i d, (i + 1) d)`, the last frame runs to N (it takes
//!   the remainder; with fewer events than T every frame but the last is empty);
//! - by time: `dt = (t[N-1] - t[0]) div T` (floor), window i is `[t[0] + i dt, t[0] + (i + 1) dt)`;
//!   frame i runs from the first to one past the last event index whose time is in window i, the
//!   last frame to N. A window without events is an error (SpikingJelly fails there too), as is
//!   `dt = 0`;
//! - by duration: a frame starts at the first event not yet taken, at time `t_l`, and takes events
//!   while `t - t_l <= duration`; T is whatever the recording needs.
//!
//! Integration counts every event of the segment, whatever its timestamp (SpikingJelly's segments
//! are index ranges too), so a stream with slightly out-of-order timestamps frames identically.
//!
//! Downscaling by an integer factor f sends an event at (x, y) to (x div f, y div f): counts of
//! each f x f block add up (sum pooling of the full-resolution frame, no averaging), and the
//! frame is `ceil(H / f) x ceil(W / f)`.

use dualstream_core::{Error, Result, Tensor};

use crate::EventStream;

/// How a recording is cut into frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// `frames` frames with (about) the same number of events each.
    Number { frames: usize },
    /// `frames` frames over equal time windows.
    Time { frames: usize },
    /// One frame per `duration_us` microseconds, as many as the recording needs.
    Duration { duration_us: i64 },
}

impl Split {
    /// Stable text used in cache keys and error messages.
    pub fn describe(&self) -> String {
        match self {
            Split::Number { frames } => format!("number:{frames}"),
            Split::Time { frames } => format!("time:{frames}"),
            Split::Duration { duration_us } => format!("duration:{duration_us}us"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameOptions {
    pub split: Split,
    /// Integer spatial downscale factor (1 = full sensor resolution).
    pub downscale: u16,
}

impl FrameOptions {
    pub fn new(split: Split) -> Self {
        FrameOptions { split, downscale: 1 }
    }

    pub fn with_downscale(mut self, factor: u16) -> Self {
        self.downscale = factor;
        self
    }

    /// `(H, W)` of the frames made from a `width x height` sensor.
    pub fn frame_size(&self, width: u16, height: u16) -> (usize, usize) {
        let f = self.downscale.max(1) as usize;
        ((height as usize).div_ceil(f), (width as usize).div_ceil(f))
    }

    fn validate(&self) -> Result<()> {
        match self.split {
            Split::Number { frames } | Split::Time { frames } if frames == 0 => {
                return Err(Error::value("frames: frame count", "a positive integer", 0))
            }
            Split::Duration { duration_us } if duration_us <= 0 => {
                return Err(Error::value(
                    "frames: duration",
                    "a positive number of microseconds",
                    duration_us,
                ))
            }
            _ => {}
        }
        if self.downscale == 0 {
            return Err(Error::value("frames: downscale", "a positive integer factor", 0));
        }
        Ok(())
    }
}

/// Index ranges `[lo, hi)` of `n` events split into `frames` frames by count (SpikingJelly's
/// `split_by='number'`).
pub fn segments_by_number(n: usize, frames: usize) -> Vec<(usize, usize)> {
    let d = n / frames;
    let mut out: Vec<(usize, usize)> = (0..frames).map(|i| (i * d, (i + 1) * d)).collect();
    if let Some(last) = out.last_mut() {
        last.1 = n;
    }
    out
}

/// Index ranges of the events split into `frames` equal time windows (SpikingJelly's
/// `split_by='time'`). Fails, naming the window, when a window holds no event.
pub fn segments_by_time(t: &[i64], frames: usize) -> Result<Vec<(usize, usize)>> {
    if t.is_empty() {
        return Err(Error::value(
            "frames (split by time)",
            "at least one event",
            "an empty stream",
        ));
    }
    let t0 = t[0];
    // Python's `//` floors; div_euclid floors too for a positive divisor.
    let dt = (t[t.len() - 1] - t0).div_euclid(frames as i64);
    if dt <= 0 {
        return Err(Error::value(
            "frames (split by time)",
            format!("a recording spanning at least {frames} us for {frames} windows (from the first event to the last)"),
            format!("a span of {} us", t[t.len() - 1] - t0),
        ));
    }
    let mut first = vec![usize::MAX; frames];
    let mut last = vec![0usize; frames];
    for (k, &tk) in t.iter().enumerate() {
        let rel = tk - t0;
        if rel < 0 {
            continue;
        }
        let w = rel / dt;
        if w < frames as i64 {
            let w = w as usize;
            first[w] = first[w].min(k);
            last[w] = k;
        }
    }
    let mut out = Vec::with_capacity(frames);
    for i in 0..frames {
        if first[i] == usize::MAX {
            let lo = t0 + dt * i as i64;
            return Err(Error::value(
                format!("frames (split by time): window {i} of {frames}"),
                "at least one event in every time window",
                format!("no event in [{lo}, {}) us", lo + dt),
            ));
        }
        out.push((first[i], last[i] + 1));
    }
    out[frames - 1].1 = t.len();
    Ok(out)
}

/// Index ranges of frames of fixed duration (SpikingJelly's `integrate_events_by_fixed_duration`).
pub fn segments_by_duration(t: &[i64], duration_us: i64) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut left, n) = (0usize, t.len());
    while left < n {
        let t_l = t[left];
        let mut right = left;
        while right < n && t[right] - t_l <= duration_us {
            right += 1;
        }
        out.push((left, right));
        left = right;
    }
    out
}

/// Index ranges of the frames `options` asks for.
pub fn segments(events: &EventStream, options: &FrameOptions) -> Result<Vec<(usize, usize)>> {
    options.validate()?;
    if events.is_empty() {
        return Err(Error::value("frames", "at least one event to integrate", "an empty stream"));
    }
    Ok(match options.split {
        Split::Number { frames } => segments_by_number(events.len(), frames),
        Split::Time { frames } => segments_by_time(&events.t, frames)?,
        Split::Duration { duration_us } => segments_by_duration(&events.t, duration_us),
    })
}

/// Fails, naming the first offending event, when a coordinate lies outside the sensor (it would
/// otherwise land on a wrong pixel of the next row).
pub fn check_coordinates(events: &EventStream) -> Result<()> {
    let (w, h) = (events.width, events.height);
    if events.x.len() != events.t.len()
        || events.y.len() != events.t.len()
        || events.p.len() != events.t.len()
    {
        return Err(Error::value(
            "frames: event stream",
            "t, x, y and p of the same length",
            format!(
                "lengths {}, {}, {}, {}",
                events.t.len(),
                events.x.len(),
                events.y.len(),
                events.p.len()
            ),
        ));
    }
    for k in 0..events.len() {
        if events.x[k] >= w || events.y[k] >= h {
            return Err(Error::value(
                format!("frames: event {k}"),
                format!("x in [0, {w}) and y in [0, {h}) (the sensor size)"),
                format!("x = {}, y = {}", events.x[k], events.y[k]),
            ));
        }
    }
    Ok(())
}

/// Adds the events `[lo, hi)` into one `[2, H, W]` frame (counts, OFF then ON).
fn integrate_segment(
    events: &EventStream,
    lo: usize,
    hi: usize,
    downscale: usize,
    h: usize,
    w: usize,
    frame: &mut [f32],
) {
    let plane = h * w;
    for k in lo..hi {
        let c = (events.p[k] != 0) as usize;
        let (x, y) = (events.x[k] as usize / downscale, events.y[k] as usize / downscale);
        frame[c * plane + y * w + x] += 1.0;
    }
}

/// Integrates `events` into frames `[T, 2, H, W]` of event counts.
pub fn integrate(events: &EventStream, options: &FrameOptions) -> Result<Tensor> {
    let segs = segments(events, options)?;
    check_coordinates(events)?;
    let (h, w) = options.frame_size(events.width, events.height);
    let frame_len = 2 * h * w;
    let mut data = vec![0f32; segs.len() * frame_len];
    for (i, &(lo, hi)) in segs.iter().enumerate() {
        integrate_segment(
            events,
            lo,
            hi,
            options.downscale as usize,
            h,
            w,
            &mut data[i * frame_len..(i + 1) * frame_len],
        );
    }
    Tensor::from_vec(&[segs.len(), 2, h, w], data)
}
