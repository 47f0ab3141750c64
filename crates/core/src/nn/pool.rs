//! Pooling layers over `[T, N, C, H, W]`, run on the merged batch.
use crate::error::{Error, Result};
use crate::kernels::geometry::PoolGeom;
use crate::kernels::pool::{
    avgpool2d_backward, avgpool2d_forward, global_avg_backward, global_avg_forward,
    maxpool2d_backward, maxpool2d_forward, maxpool2d_values,
};
use crate::layer::check_grad_output;
use crate::layer::{expect_sample_rank, BackwardReads, Layer, Visitor};
use crate::neuron::SpikePool;
use crate::spec::PoolSpec;
use crate::tensor::Tensor;

/// Validated window parameters shared by max and average pooling.
#[derive(Clone, Debug)]
struct Window {
    label: String,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
}

impl Window {
    fn new(label: String, spec: &PoolSpec) -> Result<Self> {
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
        Ok(Window { label, kernel, stride, padding: spec.padding })
    }

    fn geometry(&self, input: &[usize]) -> Result<PoolGeom> {
        expect_sample_rank(&self.label, input, 3, "[T, N, C, H, W]")?;
        PoolGeom::new(input[3], input[4], self.kernel, self.stride, self.padding).ok_or_else(|| {
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
}

#[derive(Clone, Debug)]
pub struct MaxPool2d {
    win: Window,
    /// In-plane input index of each output's maximum, from the last forward.
    argmax: Vec<u32>,
    last_input: Option<Vec<usize>>,
}

impl MaxPool2d {
    pub fn new(name: &str, spec: &PoolSpec) -> Result<Self> {
        Ok(MaxPool2d {
            win: Window::new(format!("{name} (maxPool2d)"), spec)?,
            argmax: Vec::new(),
            last_input: None,
        })
    }
}

impl MaxPool2d {
    /// Whether the window is 2x2 with stride 2 and no padding.
    pub(crate) fn halves(&self) -> bool {
        self.win.kernel == [2, 2] && self.win.stride == [2, 2] && self.win.padding == [0, 0]
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
    ) -> Result<(PoolGeom, &mut [u32])> {
        if !self.halves() {
            return Err(Error::state(
                &self.win.label,
                "a fused forward needs a 2x2, stride-2 window",
            ));
        }
        let g = self.win.geometry(input)?;
        if g.h * g.w > u32::MAX as usize {
            return Err(Error::shape(&self.win.label, "H * W < 2^32", input));
        }
        output.resize_for_overwrite(&self.win.output_shape(input)?);
        self.argmax.resize(output.numel(), 0);
        self.last_input = Some(input.to_vec());
        Ok((g, &mut self.argmax))
    }

    /// For the fused backward of the neuron before it: checks that the last forward was on
    /// `input` and that `grad_output` fits, and hands over the window geometry and argmax.
    fn fused_backward(&self, input: &[usize], grad_output: &[usize]) -> Result<(PoolGeom, &[u32])> {
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
        let g = self.win.geometry(input.shape())?;
        let shape = self.win.output_shape(input.shape())?;
        if g.h * g.w > u32::MAX as usize {
            return Err(Error::shape(&self.win.label, "H * W < 2^32", input.shape()));
        }
        output.resize_for_overwrite(&shape);
        if !training {
            // No backward follows an eval-mode forward (the model only backpropagates after a
            // training forward), so the argmax is not needed.
            maxpool2d_values(&g, input.data(), output.data_mut());
            self.last_input = None;
            return Ok(());
        }
        self.argmax.resize(output.numel(), 0);
        maxpool2d_forward(&g, input.data(), output.data_mut(), &mut self.argmax);
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
        let g = self.win.geometry(input.shape())?;
        check_grad_output(&self.win.label, output.shape(), grad_output.shape())?;
        check_grad_output(
            &self.win.label,
            &self.win.output_shape(input.shape())?,
            grad_output.shape(),
        )?;
        grad_input.resize_for_overwrite(input.shape());
        maxpool2d_backward(&g, grad_output.data(), &self.argmax, grad_input.data_mut());
        Ok(())
    }

    /// The argmax of every window (4 bytes per output).
    fn visit(&self, visitor: &mut dyn Visitor) {
        visitor.stored_bytes(self.argmax.len() * 4);
    }
}

#[derive(Clone, Debug)]
pub struct AvgPool2d {
    win: Window,
}

impl AvgPool2d {
    pub fn new(name: &str, spec: &PoolSpec) -> Result<Self> {
        Ok(AvgPool2d { win: Window::new(format!("{name} (avgPool2d)"), spec)? })
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
        let g = self.win.geometry(input.shape())?;
        output.resize_for_overwrite(&self.win.output_shape(input.shape())?);
        avgpool2d_forward(&g, input.data(), output.data_mut());
        Ok(())
    }

    fn backward(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        grad_input: &mut Tensor,
    ) -> Result<()> {
        let g = self.win.geometry(input.shape())?;
        check_grad_output(&self.win.label, output.shape(), grad_output.shape())?;
        check_grad_output(
            &self.win.label,
            &self.win.output_shape(input.shape())?,
            grad_output.shape(),
        )?;
        grad_input.resize_for_overwrite(input.shape());
        avgpool2d_backward(&g, grad_output.data(), grad_input.data_mut());
        Ok(())
    }
}

/// `[T, N, C, H, W] -> [T, N, C]`, the mean over H and W.
#[derive(Clone, Debug)]
pub struct GlobalAvgPool {
    label: String,
}

impl GlobalAvgPool {
    pub fn new(name: &str) -> Self {
        GlobalAvgPool { label: format!("{name} (globalAvgPool)") }
    }
}

impl Layer for GlobalAvgPool {
    /// Backward needs the shapes alone.
    fn backward_reads(&self) -> BackwardReads {
        BackwardReads { input: false, output: false }
    }

    fn name(&self) -> &str {
        &self.label
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        expect_sample_rank(&self.label, input, 3, "[T, N, C, H, W]")?;
        if input[3] * input[4] == 0 {
            return Err(Error::shape(&self.label, "[T, N, C, H, W] with H, W > 0", input));
        }
        Ok(input[..3].to_vec())
    }

    fn forward(&mut self, input: &Tensor, output: &mut Tensor, _training: bool) -> Result<()> {
        let shape = self.output_shape(input.shape())?;
        output.resize_for_overwrite(&shape);
        global_avg_forward(input.data(), input.shape()[3] * input.shape()[4], output.data_mut());
        Ok(())
    }

    fn backward(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        grad_input: &mut Tensor,
    ) -> Result<()> {
        let shape = self.output_shape(input.shape())?;
        check_grad_output(&self.label, output.shape(), grad_output.shape())?;
        check_grad_output(&self.label, &shape, grad_output.shape())?;
        grad_input.resize_for_overwrite(input.shape());
        global_avg_backward(
            grad_output.data(),
            input.shape()[3] * input.shape()[4],
            grad_input.data_mut(),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::{check_gradients, random_tensor};
    use crate::rng::Rng;

    fn pool(k: usize, s: Option<usize>, p: usize) -> PoolSpec {
        PoolSpec { kernel_size: [k, k], stride: s.map(|s| [s, s]), padding: [p, p] }
    }

    /// Distinct values at least 0.1 apart, so that no finite-difference step changes an argmax.
    fn tie_free(rng: &mut Rng, shape: &[usize]) -> Tensor {
        let n = crate::tensor::numel(shape);
        let mut v: Vec<f32> = (0..n).map(|i| i as f32 * 0.1 - n as f32 * 0.05).collect();
        rng.shuffle(&mut v);
        Tensor::from_vec(shape, v).unwrap()
    }

    #[test]
    fn maxpool_gradients_match_finite_differences() {
        let mut rng = Rng::new(41);
        for (i, (spec, h, w)) in
            [(pool(2, None, 0), 4, 5), (pool(3, Some(2), 1), 5, 6), (pool(3, Some(1), 1), 3, 4)]
                .iter()
                .enumerate()
        {
            let mp = MaxPool2d::new(&format!("layers.{i}"), spec).unwrap();
            let x = tie_free(&mut rng, &[2, 2, 2, *h, *w]);
            check_gradients(&mp, &x, 3, 1e-3, 1e-3, 1e-3);
        }
    }

    #[test]
    fn maxpool_pads_with_negative_infinity_and_picks_the_first_maximum() {
        let mut mp = MaxPool2d::new("mp", &pool(2, Some(2), 1)).unwrap();
        let x = Tensor::from_vec(&[1, 1, 1, 2, 2], vec![-5.0, -3.0, -3.0, -7.0]).unwrap();
        let mut y = Tensor::default();
        mp.forward(&x, &mut y, true).unwrap();
        assert_eq!(y.shape(), &[1, 1, 1, 2, 2]);
        assert_eq!(y.data(), &[-5.0, -3.0, -3.0, -7.0]);
        let mut mp = MaxPool2d::new("mp", &pool(2, None, 0)).unwrap();
        let x = Tensor::from_vec(&[1, 1, 1, 2, 2], vec![1.0, 2.0, 2.0, 0.0]).unwrap();
        mp.forward(&x, &mut y, true).unwrap();
        let mut gx = Tensor::default();
        mp.backward(&x, &y, &Tensor::full(&[1, 1, 1, 1, 1], 1.0), &mut gx).unwrap();
        assert_eq!(gx.data(), &[0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn avgpool_counts_padding_and_gradients_match() {
        let mut ap = AvgPool2d::new("ap", &pool(2, Some(2), 1)).unwrap();
        let x = Tensor::from_vec(&[1, 1, 1, 2, 2], vec![4.0, 8.0, 12.0, 16.0]).unwrap();
        let mut y = Tensor::default();
        ap.forward(&x, &mut y, true).unwrap();
        assert_eq!(y.data(), &[1.0, 2.0, 3.0, 4.0]);
        let mut rng = Rng::new(42);
        for (i, (spec, h, w)) in
            [(pool(2, None, 0), 4, 5), (pool(3, Some(2), 1), 5, 6)].iter().enumerate()
        {
            let ap = AvgPool2d::new(&format!("layers.{i}"), spec).unwrap();
            let x = random_tensor(&mut rng, &[2, 2, 3, *h, *w]);
            check_gradients(&ap, &x, 3, 1e-2, 1e-3, 1e-3);
        }
    }

    #[test]
    fn global_avg_pool_means_and_gradients() {
        let mut gap = GlobalAvgPool::new("gap");
        let mut rng = Rng::new(43);
        let x = random_tensor(&mut rng, &[2, 3, 4, 2, 3]);
        let mut y = Tensor::default();
        gap.forward(&x, &mut y, true).unwrap();
        assert_eq!(y.shape(), &[2, 3, 4]);
        let want: f32 = x.data()[6..12].iter().sum::<f32>() / 6.0;
        assert!((y.data()[1] - want).abs() < 1e-6);
        check_gradients(&gap, &x, 3, 1e-2, 1e-3, 1e-3);
    }

    #[test]
    fn errors_name_the_layer() {
        let mp = MaxPool2d::new("layers.6", &pool(2, None, 0)).unwrap();
        let err = mp.output_shape(&[2, 3, 8, 8]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "layers.6 (maxPool2d): expected shape [T, N, C, H, W], got [2, 3, 8, 8]"
        );
        let err = mp.output_shape(&[2, 3, 4, 1, 8]).unwrap_err();
        assert!(matches!(err, Error::Shape { .. }) && err.to_string().contains("layers.6"));
        let err = AvgPool2d::new("layers.7", &pool(2, None, 0))
            .unwrap()
            .output_shape(&[1, 2, 3])
            .unwrap_err();
        assert!(err.to_string().contains("layers.7 (avgPool2d)"));
        let err = GlobalAvgPool::new("layers.8").output_shape(&[1, 2, 3]).unwrap_err();
        assert!(matches!(err, Error::Shape { .. }) && err.to_string().contains("layers.8"));
        for bad in [pool(0, None, 0), pool(2, Some(0), 0), pool(2, None, 2)] {
            let err = MaxPool2d::new("layers.9", &bad).unwrap_err();
            assert!(
                matches!(err, Error::Spec { .. }) && err.to_string().contains("layers.9"),
                "{err}"
            );
        }
        let mut mp = MaxPool2d::new("layers.6", &pool(2, None, 0)).unwrap();
        let x = Tensor::zeros(&[1, 1, 1, 2, 2]);
        let mut gx = Tensor::default();
        assert_eq!(mp.backward(&x, &x, &x, &mut gx).unwrap_err().code(), "ERR_STATE");
    }
}
