use std::time::Instant;
fn main() {
    let n = 20_000_000usize;
    let c: Vec<f64> = (0..n).map(|i| ((i % 1000) as f64) / 1000.0 - 0.5).collect();
    let t = Instant::now();
    let mut s = 0.0;
    for &x in &c {
        s += x.acos();
    }
    println!(
        "acos {:.1} ns/op ({s})",
        t.elapsed().as_nanos() as f64 / n as f64
    );
    let t = Instant::now();
    let mut s = 0.0;
    for &x in &c {
        s += (1.0 - x * x).sqrt();
    }
    println!(
        "sqrt {:.1} ns/op ({s})",
        t.elapsed().as_nanos() as f64 / n as f64
    );
    let act = ak_core::kernels::activation::Activation::Relu;
    let t = Instant::now();
    let mut s = 0.0;
    for &x in &c {
        s += ak_core::kernels::activation::closed_form(&act, 1.0, 1.0, x)
            .unwrap()
            .0;
    }
    println!(
        "closed_form {:.1} ns/op ({s})",
        t.elapsed().as_nanos() as f64 / n as f64
    );
    let rule = ak_core::kernels::quadrature::PolarRule::new(32);
    let ex = ak_core::kernels::activation::Expectation {
        act: &act,
        method: ak_core::kernels::activation::Method::Auto,
        rule: &rule,
    };
    let a = vec![1.0; 4096];
    let mut e = vec![0.0; 4096];
    let t = Instant::now();
    for chunk in c.chunks(4096) {
        let m = chunk.len();
        ex.batch(&a[..m], &a[..m], chunk, &mut e[..m], None)
            .unwrap();
    }
    println!(
        "batch {:.1} ns/op ({})",
        t.elapsed().as_nanos() as f64 / n as f64,
        e[7]
    );
}
#[allow(dead_code)]
fn unused() {}
