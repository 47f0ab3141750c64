//! The model spec: the one JSON-serialisable description of an architecture. TypeScript builders
//! produce it, it crosses N-API once, the engine builds layers from it, and checkpoints store it.
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelSpec {
    /// Simulation steps T.
    pub time_steps: usize,
    /// Shape of one sample without T and N, e.g. `[1, 28, 28]`.
    pub input_shape: Vec<usize>,
    /// `direct`: a static sample `[N, ...]` is fed at every step; `sequence`: the input is
    /// already `[T, N, ...]` (event frames, encoded spikes).
    #[serde(default)]
    pub encoding: Encoding,
    pub layers: Vec<LayerSpec>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum Encoding {
    #[default]
    Direct,
    Sequence,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum LayerSpec {
    Conv2d(Conv2dSpec),
    Linear(LinearSpec),
    BatchNorm2d(BatchNormSpec),
    MaxPool2d(PoolSpec),
    AvgPool2d(PoolSpec),
    GlobalAvgPool,
    Flatten,
    Dropout(DropoutSpec),
    If(NeuronSpec),
    Lif(NeuronSpec),
    Plif(NeuronSpec),
    SewBlock(SewBlockSpec),
    SpikingResnetBlock(SpikingResnetBlockSpec),
    Relu,
    DualStream(DualStreamSpec),
    BatchNorm1d(BatchNormSpec),
    Tokens,
    TokenMean,
    SpikingAttention(SpikingAttentionSpec),
}

impl LayerSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            LayerSpec::Conv2d(_) => "conv2d",
            LayerSpec::Linear(_) => "linear",
            LayerSpec::BatchNorm2d(_) => "batchNorm2d",
            LayerSpec::MaxPool2d(_) => "maxPool2d",
            LayerSpec::AvgPool2d(_) => "avgPool2d",
            LayerSpec::GlobalAvgPool => "globalAvgPool",
            LayerSpec::Flatten => "flatten",
            LayerSpec::Dropout(_) => "dropout",
            LayerSpec::If(_) => "if",
            LayerSpec::Lif(_) => "lif",
            LayerSpec::Plif(_) => "plif",
            LayerSpec::SewBlock(_) => "sewBlock",
            LayerSpec::SpikingResnetBlock(_) => "spikingResnetBlock",
            LayerSpec::Relu => "relu",
            LayerSpec::DualStream(_) => "dualStream",
            LayerSpec::BatchNorm1d(_) => "batchNorm1d",
            LayerSpec::Tokens => "tokens",
            LayerSpec::TokenMean => "tokenMean",
            LayerSpec::SpikingAttention(_) => "spikingAttention",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Conv2dSpec {
    pub in_channels: usize,
    pub out_channels: usize,
    /// [kh, kw]
    pub kernel_size: [usize; 2],
    #[serde(default = "one2")]
    pub stride: [usize; 2],
    #[serde(default)]
    pub padding: [usize; 2],
    #[serde(default = "one2")]
    pub dilation: [usize; 2],
    #[serde(default = "one")]
    pub groups: usize,
    #[serde(default = "yes")]
    pub bias: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinearSpec {
    pub in_features: usize,
    pub out_features: usize,
    #[serde(default = "yes")]
    pub bias: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchNormSpec {
    pub num_features: usize,
    #[serde(default = "default_eps")]
    pub eps: f32,
    /// Running-statistics momentum, PyTorch convention (0.1).
    #[serde(default = "default_momentum")]
    pub momentum: f32,
    /// Initial gamma; 0 gives the zero-init of a residual branch's last BN.
    #[serde(default = "one_f")]
    pub init_weight: f32,
    /// Learnable per-channel weight and bias (PyTorch's `affine`); without them the layer
    /// only normalises (gamma 1, beta 0, no parameters in the state).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub affine: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PoolSpec {
    pub kernel_size: [usize; 2],
    /// Defaults to the kernel size (PyTorch convention).
    #[serde(default)]
    pub stride: Option<[usize; 2]>,
    #[serde(default)]
    pub padding: [usize; 2],
    /// PyTorch's `ceil_mode`: a last partial window is kept when it starts inside the input or
    /// its left padding.
    #[serde(default, skip_serializing_if = "is_false")]
    pub ceil_mode: bool,
    /// Average pooling only (PyTorch's `count_include_pad`): whether padded positions count in
    /// a window's divisor.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub count_include_pad: bool,
}

/// The product of spiking self-attention on `[T, N, L, 3C]` (the channels of Q, K and V side
/// by side, as one `linear(C, 3C)` - BN - neuron produces them) to `[T, N, L, C]`: per head,
/// `scale * Q K^T V` with no softmax.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpikingAttentionSpec {
    /// Channels C of each of Q, K and V.
    pub dim: usize,
    pub heads: usize,
    #[serde(default = "attention_scale")]
    pub scale: f32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DropoutSpec {
    pub p: f32,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum SurrogateSpec {
    Sigmoid {
        #[serde(default = "alpha_sigmoid")]
        alpha: f32,
    },
    Atan {
        #[serde(default = "alpha_atan")]
        alpha: f32,
    },
    PiecewiseQuadratic {
        #[serde(default = "one_f")]
        alpha: f32,
    },
    SuperSpike {
        #[serde(default = "alpha_superspike")]
        alpha: f32,
    },
    /// SpikingJelly's Erf: `sg'(x) = alpha / sqrt(pi) exp(-(alpha x)^2)`.
    Erf {
        #[serde(default = "alpha_atan")]
        alpha: f32,
    },
    /// SpikingJelly's SoftSign: `sg'(x) = alpha / (2 (1 + alpha |x|)^2)`.
    SoftSign {
        #[serde(default = "alpha_atan")]
        alpha: f32,
    },
    /// SpikingJelly's PiecewiseExp: `sg'(x) = alpha / 2 exp(-alpha |x|)`.
    PiecewiseExp {
        #[serde(default = "one_f")]
        alpha: f32,
    },
    /// SpikingJelly's PiecewiseLeakyReLU: `sg'(x) = 1 / (2 w)` for `|x| < w`, else `c`.
    PiecewiseLeakyRelu {
        #[serde(default = "one_f")]
        w: f32,
        #[serde(default = "leaky_c")]
        c: f32,
    },
}

impl Default for SurrogateSpec {
    fn default() -> Self {
        SurrogateSpec::Atan { alpha: 2.0 }
    }
}

/// IF, LIF and PLIF share one spec; IF ignores `tau` and `decay_input`, PLIF reads `tau` as
/// its initial value.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NeuronSpec {
    #[serde(default = "default_tau")]
    pub tau: f32,
    #[serde(default = "yes")]
    pub decay_input: bool,
    #[serde(default = "one_f")]
    pub v_threshold: f32,
    /// `Some(v)`: hard reset to v; `None` (JSON null): soft reset (subtract the threshold).
    #[serde(default = "default_v_reset")]
    pub v_reset: Option<f32>,
    #[serde(default = "yes")]
    pub detach_reset: bool,
    #[serde(default)]
    pub surrogate: SurrogateSpec,
}

impl Default for NeuronSpec {
    fn default() -> Self {
        NeuronSpec {
            tau: 2.0,
            decay_input: true,
            v_threshold: 1.0,
            v_reset: Some(0.0),
            detach_reset: true,
            surrogate: SurrogateSpec::default(),
        }
    }
}

/// Element-wise function `g(S, O)` joining a residual branch's spikes `S` and the shortcut `O`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Connect {
    Add,
    And,
    Iand,
    Or,
    Xor,
}

/// SEW block: `O = g(branch(x), shortcut(x))`, shortcut the identity when absent.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SewBlockSpec {
    pub branch: Vec<LayerSpec>,
    #[serde(default)]
    pub shortcut: Option<Vec<LayerSpec>>,
    pub connect: Connect,
}

/// Spiking ResNet block: `O = SN_res(branch(x) + shortcut(x))`. The branch ends WITHOUT a
/// neuron (its last layer is usually the zero-initialised BN); the shortcut is the identity
/// when absent, conv1x1(s)-BN without a neuron when downsampling.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpikingResnetBlockSpec {
    pub branch: Vec<LayerSpec>,
    #[serde(default)]
    pub shortcut: Option<Vec<LayerSpec>>,
    /// The residual neuron SN_res, always IF; `tau` and `decayInput` are ignored. The defaults
    /// (V_th 1, V_reset 0) give identity mapping when the branch is silent.
    #[serde(default)]
    pub residual_neuron: NeuronSpec,
}

/// How a dual-stream block joins its branch spikes `S` with the shortcut spikes: a spike
/// function `g(S, O)`, or the Spiking ResNet form `SN_res(S + O)`. `add` parses so that the
/// engine can say why it is refused (it breaks the full-spike stream).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum DualConnect {
    Add,
    And,
    Iand,
    Or,
    Xor,
    SpikingResnet,
}

