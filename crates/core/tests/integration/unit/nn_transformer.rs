//! Finite-difference and reference checks of the token layers, and of tiny spiking
//! transformers built from them (neurons left out where finite differences need smoothness).
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `nn::transformer` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::nn::transformer::*;
}
use crate::unit::nn_gradcheck::{check_gradients, random_tensor};
use dualstream_core::layer::{Layer, Walk};
use dualstream_core::nn::{build_sequential, Sequential};
use dualstream_core::rng::Rng;
use dualstream_core::spec::{BatchNormSpec, LayerSpec, SpikingAttentionSpec};
use dualstream_core::tensor::Tensor;

fn bn_spec(c: usize) -> BatchNormSpec {
    serde_json::from_value(serde_json::json!({ "numFeatures": c })).unwrap()
}

/// Random 0/1 values with probability `p` of a one.
fn spikes(rng: &mut Rng, shape: &[usize], p: f32) -> Tensor {
    let n = dualstream_core::tensor::numel(shape);
    Tensor::from_vec(shape, (0..n).map(|_| if rng.uniform() < p { 1.0 } else { 0.0 }).collect())
        .unwrap()
}

/// `scale * Q K^T V` per head, in f64, straight from the definition.
fn naive_attention(x: &Tensor, c: usize, heads: usize, scale: f64) -> Vec<f64> {
    let s = x.shape();
    let (b, l) = (s[0] * s[1], s[2]);
    let d = c / heads;
    let at = |bi: usize, li: usize, part: usize, ch: usize| {
        x.data()[(bi * l + li) * 3 * c + part * c + ch] as f64
    };
    let mut y = vec![0.0; b * l * c];
    for bi in 0..b {
        for h in 0..heads {
            for i in 0..l {
                for j in 0..l {
                    let a: f64 =
                        (0..d).map(|e| at(bi, i, 0, h * d + e) * at(bi, j, 1, h * d + e)).sum();
                    for e in 0..d {
                        y[(bi * l + i) * c + h * d + e] += scale * a * at(bi, j, 2, h * d + e);
                    }
                }
            }
        }
    }
    y
}

#[test]
fn attention_matches_the_definition_in_both_orders() {
    let mut rng = Rng::new(5);
    // (tokens, dim, heads): L <= D picks (Q K^T) V, L > D picks Q (K^T V).
    for (l, c, heads) in [(3, 8, 2), (9, 4, 2), (5, 6, 1)] {
        let spec = SpikingAttentionSpec { dim: c, heads, scale: 0.125 };
        let mut att = SpikingAttention::new("a", &spec).unwrap();
        let x = spikes(&mut rng, &[2, 3, l, 3 * c], 0.4);
        let mut y = Tensor::default();
        att.forward(&x, &mut y, true).unwrap();
        assert_eq!(y.shape(), &[2, 3, l, c]);
        let want = naive_attention(&x, c, heads, 0.125);
        for (i, (&got, &w)) in y.data().iter().zip(&want).enumerate() {
            // Spikes times 1/8: every value is exact.
            assert_eq!(got as f64, w, "element {i} for L {l}, C {c}, heads {heads}");
        }
    }
}

#[test]
fn attention_gradients_match_finite_differences_in_both_orders() {
    let mut rng = Rng::new(6);
    for (l, c, heads) in [(2, 4, 1), (5, 4, 2)] {
        let spec = SpikingAttentionSpec { dim: c, heads, scale: 0.125 };
        let att = SpikingAttention::new("a", &spec).unwrap();
        let x = random_tensor(&mut rng, &[2, 2, l, 3 * c]);
        check_gradients(&att, &x, 3, 1e-2, 1e-3, 1e-3);
    }
}

#[test]
fn batch_norm1d_normalises_each_channel_and_tracks_running_statistics() {
    let mut rng = Rng::new(7);
    let mut bn = BatchNorm1d::new("bn", &bn_spec(3)).unwrap();
    let x = random_tensor(&mut rng, &[2, 3, 4, 3]);
    let mut y = Tensor::default();
    bn.forward(&x, &mut y, true).unwrap();
    let rows = 24;
    for ch in 0..3 {
        let xs: Vec<f64> = (0..rows).map(|r| x.data()[r * 3 + ch] as f64).collect();
        let mean = xs.iter().sum::<f64>() / rows as f64;
        let var = xs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / rows as f64;
        for r in 0..rows {
            let want = (xs[r] - mean) / (var + 1e-5).sqrt();
            assert!((y.data()[r * 3 + ch] as f64 - want).abs() < 1e-5);
        }
        let mut bufs = Vec::new();
        bn.buffers(&mut bufs);
        let rm = bufs[0].value.data()[ch] as f64;
        let rv = bufs[1].value.data()[ch] as f64;
        assert!((rm - 0.1 * mean).abs() < 1e-6);
        assert!((rv - (0.9 + 0.1 * var * rows as f64 / (rows - 1) as f64)).abs() < 1e-6);
    }
}

