//! 2-D convolution over time-major `[T, N, C, H, W]` activations, run on the merged batch.
use crate::energy::{Counter, SynapseCounter};
use crate::error::{Error, Result};
use crate::kernels::conv::{
    conv2d_backward_data, conv2d_backward_weight_finish, conv2d_backward_weight_range,
    conv2d_forward, WgradParts,
};
use crate::kernels::geometry::ConvGeom;
use crate::kernels::spike_conv::{
    choose_path, conv2d_backward_weight_auto, conv2d_backward_weight_spikes_finish,
    conv2d_backward_weight_spikes_range, conv2d_forward_auto, forward_budget,
    forward_event_max_density, forward_spikes, path_for, supports_events, ConvPath, SpikeStats,
    WGRAD_EVENT_MAX_DENSITY,
};
use crate::layer::{
    check_grad_output, expect_channels, AuditProbe, BackwardReads, Layer, Param, Visitor,
    VisitorMut,
};
use crate::neuron::{AfterConv, NeuronLayer};
use crate::rng::Rng;
use crate::spec::{Connect, Conv2dSpec};
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct Conv2d {
    /// `{path} (conv2d)`, the prefix of every error message.
    label: String,
    spec: Conv2dSpec,
    #[doc(hidden)]
    pub weight: Param,
    #[doc(hidden)]
    pub bias: Option<Param>,
    probe: AuditProbe,
    ops: SynapseCounter,
    /// Kernels the last forward and weight gradient ran (dense or event-driven), for tests.
    paths: [Option<ConvPath>; 2],
    /// The caller ignores the input gradient (the model's first layer during training).
    skip_input_grad: bool,
    /// Weights and bias with a following eval-mode BN folded in (`forward_inference`), reused.
    folded_weight: Vec<f32>,
    folded_bias: Vec<f32>,
    /// Inference on dense inputs: the conv output a following neuron reads, reused.
    pre_activation: Tensor,
    /// The last forward's input repeated one time step (see [`repeats_one_step`]).
    #[doc(hidden)]
    pub repeated: bool,
    /// What the last training forward measured of its whole input (binary, spike count), for
    /// the weight gradient's dispatch on that input.
    input_stats: Option<SpikeStats>,
    /// Whether a batch norm follows in training (set by the model): the forward then leaves
    /// its output's per-plane moments in `output_moments` (see `conv2d_forward_auto`).
    keep_output_moments: bool,
    /// `[T*N, C_out, 2]` moments of the last training forward's output, or empty.
    output_moments: Vec<f64>,
    /// Backward after a repeated input: `dL/dy` summed over time, reused.
    grad_sum: Vec<f32>,
}

/// Whether every time step of `[T, ...]` data holds the first one's bits (direct encoding
/// repeats the image). The conv of such an input is computed for one step, and its weight
/// gradient from `dL/dy` summed over time. Spike maps of two steps can agree over long runs
/// (silent channels), so the comparison runs in blocks whose bit differences are OR-ed
/// without a branch per value (it vectorises), stopping at the first block that differs.
#[doc(hidden)]
pub fn repeats_one_step(input: &Tensor) -> bool {
    let t_len = input.shape().first().copied().unwrap_or(0);
    if t_len < 2 {
        return false;
    }
    let data = input.data();
    let step = data.len() / t_len;
    let first = &data[..step];
    data.chunks_exact(step).skip(1).all(|c| same_bits(c, first))
}

/// Values compared per block of [`repeats_one_step`].
const SAME_BITS_BLOCK: usize = 64;

/// Whether `a` and `b` (equal lengths) hold the same bits.
fn same_bits(a: &[f32], b: &[f32]) -> bool {
    let differ = |x: &[f32], y: &[f32]| {
        x.iter().zip(y).fold(0u32, |d, (p, q)| d | (p.to_bits() ^ q.to_bits())) != 0
    };
    let (ab, bb) = (a.chunks_exact(SAME_BITS_BLOCK), b.chunks_exact(SAME_BITS_BLOCK));
    let (ar, br) = (ab.remainder(), bb.remainder());
    !ab.zip(bb).any(|(x, y)| differ(x, y)) && !differ(ar, br)
}

