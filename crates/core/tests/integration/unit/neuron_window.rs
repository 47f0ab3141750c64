//! The fused BN + neuron kernels run window by window over time
//! (`kernel::window::{forward_window, backward_window, window_sums}`) against one call over
//! all steps (`kernel::forward_bn`, `kernel::backward_bn`): the same bits, with the backward's
//! carry keeping the sums or `dL/dV` alone.
use dualstream_core::kernels::batch_norm::ChannelAffine;
use dualstream_core::neuron::kernel::window::{
    backward_window, forward_window, window_sums, WindowCarry,
};
use dualstream_core::neuron::kernel::{self, BnGrad};
use dualstream_core::neuron::{NeuronKind, NeuronLayer};
use dualstream_core::rng::Rng;
use dualstream_core::spec::{NeuronSpec, SurrogateSpec};

/// `[T, N, C, HW]`: T odd and even, HW of 1 (channels last), 7 and 49, one step of more and
/// of fewer elements than a kernel chunk.
const SHAPES: [[usize; 4]; 4] = [[7, 3, 5, 49], [4, 2, 33, 1], [5, 1, 7, 7], [16, 2, 4, 200]];

/// Window lengths from the first step: uneven, one step each, and the whole sequence.
fn windows(t_len: usize) -> Vec<Vec<usize>> {
    let mut out = vec![vec![t_len], vec![1; t_len]];
    let mut uneven = Vec::new();
    let mut left = t_len;
    let mut w = 3;
    while left > 0 {
        let take = w.min(left);
        uneven.push(take);
        left -= take;
        w = if w == 3 { 2 } else { 3 };
    }
    out.push(uneven);
    out
}

#[test]
fn windows_over_time_match_the_whole_sequence() {
    let mut k = 0u64;
    for kind in [NeuronKind::Lif, NeuronKind::Plif, NeuronKind::If] {
        for v_reset in [Some(0.0), Some(-0.3), None] {
            for detach_reset in [true, false] {
                let [t_len, n, c, hw] = SHAPES[k as usize % SHAPES.len()];
                k += 1;
                let spec = NeuronSpec {
                    tau: 2.0 + (k % 3) as f32 * 0.7,
                    decay_input: k.is_multiple_of(2),
                    v_threshold: 1.0,
                    v_reset,
                    detach_reset,
                    surrogate: SurrogateSpec::Atan { alpha: 2.0 },
                };
                // PLIF starts from w with sigmoid(w) = 1 / tau: tau varies over the cases.
                let layer = NeuronLayer::new("n", kind, &spec).unwrap();
                check(&layer, t_len, n * c * hw, c, hw, k);
            }
        }
    }
}

/// The window backward takes the surrogate at run time, the whole-sequence one as a
/// compile-time parameter: every surrogate gives the same bits through both.
#[test]
fn windows_match_the_whole_sequence_for_every_surrogate() {
    let surrogates = [
        SurrogateSpec::Sigmoid { alpha: 4.0 },
        SurrogateSpec::Atan { alpha: 2.0 },
        SurrogateSpec::PiecewiseQuadratic { alpha: 1.0 },
        SurrogateSpec::SuperSpike { alpha: 10.0 },
        SurrogateSpec::Erf { alpha: 2.0 },
        SurrogateSpec::SoftSign { alpha: 2.0 },
        SurrogateSpec::PiecewiseExp { alpha: 1.0 },
        SurrogateSpec::PiecewiseLeakyRelu { w: 1.0, c: 0.01 },
    ];
    for (k, surrogate) in surrogates.into_iter().enumerate() {
        let [t_len, n, c, hw] = SHAPES[k % SHAPES.len()];
        let spec = NeuronSpec {
            tau: 2.0,
            decay_input: true,
            v_threshold: 1.0,
            v_reset: if k % 2 == 0 { Some(0.0) } else { None },
            detach_reset: k % 3 == 0,
            surrogate,
        };
        let kind = if k % 2 == 0 { NeuronKind::Plif } else { NeuronKind::Lif };
        let layer = NeuronLayer::new("n", kind, &spec).unwrap();
        check(&layer, t_len, n * c * hw, c, hw, 100 + k as u64);
    }
}

