//! Adaptive tangent features (LeJeune & Alemohammad, CPAL 2024; digest
//! `lejeune_alemohammad_adaptive_tangent_features.md` §2-3): a linear model on the tangent
//! features `phi(x)` of a network at initialization whose features may be transformed linearly,
//!
//! `min_{beta, M} |beta|^2 + lam sum_k |M_k - I|_F^2   s.t.   Phi M beta = r`,
//!
//! `r = y - f0` (rows (sample, output)), `M = blockdiag(M_k)` over groups `k` of parameters.
//! For fixed `beta_k` the cheapest `M_k` is a rank-one correction, so the problem equals
//! `min_theta sum_k w1(|theta_k|)   s.t.   Phi theta = r` with the one-sided induced penalty `w1`
//! of [`penalty`], and at the optimum `M_k = I + (z_k - 1) u_k u_k^T`, `u_k = theta_k / |theta_k|`,
//! `z_k = argmin_z lam (z - 1)^2 + |theta_k|^2 / z^2`.
//!
//! Solver (convex, monotone): iteratively reweighted least squares in kernel form. With the
//! group kernels `K_k = Phi_k Phi_k^T`, `K_z = sum_k z_k^2 K_k`, `alpha = K_z^{-1} r` and
//! `theta_k = z_k^2 Phi_k^T alpha` (so `|theta_k|^2 = z_k^4 alpha^T K_k alpha`), then `z_k`
//! from `|theta_k|`. Each step minimises the majoriser `sum_k |theta_k|^2 / z_k^2` of the
//! concave-in-`|theta_k|^2` objective, so the objective never increases. Start `z = 1`: the
//! fixed tangent-feature (ridgeless tangent-kernel) interpolant. Stop when the relative
//! decrease of the objective is below `tol` (the report's residual).
//!
//! Structures: `Groups` (one group per dense layer: its weights and bias), `Layerwise`
//! (two-sided per-layer transforms, [`layerwise`]) and `Full` (one
//! unstructured group, whose predictor is exactly ridgeless tangent-kernel regression, since
//! `w1` is increasing). The adapted kernel reported is `Phi M M^T Phi^T =
//! K0 + sum_k ((z_k^2 - 1) / |theta_k|^2) r_k r_k^T`, `r_k = Phi_k theta_k`; the reweighted
//! kernel `K_z` gives the same interpolant (only the function is identified, not the kernel).
pub mod layerwise;
pub mod penalty;

use crate::control::Control;
use crate::error::{invalid, AkError, Result};
use crate::linalg::{cholesky, cholesky_solve_in_place};
use crate::solve::SolveReport;
use faer::{Mat, Par};

/// How the transforms are structured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Structure {
    /// One block-diagonal transform per group (per dense layer).
    Groups,
    /// One unstructured transform of all tangent features.
    Full,
    /// Two-sided transforms of every layer's inputs and backprop vectors ([`layerwise`]).
    Layerwise,
}

impl Structure {
    pub fn name(&self) -> &'static str {
        match self {
            Structure::Groups => "groups",
            Structure::Full => "full",
            Structure::Layerwise => "layerwise",
        }
    }

    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "groups" => Ok(Structure::Groups),
            "full" => Ok(Structure::Full),
            "layerwise" => Ok(Structure::Layerwise),
            other => Err(invalid(
                "structure",
                format!("expected 'groups', 'full' or 'layerwise', got {other:?}"),
            )),
        }
    }
}

/// Solver options (the only place their defaults live).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    pub structure: Structure,
    /// `lam`, the cost of transforming features (`inf`: the lazy fixed-feature model).
    pub reg: f64,
    /// Relative decrease of the objective below which the iteration stops.
    pub tol: f64,
    pub max_iter: usize,
    /// Layerwise only: memory of the safeguarded Anderson extrapolation of the alternating
    /// minimisation (0: plain alternating steps).
    pub anderson: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { structure: Structure::Groups, reg: 1.0, tol: 1e-12, max_iter: 2000, anderson: 5 }
    }
}

impl Options {
    pub fn validate(&self) -> Result<()> {
        if self.reg.is_nan() || self.reg <= 0.0 {
            return Err(invalid("reg", format!("must be > 0 (inf allowed), got {}", self.reg)));
        }
        crate::validate::tol(self.tol)?;
        if self.max_iter == 0 {
            return Err(invalid("max_iter", "must be >= 1"));
        }
        Ok(())
    }
}

/// The fitted adaptive tangent-feature model on the training set.
#[derive(Debug, Clone)]
pub struct Solution {
    /// `K_z^{-1} r` (length nC); the update of group k is `theta_k = weights[k] Phi_k^T alpha`.
    pub alpha: Vec<f64>,
    /// `z_k^2` of the last reweighting (the weights of the predictor's kernel `K_z`).
    pub weights: Vec<f64>,
    /// `|theta_k|` per group.
    pub norms: Vec<f64>,
    /// Optimal transform scale `z_k` of each group for its `theta_k`.
    pub scales: Vec<f64>,
    /// `sum_k w1(|theta_k|)` at the solution, and after every iteration (the first entry: the
    /// fixed tangent-feature interpolant).
    pub objective: f64,
    pub objective_history: Vec<f64>,
    /// `|K_z alpha - r| / |r|` (interpolation residual).
    pub feasibility: f64,
    /// Tangent kernel `K0`, adapted kernel `Phi M M^T Phi^T`, and the reweighted kernel `K_z`.
    pub kernel: Mat<f64>,
    pub adapted_kernel: Mat<f64>,
    pub weighted_kernel: Mat<f64>,
    pub report: SolveReport,
}

