//! Losses on the multi-step output `[T, N, K]`.
