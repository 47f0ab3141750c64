//! The executable model built from a `ModelSpec`, and the trainer that steps it.
use crate::energy::{Energies, EnergyReport};
use crate::error::{check_finite, Error, Result};
use crate::kernels::scratch::empty_idle_tensors;
use crate::layer::{AuditEntry, Layer, Param, Walk};
use crate::limits;
use crate::loss::{head_slice, time_mean_logits, LossSpec, LossStats};
use crate::nn::sequential::inference_only;
use crate::nn::{build_sequential, Sequential};
use crate::optim::schedule::ScheduleSpec;
use crate::optim::{Ema, Optimizer, OptimizerSpec};
use crate::rng::Rng;
use crate::spec::{DualStage, Encoding, LayerSpec, ModelSpec};
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Which network a dual-stream model evaluates as.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum InferenceMode {
    /// The full-spike network: the accumulation pathway is not run; predict with `y_s`.
    Fsnn,
    /// The dual-stream network: the accumulation pathway runs; predict with `y_a`.
    Dsnn,
}

/// Loss statistics (when labels were given) and time-mean logits `[N, K]` of one evaluation.
pub struct Evaluation {
    pub stats: Option<LossStats>,
    pub logits: Tensor,
}

/// Result of the full-spike audit of one batch.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditReport {
    /// Every synaptic layer that ran, in forward order.
    pub layers: Vec<AuditEntry>,
    /// The synaptic layer reading the model input (the stem conv), exempt from the rule.
    pub stem: Option<String>,
    /// The layers other than the stem that received a value outside {0, 1}.
    pub offending: Vec<AuditEntry>,
}

impl AuditReport {
    pub fn passed(&self) -> bool {
        self.offending.is_empty()
    }
}

/// Whether a dual-stream trunk appears anywhere in these layers, blocks included.
fn has_dual_stream(layers: &[LayerSpec]) -> bool {
    layers.iter().any(|l| match l {
        LayerSpec::DualStream(_) => true,
        LayerSpec::SewBlock(b) => {
            has_dual_stream(&b.branch) || b.shortcut.as_deref().is_some_and(has_dual_stream)
        }
        LayerSpec::SpikingResnetBlock(b) => {
            has_dual_stream(&b.branch) || b.shortcut.as_deref().is_some_and(has_dual_stream)
        }
        _ => false,
    })
}

pub struct Model {
    spec: ModelSpec,
    body: Sequential,
    /// The `[T, N, ...]` input fed to the body (a static sample repeated T times, or a copy).
    steps_input: Tensor,
    output: Tensor,
    #[doc(hidden)]
    pub grad_steps_input: Tensor,
    grad_input: Tensor,
    /// Shape of the caller's input to the last training forward; backward needs it.
    trained_input_shape: Option<Vec<usize>>,
    output_shape_per_sample: Vec<usize>,
    /// The largest layer output (or input) of one sample at one step, in values: what a batch
    /// of N samples over T steps allocates per tensor, checked against the limit per call.
    step_elements: usize,
}

/// Refuses a layer whose output for one sample over `t` steps (`elements` f32 values a step)
/// is past the allocation limit, as a spec error at the layer (its name already says its kind).
fn check_activation(layer: &str, t: usize, elements: usize) -> Result<()> {
    crate::spec::size_check(
        layer,
        "the activations of one sample over T steps (T x 1 x output values, f32)",
        &[t, 1, elements],
        4,
    )
    .map(|_| ())
}

