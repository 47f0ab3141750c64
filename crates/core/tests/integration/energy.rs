//! Energy counts of a whole model against hand-computed operation counts.
use dualstream_core::energy::{Energies, EnergyReport};
use dualstream_core::loss::LossSpec;
use dualstream_core::model::{InferenceMode, Model};
use dualstream_core::rng::Rng;
use dualstream_core::spec::ModelSpec;
use dualstream_core::Tensor;

#[path = "../support/small_dsnn.rs"]
pub(crate) mod small_dsnn;
use small_dsnn::small_dsnn_json;

/// The shared small DSNN with IF neurons (threshold 0.3) and IAND blocks.
fn small_dsnn() -> ModelSpec {
    serde_json::from_str(&small_dsnn_json("iand", r#"{"type":"if","vThreshold":0.3}"#, true))
        .unwrap()
}

fn images(n: usize, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    Tensor::from_vec(&[n, 1, 8, 8], (0..n * 64).map(|_| 3.0 * rng.uniform()).collect()).unwrap()
}

fn count(model: &mut Model, batches: &[Tensor], mode: InferenceMode) -> EnergyReport {
    model.reset_energy();
    for x in batches {
        model.counting(|m| m.evaluate(x, None, mode, &LossSpec::default())).unwrap();
    }
    model.energy_report(&Energies::preset("fp32").unwrap())
}

/// Dense ops per sample and step, by hand: k_h*k_w*C_in/groups*C_out*H_out*W_out (+ bias).
const DENSE: [(&str, f64); 12] = [
    ("layers.0", 9. * 1. * 4. * 64.),
    ("layers.3.stages.0.branch.0", 9. * 4. * 4. * 64.),
    ("layers.3.stages.0.branch.3", 9. * 4. * 4. * 64.),
    ("layers.3.stages.2.branch.0", 9. * 4. * 8. * 4.),
    ("layers.3.stages.2.branch.3", 9. * 8. * 8. * 4.),
    ("layers.3.stages.2.shortcut.0", 4. * 8. * 4.),
    ("layers.3.stages.2.projection.0", 9. * 1. * 4. * 4.),
    ("layers.3.stages.2.projection.1", 4. * 8. * 4.),
    // The spike head: the FC on every position of O_L (8 x 2 x 2) plus 3 bias adds.
    ("layers.3.head (on the spike stream O)", 8. * 4. * 3. + 3.),
    ("layers.3.head (on the accumulation A)", 8. * 3. + 3.),
    ("", 0.),
    ("", 0.),
];

#[test]
fn a_small_dsnn_counts_its_layers_as_computed_by_hand_in_both_modes() {
    let mut m = Model::from_spec(&small_dsnn(), 3).unwrap();
    let x = images(4, 1);
    let dense = |name: &str| {
        DENSE
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no hand count for {name}"))
            .1
    };
    for mode in [InferenceMode::Fsnn, InferenceMode::Dsnn] {
        let r = count(&mut m, std::slice::from_ref(&x), mode);
        assert_eq!(r.samples, 4);
        let names: Vec<&str> = r.layers.iter().map(|l| l.name.as_str()).collect();
        let expected: Vec<&str> = DENSE
            .iter()
            .map(|d| d.0)
            .filter(|n| {
                !n.is_empty()
                    && (mode == InferenceMode::Dsnn
                        || !(n.contains("projection") || n.contains("accumulation")))
            })
            .collect();
        assert_eq!(names, expected, "{mode:?}: forward order");
        for l in &r.layers {
            let steps = if l.static_input { 1.0 } else { 3.0 };
            assert_eq!(l.dense_ops, dense(&l.name) * steps, "{}", l.name);
            if l.spike_input {
                assert_eq!((l.mac, l.ac_worst), (0.0, l.dense_ops), "{}", l.name);
                assert!(
                    l.ac > 0.0 && l.ac < l.dense_ops,
                    "{}: {} of {}",
                    l.name,
                    l.ac,
                    l.dense_ops
                );
            } else {
                assert_eq!((l.mac, l.ac), (l.dense_ops, 0.0), "{}", l.name);
            }
        }
        let stem = &r.layers[0];
        assert!(
            stem.static_input && !stem.spike_input,
            "the image, fed at every step, counts once"
        );
        let mac: f64 = r.layers.iter().map(|l| l.mac).sum();
        assert_eq!(r.totals.mac, mac);
        match mode {
            // Only the stem multiplies in the full-spike network.
            InferenceMode::Fsnn => assert_eq!(r.totals.mac, 2304.0),
            InferenceMode::Dsnn => {
                let projection =
                    r.layers.iter().find(|l| l.name.ends_with("projection.1")).unwrap();
                assert!(
                    !projection.spike_input,
                    "the AAP's 1x1 conv reads the depthwise conv's output"
                );
                let head = r.layers.last().unwrap();
                assert_eq!(head.mac, 27.0 * 3.0);
            }
        }
        let e = Energies::preset("fp32").unwrap();
        assert_eq!(r.totals.dynamic_mj, e.millijoules(r.totals.ac, r.totals.mac));
        assert!(r.totals.worst_mj > r.totals.dynamic_mj);
    }
}

#[test]
fn counts_stream_over_batches_and_rates_agree_with_the_firing_rate_plumbing() {
    let mut m = Model::from_spec(&small_dsnn(), 5).unwrap();
    let all = images(6, 9);
    let halves = [
        Tensor::from_vec(&[3, 1, 8, 8], all.data()[..192].to_vec()).unwrap(),
        Tensor::from_vec(&[3, 1, 8, 8], all.data()[192..].to_vec()).unwrap(),
    ];
    let whole = count(&mut m, std::slice::from_ref(&all), InferenceMode::Dsnn);
    // The last forward was this batch alone: its monitors equal the layers' own firing rates.
    let rates = m.firing_rates();
    for n in &whole.neurons {
        let (_, rate) = rates.iter().find(|(name, _)| *name == n.name).unwrap();
        assert!((n.rate - *rate as f64).abs() < 1e-6, "{}: {} vs {rate}", n.name, n.rate);
        let mean_of_steps = n.rate_per_step.iter().sum::<f64>() / 3.0;
        assert!((n.rate - mean_of_steps).abs() < 1e-12);
    }
    assert_eq!(
        whole.blocks.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(),
        ["layers.3.stages.0.out", "layers.3.stages.2.out"]
    );
    let streamed = count(&mut m, &halves, InferenceMode::Dsnn);
    assert_eq!(streamed.samples, 6);
    for (a, b) in whole.layers.iter().zip(&streamed.layers) {
        assert_eq!((a.dense_ops, a.mac), (b.dense_ops, b.mac), "{}", a.name);
        assert!((a.ac - b.ac).abs() <= 1e-12 * a.ac.max(1.0), "{}: {} vs {}", a.name, a.ac, b.ac);
    }
    for (a, b) in whole.neurons.iter().zip(&streamed.neurons) {
        assert!((a.rate - b.rate).abs() < 1e-12, "{}", a.name);
    }
    // Counting stays off outside `counting`: a plain evaluation adds nothing.
    m.evaluate(&all, None, InferenceMode::Dsnn, &LossSpec::default()).unwrap();
    assert_eq!(m.energy_report(&Energies::preset("fp32").unwrap()), streamed);
}

#[test]
fn every_residual_block_reports_its_output_rate_and_sew_add_outputs_cost_macs() {
    let block = |kind: &str, extra: &str| {
        format!(
            r#"{{"type":"{kind}"{extra},"branch":[
            {{"type":"conv2d","inChannels":4,"outChannels":4,"kernelSize":[3,3],"padding":[1,1],"bias":false}},
            {{"type":"batchNorm2d","numFeatures":4}},{{"type":"if","vThreshold":0.3}}]}}"#
        )
    };
    let spec: ModelSpec = serde_json::from_str(&format!(
        r#"{{"timeSteps":2,"inputShape":[1,8,8],"layers":[
            {{"type":"conv2d","inChannels":1,"outChannels":4,"kernelSize":[3,3],"padding":[1,1],"bias":false}},
            {{"type":"batchNorm2d","numFeatures":4}},{{"type":"if","vThreshold":0.3}},{},{},
            {{"type":"flatten"}},{{"type":"linear","inFeatures":256,"outFeatures":3}}]}}"#,
        block("spikingResnetBlock", ""),
        block("sewBlock", r#","connect":"add""#)
    ))
    .unwrap();
    let mut m = Model::from_spec(&spec, 4).unwrap();
    let r = count(&mut m, &[images(5, 2)], InferenceMode::Fsnn);
    let names: Vec<&str> = r.blocks.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["layers.3.out", "layers.4.out"]);
    let residual = r.neurons.iter().find(|n| n.name == "layers.3.residual (if)").unwrap();
    assert_eq!(
        r.blocks[0].rate_per_step, residual.rate_per_step,
        "the Spiking ResNet block's output is its residual neuron's"
    );
    // The SEW ADD output (S + O, up to 2) feeds the classifier: a MAC layer unless no 2 ever arrived.
    let fc = r.layers.last().unwrap();
    assert!(
        !fc.spike_input,
        "a value of 2 reached the classifier (block rate {:?})",
        r.blocks[1].rate
    );
    assert_eq!(fc.mac, (256.0 * 3.0 + 3.0) * 2.0);
}
