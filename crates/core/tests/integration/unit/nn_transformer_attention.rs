//! Tests of `dualstream_core::nn::transformer::attention`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `nn::transformer::attention` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::layer::{Layer, Visitor, VisitorMut};
    pub use dualstream_core::nn::transformer::attention::*;
    pub use rayon::prelude::*;
}
use dualstream_core::rng::Rng;

/// Forward and backward of one sample-step block per head: packed/event (`packed`) or the
/// dense GEMMs alone.
fn run(
    order: Order,
    x: &[f32],
    dy: &[f32],
    l: usize,
    c: usize,
    heads: usize,
    packed: bool,
) -> (Vec<f32>, Vec<f32>) {
    let d = c / heads;
    let mut s = Scratch::new(l, d, order);
    let (mut y, mut dx) = (vec![f32::NAN; l * c], vec![f32::NAN; l * 3 * c]);
    for h in 0..heads {
        let head = Head { l, d, c, q: h * d };
        if !packed || head_forward_spikes(order, x, &head, 0.125, &mut y, &mut s).is_none() {
            head_forward(order, x, &head, 0.125, &mut y, &mut s.work);
        }
        head_backward(order, x, dy, &head, 0.125, &mut dx, &mut s, packed);
    }
    (y, dx)
}

#[test]
fn spike_kernels_equal_the_dense_gemms_bit_for_bit_at_every_density() {
    let mut rng = Rng::new(21);
    // Odd sizes, one and several words per packed row, both orders.
    for (l, c, heads) in [(7, 6, 2), (49, 64, 4), (65, 24, 1), (9, 140, 1), (70, 70, 1)] {
        for density in [0.0, 0.02, 0.15, 0.45, 0.8, 1.0] {
            let x = rng.spikes(l * 3 * c, density);
            let dy: Vec<f32> = (0..l * c).map(|_| rng.normal()).collect();
            for order in [Order::TokensFirst, Order::ChannelsFirst] {
                let (y, dx) = run(order, &x, &dy, l, c, heads, true);
                let (y_dense, dx_dense) = run(order, &x, &dy, l, c, heads, false);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                let what = format!("{order:?}, L {l}, C {c}, {heads} heads, density {density}");
                assert_eq!(bits(&y), bits(&y_dense), "forward, {what}");
                assert_eq!(bits(&dx), bits(&dx_dense), "backward, {what}");
            }
        }
    }
}

#[test]
fn real_valued_input_takes_the_dense_path() {
    let mut rng = Rng::new(22);
    let (l, c, heads) = (5, 8, 2);
    let mut x = rng.spikes(l * 3 * c, 0.3);
    x[3] = 0.5;
    let dy: Vec<f32> = (0..l * c).map(|_| rng.normal()).collect();
    for order in [Order::TokensFirst, Order::ChannelsFirst] {
        let mut s = Scratch::new(l, c / heads, order);
        let mut y = vec![0.0; l * c];
        let head = Head { l, d: c / heads, c, q: 0 };
        assert!(head_forward_spikes(order, &x, &head, 0.125, &mut y, &mut s).is_none());
        assert_eq!(run(order, &x, &dy, l, c, heads, true), run(order, &x, &dy, l, c, heads, false));
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn whole_sample_products_equal_the_dense_gemms_bit_for_bit() {
    let mut rng = Rng::new(23);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let mut s = SampleScratch::default();
    // Channels first (L > D), one word per token's operand; heads of 1 to 64 channels, one
    // and several words of tokens, densities on both sides of the event crossover.
    for (l, c, heads) in [(49, 64, 4), (7, 6, 2), (65, 24, 1), (200, 64, 1), (9, 40, 8)] {
        let order = Order::for_sizes(l, c / heads);
        for density in [0.0, 0.02, 0.15, 0.45, 0.8, 1.0] {
            let x = rng.spikes(l * 3 * c, density);
            let dy: Vec<f32> = (0..l * c).map(|_| rng.normal()).collect();
            let (y_dense, dx_dense) = run(order, &x, &dy, l, c, heads, false);
            let (mut y, mut dx) = (vec![f32::NAN; l * c], vec![f32::NAN; l * 3 * c]);
            let what = format!("L {l}, C {c}, {heads} heads, density {density}");
            assert!(sample_forward_spikes(order, &x, l, c, heads, 0.125, &mut y, &mut s), "{what}");
            assert!(
                sample_backward_spikes(order, &x, &dy, l, c, heads, 0.125, &mut dx, &mut s),
                "{what}"
            );
            assert_eq!(bits(&y), bits(&y_dense), "forward, {what}");
            assert_eq!(bits(&dx), bits(&dx_dense), "backward, {what}");
        }
    }
    // Not binary, or more than one word per token: the per-head products.
    let (l, c) = (9, 8);
    let mut x = rng.spikes(l * 3 * c, 0.3);
    x[3] = 0.5;
    let mut y = vec![0.0; l * c];
    assert!(!sample_forward_spikes(Order::ChannelsFirst, &x, l, c, 2, 0.125, &mut y, &mut s));
    let x = rng.spikes(l * 3 * 70, 0.3);
    let mut y = vec![0.0; l * 70];
    assert!(!sample_forward_spikes(Order::ChannelsFirst, &x, l, 70, 1, 0.125, &mut y, &mut s));
}
