//! Hermite expansions of one entrywise layer map on a symmetric kernel, with the derivatives
//! that kernel renormalization's gradient needs. With `(u, v) ~ N(0, [[a, c], [c, b]])`,
//! `rho = c / sqrt(ab)` and the per-point coefficients `c_n`, `d_n`, `e_n` of phi, phi', phi''
//! (module docs of [`super`]), Mehler's formula for each pair of functions gives
//!
//! `E = sum c_n(a) c_n(b) rho^n`, `dE/dc = E[phi'(u) phi'(v)] = sum d_n(a) d_n(b) rho^n`
//! (Price's theorem), `dE/da = E[phi''(u) phi(v)] / 2 = 1/2 sum e_n(a) c_n(b) rho^n`,
//!
//! with the same truncation rule and error bound as [`super::entries`] (the bound of each pair
//! is the product of its two relative tails). Entries that miss it use the graded polar rule;
//! the diagonal entries (`c = a = b`) are the 1-D (mesh) rule's `E[phi^2]`, `E[phi'^2]` and
//! `E[phi'' phi] / 2`. Only for the smooth built-in activations (tanh, gelu, softplus; phi''
//! is needed at the rule's nodes).
use super::*;
use crate::kernels::activation::{Expectation, ExpectationGrad};

/// Per-point coefficients of phi, phi' (in `t`) and phi'' at one layer's variances.
pub struct GradTable {
    pub t: HermiteTable,
    /// `e_n(s_i)` at `e[n * p + i]`, the relative tails of phi'' and the parities of its
    /// nonzero coefficients.
    pub e: Vec<f64>,
    pub e_rt: Vec<f64>,
    pub e_order: usize,
    pub e_parity: u8,
    /// `E[phi''(u) phi(u)]`, `u ~ N(0, s_i)`, from the 1-D rule.
    pub cross: Vec<f64>,
}

impl GradTable {
    /// The table at the variances `s` (independent of the thread count: each point on its own).
    pub fn new(act: &Activation, s: &[f64]) -> Result<Self> {
        let pc = point_coeffs_k(act, s, 0)?;
        let pd = point_coeffs_k(act, s, 1)?;
        let pe = point_coeffs_k(act, s, 2)?;
        let (order, d_order) = (choose_order(&pc), choose_order(&pd));
        let e_order = choose_order(&pe);
        let (c, m0, rt) = pack(&pc, order);
        let d = pack(&pd, d_order);
        let (e, _, e_rt) = pack(&pe, e_order);
        let (reps, group) = variance_groups(s);
        let cross: Vec<f64> = reps.par_iter().map(|&s| mesh::mesh_collinear(act, s, s, 1.0, (2, 0))).collect();
        let cross: Vec<f64> = group.iter().map(|&g| cross[g]).collect();
        let p = s.len();
        Ok(GradTable {
            t: HermiteTable {
                p,
                order,
                d_order,
                parity: parities(&c, p),
                d_parity: parities(&d.0, p),
                c,
                m0,
                rt,
                d: Some(d),
            },
            e_order,
            e_parity: parities(&e, p),
            e,
            e_rt,
            cross,
        })
    }
}

