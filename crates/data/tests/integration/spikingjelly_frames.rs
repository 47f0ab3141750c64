//! Frames against SpikingJelly's own integration of the same events
//! (fixture written by scripts/reference/frames_fixture.py; no Python needed here).

use dualstream_data::frames::{integrate, FrameOptions, Split};
use dualstream_data::EventStream;
use serde_json::Value;

/// The integers of a JSON array.
fn integers(array: &Value) -> impl Iterator<Item = i64> + '_ {
    array.as_array().unwrap().iter().map(|v| v.as_i64().unwrap())
}

#[test]
fn frames_match_spikingjelly_for_number_time_and_duration_splits() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/spikingjelly-frames.json"
    ))
    .unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut checked = 0;
    for case in doc["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let ev = &case["events"];
        let col = |k: &str| integers(&ev[k]).collect::<Vec<i64>>();
        let (t, x, y, p) = (col("t"), col("x"), col("y"), col("p"));
        let mut s = EventStream::new(
            case["width"].as_u64().unwrap() as u16,
            case["height"].as_u64().unwrap() as u16,
        );
        for k in 0..t.len() {
            s.push(t[k], x[k] as u16, y[k] as u16, p[k] as u8);
        }
        for out in case["outputs"].as_array().unwrap() {
            let split = match out["split"].as_str().unwrap() {
                "number" => Split::Number { frames: out["frames"].as_u64().unwrap() as usize },
                "time" => Split::Time { frames: out["frames"].as_u64().unwrap() as usize },
                _ => Split::Duration { duration_us: out["durationUs"].as_i64().unwrap() },
            };
            let frames = integrate(&s, &FrameOptions::new(split)).unwrap();
            let shape: Vec<usize> = integers(&out["shape"]).map(|v| v as usize).collect();
            assert_eq!(frames.shape(), shape.as_slice(), "{name} {split:?}");
            let expected: Vec<f32> = integers(&out["data"]).map(|v| v as f32).collect();
            assert_eq!(frames.data(), expected.as_slice(), "{name} {split:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, 11);
}
