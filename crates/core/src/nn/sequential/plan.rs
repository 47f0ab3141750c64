//! The fusion planner: which runs of layers of a sequence execute as one pass. A fused pass
//! reads and writes the activations once where the layers one by one would each make a pass
//! over them, with the same results bit for bit (each fused kernel is tested against its
//! layers). The plan depends on the layer list, on training or inference, and on a few
//! switches (see [`PlanInputs`]); [`Sequential`](super::Sequential) makes it once per change of
//! those and executes it.
use std::cell::Cell;
use std::thread::LocalKey;

use crate::error::Result;
use crate::kernels::batch_norm::ChannelAffine;
use crate::layer::{downcast_mut, downcast_ref, Layer};
use crate::neuron::kernel::BnGrad;
use crate::neuron::NeuronLayer;
use crate::nn::transformer::BatchNorm1d;
use crate::nn::{BatchNorm2d, Conv2d, MaxPool2d};
use crate::tensor::Tensor;

/// One step of a plan, over one or more consecutive layers (indices into the sequence).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FusedOp {
    /// Layer `i` on its own.
    Layer(usize),
    /// Training, layer 0: a conv on a directly encoded input (every time step the same) before
    /// a fused BN + neuron pair, computed for one step; the pair reads that step for all `T`.
    OneStepStem,
    /// Training: BN `bn` (a [`PairedNorm`]) and the neuron after it in one pass that never
    /// writes the BN output.
    /// `pool`: the 2x2 max pool after the neuron pools its spikes in the same pass.
    /// `conv_moments`: the BN takes its batch statistics from the conv before it.
    BnNeuron { bn: usize, pool: bool, conv_moments: bool },
    /// Training: BatchNorm2d `bn` and the max pool after it in one pass that never writes the
    /// BN output (the pool reads each plane of it from cache); the backward routes the pool's
    /// gradient into the BN's input gradient buffer plane by plane, summing each plane while
    /// it is in cache, and finishes the BN's input gradient there in place.
    BnPool { bn: usize },
    /// Inference: BN `bn` (a [`PairedNorm`]) in evaluation mode and the neuron after it in
    /// one pass that never writes the BN output.
    BnNeuronInference { bn: usize },
    /// Inference: conv `conv`; `bn`: the eval-mode BN after it folded into its weights;
    /// `neuron`: the neuron after those fed from the conv sample by sample, in cache; `join`:
    /// that neuron ends a residual branch and the pass writes the block's join.
    ConvInference { conv: usize, bn: bool, neuron: bool, join: bool },
}

impl FusedOp {
    /// The last layer this step covers: the one whose output slot it writes.
    pub fn last(&self) -> usize {
        match *self {
            FusedOp::Layer(i) => i,
            FusedOp::OneStepStem => 0,
            FusedOp::BnNeuron { bn, pool, .. } => bn + 1 + pool as usize,
            FusedOp::BnNeuronInference { bn } | FusedOp::BnPool { bn } => bn + 1,
            FusedOp::ConvInference { conv, bn, neuron, .. } => {
                conv + (bn as usize) + (neuron as usize)
            }
        }
    }
}

/// Which fused passes may run. All of them, except while [`with_fusion`] says otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fusion {
    /// Every fused pass.
    #[default]
    All,
    /// Every fused pass but the max pool inside a BN + neuron pass.
    NoPool,
    /// Each layer on its own (a conv still folds an eval-mode BN after it into its weights
    /// for inference, which is not a fused pass over activations).
    None,
}

thread_local! {
    static FUSION: Cell<Fusion> = const { Cell::new(Fusion::All) };
}

/// Runs `f` with `fusion` for the sequences it runs on this thread: to compare the fused
/// passes with the layers run one by one.
pub fn with_fusion<R>(fusion: Fusion, f: impl FnOnce() -> R) -> R {
    with_thread_setting(&FUSION, fusion, f)
}

/// Runs `f` with the thread-local `setting` at `value`; the old value comes back afterwards,
/// also when `f` panics.
pub(crate) fn with_thread_setting<T: Copy + 'static, R>(
    setting: &'static LocalKey<Cell<T>>,
    value: T,
    f: impl FnOnce() -> R,
) -> R {
    struct Restore<T: Copy + 'static>(&'static LocalKey<Cell<T>>, T);
    impl<T: Copy + 'static> Drop for Restore<T> {
        fn drop(&mut self) {
            self.0.with(|c| c.set(self.1));
        }
    }
    let _restore = Restore(setting, setting.with(|c| c.replace(value)));
    f()
}

