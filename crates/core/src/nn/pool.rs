//! Pooling layers over `[T, N, C, H, W]`, run on the merged batch.
use crate::error::{Error, Result};
use crate::kernels::batch_norm::{maxpool2d_forward_affine, ChannelAffine};
use crate::kernels::geometry::PoolGeom;
use crate::kernels::pool::{
    avgpool2d_backward, avgpool2d_forward, global_avg_backward, global_avg_forward,
    maxpool2d_values,
};
use crate::kernels::pool_argmax::{
    maxpool2d_backward_packed, maxpool2d_forward_packed, packs, MAX_WINDOW,
};
use crate::layer::check_grad_output;
use crate::layer::{expect_sample_rank, BackwardReads, Layer, Visitor};
use crate::neuron::SpikePool;
use crate::nn::shape_layer::{MeanMap, ShapeLayer, ShapeMap};
use crate::spec::PoolSpec;
use crate::tensor::Tensor;

/// Validated window parameters shared by max and average pooling.
#[derive(Clone, Debug)]
struct Window {
    label: String,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    ceil_mode: bool,
}

impl Window {
    #[doc(hidden)]
    pub fn new(label: String, spec: &PoolSpec) -> Result<Self> {
        let kernel = spec.kernel_size;
        let stride = spec.stride.unwrap_or(kernel);
        if kernel.contains(&0) || stride.contains(&0) {
            return Err(Error::spec(&label, format!(
                "kernelSize and stride must be positive, got kernelSize {kernel:?}, stride {stride:?}"
            )));
        }
        if spec.padding[0] * 2 > kernel[0] || spec.padding[1] * 2 > kernel[1] {
            return Err(Error::spec(
                &label,
                format!(
                    "padding {:?} must be at most half the kernel size {kernel:?}",
                    spec.padding
                ),
            ));
        }
        Ok(Window { label, kernel, stride, padding: spec.padding, ceil_mode: spec.ceil_mode })
    }

    fn geometry(&self, input: &[usize]) -> Result<PoolGeom> {
        expect_sample_rank(&self.label, input, 3, "[T, N, C, H, W]")?;
        let [h, w] = [input[3], input[4]];
        PoolGeom::with_ceil_mode(h, w, self.kernel, self.stride, self.padding, self.ceil_mode)
            .ok_or_else(|| {
                Error::shape(
                    &self.label,
                    format!(
                        "[T, N, C, H, W] with H >= {} and W >= {}",
                        self.kernel[0].saturating_sub(2 * self.padding[0]).max(1),
                        self.kernel[1].saturating_sub(2 * self.padding[1]).max(1)
                    ),
                    input,
                )
            })
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let g = self.geometry(input)?;
        Ok(vec![input[0], input[1], input[2], g.oh, g.ow])
    }

    /// The geometry of a forward on `input`, with `output` sized for it.
    fn forward_geometry(&self, input: &[usize], output: &mut Tensor) -> Result<PoolGeom> {
        let g = self.geometry(input)?;
        output.resize_for_overwrite(&[input[0], input[1], input[2], g.oh, g.ow]);
        Ok(g)
    }

    /// The geometry of a backward on `input`, once `grad_output` is checked against the
    /// forward's `output`, with `grad_input` sized for it.
    fn backward_geometry(
        &self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        grad_input: &mut Tensor,
    ) -> Result<PoolGeom> {
        let (input, grad_output) = (input.shape(), grad_output.shape());
        let g = self.geometry(input)?;
        check_grad_output(&self.label, output.shape(), grad_output)?;
        check_grad_output(&self.label, &self.output_shape(input)?, grad_output)?;
        grad_input.resize_for_overwrite(input);
        Ok(g)
    }
}

#[derive(Clone, Debug)]
pub struct MaxPool2d {
    win: Window,
    /// Index inside its window of each output's maximum, from the last forward (one byte
    /// per output: `kernels::pool_argmax`).
    argmax: Vec<u8>,
    last_input: Option<Vec<usize>>,
}

