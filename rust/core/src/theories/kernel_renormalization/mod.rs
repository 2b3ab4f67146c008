//! Kernel renormalization of Bayesian deep networks in the proportional limit
//! (Li & Sompolinsky, PRX 2021, for deep linear nets; Pacelli et al., Nat. Mach. Intell. 2023,
//! for nonlinear ones; digest `helias_ringel_fischer_rubin.md` §5).
//!
//! Layer kernels are the NNGP ones rescaled by one scalar order parameter per hidden layer:
//! `K^0 = sigma_w^2 X X^T / d + sigma_b^2`, `M^l = sigma_w^2 E_{N(0, K^{l-1})}[phi phi] + sigma_b^2`,
//! `K^l = Q_l M^l` (l = 1..L). With widths `N_l`, temperature `T`, targets `Y` (P x C) and
//! `A = K^L(Q) + T I`, the saddle point minimises the action (minus the log evidence, constants
//! dropped; equal widths: `(2/N) S` is Pacelli et al.'s action)
//! `S(Q) = 1/2 sum_l N_l (Q_l - ln Q_l) + 1/2 [tr(Y^T A^{-1} Y) + C ln det A]`.
//! Gradient: `dS/dQ_l = N_l (1 - 1/Q_l) / 2 + tr(G dK^L/dQ_l) / 2`, `G = C A^{-1} - Z Z^T`,
//! `Z = A^{-1} Y`, obtained by reverse accumulation through the entrywise layer maps.
//!
//! Two evaluators: a general one (one Cholesky of `A` per evaluation, `A^{-1}` from the
//! triangular inverse, O(L P^2) layer maps), and a spectral one for kernels that are a scalar
//! multiple `U(Q) B` of a fixed matrix (one hidden layer, or deep linear without bias), which
//! costs O(P) per evaluation after one eigendecomposition. Both feed a BFGS minimiser in
//! `log Q` with a backtracking line search, so `Q` stays positive.
use crate::control::Control;
use crate::error::{invalid, shape, AkError, Result};
use crate::kernels::activation::{Expectation, ExpectationGrad};
use crate::kernels::input::input_kernel_symmetric;
use crate::kernels::net::{mirror_lower, mirror_upper, Mlp, Rows};
use crate::kernels::quadrature::PolarRule;
use crate::linalg::{cholesky_solve_in_place, cholesky_with_jitter, symmetric_eigen};
use crate::optim::bfgs;
use crate::solve::SolveReport;
use crate::threads::with_threads;
use crate::validate;
use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::linalg::triangular_inverse::invert_lower_triangular;
use faer::{Accum, Mat, MatRef, Par};
use rayon::prelude::*;

/// How the action is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Solver {
    /// See [`Solver::resolve`].
    Auto,
    /// One eigendecomposition, then O(P) per evaluation (one hidden layer, or deep linear
    /// without bias).
    Spectral,
    /// One Cholesky per evaluation (any architecture).
    Cholesky,
}

impl Solver {
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "auto" => Ok(Solver::Auto),
            "spectral" | "eigen" => Ok(Solver::Spectral),
            "cholesky" => Ok(Solver::Cholesky),
            other => Err(invalid(
                "solver",
                format!("expected 'auto', 'spectral' or 'cholesky', got {other:?}"),
            )),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Solver::Auto => "auto",
            Solver::Spectral => "spectral",
            Solver::Cholesky => "cholesky",
        }
    }
    /// `Auto` picks the spectral evaluator when the kernel is `U(Q) B` and more than one
    /// saddle point is solved on the same data (a path), the Cholesky one otherwise (a single
    /// eigendecomposition costs about as much as the ~10 Cholesky evaluations of one solve).
    fn resolve(self, spectral_ok: bool, n_points: usize) -> Result<Solver> {
        match self {
            Solver::Auto => Ok(if spectral_ok && n_points > 1 {
                Solver::Spectral
            } else {
                Solver::Cholesky
            }),
            Solver::Spectral if !spectral_ok => Err(invalid(
                "solver",
                "'spectral' needs one hidden layer, or a linear activation with sigma_b = 0 \
                 (then K^L = (prod Q_l) K_NNGP); use 'cholesky' or 'auto'",
            )),
            s => Ok(s),
        }
    }
}

