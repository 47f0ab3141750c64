//! Tests of `dualstream_core::spec`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `spec` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::spec::*;
}
/// A batch norm whose f32 statistics fit the limit but whose f64 gradient sums do not is
/// refused before anything is built.
#[test]
fn batch_norm_sizes_count_the_f64_sums() {
    let n = dualstream_core::limits::max_bytes() / 8 + 1;
    let spec: ModelSpec = serde_json::from_str(&format!(
        r#"{{"timeSteps":1,"inputShape":[1,1,1],"layers":[{{"type":"batchNorm2d","numFeatures":{n}}}]}}"#
    ))
    .unwrap();
    let err = spec.check_sizes().unwrap_err().to_string();
    assert!(err.contains("layers[0] (batchNorm2d)") && err.contains("f64 sums"), "{err}");
    assert!(err.contains("allocation limit"), "{err}");
}