fn quad(k: &Mat<f64>, a: &[f64]) -> f64 {
    a.iter()
        .enumerate()
        .map(|(j, aj)| aj * k.col_as_slice(j).iter().zip(a).map(|(x, y)| x * y).sum::<f64>())
        .sum()
}

fn mat_vec(k: &Mat<f64>, a: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; k.nrows()];
    for (j, aj) in a.iter().enumerate() {
        for (o, x) in out.iter_mut().zip(k.col_as_slice(j)) {
            *o += x * aj;
        }
    }
    out
}

fn weighted(kernels: &[Mat<f64>], w: &[f64]) -> Mat<f64> {
    let n = kernels[0].nrows();
    Mat::from_fn(n, n, |i, j| kernels.iter().zip(w).map(|(k, w)| w * k[(i, j)]).sum())
}

/// Solves the adaptive tangent-feature problem from the per-layer kernels `block_kernels`
/// (each nC x nC, in the order of the tangent features' blocks) and the residual target `r`.
pub fn solve(block_kernels: &[Mat<f64>], r: &[f64], opts: &Options, ctl: &Control) -> Result<Solution> {
    opts.validate()?;
    if block_kernels.is_empty() || block_kernels[0].nrows() != r.len() {
        return Err(crate::error::shape("y", "needs one target per (sample, output) row of the tangent features"));
    }
    crate::validate::finite("y", r)?;
    let k0 = weighted(block_kernels, &vec![1.0; block_kernels.len()]);
    let full = [k0.clone()];
    let groups: &[Mat<f64>] = match opts.structure {
        Structure::Groups => block_kernels,
        Structure::Full => &full,
        Structure::Layerwise => {
            return Err(invalid("structure", "'layerwise' needs the tangent features (layerwise::solve)"))
        }
    };
    let lam = opts.reg;
    let pen = |v: f64| if lam.is_infinite() { (v * v, 1.0) } else { penalty::one_sided(v, lam) };
    let mut w = vec![1.0; groups.len()];
    let (mut history, mut decreases): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    let mut converged = false;
    let mut n_iter = 0;
    let mut kz;
    let mut alpha;
    let mut norms;
    loop {
        ctl.checkpoint()?;
        kz = weighted(groups, &w);
        let l = cholesky(kz.as_ref()).ok_or_else(|| AkError::NotPositiveDefinite {
            name: "tangent kernel",
            msg: "the (reweighted) tangent kernel is singular: the tangent features cannot interpolate the \
                  targets (need distinct inputs and fewer (sample, output) rows than parameters)"
                .into(),
        })?;
        let mut b = Mat::from_fn(r.len(), 1, |i, _| r[i]);
        cholesky_solve_in_place(l.as_ref(), b.as_mut(), Par::Seq)?;
        alpha = b.col_as_slice(0).to_vec();
        norms = groups.iter().zip(&w).map(|(k, wk)| wk * quad(k, &alpha).max(0.0).sqrt()).collect::<Vec<f64>>();
        let obj: f64 = norms.iter().map(|&v| pen(v).0).sum();
        if let Some(&prev) = history.last() {
            let dec = (prev - obj) / prev.abs().max(f64::MIN_POSITIVE);
            decreases.push(dec);
            if dec <= opts.tol {
                converged = true;
            }
        }
        history.push(obj);
        if converged || n_iter >= opts.max_iter {
            break;
        }
        n_iter += 1;
        w = norms.iter().map(|&v| pen(v).1.powi(2)).collect();
    }
    let scales: Vec<f64> = norms.iter().map(|&v| pen(v).1).collect();
    let fit = mat_vec(&kz, &alpha);
    let rn = r.iter().map(|x| x * x).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
    let feasibility = fit.iter().zip(r).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt() / rn;
    let mut adapted = k0.clone();
    for ((k, wk), (&v, &z)) in groups.iter().zip(&w).zip(norms.iter().zip(&scales)) {
        if v > 0.0 && z != 1.0 {
            let rk: Vec<f64> = mat_vec(k, &alpha).iter().map(|x| wk * x).collect();
            let c = (z * z - 1.0) / (v * v);
            for j in 0..rk.len() {
                for i in 0..rk.len() {
                    adapted[(i, j)] += c * rk[i] * rk[j];
                }
            }
        }
    }
    let residual = decreases.last().copied().unwrap_or(0.0).abs();
    let report = SolveReport::new("irls", converged, n_iter, n_iter + 1, residual, decreases);
    Ok(Solution {
        alpha,
        weights: w,
        objective: *history.last().unwrap(),
        objective_history: history,
        norms,
        scales,
        feasibility,
        kernel: k0,
        adapted_kernel: adapted,
        weighted_kernel: kz,
        report,
    })
}

#[cfg(test)]
mod tests;