fn check(layer: &NeuronLayer, t_len: usize, numel: usize, c: usize, hw: usize, seed: u64) {
    let d = layer.dynamics();
    let sg = layer.surrogate();
    let mut rng = Rng::new(seed);
    let x: Vec<f32> = (0..t_len * numel).map(|_| rng.uniform_range(-1.5, 2.5)).collect();
    let gout: Vec<f32> = (0..t_len * numel).map(|_| rng.normal()).collect();
    let scale: Vec<f32> = (0..c).map(|_| rng.uniform_range(-0.5, 1.5)).collect();
    let shift: Vec<f32> = (0..c).map(|_| rng.uniform_range(-0.5, 0.5)).collect();
    let mean: Vec<f32> = (0..c).map(|_| rng.uniform_range(-0.2, 0.8)).collect();
    let affine = || ChannelAffine { scale: &scale, shift: &shift, hw };
    let mut spikes = vec![0.0; x.len()];
    let count = kernel::forward_bn(&d, &x, affine(), t_len, &mut spikes);
    let (mut sum_dy, mut sum_dy_xc) = (vec![0.0; c], vec![0.0; c]);
    let mut gin = vec![0.0; x.len()];
    let bn =
        BnGrad { affine: affine(), mean: &mean, sum_dy: &mut sum_dy, sum_dy_xc: &mut sum_dy_xc };
    let dw = kernel::backward_bn(&d, sg, &x, bn, &gout, t_len, &mut gin);
    for lens in windows(t_len) {
        let starts: Vec<usize> =
            lens.iter().scan(0, |s, &l| Some(std::mem::replace(s, *s + l))).collect();
        // Forward in time order, keeping the charge at each window's end.
        let mut h = vec![0.0; numel];
        let mut h_at = Vec::new();
        let mut got = vec![0.0; x.len()];
        let mut got_count = 0;
        for (&t0, &len) in starts.iter().zip(&lens) {
            h_at.push(h.clone());
            let r = t0 * numel..(t0 + len) * numel;
            got_count += forward_window(
                &d,
                &x[r.clone()],
                Some(affine()),
                len,
                t0 == 0,
                &mut h,
                &mut got[r],
            );
        }
        assert_eq!(got_count, count, "{lens:?}");
        assert!(got.iter().zip(&spikes).all(|(a, b)| a.to_bits() == b.to_bits()), "{lens:?}");
        // Backward in reverse, dL/dS turned into dL/dy in place.
        let mut carry = WindowCarry::new(numel);
        let mut grad = gout.clone();
        for ((&t0, &len), h_before) in starts.iter().zip(&lens).zip(&h_at).rev() {
            let r = t0 * numel..(t0 + len) * numel;
            let h_before = (t0 > 0).then_some(&h_before[..]);
            let bn = Some((affine(), &mean[..]));
            backward_window(&d, sg, &x[r.clone()], bn, len, h_before, &mut grad[r], &mut carry);
        }
        let (mut wdy, mut wdyx) = (vec![0.0; c], vec![0.0; c]);
        let wdw = window_sums(&d, Some(&affine()), &carry, &mut wdy, &mut wdyx);
        assert!(grad.iter().zip(&gin).all(|(a, b)| a.to_bits() == b.to_bits()), "{lens:?}");
        assert_eq!(wdw.to_bits(), dw.to_bits(), "{lens:?}");
        assert!(wdy.iter().zip(&sum_dy).all(|(a, b)| a.to_bits() == b.to_bits()), "{lens:?}");
        assert!(wdyx.iter().zip(&sum_dy_xc).all(|(a, b)| a.to_bits() == b.to_bits()), "{lens:?}");
        // A carry of dL/dV alone gives the same dL/dy.
        let mut flow = WindowCarry::flow_only(numel);
        assert!(flow.bytes() * 4 == carry.bytes());
        let mut grad = gout.clone();
        for ((&t0, &len), h_before) in starts.iter().zip(&lens).zip(&h_at).rev() {
            let r = t0 * numel..(t0 + len) * numel;
            let h_before = (t0 > 0).then_some(&h_before[..]);
            let bn = Some((affine(), &mean[..]));
            backward_window(&d, sg, &x[r.clone()], bn, len, h_before, &mut grad[r], &mut flow);
        }
        assert!(grad.iter().zip(&gin).all(|(a, b)| a.to_bits() == b.to_bits()), "flow {lens:?}");
    }
}
