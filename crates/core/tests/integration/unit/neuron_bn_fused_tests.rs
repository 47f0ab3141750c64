//! The fused training-mode BN + neuron pass (`kernel::forward_bn` / `kernel::backward_bn`)
//! against the BN layer followed by the neuron layer, run separately.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `neuron` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::layer::{Layer, Visitor, VisitorMut};
    pub use dualstream_core::neuron::*;
    pub use dualstream_core::spec::NeuronSpec;
    pub use dualstream_core::tensor::Tensor;
}
use crate::unit::neuron::detached_atan_lif;
use dualstream_core::layer::Walk;
use dualstream_core::nn::batch_norm::BatchNorm2d;
use dualstream_core::rng::Rng;
use dualstream_core::spec::{BatchNormSpec, SurrogateSpec};

const SURROGATES: [SurrogateSpec; 4] = [
    SurrogateSpec::Sigmoid { alpha: 4.0 },
    SurrogateSpec::Atan { alpha: 2.0 },
    SurrogateSpec::PiecewiseQuadratic { alpha: 1.0 },
    SurrogateSpec::SuperSpike { alpha: 5.0 },
];

/// Shapes `[T, N, C, H, W]` with H*W of 1, 7, 49, 64 and 196 and time steps spanning several
/// kernel chunks, so channel runs cross chunk boundaries, and register blocks start inside a
/// plane, straddle planes, or end exactly where one does (H*W 64).
const SHAPES: [[usize; 5]; 7] = [
    [4, 3, 5, 14, 14],
    [3, 2, 16, 7, 7],
    [2, 5, 33, 1, 1],
    [5, 1, 7, 1, 7],
    [1, 3, 4, 7, 7],
    [4, 2, 300, 1, 1],
    [2, 3, 6, 8, 8],
];

struct Case {
    kind: NeuronKind,
    spec: NeuronSpec,
    shape: [usize; 5],
}

/// Every neuron kind x surrogate x hard (V_reset 0 or -0.3) / soft reset x detach_reset, each
/// on one of the shapes, with decay_input alternating.
fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let mut k = 0usize;
    for kind in [NeuronKind::If, NeuronKind::Lif, NeuronKind::Plif] {
        for surrogate in SURROGATES {
            for v_reset in [Some(0.0), Some(-0.3), None] {
                for detach_reset in [false, true] {
                    let spec = NeuronSpec {
                        tau: 2.0 + (k % 3) as f32 * 0.7,
                        decay_input: k.is_multiple_of(2),
                        v_threshold: 1.0,
                        v_reset,
                        detach_reset,
                        surrogate,
                    };
                    out.push(Case { kind, spec, shape: SHAPES[k % SHAPES.len()] });
                    k += 1;
                }
            }
        }
    }
    out
}

/// A BN with random affine parameters (some channels negative) and a neuron layer (PLIF with
/// a random `w`), built twice from the same seed.
fn layers(case: &Case, seed: u64) -> (BatchNorm2d, NeuronLayer) {
    let mut rng = Rng::new(seed);
    let c = case.shape[2];
    let spec =
        BatchNormSpec { num_features: c, eps: 1e-5, momentum: 0.1, init_weight: 1.0, affine: true };
    let mut bn = BatchNorm2d::new("blk.1", &spec).unwrap();
    let mut ps = Vec::new();
    bn.params(&mut ps);
    for v in ps[0].value.data_mut() {
        *v = 0.3 + 1.5 * rng.uniform() * if rng.uniform() < 0.15 { -1.0 } else { 1.0 };
    }
    for v in ps[1].value.data_mut() {
        *v = 0.5 * rng.normal() + 0.3;
    }
    let mut neuron = NeuronLayer::new("blk.2", case.kind, &case.spec).unwrap();
    if let Some(w) = &mut neuron.w {
        w.value.data_mut()[0] = rng.normal() * 0.7;
    }
    (bn, neuron)
}

fn input(case: &Case, seed: u64) -> (Tensor, Tensor) {
    let mut rng = Rng::new(seed);
    let n: usize = case.shape.iter().product();
    // A conv output: per-channel offsets, so the BN has something to remove.
    let c = case.shape[2];
    let hw = case.shape[3] * case.shape[4];
    let x = (0..n).map(|i| 2.0 * rng.normal() + ((i / hw) % c) as f32 * 0.25).collect();
    let g = (0..n).map(|_| rng.normal()).collect();
    (Tensor::from_vec(&case.shape, x).unwrap(), Tensor::from_vec(&case.shape, g).unwrap())
}

