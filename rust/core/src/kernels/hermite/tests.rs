use super::*;
use crate::kernels::activation::{closed_form, Expectation, Method};
use crate::kernels::quadrature::PolarRule;

#[test]
fn gauss_hermite_moments() {
    let r = gauss_hermite(GH_NODES);
    // E[z^{2k}] = (2k-1)!!
    let mut df = 1.0;
    for k in 0..40 {
        if k > 0 {
            df *= (2 * k - 1) as f64;
        }
        let m: f64 = r.z.iter().zip(&r.w).map(|(z, w)| 2.0 * w * z.powi(2 * k as i32)).sum();
        assert!((m - df).abs() <= 1e-12 * df, "k={k}: {m} vs {df}");
    }
}

fn expansion(act: &Activation, a: f64, b: f64, c: f64, d: bool) -> (f64, f64, bool) {
    let ta = HermiteTable::new(act, &[a], d).unwrap();
    let tb = HermiteTable::new(act, &[b], d).unwrap();
    let (mut e, mut dd, mut rho, mut fb) = ([0.0], [0.0], Vec::new(), Vec::new());
    entries(&ta, 0, &tb, 0, a, &[b], &[c], &mut e, if d { Some(&mut dd) } else { None }, &mut rho, &mut fb);
    (e[0], dd[0], fb.is_empty())
}

#[test]
fn matches_closed_forms_and_quadrature() {
    let rule = PolarRule::new(128);
    let cases = [(1.0, 1.0, 0.3), (2.0, 0.5, -0.6), (0.7, 1.3, 0.8), (1.5, 1.5, 1.4), (1.0, 1.0, 1.0)];
    for act in [Activation::Relu, Activation::Erf, Activation::Tanh, Activation::Gelu, Activation::Softplus, Activation::Linear] {
        for &(a, b, c) in &cases {
            let (e, d, ok) = expansion(&act, a, b, c, true);
            let (re, rd) = match closed_form(&act, a, b, c) {
                Some(v) => v,
                None => {
                    let ex = Expectation { act: &act, method: Method::Quadrature, rule: &rule };
                    let (mut e, mut d) = ([0.0], [0.0]);
                    ex.batch(&[a], &[b], &[c], &mut e, Some(&mut d)).unwrap();
                    (e[0], d[0])
                }
            };
            if ok {
                let scale = (a * b).sqrt().max(1.0);
                assert!((e - re).abs() <= 1e-10 * scale, "{act:?} {a} {b} {c}: {e} vs {re}");
                assert!((d - rd).abs() <= 1e-10, "{act:?} {a} {b} {c}: {d} vs {rd}");
            }
            // smooth activations at moderate correlation never need the fallback
            let rho = c / (a * b).sqrt();
            if !matches!(act, Activation::Relu) && rho.abs() < 0.85 {
                assert!(ok, "{act:?} {a} {b} {c} fell back");
            }
        }
    }
}

/// tanh as a callable: the Gauss-Hermite rule and its check (the built-in tanh has the mesh rule).
struct TanhCallable;

impl crate::kernels::activation::ElementwiseFn for TanhCallable {
    fn eval(&self, x: &[f64], out: &mut [f64]) -> std::result::Result<(), String> {
        out.iter_mut().zip(x).for_each(|(o, x)| *o = x.tanh());
        Ok(())
    }
    fn eval_derivative(&self, x: &[f64], out: &mut [f64]) -> std::result::Result<(), String> {
        out.iter_mut().zip(x).for_each(|(o, x)| *o = 1.0 - x.tanh() * x.tanh());
        Ok(())
    }
}

#[test]
fn an_unreliable_point_falls_back_even_against_a_zero_tail() {
    // tanh' as a callable at variance 5.35 fails the Gauss-Hermite rule check (infinite tail); at
    // 0.25 its tail is ~0 (rounding of the residual): the product must not be 0 x inf = NaN (which
    // passed the bound before) nor a tiny finite number
    let (a, b) = (5.348387306158891, 0.24858448563804544);
    let act = Activation::Custom(std::sync::Arc::new(TanhCallable));
    let t = HermiteTable::new(&act, &[a, b], true).unwrap();
    let d = t.d.as_ref().unwrap();
    assert!(d.2[0].is_infinite() && d.2[1] <= 1e-12, "{:?}", (d.2[0], d.2[1]));
    let c = 0.9992 * (a * b).sqrt();
    let (mut e, mut dd, mut rho, mut fall) = ([0.0], [0.0], Vec::new(), Vec::new());
    entries(&t, 0, &t, 1, a, &[b], &[c], &mut e, Some(&mut dd), &mut rho, &mut fall);
    assert_eq!(fall.len(), 1);
    assert!(fall[0].d);
}

