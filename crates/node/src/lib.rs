//! N-API binding of dualstream-core. Thin by design: a model spec (JSON) and typed arrays come
//! in, Promises of plain objects go out. Heavy calls run on the libuv thread pool (AsyncTask),
//! one call per batch. Engine errors become JS Errors whose `code` property is the engine's
//! error code (`ERR_SHAPE`, ...); panics are caught here and never unwind into Node.
// napi-rs registers the exports only outside test builds; the binding is tested from JavaScript.
#![cfg_attr(test, allow(dead_code))]
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};

use dualstream_core::loss::LossSpec;
use dualstream_core::model::{AuditReport, InferenceMode, Model, Trainer};
use dualstream_core::optim::schedule::ScheduleSpec;
use dualstream_core::optim::{Ema, EmaSpec, OptimizerSpec};
use dualstream_core::spec::ModelSpec;
use dualstream_core::Tensor;
use napi::bindgen_prelude::*;
use napi_derive::napi;

mod data;
mod energy;
mod frames;

/// The `code` property of the JS errors the binding throws: `ERR_SHAPE`, `ERR_ARG`, ...
pub struct Code(&'static str);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        self.0
    }
}

/// The result of a binding call. napi-rs creates the JS error with the status string as its
/// `code`, so the error's status is the engine's code.
pub type Result<T> = std::result::Result<T, napi::Error<Code>>;

fn to_js(err: dualstream_core::Error) -> napi::Error<Code> {
    napi::Error::new(Code(err.code()), err.to_string())
}

fn js_error(code: &'static str, message: impl std::fmt::Display) -> napi::Error<Code> {
    napi::Error::new(Code(code), message.to_string())
}

/// Work for the libuv thread pool whose errors carry a [`Code`]. napi-rs's [`Task`] reports
/// errors with a fixed status, so [`Coded`] creates the JS error itself.
pub trait CodedTask: Send + Sized {
    type Output: Send + Sized + 'static;
    type JsValue: ToNapiValue + TypeName;
    fn compute(&mut self) -> Result<Self::Output>;
    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<Self::JsValue>;
}

/// Runs a [`CodedTask`] as a napi-rs [`Task`], rejecting with an Error whose `code` is the
/// task's.
pub struct Coded<T> {
    task: T,
    failure: Option<napi::Error<Code>>,
}

/// A Promise of `task`'s result.
fn coded<T: CodedTask>(task: T) -> AsyncTask<Coded<T>> {
    AsyncTask::new(Coded { task, failure: None })
}

/// The JS Error for `err`, as a napi error that carries it unchanged to the Promise.
fn js_error_value(env: Env, err: napi::Error<Code>) -> napi::Error {
    napi::Error::from(JsError::from(err).into_unknown(env))
}

impl<T: CodedTask> Task for Coded<T> {
    type Output = T::Output;
    type JsValue = T::JsValue;

    fn compute(&mut self) -> napi::Result<T::Output> {
        self.task.compute().map_err(|e| {
            self.failure = Some(e);
            napi::Error::from_status(Status::GenericFailure)
        })
    }

    fn resolve(&mut self, env: Env, output: T::Output) -> napi::Result<T::JsValue> {
        self.task.resolve(env, output).map_err(|e| js_error_value(env, e))
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> napi::Result<T::JsValue> {
        match self.failure.take() {
            Some(e) => Err(js_error_value(env, e)),
            None => Err(err),
        }
    }
}

/// Runs engine code, turning an engine error or a panic into a JS error.
fn guarded<T>(what: &str, f: impl FnOnce() -> dualstream_core::Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_js(e)),
        Err(panic) => {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(js_error("ERR_INTERNAL", format!("{what}: internal error in the engine: {detail}")))
        }
    }
}

struct State {
    model: Model,
    trainer: Option<Trainer>,
    /// Set when a panic interrupted a call: the weights may be half-updated.
    broken: bool,
}

type Shared = Arc<Mutex<Option<State>>>;

