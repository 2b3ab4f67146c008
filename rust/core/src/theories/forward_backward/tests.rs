use super::*;
use crate::control::no_control;
use crate::rng::Rng;

fn problem(p: usize, d: usize, depth: usize, sw: f64, sb: f64, seed: u64) -> Problem {
    let mut rng = Rng::new(seed, 0);
    let x = Mat::from_fn(p, d, |_, _| rng.normal());
    let y = Mat::from_fn(p, 1, |i, _| (x[(i, 0)] - 0.5 * x[(i, 1)]).signum());
    Problem::new(
        &Mlp::new(depth, Activation::Linear, sw, sb),
        x.as_ref(),
        y.as_ref(),
        Par::Seq,
    )
    .unwrap()
}

fn maxabs(a: &Mat<f64>, b: &Mat<f64>) -> f64 {
    (0..a.nrows())
        .flat_map(|i| (0..a.ncols()).map(move |j| (i, j)))
        .map(|(i, j)| (a[(i, j)] - b[(i, j)]).abs())
        .fold(0.0, f64::max)
}

/// For g = 1, b = 0 the first order is Zavatone-Veth et al.'s `K + (l/N) K Phi K`.
#[test]
fn perturbative_is_the_first_order_finite_width_kernel() {
    let prob = problem(10, 6, 3, 1.0, 0.0, 1);
    let (n, t) = (50.0, 0.1);
    let (cs, _) = prob.perturbative(n, t, Par::Seq).unwrap();
    let k = &prob.k0;
    let ct = prob.terminal(k, n, t, Par::Seq).unwrap(); // Phi / (2N)
    let kpk = mul(
        mul(k.as_ref(), ct.as_ref(), 1.0, Par::Seq).as_ref(),
        k.as_ref(),
        2.0 * n,
        Par::Seq,
    );
    for (l, c) in cs.iter().enumerate() {
        let zv = Mat::from_fn(10, 10, |i, j| k[(i, j)] + (l + 1) as f64 / n * kpk[(i, j)]);
        assert!(maxabs(c, &zv) < 1e-12, "layer {l}");
    }
}

/// The annealed solution satisfies the equations, is PSD, approaches first order at large
/// width, and the NNGP as N -> infinity.
#[test]
fn annealed_solution_solves_the_equations() {
    let prob = problem(12, 8, 2, 1.1, 0.2, 2);
    let opts = Options::default();
    let t = 0.05;
    let s = prob
        .anneal(None, 12.0, t, &opts, Par::Seq, no_control())
        .unwrap();
    assert!(s.report.converged, "{:?}", s.report);
    let (res, _, psd) = prob.residual(&s.kernels, 12.0, t, true, Par::Seq).unwrap();
    assert!(psd);
    for (r, c) in res.iter().zip(&s.kernels) {
        assert!(frob(r) < 1e-9 * frob(c));
    }
    assert!(s.report.stages.iter().all(|&w| w.abs() >= 12.0 - 1e-9));
    // large width: full minus NNGP agrees with first order to O(1/N^2)
    let n = 1e5;
    let big = prob
        .anneal(None, n, t, &opts, Par::Seq, no_control())
        .unwrap();
    let (pert, _) = prob.perturbative(n, t, Par::Seq).unwrap();
    let k = prob.nngp();
    for l in 0..2 {
        let shift = maxabs(&pert[l], &k[l]);
        assert!(shift > 0.0 && maxabs(&big.kernels[l], &pert[l]) < 1e-3 * shift);
    }
}

#[test]
fn full_method_solves_nonlinear_nets() {
    let mut rng = Rng::new(0, 0);
    let x = Mat::from_fn(4, 2, |_, _| rng.normal());
    let y = Mat::from_fn(4, 1, |i, _| i as f64);
    let prob = Problem::new(
        &Mlp::new(1, Activation::Erf, 1.0, 0.0),
        x.as_ref(),
        y.as_ref(),
        Par::Seq,
    )
    .unwrap();
    let pt = [Point { width: 10.0, temperature: 0.1 }];
    let opts = Options { n_samples: 2000, ..Options::default() };
    let s = solve_path(&prob, &pt, &opts, 1, &no_control()).unwrap();
    let r = &s.solutions[0].report;
    assert!(r.converged && r.residual.is_finite() && r.residual < 1e-8, "{r:?}");
    assert_eq!(r.solver, "newton_krylov_sampled");
}