impl MaxPool2d {
    pub fn new(name: &str, spec: &PoolSpec) -> Result<Self> {
        let label = format!("{name} (maxPool2d)");
        if !spec.count_include_pad {
            return Err(Error::spec(
                &label,
                "countIncludePad applies to average pooling only (max pooling has no divisor)",
            ));
        }
        let [kh, kw] = spec.kernel_size;
        if kh.saturating_mul(kw) > MAX_WINDOW {
            return Err(Error::spec(
                &label,
                format!(
                    "kernelSize {:?} has more than {MAX_WINDOW} values per window (the \
                     backward keeps each window's argmax in one byte)",
                    spec.kernel_size
                ),
            ));
        }
        Ok(MaxPool2d { win: Window::new(label, spec)?, argmax: Vec::new(), last_input: None })
    }

    /// Whether the window is 2x2 with stride 2, no padding and no ceil-mode partial window.
    #[doc(hidden)]
    pub fn halves(&self) -> bool {
        let w = &self.win;
        w.kernel == [2, 2] && w.stride == [2, 2] && w.padding == [0, 0] && !w.ceil_mode
    }

    /// The geometry of `input` if every plane's size fits the plane kernels' u32 argmax
    /// (the window's fits the kept byte: checked by [`MaxPool2d::new`]).
    fn argmax_geometry(&self, input: &[usize]) -> Result<PoolGeom> {
        let g = self.win.geometry(input)?;
        if g.h * g.w > u32::MAX as usize {
            return Err(Error::shape(&self.win.label, "H * W < 2^32", input));
        }
        debug_assert!(packs(&g));
        Ok(g)
    }
}

impl MaxPool2d {
    /// Training forward on the output of the batch norm before it, which is never written:
    /// `input` is the batch norm's input and `affine` its affine (the fused BN + pool pass of
    /// `Sequential`). The same output and argmax as the two layers' forwards; the backward
    /// then runs inside the batch norm's ([`MaxPool2d::unpool_parts`]).
    pub(crate) fn forward_affine(
        &mut self,
        input: &Tensor,
        affine: ChannelAffine,
        output: &mut Tensor,
    ) -> Result<()> {
        self.argmax_geometry(input.shape())?;
        let g = self.win.forward_geometry(input.shape(), output)?;
        self.argmax.resize(output.numel(), 0);
        maxpool2d_forward_affine(&g, input.data(), affine, output.data_mut(), &mut self.argmax);
        self.last_input = Some(input.shape().to_vec());
        Ok(())
    }

    /// For the backward of the batch norm before it (see [`MaxPool2d::forward_affine`]):
    /// checks that the last forward was on `input` and that `grad_output` fits, and hands
    /// over the window geometry and argmax.
    pub(crate) fn unpool_parts(
        &self,
        input: &[usize],
        grad_output: &[usize],
    ) -> Result<(PoolGeom, &[u8])> {
        if self.last_input.as_deref() != Some(input) {
            return Err(Error::state(
                &self.win.label,
                "backward needs a forward on the same input shape first",
            ));
        }
        check_grad_output(&self.win.label, &self.win.output_shape(input)?, grad_output)?;
        Ok((self.win.geometry(input)?, &self.argmax))
    }
}

impl SpikePool for MaxPool2d {
    /// For a training forward computed by the layer before it (the fused neuron + pool pass
    /// of `Sequential`): sizes `output` for `input`, and hands over the window geometry and
    /// the argmax to fill; the backward then runs as after [`Layer::forward`].
    fn fused_forward(
        &mut self,
        input: &[usize],
        output: &mut Tensor,
    ) -> Result<(PoolGeom, &mut [u8])> {
        if !self.halves() {
            return Err(Error::state(
                &self.win.label,
                "a fused forward needs a 2x2, stride-2 window",
            ));
        }
        self.argmax_geometry(input)?;
        let g = self.win.forward_geometry(input, output)?;
        self.argmax.resize(output.numel(), 0);
        self.last_input = Some(input.to_vec());
        Ok((g, &mut self.argmax))
    }

    /// For the fused backward of the neuron before it: checks that the last forward was on
    /// `input` and that `grad_output` fits, and hands over the window geometry and argmax.
    fn fused_backward(&self, input: &[usize], grad_output: &[usize]) -> Result<(PoolGeom, &[u8])> {
        if self.last_input.as_deref() != Some(input) || !self.halves() {
            return Err(Error::state(
                &self.win.label,
                "a fused backward needs a fused forward on the same input shape first",
            ));
        }
        check_grad_output(&self.win.label, &self.win.output_shape(input)?, grad_output)?;
        Ok((self.win.geometry(input)?, &self.argmax))
    }
}

