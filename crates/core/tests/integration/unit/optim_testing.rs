//! Helpers the optimizer tests share.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `optim` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::layer::Param;
    pub use dualstream_core::optim::*;
    pub use dualstream_core::tensor::Tensor;
    pub use rayon::prelude::*;
}
use dualstream_core::layer::Param;
use dualstream_core::tensor::Tensor;

/// A one-dimensional parameter holding `v`.
pub fn param(name: &str, v: &[f64], decay: bool) -> Param {
    let data = v.iter().map(|&x| x as f32).collect();
    Param::new(name, Tensor::from_vec(&[v.len()], data).unwrap(), decay)
}

pub fn set_grad(p: &mut Param, g: &[f64]) {
    for (d, &x) in p.grad.data_mut().iter_mut().zip(g) {
        *d = x as f32;
    }
}

/// Every element of `got` within 1e-5 of the f64 reference `want`.
pub fn assert_elements_close(got: &[f32], want: &[f64]) {
    for (i, (got, want)) in got.iter().zip(want).enumerate() {
        assert!((*got as f64 - want).abs() < 1e-5, "element {i}: {got} vs {want}");
    }
}

/// A parameter of `n` elements repeating `period` values spread over [-1, 1], and its f64 copy.
pub fn large_param(n: usize, period: usize) -> (Param, Vec<f64>) {
    let half = (period / 2) as f64;
    let p0: Vec<f64> = (0..n).map(|i| ((i % period) as f64 - half) / half).collect();
    (param("big", &p0, true), p0)
}