fn lock<'a>(shared: &'a Shared, what: &str) -> Result<MutexGuard<'a, Option<State>>> {
    let guard = shared.try_lock().map_err(|_| {
        js_error("ERR_BUSY", format!("{what}: the model is busy with another call; await it first"))
    })?;
    match guard.as_ref() {
        None => Err(js_error("ERR_DISPOSED", format!("{what}: the model has been disposed"))),
        Some(s) if s.broken => Err(js_error(
            "ERR_INTERNAL",
            format!("{what}: an earlier internal error left this model in an unknown state; build a new one"),
        )),
        Some(_) => Ok(guard),
    }
}

/// Runs `f` on the locked state on a thread of the compute pool (`dualstream_core::in_pool`),
/// marking the model broken on a panic.
fn with_state<T: Send>(
    shared: &Shared,
    what: &str,
    f: impl FnOnce(&mut State) -> dualstream_core::Result<T> + Send,
) -> Result<T> {
    let mut guard = lock(shared, what)?;
    let state = guard.as_mut().expect("checked by lock");
    let result = guarded(what, || dualstream_core::in_pool(|| f(state)));
    if let Err(e) = &result {
        if e.status.0 == "ERR_INTERNAL" {
            state.broken = true;
        }
    }
    result
}

fn tensor_from(what: &str, data: &[f32], shape: &[u32]) -> Result<Tensor> {
    let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    Tensor::from_vec(&shape, data.to_vec()).map_err(|_| {
        js_error(
            "ERR_SHAPE",
            format!(
                "{what}: expected {} values for shape {:?}, got {}",
                shape.iter().product::<usize>(),
                shape,
                data.len()
            ),
        )
    })
}

fn named_tensors(tensors: Vec<(String, Tensor)>) -> Vec<NamedTensor> {
    tensors
        .into_iter()
        .map(|(name, t)| NamedTensor {
            name,
            shape: t.shape().iter().map(|&d| d as u32).collect(),
            data: Float32Array::new(t.into_vec()),
        })
        .collect()
}

fn parse_json<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|e| js_error("ERR_SPEC", format!("{what}: {e}")))
}

#[napi(object)]
pub struct StepResult {
    pub loss: f64,
    pub correct: u32,
    pub count: u32,
    pub learning_rate: f64,
    /// Mean firing rate over all neuron layers of this step.
    pub firing_rate: f64,
    /// Per head (spike head first), unweighted; empty for a single-head model.
    pub head_losses: Vec<f64>,
    pub head_correct: Vec<u32>,
}

#[napi(object)]
pub struct EvalResult {
    pub loss: f64,
    pub correct: u32,
    pub count: u32,
    /// Time-mean output `[N, classes]`, row-major.
    pub logits: Float32Array,
    /// Mean firing rate of each neuron layer on this batch.
    pub firing_rates: Vec<LayerRate>,
}

#[napi(object)]
pub struct GradientNorm {
    pub name: String,
    pub norm: f64,
}

/// A training step's predicted peak engine bytes, `fixed + batch * perSample`.
#[napi(object)]
pub struct TrainingMemory {
    pub fixed: f64,
    pub per_sample: f64,
}

/// The engine's buffer bytes (tensors, packed spike maps, work buffers) in this process.
#[napi(object)]
pub struct EngineMemory {
    pub live: f64,
    /// The most held at once since the last reset.
    pub peak: f64,
}

#[napi(object)]
pub struct LayerRate {
    pub name: String,
    pub rate: f64,
}

#[napi(object)]
pub struct LayerShape {
    pub name: String,
    pub shape: Vec<u32>,
}

#[napi(object)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<u32>,
    pub data: Float32Array,
}

fn mean_rate(model: &Model) -> f64 {
    let rates = model.firing_rates();
    if rates.is_empty() {
        0.0
    } else {
        rates.iter().map(|(_, r)| *r as f64).sum::<f64>() / rates.len() as f64
    }
}

pub struct TrainStepTask {
    shared: Shared,
    input: Tensor,
    labels: Vec<u32>,
    /// false: gradients only, the weights stay as they are.
    update: bool,
}

