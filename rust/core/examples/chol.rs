use ak_core::faer::{Mat, Par};
use std::time::Instant;
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(4000);
    let x = Mat::<f64>::from_fn(n, 300, |i, j| {
        (((i * 31 + j * 17) % 97) as f64) / 97.0 - 0.5
    });
    let mut a = &x * x.transpose();
    for i in 0..n {
        a[(i, i)] += 1.0;
    }
    let t = Instant::now();
    ak_core::linalg::check_symmetric("K", a.as_ref()).unwrap();
    println!("check_symmetric {:.3}s", t.elapsed().as_secs_f64());
    for (name, par) in [("seq", Par::Seq), ("rayon2", Par::rayon(2))] {
        let mut l = Mat::<f64>::zeros(n, n);
        let t = Instant::now();
        ak_core::linalg::cholesky_with_jitter("K", a.as_ref(), 0.0, l.as_mut(), par).unwrap();
        let s = t.elapsed().as_secs_f64();
        println!(
            "{name}: {s:.3}s  {:.1} GFLOP/s",
            (n as f64).powi(3) / 3.0 / s / 1e9
        );
    }
}
