//! Tests of `dualstream_core::optim`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `optim` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::error::{Error, Result};
    pub use dualstream_core::optim::*;
    pub use dualstream_core::tensor::Tensor;
    pub use rayon::prelude::*;
}
fn parse(json: &str) -> std::result::Result<OptimizerSpec, serde_json::Error> {
    serde_json::from_str(json)
}

#[test]
fn spec_defaults_and_names() {
    let s = parse(r#"{"type":"sgd","lr":0.1}"#).unwrap();
    assert_eq!(
        s,
        OptimizerSpec::Sgd {
            lr: 0.1,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0
        }
    );
    let s = parse(r#"{"type":"sgd","lr":0.1,"momentum":0.9,"weightDecay":5e-4,"nesterov":true}"#)
        .unwrap();
    assert!(
        matches!(s, OptimizerSpec::Sgd { nesterov: true, weight_decay, .. } if weight_decay == 5e-4)
    );
    let s = parse(r#"{"type":"adam"}"#).unwrap();
    assert_eq!(
        s,
        OptimizerSpec::Adam { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weight_decay: 0.0 }
    );
    let s = parse(r#"{"type":"adamW","lr":0.01}"#).unwrap();
    assert_eq!(
        s,
        OptimizerSpec::AdamW { lr: 0.01, betas: [0.9, 0.999], eps: 1e-8, weight_decay: 0.01 }
    );
    assert_eq!(parse(r#"{"type":"adamw"}"#).unwrap().kind(), "adamW");
    // Round trip through JSON keeps camelCase names.
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains("\"weightDecay\"") && json.contains("\"adamW\""), "{json}");
    assert_eq!(parse(&json).unwrap(), s);
}

#[test]
fn spec_rejects_unknown_and_missing() {
    assert!(parse(r#"{"type":"sgd","lr":0.1,"momentom":0.9}"#).is_err());
    assert!(parse(r#"{"type":"sgd","lr":0.1,"weight_decay":0.1}"#).is_err());
    assert!(parse(r#"{"type":"sgd"}"#).is_err());
    assert!(parse(r#"{"type":"rmsprop","lr":0.1}"#).is_err());
}

fn err(spec: &str) -> String {
    match parse(spec).unwrap().build() {
        Ok(_) => panic!("{spec} should be refused"),
        Err(e) => {
            assert_eq!(e.code(), "ERR_VALUE");
            e.to_string()
        }
    }
}

#[test]
fn build_validates() {
    assert_eq!(
        err(r#"{"type":"sgd","lr":0.1,"momentum":1.5}"#),
        "optimizer.momentum: expected a number in [0, 1), got 1.5"
    );
    assert!(err(r#"{"type":"sgd","lr":0}"#).starts_with("optimizer.lr:"));
    assert!(err(r#"{"type":"sgd","lr":-1}"#).starts_with("optimizer.lr:"));
    assert!(err(r#"{"type":"sgd","lr":0.1,"momentum":1}"#).starts_with("optimizer.momentum:"));
    assert!(err(r#"{"type":"sgd","lr":0.1,"momentum":-0.1}"#).starts_with("optimizer.momentum:"));
    assert!(err(r#"{"type":"sgd","lr":0.1,"dampening":2}"#).starts_with("optimizer.dampening:"));
    assert!(
        err(r#"{"type":"sgd","lr":0.1,"weightDecay":-1}"#).starts_with("optimizer.weightDecay:")
    );
    assert!(err(r#"{"type":"sgd","lr":0.1,"nesterov":true}"#).starts_with("optimizer.nesterov:"));
    assert!(err(r#"{"type":"sgd","lr":0.1,"momentum":0.9,"dampening":0.1,"nesterov":true}"#)
        .starts_with("optimizer.nesterov:"));
    assert!(err(r#"{"type":"adam","betas":[1.0,0.999]}"#).starts_with("optimizer.betas[0]:"));
    assert!(err(r#"{"type":"adamW","betas":[0.9,-0.1]}"#).starts_with("optimizer.betas[1]:"));
    assert!(err(r#"{"type":"adam","eps":0}"#).starts_with("optimizer.eps:"));
    assert!(err(r#"{"type":"adamW","weightDecay":-0.5}"#).starts_with("optimizer.weightDecay:"));
    // Valid edge cases.
    for ok in [
        r#"{"type":"sgd","lr":0.1,"momentum":0.9,"nesterov":true}"#,
        r#"{"type":"sgd","lr":0.1,"momentum":0.9,"dampening":1}"#,
        r#"{"type":"adam","betas":[0,0]}"#,
    ] {
        parse(ok).unwrap().build().unwrap();
    }
    assert_eq!(parse(r#"{"type":"adamW"}"#).unwrap().build().unwrap().kind(), "adamW");
}

#[test]
fn step_count_round_trip() {
    for s in [0u64, 1, 3, (1 << 24) - 1, 1 << 24, (1 << 40) + 12345] {
        assert_eq!(step_from_tensor("t", &step_to_tensor(s)).unwrap(), s);
    }
    assert!(step_from_tensor("t", &Tensor::from_vec(&[2], vec![0.5, 0.0]).unwrap()).is_err());
    assert!(step_from_tensor("t", &Tensor::from_vec(&[1], vec![3.0]).unwrap()).is_err());
}

#[test]
fn chunked_update_covers_every_element() {
    // Large enough to take the parallel path, with a ragged last chunk.
    let n = PAR_MIN + PAR_CHUNK / 2 + 7;
    let mut v: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let g = vec![1.0f32; n];
    let mut a = vec![0.0f32; n];
    for_chunks(&mut v, &g, &mut a, &mut [], |v, g, a, b| {
        assert!(b.is_empty());
        for i in 0..v.len() {
            v[i] += g[i];
            a[i] = v[i] * 2.0;
        }
    });
    for i in 0..n {
        assert_eq!(v[i], i as f32 + 1.0);
        assert_eq!(a[i], 2.0 * (i as f32 + 1.0));
    }
}
