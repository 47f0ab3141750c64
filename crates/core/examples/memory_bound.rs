//! Time of the memory-bound kernels on the W1 block shape `[4, 32, 32, 28, 28]` (spikes):
//! the SEW join (`kernels::connect`, forward and both backward halves) and 2x2 max pooling (with the
//! argmax for training, values only for evaluation), against the memory floor of the same
//! reads and writes; median of 15 runs per kernel.
//! `cargo run --release -p dualstream-core --example memory_bound`
use dualstream_core::kernels::connect::{
    connect_backward, connect_backward_add_o, connect_backward_s, connect_forward,
};
use dualstream_core::kernels::geometry::PoolGeom;
use dualstream_core::kernels::pool::{maxpool2d_backward, maxpool2d_forward, maxpool2d_values};
use dualstream_core::layer::Layer;
use dualstream_core::neuron::{NeuronKind, NeuronLayer};
use dualstream_core::spec::{Connect, NeuronSpec};
use dualstream_core::tensor::{SpikeBits, Tensor};

mod timing;
use timing::median_ms;

fn main() {
    let n = 4 * 32 * 32 * 28 * 28;
    let s: Vec<f32> = (0..n).map(|i| ((i * 7919) % 7 == 0) as u8 as f32).collect();
    let o: Vec<f32> = (0..n).map(|i| ((i * 104_729) % 5 == 0) as u8 as f32).collect();
    let grad_values: Vec<f32> = (0..n).map(|i| ((i % 97) as f32 - 48.0) * 1e-3).collect();
    let g = &grad_values;
    let (mut out, mut a, mut b) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
    // The memory floor: the same reads and writes with the simplest vectorised loop.
    let floor = median_ms(|| {
        use rayon::prelude::*;
        out.par_chunks_mut(1 << 14).zip(s.par_chunks(1 << 14).zip(o.par_chunks(1 << 14))).for_each(
            |(y, (a, b))| {
                for ((y, &a), &b) in y.iter_mut().zip(a).zip(b) {
                    *y = a + b;
                }
            },
        )
    });
    println!("floor (y = a + b, 2 reads 1 write): {floor:.2} ms");
    for connect in [Connect::Iand, Connect::Or, Connect::Add] {
        let fwd = median_ms(|| {
            std::hint::black_box(connect_forward(connect, &s, &o, &mut out, None));
        });
        let bs = median_ms(|| {
            connect_backward_s(connect, &s, &o, g, None, &mut a);
        });
        let bo = median_ms(|| connect_backward_add_o(connect, &s, &o, g, None, &mut b));
        let both = median_ms(|| connect_backward(connect, &s, &o, g, &mut a, &mut b));
        println!("{connect:?}: forward {fwd:.2} ms, backward_s {bs:.2} ms, backward_add_o {bo:.2} ms, backward {both:.2} ms ({n} elements)");
    }
    let g = PoolGeom::new(28, 28, [2, 2], [2, 2], [0, 0]).unwrap();
    let pooled = n / 4;
    let (mut y, mut argmax) = (vec![0.0f32; pooled], vec![0u32; pooled]);
    let train = median_ms(|| maxpool2d_forward(&g, &s, &mut y, &mut argmax));
    let eval = median_ms(|| maxpool2d_values(&g, &s, &mut y));
    let mut dx = vec![0.0f32; n];
    let back = median_ms(|| maxpool2d_backward(&g, &y, &argmax, &mut dx));
    println!("maxpool 2x2: with argmax {train:.2} ms, values only {eval:.2} ms, backward {back:.2} ms ({n} inputs)");
    // LIF (tau 2, ATan, detach_reset) over T = 4 on the same elements, forward and BPTT.
    let spec: NeuronSpec = serde_json::from_str(r#"{"tau": 2.0, "detachReset": true}"#).unwrap();
    let mut lif = NeuronLayer::new("lif", NeuronKind::Lif, &spec).unwrap();
    let shape = [4, 32, 32, 28, 28];
    let x =
        Tensor::from_vec(&shape, grad_values.iter().map(|&v| v * 40.0 + 0.6).collect()).unwrap();
    let grad = Tensor::from_vec(&shape, grad_values.clone()).unwrap();
    let (mut spikes, mut gx) = (Tensor::default(), Tensor::default());
    let fwd = median_ms(|| lif.forward(&x, &mut spikes, true).unwrap());
    let back = median_ms(|| lif.backward(&x, &spikes, &grad, &mut gx).unwrap());
    let rate =
        (dualstream_core::kernels::elementwise::sum(spikes.data()) / spikes.numel() as f64) as f32;
    println!("lif T=4: forward {fwd:.2} ms, backward {back:.2} ms (firing rate {rate:.3})");
    // Bit-packing a spike map for the backward pass and unpacking it again.
    let mut bits = SpikeBits::default();
    let pack = median_ms(|| {
        std::hint::black_box(bits.pack(&spikes));
    });
    let mut back = Tensor::default();
    let unpack = median_ms(|| bits.unpack_into(&mut back));
    println!("spike bits: pack {pack:.2} ms, unpack {unpack:.2} ms");
}