/// What one training forward + backward of the pair produced.
#[derive(Debug, PartialEq)]
struct Run {
    spikes: Tensor,
    firing_rate: Option<f32>,
    running: (Tensor, Tensor),
    grad_bn_output: Tensor,
    dx: Tensor,
    bn_grads: (Tensor, Tensor),
    w_grad: Option<f32>,
}

fn run_pair(case: &Case, seed: u64, fused: bool) -> Run {
    let (mut bn, mut neuron) = layers(case, seed);
    let (x, g) = input(case, seed + 1);
    let (mut spikes, mut dy, mut dx) = (Tensor::default(), Tensor::default(), Tensor::default());
    if fused {
        bn.forward_statistics(&x, None, 1).unwrap();
        neuron.forward_bn(&x, bn.affine(x.shape()), &mut spikes).unwrap();
        let sums = bn.fused_grad(x.shape()).unwrap();
        neuron.backward_bn(&x, &spikes, &g, sums, &mut dy).unwrap();
        bn.backward_from_sums(&x, &dy, &mut dx, true);
    } else {
        let mut y = Tensor::default();
        bn.forward(&x, &mut y, true).unwrap();
        neuron.forward(&y, &mut spikes, true).unwrap();
        neuron.backward(&y, &spikes, &g, &mut dy).unwrap();
        bn.backward(&x, &y, &dy, &mut dx).unwrap();
    }
    let w_grad = neuron.w.as_ref().map(|w| w.grad.data()[0]);
    let mut ps = Vec::new();
    bn.params(&mut ps);
    let bn_grads = (ps[0].grad.clone(), ps[1].grad.clone());
    Run {
        firing_rate: neuron.firing_rate(),
        running: (bn.running_mean().clone(), bn.running_var().clone()),
        spikes,
        grad_bn_output: dy,
        dx,
        bn_grads,
        w_grad,
    }
}

/// Bit-identical tensors (reporting the first difference, not the whole tensor).
fn assert_same(got: &Tensor, want: &Tensor, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    if let Some(i) =
        got.data().iter().zip(want.data()).position(|(g, w)| g.to_bits() != w.to_bits())
    {
        panic!("{what}[{i}]: got {}, want {}", got.data()[i], want.data()[i]);
    }
}

fn assert_close(got: &[f32], want: &[f32], rel: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= rel * scale, "{what}[{i}]: got {g}, want {w} (scale {scale})");
    }
}

#[test]
fn fused_pair_matches_bn_then_neuron() {
    let mut fired = 0usize;
    for (k, case) in cases().iter().enumerate() {
        let what = format!("case {k}: {:?} {:?} shape {:?}", case.kind, case.spec, case.shape);
        let seed = 100 + k as u64;
        let (f, u) = (run_pair(case, seed, true), run_pair(case, seed, false));
        // The forward is the same arithmetic on the same values: bit for bit.
        assert_same(&f.spikes, &u.spikes, &format!("{what}: spikes"));
        assert_eq!(f.firing_rate, u.firing_rate, "{what}: firing rate");
        assert_eq!(f.running, u.running, "{what}: running statistics");
        let rate = f.firing_rate.unwrap();
        fired += (rate > 0.02 && rate < 0.98) as usize;
        // So is the BPTT, given the same recomputed BN output; the PLIF w gradient too.
        assert_same(&f.grad_bn_output, &u.grad_bn_output, &format!("{what}: dL/dy"));
        assert_eq!(f.w_grad, u.w_grad, "{what}: PLIF w grad");
        // The BN sums add the same f64 terms in another order.
        assert_close(
            f.bn_grads.0.data(),
            u.bn_grads.0.data(),
            1e-5,
            &format!("{what}: BN weight grad"),
        );
        assert_close(
            f.bn_grads.1.data(),
            u.bn_grads.1.data(),
            1e-5,
            &format!("{what}: BN bias grad"),
        );
        assert_close(f.dx.data(), u.dx.data(), 1e-5, &format!("{what}: dx"));
        assert!(f.dx.data().iter().any(|&v| v != 0.0), "{what}: dx is all zero");
    }
    // The comparison means something only if the neurons fire sometimes, not always.
    assert!(fired * 4 >= cases().len() * 3, "only {fired} cases fire at a moderate rate");
}