/// Stopping rule and iteration budget of the minimiser.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Converged when `max_l |(Q_l - 1) + Q_l tr(G dK^L/dQ_l) / N_l| < tol`
    /// (the stationarity condition divided by `N_l / 2`, times `Q_l`).
    pub tol: f64,
    pub max_iter: usize,
    pub solver: Solver,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tol: 1e-10,
            max_iter: 200,
            solver: Solver::Auto,
        }
    }
}

/// One saddle point.
#[derive(Debug, Clone)]
pub struct Saddle {
    pub q: Vec<f64>,
    /// `S(Q*)` (layers of infinite width contribute nothing and keep `Q = 1`).
    pub action: f64,
    /// `dS/dQ` at `Q*`.
    pub gradient: Vec<f64>,
    /// Jitter the Cholesky of `A` needed at `Q*` (0 almost always: `T > 0`).
    pub jitter: f64,
    /// Convergence; `solver` is the evaluator used (`spectral` or `cholesky`).
    pub report: SolveReport,
}

/// The data of a fit: architecture, input kernel and targets.
pub struct Problem<'a> {
    net: &'a Mlp,
    p: usize,
    c: usize,
    /// `K^0` (P x P row-major).
    k0: Vec<f64>,
    y: MatRef<'a, f64>,
    rule: PolarRule,
    /// `M^1 = sigma_w^2 E[phi phi](K^0) + sigma_b^2`, the same at every `Q`.
    m1: Vec<f64>,
}

impl<'a> Problem<'a> {
    /// Builds `K^0` of the training inputs `x` (P x d) for targets `y` (P x C).
    pub fn new(net: &'a Mlp, x: Rows<'_>, y: MatRef<'a, f64>, n_threads: usize) -> Result<Self> {
        net.validate()?;
        if net.depth == 0 {
            return Err(invalid(
                "net",
                "kernel renormalization needs at least one hidden layer (depth >= 1)",
            ));
        }
        let (p, d) = (x.rows, x.cols);
        if p == 0 || d == 0 {
            return Err(shape("X", format!("must be non-empty, got ({p}, {d})")));
        }
        validate::finite("X", x.data)?;
        validate::targets(y, p)?;
        let mut k0 = vec![0.0; p * p];
        with_threads(n_threads, |par| {
            input_kernel_symmetric(x.mat(), net.sigma_w, net.sigma_b, &mut k0, par)
        });
        let mut prob = Problem {
            net,
            p,
            c: y.ncols(),
            k0,
            y,
            rule: PolarRule::new(net.quadrature_order),
            m1: Vec::new(),
        };
        prob.m1 = with_threads(n_threads, |_| prob.layer_map(&prob.k0, false))?.0;
        Ok(prob)
    }

    /// Whether `K^L(Q) = (prod_l Q_l) K^L(1)` exactly.
    pub fn spectral_applies(&self) -> bool {
        self.net.depth == 1
            || (matches!(self.net.activation, crate::kernels::activation::Activation::Linear)
                && self.net.sigma_b == 0.0)
    }

