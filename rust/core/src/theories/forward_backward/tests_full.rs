//! The sampled full solution of nonlinear nets ([`super::full`]).
use super::*;
use crate::rng::Rng;

fn data(p: usize, d: usize, seed: u64) -> (Mat<f64>, Mat<f64>) {
    let mut rng = Rng::new(seed, 0);
    let x = Mat::from_fn(p, d, |_, _| rng.normal());
    let y = Mat::from_fn(p, 1, |i, _| (x[(i, 0)] * x[(i, 1)]).signum());
    (x, y)
}

fn diff(a: &Mat<f64>, b: &Mat<f64>) -> Mat<f64> {
    Mat::from_fn(a.nrows(), a.ncols(), |i, j| a[(i, j)] - b[(i, j)])
}

fn problem(act: Activation, depth: usize, sw: f64, sb: f64) -> Problem {
    let (x, y) = data(6, 9, 3);
    Problem::new(&Mlp::new(depth, act, sw, sb), x.as_ref(), y.as_ref(), Par::Seq).unwrap()
}

fn opts(n_samples: usize) -> Options {
    Options { n_samples, tol: 1e-11, ..Options::default() }
}

/// Linear activation through the sampled code path (MALA redraws included) = the closed form,
/// within the Monte-Carlo error of the shift from the NNGP (measured: 4.6% / 4.1% of the shift
/// per layer on the i.i.d. first draw at S = 20000, 8.2% after MALA redraws at S = 40000: the
/// chains' autocorrelation and the control variate's weights to the untilted prior cost
/// effective samples).
#[test]
fn linear_through_the_sampled_path() {
    let prob = problem(Activation::Linear, 2, 1.1, 0.3);
    let (n, t) = (4.0, 0.05);
    // min_kish 0.95 forces MALA redraws of the tilted densities (Kish ~0.87 on the first draw)
    let o = Options { min_kish: 0.95, ..opts(40_000) };
    let exact = prob.anneal(None, n, t, &o, Par::Seq, &Control::default()).unwrap();
    let s = prob.anneal_sampled(n, t, &o, Par::Seq, &Control::default()).unwrap();
    assert!(exact.report.converged && s.report.converged, "{:?}", s.report);
    assert!(s.n_draws >= 2 && s.kish.iter().all(|k| *k >= 0.95), "{} {:?}", s.n_draws, s.kish);
    assert!(s.report.residual < 1e-8);
    let k = prob.nngp();
    eprintln!("linear sampled: draws {}, kish {:?}, stages {:?}", s.n_draws, s.kish, s.report.stages);
    for l in 0..2 {
        let rel = diff(&s.kernels[l], &exact.kernels[l]).norm_l2() / diff(&exact.kernels[l], &k[l]).norm_l2();
        eprintln!("layer {l}: rel {rel}");
        assert!(rel < 0.12, "layer {l}: {rel} (draws {}, kish {:?})", s.n_draws, s.kish);
        let relc = diff(&s.conjugates[l], &exact.conjugates[l]).norm_l2() / exact.conjugates[l].norm_l2();
        eprintln!("layer {l} conjugate: rel {relc}");
        assert!(relc < 0.12, "layer {l} conjugate: {relc}");
    }
}

/// `N -> inf`: the NNGP kernels; at large N the full solution minus the first-order one is
/// `O(1/N^2)` (the first draw shares the first order's normals, so the two agree to first
/// order on the samples and the difference is free of `O(1/(N sqrt S))` noise).
#[test]
fn large_width_limit_and_second_order_difference() {
    let prob = problem(Activation::Tanh, 2, 1.2, 0.1);
    let o = opts(4000);
    let t = 0.1;
    let k = prob.nngp_kernels().unwrap();
    let inf = prob.anneal_sampled(1e12, t, &o, Par::Seq, &Control::default()).unwrap();
    for l in 0..2 {
        assert!(diff(&inf.kernels[l], &k[l]).norm_max() < 1e-9 * k[l].norm_max());
    }
    let mut d = vec![];
    let mut shift = vec![];
    for n in [200.0, 400.0, 800.0] {
        let full = prob.anneal_sampled(n, t, &o, Par::Seq, &Control::default()).unwrap();
        assert!(full.report.converged);
        let pert = prob.perturbative_nonlinear(n, t, o.n_samples, o.seed, Par::Seq).unwrap();
        d.push(diff(&full.kernels[1], &pert.kernels[1]).norm_l2());
        shift.push(diff(&full.kernels[1], &k[1]).norm_l2());
    }
    eprintln!("full - first order {d:?}, shift {shift:?}");
    for i in 0..2 {
        let (rd, rs) = (d[i] / d[i + 1], shift[i] / shift[i + 1]);
        assert!((3.3..4.7).contains(&rd), "full - first order ratio {rd} ({d:?})");
        assert!((1.8..2.2).contains(&rs), "shift ratio {rs}");
    }
}