impl Model {
    pub fn from_spec(spec: &ModelSpec, seed: u64) -> Result<Model> {
        // Every size is checked while it is still a number: a refused allocation aborts.
        spec.check_sizes()?;
        if let Some((_, before)) = spec.layers.split_last() {
            if has_dual_stream(before) {
                return Err(Error::spec(
                    "layers",
                    "a dualStream trunk must be the model's last layer (its output holds the heads, which the loss splits)",
                ));
            }
        }
        let mut rng = Rng::new(seed);
        let mut body = build_sequential("layers", &spec.layers, &mut rng)?;
        body.set_repeated_input(spec.encoding == Encoding::Direct);
        // Check the whole chain once now, so a wrong shape is reported before any data is seen.
        let mut probe = vec![spec.time_steps, 1];
        probe.extend_from_slice(&spec.input_shape);
        let out = body.output_shape(&probe)?;
        let mut step_elements = limits::product(&spec.input_shape).unwrap_or(usize::MAX);
        let mut shape = probe.clone();
        for layer in body.layers() {
            shape = layer.output_shape(&shape)?;
            let elements = limits::product(&shape[2..]).unwrap_or(usize::MAX);
            if elements > step_elements {
                step_elements = elements;
            }
            check_activation(layer.name(), spec.time_steps, elements)?;
        }
        Ok(Model {
            step_elements,
            spec: spec.clone(),
            body,
            steps_input: Tensor::default(),
            output: Tensor::default(),
            grad_steps_input: Tensor::default(),
            grad_input: Tensor::default(),
            trained_input_shape: None,
            output_shape_per_sample: out[2..].to_vec(),
        })
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Heads side by side in the training output: 2 for a dual-stream trunk with its
    /// accumulation pathway (`[y_s | y_a]`), else 1.
    pub fn heads(&self) -> usize {
        match self.spec.layers.last() {
            Some(LayerSpec::DualStream(d)) if d.aap => 2,
            _ => 1,
        }
    }

    /// Eval-mode forward as `mode` and the loss of its prediction head. For a single-head
    /// model `fsnn` is the model itself and `dsnn` is an error.
    pub fn evaluate(
        &mut self,
        input: &Tensor,
        labels: Option<&[u32]>,
        mode: InferenceMode,
        loss: &LossSpec,
    ) -> Result<Evaluation> {
        let mut head = Tensor::default();
        match mode {
            InferenceMode::Fsnn => {
                self.body.set_aap(false);
                let run =
                    inference_only(|| self.forward(input, false).map(|out| head.copy_from(out)));
                self.body.set_aap(true);
                run?;
            }
            InferenceMode::Dsnn => {
                if self.heads() < 2 {
                    return Err(Error::value(
                        "mode",
                        "\"fsnn\" (this model has no auxiliary accumulation pathway to evaluate)",
                        "\"dsnn\"",
                    ));
                }
                let out = inference_only(|| self.forward(input, false))?;
                head_slice(out, 1, 2, &mut head)?;
            }
        }
        let stats = match labels {
            Some(labels) => Some(loss.compute(&head, labels, 1.0, &mut Tensor::default())?),
            None => None,
        };
        Ok(Evaluation { stats, logits: time_mean_logits(&head)? })
    }

    /// The deployable full-spike network: the same spec without the accumulation pathway (the
    /// trunk's `aap` false, no projections) and the same weights, minus the projections'.
    /// Its output equals this model's spike head bit for bit.
    pub fn to_full_spike(&mut self) -> Result<Model> {
        let mut spec = self.spec.clone();
        match spec.layers.last_mut() {
            Some(LayerSpec::DualStream(d)) => {
                d.aap = false;
                for st in d.stages.iter_mut() {
                    if let DualStage::Block(b) = st {
                        b.projection = None;
                    }
                }
            }
            _ => return Err(Error::state(
                "toFullSpike",
                "this model has no dualStream trunk, so there is no accumulation pathway to remove",
            )),
        }
        let mut fsnn = Model::from_spec(&spec, 0)?;
        let wanted: Vec<String> = fsnn.state_tensors().into_iter().map(|(n, _)| n).collect();
        let mine = self.state_tensors();
        for name in &wanted {
            let t = mine.iter().find(|(n, _)| n == name).map(|(_, t)| t).ok_or_else(|| {
                Error::state(
                    "toFullSpike",
                    format!("the full-spike model needs {name}, which this model lacks"),
                )
            })?;
            fsnn.set_tensor(name, t)?;
        }
        Ok(fsnn)
    }

    /// Full-spike audit: runs the batch as the full-spike network (eval mode, no accumulation
    /// pathway) and checks that every synaptic layer except the stem (the one reading the
    /// model input) received only 0s and 1s.
    pub fn audit(&mut self, input: &Tensor) -> Result<AuditReport> {
        self.body.set_aap(false);
        self.body.set_audit(true);
        let run = self.forward(input, false).map(|_| ());
        let mut layers = Vec::new();
        self.body.audit(&mut layers);
        self.body.set_audit(false);
        self.body.set_aap(true);
        run?;
        let stem =
            layers.first().filter(|e| e.layer.starts_with("layers.0 ")).map(|e| e.layer.clone());
        let offending = layers
            .iter()
            .filter(|e| !e.binary && Some(&e.layer) != stem.as_ref())
            .cloned()
            .collect();
        Ok(AuditReport { layers, stem, offending })
    }

    /// Each top-level layer's name and its output shape for one sample at one time step
    /// (without T and N), in order.
    pub fn layer_shapes(&self) -> Result<Vec<(String, Vec<usize>)>> {
        let mut shape = vec![self.spec.time_steps, 1];
        shape.extend_from_slice(&self.spec.input_shape);
        let mut out = Vec::new();
        for layer in self.body.layers() {
            shape = layer.output_shape(&shape)?;
            out.push((layer.name().to_string(), shape[2..].to_vec()));
        }
        Ok(out)
    }

    /// Runs `f` (evaluations) with the energy counters on (`crate::energy`): operations and
    /// rates add up over calls, so a data set streams through batch by batch, until
    /// `reset_energy`. Other forwards are not counted.
    pub fn counting<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        self.set_counting(true);
        let run = f(self);
        self.set_counting(false);
        run
    }

