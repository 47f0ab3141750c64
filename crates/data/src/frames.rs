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

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(w: u16, h: u16, ev: &[(i64, u16, u16, u8)]) -> EventStream {
        let mut s = EventStream::new(w, h);
        for &(t, x, y, p) in ev {
            s.push(t, x, y, p);
        }
        s
    }

    /// Frame `i`, channel `c` as rows of a `h x w` grid.
    fn plane(f: &Tensor, i: usize, c: usize) -> Vec<Vec<f32>> {
        let (h, w) = (f.shape()[2], f.shape()[3]);
        let base = (i * 2 + c) * h * w;
        (0..h).map(|y| f.data()[base + y * w..base + (y + 1) * w].to_vec()).collect()
    }

    #[test]
    fn split_by_number_matches_hand_computed_frames() {
        // 7 events, T = 3: d = 2, frames take events [0,2), [2,4), [4,7).
        let s = stream(
            3,
            2,
            &[
                (0, 0, 0, 1),
                (5, 0, 0, 1),
                (6, 2, 1, 0),
                (9, 1, 0, 1),
                (10, 1, 1, 0),
                (11, 1, 1, 0),
                (50, 2, 0, 1),
            ],
        );
        let f = integrate(&s, &FrameOptions::new(Split::Number { frames: 3 })).unwrap();
        assert_eq!(f.shape(), &[3, 2, 2, 3]);
        assert_eq!(plane(&f, 0, 0), vec![vec![0., 0., 0.], vec![0., 0., 0.]]);
        assert_eq!(plane(&f, 0, 1), vec![vec![2., 0., 0.], vec![0., 0., 0.]]);
        assert_eq!(plane(&f, 1, 0), vec![vec![0., 0., 0.], vec![0., 0., 1.]]);
        assert_eq!(plane(&f, 1, 1), vec![vec![0., 1., 0.], vec![0., 0., 0.]]);
        assert_eq!(plane(&f, 2, 0), vec![vec![0., 0., 0.], vec![0., 2., 0.]]);
        assert_eq!(plane(&f, 2, 1), vec![vec![0., 0., 1.], vec![0., 0., 0.]]);
    }

    #[test]
    fn split_by_number_with_fewer_events_than_frames_puts_all_in_the_last_frame() {
        // SpikingJelly: d = 2 div 4 = 0, frames 0..2 are [0, 0) and the last is [0, 2).
        let s = stream(2, 1, &[(0, 0, 0, 1), (1, 1, 0, 0)]);
        assert_eq!(segments_by_number(2, 4), vec![(0, 0), (0, 0), (0, 0), (0, 2)]);
        let f = integrate(&s, &FrameOptions::new(Split::Number { frames: 4 })).unwrap();
        assert_eq!(f.shape(), &[4, 2, 1, 2]);
        assert_eq!(&f.data()[..12], &[0.0; 12]);
        assert_eq!(&f.data()[12..], &[0., 1., 1., 0.]);
    }

    #[test]
    fn split_by_time_matches_hand_computed_windows() {
        // t0 = 100, last = 130, T = 3: dt = 10; windows [100,110), [110,120), [120,130) and the
        // last frame runs to the end, taking the event at 130 too.
        let t = [100, 104, 109, 110, 119, 120, 125, 130];
        assert_eq!(segments_by_time(&t, 3).unwrap(), vec![(0, 3), (3, 5), (5, 8)]);
        // dt floors: span 31 over 3 windows -> dt = 10, and the event at 131 is past the last
        // window but still in the last frame.
        let t = [100, 101, 111, 121, 131];
        assert_eq!(segments_by_time(&t, 3).unwrap(), vec![(0, 2), (2, 3), (3, 5)]);
        let s = stream(
            2,
            2,
            &[(100, 0, 0, 1), (104, 1, 1, 0), (112, 1, 0, 1), (125, 0, 1, 1), (130, 0, 1, 0)],
        );
        let f = integrate(&s, &FrameOptions::new(Split::Time { frames: 3 })).unwrap();
        assert_eq!(plane(&f, 0, 0), vec![vec![0., 0.], vec![0., 1.]]);
        assert_eq!(plane(&f, 0, 1), vec![vec![1., 0.], vec![0., 0.]]);
        assert_eq!(plane(&f, 1, 1), vec![vec![0., 1.], vec![0., 0.]]);
        assert_eq!(plane(&f, 2, 0), vec![vec![0., 0.], vec![1., 0.]]);
        assert_eq!(plane(&f, 2, 1), vec![vec![0., 0.], vec![1., 0.]]);
    }

    #[test]
    fn split_by_time_uses_first_and_last_index_of_each_window_like_spikingjelly() {
        // An out-of-order event (t = 103 after 115) belongs to window 0 by time, so window 0's
        // segment stretches to it and window 1's starts at its first member (index 2).
        let t = [100, 101, 115, 103, 125, 130];
        assert_eq!(segments_by_time(&t, 3).unwrap(), vec![(0, 4), (2, 3), (4, 6)]);
    }

    #[test]
    fn split_by_time_names_an_empty_window() {
        let t = [0, 1, 2, 90, 100];
        let err = segments_by_time(&t, 4).unwrap_err().to_string();
        assert!(err.contains("window 1 of 4") && err.contains("[25, 50)"), "{err}");
        let err = segments_by_time(&[5, 5, 6], 3).unwrap_err().to_string();
        assert!(err.contains("span of 1 us"), "{err}");
    }

    #[test]
    fn split_by_duration_starts_each_frame_at_its_first_event() {
        // duration 10: [0..10] -> 0,4,10; next starts at 11: 11,21; next 22,40? 40-22 > 10 -> 22; 40.
        let t = [0, 4, 10, 11, 21, 22, 40];
        assert_eq!(segments_by_duration(&t, 10), vec![(0, 3), (3, 5), (5, 6), (6, 7)]);
        let s = stream(1, 1, &t.iter().map(|&t| (t, 0, 0, 1)).collect::<Vec<_>>());
        let f = integrate(&s, &FrameOptions::new(Split::Duration { duration_us: 10 })).unwrap();
        assert_eq!(f.shape(), &[4, 2, 1, 1]);
        assert_eq!(f.data(), &[0., 3., 0., 2., 0., 1., 0., 1.]);
    }

    #[test]
    fn downscale_sums_each_block_and_rounds_the_size_up() {
        // 5x3 sensor, f = 2 -> 3 wide, 2 high. (0,0),(1,1) -> (0,0); (4,2) -> (2,1); (3,0) -> (1,0).
        let s = stream(5, 3, &[(0, 0, 0, 1), (1, 1, 1, 1), (2, 4, 2, 0), (3, 3, 0, 1)]);
        let f = integrate(&s, &FrameOptions::new(Split::Number { frames: 1 }).with_downscale(2))
            .unwrap();
        assert_eq!(f.shape(), &[1, 2, 2, 3]);
        assert_eq!(plane(&f, 0, 1), vec![vec![2., 1., 0.], vec![0., 0., 0.]]);
        assert_eq!(plane(&f, 0, 0), vec![vec![0., 0., 0.], vec![0., 0., 1.]]);
        // Downscaled counts equal the full-resolution frame summed over blocks.
        let full = integrate(&s, &FrameOptions::new(Split::Number { frames: 1 })).unwrap();
        assert_eq!(full.data().iter().sum::<f32>(), f.data().iter().sum::<f32>());
    }

    #[test]
    fn bad_input_gets_clear_errors() {
        let empty = EventStream::new(4, 4);
        let err = integrate(&empty, &FrameOptions::new(Split::Number { frames: 2 }))
            .unwrap_err()
            .to_string();
        assert!(err.contains("empty stream"), "{err}");
        let s = stream(4, 4, &[(0, 1, 1, 1), (1, 4, 0, 1)]);
        let err =
            integrate(&s, &FrameOptions::new(Split::Number { frames: 1 })).unwrap_err().to_string();
        assert!(err.contains("event 1") && err.contains("x = 4"), "{err}");
        let s = stream(4, 4, &[(0, 1, 1, 1)]);
        assert!(integrate(&s, &FrameOptions::new(Split::Number { frames: 0 })).is_err());
        assert!(integrate(&s, &FrameOptions::new(Split::Duration { duration_us: 0 })).is_err());
        assert!(integrate(&s, &FrameOptions::new(Split::Number { frames: 1 }).with_downscale(0))
            .is_err());
    }
}