#[test]
fn fused_sums_match_the_bn_kernel_sums() {
    // The per-channel sums the fused backward accumulates, against `backward_sums` on the
    // dL/dy it wrote (same f64 terms, other order).
    for (k, case) in cases().iter().enumerate().step_by(5) {
        let (mut bn, mut neuron) = layers(case, 7 + k as u64);
        let (x, g) = input(case, 8 + k as u64);
        let (mut spikes, mut dy) = (Tensor::default(), Tensor::default());
        bn.forward_statistics(&x, None, 1).unwrap();
        neuron.forward_bn(&x, bn.affine(x.shape()), &mut spikes).unwrap();
        let sums = bn.fused_grad(x.shape()).unwrap();
        let mean = sums.mean.to_vec();
        neuron.backward_bn(&x, &spikes, &g, sums, &mut dy).unwrap();
        let c = case.shape[2];
        let hw = case.shape[3] * case.shape[4];
        let (mut sd, mut sdx) = (vec![0.0; c], vec![0.0; c]);
        dualstream_core::kernels::batch_norm::backward_sums(
            x.data(),
            dy.data(),
            c,
            hw,
            &mean,
            &mut sd,
            &mut sdx,
        );
        // Each element's T terms are added in f32 first: the error is relative to the sum of
        // the terms' magnitudes, not to the (cancelling) sum itself.
        let (mut abs_dy, mut abs_dyx) = (vec![0.0f64; c], vec![0.0f64; c]);
        for (i, (&xv, &dv)) in x.data().iter().zip(dy.data()).enumerate() {
            let ch = (i / hw) % c;
            abs_dy[ch] += (dv as f64).abs();
            abs_dyx[ch] += (dv as f64 * (xv as f64 - mean[ch] as f64)).abs();
        }
        let got = bn.fused_grad(x.shape()).unwrap();
        for ch in 0..c {
            let what = format!("case {k} channel {ch}");
            assert!(
                (got.sum_dy[ch] - sd[ch]).abs() <= 1e-6 * abs_dy[ch],
                "{what}: sum dy {} vs {}",
                got.sum_dy[ch],
                sd[ch]
            );
            assert!((got.sum_dy_xc[ch] - sdx[ch]).abs() <= 1e-6 * abs_dyx[ch], "{what}: sum dy xc");
        }
    }
}

#[test]
fn fused_pair_is_bit_identical_on_1_to_4_threads() {
    for (k, case) in cases().iter().enumerate().filter(|(k, _)| k % 4 == 1) {
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let want = one.install(|| run_pair(case, 300 + k as u64, true));
        for threads in 2..=4 {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let got = pool.install(|| run_pair(case, 300 + k as u64, true));
            assert!(got == want, "case {k}: {threads} threads differ from 1");
        }
    }
}

#[test]
fn sse_avx2_and_avx512_copies_of_the_time_loops_give_the_same_bits() {
    use kernel::{WIDEST, WIDEST_ANY, WIDEST_AVX2, WIDEST_SSE};
    use std::sync::atomic::Ordering;
    for (k, case) in cases().iter().enumerate().filter(|(k, _)| k % 3 == 0) {
        let seed = 500 + k as u64;
        for fused in [false, true] {
            let runs: Vec<_> = [WIDEST_SSE, WIDEST_AVX2, WIDEST_ANY]
                .into_iter()
                .map(|widest| {
                    WIDEST.store(widest, Ordering::Relaxed);
                    run_pair(case, seed, fused)
                })
                .collect();
            WIDEST.store(WIDEST_ANY, Ordering::Relaxed);
            assert!(runs[0] == runs[1], "case {k} (fused {fused}): SSE and AVX2 differ");
            assert!(
                runs[1] == runs[2],
                "case {k} (fused {fused}): AVX2 and the widest copy differ"
            );
        }
    }
}

#[test]
fn fused_backward_checks_its_state() {
    let case = &cases()[0];
    let (mut bn, mut neuron) = layers(case, 1);
    let (x, g) = input(case, 2);
    let mut dy = Tensor::default();
    // No forward yet: both halves refuse, naming their layer.
    let err = bn.fused_grad(x.shape()).map(|_| ()).unwrap_err();
    assert!(err.to_string().contains("blk.1 (batchNorm2d)"), "{err}");
    bn.forward_statistics(&x, None, 1).unwrap();
    let sums = bn.fused_grad(x.shape()).unwrap();
    let err = neuron.backward_bn(&x, &x, &g, sums, &mut dy).unwrap_err();
    assert!(err.to_string().contains("blk.2"), "{err}");
    assert_eq!(err.code(), "ERR_STATE");
}

