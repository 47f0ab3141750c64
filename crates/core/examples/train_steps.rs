//! A fixed number of training steps of a model spec on real batches (raw little-endian f32
//! samples and u32 labels), as the CLI runs them: a short, deterministic run to count
//! instructions with `valgrind --tool=callgrind`.
//! The inputs are raw files as `benches/profile.ts --cli` writes them (`cliWorkload`: 60
//! batches of 64 Fashion-MNIST training images in a seeded order); the spec is `convDsnn()`'s.
//! Each step prints its loss bits, so two revisions can be checked for the same results.
//!
//! `cargo run --release -p dualstream-core --example train_steps -- SPEC.json INPUTS.f32 LABELS.u32 [steps] [batch]`
use dualstream_core::loss::LossSpec;
use dualstream_core::model::{Model, Trainer};
use dualstream_core::optim::schedule::ScheduleSpec;
use dualstream_core::optim::OptimizerSpec;
use dualstream_core::spec::ModelSpec;
use dualstream_core::Tensor;

fn words(path: &str) -> Vec<[u8; 4]> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    bytes.chunks_exact(4).map(|b| b.try_into().unwrap()).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: train_steps SPEC.json INPUTS.f32 LABELS.u32 [steps] [batch]";
    let spec: ModelSpec =
        serde_json::from_str(&std::fs::read_to_string(args.get(1).expect(usage)).unwrap()).unwrap();
    let x: Vec<f32> =
        words(args.get(2).expect(usage)).into_iter().map(f32::from_le_bytes).collect();
    let y: Vec<u32> =
        words(args.get(3).expect(usage)).into_iter().map(u32::from_le_bytes).collect();
    let steps: usize = args.get(4).map_or(20, |s| s.parse().unwrap());
    let batch: usize = args.get(5).map_or(64, |s| s.parse().unwrap());
    let mut shape = vec![batch];
    shape.extend_from_slice(&spec.input_shape);
    let per_sample: usize = spec.input_shape.iter().product();
    let batches = y.len() / batch;
    assert!(
        batches > 0 && x.len() == per_sample * y.len(),
        "inputs do not match the labels and the spec's input shape"
    );
    let mut model = Model::from_spec(&spec, 1).unwrap();
    let opt: OptimizerSpec = serde_json::from_str(r#"{"type":"adam","lr":0.002}"#).unwrap();
    let loss: LossSpec = serde_json::from_str(r#"{"type":"crossEntropy"}"#).unwrap();
    let mut trainer = Trainer::new(&opt, &ScheduleSpec::default(), &loss).unwrap();
    for s in 0..steps {
        let b = s % batches;
        let xb = Tensor::from_vec(
            &shape,
            x[b * batch * per_sample..(b + 1) * batch * per_sample].to_vec(),
        )
        .unwrap();
        let yb = &y[b * batch..(b + 1) * batch];
        let out = dualstream_core::in_pool(|| trainer.train_step(&mut model, &xb, yb).unwrap());
        println!("step {s}: loss {:08x} correct {}", out.loss.to_bits(), out.correct);
    }
}