/// What a plan depends on besides the layer list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanInputs {
    pub training: bool,
    /// Inference whose activations no backward reads (`inference_only`): convs may fold BNs.
    pub fold: bool,
    /// The caller joins the output with a residual shortcut.
    pub join: bool,
    /// The input is a directly encoded one (see `Sequential::set_repeated_input`).
    pub repeated_input: bool,
    pub fusion: Fusion,
    /// Per layer: a neuron whose rate monitor is on (it then needs its spikes written out).
    pub monitored: Vec<bool>,
}

impl PlanInputs {
    pub fn new(
        layers: &[Box<dyn Layer>],
        training: bool,
        fold: bool,
        join: bool,
        repeated_input: bool,
    ) -> Self {
        PlanInputs {
            training,
            fold,
            join,
            repeated_input,
            fusion: FUSION.with(|c| c.get()),
            monitored: layers
                .iter()
                .map(|l| downcast_ref::<NeuronLayer>(l.as_ref()).is_some_and(|n| !n.poolable()))
                .collect(),
        }
    }
}

/// A batch norm that runs fused with the neuron after it ([`FusedOp::BnNeuron`] in training,
/// [`FusedOp::BnNeuronInference`] in inference): its statistics come first, the neuron kernel
/// applies its [`ChannelAffine`] on the fly (and in training fills its gradient sums, from
/// which it finishes the backward). BatchNorm2d (`[T, N, C, H, W]`) and BatchNorm1d (tokens,
/// channels last: planes of one value).
#[doc(hidden)]
pub trait PairedNorm: Layer {
    /// Training statistics of `input` and the affine they give, without the affine pass;
    /// `moments`: the input's per-plane moments if its producer took them; `repeats` > 1:
    /// `input` is one time step standing for that many.
    fn forward_statistics(
        &mut self,
        input: &Tensor,
        moments: Option<&[f64]>,
        repeats: usize,
    ) -> Result<()>;
    /// Evaluation-mode statistics (the running ones) for inputs of `shape`: the layer's
    /// forward out of training up to the affine pass.
    fn eval_statistics(&mut self, shape: &[usize]) -> Result<()>;
    /// The affine of the last forward, for inputs of `shape`.
    fn affine(&self, shape: &[usize]) -> ChannelAffine<'_>;
    /// The affine, mean and sum vectors for the neuron's fused backward.
    fn fused_grad(&mut self, shape: &[usize]) -> Result<BnGrad<'_>>;
    /// Whether the last forward (on `shape`) used batch statistics.
    fn last_used_batch_stats(&self, shape: &[usize]) -> Result<bool>;
    /// Parameter gradients and `dx` from the sums the fused backward left.
    fn backward_from_sums(
        &mut self,
        input: &Tensor,
        dy: &Tensor,
        grad_input: &mut Tensor,
        batch_stats: bool,
    );
    /// [`PairedNorm::backward_from_sums`] with `dx` written over `dy`.
    fn backward_from_sums_in_place(&mut self, input: &Tensor, dy: &mut Tensor, batch_stats: bool);
}

macro_rules! paired_norm {
    ($ty:ty) => {
        impl PairedNorm for $ty {
            fn forward_statistics(
                &mut self,
                input: &Tensor,
                moments: Option<&[f64]>,
                repeats: usize,
            ) -> Result<()> {
                <$ty>::forward_statistics(self, input, moments, repeats)
            }
            fn eval_statistics(&mut self, shape: &[usize]) -> Result<()> {
                <$ty>::eval_statistics(self, shape)
            }
            fn affine(&self, shape: &[usize]) -> ChannelAffine<'_> {
                <$ty>::affine(self, shape)
            }
            fn fused_grad(&mut self, shape: &[usize]) -> Result<BnGrad<'_>> {
                <$ty>::fused_grad(self, shape)
            }
            fn last_used_batch_stats(&self, shape: &[usize]) -> Result<bool> {
                <$ty>::last_used_batch_stats(self, shape)
            }
            fn backward_from_sums(
                &mut self,
                input: &Tensor,
                dy: &Tensor,
                grad_input: &mut Tensor,
                batch_stats: bool,
            ) {
                <$ty>::backward_from_sums(self, input, dy, grad_input, batch_stats)
            }
            fn backward_from_sums_in_place(
                &mut self,
                input: &Tensor,
                dy: &mut Tensor,
                batch_stats: bool,
            ) {
                <$ty>::backward_from_sums_in_place(self, input, dy, batch_stats)
            }
        }
    };
}
paired_norm!(BatchNorm2d);
paired_norm!(BatchNorm1d);