/// PyTorch's default init for conv and linear: kaiming-uniform with `a = sqrt(5)` reduces to
/// U(-1/sqrt(fan_in), 1/sqrt(fan_in)), the same bound as the bias.
#[doc(hidden)]
pub fn uniform_init(rng: &mut Rng, shape: &[usize], fan_in: usize) -> Tensor {
    let bound = 1.0 / (fan_in as f32).sqrt();
    let n = crate::tensor::numel(shape);
    let data = (0..n).map(|_| rng.uniform_range(-bound, bound)).collect();
    Tensor::from_vec(shape, data).expect("length matches shape")
}

impl Conv2d {
    /// Weight `[C_out, C_in/groups, kh, kw]` is drawn first, then the bias, from `rng`.
    pub fn new(name: &str, spec: &Conv2dSpec, rng: &mut Rng) -> Result<Self> {
        let label = format!("{name} (conv2d)");
        let s = spec;
        if s.in_channels == 0 || s.out_channels == 0 {
            return Err(Error::spec(&label, "inChannels and outChannels must be positive"));
        }
        if s.kernel_size.contains(&0) || s.stride.contains(&0) || s.dilation.contains(&0) {
            return Err(Error::spec(&label, format!(
                "kernelSize, stride and dilation must be positive, got kernelSize {:?}, stride {:?}, dilation {:?}",
                s.kernel_size, s.stride, s.dilation
            )));
        }
        if s.groups == 0
            || !s.in_channels.is_multiple_of(s.groups)
            || !s.out_channels.is_multiple_of(s.groups)
        {
            return Err(Error::spec(
                &label,
                format!(
                    "groups ({}) must divide inChannels ({}) and outChannels ({})",
                    s.groups, s.in_channels, s.out_channels
                ),
            ));
        }
        let fan_in = s.in_channels / s.groups * s.kernel_size[0] * s.kernel_size[1];
        let wshape = [s.out_channels, s.in_channels / s.groups, s.kernel_size[0], s.kernel_size[1]];
        let weight = Param::new(format!("{name}.weight"), uniform_init(rng, &wshape, fan_in), true);
        let bias = s.bias.then(|| {
            Param::new(format!("{name}.bias"), uniform_init(rng, &[s.out_channels], fan_in), false)
        });
        Ok(Conv2d {
            label,
            spec: spec.clone(),
            weight,
            bias,
            probe: AuditProbe::default(),
            ops: SynapseCounter::default(),
            paths: [None, None],
            skip_input_grad: false,
            folded_weight: Vec::new(),
            folded_bias: Vec::new(),
            pre_activation: Tensor::default(),
            repeated: false,
            input_stats: None,
            keep_output_moments: false,
            output_moments: Vec::new(),
            grad_sum: Vec::new(),
        })
    }

    pub fn spec(&self) -> &Conv2dSpec {
        &self.spec
    }

    /// The geometry of a backward pass, after checking `grad_output` against the forward
    /// `output`; `true` when that output is one step (after `forward_one_step`), its gradient
    /// summed over time.
    fn backward_geometry(
        &self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
    ) -> Result<(ConvGeom, bool)> {
        let g = self.geometry(input.shape())?;
        check_grad_output(&self.label, output.shape(), grad_output.shape())?;
        let t_len = input.shape()[0];
        let summed = self.repeated && t_len > 1 && output.shape()[0] == 1;
        let expected = [if summed { 1 } else { t_len }, input.shape()[1], g.c_out, g.oh, g.ow];
        check_grad_output(&self.label, &expected, grad_output.shape())?;
        Ok((g, summed))
    }

    /// Geometry for a `[T, N, C, H, W]` input, or a shape error naming the layer.
    pub fn geometry(&self, input: &[usize]) -> Result<ConvGeom> {
        let s = &self.spec;
        let what = format!("[T, N, {}, H, W]", s.in_channels);
        expect_channels(&self.label, input, 3, s.in_channels, &what)?;
        ConvGeom::new(
            s.in_channels,
            s.out_channels,
            input[3],
            input[4],
            s.kernel_size,
            s.stride,
            s.padding,
            s.dilation,
            s.groups,
        )
        .ok_or_else(|| {
            let span = |a: usize| s.dilation[a] * (s.kernel_size[a] - 1) + 1;
            Error::shape(
                &self.label,
                format!(
                    "[T, N, {}, H, W] with H >= {} and W >= {} (kernel larger than the padded input)",
                    s.in_channels,
                    span(0).saturating_sub(2 * s.padding[0]),
                    span(1).saturating_sub(2 * s.padding[1])
                ),
                input,
            )
        })
    }

