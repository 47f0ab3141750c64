//! Fully connected layer on `[T, N, in]`, run on the merged `[T*N, in]` batch. It also maps
//! token sequences `[T, N, L, in]` token by token (the last axis), which is the
//! `Conv1d(kernel_size=1)` of a spiking transformer.
use crate::energy::{Counter, SynapseCounter};
use crate::error::{Error, Result};
use crate::kernels::gemm::{gemm, gemm_strided};
use crate::layer::check_backward_shapes;
use crate::layer::{expect_channels, AuditProbe, Layer, Param, Visitor, VisitorMut};
use crate::nn::conv2d::uniform_init;
use crate::rng::Rng;
use crate::spec::LinearSpec;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// Rows of the batch per parallel task in forward and input-gradient GEMMs.
const BATCH_ROWS: usize = 64;
/// Weight rows per parallel task in the weight-gradient GEMM. Each task owns its rows and
/// reduces over the whole batch inside one GEMM, so the result does not depend on threads.
const WEIGHT_ROWS: usize = 16;

#[derive(Clone, Debug)]
pub struct Linear {
    label: String,
    spec: LinearSpec,
    weight: Param,
    bias: Option<Param>,
    probe: AuditProbe,
    ops: SynapseCounter,
    /// The input is a mean over positions whose layer audits and counts these synapses on
    /// its own input (`MeanHead`); this layer then reports neither.
    reads_mean: bool,
}

impl Linear {
    /// Weight `[out, in]` is drawn first, then the bias, from `rng`.
    pub fn new(name: &str, spec: &LinearSpec, rng: &mut Rng) -> Result<Self> {
        let label = format!("{name} (linear)");
        if spec.in_features == 0 || spec.out_features == 0 {
            return Err(Error::spec(
                &label,
                format!(
                    "inFeatures and outFeatures must be positive, got {} and {}",
                    spec.in_features, spec.out_features
                ),
            ));
        }
        let (i, o) = (spec.in_features, spec.out_features);
        let weight = Param::new(format!("{name}.weight"), uniform_init(rng, &[o, i], i), true);
        let bias = spec
            .bias
            .then(|| Param::new(format!("{name}.bias"), uniform_init(rng, &[o], i), false));
        Ok(Linear {
            label,
            spec: spec.clone(),
            weight,
            bias,
            probe: AuditProbe::default(),
            ops: SynapseCounter::default(),
            reads_mean: false,
        })
    }

    /// Leaves the audit and the energy count to the mean layer before this one.
    pub fn reading_mean(mut self) -> Self {
        self.reads_mean = true;
        self
    }

    pub fn weight(&self) -> &Param {
        &self.weight
    }
    pub fn bias(&self) -> Option<&Param> {
        self.bias.as_ref()
    }

    fn check_input(&self, input: &[usize]) -> Result<()> {
        let f = self.spec.in_features;
        // Checked on every forward: the message is only formatted when the shape is wrong.
        if matches!(input, [_, _, x] | [_, _, _, x] if *x == f) {
            return Ok(());
        }
        let what = format!("[T, N, {f}] or tokens [T, N, L, {f}]");
        expect_channels(&self.label, input, 1, f, &what)
    }
}

impl Layer for Linear {
    fn name(&self) -> &str {
        &self.label
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.check_input(input)?;
        let mut out = input.to_vec();
        *out.last_mut().unwrap() = self.spec.out_features;
        Ok(out)
    }

    fn forward(&mut self, input: &Tensor, output: &mut Tensor, _training: bool) -> Result<()> {
        self.probe.observe(input.data());
        let shape = self.output_shape(input.shape())?;
        output.resize_for_overwrite(&shape);
        let (fi, fo) = (self.spec.in_features, self.spec.out_features);
        // Per sample and step: one row, or one per token.
        let rows = if shape.len() == 4 { shape[2] } else { 1 } as u64;
        let bias_ops = if self.bias.is_some() { fo as u64 } else { 0 };
        self.ops.observe(input, rows * (fi * fo) as u64, rows * bias_ops);
        let w = self.weight.value.data();
        let bias = self.bias.as_ref().map(|b| b.value.data());
        output
            .data_mut()
            .par_chunks_mut(BATCH_ROWS * fo)
            .zip(input.data().par_chunks(BATCH_ROWS * fi))
            .for_each(|(y, x)| {
                let rows = x.len() / fi;
                let beta = match bias {
                    Some(b) => {
                        for row in y.chunks_exact_mut(fo) {
                            row.copy_from_slice(b);
                        }
                        1.0
                    }
                    None => 0.0,
                };
                gemm(rows, fo, fi, 1.0, x, false, w, true, beta, y);
            });
        Ok(())
    }

