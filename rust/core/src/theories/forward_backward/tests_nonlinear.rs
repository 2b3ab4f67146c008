use super::nonlinear::*;
use super::*;
use crate::rng::Rng;

fn data(p: usize, d: usize, seed: u64) -> (Mat<f64>, Mat<f64>) {
    let mut rng = Rng::new(seed, 0);
    let x = Mat::from_fn(p, d, |_, _| rng.normal());
    let y = Mat::from_fn(p, 1, |i, _| (x[(i, 0)] * x[(i, 1)]).signum());
    (x, y)
}

fn maxabs(a: &Mat<f64>, b: &Mat<f64>) -> f64 {
    (0..a.nrows())
        .flat_map(|i| (0..a.ncols()).map(move |j| (i, j)))
        .map(|(i, j)| (a[(i, j)] - b[(i, j)]).abs())
        .fold(0.0, f64::max)
}

fn sym_rand(p: usize, seed: u64) -> Mat<f64> {
    let mut rng = Rng::new(seed, 7);
    let a = Mat::from_fn(p, p, |_, _| rng.normal());
    Mat::from_fn(p, p, |i, j| a[(i, j)] + a[(j, i)])
}

fn problem(act: Activation, depth: usize, sw: f64, sb: f64) -> Problem {
    let (x, y) = data(8, 5, 3);
    Problem::new(&Mlp::new(depth, act, sw, sb), x.as_ref(), y.as_ref(), Par::Seq).unwrap()
}

/// `<M, J[dC]> = <J^T[M], dC>`, and `J` is the derivative of the NNGP map (central differences).
#[test]
fn jacobian_adjoint_and_finite_differences() {
    for act in [Activation::Erf, Activation::Tanh] {
        let prob = problem(act.clone(), 1, 1.3, 0.2);
        let rule = Quad::polar(64);
        let m = LayerMap::new(&act, &rule, prob.g, prob.b, prob.k0.as_ref()).unwrap();
        let (dc, mm) = (sym_rand(8, 1), sym_rand(8, 2));
        let lhs: f64 = (0..8).flat_map(|i| (0..8).map(move |j| (i, j))).map(|(i, j)| mm[(i, j)] * m.jvp(dc.as_ref())[(i, j)]).sum();
        let rhs: f64 = (0..8).flat_map(|i| (0..8).map(move |j| (i, j))).map(|(i, j)| m.vjp(mm.as_ref())[(i, j)] * dc[(i, j)]).sum();
        assert!((lhs - rhs).abs() < 1e-10 * lhs.abs().max(1.0), "{lhs} {rhs}");
        let eps = 1e-5;
        let cp = Mat::from_fn(8, 8, |i, j| prob.k0[(i, j)] + eps * dc[(i, j)]);
        let cm = Mat::from_fn(8, 8, |i, j| prob.k0[(i, j)] - eps * dc[(i, j)]);
        let fp = LayerMap::new(&act, &rule, prob.g, prob.b, cp.as_ref()).unwrap().f;
        let fm = LayerMap::new(&act, &rule, prob.g, prob.b, cm.as_ref()).unwrap().f;
        let fd = Mat::from_fn(8, 8, |i, j| (fp[(i, j)] - fm[(i, j)]) / (2.0 * eps));
        assert!(maxabs(&fd, &m.jvp(dc.as_ref())) < 1e-6, "{}", maxabs(&fd, &m.jvp(dc.as_ref())));
    }
}

/// Linear activation through the nonlinear code path: `J = g` exactly, `V[A] -> 2 C A C` (MC),
/// hence the linear closed-form first order within the Monte-Carlo error.
#[test]
fn linear_through_the_nonlinear_path() {
    let prob = problem(Activation::Linear, 2, 1.1, 0.3);
    let (n, t) = (20.0, 0.1);
    let (cs, ct) = prob.perturbative(n, t, Par::Seq).unwrap();
    let nl = prob.perturbative_nonlinear(n, t, 200_000, 5, Par::Seq).unwrap();
    for l in 0..2 {
        assert!(maxabs(&ct[l], &nl.conjugates[l]) < 1e-13);
        let nngp = prob.nngp();
        let d_exact = Mat::from_fn(8, 8, |i, j| cs[l][(i, j)] - nngp[l][(i, j)]);
        let d_mc = Mat::from_fn(8, 8, |i, j| nl.kernels[l][(i, j)] - nngp[l][(i, j)]);
        let rel = maxabs(&d_exact, &d_mc) / d_exact.norm_max();
        assert!(rel < 0.03, "layer {l}: relative MC error {rel}");
    }
}

