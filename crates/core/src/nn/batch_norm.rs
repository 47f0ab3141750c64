//! BatchNorm2d over `[T, N, C, H, W]`: statistics over T, N, H and W together, as SpikingJelly's
//! multi-step BatchNorm2d does on the merged `[T*N, C, H, W]` view.
use crate::error::{Error, Result};
use crate::kernels::batch_norm::{
    affine, backward_input, backward_input_in_place, backward_sums, backward_sums_unpooled,
    channel_stats, scale_shift, stats_from_moments, ChannelAffine,
};
use crate::kernels::geometry::PoolGeom;
use crate::layer::check_grad_output;
use crate::layer::{expect_sample_rank, Buffer, Layer, Param, VisitorMut};
use crate::neuron::kernel::BnGrad;
use crate::spec::BatchNormSpec;
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct BatchNorm2d {
    label: String,
    spec: BatchNormSpec,
    #[doc(hidden)]
    pub weight: Param,
    #[doc(hidden)]
    pub bias: Param,
    #[doc(hidden)]
    pub running_mean: Tensor,
    #[doc(hidden)]
    pub running_var: Tensor,
    /// Statistics the last forward normalised with (batch or running), for backward.
    mean: Vec<f32>,
    invstd: Vec<f32>,
    /// Per-channel work vectors, kept so that no batch allocates.
    var: Vec<f32>,
    scale: Vec<f32>,
    shift: Vec<f32>,
    sum_dy: Vec<f64>,
    sum_dy_xc: Vec<f64>,
    coef: [Vec<f32>; 3],
    /// Input shape of the last forward and whether it used batch statistics.
    last: Option<(Vec<usize>, bool)>,
}

/// The checks both batch norms make on their spec: a channel count, eps, momentum, initWeight.
pub(crate) fn check_spec(label: &str, spec: &BatchNormSpec) -> Result<()> {
    if spec.num_features == 0 {
        return Err(Error::spec(label, "numFeatures must be positive"));
    }
    if !(spec.eps.is_finite() && spec.eps > 0.0) {
        return Err(Error::value(label, "eps > 0", spec.eps));
    }
    if !(0.0..=1.0).contains(&spec.momentum) {
        return Err(Error::value(label, "momentum in [0, 1]", spec.momentum));
    }
    if !spec.init_weight.is_finite() {
        return Err(Error::value(label, "a finite initWeight", spec.init_weight));
    }
    Ok(())
}

impl BatchNorm2d {
    pub fn new(name: &str, spec: &BatchNormSpec) -> Result<Self> {
        let label = format!("{name} (batchNorm2d)");
        let c = spec.num_features;
        check_spec(&label, spec)?;
        if !spec.affine && spec.init_weight != 1.0 {
            return Err(Error::spec(
                &label,
                format!(
                    "affine: false has no weight to initialise, got initWeight {}",
                    spec.init_weight
                ),
            ));
        }
        Ok(BatchNorm2d {
            label,
            spec: spec.clone(),
            weight: Param::new(
                format!("{name}.weight"),
                Tensor::full(&[c], spec.init_weight),
                false,
            ),
            bias: Param::new(format!("{name}.bias"), Tensor::zeros(&[c]), false),
            running_mean: Tensor::zeros(&[c]),
            running_var: Tensor::full(&[c], 1.0),
            mean: vec![0.0; c],
            invstd: vec![0.0; c],
            var: vec![0.0; c],
            scale: vec![0.0; c],
            shift: vec![0.0; c],
            sum_dy: vec![0.0; c],
            sum_dy_xc: vec![0.0; c],
            coef: [vec![0.0; c], vec![0.0; c], vec![0.0; c]],
            last: None,
        })
    }

    pub fn weight(&self) -> &Param {
        &self.weight
    }
    pub fn bias(&self) -> &Param {
        &self.bias
    }
    pub fn running_mean(&self) -> &Tensor {
        &self.running_mean
    }
    pub fn running_var(&self) -> &Tensor {
        &self.running_var
    }

    /// `scale`/`shift` from the current `mean` and `invstd`.
    fn set_scale_shift(&mut self) {
        let (g, b) = (self.weight.value.data(), self.bias.value.data());
        scale_shift(g, b, &self.mean, &self.invstd, &mut self.scale, &mut self.shift);
    }

    /// Eval-mode `scale`/`shift` from the running statistics (also used by a conv that folds
    /// this BN in, see `Self::eval_affine`).
    fn eval_scale_shift(&mut self) {
        let eps = self.spec.eps;
        self.mean.copy_from_slice(self.running_mean.data());
        for (is, &v) in self.invstd.iter_mut().zip(self.running_var.data()) {
            *is = 1.0 / (v + eps).sqrt();
        }
        self.set_scale_shift();
    }