/// The concrete layers the fused passes need, reached from their boxes.
#[doc(hidden)]
pub trait Concrete {
    fn as_conv(&mut self) -> Option<&mut Conv2d>;
    fn as_batch_norm(&mut self) -> Option<&mut BatchNorm2d>;
    /// A batch norm of either kind, for the fused BN + neuron pass.
    fn as_paired_norm(&mut self) -> Option<&mut dyn PairedNorm>;
    fn as_neuron(&mut self) -> Option<&mut NeuronLayer>;
    fn as_max_pool(&mut self) -> Option<&mut MaxPool2d>;
}

impl Concrete for Box<dyn Layer> {
    fn as_conv(&mut self) -> Option<&mut Conv2d> {
        downcast_mut(self.as_mut())
    }
    fn as_batch_norm(&mut self) -> Option<&mut BatchNorm2d> {
        downcast_mut(self.as_mut())
    }
    fn as_paired_norm(&mut self) -> Option<&mut dyn PairedNorm> {
        if downcast_ref::<BatchNorm2d>(self.as_ref()).is_some() {
            return downcast_mut::<BatchNorm2d>(self.as_mut()).map(|b| b as &mut dyn PairedNorm);
        }
        downcast_mut::<BatchNorm1d>(self.as_mut()).map(|b| b as &mut dyn PairedNorm)
    }
    fn as_neuron(&mut self) -> Option<&mut NeuronLayer> {
        downcast_mut(self.as_mut())
    }
    fn as_max_pool(&mut self) -> Option<&mut MaxPool2d> {
        downcast_mut(self.as_mut())
    }
}

fn is<T: Layer + 'static>(layer: &dyn Layer) -> bool {
    downcast_ref::<T>(layer).is_some()
}

/// The plan for `layers`; `pairs[i]`: BN `i` and the neuron after it may run as one pass, in
/// training (the BN's input is kept as f32, see `Sequential::set_input_spikes`) and in
/// inference (a BN right after a conv is folded into it instead).
pub fn plan(layers: &[Box<dyn Layer>], pairs: &[bool], inputs: &PlanInputs) -> Vec<FusedOp> {
    let n = layers.len();
    let fusion = inputs.fusion;
    let fuse = fusion != Fusion::None;
    let layer = |i: usize| layers[i].as_ref();
    let mut ops = Vec::new();
    let mut i = 0;
    while i < n {
        let conv = inputs.fold && !inputs.training && is::<Conv2d>(layer(i));
        let bn = conv && i + 1 < n && is::<BatchNorm2d>(layer(i + 1));
        let neuron_at = i + 1 + bn as usize;
        let neuron = conv && fuse && neuron_at < n && is::<NeuronLayer>(layer(neuron_at));
        let pair = inputs.training && pairs[i] && fuse;
        let inference_pair = inputs.fold && !inputs.training && pairs[i] && fuse;
        let op = if bn || neuron {
            let join = inputs.join && neuron && neuron_at == n - 1;
            FusedOp::ConvInference { conv: i, bn, neuron, join }
        } else if pair {
            // A 2x2 max pool after the pair pools the spikes while they are in cache, unless
            // the neuron's rate monitor needs the spikes themselves.
            let pool = fusion == Fusion::All
                && i + 2 < n
                && !inputs.monitored[i + 1]
                && downcast_ref::<MaxPool2d>(layer(i + 2)).is_some_and(|p| p.halves());
            let conv_moments = i > 0 && is::<Conv2d>(layer(i - 1));
            FusedOp::BnNeuron { bn: i, pool, conv_moments }
        } else if inference_pair {
            FusedOp::BnNeuronInference { bn: i }
        } else if inputs.training
            && fuse
            && i + 1 < n
            && is::<BatchNorm2d>(layer(i))
            && is::<MaxPool2d>(layer(i + 1))
        {
            FusedOp::BnPool { bn: i }
        } else if i == 0
            && inputs.repeated_input
            && inputs.training
            && n > 2
            && pairs[1]
            && fuse
            && is::<Conv2d>(layer(0))
        {
            FusedOp::OneStepStem
        } else {
            FusedOp::Layer(i)
        };
        i = op.last() + 1;
        ops.push(op);
    }
    ops
}
