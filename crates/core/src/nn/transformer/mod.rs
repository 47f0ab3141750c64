//! Layers on token sequences `[T, N, L, C]` (L tokens of C channels, channels last), the parts
//! of a spiking transformer (Spikformer): the image-to-tokens step, BatchNorm1d over the
//! channels, the spiking self-attention product and the mean over tokens before the head.
//! A linear over the last axis is [`crate::nn::Linear`] itself (it accepts `[T, N, ..., in]`):
//! the same maths as the `Conv1d(kernel_size=1)` over `[T*N, C, L]` of SpikingJelly, whose
//! `[out, in, 1]` weights are ours with the last axis dropped. The neurons are the usual ones
//! (element-wise over any shape) and the residual joins are SEW or dual-stream blocks.
pub mod attention;
pub mod batch_norm1d;
pub mod token_mean;
pub mod tokens;

pub use attention::SpikingAttention;
pub use batch_norm1d::BatchNorm1d;
pub use token_mean::TokenMean;
pub use tokens::Tokens;
