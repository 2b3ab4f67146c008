use super::*;
use crate::control::no_control;
use crate::kernels::activation::Activation;

fn data(p: usize, d: usize) -> (Mat<f64>, Mat<f64>) {
    let x = Mat::from_fn(p, d, |i, j| {
        ((i * 7 + j * 13) % 11) as f64 / 5.0 - 1.0 + 0.1 * (i as f64 * 0.37 + j as f64).sin()
    });
    let y = Mat::from_fn(p, 1, |i, _| {
        if (0..d).map(|j| x[(i, j)]).sum::<f64>() > 0.0 {
            1.0
        } else {
            -1.0
        }
    });
    (x, y)
}

fn solve_one(order: Order, chi: f64) -> (Problem<'static>, Solution, Point) {
    solve_deep(1, order, chi)
}

fn solve_deep(depth: usize, order: Order, chi: f64) -> (Problem<'static>, Solution, Point) {
    let (x, y) = data(12, 9);
    let x: &'static Mat<f64> = Box::leak(Box::new(x));
    let net = Mlp::new(depth, Activation::Linear, 1.3, 0.0);
    let prob = Problem::new(&net, x.as_ref(), y.as_ref(), Par::Seq).unwrap();
    let pt = Point {
        width: 10.0,
        temperature: 0.2,
        chi,
    };
    let opts = Options {
        order,
        ..Options::default()
    };
    let path = solve_path(&prob, &net, &[pt], &opts, None, 1, no_control()).unwrap();
    (prob, path.solutions.into_iter().next().unwrap(), pt)
}

#[test]
fn the_root_converges_and_the_mean_is_the_rescaled_gp() {
    for order in [Order::Tree, Order::Corrected] {
        for chi in [1.0, 10.0, 100.0] {
            let (prob, s, pt) = solve_one(order, chi);
            assert!(s.report.converged, "{order:?} {chi}");
            let (f, _) = root::residual(&prob.spec(&pt, order), s.scale);
            assert!(f.abs() < 1e-10);
            // the GP on `kernel` with noise T has mean y - t on the training points
            let p = prob.y.nrows();
            for i in 0..p {
                let m: f64 = (0..p).map(|j| s.kernel[(i, j)] * s.dual[(j, 0)]).sum();
                assert!(
                    (m - s.train_mean[(i, 0)]).abs() < 1e-10,
                    "{order:?} {chi}: {m} vs {}",
                    s.train_mean[(i, 0)]
                );
            }
        }
    }
}

#[test]
fn tree_level_weight_spike_is_the_scale() {
    for chi in [1.0, 30.0] {
        let (_, s, _) = solve_one(Order::Tree, chi);
        assert!(
            (s.weight_eigenvalues[0] - s.scale).abs() < 1e-9 * s.scale,
            "{} vs {}",
            s.weight_eigenvalues[0],
            s.scale
        );
        assert!((s.weight_overlap - 1.0).abs() < 1e-9);
        assert!(s.weight_eigenvalues[1..]
            .iter()
            .all(|e| (e - 1.0).abs() < 1e-9));
    }
}

#[test]
fn bad_points_name_the_argument() {
    let (x, y) = data(5, 3);
    let net = Mlp::new(1, Activation::Linear, 1.0, 0.0);
    let prob = Problem::new(&net, x.as_ref(), y.as_ref(), Par::Seq).unwrap();
    let opts = Options::default();
    for (pt, name) in [
        (
            Point {
                width: 5.0,
                temperature: 0.1,
                chi: 0.0,
            },
            "chi",
        ),
        (
            Point {
                width: 5.0,
                temperature: -1.0,
                chi: 1.0,
            },
            "temperature",
        ),
        (
            Point {
                width: f64::NAN,
                temperature: 0.1,
                chi: 1.0,
            },
            "width",
        ),
    ] {
        let e = solve_path(&prob, &net, &[pt], &opts, None, 1, no_control()).unwrap_err();
        assert!(e.to_string().starts_with(name), "{e}");
    }
    let relu = Mlp::new(1, Activation::Relu, 1.0, 0.0);
    assert!(Problem::new(&relu, x.as_ref(), y.as_ref(), Par::Seq)
        .unwrap_err()
        .to_string()
        .starts_with("net"));
}