    /// Training-mode statistics of `input` (the running statistics move), and the scale and
    /// shift they give: `forward` in training up to the affine pass, which the fused BN + neuron
    /// pass of `Sequential` applies itself (see [`BatchNorm2d::affine`]).
    /// `moments`: the input's `[T*N, C, 2]` per-plane moments where its producer took them
    /// (`Conv2d::output_moments`), the same numbers this pass would compute, else None.
    ///
    /// `repeats` > 1: `input` is one time step standing for `repeats` identical ones (a stem
    /// conv's output on a directly encoded image). Its statistics are those of the repeated
    /// input; only the running variance's unbiasing counts every step, as over the full input.
    #[doc(hidden)]
    pub fn forward_statistics(
        &mut self,
        input: &Tensor,
        moments: Option<&[f64]>,
        repeats: usize,
    ) -> Result<()> {
        self.check_input(input.shape())?;
        let s = input.shape();
        let (c, hw) = (s[2], s[3] * s[4]);
        let n = s[0] * s[1] * hw * repeats.max(1);
        if n <= 1 {
            return Err(Error::value(
                &self.label,
                "more than 1 value per channel in training (T*N*H*W > 1)",
                format!("shape {s:?}"),
            ));
        }
        match moments {
            Some(m) if m.len() == s[0] * s[1] * c * 2 => {
                stats_from_moments(m, c, hw, &mut self.mean, &mut self.var)
            }
            _ => channel_stats(input.data(), c, hw, &mut self.mean, &mut self.var),
        }
        self.update_running(s, n);
        Ok(())
    }

    /// [`Self::forward_statistics`] of an input of `shape` given only its `[T*N, C, 2]`
    /// per-plane moments (an input computed and dropped chunk by chunk of time steps, see
    /// `nn::sew_chunks`): the same statistics, as they are merged from the same moments.
    pub(crate) fn statistics_of_moments(&mut self, shape: &[usize], moments: &[f64]) -> Result<()> {
        self.check_input(shape)?;
        let (c, hw) = (shape[2], shape[3] * shape[4]);
        let n = shape[0] * shape[1] * hw;
        if n <= 1 || moments.len() != shape[0] * shape[1] * c * 2 {
            return Err(Error::value(
                &self.label,
                "more than 1 value per channel in training and moments of every plane",
                format!("shape {shape:?}, {} moments", moments.len()),
            ));
        }
        stats_from_moments(moments, c, hw, &mut self.mean, &mut self.var);
        self.update_running(shape, n);
        Ok(())
    }

    /// After the batch statistics of an input of `shape` (`n` values per channel) are in
    /// `mean` and `var`: the running statistics move, and the scale and shift follow.
    fn update_running(&mut self, s: &[usize], n: usize) {
        let c = s[2];
        let (m, eps) = (self.spec.momentum, self.spec.eps);
        let unbias = n as f32 / (n - 1) as f32;
        let (rm, rv) = (self.running_mean.data_mut(), self.running_var.data_mut());
        for ch in 0..c {
            rm[ch] = (1.0 - m) * rm[ch] + m * self.mean[ch];
            rv[ch] = (1.0 - m) * rv[ch] + m * self.var[ch] * unbias;
            self.invstd[ch] = 1.0 / (self.var[ch] + eps).sqrt();
        }
        self.set_scale_shift();
        self.last = Some((s.to_vec(), true));
    }

    /// Evaluation-mode statistics (the running ones) and the scale and shift they give, for
    /// inputs of `shape`: `forward` out of training up to the affine pass, which the fused
    /// inference pass of BN + neuron applies itself (see [`BatchNorm2d::affine`]).
    pub(crate) fn eval_statistics(&mut self, shape: &[usize]) -> Result<()> {
        self.check_input(shape)?;
        self.eval_scale_shift();
        self.last = Some((shape.to_vec(), false));
        Ok(())
    }

