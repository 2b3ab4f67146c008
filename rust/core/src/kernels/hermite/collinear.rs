//! Collinear entries (`rho = +-1`) as 1-D integrals (mesh rule; Gauss-Hermite for callables), and the values of the entries
//! that miss the expansion's error bound (the 1-D rule where collinear, else the closed form or
//! the polar quadrature).
use super::*;
use crate::error::invalid;
use crate::kernels::activation::Expectation;

/// Entries with `1 - |rho| <= COLLINEAR` whose points both pass the 1-D rule's check are
/// integrated as 1-D expectations by [`collinear`] instead of the polar quadrature (whose
/// order-128 rule is only ~1e-9 accurate there); setting `|rho| = 1` costs at most ~1e-12.
pub const COLLINEAR: f64 = 1e-12;

/// Whether an entry of correlation `r` is collinear (see [`COLLINEAR`]).
#[inline]
pub fn is_collinear(r: f64) -> bool {
    1.0 - r.abs() <= COLLINEAR
}

/// `E[phi^(kf)(sqrt(a) z) phi^(kg)(sign sqrt(b) z)]` (`phi^(k)` the k-th derivative; k <= 1 for
/// callables), `z ~ N(0, 1)`, for each `(a[k], b[k], sign[k])`: the collinear (`rho = +-1`)
/// bivariate expectation as a 1-D integral, by the mesh rule ([`mesh`]) for the built-in
/// activations and the main Gauss-Hermite rule for callables.
pub fn collinear(act: &Activation, a: &[f64], b: &[f64], sign: &[f64], (kf, kg): (u8, u8), out: &mut [f64]) -> Result<()> {
    if !matches!(act, Activation::Custom(_)) {
        for (k, o) in out.iter_mut().enumerate() {
            *o = mesh::mesh_collinear(act, a[k], b[k], sign[k], (kf, kg));
        }
        return Ok(());
    }
    let r = rules();
    let km = r.main.z.len();
    let mut x = vec![0.0; 4 * km];
    let mut v = vec![0.0; 4 * km];
    for k in 0..out.len() {
        let (qa, qb) = (a[k].max(0.0).sqrt(), sign[k] * b[k].max(0.0).sqrt());
        for (n, &z) in r.main.z.iter().enumerate() {
            (x[n], x[km + n], x[2 * km + n], x[3 * km + n]) = (qa * z, -qa * z, qb * z, -qb * z);
        }
        match act {
            Activation::Custom(f) => {
                if kf.max(kg) > 1 {
                    return Err(invalid("activation", "phi'' of a callable is not available"));
                }
                let (xf, xg) = x.split_at(2 * km);
                let (vf, vg) = v.split_at_mut(2 * km);
                eval_custom(f.as_ref(), xf, vf, kf == 1)?;
                eval_custom(f.as_ref(), xg, vg, kg == 1)?;
            }
            act => {
                for (n, (v, &x)) in v.iter_mut().zip(&x).enumerate() {
                    *v = derivative_k(act, x, if n < 2 * km { kf } else { kg });
                }
            }
        }
        out[k] = (0..km).map(|n| r.main.w[n] * (v[n] * v[2 * km + n] + v[km + n] * v[3 * km + n])).sum();
    }
    Ok(())
}

/// The expectations (`e`, and `d` if given) of fallback entries `(a, b, c)`: the 1-D rule
/// ([`collinear`]) where the correlation is `+-1` to [`is_collinear`]'s tolerance and both
/// points pass the rule's check for phi (`reliable(q).0`) or phi' (`.1`); the closed form or
/// polar quadrature of `fb` elsewhere.
pub fn fallback_values(
    fb: &Expectation<'_>,
    reliable: &dyn Fn(usize) -> (bool, bool),
    a: &[f64],
    b: &[f64],
    c: &[f64],
    e: &mut [f64],
    mut d: Option<&mut [f64]>,
) -> Result<()> {
    let n = a.len();
    let want_d = d.is_some();
    let flags: Vec<(bool, bool)> = (0..n)
        .map(|q| {
            if fb.act.has_closed_form() || !is_collinear(correlation(a[q], b[q], c[q])) {
                (false, false)
            } else {
                reliable(q)
            }
        })
        .collect();
    let rest: Vec<usize> = (0..n).filter(|&q| !flags[q].0 || (want_d && !flags[q].1)).collect();
    if flags.iter().all(|f| !f.0 && !f.1) {
        return fb.batch(a, b, c, e, d);
    }
    let pick = |v: &[f64], idx: &[usize]| -> Vec<f64> { idx.iter().map(|&q| v[q]).collect() };
    if !rest.is_empty() {
        let (ra, rb, rc) = (pick(a, &rest), pick(b, &rest), pick(c, &rest));
        let (mut re, mut rd) = (vec![0.0; rest.len()], vec![0.0; rest.len()]);
        fb.batch(&ra, &rb, &rc, &mut re, want_d.then_some(&mut rd[..]))?;
        for (k, &q) in rest.iter().enumerate() {
            e[q] = re[k];
            if let Some(d) = d.as_deref_mut() {
                d[q] = rd[k];
            }
        }
    }
    let one_d = |which: usize, out: &mut [f64]| -> Result<()> {
        let col: Vec<usize> = (0..n).filter(|&q| if which == 0 { flags[q].0 } else { flags[q].1 }).collect();
        let sign: Vec<f64> = col.iter().map(|&q| correlation(a[q], b[q], c[q]).signum()).collect();
        let mut v = vec![0.0; col.len()];
        collinear(fb.act, &pick(a, &col), &pick(b, &col), &sign, (which as u8, which as u8), &mut v)?;
        for (k, &q) in col.iter().enumerate() {
            out[q] = v[k];
        }
        Ok(())
    };
    one_d(0, e)?;
    if let Some(d) = d {
        one_d(1, d)?;
    }
    Ok(())
}
