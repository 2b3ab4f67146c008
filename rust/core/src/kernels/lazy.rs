//! Lazy (infinite-width) kernels of a fully connected network: the NNGP kernel and the NTK.
//!
//! Conventions (depth L hidden layers, input dimension d):
//! `K^0 = sigma_w^2 x.x'/d + sigma_b^2`;
//! `K^l = sigma_w^2 E_{(u,v) ~ N(0, K^{l-1})}[phi(u) phi(v)] + sigma_b^2`, l = 1..L;
//! `Th^0 = K^0`, `Th^l = K^l + sigma_w^2 Th^{l-1} E[phi'(u) phi'(v)]` (NTK parameterization,
//! Jacot et al. 2018; Lee et al. 2019). The NNGP kernel is `K^L`, the NTK is `Th^L`.
//!
//! Every entry (i, j) needs only `K^{l-1}_ij` and the two diagonals, so all layers of an entry
//! are computed in one pass over the output (rows in parallel), after one Gram product.
use crate::control::Control;
use crate::error::{invalid, shape, AkError, Result};
use crate::kernels::activation::{Activation, Expectation};
use crate::kernels::hermite::HermiteTable;
use crate::kernels::lazy_hermite::{diagonal_tables, hermite_pass};
use crate::kernels::input::{gram_into, InputKernel};
use crate::kernels::net::{mirror_lower, Mlp, Rows};
use crate::kernels::quadrature::PolarRule;
use crate::threads::with_threads;
use rayon::prelude::*;


/// True when every value is finite. Branch-free OR of "exponent all ones" over the slice, so
/// it vectorizes and costs a fraction of the work that produced the values.
#[inline]
pub(crate) fn all_finite(x: &[f64]) -> bool {
    const EXP: u64 = 0x7ff0_0000_0000_0000;
    !x.iter()
        .fold(false, |acc, v| acc | ((v.to_bits() & EXP) == EXP))
}

/// The error for a kernel that overflowed (finite inputs, non-finite kernel values).
pub(crate) fn overflow(name: &'static str) -> AkError {
    AkError::NonFinite {
        name,
        msg: "the kernel overflowed (non-finite values); rescale the inputs (X, or X1 and X2) or sigma_w \
              (the input-layer kernel is sigma_w^2 x.x'/d + sigma_b^2)"
            .into(),
    }
}

/// [`overflow`] naming `name` if the kernel `k`, computed from finite inputs, holds a non-finite value.
pub(crate) fn check_overflow(name: &'static str, k: faer::MatRef<'_, f64>) -> Result<()> {
    if k.col_iter().all(|c| c.iter().all(|v| v.is_finite())) {
        Ok(())
    } else {
        Err(overflow(name))
    }
}

/// Diagonals `K^l(x_i, x_i)` for l = 0..depth-1 (the inputs of each hidden layer).
/// Fails with [`AkError::NonFinite`] naming `name` if a diagonal overflows.
fn diagonal_path(
    name: &'static str,
    net: &Mlp,
    scales: &[f64],
    ex: &Expectation<'_>,
    k0: Vec<f64>,
) -> Result<Vec<Vec<f64>>> {
    if !all_finite(&k0) {
        return Err(overflow(name));
    }
    let mut out = vec![k0];
    let s2w = net.sigma_w * net.sigma_w;
    let s2b = net.sigma_b * net.sigma_b;
    for l in 1..net.depth {
        let prev = out.last().unwrap();
        let mut e = vec![0.0; prev.len()];
        ex.batch(prev, prev, prev, &mut e, None)?;
        let q = scales[l - 1];
        let next: Vec<f64> = e.iter().map(|e| q * (s2w * e + s2b)).collect();
        if !all_finite(&next) {
            return Err(overflow(name));
        }
        out.push(next);
    }
    Ok(out)
}

/// Entries per call of the expectation batch: bounds the node buffer of custom activations.
fn batch_len(net: &Mlp, rule: &PolarRule) -> usize {
    match net.activation {
        Activation::Custom(_) => (1usize << 18) / rule.nodes_per_expectation().max(1) + 1,
        _ => 4096,
    }
}

/// The per-layer scales (all ones for `None`), checked: one per hidden layer, finite, > 0, and
/// only without the NTK.
fn checked_scales(net: &Mlp, scales: Option<&[f64]>, ntk: bool) -> Result<Vec<f64>> {
    match scales {
        None => Ok(vec![1.0; net.depth]),
        Some(s) => {
            if s.len() != net.depth {
                return Err(shape(
                    "Q",
                    format!(
                        "needs one scale per hidden layer ({}), got {}",
                        net.depth,
                        s.len()
                    ),
                ));
            }
            if s.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
                return Err(invalid("Q", "layer scales must be finite and > 0"));
            }
            if ntk {
                return Err(invalid(
                    "ntk",
                    "the NTK is not defined for rescaled layer kernels",
                ));
            }
            Ok(s.to_vec())
        }
    }
}