    /// The affine the last forward applied (or left to the fused pass), for inputs of `shape`.
    #[doc(hidden)]
    pub fn affine(&self, shape: &[usize]) -> ChannelAffine<'_> {
        ChannelAffine { scale: &self.scale, shift: &self.shift, hw: shape[3] * shape[4] }
    }

    /// For the fused BN + neuron backward: the affine and mean of the last forward, which must
    /// have been a forward on `shape`, and the sum vectors the neuron kernel fills.
    #[doc(hidden)]
    pub fn fused_grad(&mut self, shape: &[usize]) -> Result<BnGrad<'_>> {
        self.last_used_batch_stats(shape)?;
        Ok(BnGrad {
            affine: ChannelAffine {
                scale: &self.scale,
                shift: &self.shift,
                hw: shape[3] * shape[4],
            },
            mean: &self.mean,
            sum_dy: &mut self.sum_dy,
            sum_dy_xc: &mut self.sum_dy_xc,
        })
    }

    /// The rest of `backward` once `sum_dy` and `sum_dy_xc` hold the sums of `dy` (the fused
    /// BN + neuron backward fills them): parameter gradients and `dx`.
    #[doc(hidden)]
    pub fn backward_from_sums(
        &mut self,
        input: &Tensor,
        dy: &Tensor,
        grad_input: &mut Tensor,
        batch_stats: bool,
    ) {
        let s = input.shape();
        let (c, hw) = (s[2], s[3] * s[4]);
        self.input_grad_coefficients(s, batch_stats);
        let [a, b, d] = &self.coef;
        grad_input.resize_for_overwrite(s);
        backward_input(input.data(), dy.data(), c, hw, a, b, d, grad_input.data_mut());
    }

    /// Backward when the layer's output went only to a max pool whose forward ran on it
    /// unwritten (`MaxPool2d::forward_affine`): `dpool` is the pool's output gradient, `g`
    /// and `argmax` its window geometry and argmax. The gradient of this layer's output is
    /// routed into `grad_input` plane by plane and summed in cache, then turned into the
    /// input gradient in place; the sums, parameter gradients and `grad_input` are the two
    /// layers' backward passes' bits.
    pub(crate) fn backward_unpooled(
        &mut self,
        input: &Tensor,
        g: &PoolGeom,
        dpool: &Tensor,
        argmax: &[u8],
        grad_input: &mut Tensor,
    ) -> Result<()> {
        let batch_stats = self.last_used_batch_stats(input.shape())?;
        let s = input.shape();
        let (c, hw) = (s[2], s[3] * s[4]);
        grad_input.resize_for_overwrite(s);
        backward_sums_unpooled(
            input.data(),
            g,
            dpool.data(),
            argmax,
            c,
            &self.mean,
            grad_input.data_mut(),
            &mut self.sum_dy,
            &mut self.sum_dy_xc,
        );
        self.input_grad_coefficients(s, batch_stats);
        let [a, b, d] = &self.coef;
        backward_input_in_place(input.data(), grad_input.data_mut(), c, hw, a, b, d);
        Ok(())
    }

    /// [`Self::backward_from_sums`] with the input gradient written over `dy`.
    pub(crate) fn backward_from_sums_in_place(
        &mut self,
        input: &Tensor,
        dy: &mut Tensor,
        batch_stats: bool,
    ) {
        let s = input.shape();
        assert_eq!(s, dy.shape(), "backward_from_sums_in_place: shapes");
        let (c, hw) = (s[2], s[3] * s[4]);
        self.input_grad_coefficients(s, batch_stats);
        let [a, b, d] = &self.coef;
        backward_input_in_place(input.data(), dy.data_mut(), c, hw, a, b, d);
    }

    /// Once `sum_dy` and `sum_dy_xc` hold the sums over all of an input of `shape` (filled
    /// window by window, see `neuron::kernel::window`): the parameter gradients, and the
    /// coefficients [`Self::input_grad_steps_in_place`] applies.
    pub(crate) fn input_grad_from_sums(&mut self, shape: &[usize], batch_stats: bool) {
        self.input_grad_coefficients(shape, batch_stats);
    }

    /// `dx` over `dy` for whole time steps `x` of the input, after
    /// [`Self::input_grad_from_sums`]: the same values as those steps of
    /// [`Self::backward_from_sums_in_place`] on the whole input.
    pub(crate) fn input_grad_steps_in_place(&self, x: &Tensor, dy: &mut Tensor) {
        let s = x.shape();
        assert_eq!(s, dy.shape(), "input_grad_steps_in_place: shapes");
        let [a, b, d] = &self.coef;
        backward_input_in_place(x.data(), dy.data_mut(), s[2], s[3] * s[4], a, b, d);
    }

    /// Adds the affine parameters' gradients from the sums and sets `coef` to the input
    /// gradient's per-channel `dx = a dy + b x + d`.
    fn input_grad_coefficients(&mut self, s: &[usize], batch_stats: bool) {
        let (c, hw) = (s[2], s[3] * s[4]);
        let n = (s[0] * s[1] * hw) as f64;
        let gamma = self.weight.value.data();
        let [a, b, d] = &mut self.coef;
        for ch in 0..c {
            let is = self.invstd[ch] as f64;
            let (sd, sdx) = (self.sum_dy[ch], self.sum_dy_xc[ch]);
            if self.spec.affine {
                self.weight.grad.data_mut()[ch] += (sdx * is) as f32;
                self.bias.grad.data_mut()[ch] += sd as f32;
            }
            let gi = gamma[ch] as f64 * is;
            a[ch] = gi as f32;
            if batch_stats {
                // dx = gamma*invstd * (dy - mean(dy) - xhat * mean(dy * xhat))
                let k = gi * is * is * sdx / n;
                b[ch] = -k as f32;
                d[ch] = (k * self.mean[ch] as f64 - gi * sd / n) as f32;
            } else {
                b[ch] = 0.0;
                d[ch] = 0.0;
            }
        }
    }

    /// Whether the last forward (which must have been on `shape`) used batch statistics.
    pub(crate) fn last_used_batch_stats(&self, shape: &[usize]) -> Result<bool> {
        match &self.last {
            Some((last, training)) if last == shape => Ok(*training),
            _ => Err(Error::state(
                &self.label,
                "backward needs a forward on the same input shape first",
            )),
        }
    }

    fn check_input(&self, input: &[usize]) -> Result<()> {
        let what = format!("[T, N, {}, H, W]", self.spec.num_features);
        expect_sample_rank(&self.label, input, 3, &what)?;
        if input[2] != self.spec.num_features {
            return Err(Error::shape(&self.label, what, input));
        }
        Ok(())
    }
}

