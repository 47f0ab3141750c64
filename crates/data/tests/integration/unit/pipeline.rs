//! Tests of `dualstream_data::pipeline`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `pipeline` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::rng::Rng;
    pub use dualstream_core::Tensor;
    pub use dualstream_data::frames::{integrate, FrameOptions, Split};
    pub use dualstream_data::pipeline::*;
    pub use dualstream_data::transforms;
    pub use dualstream_data::EventStream;
    pub use rayon::prelude::*;
}
fn spec(json: &str) -> PipelineSpec {
    serde_json::from_str(json).unwrap()
}

fn events(shift: u16) -> EventStream {
    let mut s = EventStream::new(4, 4);
    for k in 0..8u16 {
        s.push(k as i64, (k + shift) % 4, k % 4, (k % 2) as u8);
    }
    s
}

#[test]
fn events_batch_is_time_major_and_matches_per_sample_frames() {
    let sp = spec(r#"{"frames":{"split":"number","frames":2}}"#);
    let batch =
        prepare_batch(&[Sample::Events(events(0)), Sample::Events(events(1))], &sp, &[1, 2])
            .unwrap();
    assert_eq!(batch.shape(), &[2, 2, 2, 4, 4]);
    let f1 = integrate(&events(1), &FrameOptions::new(Split::Number { frames: 2 })).unwrap();
    // [t=1, n=1] equals frame 1 of sample 1.
    let step = 32;
    assert_eq!(&batch.data()[(2 + 1) * step..(2 + 2) * step], &f1.data()[step..2 * step]);
}

#[test]
fn seeds_make_augmentation_reproducible_per_sample() {
    let sp = spec(
        r#"{"frames":{"split":"number","frames":4},"transforms":[{"kind":"randomCrop","size":[4,4],"padding":1},{"kind":"horizontalFlip"},{"kind":"temporalDelete","keep":3}]}"#,
    );
    let a = prepare_batch(&[Sample::Events(events(0)), Sample::Events(events(2))], &sp, &[7, 8])
        .unwrap();
    let b = prepare_batch(&[Sample::Events(events(0)), Sample::Events(events(2))], &sp, &[7, 8])
        .unwrap();
    assert_eq!(a.data(), b.data());
    assert_eq!(a.shape(), &[3, 2, 2, 4, 4]);
    let alone = prepare(&Sample::Events(events(2)), &sp, &mut Rng::new(8)).unwrap();
    let step = 32;
    for t in 0..3 {
        assert_eq!(
            &a.data()[(t * 2 + 1) * step..(t * 2 + 2) * step],
            &alone.data()[t * step..(t + 1) * step]
        );
    }
}

#[test]
fn images_are_encoded_or_turned_into_synthetic_events() {
    let img = Tensor::from_vec(&[1, 2, 2], vec![0.0, 1.0, 0.5, 0.25]).unwrap();
    let direct = prepare_batch(
        &[Sample::Image(img.clone())],
        &spec(r#"{"encoder":{"kind":"direct","timeSteps":3}}"#),
        &[0],
    )
    .unwrap();
    assert_eq!(direct.shape(), &[3, 1, 1, 2, 2]);
    let plain = prepare_batch(
        &[Sample::Image(img.clone())],
        &spec(r#"{"transforms":[{"kind":"normalize","mean":[0.5],"std":[0.5]}]}"#),
        &[0],
    )
    .unwrap();
    assert_eq!(plain.data(), &[-1.0, 1.0, 0.0, -0.5]);
    let mut big = vec![0f32; 28 * 28];
    for y in 8..20 {
        for x in 8..20 {
            big[y * 28 + x] = 1.0;
        }
    }
    let big = Tensor::from_vec(&[1, 28, 28], big).unwrap();
    let syn = prepare_batch(
        &[Sample::Image(big)],
        &spec(r#"{"synthetic":{},"frames":{"split":"number","frames":4}}"#),
        &[0],
    )
    .unwrap();
    assert_eq!(syn.shape(), &[4, 1, 2, 34, 34]);
    assert!(syn.data().iter().sum::<f32>() > 0.0);
}

#[test]
fn ready_frames_are_only_transformed() {
    let f = integrate(&events(0), &FrameOptions::new(Split::Number { frames: 4 })).unwrap();
    let sp = spec(r#"{"transforms":[{"kind":"temporalDelete","keep":2}]}"#);
    let from_frames = prepare(&Sample::Frames(f), &sp, &mut Rng::new(4)).unwrap();
    let sp_events = spec(
        r#"{"frames":{"split":"number","frames":4},"transforms":[{"kind":"temporalDelete","keep":2}]}"#,
    );
    let from_events = prepare(&Sample::Events(events(0)), &sp_events, &mut Rng::new(4)).unwrap();
    assert_eq!(from_frames.shape(), &[2, 2, 4, 4]);
    assert_eq!(from_frames.data(), from_events.data());
}

#[test]
fn bad_specs_and_samples_are_errors() {
    assert!(serde_json::from_str::<PipelineSpec>(r#"{"frames":{"split":"sideways","frames":2}}"#)
        .is_err());
    assert!(serde_json::from_str::<PipelineSpec>(r#"{"transforms":[{"kind":"blur"}]}"#).is_err());
    let img = Tensor::from_vec(&[1, 2, 2], vec![0.0; 4]).unwrap();
    let err = prepare_batch(
        &[Sample::Image(img)],
        &spec(r#"{"transforms":[{"kind":"temporalDelete","keep":1}]}"#),
        &[0],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("batch sample 0") && err.contains("temporalDelete"), "{err}");
    let err = prepare_batch(&[Sample::Events(events(0))], &PipelineSpec::default(), &[0])
        .unwrap_err()
        .to_string();
    assert!(err.contains("frames spec"), "{err}");
    let mut short = EventStream::new(4, 4);
    short.push(0, 0, 0, 1);
    short.push(100, 0, 0, 1);
    let sp = spec(r#"{"frames":{"split":"duration","durationUs":10}}"#);
    let err = prepare_batch(&[Sample::Events(events(0)), Sample::Events(short)], &sp, &[0, 1])
        .unwrap_err()
        .to_string();
    assert!(err.contains("sample 1"), "{err}");
}

#[test]
fn elastic_and_random_erasing_specs_run_per_sample_seed() {
    let sp = spec(
        r#"{"transforms":[{"kind":"elastic","alpha":34,"sigma":2},{"kind":"randomErasing","p":1,"scale":[0.1,0.3],"value":[0.5]}],"encoder":{"kind":"direct","timeSteps":2}}"#,
    );
    let image = |k: f32| {
        Tensor::from_vec(
            &[1, 12, 12],
            (0..144).map(|i| ((i as f32 * 0.37 + k).sin() + 1.0) / 2.0).collect(),
        )
        .unwrap()
    };
    let samples = [Sample::Image(image(0.0)), Sample::Image(image(1.0))];
    let a = prepare_batch(&samples, &sp, &[3, 4]).unwrap();
    assert_eq!(a.data(), prepare_batch(&samples, &sp, &[3, 4]).unwrap().data());
    assert_ne!(a.data(), prepare_batch(&samples, &sp, &[3, 5]).unwrap().data());
    let alone = prepare(&Sample::Image(image(1.0)), &sp, &mut Rng::new(4)).unwrap();
    let mut rng = Rng::new(4);
    let manual = transforms::random_elastic(&image(1.0), 34.0, 2.0, 1.0, &mut rng).unwrap();
    let value = transforms::EraseValue::Constant(vec![0.5]);
    let manual =
        transforms::random_erasing(&manual, 1.0, (0.1, 0.3), (0.3, 3.3), &value, &mut rng).unwrap();
    assert_eq!(&alone.data()[..144], manual.data());
    assert_eq!(&alone.data()[144..], manual.data(), "both time steps");
    assert!(manual.data().contains(&0.5));
    // Defaults: elastic p 1; randomErasing p 0.5, scale [0.02, 0.33], ratio [0.3, 3.3], value 0.
    let d =
        spec(r#"{"transforms":[{"kind":"elastic","alpha":1,"sigma":1},{"kind":"randomErasing"}]}"#);
    assert_eq!(
        d.transforms[1],
        TransformSpec::RandomErasing {
            p: 0.5,
            scale: [0.02, 0.33],
            ratio: [0.3, 3.3],
            value: EraseValueSpec::Constant(0.0)
        }
    );
    assert_eq!(d.transforms[0], TransformSpec::Elastic { alpha: 1.0, sigma: 1.0, p: 1.0 });
    let bad = spec(r#"{"transforms":[{"kind":"randomErasing","p":1,"value":"noise"}]}"#);
    let err = prepare(&Sample::Image(image(0.0)), &bad, &mut Rng::new(0)).unwrap_err().to_string();
    assert!(err.contains("randomErasing value"), "{err}");
    let random = spec(r#"{"transforms":[{"kind":"randomErasing","p":1,"value":"random"}]}"#);
    assert!(prepare(&Sample::Image(image(0.0)), &random, &mut Rng::new(0)).is_ok());
}
