use super::*;

#[test]
fn expectation_gradients_match_finite_differences() {
    let rule = PolarRule::new(64);
    for act in [
        Activation::Linear,
        Activation::Relu,
        Activation::Erf,
        Activation::Tanh,
        Activation::Gelu,
        Activation::Softplus,
    ] {
        let g = ExpectationGrad {
            act: &act,
            rule: &rule,
        };
        let eval = |a: f64, b: f64, c: f64| {
            let (mut e, mut dc, mut da, mut db) = ([0.0], [0.0], [0.0], [0.0]);
            g.batch(&[a], &[b], &[c], &mut e, &mut dc, &mut da, Some(&mut db))
                .unwrap();
            (e[0], dc[0], da[0], db[0])
        };
        for &(a, b, c) in &[
            (1.0, 1.0, 0.4),
            (2.0, 0.5, -0.8),
            (0.7, 0.9, 0.6),
            (1.3, 0.2, 0.0),
        ] {
            let (_, dc, da, db) = eval(a, b, c);
            let h = 1e-5;
            let fdc = (eval(a, b, c + h).0 - eval(a, b, c - h).0) / (2.0 * h);
            let fda = (eval(a + h, b, c).0 - eval(a - h, b, c).0) / (2.0 * h);
            let fdb = (eval(a, b + h, c).0 - eval(a, b - h, c).0) / (2.0 * h);
            assert!(
                (dc - fdc).abs() < 1e-6,
                "{act:?} dc {a} {b} {c}: {dc} vs {fdc}"
            );
            assert!(
                (da - fda).abs() < 1e-6,
                "{act:?} da {a} {b} {c}: {da} vs {fda}"
            );
            assert!(
                (db - fdb).abs() < 1e-6,
                "{act:?} db {a} {b} {c}: {db} vs {fdb}"
            );
        }
        // diagonal: dc + 2 da = d/dk E[phi(u)^2]
        let k = 0.8;
        let (_, dc, da, _) = eval(k, k, k);
        let h = 1e-5;
        let fd = (eval(k + h, k + h, k + h).0 - eval(k - h, k - h, k - h).0) / (2.0 * h);
        assert!(
            (dc + 2.0 * da - fd).abs() < 1e-6,
            "{act:?} diagonal: {} vs {fd}",
            dc + 2.0 * da
        );
    }
}

#[test]
fn quadrature_matches_closed_forms() {
    let rule = PolarRule::new(48);
    for act in [Activation::Linear, Activation::Relu, Activation::Erf] {
        let ex = Expectation {
            act: &act,
            method: Method::Quadrature,
            rule: &rule,
        };
        for &(a, b, c) in &[
            (1.0, 1.0, 0.4),
            (2.0, 0.5, -0.8),
            (0.7, 0.7, 0.7),
            (1.3, 0.2, 0.0),
        ] {
            let (mut e, mut d) = ([0.0], [0.0]);
            ex.batch(&[a], &[b], &[c], &mut e, Some(&mut d)).unwrap();
            let (ce, cd) = closed_form(&act, a, b, c).unwrap();
            assert!(
                (e[0] - ce).abs() < 1e-9,
                "{act:?} {a} {b} {c}: {} vs {ce}",
                e[0]
            );
            assert!(
                (d[0] - cd).abs() < 1e-9,
                "{act:?} deriv {a} {b} {c}: {} vs {cd}",
                d[0]
            );
        }
    }
}