/// `N = inf`: the NNGP kernels exactly; the first-order shift scales as `1/N`.
#[test]
fn infinite_width_and_one_over_n() {
    let prob = problem(Activation::Erf, 2, 1.5, 0.1);
    let inf = prob.perturbative_nonlinear(f64::INFINITY, 0.1, 1000, 0, Par::Seq).unwrap();
    let rule = Quad::polar(64);
    let (ks, _) = nngp(&Activation::Erf, &rule, prob.g, prob.b, &prob.k0, 2).unwrap();
    for l in 0..2 {
        assert_eq!(maxabs(&inf.kernels[l], &ks[l + 1]), 0.0);
    }
    let a = prob.perturbative_nonlinear(10.0, 0.1, 1000, 0, Par::Seq).unwrap();
    let b = prob.perturbative_nonlinear(40.0, 0.1, 1000, 0, Par::Seq).unwrap();
    for l in 0..2 {
        let da = Mat::from_fn(8, 8, |i, j| a.kernels[l][(i, j)] - ks[l + 1][(i, j)]);
        let db = Mat::from_fn(8, 8, |i, j| 4.0 * (b.kernels[l][(i, j)] - ks[l + 1][(i, j)]));
        assert!(maxabs(&da, &db) < 1e-12 * da.norm_max().max(1.0));
    }
}

/// The training block of a joint (train + test) pass is the training pass.
#[test]
fn joint_pass_matches_the_training_pass() {
    let (x, y) = data(8, 5, 3);
    let net = Mlp::new(2, Activation::Erf, 1.2, 0.1);
    let prob = Problem::new(&net, x.as_ref(), y.as_ref(), Par::Seq).unwrap();
    let s = prob.perturbative_nonlinear(15.0, 0.2, 2000, 9, Par::Seq).unwrap();
    let (xt, _) = data(3, 5, 4);
    let xj = Mat::from_fn(11, 5, |i, j| if i < 8 { x[(i, j)] } else { xt[(i - 8, j)] });
    let k0 = input_kernel(xj.as_ref(), xj.as_ref(), net.sigma_w, net.sigma_b, Par::Seq);
    let joint = joint_first_order(&net, &k0, &s.conjugates, 2000, 9, Par::Seq).unwrap();
    for l in 0..2 {
        let block = Mat::from_fn(8, 8, |i, j| joint[l][(i, j)]);
        assert!(maxabs(&block, &s.kernels[l]) < 1e-10, "{}", maxabs(&block, &s.kernels[l]));
    }
}

/// The layer maps of tanh use the lazy kernels' Hermite path ([`Quad::of`]): values and
/// Jacobian coefficients agree with the order-128 polar rule, and the NNGP kernels of a
/// problem equal the lazy kernels.
#[test]
fn hermite_layer_map_matches_quadrature_and_lazy_kernels() {
    let net = Mlp::new(2, Activation::Tanh, 1.3, 0.3);
    let prob = problem(Activation::Tanh, 2, 1.3, 0.3);
    let quad = Quad::of(&net);
    assert!(quad.hermite);
    let h = LayerMap::new(&net.activation, &quad, prob.g, prob.b, prob.k0.as_ref()).unwrap();
    let q = LayerMap::new(&net.activation, &Quad::polar(128), prob.g, prob.b, prob.k0.as_ref()).unwrap();
    assert!(maxabs(&h.f, &q.f) < 1e-9, "{}", maxabs(&h.f, &q.f));
    assert!(maxabs(&h.d, &q.d) < 1e-8, "{}", maxabs(&h.d, &q.d));
    assert!(maxabs(&h.a, &q.a) < 1e-8, "{}", maxabs(&h.a, &q.a));
    let (x, _) = data(8, 5, 3);
    let xs: Vec<f64> = (0..8).flat_map(|i| (0..5).map(move |j| (i, j))).map(|(i, j)| x[(i, j)]).collect();
    let rows = crate::kernels::net::Rows::new("X", &xs, 8, 5).unwrap();
    let mut lazy = vec![0.0; 64];
    crate::kernels::lazy::lazy_kernels(&net, rows, None, &mut lazy, None, 1, &crate::control::Control::default()).unwrap();
    let (ks, _) = nngp(&net.activation, &quad, prob.g, prob.b, &prob.k0, 2).unwrap();
    let kl = Mat::from_fn(8, 8, |i, j| lazy[i * 8 + j]);
    assert!(maxabs(&ks[2], &kl) < 1e-12, "{}", maxabs(&ks[2], &kl));
}