    /// One layer map on the training points: `M = sigma_w^2 E[phi phi](K_prev) + sigma_b^2`
    /// (full, symmetric) and, with `grads`, `(Dc, D)`: `Dc_ij = dE_ij/dK_ij` (symmetric) and
    /// `D_ij = dE_ij/dK_ii` (not symmetric; entry (i, j) of the lower triangle holds dE/da,
    /// the mirrored entry (j, i) dE/db of the same pair).
    #[allow(clippy::type_complexity)]
    fn layer_map(
        &self,
        kprev: &[f64],
        grads: bool,
    ) -> Result<(Vec<f64>, Option<(Vec<f64>, Vec<f64>)>)> {
        let p = self.p;
        let (s2w, s2b) = (
            self.net.sigma_w * self.net.sigma_w,
            self.net.sigma_b * self.net.sigma_b,
        );
        let diag: Vec<f64> = (0..p).map(|j| kprev[j * p + j]).collect();
        let mut m = vec![0.0; p * p];
        let out = if grads {
            let eg = ExpectationGrad {
                act: &self.net.activation,
                rule: &self.rule,
            };
            let (mut dc, mut da, mut db) = (vec![0.0; p * p], vec![0.0; p * p], vec![0.0; p * p]);
            m.par_chunks_mut(p)
                .zip(dc.par_chunks_mut(p))
                .zip(da.par_chunks_mut(p).zip(db.par_chunks_mut(p)))
                .enumerate()
                .try_for_each(|(i, ((mr, dcr), (dar, dbr)))| -> Result<()> {
                    let n = i + 1;
                    let a = vec![diag[i]; n];
                    let mut e = vec![0.0; n];
                    eg.batch(
                        &a,
                        &diag[..n],
                        &kprev[i * p..i * p + n],
                        &mut e,
                        &mut dcr[..n],
                        &mut dar[..n],
                        Some(&mut dbr[..n]),
                    )?;
                    for j in 0..n {
                        mr[j] = s2w * e[j] + s2b;
                    }
                    Ok(())
                })?;
            mirror_lower(&mut dc, p);
            // upper triangle of D: D_ji = dE_ij/dK_jj, the lower triangle of db transposed
            da.par_chunks_mut(p).enumerate().for_each(|(j, row)| {
                for i in j + 1..p {
                    row[i] = db[i * p + j];
                }
            });
            Some((dc, da))
        } else {
            let ex = Expectation {
                act: &self.net.activation,
                method: self.net.method,
                rule: &self.rule,
            };
            m.par_chunks_mut(p)
                .enumerate()
                .try_for_each(|(i, mr)| -> Result<()> {
                    let n = i + 1;
                    let a = vec![diag[i]; n];
                    let mut e = vec![0.0; n];
                    ex.batch(&a, &diag[..n], &kprev[i * p..i * p + n], &mut e, None)?;
                    for j in 0..n {
                        mr[j] = s2w * e[j] + s2b;
                    }
                    Ok(())
                })?;
            None
        };
        mirror_lower(&mut m, p);
        if m.iter().any(|v| !v.is_finite()) {
            return Err(AkError::NonFinite {
                name: "X",
                msg: "a renormalized layer kernel overflowed".into(),
            });
        }
        Ok((m, out))
    }

    /// Renormalized kernels `[K^0, K^1, .., K^L]` of the training points at `q`.
    pub fn forward(&self, q: &[f64], ctl: &Control) -> Result<Vec<Vec<f64>>> {
        let mut layers = vec![
            self.k0.clone(),
            self.m1.iter().map(|v| q[0] * v).collect::<Vec<f64>>(),
        ];
        for &ql in &q[1..] {
            ctl.checkpoint()?;
            let (m, _) = self.layer_map(layers.last().unwrap(), false)?;
            layers.push(m.into_iter().map(|v| ql * v).collect());
        }
        Ok(layers)
    }