    /// Asks the training forward for its output's per-plane moments (a batch norm follows).
    pub(crate) fn keep_output_moments(&mut self, keep: bool) {
        self.keep_output_moments = keep;
        self.output_moments.clear();
    }

    /// The `[T*N, C_out, 2]` per-plane moments of the last forward's output if it kept them
    /// and that output has `shape`.
    pub(crate) fn output_moments(&self, shape: &[usize]) -> Option<&[f64]> {
        let planes = shape.get(..3).map_or(0, |s| s.iter().product::<usize>());
        (shape.len() == 5
            && !self.output_moments.is_empty()
            && self.output_moments.len() == planes * 2)
            .then_some(&self.output_moments[..])
    }

    /// Training forward of the model's first conv on a directly encoded input (one time step
    /// repeated, whose gradient the model only uses summed over time): only that step's output
    /// `[1, N, C_out, OH, OW]` is written, and true is returned. The layers after it treat it
    /// as every step (`Sequential` does so for a BN + neuron pair); backward then takes `dL/dy`
    /// summed over time in the same shape and leaves the input gradient summed over time on
    /// the first step (zeros on the others). On any other input, the plain forward and false.
    pub(crate) fn forward_one_step(&mut self, input: &Tensor, output: &mut Tensor) -> Result<bool> {
        self.forward_impl(input, output, None, true)?;
        Ok(output.shape().first() != input.shape().first())
    }

    pub fn weight(&self) -> &Param {
        &self.weight
    }
    pub fn bias(&self) -> Option<&Param> {
        self.bias.as_ref()
    }

    /// The forward pass, optionally followed by a per-output-channel affine folded into the
    /// weights and bias (`W*scale`, `b*scale + shift`: the arithmetic of `fold.rs`). The energy
    /// counter sees the input and the layer's own ops either way (a folded BN costs nothing).
    /// With `one_step`, an input repeating one time step gets that step's output only
    /// (`[1, N, ...]`; see [`Conv2d::forward_one_step`]).
    fn forward_impl(
        &mut self,
        input: &Tensor,
        output: &mut Tensor,
        affine: Option<(&[f32], &[f32])>,
        one_step: bool,
    ) -> Result<()> {
        let g = self.prepare(input, affine)?;
        let (t_len, n) = (input.shape()[0], input.shape()[1]);
        self.repeated = repeats_one_step(input);
        let one_step = one_step && self.repeated;
        output.resize_for_overwrite(&[if one_step { 1 } else { t_len }, n, g.c_out, g.oh, g.ow]);
        let steps = if self.repeated { 1 } else { t_len };
        // A repeated input's output copied to every step: its BN takes its own statistics
        // (the one step of `one_step` is the BN's input as it is, so its moments are kept).
        let mut moments = std::mem::take(&mut self.output_moments);
        moments.clear();
        let keep = self.keep_output_moments && affine.is_none() && (!self.repeated || one_step);
        let (weight, bias) = self.weights(affine.is_some());
        let (x, y) = (input.data(), output.data_mut());
        let (x_len, y_len) = (x.len() / t_len.max(1) * steps, n * g.c_out * g.oh * g.ow * steps);
        if keep {
            moments.resize(y_len / (g.oh * g.ow).max(1) * 2, 0.0);
        }
        // Spike inputs below the measured crossover density take the event-driven kernel; an
        // input that went dense last step is measured before the event kernel is tried.
        let measure_first = self.paths[0] == Some(ConvPath::Dense);
        let (path, stats) = conv2d_forward_auto(
            &g,
            &x[..x_len],
            weight,
            bias,
            &mut y[..y_len],
            measure_first,
            keep.then_some(&mut moments[..]),
        );
        self.output_moments = moments;
        self.paths[0] = Some(path);
        // Kept for the weight gradient's dispatch only where they cover the input it will see.
        self.input_stats = stats.filter(|_| steps == t_len || one_step);
        if self.repeated && !one_step {
            let (first, rest) = y.split_at_mut(y_len);
            // In pieces over the pool: the copies are large, and one thread's memcpy of them
            // would take most of the stem's forward.
            use rayon::prelude::*;
            const PIECE: usize = 1 << 16;
            rest.par_chunks_mut(PIECE).enumerate().for_each(|(k, piece)| {
                // Element i of `rest` is element i % y_len of the first step.
                let start = k * PIECE % y_len;
                let (head, tail) = piece.split_at_mut((y_len - start).min(piece.len()));
                head.copy_from_slice(&first[start..start + head.len()]);
                for chunk in tail.chunks_mut(y_len) {
                    chunk.copy_from_slice(&first[..chunk.len()]);
                }
            });
        }
        Ok(())
    }

