//! Fully connected layer on `[T, N, in]`, run on the merged `[T*N, in]` batch. It also maps
//! token sequences `[T, N, L, in]` token by token (the last axis), which is the
//! `Conv1d(kernel_size=1)` of a spiking transformer. On spike inputs sparse enough, the forward
//! and the weight gradient run event-driven (`kernels/spike_linear.rs`); other inputs run as
//! GEMMs, and the input gradient as `gemm_shallow` (sgemm's bits without packing) where the
//! inner axis fits one sgemm depth block.
use crate::energy::{Counter, SynapseCounter};
use crate::error::{Error, Result};
use crate::kernels::gemm::{gemm, gemm_shallow, gemm_strided};
use crate::kernels::spike_linear::{
    linear_forward_sparse, linear_weight_grad_block, linear_weight_grad_sparse, nonzero_density,
    scan_nonzeros, EventScratch, Order, FORWARD_MAX_DENSITY, GEMM_DEPTH, SPARSE_MAX_DENSITY,
    WEIGHT_GRAD_MAX_DENSITY, WEIGHT_GRAD_SPARSE_MAX_DENSITY,
};
use crate::layer::check_backward_shapes;
use crate::layer::{expect_channels, AuditProbe, Layer, Param, Visitor, VisitorMut};
use crate::nn::conv2d::uniform_init;
use crate::rng::Rng;
use crate::spec::LinearSpec;
use crate::tensor::Tensor;
use rayon::prelude::*;
use std::cell::RefCell;

thread_local! {
    /// The sparse kernels' buffers, one set per thread, kept across calls.
    static SCRATCH: RefCell<EventScratch> = RefCell::new(EventScratch::default());
}

/// Rows of the batch per parallel task of the event forward (each block chooses events or the
/// GEMM by its own density), and the fewest per task of the dense GEMMs.
const BATCH_ROWS: usize = 64;
/// Parallel tasks of a dense forward or input-gradient GEMM over a large batch. Each call packs
/// the whole weight matrix again, so a few large blocks beat many small ones (64-row blocks
/// packed it 98 times per product on a Spikformer's 6272 token rows); 8 still balance two
/// threads.
const GEMM_TASKS: usize = 8;
/// The fewest weight rows per task of the dense weight gradient (each task owns its rows and
/// reduces over the whole batch inside one GEMM, so the result does not depend on threads),
/// and the rows of `dW^T` per task that add up the sparse one's depth blocks.
const WEIGHT_ROWS: usize = 16;
/// Inputs per parallel task of the event weight gradient: each task reads its inputs of every
/// row and all of `dY`, so wider tasks read less in all.
const EVENT_INPUTS: usize = 32;
/// Parallel tasks of the dense weight gradient: each packs the whole input again.
const WEIGHT_TASKS: usize = 4;
/// A multiple of the GEMM micro-kernel's rows (matrixmultiply's f32 `MR`: 8 with AVX2, 16 with
/// AVX-512). Blocks start at multiples of it, so every output row lands in the same kernel tile,
/// with the same sums, whatever the block size.
const KERNEL_ROWS: usize = 16;

/// Rows per task of a dense GEMM over `rows` rows: about `tasks` tasks, at least `min` rows,
/// a multiple of [`KERNEL_ROWS`]. The GEMM sums each output over the inner axis in one order
/// whatever block holds its row, so the block size changes no bit.
fn rows_per_task(rows: usize, tasks: usize, min: usize) -> usize {
    rows.div_ceil(tasks).next_multiple_of(KERNEL_ROWS).max(min)
}

#[derive(Clone, Debug)]
pub struct Linear {
    label: String,
    spec: LinearSpec,
    #[doc(hidden)]
    pub weight: Param,
    #[doc(hidden)]
    pub bias: Option<Param>,
    probe: AuditProbe,
    ops: SynapseCounter,
    /// `W^T` (`[in, out]`) for the event forward, and `dW^T` of the event weight gradient.
    transposed: Vec<f32>,
    /// The sparse weight gradient's sum per GEMM depth block, `[blocks, in, out]`.
    parts: Vec<f32>,
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
            transposed: Vec::new(),
            parts: Vec::new(),
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

    /// `dW[o, :] += sum_b dy[b, o] * x[b, :]` as GEMMs; dy^T is read in place through strides.
    fn dense_weight_grad(&mut self, x: &[f32], dy: &[f32], batch: usize) {
        let (fi, fo) = (self.spec.in_features, self.spec.out_features);
        let block = rows_per_task(fo, WEIGHT_TASKS, WEIGHT_ROWS);
        self.weight.grad.data_mut().par_chunks_mut(block * fi).enumerate().for_each(|(blk, dw)| {
            let o0 = blk * block;
            let rows = dw.len() / fi;
            gemm_strided(rows, fi, batch, 1.0, &dy[o0..], 1, fo, x, fi, 1, 1.0, dw, fi, 1);
        });
    }