    fn backward(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        grad_input: &mut Tensor,
    ) -> Result<()> {
        check_backward_shapes(self, input, output, grad_output)?;
        let (fi, fo) = (self.spec.in_features, self.spec.out_features);
        let batch = input.numel() / fi;
        let dy = grad_output.data();
        let x = input.data();
        grad_input.resize_for_overwrite(input.shape());
        let w = self.weight.value.data();
        grad_input
            .data_mut()
            .par_chunks_mut(BATCH_ROWS * fi)
            .zip(dy.par_chunks(BATCH_ROWS * fo))
            .for_each(|(dx, dyc)| {
                let rows = dyc.len() / fo;
                gemm(rows, fi, fo, 1.0, dyc, false, w, false, 0.0, dx);
            });
        if batch == 0 {
            return Ok(());
        }
        // dW[o, :] += sum_b dy[b, o] * x[b, :]; dy^T is read in place through strides.
        self.weight.grad.data_mut().par_chunks_mut(WEIGHT_ROWS * fi).enumerate().for_each(
            |(blk, dw)| {
                let o0 = blk * WEIGHT_ROWS;
                let rows = dw.len() / fi;
                gemm_strided(rows, fi, batch, 1.0, &dy[o0..], 1, fo, x, fi, 1, 1.0, dw, fi, 1);
            },
        );
        if let Some(b) = self.bias.as_mut() {
            b.grad.data_mut().par_iter_mut().enumerate().for_each(|(o, g)| {
                let s: f64 = (0..batch).map(|r| dy[r * fo + o] as f64).sum();
                *g += s as f32;
            });
        }
        Ok(())
    }

    fn visit(&self, visitor: &mut dyn Visitor) {
        if !self.reads_mean {
            visitor.audit(&self.label, &self.probe);
        }
    }

    fn visit_mut<'a>(&'a mut self, visitor: &mut dyn VisitorMut<'a>) {
        visitor.param(&mut self.weight);
        if let Some(b) = self.bias.as_mut() {
            visitor.param(b);
        }
        if self.reads_mean {
            return;
        }
        let name = self.label.trim_end_matches(" (linear)").to_string();
        visitor.counter(Counter::Synapse { name, kind: "linear", counter: &mut self.ops });
        visitor.audit_probe(&mut self.probe);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::{check_gradients, random_tensor};

    #[test]
    fn gradients_match_finite_differences() {
        for (i, bias) in [true, false].into_iter().enumerate() {
            let mut rng = Rng::new(20 + i as u64);
            let spec = LinearSpec { in_features: 7, out_features: 19, bias };
            let l = Linear::new("layers.9", &spec, &mut rng).unwrap();
            let x = random_tensor(&mut rng, &[3, 2, 7]);
            check_gradients(&l, &x, 3, 1e-2, 1e-3, 1e-3);
        }
    }

    #[test]
    fn large_batch_matches_naive_and_is_deterministic() {
        // More rows than one parallel block and more outputs than one weight block.
        let mut rng = Rng::new(4);
        let spec = LinearSpec { in_features: 13, out_features: 37, bias: true };
        let mut l = Linear::new("fc", &spec, &mut rng).unwrap();
        let x = random_tensor(&mut rng, &[5, 41, 13]);
        let mut y = Tensor::default();
        l.forward(&x, &mut y, true).unwrap();
        let (w, b) = (l.weight.value.clone(), l.bias.as_ref().unwrap().value.clone());
        for r in 0..205 {
            for o in 0..37 {
                let want: f64 = b.data()[o] as f64
                    + (0..13)
                        .map(|k| x.data()[r * 13 + k] as f64 * w.data()[o * 13 + k] as f64)
                        .sum::<f64>();
                assert!((y.data()[r * 37 + o] as f64 - want).abs() < 1e-4);
            }
        }
        let gy = random_tensor(&mut rng, y.shape());
        let mut gx = Tensor::default();
        l.backward(&x, &y, &gy, &mut gx).unwrap();
        for o in [0, 17, 36] {
            for k in [0, 12] {
                let want: f64 = (0..205)
                    .map(|r| gy.data()[r * 37 + o] as f64 * x.data()[r * 13 + k] as f64)
                    .sum();
                assert!((l.weight.grad.data()[o * 13 + k] as f64 - want).abs() < 1e-3);
            }
        }
        let first = l.weight.grad.clone();
        l.weight.grad.fill(0.0);
        l.backward(&x, &y, &gy, &mut gx).unwrap();
        assert_eq!(first, l.weight.grad);
    }

    #[test]
    fn wrong_rank_or_features_name_the_layer() {
        let mut rng = Rng::new(1);
        let l = Linear::new(
            "layers.7",
            &LinearSpec { in_features: 10, out_features: 2, bias: true },
            &mut rng,
        )
        .unwrap();
        let err = l.output_shape(&[2, 3, 10, 1]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "layers.7 (linear): expected shape [T, N, 10] or tokens [T, N, L, 10], got [2, 3, 10, 1]"
        );
        assert_eq!(l.output_shape(&[2, 3, 5, 10]).unwrap(), vec![2, 3, 5, 2]);
        let err = l.output_shape(&[2, 3, 11]).unwrap_err();
        assert!(
            matches!(err, Error::Shape { .. }) && err.to_string().contains("layers.7 (linear)")
        );
        let err = Linear::new(
            "layers.8",
            &LinearSpec { in_features: 0, out_features: 2, bias: true },
            &mut rng,
        )
        .unwrap_err();
        assert!(matches!(err, Error::Spec { .. }) && err.to_string().contains("layers.8"));
    }
}