impl CodedTask for TrainStepTask {
    type Output = (dualstream_core::loss::LossStats, f32, f64);
    type JsValue = StepResult;

    fn compute(&mut self) -> Result<Self::Output> {
        let (input, labels, update) = (&self.input, &self.labels, self.update);
        with_state(&self.shared, "trainStep", |s| {
            let trainer = s.trainer.as_mut().ok_or_else(|| {
                dualstream_core::Error::state(
                    "trainStep",
                    "configure training first (optimizer, schedule, loss)",
                )
            })?;
            let lr = trainer.learning_rate();
            let stats = if update {
                trainer.train_step(&mut s.model, input, labels)?
            } else {
                trainer.compute_gradients(&mut s.model, input, labels)?
            };
            Ok((stats, lr, mean_rate(&s.model)))
        })
    }

    fn resolve(&mut self, _env: Env, (stats, lr, rate): Self::Output) -> Result<StepResult> {
        Ok(StepResult {
            loss: stats.loss as f64,
            correct: stats.correct as u32,
            count: stats.count as u32,
            learning_rate: lr as f64,
            firing_rate: rate,
            head_losses: stats.heads.iter().map(|h| h.loss as f64).collect(),
            head_correct: stats.heads.iter().map(|h| h.correct as u32).collect(),
        })
    }
}

pub struct EvaluateTask {
    shared: Shared,
    input: Tensor,
    labels: Option<Vec<u32>>,
    mode: InferenceMode,
    /// Count operations and rates for the energy report (`energy.rs`).
    counting: bool,
}

impl CodedTask for EvaluateTask {
    type Output = (f32, usize, usize, Vec<f32>, Vec<(String, f32)>);
    type JsValue = EvalResult;

    fn compute(&mut self) -> Result<Self::Output> {
        let (input, labels, mode) = (&self.input, &self.labels, self.mode);
        let counting = self.counting;
        with_state(&self.shared, "evaluate", |s| {
            let loss = s.trainer.as_ref().map(|t| *t.loss()).unwrap_or_default();
            let evaluate = |m: &mut Model| m.evaluate(input, labels.as_deref(), mode, &loss);
            let e = if counting { s.model.counting(evaluate)? } else { evaluate(&mut s.model)? };
            let logits = e.logits.into_vec();
            let rates = s.model.firing_rates();
            Ok(match e.stats {
                Some(st) => (st.loss, st.correct, st.count, logits, rates),
                None => (0.0, 0, 0, logits, rates),
            })
        })
    }

    fn resolve(
        &mut self,
        _env: Env,
        (loss, correct, count, logits, rates): Self::Output,
    ) -> Result<EvalResult> {
        Ok(EvalResult {
            loss: loss as f64,
            correct: correct as u32,
            count: count as u32,
            logits: Float32Array::new(logits),
            firing_rates: rates
                .into_iter()
                .map(|(name, rate)| LayerRate { name, rate: rate as f64 })
                .collect(),
        })
    }
}

#[napi(object)]
pub struct AuditLayer {
    pub name: String,
    /// Every input value was exactly 0 or 1.
    pub binary: bool,
    /// The first non-binary input value seen, if any.
    pub example: Option<f64>,
}

#[napi(object)]
pub struct AuditResult {
    /// No synaptic layer but the stem received a non-spike value.
    pub passed: bool,
    /// The synaptic layer reading the model input (exempt).
    pub stem: Option<String>,
    pub layers: Vec<AuditLayer>,
    pub offending: Vec<AuditLayer>,
}

fn audit_layers(entries: &[dualstream_core::nn::AuditEntry]) -> Vec<AuditLayer> {
    entries
        .iter()
        .map(|e| AuditLayer {
            name: e.layer.clone(),
            binary: e.binary,
            example: e.example.map(|v| v as f64),
        })
        .collect()
}

pub struct AuditTask {
    shared: Shared,
    input: Tensor,
}

impl CodedTask for AuditTask {
    type Output = AuditReport;
    type JsValue = AuditResult;

