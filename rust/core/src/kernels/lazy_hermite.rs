//! The layer recursion of the lazy kernels with `Method::Hermite`: per layer, one
//! [`HermiteTable`] of each side's diagonal variances, then every entry is a polynomial in its
//! correlation ([`crate::kernels::hermite`]); entries whose error bound misses the target use
//! the closed form (linear, relu, erf) or else the polar quadrature of `net.quadrature_order`. Rows in parallel blocks, columns in tiles
//! (the tile's coefficients stay in cache across the block's rows); every entry is computed on
//! its own, so the result does not depend on the thread count.
use crate::control::Control;
use crate::error::Result;
use crate::kernels::activation::{Expectation, Method};
use crate::kernels::hermite::{entries, fallback_values, HermiteTable};
use crate::kernels::lazy::{all_finite, overflow};
use crate::kernels::net::Mlp;
use crate::kernels::quadrature::PolarRule;
use rayon::prelude::*;

const ROW_BLOCK: usize = 16;
const COL_TILE: usize = 128;

/// Diagonals `K^l(x_i, x_i)` (l = 0..depth-1) and the Hermite table of each, from the input
/// diagonal `k0`; the diagonal of the next layer is `q (sigma_w^2 E[phi^2] + sigma_b^2)` with
/// `E[phi^2]` from the table's 1-D rule (the value the full kernel's diagonal entries take).
pub(crate) fn diagonal_tables(
    name: &'static str,
    net: &Mlp,
    scales: &[f64],
    k0: Vec<f64>,
    derivative: bool,
) -> Result<(Vec<Vec<f64>>, Vec<HermiteTable>)> {
    if !all_finite(&k0) {
        return Err(overflow(name));
    }
    let (s2w, s2b) = (net.sigma_w * net.sigma_w, net.sigma_b * net.sigma_b);
    let mut diags = vec![k0];
    let mut tables = Vec::with_capacity(net.depth);
    for l in 0..net.depth {
        let t = HermiteTable::new(&net.activation, &diags[l], derivative)?;
        if l + 1 < net.depth {
            let q = scales[l];
            let next: Vec<f64> = t.m0.iter().map(|e| q * (s2w * e + s2b)).collect();
            if !all_finite(&next) {
                return Err(overflow(name));
            }
            diags.push(next);
        }
        tables.push(t);
    }
    Ok((diags, tables))
}

/// The expectations of the entries that miss the expansion's bound: the closed form where there
/// is one (linear, relu, erf), else the polar `rule` ([`Mlp::hermite_fallback_rule`]).
pub(crate) fn fallback_expectation<'a>(net: &'a Mlp, rule: &'a PolarRule) -> Expectation<'a> {
    Expectation {
        act: &net.activation,
        method: if net.activation.has_closed_form() { Method::Auto } else { Method::Quadrature },
        rule,
    }
}