#[test]
fn collinear_entries_are_the_1d_rule() {
    // E[tanh(sqrt(a) z) tanh(+-sqrt(b) z)] by the 1-D rule against an adaptive-free check:
    // b = a gives E[tanh^2] = m0 of the table
    let a = 0.8;
    let t = HermiteTable::new(&Activation::Tanh, &[a], false).unwrap();
    let mut out = [0.0; 2];
    collinear(&Activation::Tanh, &[a, a], &[a, a], &[1.0, -1.0], (0, 0), &mut out).unwrap();
    assert!((out[0] - t.m0[0]).abs() <= 1e-15 && (out[1] + t.m0[0]).abs() <= 1e-15);
}

#[test]
fn fallback_takes_the_1d_rule_for_phi_even_when_phi_prime_needs_the_quadrature() {
    let (a, b): (f64, f64) = (2.0673601445490135, 5.200794983990898);
    let c = -(a * b).sqrt();
    let rule = PolarRule::new(128);
    let fb = Expectation { act: &Activation::Tanh, method: Method::Quadrature, rule: &rule };
    let (mut e, mut d, mut qe, mut qd) = ([0.0], [0.0], [0.0], [0.0]);
    fallback_values(&fb, &|_| (true, false), &[a], &[b], &[c], &mut e, Some(&mut d)).unwrap();
    fb.batch(&[a], &[b], &[c], &mut qe, Some(&mut qd)).unwrap();
    let mut o = [0.0];
    collinear(&Activation::Tanh, &[a], &[b], &[-1.0], (0, 0), &mut o).unwrap();
    assert_eq!(e[0], o[0]);
    assert_eq!(d[0], qd[0]);
}

#[test]
fn variance_groups_merge_rounding_level_differences_only() {
    let s = [1.0, 2.0, 1.0 + 1e-15, 2.0 * (1.0 + 1e-10), 1.0 - 1e-16, 2.0];
    let (reps, group) = variance_groups(&s);
    assert_eq!(reps, vec![1.0 - 1e-16, 2.0, 2.0 * (1.0 + 1e-10)]);
    assert_eq!(group, vec![0, 1, 0, 2, 0, 1]);
    // a shared table equals the per-point one to ~1e-13 of the scale
    let act = Activation::Tanh;
    let merged = HermiteTable::new(&act, &[1.0, 1.0 + 5e-14], true).unwrap();
    let alone = HermiteTable::new(&act, &[1.0 + 5e-14], true).unwrap();
    for n in 0..=MAX_ORDER {
        assert!((merged.c[n * 2 + 1] - alone.c[n]).abs() <= 1e-13, "n={n}");
    }
}

#[test]
fn builtin_tables_are_reliable_at_large_variances() {
    // the mesh rule: finite tails (no rule check), and E[tanh^2] at q = 200 against adaptive
    // quadrature (scipy quad split at 0, +-1, +-5, +-40 over sqrt(q), epsrel 2e-14:
    // 0.9436965507960997); the Gauss-Hermite rule (400 nodes) was 1.2e-2 off
    let t = HermiteTable::new(&Activation::Tanh, &[200.0, 1e6], true).unwrap();
    assert!(t.rt.iter().chain(&t.d.as_ref().unwrap().2).all(|r| r.is_finite()));
    assert!((t.m0[0] - 0.9436965507960997).abs() <= 1e-14);
    let mut h = [0.0];
    collinear(&Activation::Tanh, &[200.0], &[200.0], &[1.0], (0, 0), &mut h).unwrap();
    assert!((h[0] - t.m0[0]).abs() <= 1e-15);
}