    fn compute(&mut self) -> Result<AuditReport> {
        let input = &self.input;
        with_state(&self.shared, "audit", |s| s.model.audit(input))
    }

    fn resolve(&mut self, _env: Env, r: AuditReport) -> Result<AuditResult> {
        Ok(AuditResult {
            passed: r.passed(),
            stem: r.stem.clone(),
            layers: audit_layers(&r.layers),
            offending: audit_layers(&r.offending),
        })
    }
}

fn parse_mode(mode: Option<String>) -> Result<InferenceMode> {
    match mode.as_deref() {
        None | Some("fsnn") => Ok(InferenceMode::Fsnn),
        Some("dsnn") => Ok(InferenceMode::Dsnn),
        Some(other) => Err(js_error(
            "ERR_ARG",
            format!("evaluate mode: expected \"fsnn\" or \"dsnn\", received {other:?}"),
        )),
    }
}

/// A model built from a spec, with its training state.
#[napi]
pub struct NativeModel {
    shared: Shared,
}

#[napi]
impl NativeModel {
    /// Builds a model from a JSON `ModelSpec`, with weights drawn from `seed`.
    #[napi(constructor)]
    pub fn new(spec_json: String, seed: u32) -> Result<Self> {
        let spec: ModelSpec = parse_json("model spec", &spec_json)?;
        let model = guarded("build model", || Model::from_spec(&spec, seed as u64))?;
        Ok(NativeModel {
            shared: Arc::new(Mutex::new(Some(State { model, trainer: None, broken: false }))),
        })
    }

    /// Sets the optimizer, schedule, loss and (`ema_json`, `{ "decay": x }`) the weight
    /// average from JSON; resets the optimizer state and the average.
    #[napi]
    pub fn configure_training(
        &self,
        optimizer_json: String,
        schedule_json: String,
        loss_json: String,
        ema_json: Option<String>,
    ) -> Result<()> {
        let optimizer: OptimizerSpec = parse_json("optimizer", &optimizer_json)?;
        let schedule: ScheduleSpec = parse_json("schedule", &schedule_json)?;
        let loss: LossSpec = parse_json("loss", &loss_json)?;
        let ema: Option<EmaSpec> = ema_json.map(|j| parse_json("ema", &j)).transpose()?;
        with_state(&self.shared, "configureTraining", |s| {
            let ema = ema.as_ref().map(Ema::new).transpose()?;
            s.trainer = Some(Trainer::new(&optimizer, &schedule, &loss)?.with_ema(ema));
            Ok(())
        })
    }

    /// Puts the weight average into the model (`true`) or the trained weights back (`false`);
    /// nothing happens without an average. Training steps put the trained weights back.
    #[napi]
    pub fn show_average(&self, on: bool) -> Result<()> {
        with_state(&self.shared, "showAverage", |s| match s.trainer.as_mut() {
            Some(t) => t.show_average(&mut s.model, on),
            None => Ok(()),
        })
    }

    /// One training step on a batch: forward over T, loss, BPTT, optimizer update. With
    /// `update` false the weights stay as they are (gradients only, for gradient studies; then
    /// read `gradientNorms()`).
    #[napi(ts_return_type = "Promise<StepResult>")]
    pub fn train_step(
        &self,
        input: Float32Array,
        input_shape: Vec<u32>,
        labels: Uint32Array,
        update: Option<bool>,
    ) -> Result<AsyncTask<Coded<TrainStepTask>>> {
        let input = tensor_from("input", &input, &input_shape)?;
        Ok(coded(TrainStepTask {
            shared: self.shared.clone(),
            input,
            labels: labels.to_vec(),
            update: update.unwrap_or(true),
        }))
    }

    /// L2 norms of the gradients at each dual-stream stage's outputs (O and A) in the last backward.
    #[napi]
    pub fn gradient_norms(&self) -> Result<Vec<GradientNorm>> {
        with_state(&self.shared, "gradientNorms", |s| {
            Ok(s.model
                .gradient_norms()
                .into_iter()
                .map(|(name, norm)| GradientNorm { name, norm: norm as f64 })
                .collect())
        })
    }