    /// Inference (no backward follows): this conv, with a following eval-mode BN's `affine`
    /// folded in if given, then `neuron` if given. Where the input is spikes sparse enough for
    /// the event-driven kernel, the neuron consumes each sample's pre-activation in cache
    /// (`neuron::kernel::forward_conv_events`); otherwise the conv output goes through a
    /// scratch tensor. `output` is the neuron's output (the conv's without a neuron).
    /// `join` asks for a residual block's join of that output with a shortcut (see
    /// `NeuronLayer::forward_after_conv`); Some(sum of the output) when it was done, None
    /// when `output` holds the spikes (or the conv's output) and the caller joins.
    pub(crate) fn forward_inference(
        &mut self,
        input: &Tensor,
        output: &mut Tensor,
        affine: Option<(&[f32], &[f32])>,
        neuron: Option<&mut NeuronLayer>,
        join: Option<(Connect, &Tensor)>,
    ) -> Result<Option<f64>> {
        if let Some((scale, shift)) = affine {
            let c = self.spec.out_channels;
            if scale.len() != c || shift.len() != c {
                return Err(Error::shape(
                    &self.label,
                    format!("a following batchNorm2d over {c} channels"),
                    &[scale.len()],
                ));
            }
        }
        let Some(neuron) = neuron else {
            return self.forward_impl(input, output, affine, false).map(|()| None);
        };
        let g = self.prepare(input, affine)?;
        self.input_stats = None;
        self.output_moments.clear();
        let (weight, bias) = self.weights(affine.is_some());
        // As in training: an input that went dense last call is measured before the event
        // kernel is tried, instead of being found out part way through it.
        let measure_first = self.paths[0] == Some(ConvPath::Dense);
        let events = supports_events(&g)
            && input.shape()[0] > 0
            && (!measure_first
                || choose_path(&g, input.data(), forward_event_max_density(&g))
                    == ConvPath::Events);
        if events {
            let budget = forward_budget(&g, input.data());
            match neuron.forward_after_conv(&g, input, weight, bias, output, &budget, join)? {
                AfterConv::Unfit => {}
                done => {
                    self.paths[0] = Some(ConvPath::Events);
                    return Ok(match done {
                        AfterConv::Joined(sum) => Some(sum),
                        _ => None,
                    });
                }
            }
        }
        self.paths[0] = Some(ConvPath::Dense);
        // A static input (direct encoding repeats the image at every step) is convolved once.
        let (t_len, n) = (input.shape()[0], input.shape()[1]);
        let step = input.numel() / t_len.max(1);
        let data = input.data();
        let repeated = repeats_one_step(input);
        self.repeated = repeated;
        let steps = if repeated { 1 } else { t_len };
        let mut pre = std::mem::take(&mut self.pre_activation);
        pre.resize_for_overwrite(&[steps, n, g.c_out, g.oh, g.ow]);
        let (weight, bias) = self.weights(affine.is_some());
        conv2d_forward(&g, &data[..steps * step], weight, bias, pre.data_mut());
        let r = if repeated {
            neuron.forward_repeated(&pre, t_len, output)
        } else {
            neuron.forward(&pre, output, false)
        };
        self.pre_activation = pre;
        r.map(|()| None)
    }

    /// Checks the input, counts the ops, and folds `affine` into the weights if given.
    fn prepare(&mut self, input: &Tensor, affine: Option<(&[f32], &[f32])>) -> Result<ConvGeom> {
        self.probe.observe(input.data());
        let g = self.geometry(input.shape())?;
        let outputs = (g.c_out * g.oh * g.ow) as u64;
        let bias_ops = if self.bias.is_some() { outputs } else { 0 };
        self.ops.observe(input, (g.kh * g.kw * g.c_in / g.groups) as u64 * outputs, bias_ops);
        if let Some((scale, shift)) = affine {
            let w = self.weight.value.data();
            let per_out = w.len() / g.c_out;
            self.folded_weight.clear();
            self.folded_weight.extend(w.iter().enumerate().map(|(k, &v)| v * scale[k / per_out]));
            self.folded_bias.clear();
            let bias = self.bias.as_ref().map(|b| b.value.data());
            self.folded_bias
                .extend((0..g.c_out).map(|co| shift[co] + bias.map_or(0.0, |b| b[co] * scale[co])));
        }
        Ok(g)
    }

