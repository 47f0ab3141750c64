//! Tests of `dualstream_core::energy`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `energy` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::energy::*;
    pub use dualstream_core::tensor::Tensor;
}
#[test]
fn table_2_energies_follow_from_its_ac_and_mac_columns() {
    let fp32 = Energies::preset("fp32").unwrap();
    // (AC G, MAC G, DC mJ) of FSNN-18 (DST), DSNN-18 and SEW-ResNet-18 (ADD), ImageNet, T = 4.
    for (ac, mac, mj) in [(1.69, 0.12, 2.07), (1.69, 0.20, 2.44), (0.51, 2.75, 13.11)] {
        let e = fp32.millijoules(ac * 1e9, mac * 1e9);
        assert!((e - mj).abs() < 0.005, "{ac} G AC + {mac} G MAC: {e} mJ, the paper says {mj}");
    }
    assert_eq!(Energies::preset("int8").unwrap().millijoules(1e9, 1e9), 0.26);
    let err = Energies::preset("fp64").unwrap_err();
    assert!(err.to_string().contains("fp64") && err.to_string().contains("int8"), "{err}");
    assert!(Energies::custom(-1.0, 2.0).unwrap_err().to_string().contains("acPj"));
}

#[test]
fn spike_inputs_give_ac_ops_times_rate_and_a_repeated_image_counts_once() {
    let mut c = SynapseCounter::default();
    c.observe(&Tensor::zeros(&[2, 1, 4]), 10, 0);
    assert_eq!(c.calls, 0, "off by default");
    c.set_on(true);
    // T = 2, N = 2, 4 inputs per sample-step, 6 ones in 16: rate 6/16.
    let x = Tensor::from_vec(
        &[2, 2, 4],
        vec![1., 0., 0., 1., 0., 0., 0., 0., 1., 1., 1., 0., 0., 0., 1., 0.],
    )
    .unwrap();
    c.observe(&x, 12, 3);
    assert_eq!(c.ac, 12.0 * 4.0 * 6.0 / 16.0 + 3.0 * 4.0);
    assert_eq!((c.ac_worst, c.mac, c.dense), (15.0 * 4.0, 0.0, 15.0 * 4.0));
    // An image fed at each of 3 steps: once; the same image varying over time: every step.
    let img = [0.5f32, 2.0, -1.0];
    let repeated = Tensor::from_vec(&[3, 1, 3], img.repeat(3)).unwrap();
    let mut s = SynapseCounter::default();
    s.set_on(true);
    s.observe(&repeated, 7, 1);
    assert_eq!((s.mac, s.static_calls), (8.0, 1));
    let mut moving = img.repeat(3);
    moving[8] = 0.25;
    s.observe(&Tensor::from_vec(&[3, 1, 3], moving).unwrap(), 7, 1);
    assert_eq!((s.mac, s.static_calls), (8.0 + 24.0, 1));
    // All-ones spikes repeated over time are T events per synapse, not a static image.
    let mut ones = SynapseCounter::default();
    ones.set_on(true);
    ones.observe(&Tensor::full(&[3, 1, 3], 1.0), 7, 0);
    assert_eq!((ones.ac, ones.static_calls), (21.0, 0));
}

#[test]
fn rate_monitors_report_per_step_and_overall_rates_streamed_over_batches() {
    let mut m = RateMonitor::default();
    m.set_on(true);
    m.observe(&Tensor::from_vec(&[2, 1, 2], vec![1., 1., 0., 1.]).unwrap());
    m.observe(&Tensor::from_vec(&[2, 2, 2], vec![0., 0., 0., 1., 1., 1., 1., 1.]).unwrap());
    let r = EnergyReport::from_counters(
        &[Counter::Rate { name: "n".into(), kind: "neuron", monitor: &mut m }],
        &Energies::preset("fp32").unwrap(),
    );
    assert_eq!(r.neurons[0].rate_per_step, vec![3.0 / 6.0, 5.0 / 6.0]);
    assert_eq!(r.neurons[0].rate, 8.0 / 12.0);
    assert_eq!((r.neurons[0].units, r.totals.neuron_updates), (2, 4.0));
}
