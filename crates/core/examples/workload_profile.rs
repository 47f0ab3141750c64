//! Per-layer profile of one training step (forward and backward split) and one inference batch
//! of a reference workload, with the bytes kept for BPTT.
//!
//! `cargo run --release -p dualstream-core --example workload_profile -- SPEC.json [steps]`
//!
//! SPEC.json is a model spec as `benches/workloads.ts` builds it (`npm run bench:profile` writes
//! them and runs this for W1, W2 and their dual-stream variants). The input is synthetic: uniform
//! [0, 1) for direct encoding, 15 % binary spikes for sequence encoding, as in the workloads.
//! Times nest: a block's line includes its layers' lines below it.
use dualstream_core::loss::LossSpec;
use dualstream_core::model::{InferenceMode, Model, Trainer};
use dualstream_core::optim::schedule::ScheduleSpec;
use dualstream_core::optim::OptimizerSpec;
use dualstream_core::profile;
use dualstream_core::rng::Rng;
use dualstream_core::spec::{Encoding, ModelSpec};
use dualstream_core::Tensor;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).expect("usage: workload_profile SPEC.json [steps] [batch]");
    let steps: usize = args.get(2).map_or(10, |s| s.parse().unwrap());
    let spec: ModelSpec = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let batch: usize = args.get(3).map_or(if spec.encoding == Encoding::Direct { 32 } else { 8 }, |s| s.parse().unwrap());
    let mut shape = vec![batch];
    shape.extend_from_slice(&spec.input_shape);
    if spec.encoding == Encoding::Sequence {
        shape.insert(0, spec.time_steps);
    }
    let mut rng = Rng::new(1);
    let n: usize = shape.iter().product();
    let x: Vec<f32> = (0..n)
        .map(|_| match spec.encoding {
            Encoding::Direct => rng.uniform(),
            Encoding::Sequence => (rng.uniform() < 0.15) as u8 as f32,
        })
        .collect();
    let x = Tensor::from_vec(&shape, x).unwrap();
    let classes = 10u32;
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % classes).collect();
    let mut model = Model::from_spec(&spec, 1).unwrap();
    let opt: OptimizerSpec = serde_json::from_str(r#"{"type":"sgd","lr":0.01,"momentum":0.9}"#).unwrap();
    let loss: LossSpec = serde_json::from_str(r#"{"type":"crossEntropy"}"#).unwrap();
    let mut trainer = Trainer::new(&opt, &ScheduleSpec::default(), &loss).unwrap();
    for _ in 0..2 {
        dualstream_core::in_pool(|| trainer.train_step(&mut model, &x, &labels).unwrap());
    }
    let mut total = Vec::new();
    profile::set_enabled(true);
    profile::take();
    for _ in 0..steps {
        let t = Instant::now();
        // As the Node binding runs every call (`dualstream_core::in_pool`).
        dualstream_core::in_pool(|| trainer.train_step(&mut model, &x, &labels).unwrap());
        total.push(t.elapsed().as_secs_f64());
    }
    let train = profile::take();
    profile::set_enabled(false);
    let step_ms = median(total.clone()) * 1e3;
    let mean_ms = total.iter().sum::<f64>() / steps as f64 * 1e3;
    println!("## {path}: training step (batch {batch}, T {})", spec.time_steps);
    println!();
    println!("median {step_ms:.1} ms, mean {mean_ms:.1} ms; BPTT storage {:.1} MiB", model.stored_bytes() as f64 / 1048576.0);
    println!();
    println!("| layer | forward ms | backward ms | share of step |");
    println!("|---|---|---|---|");
    let top: f64 = train.iter().filter(|(k, _)| k.matches('.').count() == 1).map(|(_, v)| v.forward_s + v.backward_s).sum();
    for (name, t) in &train {
        let (f, b) = (t.forward_s / steps as f64 * 1e3, t.backward_s / steps as f64 * 1e3);
        println!("| {name} | {f:.2} | {b:.2} | {:.1} % |", 100.0 * (f + b) / mean_ms);
    }
    println!("| (loss, optimizer, input copy) | | | {:.1} % |", 100.0 * (1.0 - top / steps as f64 * 1e3 / mean_ms));
    println!();
    let mut deploy = if model.heads() == 2 { model.to_full_spike().unwrap() } else { model };
    let mut infer = Vec::new();
    for _ in 0..steps + 2 {
        let t = Instant::now();
        dualstream_core::in_pool(|| deploy.evaluate(&x, None, InferenceMode::Fsnn, &loss).unwrap());
        infer.push(t.elapsed().as_secs_f64());
    }
    profile::set_enabled(true);
    for _ in 0..steps {
        dualstream_core::in_pool(|| deploy.evaluate(&x, None, InferenceMode::Fsnn, &loss).unwrap());
    }
    let inf = profile::take();
    profile::set_enabled(false);
    println!("inference (full-spike): median {:.1} ms", median(infer[2..].to_vec()) * 1e3);
    println!();
    println!("| layer | inference ms |");
    println!("|---|---|");
    for (name, t) in &inf {
        println!("| {name} | {:.2} |", t.forward_s / steps as f64 * 1e3);
    }
    println!();
}