/// Dual-stream block on `(O, A)`: `S = branch(O)` (the branch ends with its neuron),
/// `O' = g(S, shortcut(O))`, `A' = projection(A) + S`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DualStreamBlockSpec {
    pub branch: Vec<LayerSpec>,
    /// The spike stream's shortcut; the identity when absent.
    #[serde(default)]
    pub shortcut: Option<Vec<LayerSpec>>,
    pub connect: DualConnect,
    /// `P`, the accumulation stream's shortcut (a downsampling block's only MACs); the identity
    /// when absent. Dropped, with its parameters, by the full-spike (FSNN) model.
    #[serde(default)]
    pub projection: Option<Vec<LayerSpec>>,
    /// Residual neuron of the `spikingResnet` form (IF; defaults V_th 1, V_reset 0).
    #[serde(default)]
    pub residual_neuron: Option<NeuronSpec>,
}

/// One stage of a dual-stream trunk: a block, or a pooling applied to both streams.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum DualStage {
    Block(DualStreamBlockSpec),
    MaxPool2d(PoolSpec),
    AvgPool2d(PoolSpec),
}

/// The dual-stream trunk and its heads. Input: the stem's spikes `[T, N, C, H, W]`, taken as
/// `O_0 = A_0`. Output: `[T, N, 2K]` = `[y_s | y_a]` per step (spike head first) with the
/// accumulation pathway, `[T, N, K]` = `y_s` without it. Both heads are `FC(GAP(.))` with ONE
/// shared FC; applied per step, its time mean equals `FC(mean_t GAP(.))` since FC is affine.
/// It must be the model's last layer (the losses split its output into the heads).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DualStreamSpec {
    pub stages: Vec<DualStage>,
    /// The shared FC: `inFeatures` = channels of the last stage, `outFeatures` = classes K.
    pub head: LinearSpec,
    /// `false`: the full-spike network (FSNN) alone, no accumulation stream, one head.
    #[serde(default = "yes")]
    pub aap: bool,
    /// How each stream's last feature map `[C, H, W]` reaches the shared FC.
    #[serde(default)]
    pub head_pool: HeadPool,
}

