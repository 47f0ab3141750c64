//! Tests of `dualstream_data::synthetic`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `synthetic` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_data::synthetic::*;
    pub use dualstream_data::EventStream;
}
/// A `size x size` image with a square of `value` at rows/cols [lo, hi).
fn square(size: usize, lo: usize, hi: usize, value: f32) -> Vec<f32> {
    let mut img = vec![0f32; size * size];
    for y in lo..hi {
        for x in lo..hi {
            img[y * size + x] = value;
        }
    }
    img
}

fn moving_right(img: &[f32], size: usize, model: &DvsModel) -> EventStream {
    // The image moves 4 pixels right in 40 ms on a sensor as wide as image + 4.
    events_from_motion(
        img,
        size,
        size,
        size as u16 + 4,
        size as u16,
        &[(0.0, 0.0), (4.0, 0.0)],
        40_000,
        model,
    )
    .unwrap()
}

#[test]
fn a_blank_image_gives_no_events() {
    let s = saccade_events(&vec![0.0; 28 * 28], 28, 28, &SaccadeOptions::default()).unwrap();
    assert_eq!((s.width, s.height, s.len()), (34, 34, 0));
}

#[test]
fn a_bright_square_moving_right_gives_on_at_its_leading_and_off_at_its_trailing_edge() {
    let img = square(12, 4, 8, 1.0);
    let s = moving_right(&img, 12, &DvsModel::default());
    let (mut on, mut off) = (0, 0);
    for k in 0..s.len() {
        let (x, y) = (s.x[k], s.y[k]);
        assert!((4..8).contains(&y), "events only on the square's rows, got y = {y}");
        if s.p[k] == 1 {
            // Leading edge: pixels the square moves onto, columns 8..12 (sub-pixel: 8..=12).
            assert!((8..=12).contains(&x), "ON at x = {x}");
            on += 1;
        } else {
            // Trailing edge: pixels it leaves, columns 4..8.
            assert!((4..8).contains(&x), "OFF at x = {x}");
            off += 1;
        }
    }
    assert!(on > 0 && off > 0);
    // Every pixel it fully enters or leaves crosses the same log contrast, so the counts match.
    assert_eq!(on, off);
    assert!(s.t.windows(2).all(|p| p[0] <= p[1]), "time-ordered");
    assert!(*s.t.last().unwrap() <= 40_000);
}

#[test]
fn event_counts_follow_log_contrast_over_threshold() {
    let model = DvsModel { threshold: 0.2, ..DvsModel::default() };
    let count = |value: f32, threshold: f32| {
        moving_right(&square(12, 4, 8, value), 12, &DvsModel { threshold, ..model.clone() }).len()
            as f32
    };
    // A pixel swept from black to value v crosses floor(ln((v + eps) / eps) / C) levels.
    let levels = |v: f32, c: f32| ((v + 0.1f32) / 0.1).ln() / c;
    let full = count(1.0, 0.2);
    let per_pixel = full / (2.0 * 4.0 * 4.0); // ON and OFF, 4 rows x 4 columns swept
    assert!(
        (per_pixel - levels(1.0, 0.2).floor()).abs() <= 1.0,
        "{per_pixel} vs {}",
        levels(1.0, 0.2)
    );
    // Halving the threshold about doubles the events; lower contrast gives fewer.
    let ratio = count(1.0, 0.1) / full;
    assert!((1.8..=2.2).contains(&ratio), "threshold halved: ratio {ratio}");
    let dim = count(0.3, 0.2);
    let expected = levels(0.3, 0.2) / levels(1.0, 0.2);
    assert!((dim / full - expected).abs() < 0.15, "contrast: {} vs {expected}", dim / full);
}

#[test]
fn fashion_sized_images_give_nmnist_sized_recordings() {
    let img: Vec<f32> = (0..28 * 28)
        .map(|i| if (i / 28) % 7 < 4 && (i % 28) > 5 && (i % 28) < 22 { 0.8 } else { 0.0 })
        .collect();
    let s = saccade_events(&img, 28, 28, &SaccadeOptions::default()).unwrap();
    assert_eq!((s.width, s.height), (34, 34));
    assert!(s.len() > 100);
    assert!(s.x.iter().all(|&x| x < 34) && s.y.iter().all(|&y| y < 34));
    assert!(*s.t.last().unwrap() <= 300_000 && s.t.windows(2).all(|p| p[0] <= p[1]));
    // Deterministic.
    assert_eq!(s, saccade_events(&img, 28, 28, &SaccadeOptions::default()).unwrap());
}

#[test]
fn bad_options_are_errors() {
    let img = vec![0.5; 4];
    let m = DvsModel::default();
    assert!(events_from_motion(&img, 2, 3, 4, 4, &[(0., 0.), (1., 0.)], 1000, &m).is_err());
    assert!(events_from_motion(&img, 2, 2, 4, 4, &[(0., 0.)], 1000, &m).is_err());
    assert!(events_from_motion(&img, 2, 2, 4, 4, &[(0., 0.), (1., 0.)], 1500, &m).is_err());
    let bad = DvsModel { threshold: 0.0, ..m };
    assert!(events_from_motion(&img, 2, 2, 4, 4, &[(0., 0.), (1., 0.)], 1000, &bad).is_err());
}