    fn set_counting(&mut self, on: bool) {
        let mut counters = Vec::new();
        self.body.counters(&mut counters);
        counters.iter_mut().for_each(|c| c.set_on(on));
    }

    /// Clears what evaluations under `counting` have counted.
    pub fn reset_energy(&mut self) {
        let mut counters = Vec::new();
        self.body.counters(&mut counters);
        counters.iter_mut().for_each(|c| c.reset());
    }

    /// Operations per sample, rates and energy of everything counted since `reset_energy`.
    pub fn energy_report(&mut self, energies: &Energies) -> EnergyReport {
        let mut counters = Vec::new();
        self.body.counters(&mut counters);
        EnergyReport::from_counters(&counters, energies)
    }

    /// Shape of one sample's output per step, e.g. `[10]` for a classifier.
    pub fn output_shape_per_sample(&self) -> &[usize] {
        &self.output_shape_per_sample
    }

    /// Batch size of an input, after checking its shape against the spec.
    pub fn check_input(&self, input: &Tensor) -> Result<usize> {
        let sample = &self.spec.input_shape;
        let (lead, what) = match self.spec.encoding {
            Encoding::Direct => (1, format!("[N, {}] (encoding direct)", join(sample))),
            Encoding::Sequence => {
                (2, format!("[{}, N, {}] (encoding sequence)", self.spec.time_steps, join(sample)))
            }
        };
        let shape = input.shape();
        let ok = shape.len() == lead + sample.len()
            && &shape[lead..] == sample.as_slice()
            && (lead == 1 || shape[0] == self.spec.time_steps)
            && shape[lead - 1] > 0;
        if !ok {
            return Err(Error::shape("input", what, shape));
        }
        let n = shape[lead - 1];
        limits::check_elements(
            "input",
            "a batch whose activations (T x N x the largest layer output, f32) fit",
            &[self.spec.time_steps, n, self.step_elements],
            4,
        )?;
        check_finite("input", input.data())?;
        Ok(n)
    }

    /// Runs all T steps and returns the `[T, N, classes]` output.
    pub fn forward(&mut self, input: &Tensor, training: bool) -> Result<&Tensor> {
        let n = self.check_input(input)?;
        let t = self.spec.time_steps;
        let mut shape = vec![t, n];
        shape.extend_from_slice(&self.spec.input_shape);
        self.steps_input.resize_for_overwrite(&shape);
        match self.spec.encoding {
            Encoding::Direct => {
                for chunk in self.steps_input.data_mut().chunks_mut(input.numel()) {
                    chunk.copy_from_slice(input.data());
                }
            }
            Encoding::Sequence => self.steps_input.data_mut().copy_from_slice(input.data()),
        }
        self.trained_input_shape = None;
        if training && self.memory_lean() {
            // What the last step kept for its backward (the pools' f32 outputs and argmax)
            // and the work-buffer pool's idle buffers (its gradient maps, each of a whole
            // activation's size) would stay live beside this forward's own maps: the
            // memory-lean mode frees them, and this step allocates them again.
            self.body.release_stored();
            empty_idle_tensors();
        }
        self.body.forward(&self.steps_input, &mut self.output, training)?;
        if training {
            self.trained_input_shape = Some(input.shape().to_vec());
        }
        Ok(&self.output)
    }