/// Refuses, before allocating, kernels whose buffers exceed the available memory: `outputs`
/// matrices of `p1 x p2` (NNGP, NTK) and the per-layer diagonals (`depth x (p1 + p2)`).
pub fn check_memory(net: &Mlp, p1: usize, p2: usize, outputs: usize) -> Result<()> {
    crate::validate::memory(
        "X",
        &format!("{outputs} kernel matrices of {p1} x {p2} and the per-layer diagonals"),
        8.0 * (outputs as f64 * p1 as f64 * p2 as f64 + 2.0 * net.depth as f64 * (p1 + p2) as f64),
        "use fewer points (kernel_diagonal gives the diagonal in O(P)), or fewer layers (the net's depth)",
    )
}

/// Computes the NNGP kernel `K^L(X1, X2)` into `nngp` and, if given, the NTK into `ntk`
/// (both row-major `P1 x P2`). `x2 = None` means `X2 = X1` (only the lower triangle is
/// computed and then mirrored, so the result is exactly symmetric).
pub fn lazy_kernels(
    net: &Mlp,
    x1: Rows<'_>,
    x2: Option<Rows<'_>>,
    nngp: &mut [f64],
    ntk: Option<&mut [f64]>,
    n_threads: usize,
    ctl: &Control,
) -> Result<()> {
    lazy_kernels_scaled(net, None, x1, x2, nngp, ntk, n_threads, ctl)
}

