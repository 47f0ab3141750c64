//! Numeric kernels (convolution, pooling, batch norm, GEMM), each beside its tests.
pub mod batch_norm;
pub mod connect;
pub mod conv;
pub mod conv3x3;
pub mod elementwise;
pub mod gemm;
pub mod geometry;
pub mod pool;
pub mod pool_3x3;
pub mod scratch;
pub mod simd;
pub mod spike_attention;
pub mod spike_conv;
pub mod spike_linear;
pub mod tasks;
pub mod transpose;
pub mod winograd;