    /// Backpropagation through time from d loss / d output; returns d loss / d input (the
    /// caller's input shape: for direct encoding the T copies' gradients are summed).
    /// Parameter gradients are added to `Param::grad`.
    pub fn backward(&mut self, grad_output: &Tensor) -> Result<&Tensor> {
        let input_shape = self.backward_body(grad_output)?;
        match self.spec.encoding {
            Encoding::Direct => {
                self.grad_input.resize_zeroed(&input_shape);
                let per_step = self.grad_input.numel();
                for chunk in self.grad_steps_input.data().chunks(per_step) {
                    for (g, c) in self.grad_input.data_mut().iter_mut().zip(chunk) {
                        *g += c;
                    }
                }
            }
            Encoding::Sequence => self.grad_input.copy_from(&self.grad_steps_input),
        }
        Ok(&self.grad_input)
    }

    /// [`Model::backward`] for the parameter gradients only: the gradient with respect to the
    /// input is not computed (the stem's backward-data pass is skipped).
    pub fn backward_params(&mut self, grad_output: &Tensor) -> Result<()> {
        self.body.skip_input_grad(true);
        let run = self.backward_body(grad_output);
        self.body.skip_input_grad(false);
        run.map(|_| ())
    }

    /// Checks the call order and runs the body's backward; returns the trained input's shape.
    fn backward_body(&mut self, grad_output: &Tensor) -> Result<Vec<usize>> {
        let input_shape = self.trained_input_shape.clone().ok_or_else(|| {
            Error::state("model.backward", "call forward with training = true first")
        })?;
        if grad_output.shape() != self.output.shape() {
            return Err(Error::shape(
                "gradOutput",
                format!("{:?}", self.output.shape()),
                grad_output.shape(),
            ));
        }
        self.body.backward(
            &self.steps_input,
            &self.output,
            grad_output,
            &mut self.grad_steps_input,
        )?;
        Ok(input_shape)
    }

    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut out = Vec::new();
        self.body.params(&mut out);
        out
    }

    pub fn zero_grad(&mut self) {
        for p in self.params_mut() {
            p.grad.fill(0.0);
        }
    }

    pub fn param(&mut self, name: &str) -> Option<&Param> {
        self.params_mut().into_iter().find(|p| p.name == name).map(|p| &*p)
    }

    pub fn parameter_count(&mut self) -> usize {
        self.params_mut().iter().map(|p| p.value.numel()).sum()
    }

    /// Names and shapes of all learnable parameters, in a stable order.
    pub fn param_shapes(&mut self) -> Vec<(String, Vec<usize>)> {
        self.params_mut().iter().map(|p| (p.name.clone(), p.value.shape().to_vec())).collect()
    }

    pub fn set_param(&mut self, name: &str, value: &Tensor) -> Result<()> {
        let p = self.params_mut().into_iter().find(|p| p.name == name).ok_or_else(|| {
            Error::value("parameter name", "the name of a parameter of this model", name)
        })?;
        assign(name, &mut p.value, value)
    }

    pub fn buffer_names(&mut self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        self.body.buffers(&mut out);
        out.iter().map(|b| (b.name.clone(), b.value.shape().to_vec())).collect()
    }

    pub fn buffer(&mut self, name: &str) -> Option<&Tensor> {
        let mut out = Vec::new();
        self.body.buffers(&mut out);
        out.into_iter().find(|b| b.name == name).map(|b| &*b.value)
    }

    pub fn set_buffer(&mut self, name: &str, value: &Tensor) -> Result<()> {
        let mut out = Vec::new();
        self.body.buffers(&mut out);
        let b = out.into_iter().find(|b| b.name == name).ok_or_else(|| {
            Error::value("buffer name", "the name of a buffer of this model", name)
        })?;
        assign(name, b.value, value)
    }

    /// Memory-lean training (`true`): the blocks (and a dual-stream trunk's segments) keep
    /// only their inputs from the forward pass and run their forward again just before their
    /// backward; the gradients and parameter updates are the same bit for bit. `false` (the
    /// default) keeps everything the backward reads.
    pub fn set_memory_lean(&mut self, on: bool) {
        self.body.set_memory_lean(on);
    }

    /// Whether the memory-lean training mode is on (see [`Model::set_memory_lean`]).
    pub fn memory_lean(&self) -> bool {
        self.body.memory_lean()
    }

    /// Bytes the last training forward kept for BPTT between layers (spike maps bit-packed).
    pub fn stored_bytes(&self) -> usize {
        self.body.stored_bytes()
    }

    /// Gradient norms at each dual-stream stage's outputs in the last backward.
    pub fn gradient_norms(&self) -> Vec<(String, f32)> {
        let mut out = Vec::new();
        self.body.gradient_norms(&mut out);
        out
    }

    /// Mean firing rate of every neuron layer during the last forward.
    pub fn firing_rates(&self) -> Vec<(String, f32)> {
        let mut out = Vec::new();
        self.body.firing_rates(&mut out);
        out
    }

    /// Calls `f` with the name and value of every tensor a weight average covers: the
    /// parameters and, with `buffers`, the BN running statistics, in a stable order.
    pub fn for_each_averaged(&mut self, buffers: bool, f: &mut dyn FnMut(&str, &mut Tensor)) {
        self.body.for_each_averaged(buffers, f);
    }

    /// Copies of every parameter, then every buffer, by name (what a checkpoint holds).
    pub fn state_tensors(&mut self) -> Vec<(String, Tensor)> {
        let mut out: Vec<(String, Tensor)> =
            self.params_mut().into_iter().map(|p| (p.name.clone(), p.value.clone())).collect();
        let mut buffers = Vec::new();
        self.body.buffers(&mut buffers);
        out.extend(buffers.into_iter().map(|b| (b.name, b.value.clone())));
        out
    }

    /// Sets a parameter or a buffer by name.
    pub fn set_tensor(&mut self, name: &str, value: &Tensor) -> Result<()> {
        if self.params_mut().iter().any(|p| p.name == name) {
            self.set_param(name, value)
        } else if self.buffer(name).is_some() {
            self.set_buffer(name, value)
        } else {
            Err(Error::value(
                "tensor name",
                "the name of a parameter or buffer of this model",
                name,
            ))
        }
    }
}