    /// Eval-mode forward of a batch as `mode` (`fsnn`, the default: no accumulation pathway,
    /// spike head; `dsnn`: accumulation head): time-mean logits, and loss/accuracy when labels
    /// are given. With `counting` the energy counters are on; counts add up over calls until
    /// `resetEnergy`.
    #[napi(ts_return_type = "Promise<EvalResult>")]
    pub fn evaluate(
        &self,
        input: Float32Array,
        input_shape: Vec<u32>,
        labels: Option<Uint32Array>,
        mode: Option<String>,
        counting: Option<bool>,
    ) -> Result<AsyncTask<Coded<EvaluateTask>>> {
        let mode = parse_mode(mode)?;
        let input = tensor_from("input", &input, &input_shape)?;
        Ok(coded(EvaluateTask {
            shared: self.shared.clone(),
            input,
            labels: labels.map(|l| l.to_vec()),
            mode,
            counting: counting.unwrap_or(false),
        }))
    }

    /// Full-spike audit of one batch (see `Model::audit`).
    #[napi(ts_return_type = "Promise<AuditResult>")]
    pub fn audit(
        &self,
        input: Float32Array,
        input_shape: Vec<u32>,
    ) -> Result<AsyncTask<Coded<AuditTask>>> {
        let input = tensor_from("input", &input, &input_shape)?;
        Ok(coded(AuditTask { shared: self.shared.clone(), input }))
    }

    /// The deployable full-spike model (no accumulation pathway), with copies of the weights.
    #[napi]
    pub fn to_full_spike(&self) -> Result<NativeModel> {
        let model = with_state(&self.shared, "toFullSpike", |s| s.model.to_full_spike())?;
        Ok(NativeModel {
            shared: Arc::new(Mutex::new(Some(State { model, trainer: None, broken: false }))),
        })
    }

    /// Heads side by side in the training output (2 for a dual-stream model).
    #[napi]
    pub fn heads(&self) -> Result<u32> {
        with_state(&self.shared, "heads", |s| Ok(s.model.heads() as u32))
    }

    /// Mean firing rate of each neuron layer in the last forward.
    #[napi]
    pub fn firing_rates(&self) -> Result<Vec<LayerRate>> {
        with_state(&self.shared, "firingRates", |s| {
            Ok(s.model
                .firing_rates()
                .into_iter()
                .map(|(name, rate)| LayerRate { name, rate: rate as f64 })
                .collect())
        })
    }

    /// Training memory mode: "default" keeps what BPTT reads, "recompute" keeps only block
    /// (segment) inputs and runs each segment's forward again in the backward pass.
    #[napi]
    pub fn set_memory_mode(&self, mode: String) -> Result<()> {
        let lean = memory_lean(&mode)?;
        with_state(&self.shared, "setMemoryMode", |s| {
            s.model.set_memory_lean(lean);
            Ok(())
        })
    }

    /// A training step's peak engine bytes in memory mode `mode` ("default" or
    /// "recompute"), as `fixed + batch * perSample`, from the engine's byte counters over
    /// training steps at batch 1 and 2. The weights do not change; BN running statistics are
    /// restored.
    #[napi]
    pub fn predict_training_memory(&self, mode: String) -> Result<TrainingMemory> {
        let lean = memory_lean(&mode)?;
        with_state(&self.shared, "predictTrainingMemory", |s| {
            let m = dualstream_core::training_memory::predict(&mut s.model, lean)?;
            Ok(TrainingMemory { fixed: m.fixed as f64, per_sample: m.per_sample as f64 })
        })
    }

    /// Bytes the last training forward kept for the backward pass.
    #[napi]
    pub fn stored_bytes(&self) -> Result<f64> {
        with_state(&self.shared, "storedBytes", |s| Ok(s.model.stored_bytes() as f64))
    }

    #[napi]
    pub fn parameter_count(&self) -> Result<u32> {
        with_state(&self.shared, "parameterCount", |s| Ok(s.model.parameter_count() as u32))
    }

