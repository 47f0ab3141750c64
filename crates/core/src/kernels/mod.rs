//! Numeric kernels (convolution, pooling, batch norm, GEMM), each beside its tests.
