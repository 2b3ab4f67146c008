use super::*;
use crate::kernels::net::Rows;
use faer::{Mat, Par};
use crate::kernels::activation::Activation;
use crate::control::no_control;
use crate::rng::Rng;

fn data(p: usize, d: usize, c: usize, seed: u64) -> (Vec<f64>, Mat<f64>) {
    let mut rng = Rng::new(seed, 0);
    let x: Vec<f64> = (0..p * d).map(|_| rng.normal()).collect();
    let y = Mat::from_fn(p, c, |i, j| {
        (x[i * d] + 0.5 * x[i * d + 1] * (j as f64 + 1.0)).tanh()
    });
    (x, y)
}

fn net(act: Activation, depth: usize, sb: f64) -> Mlp {
    Mlp::new(depth, act, 1.2, sb)
}

#[test]
fn gradient_matches_finite_differences() {
    let (x, y) = data(12, 5, 2, 1);
    for (act, depth, sb) in [
        (Activation::Erf, 3, 0.2),
        (Activation::Relu, 2, 0.0),
        (Activation::Tanh, 2, 0.3),
        (Activation::Erf, 1, 0.2),
        (Activation::Linear, 1, 0.0),
    ] {
        let mlp = net(act, depth, sb);
        let prob =
            Problem::new(&mlp, Rows::new("X", &x, 12, 5).unwrap(), y.as_ref(), 1, no_control()).unwrap();
        let widths = vec![7.0; depth];
        let q: Vec<f64> = (0..depth).map(|l| 0.8 + 0.2 * l as f64).collect();
        let (_, g, _) = prob
            .action_and_gradient(&widths, 0.1, &q, Par::Seq, no_control())
            .unwrap();
        for l in 0..depth {
            let h = 1e-6;
            let (mut qp, mut qm) = (q.clone(), q.clone());
            qp[l] += h;
            qm[l] -= h;
            let fp = prob
                .action_and_gradient(&widths, 0.1, &qp, Par::Seq, no_control())
                .unwrap()
                .0;
            let fm = prob
                .action_and_gradient(&widths, 0.1, &qm, Par::Seq, no_control())
                .unwrap()
                .0;
            let fd = (fp - fm) / (2.0 * h);
            assert!(
                (g[l] - fd).abs() < 1e-5 * (1.0 + fd.abs()),
                "{l}: {} vs {fd}",
                g[l]
            );
        }
    }
}

#[test]
fn spectral_and_cholesky_agree_and_converge() {
    let (x, y) = data(30, 8, 1, 2);
    for (act, depth) in [(Activation::Erf, 1), (Activation::Linear, 3)] {
        let mlp = net(act, depth, 0.0);
        let prob =
            Problem::new(&mlp, Rows::new("X", &x, 30, 8).unwrap(), y.as_ref(), 1, no_control()).unwrap();
        let pts = [Point {
            widths: vec![20.0; depth],
            temperature: 0.05,
        }];
        let mut sols = vec![];
        for solver in [Solver::Spectral, Solver::Cholesky] {
            let s = solve_path(
                &prob,
                &pts,
                None,
                &Options {
                    solver,
                    ..Default::default()
                },
                2,
                no_control(),
            )
            .unwrap()
            .solutions;
            assert!(
                s[0].report.converged && s[0].report.residual < 1e-10,
                "{solver:?}: {:?}",
                s[0]
            );
            sols.push(s[0].q.clone());
        }
        for l in 0..depth {
            assert!((sols[0][l] - sols[1][l]).abs() < 1e-8, "{sols:?}");
        }
    }
}

/// One hidden layer: the gradient from the trace identities (no P x P inverse) matches finite
/// differences with several 256-column blocks of tr A^{-1}, and is the same on 1 and 2 threads.
#[test]
fn one_layer_gradient_without_the_inverse() {
    let (p, d) = (600, 8);
    let (x, y) = data(p, d, 2, 5);
    let mlp = net(Activation::Relu, 1, 0.1);
    let prob = Problem::new(&mlp, Rows::new("X", &x, p, d).unwrap(), y.as_ref(), 1, no_control()).unwrap();
    let (w, t, q) = ([40.0], 0.05, [0.7]);
    let (_, g, _) = prob.action_and_gradient(&w, t, &q, Par::Seq, no_control()).unwrap();
    let (_, g2, _) = prob.action_and_gradient(&w, t, &q, Par::rayon(2), no_control()).unwrap();
    assert_eq!(g, g2);
    let h = 1e-6;
    let f = |v: f64| prob.action_and_gradient(&w, t, &[v], Par::Seq, no_control()).unwrap().0;
    let fd = (f(q[0] + h) - f(q[0] - h)) / (2.0 * h);
    assert!((g[0] - fd).abs() < 1e-5 * (1.0 + fd.abs()), "{} vs {fd}", g[0]);
}