    /// `(S, dS/dQ, jitter)` at `q` with the Cholesky evaluator. Layers of infinite width add
    /// no prior term (their `Q` is pinned to 1 by the caller).
    pub fn action_and_gradient(
        &self,
        widths: &[f64],
        t: f64,
        q: &[f64],
        par: Par,
        ctl: &Control,
    ) -> Result<(f64, Vec<f64>, f64)> {
        let (p, c, depth) = (self.p, self.c, self.net.depth);
        // Forward: M^1 is fixed (K^0 does not depend on Q); layers l >= 2 also keep the
        // derivatives of their map for the reverse pass.
        let mut ms: Vec<Vec<f64>> = Vec::with_capacity(depth);
        let mut derivs = Vec::with_capacity(depth.saturating_sub(1));
        let mut kl: Vec<f64> = self.m1.iter().map(|v| q[0] * v).collect();
        for &ql in &q[1..] {
            ctl.checkpoint()?;
            let (m, d) = self.layer_map(&kl, true)?;
            kl = m.iter().map(|v| ql * v).collect();
            ms.push(m);
            derivs.push(d.unwrap());
        }
        // Cholesky of A = K^L + T I.
        let mut lf = Mat::<f64>::zeros(p, p);
        // (column-major view of the symmetric K^L: the factorization copies contiguous columns)
        let info = cholesky_with_jitter(
            "A",
            MatRef::from_column_major_slice(&kl, p, p),
            t,
            lf.as_mut(),
            par,
        )?;
        drop(kl);
        ctl.checkpoint()?;
        let mut z = self.y.to_owned();
        cholesky_solve_in_place(lf.as_ref(), z.as_mut(), par)?;
        let mut data = 0.0;
        for j in 0..c {
            for i in 0..p {
                data += self.y[(i, j)] * z[(i, j)];
            }
        }
        let logdet: f64 = 2.0 * (0..p).map(|i| lf[(i, i)].ln()).sum::<f64>();
        data += c as f64 * logdet;
        // A^{-1} = L^{-T} L^{-1}: triangular inverse, then a triangular product (P^3 / 3 each).
        let mut w = Mat::<f64>::zeros(p, p);
        invert_lower_triangular(w.as_mut(), lf.as_ref(), par); // writes the lower triangle; the upper stays 0
        drop(lf);
        ctl.checkpoint()?;
        // G = C A^{-1} - Z Z^T: its lower triangle in column-major order is the upper triangle
        // of the row-major buffer `gbar` (= dS_data/dK^L, symmetric), completed by a mirror.
        let mut gbar = vec![0.0; p * p];
        {
            let mut g = faer::MatMut::from_column_major_slice_mut(&mut gbar, p, p);
            triangular::matmul(
                g.as_mut(),
                BlockStructure::TriangularLower,
                Accum::Replace,
                w.transpose(),
                BlockStructure::TriangularUpper,
                w.as_ref(),
                BlockStructure::TriangularLower,
                c as f64,
                par,
            );
            triangular::matmul(
                g.as_mut(),
                BlockStructure::TriangularLower,
                Accum::Add,
                z.as_ref(),
                BlockStructure::Rectangular,
                z.transpose(),
                BlockStructure::Rectangular,
                -1.0,
                par,
            );
        }
        drop(w);
        mirror_upper(&mut gbar, p);
        // Reverse accumulation (with the 1/2 of the action): dS/dQ_l = 1/2 tr(G_l M^l).
        let s2w = self.net.sigma_w * self.net.sigma_w;
        let mut grad = vec![0.0; depth];
        for l in (1..=depth).rev() {
            ctl.checkpoint()?;
            let ml: &[f64] = if l == 1 { &self.m1 } else { &ms[l - 2] };
            let rows: Vec<f64> = gbar
                .par_chunks(p)
                .zip(ml.par_chunks(p))
                .map(|(gr, mr)| gr.iter().zip(mr).map(|(g, m)| g * m).sum::<f64>())
                .collect();
            grad[l - 1] = 0.5 * rows.iter().sum::<f64>();
            if l == 1 {
                break;
            }
            // G_{l-1} = Q_l sigma_w^2 J^T G_l: off-diagonal entries through dE/dc, the diagonal
            // through its own total derivative plus dE/da of every entry of its row.
            let (dc, d) = &derivs[l - 2];
            let scale = q[l - 1] * s2w;
            let mut next = vec![0.0; p * p];
            next.par_chunks_mut(p).enumerate().for_each(|(i, out)| {
                let (gr, dcr, dr) = (
                    &gbar[i * p..(i + 1) * p],
                    &dc[i * p..(i + 1) * p],
                    &d[i * p..(i + 1) * p],
                );
                let mut diag = 0.0;
                for j in 0..p {
                    out[j] = scale * gr[j] * dcr[j];
                    diag += gr[j] * dr[j];
                }
                // entry (i, i): its total derivative dc + 2 da (D_ii = da), plus 2 sum_{j != i} G_ij D_ij
                out[i] = scale * (gr[i] * (dcr[i] + 2.0 * dr[i]) + 2.0 * (diag - gr[i] * dr[i]));
            });
            gbar = next;
        }
        let mut s = 0.5 * data;
        for l in 0..depth {
            if widths[l].is_finite() {
                s += 0.5 * widths[l] * (q[l] - q[l].ln());
                grad[l] += 0.5 * widths[l] * (1.0 - 1.0 / q[l]);
            } else {
                grad[l] = 0.0;
            }
        }
        if !s.is_finite() || grad.iter().any(|g| !g.is_finite()) {
            return Err(AkError::NonFinite {
                name: "action",
                msg: format!("non-finite action or gradient at Q = {q:?}"),
            });
        }
        Ok((s, grad, info.jitter))
    }
}

/// `K^L(Q) = U B` in the eigenbasis of `B = K^L(1) = V diag(lam) V^T`: with `r_k = sum_c (V^T Y)_kc^2`,
/// `tr(Y^T A^{-1} Y) + C ln det A = sum_k [r_k / (U lam_k + T) + C ln(U lam_k + T)]`.
struct Spectrum {
    lam: Vec<f64>,
    r: Vec<f64>,
    c: f64,
}

