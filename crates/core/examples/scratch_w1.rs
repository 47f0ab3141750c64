use dualstream_core::kernels::conv::{conv2d_backward_data, conv2d_forward, ConvGeom};
use dualstream_core::kernels::spike_conv::{conv2d_backward_weight_spikes, conv2d_forward_spikes};
use dualstream_core::rng::Rng;
mod timing;
use timing::median_ms;
fn main() {
    let mut rng = Rng::new(1);
    let shapes = [(32usize, 32usize, 28usize, 0.066f32), (32, 32, 28, 0.046), (32, 64, 14, 0.2), (64, 64, 14, 0.042), (64,64,14,0.037)];
    for (cin, cout, hw, d) in shapes {
        let g = ConvGeom::new(cin, cout, hw, hw, [3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
        let batch = 128;
        let w: Vec<f32> = (0..g.weight_len()).map(|_| rng.normal()).collect();
        let dy: Vec<f32> = (0..batch * g.out_size()).map(|_| rng.normal()).collect();
        let x: Vec<f32> = (0..batch * g.in_size()).map(|_| (rng.uniform() < d) as u8 as f32).collect();
        let mut y = vec![0.0; dy.len()];
        let mut dx = vec![0.0; x.len()];
        let mut dw = vec![0.0; w.len()];
        let fe = median_ms(|| conv2d_forward_spikes(&g, &x, &w, None, &mut y));
        let fd = median_ms(|| conv2d_forward(&g, &x, &w, None, &mut y));
        let we = median_ms(|| conv2d_backward_weight_spikes(&g, &x, &dy, &mut dw, None));
        let bd = median_ms(|| conv2d_backward_data(&g, &dy, &w, &mut dx));
        println!("{cin}->{cout} {hw}x{hw} d={d}: fwd events {fe:.2} dense {fd:.2} | wgrad events {we:.2} | bwd-data {bd:.2}");
    }
}