fn join(dims: &[usize]) -> String {
    dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
}

/// Optimizer state, learning-rate schedule and loss: everything a training run adds to a model.
pub struct Trainer {
    optimizer: Box<dyn Optimizer>,
    base_lr: f32,
    schedule: ScheduleSpec,
    loss: LossSpec,
    step: usize,
    grad_output: Tensor,
    /// The weight average updated after every optimizer step, when asked for.
    ema: Option<Ema>,
}

impl Trainer {
    pub fn new(
        optimizer: &OptimizerSpec,
        schedule: &ScheduleSpec,
        loss: &LossSpec,
    ) -> Result<Trainer> {
        schedule.validate()?;
        Ok(Trainer {
            optimizer: optimizer.build()?,
            base_lr: optimizer.lr(),
            schedule: schedule.clone(),
            loss: *loss,
            step: 0,
            grad_output: Tensor::default(),
            ema: None,
        })
    }

    /// Keeps a weight average from the next step on (`None`: none); see [`Ema`].
    pub fn with_ema(mut self, ema: Option<Ema>) -> Trainer {
        self.ema = ema;
        self
    }

    pub fn ema(&self) -> Option<&Ema> {
        self.ema.as_ref()
    }

    /// Puts the weight average into the model (`on`), e.g. to evaluate or save it, or the
    /// trained weights back. Training steps put the trained weights back by themselves. No
    /// average (none asked for, or no step yet): nothing changes.
    pub fn show_average(&mut self, model: &mut Model, on: bool) -> Result<()> {
        match &mut self.ema {
            Some(ema) => {
                let buffers = ema.buffers();
                ema.show(on, &mut |f| model.for_each_averaged(buffers, f))
            }
            None => Ok(()),
        }
    }

    pub fn step_count(&self) -> usize {
        self.step
    }

    pub fn learning_rate(&self) -> f32 {
        self.schedule.lr_at(self.base_lr, self.step)
    }

    pub fn loss(&self) -> &LossSpec {
        &self.loss
    }

