//! Per-layer profile of one training step (forward and backward split) and one inference batch
//! of a reference workload, with the bytes kept for BPTT.
//!
//! `cargo run --release -p dualstream-core --example workload_profile -- SPEC.json [steps] [batch] [INPUTS.f32 LABELS.u32]`
//!
//! SPEC.json is a model spec as `benches/workloads.ts` builds it (`npm run bench:profile` writes
//! them and runs this for W1, W2 and their dual-stream variants). The input is synthetic: uniform
//! [0, 1) for direct encoding, 15 % binary spikes for sequence encoding, as in the workloads.
//! Given INPUTS.f32 and LABELS.u32 (raw little-endian samples and labels; `npm run bench:profile
//! -- --cli` writes real Fashion-MNIST ones), it trains with Adam on successive batches of them
//! instead, after 100 warm-up steps (firing rates settle), as the CLI's default run does.
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

/// One batch as in the workloads: uniform [0, 1) for direct encoding, 15 % spikes otherwise.
fn synthetic_batch(spec: &ModelSpec, shape: &[usize]) -> (Tensor, Vec<u32>) {
    let mut rng = Rng::new(1);
    let n: usize = shape.iter().product();
    let x: Vec<f32> = (0..n)
        .map(|_| match spec.encoding {
            Encoding::Direct => rng.uniform(),
            Encoding::Sequence => (rng.uniform() < 0.15) as u8 as f32,
        })
        .collect();
    let batch = shape[shape.len() - spec.input_shape.len() - 1];
    (Tensor::from_vec(shape, x).unwrap(), (0..batch as u32).map(|i| i % 10).collect())
}

/// Batches of `shape` cut from raw little-endian f32 samples and u32 labels.
fn real_batches(xs: &str, ys: &str, shape: &[usize]) -> Vec<(Tensor, Vec<u32>)> {
    let words = |path: &str| -> Vec<[u8; 4]> {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        bytes.chunks_exact(4).map(|b| b.try_into().unwrap()).collect()
    };
    let x: Vec<f32> = words(xs).into_iter().map(f32::from_le_bytes).collect();
    let y: Vec<u32> = words(ys).into_iter().map(u32::from_le_bytes).collect();
    let per_batch: usize = shape.iter().product();
    let batch = per_batch * y.len() / x.len().max(1);
    assert!(
        batch > 0 && x.len() == per_batch / batch * y.len(),
        "{xs}: samples do not match {ys} and the batch shape {shape:?}"
    );
    x.chunks_exact(per_batch)
        .zip(y.chunks_exact(batch))
        .map(|(x, y)| (Tensor::from_vec(shape, x.to_vec()).unwrap(), y.to_vec()))
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).expect("usage: workload_profile SPEC.json [steps] [batch]");
    let steps: usize = args.get(2).map_or(10, |s| s.parse().unwrap());
    let spec: ModelSpec = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let batch: usize = args
        .get(3)
        .map_or(if spec.encoding == Encoding::Direct { 32 } else { 8 }, |s| s.parse().unwrap());
    let mut shape = vec![batch];
    shape.extend_from_slice(&spec.input_shape);
    if spec.encoding == Encoding::Sequence {
        shape.insert(0, spec.time_steps);
    }
    let batches = match (args.get(4), args.get(5)) {
        (Some(xs), Some(ys)) => real_batches(xs, ys, &shape),
        _ => vec![synthetic_batch(&spec, &shape)],
    };
    let real = batches.len() > 1;
    let (x, _) = &batches[0];
    let mut model = Model::from_spec(&spec, 1).unwrap();
    let opt = if real {
        r#"{"type":"adam","lr":0.002}"#
    } else {
        r#"{"type":"sgd","lr":0.01,"momentum":0.9}"#
    };
    let opt: OptimizerSpec = serde_json::from_str(opt).unwrap();
    let loss: LossSpec = serde_json::from_str(r#"{"type":"crossEntropy"}"#).unwrap();
    let mut trainer = Trainer::new(&opt, &ScheduleSpec::default(), &loss).unwrap();
    let mut next = 0;
    let mut step = |model: &mut Model, trainer: &mut Trainer| {
        let (x, labels) = &batches[next % batches.len()];
        next += 1;
        dualstream_core::in_pool(|| trainer.train_step(model, x, labels).unwrap());
    };
    for _ in 0..if real { 100 } else { 2 } {
        step(&mut model, &mut trainer);
    }
    let mut total = Vec::new();
    profile::set_enabled(true);
    profile::take();
    for _ in 0..steps {
        let t = Instant::now();
        // As the Node binding runs every call (`dualstream_core::in_pool`).
        step(&mut model, &mut trainer);
        total.push(t.elapsed().as_secs_f64());
    }
    let train = profile::take();
    profile::set_enabled(false);
    let step_ms = median(total.clone()) * 1e3;
    let mean_ms = total.iter().sum::<f64>() / steps as f64 * 1e3;
    let data = if real { ", real input batches" } else { "" };
    println!("## {path}: training step (batch {batch}, T {}{data})", spec.time_steps);
    println!();
    println!(
        "median {step_ms:.1} ms, mean {mean_ms:.1} ms; BPTT storage {:.1} MiB",
        model.stored_bytes() as f64 / 1048576.0
    );
    println!();
    println!("| layer | forward ms | backward ms | share of step |");
    println!("|---|---|---|---|");
    let top: f64 = train
        .iter()
        .filter(|(k, _)| k.matches('.').count() == 1)
        .map(|(_, v)| v.forward_s + v.backward_s)
        .sum();
    for (name, t) in &train {
        let (f, b) = (t.forward_s / steps as f64 * 1e3, t.backward_s / steps as f64 * 1e3);
        println!("| {name} | {f:.2} | {b:.2} | {:.1} % |", 100.0 * (f + b) / mean_ms);
    }
    println!(
        "| (loss, optimizer, input copy) | | | {:.1} % |",
        100.0 * (1.0 - top / steps as f64 * 1e3 / mean_ms)
    );
    println!();
    let mut deploy = if model.heads() == 2 { model.to_full_spike().unwrap() } else { model };
    let mut infer = Vec::new();
    for _ in 0..steps + 2 {
        let t = Instant::now();
        dualstream_core::in_pool(|| deploy.evaluate(x, None, InferenceMode::Fsnn, &loss).unwrap());
        infer.push(t.elapsed().as_secs_f64());
    }
    profile::set_enabled(true);
    for _ in 0..steps {
        dualstream_core::in_pool(|| deploy.evaluate(x, None, InferenceMode::Fsnn, &loss).unwrap());
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
