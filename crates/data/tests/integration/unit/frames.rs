//! Tests of `dualstream_data::frames`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `frames` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::Tensor;
    pub use dualstream_data::frames::*;
    pub use dualstream_data::EventStream;
}
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
    let f =
        integrate(&s, &FrameOptions::new(Split::Number { frames: 1 }).with_downscale(2)).unwrap();
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
    let err =
        integrate(&empty, &FrameOptions::new(Split::Number { frames: 2 })).unwrap_err().to_string();
    assert!(err.contains("empty stream"), "{err}");
    let s = stream(4, 4, &[(0, 1, 1, 1), (1, 4, 0, 1)]);
    let err =
        integrate(&s, &FrameOptions::new(Split::Number { frames: 1 })).unwrap_err().to_string();
    assert!(err.contains("event 1") && err.contains("x = 4"), "{err}");
    let s = stream(4, 4, &[(0, 1, 1, 1)]);
    assert!(integrate(&s, &FrameOptions::new(Split::Number { frames: 0 })).is_err());
    assert!(integrate(&s, &FrameOptions::new(Split::Duration { duration_us: 0 })).is_err());
    assert!(
        integrate(&s, &FrameOptions::new(Split::Number { frames: 1 }).with_downscale(0)).is_err()
    );
}