/// Row `i` of `E`, `dE/dc`, `dE/da` and `dE/db` at the columns `j = 0..e.len()` of a
/// symmetric kernel (`krow[j] = K_ij`, `diag[j] = K_jj`); `eg` computes the entries that miss
/// the error bound.
#[allow(clippy::too_many_arguments)]
pub fn grad_row(
    g: &GradTable,
    i: usize,
    diag: &[f64],
    krow: &[f64],
    e: &mut [f64],
    dc: &mut [f64],
    da: &mut [f64],
    db: &mut [f64],
    eg: &ExpectationGrad<'_>,
) -> Result<()> {
    let t = &g.t;
    let p = t.p;
    let (dco, dm0, drt) = t.d.as_ref().expect("a gradient table carries phi'");
    let a = diag[i];
    let (mut rho, mut rho2, mut fall) = (Vec::new(), Vec::new(), Vec::new());
    // series orders: phi phi, phi' phi', phi'' phi (the pair's order is the larger one)
    let orders = [t.order, t.d_order, t.order.max(g.e_order)];
    for j0 in (0..e.len()).step_by(COL_MAX) {
        let j1 = (j0 + COL_MAX).min(e.len());
        rho.clear();
        rho.extend((j0..j1).map(|j| correlation(a, diag[j], krow[j])));
        rho2.clear();
        rho2.extend(rho.iter().map(|r| r * r));
        let rmax = rho.iter().zip(&diag[j0..j1]).fold(0.0f64, |acc, (r, bj)| {
            if *r == 1.0 && *bj == a {
                acc
            } else {
                acc.max(r.abs())
            }
        });
        let n = orders.map(|o| lowered_order(rmax, o));
        let (cp, ep) = (t.parity, g.e_parity & t.parity);
        horner(&t.c, p, i, &t.c, p, j0, n[0], &rho, &rho2, cp, &mut e[j0..j1]);
        horner(dco, p, i, dco, p, j0, n[1], &rho, &rho2, t.d_parity, &mut dc[j0..j1]);
        horner(&g.e, p, i, &t.c, p, j0, n[2], &rho, &rho2, ep, &mut da[j0..j1]);
        horner(&t.c, p, i, &g.e, p, j0, n[2], &rho, &rho2, ep, &mut db[j0..j1]);
        for (k, &r) in rho.iter().enumerate() {
            let j = j0 + k;
            if r == 1.0 && diag[j] == a {
                e[j] = t.m0[i];
                dc[j] = dm0[i];
                da[j] = 0.5 * g.cross[i];
                db[j] = da[j];
                continue;
            }
            da[j] *= 0.5;
            db[j] *= 0.5;
            let fe = misses_bound(tail_product(t.rt[i], t.rt[j]), r, n[0], orders[0]);
            let fd = misses_bound(tail_product(drt[i], drt[j]), r, n[1], orders[1])
                || misses_bound(tail_product(g.e_rt[i], t.rt[j]).max(tail_product(t.rt[i], g.e_rt[j])), r, n[2], orders[2]);
            if fe || fd {
                fall.push(Fallback { k: j, e: fe, d: fd });
            }
        }
    }
    if !fall.is_empty() {
        let nf = fall.len();
        let fa = vec![a; nf];
        let fb: Vec<f64> = fall.iter().map(|f| diag[f.k]).collect();
        let fc: Vec<f64> = fall.iter().map(|f| krow[f.k]).collect();
        let (mut fe, mut fdc, mut fda, mut fdb) =
            (vec![0.0; nf], vec![0.0; nf], vec![0.0; nf], vec![0.0; nf]);
        eg.batch(&fa, &fb, &fc, &mut fe, &mut fdc, &mut fda, Some(&mut fdb))?;
        // collinear entries whose points pass the 1-D rule's check of the pair's functions: the
        // 1-D rule (as in `value_row` and the lazy kernels), not the polar quadrature
        let okp = |v: &[f64], j: usize| v[i].is_finite() && v[j].is_finite();
        for (k, dst) in [((0u8, 0u8), &mut fe), ((1, 1), &mut fdc), ((2, 0), &mut fda), ((0, 2), &mut fdb)] {
            let col: Vec<usize> = (0..nf)
                .filter(|&q| {
                    let j = fall[q].k;
                    let ok = match k.0 + k.1 {
                        0 => okp(&t.rt, j),
                        2 if k.0 == 1 => okp(drt, j),
                        _ => okp(&t.rt, j) && okp(&g.e_rt, j),
                    };
                    !eg.act.has_closed_form() && ok && is_collinear(correlation(fa[q], fb[q], fc[q]))
                })
                .collect();
            if col.is_empty() {
                continue;
            }
            let (ca, cb): (Vec<f64>, Vec<f64>) = col.iter().map(|&q| (fa[q], fb[q])).unzip();
            let sign: Vec<f64> = col.iter().map(|&q| correlation(fa[q], fb[q], fc[q]).signum()).collect();
            let mut out = vec![0.0; col.len()];
            collinear(eg.act, &ca, &cb, &sign, k, &mut out)?;
            let half = if k.0 != k.1 { 0.5 } else { 1.0 };
            for (n, &q) in col.iter().enumerate() {
                dst[q] = half * out[n];
            }
        }
        // E only where its own bound missed: the same E as `value_row` computes
        for (q, f) in fall.iter().enumerate() {
            if f.e {
                e[f.k] = fe[q];
            }
            if f.d {
                (dc[f.k], da[f.k], db[f.k]) = (fdc[q], fda[q], fdb[q]);
            }
        }
    }
    Ok(())
}

/// Row `i` of `E` alone (see [`grad_row`]), with the table of phi only; `ex` computes the
/// entries that miss the error bound.
pub fn value_row(
    t: &HermiteTable,
    i: usize,
    diag: &[f64],
    krow: &[f64],
    e: &mut [f64],
    ex: &Expectation<'_>,
) -> Result<()> {
    let (mut rho, mut fall) = (Vec::new(), Vec::new());
    for j0 in (0..e.len()).step_by(COL_MAX) {
        let j1 = (j0 + COL_MAX).min(e.len());
        let n0 = fall.len();
        entries(
            t,
            i,
            t,
            j0,
            diag[i],
            &diag[j0..j1],
            &krow[j0..j1],
            &mut e[j0..j1],
            None,
            &mut rho,
            &mut fall,
        );
        for f in &mut fall[n0..] {
            f.k += j0;
        }
    }
    if !fall.is_empty() {
        let nf = fall.len();
        let fa = vec![diag[i]; nf];
        let fb: Vec<f64> = fall.iter().map(|f| diag[f.k]).collect();
        let fc: Vec<f64> = fall.iter().map(|f| krow[f.k]).collect();
        let mut fe = vec![0.0; nf];
        let reliable = |q: usize| (t.rt[i].is_finite() && t.rt[fall[q].k].is_finite(), false);
        fallback_values(ex, &reliable, &fa, &fb, &fc, &mut fe, None)?;
        for (q, f) in fall.iter().enumerate() {
            e[f.k] = fe[q];
        }
    }
    Ok(())
}