#[test]
fn batch_norm1d_gradients_match_finite_differences() {
    let mut rng = Rng::new(8);
    let mut bn = BatchNorm1d::new("bn", &bn_spec(3)).unwrap();
    {
        let mut ps = Vec::new();
        bn.params(&mut ps);
        ps[0].value.data_mut().copy_from_slice(&[0.7, -1.2, 1.5]);
        ps[1].value.data_mut().copy_from_slice(&[0.1, 0.3, -0.2]);
    }
    let x = random_tensor(&mut rng, &[2, 2, 3, 3]);
    check_gradients(&bn, &x, 5, 1e-2, 2e-3, 5e-3);
}

#[test]
fn tokens_and_token_mean_move_values_and_gradients() {
    let mut rng = Rng::new(9);
    let x = random_tensor(&mut rng, &[2, 2, 9, 3, 4]);
    let mut tokens = Tokens::new("t");
    let mut y = Tensor::default();
    tokens.forward(&x, &mut y, true).unwrap();
    assert_eq!(y.shape(), &[2, 2, 12, 9]);
    for (b, (ys, xs)) in y.data().chunks(108).zip(x.data().chunks(108)).enumerate() {
        for l in 0..12 {
            for ch in 0..9 {
                assert_eq!(ys[l * 9 + ch], xs[ch * 12 + l], "sample-step {b}");
            }
        }
    }
    check_gradients(&tokens, &x, 1, 1e-2, 1e-3, 1e-3);
    let mean = TokenMean::new("m");
    check_gradients(&mean, &y, 2, 1e-2, 1e-3, 1e-3);
}

#[test]
fn linear_maps_tokens_one_by_one() {
    let mut rng = Rng::new(10);
    let spec =
        serde_json::from_value(serde_json::json!({ "inFeatures": 5, "outFeatures": 3 })).unwrap();
    let mut lin = dualstream_core::nn::Linear::new("fc", &spec, &mut rng).unwrap();
    let x = random_tensor(&mut rng, &[2, 2, 4, 5]);
    let mut y = Tensor::default();
    lin.forward(&x, &mut y, true).unwrap();
    assert_eq!(y.shape(), &[2, 2, 4, 3]);
    let flat = Tensor::from_vec(&[2, 2 * 4, 5], x.data().to_vec()).unwrap();
    let mut want = Tensor::default();
    lin.forward(&flat, &mut want, true).unwrap();
    assert_eq!(y.data(), want.data());
    check_gradients(&lin, &x, 4, 1e-2, 1e-3, 1e-3);
}

/// One Spikformer block's layers on `dim`-channel tokens, as the zoo builds it, without the
/// neurons when `smooth` (finite differences need a smooth function).
pub(crate) fn block_json(
    dim: usize,
    heads: usize,
    hidden: usize,
    smooth: bool,
) -> [serde_json::Value; 2] {
    let lif = |th: f64| serde_json::json!({ "type": "lif", "vThreshold": th, "surrogate": { "type": "sigmoid", "alpha": 4.0 } });
    let lin = |i: usize, o: usize| serde_json::json!({ "type": "linear", "inFeatures": i, "outFeatures": o, "bias": false });
    let bn = |c: usize| serde_json::json!({ "type": "batchNorm1d", "numFeatures": c });
    let mut ssa = vec![lin(dim, 3 * dim), bn(3 * dim)];
    if !smooth {
        ssa.push(lif(1.0));
    }
    ssa.push(serde_json::json!({ "type": "spikingAttention", "dim": dim, "heads": heads }));
    if !smooth {
        ssa.push(lif(0.5));
    }
    ssa.extend([lin(dim, dim), bn(dim)]);
    if !smooth {
        ssa.push(lif(1.0));
    }
    let mut mlp = vec![lin(dim, hidden), bn(hidden)];
    if !smooth {
        mlp.push(lif(1.0));
    }
    mlp.extend([lin(hidden, dim), bn(dim)]);
    if !smooth {
        mlp.push(lif(1.0));
    }
    [serde_json::json!(ssa), serde_json::json!(mlp)]
}