#[test]
fn infinite_width_pins_q_to_one_and_threads_do_not_matter() {
    let (x, y) = data(25, 6, 1, 3);
    let mlp = net(Activation::Relu, 2, 0.1);
    let prob = Problem::new(&mlp, Rows::new("X", &x, 25, 6).unwrap(), y.as_ref(), 1, no_control()).unwrap();
    let pts = [Point {
        widths: vec![f64::INFINITY, 15.0],
        temperature: 0.1,
    }];
    let a = solve_path(&prob, &pts, None, &Options::default(), 1, no_control()).unwrap().solutions;
    let b = solve_path(&prob, &pts, None, &Options::default(), 2, no_control()).unwrap().solutions;
    assert_eq!(a[0].q[0], 1.0);
    assert!(a[0].report.converged);
    assert_eq!(a[0].q, b[0].q);
}

#[test]
fn an_interrupt_keeps_the_solved_points_and_progress_counts_evaluations() {
    let (x, y) = data(20, 4, 1, 4);
    let mlp = net(Activation::Tanh, 2, 0.1);
    let ctl = Control::new();
    let prob = Problem::new(&mlp, Rows::new("X", &x, 20, 4).unwrap(), y.as_ref(), 1, &ctl).unwrap();
    let pts: Vec<Point> = [200.0, 50.0, 20.0]
        .iter()
        .map(|&w| Point { widths: vec![w; 2], temperature: 0.05 })
        .collect();
    // `finish` runs after each point: its own progress is not counted; cancelling there stops
    // the path at the next point and keeps the two finished ones.
    let path = solve_path_then(&prob, &pts, None, &Options::default(), 1, &ctl, |pt, s| {
        ctl.advance(1000);
        if pt.widths[0] == 50.0 {
            ctl.cancel();
        }
        Ok(s.q.clone())
    })
    .unwrap();
    assert!(path.interrupted);
    assert_eq!(path.solutions.len(), 2);
    let full = solve_path(&prob, &pts[..2], None, &Options::default(), 1, no_control()).unwrap();
    assert!(!full.interrupted);
    for ((s, q), f) in path.solutions.iter().zip(&full.solutions) {
        assert_eq!(&s.q, q);
        assert_eq!(s.q, f.q);
    }
    let n_eval: usize = path.solutions.iter().map(|(s, _)| s.report.n_eval).sum();
    assert_eq!(ctl.progress(), (n_eval as u64, 0));
    // interrupted at the first point: nothing to keep, an error
    let first = solve_path(&prob, &pts, None, &Options::default(), 1, &ctl);
    assert!(matches!(first, Err(crate::error::AkError::Interrupted)));
}

#[test]
fn coarse_start_reaches_the_same_saddle_in_fewer_full_evaluations() {
    // P >= COARSE_MIN_P: the default start solves a P/4 problem first; an explicit all-ones
    // start does not. Same saddle to the tolerance and no more full-size evaluations (on these
    // small random problems both take about as many; on MNIST-5k parity at P = 2000 the coarse
    // start saves 4 of 10: benches/README.md).
    let (p, d) = (COARSE_MIN_P + 44, 30);
    let (x, y) = data(p, d, 1, 7);
    for (act, depth) in [(Activation::Erf, 2), (Activation::Tanh, 1)] {
        let mlp = net(act.clone(), depth, 0.1);
        let prob =
            Problem::new(&mlp, Rows::new("X", &x, p, d).unwrap(), y.as_ref(), 1, no_control()).unwrap();
        let pts = [Point { widths: vec![p as f64 / 2.0; depth], temperature: 0.05 }];
        let opts = Options { solver: Solver::Cholesky, ..Default::default() };
        let ones = vec![1.0; depth];
        let cold = solve_path(&prob, &pts, Some(&ones), &opts, 1, no_control()).unwrap();
        let warm = solve_path(&prob, &pts, None, &opts, 1, no_control()).unwrap();
        let (c, w) = (&cold.solutions[0], &warm.solutions[0]);
        assert!(c.report.converged && w.report.converged);
        for l in 0..depth {
            assert!((c.q[l] - w.q[l]).abs() < 1e-8 * c.q[l], "{act:?}: {:?} vs {:?}", c.q, w.q);
        }
        assert!(
            w.report.n_eval <= c.report.n_eval,
            "{act:?}: coarse start {} evaluations, ones {}",
            w.report.n_eval,
            c.report.n_eval
        );
        // deterministic: the same numbers again
        let again = solve_path(&prob, &pts, None, &opts, 1, no_control()).unwrap();
        assert_eq!(again.solutions[0].q, w.q);
    }
}