    /// Training forward of whole time steps `x` of the last training forward's input, through
    /// the kernel that forward ran (an event-driven or a dense kernel sums in its own order,
    /// and a window of steps may have another density than the whole): the same bits as
    /// those steps of that forward's output. Not for a repeated input (`forward_one_step`).
    pub(crate) fn forward_steps(&self, x: &Tensor, y: &mut Tensor) -> Result<()> {
        let g = self.geometry(x.shape())?;
        y.resize_for_overwrite(&[x.shape()[0], x.shape()[1], g.c_out, g.oh, g.ow]);
        let (weight, bias) = self.weights(false);
        match self.paths[0] {
            Some(ConvPath::Events) => {
                forward_spikes(&g, x.data(), weight, bias, y.data_mut(), None, None);
            }
            _ => conv2d_forward(&g, x.data(), weight, bias, y.data_mut()),
        }
        Ok(())
    }

    /// For a training forward run only chunk by chunk of time steps ([`Self::forward_steps`]):
    /// records the kernel the forward over the whole input of `shape` would take, `stats` that
    /// input's [`SpikeStats`] (the event kernel's choice depends on the whole input's density
    /// alone, see `conv2d_forward_auto`), and the stats for the weight gradient. False (nothing
    /// recorded) where counters watch the forward's input (they see it whole, once per call).
    pub(crate) fn plan_steps(&mut self, shape: &[usize], stats: SpikeStats) -> Result<bool> {
        if self.ops.is_on() || self.probe.is_on() {
            return Ok(false);
        }
        let g = self.geometry(shape)?;
        let events = supports_events(&g)
            && path_for(stats, forward_event_max_density(&g)) == ConvPath::Events;
        self.paths[0] = Some(if events { ConvPath::Events } else { ConvPath::Dense });
        self.input_stats = Some(stats);
        self.repeated = false;
        self.output_moments.clear();
        Ok(true)
    }

    /// The weight-gradient kernel [`Layer::backward`] would take for the whole input of
    /// `shape` (`[T, N, ...]`), `stats` its [`SpikeStats`] (measured again by that backward
    /// where the forward did not keep them), recorded as that backward records it.
    pub(crate) fn wgrad_path(&mut self, shape: &[usize], stats: SpikeStats) -> Result<ConvPath> {
        let g = self.geometry(shape)?;
        let known = self.input_stats.take().filter(|s| s.len == stats.len);
        let path = match known {
            Some(s) if supports_events(&g) => path_for(s, WGRAD_EVENT_MAX_DENSITY),
            _ if supports_events(&g) => path_for(stats, WGRAD_EVENT_MAX_DENSITY),
            _ => ConvPath::Dense,
        };
        self.paths[1] = Some(path);
        Ok(path)
    }

    /// The weight gradient of whole time steps (`x`, `dy`; planes from `a` of the batch) into
    /// `parts`, through `path` ([`Self::wgrad_path`]).
    pub(crate) fn wgrad_steps(
        &self,
        path: ConvPath,
        x: &Tensor,
        dy: &Tensor,
        a: usize,
        parts: &mut WgradParts,
    ) -> Result<()> {
        let g = self.geometry(x.shape())?;
        let bias = self.bias.is_some();
        match path {
            ConvPath::Events => {
                conv2d_backward_weight_spikes_range(&g, x.data(), dy.data(), a, bias, parts)
            }
            ConvPath::Dense => {
                conv2d_backward_weight_range(&g, x.data(), dy.data(), a, bias, parts)
            }
        }
        Ok(())
    }

    /// Adds the weight gradient [`Self::wgrad_steps`] collected (`shape`: one step's input).
    pub(crate) fn wgrad_finish(
        &mut self,
        path: ConvPath,
        shape: &[usize],
        parts: &WgradParts,
    ) -> Result<()> {
        let g = self.geometry(shape)?;
        let (gw, gb) = (self.weight.grad.data_mut(), self.bias.as_mut().map(|b| b.grad.data_mut()));
        match path {
            ConvPath::Events => conv2d_backward_weight_spikes_finish(&g, parts, gw, gb),
            ConvPath::Dense => conv2d_backward_weight_finish(&g, parts, gw, gb),
        }
        Ok(())
    }

