//! A linear reading a mean over positions (global average pooling, or the mean over tokens)
//! is audited and counted on the mean's input: `FC(mean_p s_p) = sum_p (W / P) s_p` adds one
//! column of W per spike, the same accumulations as an FC over the flattened spikes.
use dualstream_core::energy::{Energies, EnergyReport, LayerOps};
use dualstream_core::loss::LossSpec;
use dualstream_core::model::{InferenceMode, Model};
use dualstream_core::rng::Rng;
use dualstream_core::spec::ModelSpec;
use dualstream_core::Tensor;

fn images(n: usize, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    Tensor::from_vec(&[n, 1, 8, 8], (0..n * 64).map(|_| 3.0 * rng.uniform()).collect()).unwrap()
}

/// A stem, two SEW blocks joined by `connect` (4 channels, 8x8), then `head`.
fn network(connect: &str, head: &str) -> Model {
    let conv = |cin: usize| {
        format!(
            r#"{{"type":"conv2d","inChannels":{cin},"outChannels":4,"kernelSize":[3,3],
            "padding":[1,1],"bias":false}},{{"type":"batchNorm2d","numFeatures":4}},
            {{"type":"if","vThreshold":0.4}}"#
        )
    };
    let block = format!(r#"{{"type":"sewBlock","connect":"{connect}","branch":[{}]}}"#, conv(4));
    let spec: ModelSpec = serde_json::from_str(&format!(
        r#"{{"timeSteps":3,"inputShape":[1,8,8],"layers":[{},{block},{block},{head}]}}"#,
        conv(1)
    ))
    .unwrap();
    Model::from_spec(&spec, 5).unwrap()
}

/// The two heads that read a mean, and the same heads with the FC over all positions.
const MEAN_HEADS: [(&str, &str, &str); 2] = [
    (
        r#"{"type":"globalAvgPool"},{"type":"linear","inFeatures":4,"outFeatures":3}"#,
        r#"{"type":"flatten"},{"type":"linear","inFeatures":256,"outFeatures":3}"#,
        "layers.6 (linear, on the input of the mean layers.5 (globalAvgPool))",
    ),
    (
        r#"{"type":"tokens"},{"type":"tokenMean"},{"type":"linear","inFeatures":4,"outFeatures":3}"#,
        r#"{"type":"tokens"},{"type":"flatten"},{"type":"linear","inFeatures":256,"outFeatures":3}"#,
        "layers.7 (linear, on the input of the mean layers.6 (tokenMean))",
    ),
];

fn head_ops(model: &mut Model, x: &Tensor) -> LayerOps {
    model.reset_energy();
    model.counting(|m| m.evaluate(x, None, InferenceMode::Fsnn, &LossSpec::default())).unwrap();
    let report: EnergyReport = model.energy_report(&Energies::preset("fp32").unwrap());
    report.layers.last().unwrap().clone()
}

#[test]
fn a_linear_after_a_mean_of_spikes_passes_the_audit_and_add_fails_inside_its_blocks() {
    let x = images(4, 2);
    for (mean, _, entry) in MEAN_HEADS {
        let report = network("iand", mean).audit(&x).unwrap();
        assert!(report.passed(), "{report:?}");
        let head = report.layers.last().unwrap();
        assert_eq!(head.layer, entry);
        assert!(head.binary);
        assert!(!report.layers.iter().any(|e| e.layer.ends_with("(linear)")), "{report:?}");

        let report = network("add", mean).audit(&x).unwrap();
        assert_eq!(report.offending[0].layer, "layers.4.branch.0 (conv2d)");
        assert_eq!(report.offending[0].example, Some(2.0));
        let head = report.offending.last().unwrap();
        assert_eq!(head.layer, entry, "the mean reads sums of spikes: {report:?}");
        assert!(head.example.unwrap() > 1.0);
    }
}

#[test]
fn a_linear_after_a_mean_of_spikes_counts_the_accumulations_of_an_fc_over_the_spikes() {
    let x = images(6, 3);
    for (mean, flat, _) in MEAN_HEADS {
        let on_mean = head_ops(&mut network("iand", mean), &x);
        let on_all = head_ops(&mut network("iand", flat), &x);
        assert_eq!(on_all.name, on_mean.name);
        assert!(on_mean.spike_input && on_all.spike_input);
        assert_eq!(on_mean.mac, 0.0);
        assert!(on_mean.ac > 0.0);
        assert_eq!(on_mean.ac, on_all.ac, "one column of W per spike, plus the bias");
        assert_eq!(on_mean.input_rate, on_all.input_rate);

        // Sums of spikes: the FC of the mean, 4 x 3 weights and 3 biases per step, as MACs.
        let add = head_ops(&mut network("add", mean), &x);
        assert!(!add.spike_input);
        assert_eq!((add.ac, add.mac), (0.0, 3.0 * (4.0 * 3.0 + 3.0)));
    }
}
