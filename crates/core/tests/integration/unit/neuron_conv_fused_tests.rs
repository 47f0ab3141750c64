//! The inference pass that feeds an event-driven convolution's output to a neuron layer in
//! cache (`kernel::forward_conv_events`) against the convolution followed by the neuron layer.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `neuron` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::layer::{Layer, Visitor, VisitorMut};
    pub use dualstream_core::neuron::*;
    pub use dualstream_core::spec::NeuronSpec;
}
use crate::unit::kernels_spike_conv::random_geom;
use crate::unit::neuron::detached_atan_lif;
use dualstream_core::kernels::connect::connect_forward;
use dualstream_core::kernels::spike_conv::{conv2d_forward_spikes, EventBudget};
use dualstream_core::rng::Rng;
use dualstream_core::spec::{Connect, SurrogateSpec};

/// Every neuron kind x hard (V_reset 0 or -0.3) / soft reset x decay_input, with taus that are
/// and are not powers of two.
fn neurons() -> Vec<(NeuronKind, NeuronSpec)> {
    let mut out = Vec::new();
    for kind in [NeuronKind::If, NeuronKind::Lif, NeuronKind::Plif] {
        for v_reset in [Some(0.0), Some(-0.3), None] {
            for decay_input in [true, false] {
                let tau = if decay_input { 2.0 } else { 2.7 };
                let surrogate = SurrogateSpec::Atan { alpha: 2.0 };
                let spec = NeuronSpec {
                    tau,
                    decay_input,
                    v_threshold: 0.6,
                    v_reset,
                    detach_reset: true,
                    surrogate,
                };
                out.push((kind, spec));
            }
        }
    }
    out
}

#[test]
fn conv_then_neuron_in_cache_matches_the_two_passes_bit_for_bit() {
    let mut rng = Rng::new(77);
    let mut cases = 0;
    for (k, (kind, spec)) in neurons().into_iter().enumerate() {
        let mut neuron = NeuronLayer::new("blk.2", kind, &spec).unwrap();
        if let Some(w) = &mut neuron.w {
            w.value.data_mut()[0] = rng.normal() * 0.7;
        }
        let d = neuron.dynamics();
        for density in [0.0, 0.01, 0.1, 0.5, 1.0] {
            let g = random_geom(&mut rng);
            let (t_len, n_len) = (1 + rng.below(4), 1 + rng.below(3));
            let batch = t_len * n_len;
            let x: Vec<f32> =
                (0..batch * g.in_size()).map(|_| (rng.uniform() < density) as u8 as f32).collect();
            let weight: Vec<f32> = (0..g.weight_len()).map(|_| rng.normal() * 0.4).collect();
            let bias: Option<Vec<f32>> =
                (k % 2 == 0).then(|| (0..g.c_out).map(|_| rng.normal() * 0.3).collect());
            let mut pre = vec![0.0; batch * g.out_size()];
            conv2d_forward_spikes(&g, &x, &weight, bias.as_deref(), &mut pre);
            let mut want = vec![0.0; pre.len()];
            let want_count = kernel::forward(&d, &pre, t_len, &mut want);
            // The fused pass over the spike events, optionally joined as it writes.
            let events = |join: Option<(Connect, &[f32])>| {
                let mut got = vec![f32::NAN; pre.len()];
                let budget = EventBudget::new(x.len(), 1.0);
                let run = kernel::forward_conv_events(
                    &d,
                    &g,
                    &x,
                    &weight,
                    bias.as_deref(),
                    t_len,
                    &mut got,
                    &budget,
                    join,
                );
                let (count, joined) = run.unwrap();
                (count, joined, got)
            };
            let (count, joined, got) = events(None);
            let what = format!("{kind:?} {spec:?} density {density} {g:?} T {t_len} N {n_len}");
            assert_eq!((count, joined), (want_count, None), "{what}");
            assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{what}");
            // Joined with a residual shortcut as each row is written: the block's own join.
            let connect =
                [Connect::Or, Connect::And, Connect::Iand, Connect::Xor, Connect::Add][k % 5];
            let shortcut: Vec<f32> =
                (0..want.len()).map(|_| (rng.uniform() < 0.3) as u8 as f32).collect();
            let mut block_out = vec![0.0; want.len()];
            let want_sum = connect_forward(connect, &want, &shortcut, &mut block_out, None);
            let (count, joined, got) = events(Some((connect, &shortcut)));
            assert_eq!(
                (count, joined),
                (want_count, Some(want_sum)),
                "{what} joined by {connect:?}"
            );
            assert!(
                got.iter().zip(&block_out).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{what} joined by {connect:?}"
            );
            cases += 1;
        }
    }
    assert_eq!(cases, 18 * 5);
}