/// [`lazy_kernels`] with per-layer scale factors: `K^l = s_l (sigma_w^2 E[phi phi] + sigma_b^2)`
/// for l = 1..L (the renormalized kernels of kernel-rescaling theories; `scales = None` is
/// all ones). The NTK is only defined without scales.
#[allow(clippy::too_many_arguments)]
pub fn lazy_kernels_scaled(
    net: &Mlp,
    scales: Option<&[f64]>,
    x1: Rows<'_>,
    x2: Option<Rows<'_>>,
    nngp: &mut [f64],
    ntk: Option<&mut [f64]>,
    n_threads: usize,
    ctl: &Control,
) -> Result<()> {
    net.validate()?;
    let scales = checked_scales(net, scales, ntk.is_some())?;
    let scales = scales.as_slice();
    let sym = x2.is_none();
    let x2r = x2.unwrap_or(x1);
    if x2r.cols != x1.cols {
        return Err(shape(
            "X2",
            format!("has {} features but X1 has {}", x2r.cols, x1.cols),
        ));
    }
    let (p1, p2, d) = (x1.rows, x2r.rows, x1.cols);
    if nngp.len() != p1 * p2 || ntk.as_ref().is_some_and(|t| t.len() != p1 * p2) {
        return Err(shape(
            "out",
            format!("output buffers must hold {p1} x {p2} values"),
        ));
    }
    let rule = PolarRule::new(net.quadrature_order);
    let ex = net.expectation(&rule);
    let s2w = net.sigma_w * net.sigma_w;
    let s2b = net.sigma_b * net.sigma_b;
    let input = InputKernel::new(net.sigma_w, net.sigma_b, d);
    ctl.set_total((if sym { p1 * (p1 + 1) / 2 } else { p1 * p2 }) as u64);

    with_threads(n_threads, |par| -> Result<()> {
        // Gram product G = X1 X2^T (lower triangle only when symmetric), written into `nngp`.
        gram_into(x1.mat(), x2r.mat(), sym, &mut *nngp, par);
        ctl.checkpoint()?;
        let k0 = |g: f64| input.of_gram(g);
        let diag1: Vec<f64> = if sym {
            (0..p1).map(|i| k0(nngp[i * p2 + i])).collect()
        } else {
            (0..p1).map(|i| input.of_row(x1.row(i))).collect()
        };
        if net.lazy_uses_hermite() {
            let fallback_rule = net.hermite_fallback_rule();
            let want_d = ntk.is_some();
            let side1 = diagonal_tables("X1", net, scales, diag1, want_d)?;
            let side2 = if sym {
                None
            } else {
                let d2 = (0..p2).map(|j| input.of_row(x2r.row(j))).collect();
                Some(diagonal_tables("X2", net, scales, d2, want_d)?)
            };
            let mut ntk = ntk;
            hermite_pass(
                net,
                scales,
                sym,
                p2,
                &side1,
                side2.as_ref().unwrap_or(&side1),
                &k0,
                nngp,
                ntk.as_deref_mut(),
                &fallback_rule,
                ctl,
            )?;
            if sym {
                mirror_lower(nngp, p1);
                if let Some(t) = ntk {
                    mirror_lower(t, p1);
                }
            }
            return Ok(());
        }
        let diag1 = diagonal_path("X1", net, scales, &ex, diag1)?;
        let diag2 = if sym {
            diag1.clone()
        } else {
            let d2 = (0..p2).map(|j| input.of_row(x2r.row(j))).collect();
            diagonal_path("X2", net, scales, &ex, d2)?
        };
        let blen = batch_len(net, &rule);
        let depth = net.depth;

        let row_pass = |i: usize, krow: &mut [f64], mut trow: Option<&mut [f64]>| -> Result<()> {
            ctl.checkpoint()?;
            let ncols = if sym { i + 1 } else { p2 };
            let mut a = vec![0.0; blen];
            let mut e = vec![0.0; blen];
            let mut dd = vec![0.0; blen];
            for start in (0..ncols).step_by(blen) {
                let end = (start + blen).min(ncols);
                let m = end - start;
                let c = &mut krow[start..end];
                for v in c.iter_mut() {
                    *v = k0(*v);
                }
                let mut th = trow.as_deref_mut().map(|t| &mut t[start..end]);
                if let Some(th) = th.as_deref_mut() {
                    th.copy_from_slice(c);
                }
                for l in 0..depth {
                    a[..m].fill(diag1[l][i]);
                    let b = &diag2[l][start..end];
                    let want_d = th.is_some();
                    ex.batch(
                        &a[..m],
                        b,
                        c,
                        &mut e[..m],
                        if want_d { Some(&mut dd[..m]) } else { None },
                    )?;
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
                // Overflow check of the finished entries (cheap, vectorized; the mirrored
                // upper triangle of a symmetric kernel is a copy of these).
                if !all_finite(c) || th.as_deref().is_some_and(|t| !all_finite(t)) {
                    return Err(overflow("X1"));
                }
            }
            ctl.advance(ncols as u64);
            Ok(())
        };

        let mut ntk = ntk;
        match ntk.as_deref_mut() {
            Some(ntk) => nngp
                .par_chunks_mut(p2)
                .zip(ntk.par_chunks_mut(p2))
                .enumerate()
                .try_for_each(|(i, (kr, tr))| row_pass(i, kr, Some(tr)))?,
            None => nngp
                .par_chunks_mut(p2)
                .enumerate()
                .try_for_each(|(i, kr)| row_pass(i, kr, None))?,
        }
        if sym {
            mirror_lower(nngp, p1);
            if let Some(t) = ntk {
                mirror_lower(t, p1);
            }
        }
        Ok(())
    })
}

/// The diagonal `K^L(x_i, x_i)` (or, with `ntk`, `Th^L(x_i, x_i)`) of the rows of `x`, with the
/// optional layer `scales` of [`lazy_kernels_scaled`], in O(P) time and memory: each entry runs
/// the same layer recursion as the diagonal entries of the full kernel, from the input diagonal
/// `sigma_w^2 |x_i|^2 / d + sigma_b^2` summed row by row (the full kernel takes `|x_i|^2` from
/// its Gram product, so the two can differ in the last bits). Rows in parallel blocks;
/// independent of the thread count.
pub fn kernel_diagonal(
    net: &Mlp,
    scales: Option<&[f64]>,
    x: Rows<'_>,
    ntk: bool,
    n_threads: usize,
    ctl: &Control,
) -> Result<Vec<f64>> {
    net.validate()?;
    let scales = checked_scales(net, scales, ntk)?;
    check_memory(net, x.rows, 0, 0)?;
    let rule = PolarRule::new(net.quadrature_order);
    let ex = net.expectation(&rule);
    let input = InputKernel::new(net.sigma_w, net.sigma_b, x.cols);
    let (s2w, s2b) = (net.sigma_w * net.sigma_w, net.sigma_b * net.sigma_b);
    let blen = batch_len(net, &rule);
    let mut out = vec![0.0; x.rows];
    with_threads(n_threads, |_| {
        out.par_chunks_mut(blen).enumerate().try_for_each(|(blk, o)| -> Result<()> {
            ctl.checkpoint()?;
            let m = o.len();
            let mut k: Vec<f64> = (0..m).map(|i| input.of_row(x.row(blk * blen + i))).collect();
            let mut th = if ntk { Some(k.clone()) } else { None };
            let (mut e, mut dd) = (vec![0.0; m], vec![0.0; m]);
            for q in &scales {
                if net.lazy_uses_hermite() {
                    // E[phi^2], E[phi'^2] from the 1-D rule, as the full kernel's diagonal
                    let t = HermiteTable::new(&net.activation, &k, ntk)?;
                    e.copy_from_slice(&t.m0);
                    if let Some((_, m1, _)) = &t.d {
                        dd.copy_from_slice(m1);
                    }
                } else {
                    ex.batch(&k, &k, &k, &mut e, if ntk { Some(&mut dd) } else { None })?;
                }
                for i in 0..m {
                    k[i] = q * (s2w * e[i] + s2b);
                }
                if let Some(th) = th.as_mut() {
                    for i in 0..m {
                        th[i] = k[i] + s2w * th[i] * dd[i];
                    }
                }
            }
            let res = th.unwrap_or(k);
            if !all_finite(&res) {
                return Err(overflow("X"));
            }
            o.copy_from_slice(&res);
            Ok(())
        })
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernels(
        net: &Mlp,
        x: &[f64],
        x2: Option<&[f64]>,
        p: usize,
        d: usize,
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        let r1 = Rows::new("X1", x, p, d)?;
        let r2 = match x2 {
            Some(s) => Some(Rows::new("X2", s, s.len() / d, d)?),
            None => None,
        };
        let p2 = r2.map_or(p, |r| r.rows);
        let (mut k, mut t) = (vec![0.0; p * p2], vec![0.0; p * p2]);
        lazy_kernels(net, r1, r2, &mut k, Some(&mut t), 2, &Control::new())?;
        Ok((k, t))
    }

    #[test]
    fn all_finite_detects_nan_and_inf() {
        assert!(all_finite(&[]));
        assert!(all_finite(&[
            0.0,
            -1.0,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324
        ]));
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut v = vec![1.0; 37];
            v[29] = bad;
            assert!(!all_finite(&v));
        }
    }

    #[test]
    fn overflow_is_a_non_finite_error() {
        let x: Vec<f64> = (0..12).map(|i| (i as f64 - 5.5) * 1e200).collect();
        let ok: Vec<f64> = (0..12).map(|i| i as f64 - 5.5).collect();
        for act in [Activation::Relu, Activation::Tanh, Activation::Erf] {
            for depth in [0, 1, 3] {
                let net = Mlp::new(depth, act.clone(), 1.0, 0.1);
                let e = kernels(&net, &x, None, 4, 3).unwrap_err();
                assert!(
                    matches!(e, AkError::NonFinite { name: "X1", .. }),
                    "{act:?} {depth}: {e}"
                );
                assert!(e.to_string().contains("overflowed"), "{e}");
                // only X2 overflows
                let e = kernels(&net, &ok, Some(&x), 4, 3).unwrap_err();
                assert!(
                    matches!(e, AkError::NonFinite { .. }),
                    "{act:?} {depth}: {e}"
                );
                let (k, t) = kernels(&net, &ok, None, 4, 3).unwrap();
                assert!(all_finite(&k) && all_finite(&t));
            }
        }
        // sigma_w^2 overflows although sigma_w is finite
        let net = Mlp::new(3, Activation::Relu, 1e160, 0.0);
        let e = kernels(&net, &ok, None, 4, 3).unwrap_err();
        assert!(matches!(e, AkError::NonFinite { name: "X1", .. }), "{e}");
        // growth through the layers: finite input layer, overflow deep in the network
        let net = Mlp::new(40, Activation::Relu, 1e10, 0.0);
        let e = kernels(&net, &ok, None, 4, 3).unwrap_err();
        assert!(matches!(e, AkError::NonFinite { name: "X1", .. }), "{e}");
    }

    #[test]
    fn kernel_diagonal_matches_the_kernel_diagonal() {
        let x: Vec<f64> = (0..15).map(|i| ((i * 7) % 11) as f64 / 5.0 - 1.0).collect();
        let ctl = crate::control::no_control();
        let cases = [
            (Activation::Relu, 2),
            (Activation::Erf, 1),
            (Activation::Tanh, 0),
            (Activation::Tanh, 2),
        ];
        for (act, depth) in cases {
            let net = Mlp::new(depth, act, 1.3, 0.2);
            let rows = || Rows::new("X", &x, 5, 3).unwrap();
            let (k, th) = kernels(&net, &x, None, 5, 3).unwrap();
            let d = kernel_diagonal(&net, None, rows(), false, 1, ctl).unwrap();
            let dt = kernel_diagonal(&net, None, rows(), true, 2, ctl).unwrap();
            let scales: Vec<f64> = (0..depth).map(|l| 0.7 + 0.2 * l as f64).collect();
            let mut ks = vec![0.0; 25];
            lazy_kernels_scaled(&net, Some(&scales), rows(), None, &mut ks, None, 1, ctl).unwrap();
            let ds = kernel_diagonal(&net, Some(&scales), rows(), false, 1, ctl).unwrap();
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs();
            for i in 0..5 {
                assert!(close(d[i], k[i * 5 + i]), "nngp {i}");
                assert!(close(dt[i], th[i * 5 + i]), "ntk {i}");
                assert!(close(ds[i], ks[i * 5 + i]), "scaled {i}");
            }
        }
    }
}
