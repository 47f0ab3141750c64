//! BN folding for deployment (Appendix A of the paper): every `conv2d` directly followed by a
//! `batchNorm2d` becomes one conv with a bias,
//! `W' = W * gamma / sqrt(var + eps)`, `b' = beta + (b - mean) * gamma / sqrt(var + eps)`,
//! with BN's running statistics, so the folded model computes the original's eval-mode output.
//! This is why the energy count (`crate::energy`) charges nothing for BN.
use crate::error::{Error, Result};
use crate::model::Model;
use crate::spec::{DualStage, LayerSpec};
use crate::tensor::Tensor;

/// The folded model: the same architecture without the BNs that follow a conv (layers
/// renumbered), the other weights copied. Training it again would train a network without
/// those BNs; it is meant for inference.
pub fn fold_batch_norm(model: &mut Model) -> Result<Model> {
    let mut spec = model.spec().clone();
    let mut plan = Plan::default();
    spec.layers = fold_list("layers", "layers", &spec.layers, &mut plan);
    let mut folded = Model::from_spec(&spec, 0)?;
    let old = model.state_tensors();
    let get = |name: &str| {
        old.iter().find(|(n, _)| n == name).map(|(_, t)| t).ok_or_else(|| {
            Error::state("foldBatchNorm", format!("the model lacks {name}, which folding needs"))
        })
    };
    for (name, target) in folded.state_tensors() {
        let (path, suffix) = name.rsplit_once('.').unwrap_or((&name, ""));
        let value = match plan.folds.iter().find(|f| f.new == path) {
            Some(f) => {
                let w = get(&format!("{}.weight", f.conv))?;
                let b = get(&format!("{}.bias", f.conv)).ok();
                let [mean, var] =
                    ["running_mean", "running_var"].map(|s| get(&format!("{}.{s}", f.bn)));
                let (mean, var) = (mean?, var?);
                // A BN without `affine` has gamma 1 and beta 0 and no tensors for them.
                let affine = |s: &str, default: f32| -> Result<Vec<f32>> {
                    match f.affine {
                        true => Ok(get(&format!("{}.{s}", f.bn))?.data().to_vec()),
                        false => Ok(vec![default; var.numel()]),
                    }
                };
                let (gamma, beta) = (affine("weight", 1.0)?, affine("bias", 0.0)?);
                let scale: Vec<f64> = gamma
                    .iter()
                    .zip(var.data())
                    .map(|(&g, &v)| g as f64 / (v as f64 + f.eps as f64).sqrt())
                    .collect();
                match suffix {
                    "weight" => {
                        let per_channel = w.numel() / scale.len();
                        let data = w
                            .data()
                            .iter()
                            .enumerate()
                            .map(|(i, &x)| (x as f64 * scale[i / per_channel]) as f32)
                            .collect();
                        Tensor::from_vec(w.shape(), data)?
                    }
                    _ => {
                        let data = (0..scale.len())
                            .map(|c| {
                                let b = b.map_or(0.0, |b| b.data()[c] as f64);
                                (beta[c] as f64 + (b - mean.data()[c] as f64) * scale[c]) as f32
                            })
                            .collect();
                        Tensor::from_vec(target.shape(), data)?
                    }
                }
            }
            None => {
                let (new_prefix, old_prefix) = plan
                    .renames
                    .iter()
                    .filter(|(n, _)| {
                        name.starts_with(n.as_str()) && name[n.len()..].starts_with('.')
                    })
                    .max_by_key(|(n, _)| n.len())
                    .ok_or_else(|| {
                        Error::state("foldBatchNorm", format!("no source for {name}"))
                    })?;
                get(&format!("{old_prefix}{}", &name[new_prefix.len()..]))?.clone()
            }
        };
        folded.set_tensor(&name, &value)?;
    }
    Ok(folded)
}

struct Fold {
    /// Path of the folded conv in the new model, of the conv and its BN in the old one.
    new: String,
    conv: String,
    bn: String,
    eps: f32,
    affine: bool,
}

#[derive(Default)]
struct Plan {
    folds: Vec<Fold>,
    /// (new path, old path) of every layer kept.
    renames: Vec<(String, String)>,
}