/// Timing of the fused pair against the two layers, run by hand (best of alternating rounds,
/// which resists a loaded machine better than a mean):
/// `cargo test --release -p dualstream-core fused_pair_throughput -- --ignored --nocapture`.
#[test]
#[ignore]
fn fused_pair_throughput() {
    let spec = detached_atan_lif();
    for (shape, threads) in
        [([4, 32, 32, 28, 28], 1), ([4, 32, 32, 28, 28], 2), ([8, 8, 32, 64, 64], 2)]
    {
        let case = Case { kind: NeuronKind::Lif, spec: spec.clone(), shape };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let (x, g) = input(&case, 1);
        let (mut bn, mut neuron) = layers(&case, 2);
        let (mut y, mut s, mut dy, mut dx) =
            (Tensor::default(), Tensor::default(), Tensor::default(), Tensor::default());
        let mut best = [f64::MAX; 4];
        pool.install(|| {
            for _ in 0..7 {
                let t0 = std::time::Instant::now();
                bn.forward(&x, &mut y, true).unwrap();
                neuron.forward(&y, &mut s, true).unwrap();
                let t1 = std::time::Instant::now();
                // Backward recomputes the BN output first, as Sequential does.
                bn.recompute_output(&x, &mut y);
                neuron.backward(&y, &s, &g, &mut dy).unwrap();
                bn.backward(&x, &y, &dy, &mut dx).unwrap();
                let t2 = std::time::Instant::now();
                bn.forward_statistics(&x, None, 1).unwrap();
                neuron.forward_bn(&x, bn.affine(x.shape()), &mut s).unwrap();
                let t3 = std::time::Instant::now();
                let sums = bn.fused_grad(x.shape()).unwrap();
                neuron.backward_bn(&x, &s, &g, sums, &mut dy).unwrap();
                bn.backward_from_sums(&x, &dy, &mut dx, true);
                let t4 = std::time::Instant::now();
                for (b, d) in best.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2, t4 - t3]) {
                    *b = b.min(d.as_secs_f64() * 1e3);
                }
            }
        });
        if std::env::var("FUSE_PARTS").is_ok() {
            pool.install(|| {
                let mut part = [f64::MAX; 3];
                for _ in 0..7 {
                    let t0 = std::time::Instant::now();
                    bn.forward_statistics(&x, None, 1).unwrap();
                    let t1 = std::time::Instant::now();
                    neuron.forward(&y, &mut s, true).unwrap();
                    let t2 = std::time::Instant::now();
                    neuron.forward_bn(&x, bn.affine(x.shape()), &mut s).unwrap();
                    let t3 = std::time::Instant::now();
                    for (b, d) in part.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2]) {
                        *b = b.min(d.as_secs_f64() * 1e3);
                    }
                }
                eprintln!(
                    "  statistics {:.2} ms, neuron forward {:.2} ms, fused neuron forward {:.2} ms",
                    part[0], part[1], part[2]
                );
                let mut part = [f64::MAX; 2];
                for _ in 0..7 {
                    let sums = bn.fused_grad(x.shape()).unwrap();
                    let t0 = std::time::Instant::now();
                    neuron.backward_bn(&x, &s, &g, sums, &mut dy).unwrap();
                    let t1 = std::time::Instant::now();
                    bn.backward_from_sums(&x, &dy, &mut dx, true);
                    let t2 = std::time::Instant::now();
                    for (b, d) in part.iter_mut().zip([t1 - t0, t2 - t1]) {
                        *b = b.min(d.as_secs_f64() * 1e3);
                    }
                }
                eprintln!(
                    "  fused neuron backward {:.2} ms, BN backward from sums {:.2} ms",
                    part[0], part[1]
                );
            });
        }
        eprintln!(
            "{shape:?} {threads} thread(s): forward {:.2} -> {:.2} ms, backward {:.2} -> {:.2} ms (unfused -> fused, best of 7)",
            best[0], best[2], best[1], best[3]
        );
    }
}
