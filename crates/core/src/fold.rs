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
#[doc(hidden)]
pub struct Plan {
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
