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

fn one() -> usize {
    1
}
fn one2() -> [usize; 2] {
    [1, 1]
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
fn alpha_superspike() -> f32 {
    100.0
}