fn fold_opt(
    old: &str,
    new: &str,
    list: &Option<Vec<LayerSpec>>,
    plan: &mut Plan,
) -> Option<Vec<LayerSpec>> {
    list.as_ref().map(|l| fold_list(old, new, l, plan))
}

/// Folds a residual block's branch and shortcut: `{old}.branch`, `{old}.shortcut` become
/// `{new}.branch`, `{new}.shortcut`.
fn fold_paths(
    old: &str,
    new: &str,
    branch: &[LayerSpec],
    shortcut: &Option<Vec<LayerSpec>>,
    plan: &mut Plan,
) -> (Vec<LayerSpec>, Option<Vec<LayerSpec>>) {
    let branch = fold_list(&format!("{old}.branch"), &format!("{new}.branch"), branch, plan);
    (branch, fold_opt(&format!("{old}.shortcut"), &format!("{new}.shortcut"), shortcut, plan))
}

/// Folds one layer list whose layers are named `{old}.{i}`; the result's are `{new}.{j}`.
fn fold_list(old: &str, new: &str, list: &[LayerSpec], plan: &mut Plan) -> Vec<LayerSpec> {
    let mut out = Vec::with_capacity(list.len());
    let mut i = 0;
    while i < list.len() {
        let (o, n) = (format!("{old}.{i}"), format!("{new}.{}", out.len()));
        plan.renames.push((n.clone(), o.clone()));
        match (&list[i], list.get(i + 1)) {
            (LayerSpec::Conv2d(c), Some(LayerSpec::BatchNorm2d(bn))) => {
                let mut c = c.clone();
                c.bias = true;
                out.push(LayerSpec::Conv2d(c));
                plan.folds.push(Fold {
                    new: n,
                    conv: o,
                    bn: format!("{old}.{}", i + 1),
                    eps: bn.eps,
                    affine: bn.affine,
                });
                i += 2;
                continue;
            }
            (LayerSpec::SewBlock(b), _) => {
                let mut b = b.clone();
                (b.branch, b.shortcut) = fold_paths(&o, &n, &b.branch, &b.shortcut, plan);
                out.push(LayerSpec::SewBlock(b));
            }
            (LayerSpec::SpikingResnetBlock(b), _) => {
                let mut b = b.clone();
                (b.branch, b.shortcut) = fold_paths(&o, &n, &b.branch, &b.shortcut, plan);
                out.push(LayerSpec::SpikingResnetBlock(b));
            }
            (LayerSpec::DualStream(d), _) => {
                let mut d = d.clone();
                for (s, stage) in d.stages.iter_mut().enumerate() {
                    if let DualStage::Block(b) = stage {
                        let (os, ns) = (format!("{o}.stages.{s}"), format!("{n}.stages.{s}"));
                        (b.branch, b.shortcut) = fold_paths(&os, &ns, &b.branch, &b.shortcut, plan);
                        b.projection = fold_opt(
                            &format!("{os}.projection"),
                            &format!("{ns}.projection"),
                            &b.projection,
                            plan,
                        );
                    }
                }
                out.push(LayerSpec::DualStream(d));
            }
            (layer, _) => out.push(layer.clone()),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::LossSpec;
    use crate::model::InferenceMode;
    use crate::rng::Rng;
    use crate::small_dsnn::small_dsnn_json;
    use crate::spec::ModelSpec;

    fn images(n: usize, c: usize, hw: usize, seed: u64) -> Tensor {
        let mut rng = Rng::new(seed);
        Tensor::from_vec(
            &[n, c, hw, hw],
            (0..n * c * hw * hw).map(|_| 2.0 * rng.uniform()).collect(),
        )
        .unwrap()
    }

    /// Sets every BN's statistics and affine parameters to values far from the defaults.
    fn randomise_bn(m: &mut Model, seed: u64) {
        let mut rng = Rng::new(seed);
        for (name, t) in m.state_tensors() {
            let (gamma_like, stat) =
                (name.ends_with("running_var"), name.ends_with("running_mean"));
            let is_bn = m.buffer_names().iter().any(|(b, _)| {
                b.rsplit_once('.').map(|x| x.0) == name.rsplit_once('.').map(|x| x.0)
            });
            if !is_bn {
                continue;
            }
            let data = (0..t.numel())
                .map(|_| {
                    if gamma_like {
                        0.2 + rng.uniform()
                    } else if stat {
                        rng.uniform_range(-0.5, 0.5)
                    } else {
                        rng.uniform_range(0.5, 1.5)
                    }
                })
                .collect();
            m.set_tensor(&name, &Tensor::from_vec(t.shape(), data).unwrap()).unwrap();
        }
    }

    fn bn_count(spec: &[LayerSpec]) -> usize {
        serde_json::to_string(spec).unwrap().matches("batchNorm2d").count()
    }

    fn assert_same_outputs(m: &mut Model, f: &mut Model, x: &Tensor, mode: InferenceMode) {
        let a = m.evaluate(x, None, mode, &LossSpec::default()).unwrap().logits;
        let b = f.evaluate(x, None, mode, &LossSpec::default()).unwrap().logits;
        let worst =
            a.data().iter().zip(b.data()).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
        assert!(worst <= 1e-5, "{mode:?}: the folded model's logits differ by {worst}");
        assert!(a.data().iter().any(|&v| v != a.data()[0]), "the logits must not be constant");
    }

    #[test]
    fn a_folded_conv_bn_lif_stack_computes_the_same_eval_output() {
        let spec: ModelSpec = serde_json::from_str(
            r#"{"timeSteps":4,"inputShape":[2,6,6],"layers":[
            {"type":"conv2d","inChannels":2,"outChannels":4,"kernelSize":[3,3],"padding":[1,1],"bias":false},
            {"type":"batchNorm2d","numFeatures":4},{"type":"lif","vThreshold":0.5},
            {"type":"conv2d","inChannels":4,"outChannels":4,"kernelSize":[3,3],"padding":[1,1]},
            {"type":"batchNorm2d","numFeatures":4,"eps":0.01,"affine":false},{"type":"lif","vThreshold":0.5},
            {"type":"flatten"},{"type":"linear","inFeatures":144,"outFeatures":3}]}"#,
        )
        .unwrap();
        let mut m = Model::from_spec(&spec, 5).unwrap();
        let names: Vec<String> = m.state_tensors().into_iter().map(|(n, _)| n).collect();
        assert!(names.contains(&"layers.1.weight".to_string()), "{names:?}");
        assert!(!names.contains(&"layers.4.weight".to_string()), "affine: false, {names:?}");
        randomise_bn(&mut m, 1);
        let mut f = fold_batch_norm(&mut m).unwrap();
        assert_eq!(bn_count(&f.spec().layers), 0);
        assert_eq!(f.spec().layers.len(), 6);
        assert!(
            f.state_tensors().iter().any(|(n, _)| n == "layers.0.bias"),
            "the first conv gains a bias"
        );
        assert_same_outputs(&mut m, &mut f, &images(5, 2, 6, 3), InferenceMode::Fsnn);
        assert!(
            m.firing_rates().iter().all(|(_, r)| *r > 0.02 && *r < 0.98),
            "{:?}",
            m.firing_rates()
        );
    }

    #[test]
    fn a_folded_dual_stream_network_matches_in_both_modes_and_keeps_unfoldable_layers() {
        let neuron = r#"{"type":"if","vThreshold":0.5}"#;
        let spec: ModelSpec =
            serde_json::from_str(&small_dsnn_json("iand", neuron, false)).unwrap();
        let mut m = Model::from_spec(&spec, 2).unwrap();
        randomise_bn(&mut m, 7);
        let mut f = fold_batch_norm(&mut m).unwrap();
        assert_eq!(bn_count(&f.spec().layers), 0);
        let x = images(4, 1, 8, 11);
        assert_same_outputs(&mut m, &mut f, &x, InferenceMode::Fsnn);
        assert_same_outputs(&mut m, &mut f, &x, InferenceMode::Dsnn);
        // The depthwise conv is followed by a conv, not a BN: it keeps its (absent) bias.
        let names: Vec<String> = f.state_tensors().into_iter().map(|(n, _)| n).collect();
        assert!(names.contains(&"layers.2.stages.1.projection.1.bias".to_string()), "{names:?}");
        assert!(!names.contains(&"layers.2.stages.1.projection.0.bias".to_string()), "{names:?}");
    }
}