    /// `dW = (dW^T)^T` from `transposed`.
    fn untranspose_grad(&mut self) {
        let (fi, fo) = (self.spec.in_features, self.spec.out_features);
        let dwt = &self.transposed;
        self.weight.grad.data_mut().par_chunks_mut(fi).enumerate().for_each(|(o, row)| {
            for (i, g) in row.iter_mut().enumerate() {
                *g = dwt[i * fo + o];
            }
        });
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
        // The sparse path serves token sequences, whose linears carry most of a transformer's
        // work; a `[T, N, F]` classifier is a small share of its network and keeps the GEMM.
        // Blocks of a binary input sparse enough for the event order keep it (it adds the bias
        // first); every other block sums in the GEMM's order, sparse or dense.
        let (density, binary) =
            if shape.len() == 4 { nonzero_density(input.data()) } else { (1.0, false) };
        let sparse = density <= SPARSE_MAX_DENSITY;
        let events = binary && density <= FORWARD_MAX_DENSITY;
        if sparse {
            transpose(w, fo, fi, &mut self.transposed);
        }
        let wt = &self.transposed;
        let block = if sparse {
            BATCH_ROWS
        } else {
            rows_per_task(input.numel() / fi, GEMM_TASKS, BATCH_ROWS)
        };
        let body = |y: &mut [f32], x: &[f32]| {
            if sparse {
                let done = SCRATCH.with_borrow_mut(|s| {
                    let max = (SPARSE_MAX_DENSITY * x.len() as f32) as usize;
                    let ones = (FORWARD_MAX_DENSITY * x.len() as f32) as usize;
                    let Some(block_binary) = scan_nonzeros(x, fi, max, s) else {
                        return false;
                    };
                    let order = if events && block_binary && s.nonzeros() <= ones {
                        Order::Events
                    } else {
                        Order::Gemm
                    };
                    linear_forward_sparse(x, s, wt, fo, bias, order, y);
                    true
                });
                if done {
                    return;
                }
            }
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
        };
        output
            .data_mut()
            .par_chunks_mut(block * fo)
            .zip(input.data().par_chunks(block * fi))
            .for_each(|(y, x)| body(y, x));
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
        let block = rows_per_task(batch, GEMM_TASKS, BATCH_ROWS);
        grad_input.data_mut().par_chunks_mut(block * fi).zip(dy.par_chunks(block * fo)).for_each(
            |(dx, dyc)| {
                let rows = dyc.len() / fo;
                // The GEMM's bits without packing either operand, where that is possible.
                if !gemm_shallow(rows, fi, fo, dyc, w, dx) {
                    gemm(rows, fi, fo, 1.0, dyc, false, w, false, 0.0, dx);
                }
            },
        );
        if batch == 0 {
            return Ok(());
        }
        let tokens = input.shape().len() == 4;
        let (density, binary) = if tokens { nonzero_density(x) } else { (1.0, false) };
        if binary && density <= WEIGHT_GRAD_MAX_DENSITY {
            // The event order: dW^T, from dW transposed, gains the sum over all rows per block
            // of inputs, then goes back into dW.
            transpose(self.weight.grad.data(), fo, fi, &mut self.transposed);
            self.transposed.par_chunks_mut(EVENT_INPUTS * fo).enumerate().for_each(|(blk, dwt)| {
                SCRATCH.with_borrow_mut(|s| {
                    let i0 = blk * EVENT_INPUTS;
                    linear_weight_grad_sparse(x, fi, dy, fo, i0, dwt, Order::Events, false, s)
                });
            });
            self.untranspose_grad();
        } else if density <= WEIGHT_GRAD_SPARSE_MAX_DENSITY {
            // The GEMM's order: each depth block's sum on its own (blocks in parallel), then
            // added to dW^T block by block in order.
            let blocks = batch.div_ceil(GEMM_DEPTH);
            self.parts.resize(blocks * fi * fo, 0.0);
            self.parts.par_chunks_mut(fi * fo).enumerate().for_each(|(b, part)| {
                let (r0, r1) = (b * GEMM_DEPTH, batch.min((b + 1) * GEMM_DEPTH));
                SCRATCH.with_borrow_mut(|s| {
                    let (xb, dyb) = (&x[r0 * fi..r1 * fi], &dy[r0 * fo..r1 * fo]);
                    linear_weight_grad_block(xb, fi, dyb, fo, part, s)
                });
            });
            transpose(self.weight.grad.data(), fo, fi, &mut self.transposed);
            let parts = &self.parts;
            self.transposed.par_chunks_mut(WEIGHT_ROWS * fo).enumerate().for_each(|(blk, dwt)| {
                let (at, len) = (blk * WEIGHT_ROWS * fo, dwt.len());
                for part in parts.chunks_exact(fi * fo) {
                    for (d, &p) in dwt.iter_mut().zip(&part[at..at + len]) {
                        *d += p;
                    }
                }
            });
            self.untranspose_grad();
        } else {
            self.dense_weight_grad(x, dy, batch);
        }
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

/// `out = w^T` for the `rows x cols` row-major `w`.
fn transpose(w: &[f32], rows: usize, cols: usize, out: &mut Vec<f32>) {
    out.resize(rows * cols, 0.0);
    for (r, row) in w.chunks_exact(cols).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            out[c * rows + r] = v;
        }
    }
}
