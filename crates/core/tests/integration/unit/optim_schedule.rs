//! Tests of `dualstream_core::optim::schedule`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `optim::schedule` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::optim::schedule::*;
}
fn parse(json: &str) -> ScheduleSpec {
    let s: ScheduleSpec = serde_json::from_str(json).unwrap();
    s.validate().unwrap();
    s
}

fn close(a: f32, b: f64) -> bool {
    (a as f64 - b).abs() < 1e-6 * b.abs().max(1.0)
}

/// `s` gives `lr` at each `(step, lr)` from the base rate `base`.
fn assert_rates(s: &ScheduleSpec, base: f32, rates: &[(usize, f64)]) {
    for &(step, lr) in rates {
        assert!(close(s.lr_at(base, step), lr), "step {step}: {}", s.lr_at(base, step));
    }
}

#[test]
fn constant() {
    let s = parse(r#"{"type":"constant"}"#);
    assert_eq!(s, ScheduleSpec::default());
    for k in [0, 1, 1000] {
        assert_eq!(s.lr_at(0.1, k), 0.1);
    }
}

#[test]
fn cosine_closed_form() {
    let s = parse(r#"{"type":"cosine","totalSteps":100}"#);
    assert!(close(s.lr_at(0.1, 0), 0.1));
    assert!(close(s.lr_at(0.1, 50), 0.05));
    // cos(pi/4): 0.1 * (1 + sqrt(2)/2) / 2
    assert!(close(s.lr_at(0.1, 25), 0.1 * (1.0 + 0.5f64.sqrt()) / 2.0));
    assert!(close(s.lr_at(0.1, 100), 0.0));
    assert!(close(s.lr_at(0.1, 150), 0.0), "stays at the minimum past the end");

    let s = parse(r#"{"type":"cosine","totalSteps":10,"minLr":0.01}"#);
    assert!(close(s.lr_at(0.1, 0), 0.1));
    assert!(close(s.lr_at(0.1, 5), 0.055));
    assert!(close(s.lr_at(0.1, 10), 0.01));
    assert!(s.lr_at(0.1, 3) > s.lr_at(0.1, 4));
}

#[test]
fn step_decay_boundaries() {
    let s = parse(r#"{"type":"step","stepSize":30,"gamma":0.5}"#);
    assert_rates(&s, 0.2, &[(0, 0.2), (29, 0.2), (30, 0.1), (59, 0.1), (60, 0.05)]);
    let s = parse(r#"{"type":"step","stepSize":2}"#);
    assert!(close(s.lr_at(1.0, 5), 0.01));
}

#[test]
fn warmup_ramp_then_main_schedule() {
    let s = parse(r#"{"type":"cosine","totalSteps":14,"warmupSteps":4}"#);
    // Linear from 0.1 * base: factors 0.1, 0.325, 0.55, 0.775, then the cosine from base.
    for (k, f) in [(0, 0.1), (1, 0.325), (2, 0.55), (3, 0.775)] {
        assert!(close(s.lr_at(2.0, k), 2.0 * f), "step {k}: {}", s.lr_at(2.0, k));
    }
    assert!(close(s.lr_at(2.0, 4), 2.0));
    assert!(close(s.lr_at(2.0, 9), 1.0), "half-way through the 10 cosine steps");
    assert!(close(s.lr_at(2.0, 14), 0.0));

    let s = parse(
        r#"{"type":"step","stepSize":3,"gamma":0.1,"warmupSteps":2,"warmupStartFactor":0.5}"#,
    );
    assert_rates(&s, 1.0, &[(0, 0.5), (1, 0.75), (2, 1.0), (4, 1.0), (5, 0.1)]);

    let s = parse(r#"{"type":"constant","warmupSteps":10}"#);
    assert!(close(s.lr_at(1.0, 5), 0.55));
    assert!(close(s.lr_at(1.0, 10), 1.0));
}

#[test]
fn invalid_specs() {
    let err = |json: &str| {
        let s: ScheduleSpec = serde_json::from_str(json).unwrap();
        s.validate().unwrap_err().to_string()
    };
    assert_eq!(
        err(r#"{"type":"cosine","totalSteps":5,"warmupSteps":5}"#),
        "schedule.totalSteps: expected an integer > warmupSteps (5), got 5"
    );
    assert!(err(r#"{"type":"cosine","totalSteps":0}"#).starts_with("schedule.totalSteps:"));
    assert!(err(r#"{"type":"cosine","totalSteps":5,"minLr":-1}"#).starts_with("schedule.minLr:"));
    assert!(err(r#"{"type":"step","stepSize":0}"#).starts_with("schedule.stepSize:"));
    assert!(err(r#"{"type":"step","stepSize":1,"gamma":0}"#).starts_with("schedule.gamma:"));
    assert!(err(r#"{"type":"step","stepSize":1,"gamma":1.5}"#).starts_with("schedule.gamma:"));
    assert!(err(r#"{"type":"constant","warmupStartFactor":0}"#)
        .starts_with("schedule.warmupStartFactor:"));
    assert!(serde_json::from_str::<ScheduleSpec>(r#"{"type":"cosine","totalSteps":5,"min_lr":0}"#)
        .is_err());
    assert!(serde_json::from_str::<ScheduleSpec>(r#"{"type":"step"}"#).is_err());
    assert!(serde_json::from_str::<ScheduleSpec>(r#"{"type":"linear"}"#).is_err());
}