    /// All parameters and buffers (BN running statistics), copied out.
    #[napi]
    pub fn state_tensors(&self) -> Result<Vec<NamedTensor>> {
        let tensors = with_state(&self.shared, "stateTensors", |s| Ok(s.model.state_tensors()))?;
        Ok(named_tensors(tensors))
    }

    /// Sets one parameter or buffer by name.
    #[napi]
    pub fn set_tensor(&self, name: String, shape: Vec<u32>, data: Float32Array) -> Result<()> {
        let t = tensor_from(&name, &data, &shape)?;
        with_state(&self.shared, "setTensor", |s| s.model.set_tensor(&name, &t))
    }

    /// The trainer's resume state: schedule position and optimizer buffers/step count, copied out
    /// (empty before `configureTraining`).
    #[napi]
    pub fn trainer_state(&self) -> Result<Vec<NamedTensor>> {
        let tensors = with_state(&self.shared, "trainerState", |s| {
            Ok(s.trainer.as_ref().map(|t| t.state()).unwrap_or_default())
        })?;
        Ok(named_tensors(tensors))
    }

    /// Restores a `trainerState()` into the configured trainer (same optimizer kind).
    #[napi]
    pub fn set_trainer_state(&self, tensors: Vec<NamedTensor>) -> Result<()> {
        let mut state = Vec::with_capacity(tensors.len());
        for t in &tensors {
            state.push((t.name.clone(), tensor_from(&t.name, &t.data, &t.shape)?));
        }
        with_state(&self.shared, "setTrainerState", |s| {
            let trainer = s.trainer.as_mut().ok_or_else(|| {
                dualstream_core::Error::state(
                    "setTrainerState",
                    "configure training first (optimizer, schedule, loss)",
                )
            })?;
            trainer.load_state(&state)
        })
    }

    /// Each top-level layer's name and output shape per sample and time step.
    #[napi]
    pub fn layer_shapes(&self) -> Result<Vec<LayerShape>> {
        with_state(&self.shared, "layerShapes", |s| {
            Ok(s.model
                .layer_shapes()?
                .into_iter()
                .map(|(name, shape)| LayerShape {
                    name,
                    shape: shape.iter().map(|&d| d as u32).collect(),
                })
                .collect())
        })
    }

    #[napi]
    pub fn spec_json(&self) -> Result<String> {
        with_state(&self.shared, "spec", |s| {
            serde_json::to_string(s.model.spec())
                .map_err(|e| dualstream_core::Error::spec("spec", e.to_string()))
        })
    }

    /// Frees the weights now; later calls fail with ERR_DISPOSED.
    #[napi]
    pub fn dispose(&self) -> Result<()> {
        let mut guard = self.shared.try_lock().map_err(|_| {
            js_error("ERR_BUSY", "dispose: the model is busy with another call; await it first")
        })?;
        *guard = None;
        Ok(())
    }

    #[napi(getter)]
    pub fn disposed(&self) -> bool {
        self.shared.try_lock().map(|g| g.is_none()).unwrap_or(false)
    }
}

/// Whether memory mode `mode` is the memory-lean one.
fn memory_lean(mode: &str) -> Result<bool> {
    match mode {
        "default" => Ok(false),
        "recompute" => Ok(true),
        other => Err(to_js(dualstream_core::Error::value(
            "memory",
            "\"default\" or \"recompute\"",
            format!("\"{other}\""),
        ))),
    }
}

/// The engine's buffer bytes now and at their peak; `resetPeak` starts a new peak afterwards.
#[napi]
pub fn engine_memory(reset_peak: bool) -> EngineMemory {
    use dualstream_core::tensor::memory;
    let m = EngineMemory { live: memory::live_bytes() as f64, peak: memory::peak_bytes() as f64 };
    if reset_peak {
        memory::reset_peak();
    }
    m
}

/// Test hook: panics inside the guarded engine call path, to prove panics become JS errors.
#[napi]
pub fn debug_panic(message: String) -> Result<()> {
    guarded("debugPanic", || -> dualstream_core::Result<()> { panic!("{message}") })
}

#[napi]
pub fn engine_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