    /// What resuming needs beyond the model's tensors: the schedule position
    /// (`schedule/step`), the optimizer's buffers and step count (`optimizer/<key>`, keys
    /// as `Optimizer::state`) and the weight average's (`ema/<key>`, keys as `Ema::state`).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out =
            vec![("schedule/step".to_string(), crate::optim::step_to_tensor(self.step as u64))];
        out.extend(self.optimizer.state().into_iter().map(|(k, t)| (format!("optimizer/{k}"), t)));
        if let Some(ema) = &self.ema {
            out.extend(ema.state().into_iter().map(|(k, t)| (format!("ema/{k}"), t)));
        }
        out
    }

    /// Restores a `state()` of a trainer with the same optimizer kind; all or nothing.
    pub fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        let mut step = None;
        let mut optimizer = Vec::new();
        let mut ema = Vec::new();
        for (key, t) in state {
            if let Some(rest) = key.strip_prefix("ema/") {
                ema.push((rest.to_string(), t.clone()));
            } else if key == "schedule/step" {
                step = Some(crate::optim::step_from_tensor("trainer", t)?);
            } else if let Some(rest) = key.strip_prefix("optimizer/") {
                // A damaged buffer would only show up steps later as a NaN loss naming nothing.
                check_finite(&format!("trainer tensor {key}"), t.data())?;
                if rest.ends_with("exp_avg_sq") {
                    if let Some(i) = t.data().iter().position(|&v| v < 0.0) {
                        return Err(Error::value(
                            format!("trainer tensor {key}"),
                            "values >= 0 (a running mean of squared gradients)",
                            format!("{} at flat index {i}", t.data()[i]),
                        ));
                    }
                }
                optimizer.push((rest.to_string(), t.clone()));
            } else {
                return Err(Error::value(
                    "trainer.load_state",
                    "keys \"schedule/step\", \"optimizer/...\" or \"ema/...\"",
                    format!("\"{key}\""),
                ));
            }
        }
        let step = step.ok_or_else(|| {
            Error::value("trainer.load_state", "a \"schedule/step\" entry", "none")
        })?;
        // A run resumed with another averaging than it started with would not continue it.
        let averaged = match (&self.ema, ema.is_empty()) {
            (None, true) => None,
            (Some(e), false) => {
                let mut e = e.clone();
                e.load_state(&ema)?;
                Some(e)
            }
            (None, false) => {
                return Err(Error::state(
                    "trainer.load_state",
                    "the state holds a weight average (ema/...) but this trainer keeps none",
                ))
            }
            (Some(_), true) => {
                return Err(Error::state(
                    "trainer.load_state",
                    "this trainer keeps a weight average but the state holds none (ema/...)",
                ))
            }
        };
        self.optimizer.load_state(&optimizer)?;
        self.step = step as usize;
        if averaged.is_some() {
            self.ema = averaged;
        }
        Ok(())
    }

    /// Forward, loss and BPTT in training mode, without updating the weights: the parameter
    /// gradients (and the gradient norms at block outputs) are left in the model.
    pub fn compute_gradients(
        &mut self,
        model: &mut Model,
        input: &Tensor,
        labels: &[u32],
    ) -> Result<LossStats> {
        // Gradients are of the trained weights, never of the average.
        self.show_average(model, false)?;
        model.zero_grad();
        let heads = model.heads();
        let output = model.forward(input, true)?;
        let stats = self.loss.compute_heads(output, labels, heads, &mut self.grad_output)?;
        if !stats.loss.is_finite() {
            return Err(Error::NonFinite { at: "loss".into(), index: 0, value: stats.loss });
        }
        model.backward_params(&self.grad_output)?;
        Ok(stats)
    }

    /// One optimisation step: forward, loss, BPTT, optimizer update.
    pub fn train_step(
        &mut self,
        model: &mut Model,
        input: &Tensor,
        labels: &[u32],
    ) -> Result<LossStats> {
        let stats = self.compute_gradients(model, input, labels)?;
        let lr = self.learning_rate();
        let mut params = model.params_mut();
        self.optimizer.step(&mut params, lr)?;
        self.step += 1;
        if let Some(ema) = &mut self.ema {
            let buffers = ema.buffers();
            ema.update(&mut |f| model.for_each_averaged(buffers, f))?;
        }
        Ok(stats)
    }
}

/// Copies `value` into the parameter or buffer `name` (`target`): same shape, finite values.
fn assign(name: &str, target: &mut Tensor, value: &Tensor) -> Result<()> {
    if target.shape() != value.shape() {
        return Err(Error::shape(name, format!("{:?}", target.shape()), value.shape()));
    }
    check_finite(name, value.data())?;
    target.copy_from(value);
    Ok(())
}