/// `gap`: global average pooling (the paper's heads, `inFeatures` = C). `flatten`: every
/// position (`inFeatures` = C*H*W), for small inputs where GAP throws the layout away. Both are
/// linear, so `FC(mean_t pool(O))` stays the time mean of per-step logits and the FC of the
/// spike head still reads only spikes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum HeadPool {
    #[default]
    Gap,
    Flatten,
    /// Token streams `[T, N, L, C]`: the mean over the L tokens (`inFeatures` = C).
    Tokens,
}

fn one() -> usize {
    1
}
fn one2() -> [usize; 2] {
    [1, 1]
}
fn is_true(b: &bool) -> bool {
    *b
}
fn is_false(b: &bool) -> bool {
    !*b
}
fn yes() -> bool {
    true
}
fn one_f() -> f32 {
    1.0
}
fn default_eps() -> f32 {
    1e-5
}
fn default_momentum() -> f32 {
    0.1
}
fn default_tau() -> f32 {
    2.0
}
fn default_v_reset() -> Option<f32> {
    Some(0.0)
}
fn alpha_sigmoid() -> f32 {
    4.0
}
fn alpha_atan() -> f32 {
    2.0
}
fn attention_scale() -> f32 {
    0.125
}
fn alpha_superspike() -> f32 {
    100.0
}