fn tiny_transformer(connect: &str) -> Vec<LayerSpec> {
    let [ssa, mlp] = block_json(4, 2, 8, true);
    let layers = serde_json::json!([
        { "type": "sewBlock", "connect": connect, "branch": ssa },
        { "type": "sewBlock", "connect": connect, "branch": mlp },
        { "type": "tokenMean" },
        { "type": "linear", "inFeatures": 4, "outFeatures": 3 }
    ]);
    serde_json::from_value(layers).unwrap()
}

#[test]
fn tiny_transformer_gradients_match_finite_differences_with_add_and_iand() {
    // The whole stack as one layer: built afresh for every evaluation from the same seed.
    for connect in ["add", "iand"] {
        let specs = tiny_transformer(connect);
        let mut rng = Rng::new(11);
        let x = random_tensor(&mut rng, &[2, 2, 3, 4]);
        let layer = SpecLayer::new(&specs);
        check_gradients(&layer, &x, 12, 1e-2, 2e-3, 5e-3);
    }
}

#[test]
fn tiny_dual_stream_transformer_gradients_match_finite_differences() {
    let [ssa, mlp] = block_json(4, 2, 8, true);
    let trunk = serde_json::json!({
        "type": "dualStream", "headPool": "tokens",
        "head": { "inFeatures": 4, "outFeatures": 3 },
        "stages": [
            { "type": "block", "connect": "iand", "branch": ssa },
            { "type": "block", "connect": "iand", "branch": mlp }
        ]
    });
    let specs: Vec<LayerSpec> = vec![serde_json::from_value(trunk).unwrap()];
    let mut rng = Rng::new(13);
    let x = random_tensor(&mut rng, &[2, 2, 3, 4]);
    let layer = SpecLayer::new(&specs);
    let mut probe = layer.clone();
    let mut y = Tensor::default();
    probe.forward(&x, &mut y, true).unwrap();
    assert_eq!(y.shape(), &[2, 2, 6], "[y_s | y_a]");
    // A smaller step: the attention product is cubic in its inputs.
    check_gradients(&layer, &x, 14, 3e-3, 2e-3, 5e-3);
}

/// A sequence of layers built from specs, cloneable for the gradient check: a clone is the
/// same sequence rebuilt with the same seed and given the same parameter values.
struct SpecLayer {
    specs: Vec<LayerSpec>,
    seq: std::sync::Mutex<Sequential>,
}

impl SpecLayer {
    fn new(specs: &[LayerSpec]) -> Self {
        let mut seq = build_sequential("layers", specs, &mut Rng::new(21)).unwrap();
        // Away from the default init so that BN's affine parameters matter.
        let mut rng = Rng::new(22);
        let mut ps = Vec::new();
        seq.params(&mut ps);
        for p in ps {
            for v in p.value.data_mut() {
                *v += 0.3 * rng.normal();
            }
        }
        SpecLayer { specs: specs.to_vec(), seq: std::sync::Mutex::new(seq) }
    }
}

impl Clone for SpecLayer {
    fn clone(&self) -> Self {
        let mut seq = build_sequential("layers", &self.specs, &mut Rng::new(21)).unwrap();
        let mut mine = self.seq.lock().unwrap();
        let (mut src, mut dst) = (Vec::new(), Vec::new());
        mine.params(&mut src);
        seq.params(&mut dst);
        for (s, d) in src.iter().zip(dst) {
            d.value.data_mut().copy_from_slice(s.value.data());
        }
        drop(src);
        drop(mine);
        SpecLayer { specs: self.specs.clone(), seq: std::sync::Mutex::new(seq) }
    }
}

impl Layer for SpecLayer {
    fn name(&self) -> &str {
        "tiny transformer"
    }
    fn output_shape(&self, input: &[usize]) -> dualstream_core::error::Result<Vec<usize>> {
        self.seq.lock().unwrap().output_shape(input)
    }
    fn forward(
        &mut self,
        input: &Tensor,
        output: &mut Tensor,
        training: bool,
    ) -> dualstream_core::error::Result<()> {
        self.seq.get_mut().unwrap().forward(input, output, training)
    }
    fn backward(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        grad_input: &mut Tensor,
    ) -> dualstream_core::error::Result<()> {
        self.seq.get_mut().unwrap().backward(input, output, grad_output, grad_input)
    }
    fn visit_mut<'a>(&'a mut self, visitor: &mut dyn dualstream_core::layer::VisitorMut<'a>) {
        self.seq.get_mut().unwrap().visit_mut(visitor)
    }
}