impl Spectrum {
    fn new(prob: &Problem<'_>, par: Par, ctl: &Control) -> Result<Self> {
        let p = prob.p;
        let ones = vec![1.0; prob.net.depth];
        let layers = prob.forward(&ones, ctl)?;
        let b = &layers[prob.net.depth];
        let (lam, v) = symmetric_eigen("K", MatRef::from_row_major_slice(b, p, p), par)?;
        let mut vy = Mat::<f64>::zeros(p, prob.c);
        matmul(vy.as_mut(), Accum::Replace, v.transpose(), prob.y, 1.0, par);
        let r = (0..p)
            .map(|k| (0..prob.c).map(|j| vy[(k, j)] * vy[(k, j)]).sum())
            .collect();
        // Round-off can leave tiny negative eigenvalues of a PSD kernel.
        let lam = lam.into_iter().map(|x| x.max(0.0)).collect();
        Ok(Spectrum {
            lam,
            r,
            c: prob.c as f64,
        })
    }

    /// `(data(U), d data/dU)`.
    fn data(&self, u: f64, t: f64) -> (f64, f64) {
        let (mut f, mut g) = (0.0, 0.0);
        for (&l, &r) in self.lam.iter().zip(&self.r) {
            let a = u * l + t;
            f += r / a + self.c * a.ln();
            g += -l * r / (a * a) + self.c * l / a;
        }
        (f, g)
    }

    fn action_and_gradient(
        &self,
        widths: &[f64],
        t: f64,
        q: &[f64],
    ) -> Result<(f64, Vec<f64>, f64)> {
        let u: f64 = q.iter().product();
        let (data, ddata) = self.data(u, t);
        let mut s = 0.5 * data;
        let mut grad = vec![0.0; q.len()];
        for l in 0..q.len() {
            if widths[l].is_finite() {
                s += 0.5 * widths[l] * (q[l] - q[l].ln());
                grad[l] = 0.5 * widths[l] * (1.0 - 1.0 / q[l]) + 0.5 * ddata * u / q[l];
            }
        }
        if !s.is_finite() || grad.iter().any(|g| !g.is_finite()) {
            return Err(AkError::NonFinite {
                name: "action",
                msg: format!("non-finite action or gradient at Q = {q:?}"),
            });
        }
        Ok((s, grad, 0.0))
    }
}

/// Stationarity residual `max_l |2 Q_l dS/dQ_l / N_l|` over layers of finite width.
fn residual(widths: &[f64], q: &[f64], grad: &[f64]) -> f64 {
    (0..q.len())
        .filter(|&l| widths[l].is_finite())
        .map(|l| (2.0 * q[l] * grad[l] / widths[l]).abs())
        .fold(0.0, f64::max)
}

type Eval<'e> = dyn FnMut(&[f64]) -> Result<(f64, Vec<f64>, f64)> + 'e;

/// The BFGS chart `x = ln Q` over the layers of finite width (infinite ones stay at `Q = 1`).
/// Steps are capped at `|dx| <= 2`, so `Q` changes at most by e^2 per iteration.
struct LogChart<'a, 'e> {
    eval: &'a mut Eval<'e>,
    widths: &'a [f64],
    free: Vec<usize>,
}

impl bfgs::Chart for LogChart<'_, '_> {
    /// `(dS/dQ, jitter)`.
    type Extra = (Vec<f64>, f64);
    fn eval(&mut self, q: &[f64]) -> Result<(f64, Self::Extra)> {
        let (f, g, jitter) = (self.eval)(q)?;
        Ok((f, (g, jitter)))
    }
    fn chart_gradient(&self, q: &[f64], extra: &Self::Extra) -> Vec<f64> {
        self.free.iter().map(|&l| q[l] * extra.0[l]).collect()
    }
    fn residual(&self, q: &[f64], extra: &Self::Extra) -> f64 {
        residual(self.widths, q, &extra.0)
    }
    fn retract(&self, q: &[f64], step: f64, d: &[f64]) -> Vec<f64> {
        let mut qn = q.to_vec();
        for (k, &l) in self.free.iter().enumerate() {
            qn[l] = q[l] * (step * d[k]).exp();
        }
        qn
    }
    fn chart_difference(&self, new: &[f64], old: &[f64]) -> Vec<f64> {
        self.free.iter().map(|&l| new[l].ln() - old[l].ln()).collect()
    }
    /// The prior term's curvature in log Q, inverted: `1 / (N_l Q_l / 2)`.
    fn initial_inverse_hessian(&self, q: &[f64]) -> Vec<f64> {
        let n = self.free.len();
        let mut h = vec![0.0; n * n];
        for (k, &l) in self.free.iter().enumerate() {
            h[k * n + k] = 2.0 / (self.widths[l] * q[l]);
        }
        h
    }
}