/// Nesting of blocks inside blocks beyond this is refused (real architectures nest 2-3 deep).
pub const MAX_NESTING: usize = 16;
/// Kernel sizes, strides, paddings and dilations above this are refused before any shape
/// arithmetic (no sensor or image comes close).
pub const MAX_WINDOW: usize = 1 << 16;

impl ModelSpec {
    /// Checks every size of the spec before anything is built: `timeSteps` and the input shape,
    /// each layer's window fields and parameter tensors (overflow-checked, within
    /// `crate::limits`), and the nesting depth. Activation sizes need the layers' output
    /// shapes and are checked by `Model::from_spec`.
    pub fn check_sizes(&self) -> crate::Result<()> {
        if self.time_steps == 0 {
            return Err(Error::spec("timeSteps", "expected a positive integer, got 0"));
        }
        if self.input_shape.is_empty() || self.input_shape.contains(&0) {
            return Err(Error::spec(
                "inputShape",
                format!(
                    "expected the non-empty shape of one sample, e.g. [1, 28, 28], got {:?}",
                    self.input_shape
                ),
            ));
        }
        let mut steps = vec![self.time_steps];
        steps.extend_from_slice(&self.input_shape);
        size_check("inputShape", "T x inputShape f32 values of one sample", &steps, 4)?;
        check_layers("layers", &self.layers, 0)
    }
}

use crate::Error;

pub(crate) fn size_check(
    at: &str,
    what: &str,
    dims: &[usize],
    elem: usize,
) -> crate::Result<usize> {
    crate::limits::check_elements(at, what, dims, elem).map_err(|e| match e {
        Error::Value { expected, got, .. } => {
            Error::spec(at, format!("expected {expected}, got {got}"))
        }
        other => other,
    })
}

fn check_window(at: &str, field: &str, values: &[usize], min: usize) -> crate::Result<()> {
    if values.iter().any(|&v| v < min || v > MAX_WINDOW) {
        return Err(Error::spec(
            format!("{at}.{field}"),
            format!("expected integers in {min}..={MAX_WINDOW}, got {values:?}"),
        ));
    }
    Ok(())
}

fn check_positive(at: &str, field: &str, value: usize) -> crate::Result<()> {
    if value == 0 {
        return Err(Error::spec(format!("{at}.{field}"), "expected a positive integer, got 0"));
    }
    Ok(())
}

fn check_pool(at: &str, p: &PoolSpec) -> crate::Result<()> {
    check_window(at, "kernelSize", &p.kernel_size, 1)?;
    if let Some(stride) = p.stride {
        check_window(at, "stride", &stride, 1)?;
    }
    check_window(at, "padding", &p.padding, 0)
}

fn check_linear(at: &str, l: &LinearSpec) -> crate::Result<()> {
    check_positive(at, "inFeatures", l.in_features)?;
    check_positive(at, "outFeatures", l.out_features)?;
    size_check(at, "a weight of outFeatures x inFeatures f32", &[l.out_features, l.in_features], 4)
        .map(|_| ())
}

