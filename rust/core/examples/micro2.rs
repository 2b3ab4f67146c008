use std::time::Instant;
fn main() {
    let n = 10_000_000usize;
    let mut state = 12345u64;
    let c: Vec<f64> = (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 6.0
        })
        .collect();
    macro_rules! b {
        ($name:expr, $f:expr) => {{
            let t = Instant::now();
            let mut s = 0.0;
            for &x in &c {
                s += $f(x);
            }
            println!(
                "{:>12} {:.1} ns ({s:.3})",
                $name,
                t.elapsed().as_nanos() as f64 / n as f64
            );
        }};
    }
    b!("std tanh", |x: f64| x.tanh());
    b!("libm tanh", |x: f64| libm::tanh(x));
    b!("std exp", |x: f64| x.exp());
    b!("libm exp", |x: f64| libm::exp(x));
    b!("libm erfc", |x: f64| libm::erfc(x));
    b!("libm erf", |x: f64| libm::erf(x));
    b!("std ln_1p", |x: f64| x.abs().ln_1p());
    b!("std acos", |x: f64| (x / 3.0).acos());
    b!("libm acos", |x: f64| libm::acos(x / 3.0));
    b!("std cos", |x: f64| x.cos());
}
