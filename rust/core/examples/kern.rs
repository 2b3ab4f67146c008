use ak_core::kernels::activation::Activation;
use ak_core::control::Control;
use ak_core::kernels::lazy::lazy_kernels;
use ak_core::kernels::net::{Mlp, Rows};
use std::time::Instant;
fn main() {
    let p: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(4000);
    let depth: usize = std::env::args()
        .nth(2)
        .map(|s| s.parse().unwrap())
        .unwrap_or(1);
    let d = 784;
    let x: Vec<f64> = (0..p * d)
        .map(|i| ((i * 7919 % 1000) as f64) / 500.0 - 1.0)
        .collect();
    let net = Mlp::new(depth, Activation::Relu, 1.0, 0.0);
    let mut k = vec![0.0; p * p];
    let ctl = Control::new();
    let t = Instant::now();
    lazy_kernels(
        &net,
        Rows::new("X", &x, p, d).unwrap(),
        None,
        &mut k,
        None,
        0,
        &ctl,
    )
    .unwrap();
    println!("p={p} depth={depth}: {:.3}s", t.elapsed().as_secs_f64());
}