fn check_layers(prefix: &str, layers: &[LayerSpec], depth: usize) -> crate::Result<()> {
    if depth > MAX_NESTING {
        return Err(Error::spec(
            prefix,
            format!("expected blocks nested at most {MAX_NESTING} deep, got deeper nesting"),
        ));
    }
    for (i, layer) in layers.iter().enumerate() {
        let at = format!("{prefix}[{i}] ({})", layer.kind());
        let nested = |name: &str, inner: &[LayerSpec]| {
            check_layers(&format!("{prefix}[{i}].{name}"), inner, depth + 1)
        };
        match layer {
            LayerSpec::Conv2d(c) => {
                check_positive(&at, "inChannels", c.in_channels)?;
                check_positive(&at, "outChannels", c.out_channels)?;
                check_positive(&at, "groups", c.groups)?;
                check_window(&at, "kernelSize", &c.kernel_size, 1)?;
                check_window(&at, "stride", &c.stride, 1)?;
                check_window(&at, "padding", &c.padding, 0)?;
                check_window(&at, "dilation", &c.dilation, 1)?;
                let per_group = c.in_channels / c.groups.max(1);
                size_check(
                    &at,
                    "a weight of outChannels x inChannels/groups x kernelSize f32",
                    &[c.out_channels, per_group, c.kernel_size[0], c.kernel_size[1]],
                    4,
                )?;
            }
            LayerSpec::Linear(l) => check_linear(&at, l)?,
            LayerSpec::BatchNorm2d(b) | LayerSpec::BatchNorm1d(b) => {
                check_positive(&at, "numFeatures", b.num_features)?;
                // The widest per-channel vector is a gradient sum in f64.
                size_check(&at, "numFeatures per-channel f64 sums", &[b.num_features], 8)?;
            }
            LayerSpec::MaxPool2d(p) | LayerSpec::AvgPool2d(p) => check_pool(&at, p)?,
            LayerSpec::SewBlock(b) => {
                nested("branch", &b.branch)?;
                if let Some(s) = &b.shortcut {
                    nested("shortcut", s)?;
                }
            }
            LayerSpec::SpikingResnetBlock(b) => {
                nested("branch", &b.branch)?;
                if let Some(s) = &b.shortcut {
                    nested("shortcut", s)?;
                }
            }
            LayerSpec::DualStream(d) => {
                check_linear(&format!("{at}.head"), &d.head)?;
                for (k, stage) in d.stages.iter().enumerate() {
                    let stage_at = format!("{prefix}[{i}].stages[{k}]");
                    match stage {
                        DualStage::Block(b) => {
                            for (name, inner) in [
                                ("branch", Some(&b.branch)),
                                ("shortcut", b.shortcut.as_ref()),
                                ("projection", b.projection.as_ref()),
                            ] {
                                if let Some(inner) = inner {
                                    check_layers(&format!("{stage_at}.{name}"), inner, depth + 1)?;
                                }
                            }
                        }
                        DualStage::MaxPool2d(p) | DualStage::AvgPool2d(p) => {
                            check_pool(&stage_at, p)?
                        }
                    }
                }
            }
            LayerSpec::SpikingAttention(a) => {
                check_positive(&at, "dim", a.dim)?;
                check_positive(&at, "heads", a.heads)?;
                if !a.dim.is_multiple_of(a.heads) {
                    return Err(Error::spec(
                        format!("{at}.heads"),
                        format!("expected a divisor of dim {}, got {}", a.dim, a.heads),
                    ));
                }
                if !a.scale.is_finite() {
                    return Err(Error::spec(
                        format!("{at}.scale"),
                        format!("expected a finite number, got {}", a.scale),
                    ));
                }
            }
            LayerSpec::GlobalAvgPool
            | LayerSpec::Tokens
            | LayerSpec::TokenMean
            | LayerSpec::Flatten
            | LayerSpec::Dropout(_)
            | LayerSpec::If(_)
            | LayerSpec::Lif(_)
            | LayerSpec::Plif(_)
            | LayerSpec::Relu => {}
        }
    }
    Ok(())
}

fn leaky_c() -> f32 {
    0.01
}