    /// The input gradient of whole time steps from their output gradient `dy`.
    pub(crate) fn backward_data_steps(
        &self,
        x_shape: &[usize],
        dy: &Tensor,
        dx: &mut Tensor,
    ) -> Result<()> {
        let g = self.geometry(x_shape)?;
        dx.resize_for_overwrite(x_shape);
        conv2d_backward_data(&g, dy.data(), self.weight.value.data(), dx.data_mut());
        Ok(())
    }

    /// Whether the layer skips its input gradient.
    pub(crate) fn skips_input_grad(&self) -> bool {
        self.skip_input_grad
    }

    /// The weights and bias to run with: the folded ones after [`Self::prepare`] with an affine.
    fn weights(&self, folded: bool) -> (&[f32], Option<&[f32]>) {
        if folded {
            (&self.folded_weight, Some(&self.folded_bias))
        } else {
            (self.weight.value.data(), self.bias.as_ref().map(|b| b.value.data()))
        }
    }

    /// Kernels the last forward and backward ran (None before the first call).
    pub fn last_paths(&self) -> [Option<ConvPath>; 2] {
        self.paths
    }
}

impl Layer for Conv2d {
    /// The weight gradient reads the input; nothing reads the output.
    fn backward_reads(&self) -> BackwardReads {
        BackwardReads { input: true, output: false }
    }

    fn name(&self) -> &str {
        &self.label
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let g = self.geometry(input)?;
        Ok(vec![input[0], input[1], g.c_out, g.oh, g.ow])
    }

    fn forward(&mut self, input: &Tensor, output: &mut Tensor, _training: bool) -> Result<()> {
        self.forward_impl(input, output, None, false)
    }

    fn skip_input_grad(&mut self, skip: bool) {
        self.skip_input_grad = skip;
    }

    fn backward(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        grad_input: &mut Tensor,
    ) -> Result<()> {
        let (g, summed) = self.backward_geometry(input, output, grad_output)?;
        let t_len = input.shape()[0];
        grad_input.resize_for_overwrite(input.shape());
        if summed && !self.skip_input_grad {
            let (first, rest) = grad_input.data_mut().split_at_mut(input.numel() / t_len);
            crate::profile::span("kernel: conv backward-data", || {
                conv2d_backward_data(&g, grad_output.data(), self.weight.value.data(), first)
            });
            rest.fill(0.0);
        } else if !self.skip_input_grad {
            crate::profile::span("kernel: conv backward-data", || {
                conv2d_backward_data(
                    &g,
                    grad_output.data(),
                    self.weight.value.data(),
                    grad_input.data_mut(),
                )
            });
        }
        let (x, dy) = if summed {
            (&input.data()[..input.numel() / t_len], grad_output.data())
        } else if self.repeated && repeats_one_step(input) {
            // sum_t dY_t (x) X_t = (sum_t dY_t) (x) X_0 when every X_t is X_0.
            let dy_step = grad_output.numel() / t_len;
            self.grad_sum.clear();
            self.grad_sum.extend_from_slice(&grad_output.data()[..dy_step]);
            for step in grad_output.data().chunks_exact(dy_step).skip(1) {
                self.grad_sum.iter_mut().zip(step).for_each(|(s, &d)| *s += d);
            }
            (&input.data()[..input.numel() / t_len], &self.grad_sum[..])
        } else {
            (input.data(), grad_output.data())
        };
        let known = self.input_stats.take().filter(|s| s.len == x.len());
        self.paths[1] = Some(crate::profile::span("kernel: conv backward-weight", || {
            conv2d_backward_weight_auto(
                &g,
                x,
                dy,
                self.weight.grad.data_mut(),
                self.bias.as_mut().map(|b| b.grad.data_mut()),
                known,
            )
        }));
        Ok(())
    }

    fn visit(&self, visitor: &mut dyn Visitor) {
        visitor.audit(&self.label, &self.probe);
    }

    fn visit_mut<'a>(&'a mut self, visitor: &mut dyn VisitorMut<'a>) {
        visitor.param(&mut self.weight);
        if let Some(b) = self.bias.as_mut() {
            visitor.param(b);
        }
        let name = self.label.trim_end_matches(" (conv2d)").to_string();
        visitor.counter(Counter::Synapse { name, kind: "conv2d", counter: &mut self.ops });
        visitor.audit_probe(&mut self.probe);
    }
}