#[test]
fn auto_order_is_the_default_and_the_closed_form_solves_it_corrected() {
    assert_eq!(Options::default().order, Order::Auto);
    assert_eq!(Order::Auto.resolve(false), Order::Corrected);
    assert_eq!(Order::Auto.resolve(true), Order::Tree);
    assert_eq!(Order::Tree.resolve(false), Order::Tree);
    assert_eq!(Order::Corrected.resolve(true), Order::Corrected);
    let (_, auto, _) = solve_one(Order::Auto, 3.0);
    let (_, corr, _) = solve_one(Order::Corrected, 3.0);
    assert_eq!(auto.scale.to_bits(), corr.scale.to_bits());
    assert!(Order::from_name("auto").is_ok() && Order::from_name("loop").is_err());
}

#[test]
fn deep_nets_take_the_global_minimum_and_keep_the_rescaled_gp_mean() {
    for depth in [2, 3] {
        for order in [Order::Tree, Order::Corrected] {
            for chi in [1.0, 10.0, 100.0] {
                let (prob, s, pt) = solve_deep(depth, order, chi);
                assert!(s.report.converged, "{depth} {order:?} {chi}");
                let q = s.layer_scale;
                assert!((s.scale - q.powi(depth as i32)).abs() < 1e-12 * s.scale);
                let (f, _) = root::residual(&prob.spec(&pt, order), q);
                assert!(f.abs() < 1e-10, "{f}");
                assert!(!s.minima.is_empty());
                assert!(s.minima.iter().all(|m| m.1 >= s.action - 1e-12 * s.action.abs()));
                let p = prob.y.nrows();
                for i in 0..p {
                    let m: f64 = (0..p).map(|j| s.kernel[(i, j)] * s.dual[(j, 0)]).sum();
                    assert!((m - s.train_mean[(i, 0)]).abs() < 1e-10, "{depth} {order:?} {chi}");
                }
                if order == Order::Tree {
                    // the first layer's spike is the layer scale Q, not the kernel scale U
                    assert!((s.weight_eigenvalues[0] - q).abs() < 1e-9 * q, "{} vs {q}", s.weight_eigenvalues[0]);
                    assert!((s.weight_overlap - 1.0).abs() < 1e-9);
                }
            }
        }
    }
}

#[test]
fn deep_curvature_is_the_precision_of_the_kernel_scale() {
    // S_UU with the layer scales integrated out: 1 / (U^2 1^T H^-1 1), H the Hessian of S in ln Q_l;
    // along the diagonal S(z) = S(ln Q_l = z / L), and the transverse directions only add N Q / 2
    for order in [Order::Tree, Order::Corrected] {
        let (prob, s, pt) = solve_deep(2, order, 5.0);
        let sp = prob.spec(&pt, order);
        let q = s.layer_scale;
        let n = pt.width;
        // S(x1, x2) with x = ln Q_l, through the one-scale action at the geometric mean and the prior
        let act = |x1: f64, x2: f64| {
            let qm = ((x1 + x2) / 2.0).exp();
            root::action(&sp, qm) - n * (qm - qm.ln())
                + 0.5 * n * (x1.exp() - x1 + x2.exp() - x2)
        };
        let (z, h) = (q.ln(), 1e-4);
        let d2 = |a: (f64, f64), b: (f64, f64)| {
            (act(z + a.0 * h + b.0 * h, z + a.1 * h + b.1 * h)
                - act(z + a.0 * h - b.0 * h, z + a.1 * h - b.1 * h)
                - act(z - a.0 * h + b.0 * h, z - a.1 * h + b.1 * h)
                + act(z - a.0 * h - b.0 * h, z - a.1 * h - b.1 * h))
                / (4.0 * h * h)
        };
        let (h11, h12, h22) = (d2((1.0, 0.0), (1.0, 0.0)), d2((1.0, 0.0), (0.0, 1.0)), d2((0.0, 1.0), (0.0, 1.0)));
        let det = h11 * h22 - h12 * h12;
        let var_z = (h22 + h11 - 2.0 * h12) / det;
        let want = 1.0 / (s.scale * s.scale * var_z);
        assert!((s.curvature / want - 1.0).abs() < 1e-5, "{order:?}: {} vs {want}", s.curvature);
    }
}