impl BatchNorm2d {
    /// In eval mode, the per-channel affine `y = x * scale + shift` this layer computes with
    /// its running statistics, so that a preceding conv can fold it into its weights and the
    /// pass over the activations disappears.
    pub(crate) fn eval_affine(&mut self) -> (&[f32], &[f32]) {
        self.eval_scale_shift();
        // This forward's input is never seen: a backward must follow a forward of its own.
        self.last = None;
        (&self.scale, &self.shift)
    }
}

impl Layer for BatchNorm2d {
    fn name(&self) -> &str {
        &self.label
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.check_input(input)?;
        Ok(input.to_vec())
    }

    fn forward(&mut self, input: &Tensor, output: &mut Tensor, training: bool) -> Result<()> {
        if training {
            self.forward_statistics(input, None, 1)?;
        } else {
            self.eval_statistics(input.shape())?;
        }
        let s = input.shape();
        output.resize_for_overwrite(s);
        affine(input.data(), s[2], s[3] * s[4], &self.scale, &self.shift, output.data_mut());
        Ok(())
    }

    fn backward(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        grad_input: &mut Tensor,
    ) -> Result<()> {
        let batch_stats = self.last_used_batch_stats(input.shape())?;
        check_grad_output(&self.label, output.shape(), grad_output.shape())?;
        check_grad_output(&self.label, input.shape(), grad_output.shape())?;
        let s = input.shape();
        let (c, hw) = (s[2], s[3] * s[4]);
        backward_sums(
            input.data(),
            grad_output.data(),
            c,
            hw,
            &self.mean,
            &mut self.sum_dy,
            &mut self.sum_dy_xc,
        );
        self.backward_from_sums(input, grad_output, grad_input, batch_stats);
        Ok(())
    }

    fn recomputes_output(&self) -> bool {
        true
    }

    /// The forward's own affine pass with the scale and shift it used (the weights change only
    /// after the backward pass), so the result is bit-identical.
    fn recompute_output(&self, input: &Tensor, output: &mut Tensor) {
        let s = input.shape();
        output.resize_for_overwrite(s);
        affine(input.data(), s[2], s[3] * s[4], &self.scale, &self.shift, output.data_mut());
    }

    fn visit_mut<'a>(&'a mut self, visitor: &mut dyn VisitorMut<'a>) {
        let name = self.weight.name.trim_end_matches(".weight").to_string();
        // Without `affine`, gamma stays 1 and beta 0: constants, not parameters.
        if self.spec.affine {
            visitor.param(&mut self.weight);
            visitor.param(&mut self.bias);
        }
        visit_running_statistics(visitor, &name, &mut self.running_mean, &mut self.running_var);
    }
}

/// Hands a BN layer's running mean and variance to `visitor` as `{name}.running_mean` and
/// `{name}.running_var` (PyTorch's names), statistics a weight average may average.
pub(crate) fn visit_running_statistics<'a>(
    visitor: &mut dyn VisitorMut<'a>,
    name: &str,
    mean: &'a mut Tensor,
    var: &'a mut Tensor,
) {
    visitor.buffer(Buffer { name: format!("{name}.running_mean"), value: mean, averaged: true });
    visitor.buffer(Buffer { name: format!("{name}.running_var"), value: var, averaged: true });
}