/// Test rows `(C^l(*, X), C^l(*, *))` of the linear closed form: `C^l(., *) = g (C(., *) + 2 C Ct C(., *)) + b`.
fn linear_rows(prob: &Problem, s: &Solution, kx: &Mat<f64>, kd: &[f64]) -> Vec<(Mat<f64>, Vec<f64>)> {
    let (g, b) = (prob.g, prob.b);
    let mut cross = kx.transpose().to_owned(); // P x n
    let mut diag = kd.to_vec();
    let mut out = vec![];
    for l in 0..prob.depth {
        let (c, ct) = if l == 0 { (&prob.k0, &s.input_conjugate) } else { (&s.kernels[l - 1], &s.conjugates[l - 1]) };
        let tc = ct * &cross;
        diag = (0..diag.len())
            .map(|i| g * diag[i] + 2.0 * g * (0..cross.nrows()).map(|k| cross[(k, i)] * tc[(k, i)]).sum::<f64>() + b)
            .collect();
        let ctc = c * &tc;
        cross = Mat::from_fn(cross.nrows(), cross.ncols(), |k, i| g * (cross[(k, i)] + 2.0 * ctc[(k, i)]) + b);
        out.push((cross.transpose().to_owned(), diag.clone()));
    }
    out
}

/// Predictions of a sampled full fit: the test rows of the identity activation through the
/// sampled path equal the linear closed form's to Monte-Carlo error (relative to their shift
/// from the NNGP rows), and at `N = inf`-like widths (`Ct -> 0`) they are the NNGP rows.
#[test]
fn sampled_test_rows_linear_and_nngp() {
    let prob = problem(Activation::Linear, 2, 1.1, 0.3);
    let (xt, _) = data(3, 9, 11);
    let (x, _) = data(6, 9, 3);
    let kx = crate::kernels::input::input_kernel(xt.as_ref(), x.as_ref(), 1.1, 0.3, Par::Seq);
    let kd = crate::kernels::input::input_kernel_diag(xt.as_ref(), 1.1, 0.3);
    let t = 0.05;
    let o = opts(20_000);
    for n in [4.0, 1e9] {
        let exact = prob.anneal(None, n, t, &o, Par::Seq, &Control::default()).unwrap();
        let s = prob.anneal_sampled(n, t, &o, Par::Seq, &Control::default()).unwrap();
        assert!(s.report.converged && s.draws.len() == 2);
        let rows = prob.sampled_test_rows(&s.kernels, &s.conjugates, &s.draws, kx.as_ref(), &kd, Par::Seq).unwrap();
        let lin = linear_rows(&prob, &exact, &kx, &kd);
        let nngp = linear_rows(&prob, &prob.anneal(None, f64::INFINITY.min(1e300), t, &o, Par::Seq, &Control::default()).unwrap(), &kx, &kd);
        for l in 0..2 {
            let shift = diff(&lin[l].0, &nngp[l].0).norm_l2();
            let err = diff(&rows[l].0, &lin[l].0).norm_l2();
            let derr = rows[l].1.iter().zip(&lin[l].1).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            let dshift = lin[l].1.iter().zip(&nngp[l].1).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            eprintln!("N {n} layer {l}: cross err {err:.3e} shift {shift:.3e}; diag err {derr:.3e} shift {dshift:.3e}");
            if n < 1e6 {
                assert!(err < 0.15 * shift && derr < 0.15 * dshift, "layer {l}: {err} {shift} {derr} {dshift}");
            } else {
                assert!(err < 1e-6 * lin[l].0.norm_l2() && derr < 1e-6, "layer {l}: {err} {derr}");
            }
        }
    }
}