/// Runs the layer recursion on `nngp` (holding the Gram product `X1 X2^T`, lower triangle
/// only when `sym`), writing `K^L` and, if given, the NTK `Th^L` (lower triangle when `sym`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn hermite_pass(
    net: &Mlp,
    scales: &[f64],
    sym: bool,
    p2: usize,
    side1: &(Vec<Vec<f64>>, Vec<HermiteTable>),
    side2: &(Vec<Vec<f64>>, Vec<HermiteTable>),
    k0: &(dyn Fn(f64) -> f64 + Sync),
    nngp: &mut [f64],
    ntk: Option<&mut [f64]>,
    rule: &PolarRule,
    ctl: &Control,
) -> Result<()> {
    let fb = fallback_expectation(net, rule);
    let (s2w, s2b) = (net.sigma_w * net.sigma_w, net.sigma_b * net.sigma_b);
    let depth = net.depth;
    let want_d = ntk.is_some();
    let task = |bi: usize, kb: &mut [f64], mut tb: Option<&mut [f64]>| -> Result<()> {
        ctl.checkpoint()?;
        let i0 = bi * ROW_BLOCK;
        let nrows = kb.len() / p2;
        let ncols = if sym { i0 + nrows } else { p2 };
        let (mut e, mut dd) = (vec![0.0; COL_TILE], vec![0.0; COL_TILE]);
        let (mut rho, mut fall) = (Vec::with_capacity(COL_TILE), Vec::new());
        let (mut fa, mut fbv, mut fc, mut fe, mut fd) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut done = 0u64;
        for j0 in (0..ncols).step_by(COL_TILE) {
            let j1 = (j0 + COL_TILE).min(ncols);
            for r in 0..nrows {
                let i = i0 + r;
                let jend = if sym { j1.min(i + 1) } else { j1 };
                if jend <= j0 {
                    continue;
                }
                let m = jend - j0;
                let c = &mut kb[r * p2 + j0..r * p2 + jend];
                for v in c.iter_mut() {
                    *v = k0(*v);
                }
                let mut th = tb.as_deref_mut().map(|t| &mut t[r * p2 + j0..r * p2 + jend]);
                if let Some(th) = th.as_deref_mut() {
                    th.copy_from_slice(c);
                }
                for l in 0..depth {
                    let (a, b) = (side1.0[l][i], &side2.0[l][j0..jend]);
                    fall.clear();
                    entries(
                        &side1.1[l],
                        i,
                        &side2.1[l],
                        j0,
                        a,
                        b,
                        c,
                        &mut e[..m],
                        if want_d { Some(&mut dd[..m]) } else { None },
                        &mut rho,
                        &mut fall,
                    );
                    if !fall.is_empty() {
                        let nf = fall.len();
                        fa.clear();
                        fa.resize(nf, a);
                        fbv.clear();
                        fbv.extend(fall.iter().map(|f| b[f.k]));
                        fc.clear();
                        fc.extend(fall.iter().map(|f| c[f.k]));
                        fe.resize(nf, 0.0);
                        fd.resize(nf, 0.0);
                        let (t1, t2) = (&side1.1[l], &side2.1[l]);
                        let reliable = |q: usize| {
                            let j = j0 + fall[q].k;
                            let e_ok = t1.rt[i].is_finite() && t2.rt[j].is_finite();
                            let d_ok = match (&t1.d, &t2.d) {
                                (Some(d1), Some(d2)) => d1.2[i].is_finite() && d2.2[j].is_finite(),
                                _ => false,
                            };
                            (e_ok, d_ok)
                        };
                        fallback_values(&fb, &reliable, &fa, &fbv, &fc, &mut fe, want_d.then_some(&mut fd[..]))?;
                        // only the series that missed the bound: E is the same with and
                        // without the NTK
                        for (q, f) in fall.iter().enumerate() {
                            if f.e {
                                e[f.k] = fe[q];
                            }
                            if f.d {
                                dd[f.k] = fd[q];
                            }
                        }
                    }
                    let q = scales[l];
                    for k in 0..m {
                        c[k] = q * (s2w * e[k] + s2b);
                    }
                    if let Some(th) = th.as_deref_mut() {
                        for k in 0..m {
                            th[k] = c[k] + s2w * th[k] * dd[k];
                        }
                    }
                }
                if !all_finite(c) || th.as_deref().is_some_and(|t| !all_finite(t)) {
                    return Err(overflow("X1"));
                }
                done += m as u64;
            }
        }
        ctl.advance(done);
        Ok(())
    };
    match ntk {
        Some(t) => nngp
            .par_chunks_mut(p2 * ROW_BLOCK)
            .zip(t.par_chunks_mut(p2 * ROW_BLOCK))
            .enumerate()
            .try_for_each(|(bi, (kb, tb))| task(bi, kb, Some(tb))),
        None => nngp
            .par_chunks_mut(p2 * ROW_BLOCK)
            .enumerate()
            .try_for_each(|(bi, kb)| task(bi, kb, None)),
    }
}