impl Layer for MaxPool2d {
    /// Backward routes through the argmax it kept.
    fn backward_reads(&self) -> BackwardReads {
        BackwardReads { input: false, output: false }
    }

    fn emits_spikes(&self, input_spikes: bool) -> bool {
        input_spikes
    }

    fn name(&self) -> &str {
        &self.win.label
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.win.output_shape(input)
    }

    fn forward(&mut self, input: &Tensor, output: &mut Tensor, training: bool) -> Result<()> {
        self.argmax_geometry(input.shape())?;
        let g = self.win.forward_geometry(input.shape(), output)?;
        if !training {
            // No backward follows an eval-mode forward (the model only backpropagates after a
            // training forward), so the argmax is not needed.
            maxpool2d_values(&g, input.data(), output.data_mut());
            self.last_input = None;
            return Ok(());
        }
        self.argmax.resize(output.numel(), 0);
        maxpool2d_forward_packed(&g, input.data(), output.data_mut(), &mut self.argmax);
        self.last_input = Some(input.shape().to_vec());
        Ok(())
    }

    fn backward(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        grad_input: &mut Tensor,
    ) -> Result<()> {
        if self.last_input.as_deref() != Some(input.shape()) {
            return Err(Error::state(
                &self.win.label,
                "backward needs a forward on the same input shape first",
            ));
        }
        let g = self.win.backward_geometry(input, output, grad_output, grad_input)?;
        maxpool2d_backward_packed(&g, grad_output.data(), &self.argmax, grad_input.data_mut());
        Ok(())
    }

    /// The argmax of every window (1 byte per output).
    fn release_stored(&mut self) {
        self.argmax = Vec::new();
    }

    fn visit(&self, visitor: &mut dyn Visitor) {
        visitor.stored_bytes(self.argmax.len());
    }
}

#[derive(Clone, Debug)]
pub struct AvgPool2d {
    win: Window,
    count_include_pad: bool,
}

impl AvgPool2d {
    pub fn new(name: &str, spec: &PoolSpec) -> Result<Self> {
        Ok(AvgPool2d {
            win: Window::new(format!("{name} (avgPool2d)"), spec)?,
            count_include_pad: spec.count_include_pad,
        })
    }
}

impl Layer for AvgPool2d {
    /// Backward needs the shapes alone.
    fn backward_reads(&self) -> BackwardReads {
        BackwardReads { input: false, output: false }
    }

    fn name(&self) -> &str {
        &self.win.label
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.win.output_shape(input)
    }

    fn forward(&mut self, input: &Tensor, output: &mut Tensor, _training: bool) -> Result<()> {
        let g = self.win.forward_geometry(input.shape(), output)?;
        avgpool2d_forward(&g, self.count_include_pad, input.data(), output.data_mut());
        Ok(())
    }

    fn backward(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        grad_input: &mut Tensor,
    ) -> Result<()> {
        let g = self.win.backward_geometry(input, output, grad_output, grad_input)?;
        avgpool2d_backward(&g, self.count_include_pad, grad_output.data(), grad_input.data_mut());
        Ok(())
    }
}

/// `[T, N, C, H, W] -> [T, N, C]`, the mean over H and W.
pub struct SpatialMean;

impl ShapeMap for SpatialMean {
    const KIND: &'static str = "globalAvgPool";

    fn output_shape(label: &str, input: &[usize]) -> Result<Vec<usize>> {
        expect_sample_rank(label, input, 3, "[T, N, C, H, W]")?;
        if input[3] * input[4] == 0 {
            return Err(Error::shape(label, "[T, N, C, H, W] with H, W > 0", input));
        }
        Ok(input[..3].to_vec())
    }

    fn forward(input: &Tensor, output: &mut [f32]) {
        let s = input.shape();
        global_avg_forward(input.data(), s[3] * s[4], output);
    }

    fn backward(input_shape: &[usize], grad_output: &[f32], grad_input: &mut [f32]) {
        global_avg_backward(grad_output, input_shape[3] * input_shape[4], grad_input);
    }
}

impl MeanMap for SpatialMean {}

pub type GlobalAvgPool = ShapeLayer<SpatialMean>;