/// BFGS on `x = ln Q` (free layers only) from `q0` ([`LogChart`]).
fn minimise(
    eval: &mut Eval<'_>,
    widths: &[f64],
    q0: &[f64],
    opts: &Options,
    ctl: &Control,
) -> Result<Saddle> {
    let depth = widths.len();
    let free: Vec<usize> = (0..depth).filter(|&l| widths[l].is_finite()).collect();
    let q: Vec<f64> = (0..depth)
        .map(|l| if widths[l].is_finite() { q0[l] } else { 1.0 })
        .collect();
    let mut chart = LogChart { eval, widths, free };
    let bopts = bfgs::Options {
        tol: opts.tol,
        max_iter: opts.max_iter,
        ..Default::default()
    };
    let (min, mut report) = bfgs::minimize(&mut chart, q, &bopts, ctl)?;
    report.solver = opts.solver.name();
    Ok(Saddle {
        q: min.q,
        action: min.f,
        gradient: min.extra.0,
        jitter: min.extra.1,
        report,
    })
}

/// One point of a path: widths and temperature.
#[derive(Debug, Clone)]
pub struct Point {
    pub widths: Vec<f64>,
    pub temperature: f64,
}

/// Solves the saddle point at each point in order, each warm-started from the previous
/// solution (continuation); `q0` (default all ones) starts the first. The spectral evaluator,
/// when used, shares one eigendecomposition across all points.
pub fn solve_path(
    prob: &Problem<'_>,
    points: &[Point],
    q0: Option<&[f64]>,
    opts: &Options,
    n_threads: usize,
    ctl: &Control,
) -> Result<Vec<Saddle>> {
    let depth = prob.net.depth;
    for pt in points {
        validate::widths(&pt.widths, depth)?;
        validate::temperature(pt.temperature)?;
    }
    validate::tol(opts.tol)?;
    let mut start = match q0 {
        Some(q) => {
            if q.len() != depth || q.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
                return Err(invalid("Q0", format!("needs {depth} finite values > 0")));
            }
            q.to_vec()
        }
        None => vec![1.0; depth],
    };
    let solver = opts.solver.resolve(prob.spectral_applies(), points.len())?;
    with_threads(n_threads, |par| {
        let spectrum = if solver == Solver::Spectral {
            Some(Spectrum::new(prob, par, ctl)?)
        } else {
            None
        };
        let mut out = Vec::with_capacity(points.len());
        for pt in points {
            let t = pt.temperature;
            let w = &pt.widths;
            let mut eval = |q: &[f64]| match &spectrum {
                Some(sp) => sp.action_and_gradient(w, t, q),
                None => prob.action_and_gradient(w, t, q, par, ctl),
            };
            let sol = minimise(&mut eval, w, &start, &Options { solver, ..*opts }, ctl)?;
            start = sol.q.clone();
            out.push(sol);
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
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
        ] {
            let mlp = net(act, depth, sb);
            let prob =
                Problem::new(&mlp, Rows::new("X", &x, 12, 5).unwrap(), y.as_ref(), 1).unwrap();
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
                Problem::new(&mlp, Rows::new("X", &x, 30, 8).unwrap(), y.as_ref(), 1).unwrap();
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
                .unwrap();
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

    #[test]
    fn infinite_width_pins_q_to_one_and_threads_do_not_matter() {
        let (x, y) = data(25, 6, 1, 3);
        let mlp = net(Activation::Relu, 2, 0.1);
        let prob = Problem::new(&mlp, Rows::new("X", &x, 25, 6).unwrap(), y.as_ref(), 1).unwrap();
        let pts = [Point {
            widths: vec![f64::INFINITY, 15.0],
            temperature: 0.1,
        }];
        let a = solve_path(&prob, &pts, None, &Options::default(), 1, no_control()).unwrap();
        let b = solve_path(&prob, &pts, None, &Options::default(), 2, no_control()).unwrap();
        assert_eq!(a[0].q[0], 1.0);
        assert!(a[0].report.converged);
        assert_eq!(a[0].q, b[0].q);
    }
}