#[test]
fn conv_then_neuron_fires_on_a_shape_with_several_steps_and_samples() {
    // A typical 32-channel 14x14 layer: the comparison above must not pass on silence alone.
    let g = dualstream_core::kernels::geometry::ConvGeom::new(
        32,
        32,
        14,
        14,
        [3, 3],
        [1, 1],
        [1, 1],
        [1, 1],
        1,
    )
    .unwrap();
    let mut rng = Rng::new(5);
    let (t_len, n_len) = (4, 3);
    let x: Vec<f32> =
        (0..t_len * n_len * g.in_size()).map(|_| (rng.uniform() < 0.15) as u8 as f32).collect();
    let weight: Vec<f32> = (0..g.weight_len()).map(|_| rng.normal() * 0.2).collect();
    let spec = detached_atan_lif();
    let neuron = NeuronLayer::new("l", NeuronKind::Lif, &spec).unwrap();
    let mut pre = vec![0.0; t_len * n_len * g.out_size()];
    conv2d_forward_spikes(&g, &x, &weight, None, &mut pre);
    let mut want = vec![0.0; pre.len()];
    let want_count = kernel::forward(&neuron.dynamics(), &pre, t_len, &mut want);
    let mut got = vec![0.0; pre.len()];
    let (count, _) = kernel::forward_conv_events(
        &neuron.dynamics(),
        &g,
        &x,
        &weight,
        None,
        t_len,
        &mut got,
        &EventBudget::new(x.len(), 1.0),
        None,
    )
    .unwrap();
    let rate = want_count as f64 / want.len() as f64;
    assert!(rate > 0.02 && rate < 0.5, "firing rate {rate}");
    assert_eq!(count, want_count);
    assert_eq!(got, want);
}

/// Not a test: times conv + LIF as two passes against the in-cache pass on large
/// event-driven layers (alternating, median of 15), and the parts of the two passes.
/// `cargo test --release -p dualstream-core conv_neuron_throughput -- --ignored --nocapture`.
#[test]
#[ignore]
fn conv_neuron_throughput() {
    use dualstream_core::kernels::geometry::ConvGeom;
    let spec = detached_atan_lif();
    let d = NeuronLayer::new("l", NeuronKind::Lif, &spec).unwrap().dynamics();
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    for (name, t_len, n_len, c, hw, density) in [
        ("W1 28x28", 4, 32, 32, 28, 0.05),
        ("W1 14x14", 4, 32, 64, 14, 0.04),
        ("W2 64x64", 8, 8, 32, 64, 0.03),
    ] {
        let g = ConvGeom::new(c, c, hw, hw, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
        let mut rng = Rng::new(1);
        let batch = t_len * n_len;
        let x: Vec<f32> =
            (0..batch * g.in_size()).map(|_| (rng.uniform() < density) as u8 as f32).collect();
        let weight: Vec<f32> = (0..g.weight_len()).map(|_| rng.normal() * 0.2).collect();
        let (mut pre, mut out, mut fused) = (
            vec![0.0; batch * g.out_size()],
            vec![0.0; batch * g.out_size()],
            vec![0.0; batch * g.out_size()],
        );
        let (mut conv, mut lif, mut one, mut stats) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..16 {
            let t0 = std::time::Instant::now();
            conv2d_forward_spikes(&g, &x, &weight, None, &mut pre);
            let t1 = std::time::Instant::now();
            kernel::forward(&d, &pre, t_len, &mut out);
            let t2 = std::time::Instant::now();
            kernel::forward_conv_events(
                &d,
                &g,
                &x,
                &weight,
                None,
                t_len,
                &mut fused,
                &EventBudget::new(x.len(), 0.1),
                None,
            );
            let t3 = std::time::Instant::now();
            std::hint::black_box(dualstream_core::kernels::spike_conv::spike_stats(&x));
            let t4 = std::time::Instant::now();
            conv.push((t1 - t0).as_secs_f64() * 1e3);
            lif.push((t2 - t1).as_secs_f64() * 1e3);
            one.push((t3 - t2).as_secs_f64() * 1e3);
            stats.push((t4 - t3).as_secs_f64() * 1e3);
        }
        assert_eq!(out, fused);
        let (c, l, o, st) = (median(conv), median(lif), median(one), median(stats));
        println!("{name}: conv {c:.2} ms + LIF {l:.2} ms = {:.2} ms; in cache {o:.2} ms ({:.2}x); a stats pass over the input {st:.2} ms", c + l, (c + l) / o);
    }
}

#[test]
fn a_repeated_step_fires_as_the_input_written_out_step_by_step() {
    let mut rng = Rng::new(12);
    for (kind, spec) in neurons() {
        let mut neuron = NeuronLayer::new("l", kind, &spec).unwrap();
        if let Some(w) = &mut neuron.w {
            w.value.data_mut()[0] = rng.normal() * 0.7;
        }
        // Several parallel chunks and a ragged last one.
        let step: Vec<f32> =
            (0..2 * kernel::CHUNK + 37).map(|_| rng.normal() * 0.8 + 0.3).collect();
        let t_len = 5;
        let mut want = vec![0.0; step.len() * t_len];
        let want_count = kernel::forward(&neuron.dynamics(), &step.repeat(t_len), t_len, &mut want);
        let mut got = vec![f32::NAN; want.len()];
        let count = kernel::forward_repeated(&neuron.dynamics(), &step, None, t_len, &mut got);
        assert!(want_count > 0, "{kind:?} {spec:?}");
        assert_eq!(count, want_count, "{kind:?} {spec:?}");
        assert!(
            got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
            "{kind:?} {spec:?}"
        );
    }
}
